//! Small statistics (median, quartiles, percentiles) and the process figures the
//! benches read: CPU time and resident memory.

use std::time::Duration;

use serde::Serialize;

/// The median; 0 for no samples.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// First and third quartiles (nearest rank); (0, 0) for no samples.
pub fn quartiles(mut v: Vec<f64>) -> (f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.75))
}

/// The smallest sample; infinity for none.
pub fn min(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

/// The largest sample; 0 for none.
pub fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Percentiles of a latency sample, in microseconds.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct Percentiles {
    pub n: usize,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    /// None for no samples.
    pub fn of(mut us: Vec<u64>) -> Option<Self> {
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let p = |q: f64| us[((us.len() - 1) as f64 * q) as usize];
        Some(Self {
            n: us.len(),
            p50_us: p(0.5),
            p90_us: p(0.9),
            p99_us: p(0.99),
            max_us: p(1.0),
        })
    }
}

/// User + system CPU time of this process (`RUSAGE_SELF`) or its waited-for
/// children (`RUSAGE_CHILDREN`).
pub fn cpu_time(who: i32) -> Duration {
    // SAFETY: getrusage fills the zeroed struct we pass; no other effects.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(who, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A memory figure of this process from /proc/self/status, in KiB (0 if absent).
fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// (VmRSS, RssAnon) in KiB. RssAnon is the heap; the rest of RSS is mostly the
/// kernel ring buffer's pages, which count once the producer has written them.
pub fn rss_kib() -> (u64, u64) {
    (status_kib("VmRSS:"), status_kib("RssAnon:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_quartiles_and_percentiles() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(quartiles(vec![1.0, 2.0, 3.0, 4.0, 5.0]), (2.0, 4.0));
        assert_eq!(Percentiles::of(vec![]), None);
        let p = Percentiles::of((1..=100).collect()).unwrap();
        assert_eq!(
            (p.n, p.p50_us, p.p90_us, p.p99_us, p.max_us),
            (100, 50, 90, 99, 100)
        );
    }
}
