//! Benchmark: SBOM plus vulnerability matching (rampart-vulndb, loaded with the PyPI,
//! Go and crates.io OSV fixtures) of a Debian image, cold and warm (per-layer cache),
//! plus the peak resident memory. Baselines measured in the same run: one plain
//! single-threaded pass over the layers (gunzip + sha256 of each), the least any cold
//! scan must do, with the scanner's primitives (flate2 on zlib-rs, ring) and with the
//! pure-Rust ones it used before (miniz_oxide, sha2).
//!
//! Image, three gzip layers: a debootstrap root filesystem (`$RAMPART_DEBIAN_ROOTFS`, a
//! directory or a tar; by default the tar `scripts/build-debian-image` caches under
//! `${RAMPART_CACHE:-/var/cache/rampart}/debian-12/`; without one, os-release + dpkg
//! status + 60 MB of /usr/bin from this machine), then this machine's
//! /usr/lib/python3/dist-packages and /usr/lib/node_modules. The same image is also
//! scanned with uncompressed layers, as `docker save` writes them (baseline: sha256 alone).
//!
//! Run: `cargo bench -p rampart-scan --bench scan`. Targets: cold < 2 s, warm < 200 ms.
//! The machine is shared: the load average is printed before and after.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use rampart_scan::output::{render, Format};
use rampart_scan::scanner::{scan, ScanOptions, Target};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn layer_from_dir(
    builder: &mut tar::Builder<Vec<u8>>,
    source: &Path,
    inside: &str,
    budget: &mut u64,
) {
    let mut stack = vec![source.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let relative = path.strip_prefix(source).unwrap();
            let name = format!("{inside}/{}", relative.display());
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.len() > *budget {
                    continue;
                }
                if let Ok(mut file) = std::fs::File::open(&path) {
                    *budget -= meta.len();
                    let _ = builder.append_file(&name, &mut file);
                }
            }
        }
    }
}

fn file_layer(files: &[(&str, Vec<u8>)]) -> tar::Builder<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut header = tar::Header::new_gnu();
        header.set_path(path).unwrap();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append(&header, data.as_slice()).unwrap();
    }
    builder
}

/// The base layer and a description of where it came from.
fn base_layer() -> (Vec<u8>, String) {
    let cached = Path::new(
        &std::env::var_os("RAMPART_CACHE").unwrap_or_else(|| "/var/cache/rampart".into()),
    )
    .join("debian-12/rootfs.tar");
    let root = std::env::var_os("RAMPART_DEBIAN_ROOTFS")
        .map(std::path::PathBuf::from)
        .or_else(|| cached.is_file().then_some(cached));
    if let Some(root) = root {
        if root.is_file() {
            return (
                std::fs::read(&root).unwrap(),
                format!("debootstrap tar {}", root.display()),
            );
        }
        let mut builder = tar::Builder::new(Vec::new());
        builder.follow_symlinks(false);
        builder.append_dir_all(".", &root).unwrap();
        return (
            builder.into_inner().unwrap(),
            format!("debootstrap tree {}", root.display()),
        );
    }
    let mut base = file_layer(&[
        ("etc/os-release", std::fs::read("/etc/os-release").unwrap()),
        (
            "var/lib/dpkg/status",
            std::fs::read("/var/lib/dpkg/status").unwrap(),
        ),
    ]);
    let mut budget = 60 << 20;
    layer_from_dir(&mut base, Path::new("/usr/bin"), "usr/bin", &mut budget);
    (
        base.into_inner().unwrap(),
        "synthesised from this machine (no debootstrap tree; run scripts/build-debian-image)"
            .into(),
    )
}

fn synthesize_layers() -> (Vec<Vec<u8>>, String) {
    let (base, origin) = base_layer();
    let mut python = tar::Builder::new(Vec::new());
    let mut unlimited = u64::MAX;
    layer_from_dir(
        &mut python,
        Path::new("/usr/lib/python3/dist-packages"),
        "usr/lib/python3/dist-packages",
        &mut unlimited,
    );
    let mut node = tar::Builder::new(Vec::new());
    layer_from_dir(
        &mut node,
        Path::new("/usr/lib/node_modules"),
        "usr/lib/node_modules",
        &mut unlimited,
    );
    (
        vec![
            base,
            python.into_inner().unwrap(),
            node.into_inner().unwrap(),
        ],
        origin,
    )
}

/// A `docker save` archive of `layers`, stored as `blobs` (gzip or the tars themselves).
fn docker_save(layers: &[Vec<u8>], blobs: &[Vec<u8>]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = serde_json::to_vec(
        &serde_json::json!({"rootfs": {"type": "layers", "diff_ids": diff_ids}}),
    )
    .unwrap();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut paths = Vec::new();
    for (i, blob) in blobs.iter().enumerate() {
        let path = format!("{:064x}/layer.tar", i + 1);
        files.push((path.clone(), blob.clone()));
        paths.push(path);
    }
    files.push(("config.json".into(), config));
    files.push(("manifest.json".into(), serde_json::to_vec(&serde_json::json!([{"Config": "config.json", "RepoTags": ["bench:1"], "Layers": paths}])).unwrap()));
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, d)| (p.as_str(), d.clone())).collect();
    file_layer(&refs).into_inner().unwrap()
}

/// CPU time (user + system, all threads) this process has used, in seconds: on a shared
/// machine it varies far less with load than the wall time does.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    // USER_HZ is 100 on Linux.
    ticks.iter().sum::<f64>() / 100.0
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn peak_rss_kib() -> u64 {
    status_kib("VmHWM:")
}

/// Child mode: one cold scan (no cache, no matching) of the image named by
/// `RAMPART_SCAN_BENCH_ONE`, then its peak resident memory on stdout, so the figure is the
/// scan's alone and not the bench's copies of the test image.
fn child_scan() -> bool {
    let Some(image) = std::env::var_os("RAMPART_SCAN_BENCH_ONE") else {
        return false;
    };
    let target = Target::ImageArchive(image.into());
    let report = scan(&target, "bench", &ScanOptions::default()).unwrap();
    std::hint::black_box(render(&report, Format::Cyclonedx).unwrap());
    println!("{}", peak_rss_kib());
    true
}

fn peak_rss_of_one_scan(image: &Path) -> u64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RAMPART_SCAN_BENCH_ONE", image)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}

fn main() {
    if child_scan() {
        return;
    }
    let load_before = load_average();
    let (layers, origin) = synthesize_layers();
    let uncompressed: usize = layers.iter().map(Vec::len).sum();
    let compressed: Vec<Vec<u8>> = layers.iter().map(|l| gzip(l)).collect();
    let archive = docker_save(&layers, &compressed);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.tar");
    std::fs::write(&image, &archive).unwrap();
    let archive_bytes = archive.len();
    drop(archive);
    // What `docker save` itself writes: uncompressed layers.
    let plain_image = dir.path().join("plain.tar");
    std::fs::write(&plain_image, docker_save(&layers, &layers)).unwrap();

    // Streaming, as the scanner reads: 128 KiB at a time through gunzip into sha256.
    let baseline_pass = || {
        let start = Instant::now();
        for blob in &compressed {
            let mut decoder = flate2::read::GzDecoder::new(blob.as_slice());
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            let mut buf = vec![0u8; 128 << 10];
            loop {
                let n = std::io::Read::read(&mut decoder, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                context.update(&buf[..n]);
            }
            std::hint::black_box(context.finish());
        }
        start.elapsed().as_secs_f64()
    };
    let hash_only_pass = || {
        let start = Instant::now();
        for layer in &layers {
            std::hint::black_box(ring::digest::digest(&ring::digest::SHA256, layer));
        }
        start.elapsed().as_secs_f64()
    };
    let old_primitives_pass = || {
        let start = Instant::now();
        for blob in &compressed {
            // GzEncoder writes a 10-byte header and an 8-byte trailer around raw deflate.
            let out = miniz_oxide::inflate::decompress_to_vec(&blob[10..blob.len() - 8]).unwrap();
            std::hint::black_box(sha256(&out));
        }
        start.elapsed().as_secs_f64()
    };

    let fixtures = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/advisories"
    ));
    let db_path = dir.path().join("vuln.db");
    let start = Instant::now();
    let mut db = rampart_vulndb::VulnDb::open(&db_path).unwrap();
    let mut advisories = 0;
    for ecosystem in ["pypi", "go", "crates"] {
        advisories += db
            .import(fixtures.join(ecosystem))
            .map(|r| r.added)
            .unwrap_or(0);
    }
    drop(db);
    let import_time = start.elapsed().as_secs_f64();
    let mut matcher = rampart_scan::vuln::OsvDatabase::open(&db_path, None).unwrap();

    let options = ScanOptions {
        cache_root: Some(dir.path().join("cache")),
        ..ScanOptions::default()
    };
    let target = Target::ImageArchive(image.clone());
    let mut cold_times = Vec::new();
    let mut cold_cpu = Vec::new();
    let mut warm_times = Vec::new();
    let mut packages = 0;
    let mut vulnerabilities = 0;
    let mut baseline_times = Vec::new();
    let mut old_primitive_times = Vec::new();
    let mut hash_only_times = Vec::new();
    let mut plain_times = Vec::new();
    let mut secrets_times = Vec::new();
    // What `rampart scan` does by default: the built-in secret rules over every file.
    let with_secrets = ScanOptions {
        cache_root: None,
        content_scanner: Some(std::sync::Arc::new(
            rampart_scan::SecretContentScanner::builtin(),
        )),
        ..ScanOptions::default()
    };
    let plain_target = Target::ImageArchive(plain_image.clone());
    for round in 0..3 {
        baseline_times.push(baseline_pass());
        old_primitive_times.push(old_primitives_pass());
        hash_only_times.push(hash_only_pass());
        let _ = std::fs::remove_dir_all(dir.path().join("cache"));
        let start = Instant::now();
        let mut report = scan(&plain_target, "bench", &options).unwrap();
        rampart_scan::vuln::match_report(&mut report, &mut matcher).unwrap();
        std::hint::black_box(render(&report, Format::Cyclonedx).unwrap());
        plain_times.push(start.elapsed().as_secs_f64());
        let start = Instant::now();
        let mut report = scan(&target, "bench", &with_secrets).unwrap();
        rampart_scan::vuln::match_report(&mut report, &mut matcher).unwrap();
        std::hint::black_box(render(&report, Format::Cyclonedx).unwrap());
        secrets_times.push(start.elapsed().as_secs_f64());
        let _ = std::fs::remove_dir_all(dir.path().join("cache"));
        let start = Instant::now();
        let cpu_start = cpu_seconds();
        let mut report = scan(&target, "bench", &options).unwrap();
        rampart_scan::vuln::match_report(&mut report, &mut matcher).unwrap();
        vulnerabilities = report.vulnerabilities.len();
        let sbom = render(&report, Format::Cyclonedx).unwrap();
        cold_times.push(start.elapsed().as_secs_f64());
        cold_cpu.push(cpu_seconds() - cpu_start);
        packages = report.packages.len();
        std::hint::black_box(sbom);
        let start = Instant::now();
        let report = scan(&target, "bench", &options).unwrap();
        assert!(
            report.target.layers.iter().all(|l| l.cached),
            "round {round}: warm scan used the cache"
        );
        let sbom = render(&report, Format::Cyclonedx).unwrap();
        warm_times.push(start.elapsed().as_secs_f64());
        std::hint::black_box(sbom);
    }
    let best = |v: &[f64]| v.iter().cloned().fold(f64::INFINITY, f64::min);
    let cold = best(&cold_times);
    let cpu = best(&cold_cpu);
    let warm = best(&warm_times);
    let baseline = best(&baseline_times);
    let old_baseline = best(&old_primitive_times);
    let hash_only = best(&hash_only_times);
    let plain = best(&plain_times);
    let secrets = best(&secrets_times);
    println!(
        "load average before: {load_before}; after: {}",
        load_average()
    );
    println!("base layer: {origin}");
    println!(
        "image: {} layers, {:.1} MB uncompressed, {:.1} MB archive, {packages} packages",
        layers.len(),
        uncompressed as f64 / 1e6,
        archive_bytes as f64 / 1e6
    );
    println!(
        "vulnerability db: {advisories} OSV records imported in {import_time:.1} s (not timed below); {vulnerabilities} matches"
    );
    println!(
        "baseline, one thread, gunzip (flate2/zlib-rs) + sha256 (ring) of all layers: {:.0} ms (best of 3)",
        baseline * 1e3
    );
    println!(
        "baseline with the previous primitives, gunzip (miniz_oxide) + sha256 (sha2): {:.0} ms (best of 3)",
        old_baseline * 1e3
    );
    println!(
        "cold scan + matching + CycloneDX: {:.0} ms (best of 3; {:.2}x baseline; target < 2000 ms)",
        cold * 1e3,
        cold / baseline
    );
    println!(
        "cold scan CPU time: {:.0} ms over all threads (best of 3; {:.2}x the one-thread baseline's wall time)",
        cpu * 1e3,
        cpu / baseline
    );
    println!(
        "uncompressed layers (as docker save writes them): cold scan + matching + CycloneDX {:.0} ms; baseline sha256 (ring) of all layers {:.0} ms (best of 3)",
        plain * 1e3,
        hash_only * 1e3
    );
    println!(
        "cold scan with the built-in secret rules (rampart scan's default): {:.0} ms (best of 3)",
        secrets * 1e3
    );
    println!(
        "warm scan + matching + CycloneDX: {:.0} ms (best of 3; target < 200 ms)",
        warm * 1e3
    );
    println!(
        "peak RSS of a cold scan in its own process: {} MiB (gzip layers), {} MiB (uncompressed layers)",
        peak_rss_of_one_scan(&image) / 1024,
        peak_rss_of_one_scan(&plain_image) / 1024
    );
}
