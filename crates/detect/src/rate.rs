//! Stateful detectors a rule can hand its matching events to (`detector:` in a rule),
//! for behaviour no single event shows. The rule's condition selects the events the
//! detector sees; the rule fires on the event at which the detector decides.
//!
//! `mass_rewrite` finds impact by mass encryption or rewriting (T1486): many files
//! that the same group of processes read and then replaced, in a short window, with
//! output that is high in entropy and not a known compressed format. It works on the
//! events every file operation makes (opens, renames), whatever the tool: openssl,
//! gpg, a script or a compiled program. A file counts as rewritten when, after the
//! group read it, the group
//! - truncates or re-creates it in place,
//! - creates `FILE.EXT` beside it (the encrypted copy; the original is then removed),
//! - renames it to `FILE.EXT`, or renames another file over it (a temporary file
//!   moved into place).
//!
//! A group is the processes sharing a parent (a shell loop running one tool per file,
//! `find -exec`, `xargs`), in one container or on the host; a single program that
//! rewrites every file is in its parent's group with itself. When the files of one
//! group within the window reach the threshold, up to [`SAMPLES`] of the replaced
//! outputs are read (through the root of the process or a live ancestor) and their
//! entropy measured: compression tools (gzip, zstd, xz, zip) and media converters make
//! high-entropy output too, but with their formats' signatures, which do not count.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Mutex;

use rampart_event::{Event, Payload};

/// Outputs sampled when the threshold is reached.
pub const SAMPLES: usize = 6;
/// Bytes read from each sampled output.
const SAMPLE_BYTES: u64 = 4096;
/// Processes groups tracked at once (the least recently active are dropped beyond).
const MAX_GROUPS: usize = 4096;
/// Reads remembered per group (the oldest dropped beyond).
const MAX_READS: usize = 8192;

/// Parameters of a `mass_rewrite` detector (`detector: {type: mass_rewrite, files, window_secs}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MassRewriteSpec {
    /// Files rewritten within the window that make an alert.
    pub files: usize,
    pub window_secs: u64,
}

impl Default for MassRewriteSpec {
    fn default() -> Self {
        Self {
            files: 10,
            window_secs: 60,
        }
    }
}

/// A detector a rule runs on the events its condition matched.
pub enum Detector {
    MassRewrite(MassRewrite),
}

impl Detector {
    /// Feeds one matching event; true when the rule should fire on it.
    pub fn observe(&self, ev: &Event) -> bool {
        match self {
            Detector::MassRewrite(d) => d.observe(ev),
        }
    }
}

/// One rewritten file.
#[derive(Debug, Clone)]
struct Victim {
    ts_ns: u64,
    /// The file read.
    original: String,
    /// Where its replacement is.
    output: String,
}

/// Paths and groups are kept as 64-bit hashes: every file open of the rule's scope
/// passes here, and hashing costs less than keeping a copy of each path.
fn hash_of(parts: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}

#[derive(Default)]
struct Group {
    last_ns: u64,
    /// Hash of each path read, with when.
    reads: HashMap<u64, u64>,
    read_order: VecDeque<(u64, u64)>,
    victims: VecDeque<Victim>,
    /// No new alert for this group before this time (one per window).
    quiet_until_ns: u64,
    /// The victims count at which the content was last judged not encrypted: judged
    /// again only once as many more files were rewritten.
    rejected_at: usize,
}

/// See the module documentation.
pub struct MassRewrite {
    spec: MassRewriteSpec,
    groups: Mutex<HashMap<u64, Group>>,
    proc_root: std::path::PathBuf,
}

impl MassRewrite {
    pub fn new(spec: MassRewriteSpec) -> Self {
        Self::with_proc_root(spec, "/proc")
    }

    /// With another proc filesystem root (tests).
    pub fn with_proc_root(spec: MassRewriteSpec, proc_root: impl Into<std::path::PathBuf>) -> Self {
        Self {
            spec,
            groups: Mutex::new(HashMap::new()),
            proc_root: proc_root.into(),
        }
    }

    fn window_ns(&self) -> u64 {
        self.spec.window_secs.saturating_mul(1_000_000_000)
    }

    pub fn observe(&self, ev: &Event) -> bool {
        let Some(p) = ev.process.as_deref() else {
            return false;
        };
        let workload = ev.container.container().map_or("host", |c| c.id.as_str());
        let group_id = p.parent_exec_id.as_deref().unwrap_or(p.exec_id.as_str());
        let key = hash_of(&[workload, group_id]);
        let now = ev.ts_ns;
        let window = self.window_ns();
        let Ok(mut groups) = self.groups.lock() else {
            return false;
        };
        if groups.len() >= MAX_GROUPS && !groups.contains_key(&key) {
            let cutoff = now.saturating_sub(window);
            groups.retain(|_, g| g.last_ns >= cutoff);
            if groups.len() >= MAX_GROUPS {
                if let Some(oldest) = groups
                    .iter()
                    .min_by_key(|(_, g)| g.last_ns)
                    .map(|(k, _)| *k)
                {
                    groups.remove(&oldest);
                }
            }
        }
        let g = groups.entry(key).or_default();
        g.last_ns = now;
        let cutoff = now.saturating_sub(window);
        while g.read_order.front().is_some_and(|(ts, _)| *ts < cutoff)
            || g.read_order.len() > MAX_READS
        {
            if let Some((ts, path)) = g.read_order.pop_front() {
                if g.reads.get(&path) == Some(&ts) {
                    g.reads.remove(&path);
                }
            }
        }
        while g.victims.front().is_some_and(|v| v.ts_ns < cutoff) {
            g.victims.pop_front();
        }
        if g.victims.len() < g.rejected_at {
            g.rejected_at = g.victims.len();
        }

        let victim = match &ev.payload {
            Payload::FileOpen {
                path, access, ret, ..
            } if *ret >= 0 => {
                let h = hash_of(&[path]);
                let was_read = g.reads.contains_key(&h);
                if access.truncate || access.create {
                    if was_read {
                        Some((path.clone(), path.clone()))
                    } else {
                        original_of(path, &g.reads).map(|o| (o, path.clone()))
                    }
                } else {
                    if access.read && !was_read {
                        g.reads.insert(h, now);
                        g.read_order.push_back((now, h));
                    }
                    None
                }
            }
            Payload::FileRename {
                old_path,
                new_path,
                ret,
            } if *ret >= 0 => {
                if g.reads.contains_key(&hash_of(&[new_path])) {
                    Some((new_path.clone(), new_path.clone()))
                } else if is_extension_of(new_path, old_path)
                    && g.reads.contains_key(&hash_of(&[old_path]))
                {
                    Some((old_path.clone(), new_path.clone()))
                } else {
                    None
                }
            }
            _ => None,
        };
        let Some((original, output)) = victim else {
            return false;
        };
        if g.victims.iter().any(|v| v.original == original) {
            return false;
        }
        g.victims.push_back(Victim {
            ts_ns: now,
            original,
            output,
        });
        let n = g.victims.len();
        if n < self.spec.files || now < g.quiet_until_ns {
            return false;
        }
        if g.rejected_at > 0 && n < g.rejected_at + self.spec.files {
            return false;
        }
        // The newest output may still be being written: judge the ones before it.
        let samples: Vec<String> = g
            .victims
            .iter()
            .rev()
            .skip(1)
            .take(SAMPLES)
            .map(|v| v.output.clone())
            .collect();
        let verdicts: Vec<bool> = samples
            .iter()
            .filter_map(|out| {
                let path = crate::fsprobe::seen_path(&self.proc_root, ev, out)?;
                read_sample(&path).map(|b| looks_encrypted(&b))
            })
            .collect();
        let encrypted = verdicts.iter().filter(|v| **v).count();
        if verdicts.len() >= 2 && encrypted * 2 > verdicts.len() {
            g.quiet_until_ns = now.saturating_add(window);
            g.rejected_at = 0;
            true
        } else {
            g.rejected_at = n;
            false
        }
    }
}

/// `new` is `old` plus an extension of 1 to 16 characters (`report.pdf.locked`).
fn is_extension_of(new: &str, old: &str) -> bool {
    new.strip_prefix(old)
        .and_then(|rest| rest.strip_prefix('.'))
        .is_some_and(|ext| (1..=16).contains(&ext.len()) && !ext.contains('/'))
}

/// The file read whose `FILE.EXT` `path` is.
fn original_of(path: &str, reads: &HashMap<u64, u64>) -> Option<String> {
    let (stem, _) = path.rsplit_once('.')?;
    (is_extension_of(path, stem) && reads.contains_key(&hash_of(&[stem]))).then(|| stem.to_string())
}

fn read_sample(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(SAMPLE_BYTES)
        .read_to_end(&mut buf)
        .ok()?;
    Some(buf)
}

/// Shannon entropy in bits per byte.
pub fn entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in data {
        counts[*b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Signatures of formats that are high in entropy by design (compressed archives,
/// compressed images, audio and video).
const COMPRESSED_MAGIC: &[&[u8]] = &[
    b"\x1f\x8b",             // gzip
    b"BZh",                  // bzip2
    b"\xfd7zXZ\x00",         // xz
    b"\x28\xb5\x2f\xfd",     // zstd
    b"\x04\x22\x4d\x18",     // lz4
    b"PK\x03\x04",           // zip, jar, docx
    b"7z\xbc\xaf\x27\x1c",   // 7z
    b"Rar!",                 // rar
    b"\x89PNG",              // png
    b"\xff\xd8\xff",         // jpeg
    b"GIF8",                 // gif
    b"RIFF",                 // webp, wav, avi
    b"%PDF",                 // pdf (compressed streams)
    b"\x00\x00\x00\x18ftyp", // mp4
    b"\x00\x00\x00\x20ftyp", // mp4
    b"OggS",                 // ogg
    b"fLaC",                 // flac
    b"ID3",                  // mp3
];

/// High entropy for its size and not a compressed format: what encryption (or a
/// random overwrite) leaves.
pub fn looks_encrypted(sample: &[u8]) -> bool {
    if sample.len() < 64 || COMPRESSED_MAGIC.iter().any(|m| sample.starts_with(m)) {
        return false;
    }
    // A random sample of n bytes cannot reach 8 bits/byte when n is small.
    let max = (sample.len() as f64).log2().min(8.0);
    entropy(sample) >= (0.85 * max).min(7.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_event::{OpenAccess, Process, Workload};
    use std::sync::Arc;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    fn event(pid: u32, ts_ns: u64, payload: Payload) -> Event {
        let mut ev = crate::probe::probe_event(payload.kind()).unwrap();
        ev.ts_ns = ts_ns;
        ev.container = Arc::new(Workload::Host { cgroup_id: 0 });
        ev.process = Some(Arc::new(Process {
            pid,
            exec_id: format!("b:{pid}:1"),
            parent_exec_id: Some("b:1:1".into()),
            comm: "x".into(),
            ..Default::default()
        }));
        ev.payload = payload;
        ev
    }

    fn open(path: &str, flags: u32) -> Payload {
        Payload::FileOpen {
            path: path.into(),
            path_raw: None,
            flags,
            mode: 0o644,
            access: OpenAccess::from_flags(flags),
            ret: 3,
            repeats: 0,
        }
    }

    const RDONLY: u32 = 0;
    const CREATE_TRUNC: u32 = 0o1101; // O_WRONLY|O_CREAT|O_TRUNC

    /// Runs the event sequence of rewriting `n` files of `dir` (each read, then
    /// written by `write`), with `content` as each output, and returns whether and
    /// at which file the detector fired.
    fn run(
        dir: &Path,
        n: usize,
        write: impl Fn(&str) -> (Vec<Payload>, String),
        content: impl Fn(usize) -> Vec<u8>,
    ) -> Option<usize> {
        let d = MassRewrite::new(MassRewriteSpec {
            files: 5,
            window_secs: 60,
        });
        let mut fired = None;
        for i in 0..n {
            let original = dir.join(format!("doc{i}.txt")).display().to_string();
            std::fs::write(&original, b"quarterly figures, plain text ".repeat(40)).unwrap();
            let ts = 1_000_000_000 * (i as u64 + 1);
            assert!(!d.observe(&event(4242, ts, open(&original, RDONLY))));
            let (payloads, output) = write(&original);
            std::fs::write(&output, content(i)).unwrap();
            for p in payloads {
                if d.observe(&event(4242, ts + 1, p)) && fired.is_none() {
                    fired = Some(i);
                }
            }
        }
        fired
    }

    #[test]
    fn encrypting_in_place_beside_or_by_rename_fires_compressing_or_copying_does_not() {
        let in_place = |p: &str| (vec![open(p, CREATE_TRUNC)], p.to_string());
        let beside = |p: &str| {
            (
                vec![open(&format!("{p}.enc"), CREATE_TRUNC)],
                format!("{p}.enc"),
            )
        };
        let renamed = |p: &str| {
            (
                vec![Payload::FileRename {
                    old_path: p.into(),
                    new_path: format!("{p}.locked"),
                    ret: 0,
                }],
                format!("{p}.locked"),
            )
        };
        let random = |i: usize| pseudo_random(4096, i as u64 + 7);
        for (what, write) in [
            (
                "in place",
                &in_place as &dyn Fn(&str) -> (Vec<Payload>, String),
            ),
            ("beside", &beside),
            ("renamed", &renamed),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let fired = run(dir.path(), 8, write, random);
            assert_eq!(fired, Some(4), "{what}: fires at the fifth file");
        }
        // gzip: high entropy, with its signature.
        let dir = tempfile::tempdir().unwrap();
        let gz = |p: &str| {
            (
                vec![open(&format!("{p}.gz"), CREATE_TRUNC)],
                format!("{p}.gz"),
            )
        };
        let gzip_like = |i: usize| {
            let mut b = b"\x1f\x8b\x08\x00".to_vec();
            b.extend(pseudo_random(4092, i as u64));
            b
        };
        assert_eq!(run(dir.path(), 12, gz, gzip_like), None, "compression");
        // sed -i: rewritten in place, still text.
        let dir = tempfile::tempdir().unwrap();
        let text = |_| b"quarterly figures, edited text ".repeat(40);
        assert_eq!(run(dir.path(), 12, in_place, text), None, "text edits");
    }

    #[test]
    fn few_files_or_files_never_read_do_not_fire() {
        let dir = tempfile::tempdir().unwrap();
        let in_place = |p: &str| (vec![open(p, CREATE_TRUNC)], p.to_string());
        let random = |i: usize| pseudo_random(4096, i as u64 + 1);
        assert_eq!(run(dir.path(), 4, in_place, random), None);
        // New random files (downloads, key generation) replace nothing read.
        let d = MassRewrite::new(MassRewriteSpec::default());
        for i in 0..50 {
            let p = dir.path().join(format!("blob{i}")).display().to_string();
            std::fs::write(&p, pseudo_random(4096, i)).unwrap();
            assert!(!d.observe(&event(1, i + 1, open(&p, CREATE_TRUNC))));
        }
    }

    #[test]
    fn entropy_tells_random_from_text_and_known_formats() {
        assert!(looks_encrypted(&pseudo_random(4096, 3)));
        assert!(looks_encrypted(&pseudo_random(200, 3)));
        assert!(!looks_encrypted(
            &b"hello world, this is text. ".repeat(100)
        ));
        let mut zip = b"PK\x03\x04".to_vec();
        zip.extend(pseudo_random(4000, 9));
        assert!(!looks_encrypted(&zip));
        assert!(
            !looks_encrypted(&pseudo_random(32, 3)),
            "too short to judge"
        );
        assert!(entropy(&[]) == 0.0);
    }
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use rampart_event::{OpenAccess, Process, Workload};
    use std::sync::Arc;

    const RULE: &str = "- rule: rewrite\n  desc: d\n  condition: evt.type in (open, openat) and fd.num>=0\n  output: o\n  priority: WARNING\n  detector:\n    type: mass_rewrite\n    files: 3\n    window_secs: 60\n    unless: proc.name = backup-tool\n";

    fn open_event(comm: &str, pid: u32, ts_ns: u64, path: &str, flags: u32) -> Event {
        let mut ev = crate::probe::probe_event(rampart_event::EventKind::FileOpen).unwrap();
        ev.ts_ns = ts_ns;
        ev.container = Arc::new(Workload::Host { cgroup_id: 0 });
        ev.process = Some(Arc::new(Process {
            pid,
            exec_id: format!("b:{pid}:1"),
            parent_exec_id: Some("b:1:1".into()),
            comm: comm.into(),
            ..Default::default()
        }));
        ev.payload = Payload::FileOpen {
            path: path.into(),
            path_raw: None,
            flags,
            mode: 0o644,
            access: OpenAccess::from_flags(flags),
            ret: 3,
            repeats: 0,
        };
        ev
    }

    /// Rewrites 5 files through the rule set as `comm`; whether the rule fired.
    fn fired(comm: &str) -> bool {
        let (set, errors) = crate::load_texts(&[("r.yaml".to_string(), RULE.to_string())]);
        assert!(errors.is_empty(), "{errors:?}");
        let dir = tempfile::tempdir().unwrap();
        let mut any = false;
        for i in 0..5u64 {
            let p = dir.path().join(format!("f{i}")).display().to_string();
            std::fs::write(&p, b"plain text ".repeat(100)).unwrap();
            let read = open_event(comm, 7, i * 10 + 1, &p, 0);
            any |= !set.matching_rules(&read).is_empty();
            let mut s = 0x1234_5678_9abc_def1u64 ^ i;
            let random: Vec<u8> = (0..2048)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s >> 24) as u8
                })
                .collect();
            std::fs::write(&p, random).unwrap();
            let write = open_event(comm, 7, i * 10 + 2, &p, 0o1101);
            any |= !set.matching_rules(&write).is_empty();
        }
        any
    }

    #[test]
    fn a_detector_rule_fires_when_the_detector_decides_unless_its_exception_matches() {
        assert!(fired("encryptor"));
        assert!(!fired("backup-tool"));
    }

    #[test]
    fn detector_mappings_are_checked() {
        for (bad, why) in [
            ("    type: other\n", "unknown type"),
            ("    type: mass_rewrite\n    files: 1\n", "at least 2"),
            ("    type: mass_rewrite\n    colour: red\n", "unknown key"),
            ("    files: 3\n", "needs `type"),
            (
                "    type: mass_rewrite\n    unless: proc.name = (\n",
                "detector unless",
            ),
        ] {
            let text = format!("- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: WARNING\n  detector:\n{bad}");
            let (_, errors) = crate::load_texts(&[("r.yaml".to_string(), text)]);
            assert!(
                errors.iter().any(|e| e.to_string().contains(why)),
                "{bad:?}: {errors:?}"
            );
        }
    }
}
