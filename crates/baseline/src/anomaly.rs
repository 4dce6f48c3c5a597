//! The per-minute anomaly model: each container's minute becomes a vector of features
//! (exec rate, new executables, distinct files written, distinct destinations, DNS
//! queries and their entropy, failed connects, privilege calls); during discover the
//! workload's minutes are kept as samples; at lock a robust z-score per feature is
//! fitted (median and MAD, which a few odd minutes during learning do not move, where a
//! mean and standard deviation would); after it, a minute whose features stand far
//! above the normal range is an anomaly whose explanation names the top features, their
//! values and the normal range.
//!
//! Bytes out are not among the features: the sensor reports connections, not traffic.

use rampart_event::{Event, Payload};

use crate::model::FastSet;

use serde::{Deserialize, Serialize};

/// Samples (minutes) kept per workload during discover; older ones are dropped.
pub const MAX_SAMPLES: usize = 720;
/// Minutes of learning the model needs: with fewer, no minute is scored (a workload
/// locked after a few minutes has too little to say what a normal minute is).
pub const MIN_SAMPLES: usize = 10;

/// The features, in vector order.
pub const FEATURES: [&str; 8] = [
    "exec_per_min",
    "new_executables",
    "distinct_files_written",
    "distinct_destinations",
    "dns_queries",
    "dns_max_entropy",
    "failed_connects",
    "privilege_calls",
];

/// A feature's floor of spread: below it a difference is not unusual however steady the
/// feature was (a workload that always ran 2 execs a minute is not anomalous at 4).
const SPREAD_FLOOR: [f64; 8] = [3.0, 1.0, 3.0, 2.0, 3.0, 0.5, 2.0, 1.0];

/// One container's current minute.
#[derive(Debug, Default)]
pub struct Window {
    pub minute: u64,
    pub execs: u32,
    pub new_executables: u32,
    /// The process keys counted in `new_executables` after the lock, so a new tool
    /// run a hundred times is one new executable (as it is one new item in discover).
    pub new_keys: FastSet<u64>,
    pub files_written: FastSet<u64>,
    pub destinations: FastSet<u64>,
    pub dns_queries: u32,
    pub dns_max_entropy: f64,
    pub failed_connects: u32,
    pub privilege_calls: u32,
}

impl Window {
    pub fn new(minute: u64) -> Self {
        Self {
            minute,
            ..Self::default()
        }
    }

    /// Counts a process outside a locked baseline once per distinct key per window.
    pub fn note_new_executable(&mut self, key: &str) {
        use std::hash::{Hash, Hasher};
        let mut h = crate::model::Fx::default();
        key.hash(&mut h);
        if self.new_keys.insert(h.finish()) {
            self.new_executables += 1;
        }
    }

    /// Counts `ev` into this minute's features.
    pub fn count(&mut self, ev: &Event) {
        fn h<T: std::hash::Hash + ?Sized>(v: &T) -> u64 {
            use std::hash::Hasher;
            let mut h = crate::model::Fx::default();
            v.hash(&mut h);
            h.finish()
        }
        match &ev.payload {
            Payload::Exec { .. } => self.execs += 1,
            Payload::FileOpen {
                path, access, ret, ..
            } if *ret >= 0 && (access.write || access.create) => {
                self.files_written.insert(h(path.as_str()));
            }
            Payload::FileUnlink { path, .. }
            | Payload::FileChmod { path, .. }
            | Payload::FileTruncate { path, .. } => {
                self.files_written.insert(h(path.as_str()));
            }
            Payload::FileRename { new_path, .. } => {
                self.files_written.insert(h(new_path.as_str()));
            }
            Payload::NetConnect { remote, ret, .. } => {
                if *ret < 0 && *ret != -115 {
                    self.failed_connects += 1;
                } else if let Some(ip) = remote.ip() {
                    self.destinations.insert(h(&ip));
                }
            }
            Payload::DnsQuery { query, .. } => {
                self.dns_queries += 1;
                self.dns_max_entropy = self.dns_max_entropy.max(crate::normalize::entropy(query));
            }
            Payload::SetId { .. }
            | Payload::Capset { .. }
            | Payload::Mount { .. }
            | Payload::Namespace { .. }
            | Payload::Ptrace { .. }
            | Payload::ModuleLoad { .. }
            | Payload::Bpf { .. }
            | Payload::Chroot { .. } => self.privilege_calls += 1,
            _ => {}
        }
    }

    pub fn vector(&self) -> [f64; 8] {
        [
            f64::from(self.execs),
            f64::from(self.new_executables),
            self.files_written.len() as f64,
            self.destinations.len() as f64,
            f64::from(self.dns_queries),
            self.dns_max_entropy,
            f64::from(self.failed_connects),
            f64::from(self.privilege_calls),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.vector().iter().all(|v| *v == 0.0)
    }

    /// Ends this minute and starts `minute` in place: the finished minute's number and
    /// features, or `None` when nothing happened in it. The sets keep their capacity, so
    /// a busy container's next minute allocates nothing.
    pub fn restart(&mut self, minute: u64) -> Option<(u64, [f64; 8])> {
        let done = (!self.is_empty()).then(|| (self.minute, self.vector()));
        self.minute = minute;
        self.execs = 0;
        self.new_executables = 0;
        self.new_keys.clear();
        self.files_written.clear();
        self.destinations.clear();
        self.dns_queries = 0;
        self.dns_max_entropy = 0.0;
        self.failed_connects = 0;
        self.privilege_calls = 0;
        done
    }
}

/// A feature's normal range: median and scaled MAD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub median: f64,
    /// 1.4826 × MAD (a standard deviation for normal data), at least the floor.
    pub spread: f64,
}

impl Range {
    /// The upper end of the normal range (median + 3 spreads).
    pub fn high(&self) -> f64 {
        self.median + 3.0 * self.spread
    }
}

/// Samples during discover; the fit after lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct FeatureModel {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<[f64; 8]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitted: Option<Vec<Range>>,
}

/// A feature that stood out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureScore {
    pub feature: &'static str,
    pub value: f64,
    pub z: f64,
    pub normal_low: f64,
    pub normal_high: f64,
}

/// A minute's verdict: the score (the highest z) and the features, highest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub score: f64,
    pub top: Vec<FeatureScore>,
}

impl Score {
    /// `new_executables=3 (normal 0–1), exec_per_min=40 (normal 2–9)`.
    pub fn explain(&self) -> String {
        self.top
            .iter()
            .map(|f| {
                format!(
                    "{}={} (normal {}–{}, z {:.1})",
                    f.feature,
                    fmt_num(f.value),
                    fmt_num(f.normal_low),
                    fmt_num(f.normal_high),
                    f.z
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn fmt_num(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.2}")
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

impl FeatureModel {
    pub fn add_sample(&mut self, v: [f64; 8]) {
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.remove(0);
        }
        self.samples.push(v);
    }

    /// Fits the median and MAD of every feature; with fewer than [`MIN_SAMPLES`]
    /// minutes there is no fit.
    pub fn fit(&mut self) {
        if self.samples.len() < MIN_SAMPLES {
            self.fitted = None;
            return;
        }
        let mut ranges = Vec::with_capacity(FEATURES.len());
        for (f, floor) in SPREAD_FLOOR.iter().enumerate() {
            let mut col: Vec<f64> = self.samples.iter().map(|s| s[f]).collect();
            let med = median(&mut col);
            let mut dev: Vec<f64> = col.iter().map(|x| (x - med).abs()).collect();
            let mad = median(&mut dev);
            ranges.push(Range {
                median: med,
                spread: (1.4826 * mad).max(*floor),
            });
        }
        self.fitted = Some(ranges);
    }

    /// Scores a minute against the fit: per feature, how many spreads above the median
    /// it stands (only excess counts: a quiet minute is not an attack). `None` before a
    /// fit.
    pub fn score(&self, v: &[f64; 8], top: usize) -> Option<Score> {
        let ranges = self.fitted.as_ref()?;
        let mut all: Vec<FeatureScore> = ranges
            .iter()
            .zip(v.iter())
            .zip(FEATURES.iter())
            .map(|((r, x), name)| FeatureScore {
                feature: name,
                value: *x,
                z: ((x - r.median) / r.spread).max(0.0),
                normal_low: (r.median - 3.0 * r.spread).max(0.0),
                normal_high: r.high(),
            })
            .collect();
        all.sort_by(|a, b| b.z.total_cmp(&a.z));
        let score = all.first().map_or(0.0, |f| f.z);
        all.retain(|f| f.z > 0.0);
        all.truncate(top);
        Some(Score { score, top: all })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_new_executables_stands_out_and_is_explained() {
        let mut m = FeatureModel::default();
        for i in 0..60 {
            // A steady web server: a few execs (health checks), some writes, one
            // destination; one odd minute during learning does not move the median.
            let execs = if i == 30 {
                40.0
            } else {
                2.0 + f64::from(i % 3)
            };
            m.add_sample([execs, 0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
        }
        m.fit();
        let normal = m
            .score(&[3.0, 0.0, 3.0, 1.0, 0.0, 0.0, 0.0, 0.0], 3)
            .unwrap();
        assert!(normal.score < 1.0, "{normal:?}");
        let attack = m
            .score(&[30.0, 4.0, 9.0, 5.0, 12.0, 4.1, 3.0, 2.0], 3)
            .unwrap();
        assert!(attack.score > 6.0, "{attack:?}");
        assert_eq!(attack.top.len(), 3);
        assert_eq!(attack.top[0].feature, "exec_per_min");
        let text = attack.explain();
        assert!(text.contains("exec_per_min=30"), "{text}");
        assert!(text.contains("normal"), "{text}");
    }

    #[test]
    fn a_new_tool_run_many_times_is_one_new_executable() {
        let mut w = Window::new(1);
        for _ in 0..100 {
            w.note_new_executable("/usr/bin/true <- /usr/bin/bash : true");
        }
        w.note_new_executable("/usr/bin/seq <- /usr/bin/bash : seq N");
        assert_eq!(w.new_executables, 2);
        let (minute, v) = w.restart(2).unwrap();
        assert_eq!((minute, v[1]), (1, 2.0));
        w.note_new_executable("/usr/bin/true <- /usr/bin/bash : true");
        assert_eq!(w.new_executables, 1, "each window counts afresh");
    }

    #[test]
    fn samples_are_bounded() {
        let mut m = FeatureModel::default();
        for _ in 0..MAX_SAMPLES + 10 {
            m.add_sample([1.0; 8]);
        }
        assert_eq!(m.samples.len(), MAX_SAMPLES);
        assert!(m.score(&[1.0; 8], 3).is_none(), "no score before a fit");
        let mut few = FeatureModel::default();
        for _ in 0..MIN_SAMPLES - 1 {
            few.add_sample([1.0; 8]);
        }
        few.fit();
        assert!(
            few.score(&[100.0; 8], 3).is_none(),
            "too few minutes to judge"
        );
    }
}
