//! Secret-scanning throughput on a real source tree, one core.
//!
//! Reads up to `RAMPART_BENCH_MB` (default 200) MB of files from
//! `RAMPART_BENCH_TREE` (default `~/.cargo/registry/src`) into memory, then
//! scans them with gitleaks' 222 rules (the shared fixture) and with Rampart's
//! built-in rules:
//! - keyword pre-filter (what `SecretScanner::scan` does), on the whole corpus;
//! - baseline: every regex on every file (`scan_without_prefilter`), on the
//!   first `RAMPART_BENCH_BASELINE_MB` (default 16) MB, and the pre-filter on
//!   that same subset for a like-for-like ratio.
//!
//! Throughput is MB per CPU-second of the scanning thread ("per core"), with
//! wall-clock figures beside it (those drop when other work shares the cores).
//!
//! Run: `cargo bench -p rampart-secrets --bench secrets`

use std::path::PathBuf;
use std::time::Instant;

use rampart_secrets::{SecretFinding, SecretScanner};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/secrets/gitleaks.toml"
);

/// Files larger than this are not typical source files; skip them.
const MAX_FILE_BYTES: u64 = 4 << 20;

fn env_mb(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_corpus(root: &PathBuf, budget: usize) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut total = 0usize;
    let mut stack = vec![root.clone()];
    // Sorted depth-first walk: the same tree gives the same corpus every run.
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries.into_iter().rev() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.len() > MAX_FILE_BYTES {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                total += bytes.len();
                let relative = path.strip_prefix(root).unwrap_or(&path);
                files.push((relative.display().to_string(), bytes));
                if total >= budget {
                    return files;
                }
            }
        }
    }
    files
}

/// CPU time of this thread: on a shared machine, wall time mostly measures
/// the other processes; MB per CPU-second is "per core" throughput.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec passed by pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// Returns (MB per CPU-second, MB per wall-second, bytes, findings).
fn run(
    scanner: &SecretScanner,
    corpus: &[(String, Vec<u8>)],
    prefilter: bool,
) -> (f64, f64, usize, Vec<SecretFinding>) {
    let bytes: usize = corpus.iter().map(|(_, b)| b.len()).sum();
    let cpu_start = thread_cpu_seconds();
    let start = Instant::now();
    let mut findings = Vec::new();
    for (path, content) in corpus {
        if prefilter {
            findings.extend(scanner.scan(path, content));
        } else {
            findings.extend(scanner.scan_without_prefilter(path, content));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = thread_cpu_seconds() - cpu_start;
    let megabytes = bytes as f64 / 1e6;
    (megabytes / cpu, megabytes / wall, bytes, findings)
}

fn main() {
    let root = std::env::var_os("RAMPART_BENCH_TREE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/registry/src")))
        .unwrap_or_else(|| PathBuf::from("."));
    let budget = env_mb("RAMPART_BENCH_MB", 200) << 20;
    let baseline_budget = env_mb("RAMPART_BENCH_BASELINE_MB", 16) << 20;

    let load_start = Instant::now();
    let corpus = load_corpus(&root, budget);
    let corpus_bytes: usize = corpus.iter().map(|(_, b)| b.len()).sum();
    println!(
        "corpus: {} files, {:.1} MB from {} (loaded in {:.1}s)",
        corpus.len(),
        corpus_bytes as f64 / 1e6,
        root.display(),
        load_start.elapsed().as_secs_f64()
    );
    let mut subset = Vec::new();
    let mut subset_bytes = 0;
    for file in &corpus {
        if subset_bytes >= baseline_budget {
            break;
        }
        subset_bytes += file.1.len();
        subset.push(file.clone());
    }

    let fixture = match std::fs::read_to_string(FIXTURE) {
        Ok(text) => Some(text),
        Err(error) => {
            println!("gitleaks fixture not readable ({error}); benchmarking built-in rules only");
            None
        }
    };
    let mut rule_sets = Vec::new();
    if let Some(text) = fixture {
        match SecretScanner::from_gitleaks_toml(&text) {
            Ok(scanner) => rule_sets.push(("gitleaks fixture", scanner)),
            Err(error) => println!("gitleaks fixture failed to load: {error}"),
        }
    }
    rule_sets.push(("rampart builtin", SecretScanner::builtin()));

    for (name, scanner) in &rule_sets {
        println!("\n== {name}: {} rules ==", scanner.rule_count());
        let (full_cpu, full_wall, full_bytes, full_findings) = run(scanner, &corpus, true);
        println!(
            "keyword pre-filter, full corpus    : {:>7.1} MB/s per core ({:>6.1} MB/s wall; {:.1} MB, {} findings)",
            full_cpu,
            full_wall,
            full_bytes as f64 / 1e6,
            full_findings.len()
        );
        let (pre_cpu, pre_wall, pre_bytes, pre_findings) = run(scanner, &subset, true);
        let (base_cpu, base_wall, _, base_findings) = run(scanner, &subset, false);
        println!(
            "keyword pre-filter, {:>5.1} MB subset: {:>7.1} MB/s per core ({:>6.1} MB/s wall; {} findings)",
            pre_bytes as f64 / 1e6,
            pre_cpu,
            pre_wall,
            pre_findings.len()
        );
        println!(
            "baseline, every regex on that subset: {:>7.1} MB/s per core ({:>6.1} MB/s wall; {} findings)",
            base_cpu,
            base_wall,
            base_findings.len()
        );
        println!(
            "speed-up from the pre-filter        : {:>7.1}x",
            pre_cpu / base_cpu
        );
    }
}
