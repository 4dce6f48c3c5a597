//! Where secret-scanning time goes, in CPU time on one core: the whole config,
//! and each rule's regex alone: its speed over the corpus and the time it
//! costs behind the keyword pre-filter (speed × share of bytes that reach it).
//!
//! Run: `cargo run --release -p rampart-secrets --example profile_rules -- [CONFIG] [TREE] [MB]`

use std::path::PathBuf;

use rampart_secrets::SecretScanner;

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec passed by pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let config_path = args.get(1).cloned().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/secrets/gitleaks.toml"
        )
        .to_string()
    });
    let tree = args.get(2).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/registry/src")
    });
    let budget: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(16) << 20;

    let Ok(text) = std::fs::read_to_string(&config_path) else {
        eprintln!("cannot read {config_path}");
        std::process::exit(2);
    };
    let mut corpus = Vec::new();
    let mut total = 0;
    for entry in walkdir::WalkDir::new(&tree).sort_by_file_name() {
        let Ok(entry) = entry else { continue };
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        total += bytes.len();
        corpus.push((entry.path().display().to_string(), bytes));
        if total >= budget {
            break;
        }
    }
    println!(
        "corpus {:.1} MB, {} files",
        total as f64 / 1e6,
        corpus.len()
    );

    let time_scanner = |scanner: &SecretScanner| {
        let before = thread_cpu_seconds();
        let mut findings = 0;
        for (path, bytes) in &corpus {
            findings += scanner.scan(path, bytes).len();
        }
        (thread_cpu_seconds() - before, findings)
    };
    let Ok(full) = SecretScanner::from_gitleaks_toml(&text) else {
        eprintln!("{config_path} does not load");
        std::process::exit(2);
    };
    let (full_seconds, full_findings) = time_scanner(&full);
    println!(
        "all rules: {full_seconds:.2}s CPU, {:.1} MB/s, {full_findings} findings",
        total as f64 / 1e6 / full_seconds
    );

    // Each rule's regex alone, on the files the pre-filter would give it.
    let Ok(table) = text.parse::<toml::Table>() else {
        return;
    };
    let lowered: Vec<Vec<u8>> = corpus.iter().map(|(_, b)| b.to_ascii_lowercase()).collect();
    let mut costs = Vec::new();
    for rule in table
        .get("rules")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
    {
        let id = rule.get("id").and_then(|v| v.as_str()).unwrap_or("?");
        let Some(pattern) = rule.get("regex").and_then(|v| v.as_str()) else {
            continue;
        };
        let Ok(regex) = rampart_secrets::compile_gitleaks_regex(pattern) else {
            continue;
        };
        let keywords: Vec<String> = rule
            .get("keywords")
            .and_then(|k| k.as_array())
            .into_iter()
            .flatten()
            .filter_map(|k| k.as_str().map(str::to_lowercase))
            .collect();
        // Bytes the pre-filter lets through to this rule.
        let passed: usize = corpus
            .iter()
            .zip(&lowered)
            .filter(|(_, lower)| {
                keywords.is_empty()
                    || keywords
                        .iter()
                        .any(|k| lower.windows(k.len()).any(|w| w == k.as_bytes()))
            })
            .map(|((_, bytes), _)| bytes.len())
            .sum();
        costs.push((passed, id.to_string(), regex));
    }
    keyword_prefilter_costs(&table, &corpus, total);

    // Regex speed over the whole corpus, scaled to the share it really runs on.
    let mut timed = Vec::new();
    for (passed, id, regex) in costs {
        let before = thread_cpu_seconds();
        let mut matches = 0;
        for (_, bytes) in &corpus {
            matches += regex.find_iter(bytes).count();
        }
        let seconds = thread_cpu_seconds() - before;
        let share = passed as f64 / total as f64;
        timed.push((
            seconds * share,
            id,
            matches,
            total as f64 / 1e6 / seconds,
            share,
        ));
    }
    timed.sort_by(|a, b| b.0.total_cmp(&a.0));
    let sum: f64 = timed.iter().map(|t| t.0).sum();
    println!("estimated regex time behind the pre-filter: {sum:.2}s");
    for (seconds, id, matches, rate, share) in timed.iter().take(25) {
        println!(
            "{seconds:>7.3}s  {rate:>8.1} MB/s  runs on {:>3.0}% of bytes  {id} ({matches} matches)",
            share * 100.0
        );
    }
}

/// Cost of the keyword pre-filter alone, in the forms considered.
fn keyword_prefilter_costs(table: &toml::Table, corpus: &[(String, Vec<u8>)], total: usize) {
    use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
    let mut keywords: Vec<String> = table
        .get("rules")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|rule| rule.get("keywords").and_then(|k| k.as_array()))
        .flatten()
        .filter_map(|k| k.as_str().map(str::to_lowercase))
        .collect();
    keywords.sort();
    keywords.dedup();
    let Ok(insensitive) = AhoCorasick::builder()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::Standard)
        .kind(Some(AhoCorasickKind::DFA))
        .build(&keywords)
    else {
        return;
    };
    let before = thread_cpu_seconds();
    let mut matches = 0usize;
    for (_, bytes) in corpus {
        matches += insensitive.find_overlapping_iter(bytes).count();
    }
    let seconds = thread_cpu_seconds() - before;
    println!(
        "keywords: {} distinct; case-insensitive overlapping AC: {:.1} MB/s, {} matches",
        keywords.len(),
        total as f64 / 1e6 / seconds,
        matches
    );
}
