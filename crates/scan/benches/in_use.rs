//! The in-use map's fold per event (crates/agent's image-scanning stage keeps one per
//! container), against one open + read + close of a file in the same run: the open
//! storm's unit of work. Run: `cargo bench -p rampart-scan --bench in_use`.
//!
//! Events are replayed as the open storm makes them (one file opened again and again)
//! and as an application start makes them (many distinct files), before the image's
//! package files are known (every new path kept) and after (only owned files kept).
//!
//! The owned set is also built the way the stage builds it, by
//! [`rampart_scan::in_use::FileLists`] over a synthetic container root with npm package
//! trees, gems and dpkg file lists on a merged-/usr root (each library listed under
//! both spellings): the cost per listed file (the worker thread's, once per image),
//! the fold against that larger set, and the first sight of each owned file (the
//! insert a distinct file costs on the stage's thread, once per container).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_scan::in_use::{FileLists, LoadedFiles, PathMap};
use rampart_scan::{Package, PackageKind};

fn package(kind: PackageKind, name: &str, location: &str) -> Package {
    Package {
        kind,
        name: name.to_string(),
        version: "1.0.0".to_string(),
        epoch: None,
        source_name: None,
        source_version: None,
        arch: Some("amd64".to_string()),
        licenses: Vec::new(),
        location: location.to_string(),
        layer: None,
        purl: String::new(),
        ecosystem: None,
    }
}

/// A container root with 200 npm packages of 50 files, 50 gems of 20 files, and 100
/// dpkg packages of 30 libraries each on a merged-/usr root; the packages.
fn synthetic_root(root: &std::path::Path) -> Vec<Package> {
    let mut packages = Vec::new();
    for p in 0..200 {
        let dir = root.join(format!("app/node_modules/pkg{p}"));
        std::fs::create_dir_all(dir.join("lib")).unwrap();
        std::fs::write(dir.join("package.json"), b"{}").unwrap();
        for f in 0..49 {
            std::fs::write(dir.join(format!("lib/file{f}.js")), b"").unwrap();
        }
        packages.push(package(
            PackageKind::Npm,
            &format!("pkg{p}"),
            &format!("app/node_modules/pkg{p}/package.json"),
        ));
    }
    let gems = root.join("usr/local/lib/ruby/gems/3.1.0");
    for g in 0..50 {
        let dir = gems.join(format!("gems/gem{g}-1.0.0/lib"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..20 {
            std::fs::write(dir.join(format!("f{f}.rb")), b"").unwrap();
        }
        packages.push(package(
            PackageKind::Gem,
            &format!("gem{g}"),
            &format!("usr/local/lib/ruby/gems/3.1.0/specifications/gem{g}-1.0.0.gemspec"),
        ));
    }
    let info = root.join("var/lib/dpkg/info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::create_dir_all(root.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
    for d in 0..100 {
        let list: String = (0..30)
            .map(|f| format!("/lib/x86_64-linux-gnu/libp{d}-{f}.so.1\n"))
            .collect();
        std::fs::write(info.join(format!("libp{d}:amd64.list")), list).unwrap();
        packages.push(package(
            PackageKind::Deb,
            &format!("libp{d}"),
            "var/lib/dpkg/status",
        ));
    }
    packages
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn per(d: Duration, n: usize) -> f64 {
    d.as_nanos() as f64 / n as f64
}

fn main() {
    let n = 200_000;
    let passes = 7;
    let file = std::env::temp_dir().join(format!("rampart-in-use-bench-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    let open = median(
        (0..passes)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..n / 4 {
                    let mut f = std::fs::File::open(&file).unwrap();
                    let mut b = [0u8; 1];
                    let _ = f.read(&mut b);
                }
                t.elapsed()
            })
            .collect(),
    );
    let _ = std::fs::remove_file(&file);
    let open_ns = per(open, n / 4);

    let storm_path = file.to_string_lossy().into_owned();
    let app_paths: Vec<String> = (0..4_000)
        .map(|i| {
            format!(
                "/usr/local/lib/python3.11/dist-packages/pkg{}/mod{i}.py",
                i % 40
            )
        })
        .collect();
    let owned: Arc<PathMap<usize>> = Arc::new(
        app_paths
            .iter()
            .take(2_000)
            .enumerate()
            .map(|(i, p)| (p.clone(), i % 40))
            .collect(),
    );
    let run = |paths: &[&str], restrict: bool| -> f64 {
        per(
            median(
                (0..passes)
                    .map(|_| {
                        let mut containers: PathMap<LoadedFiles> = PathMap::default();
                        let mut files = LoadedFiles::default();
                        if restrict {
                            files.restrict_to(Arc::clone(&owned));
                        }
                        containers.insert("c0ffee".into(), files);
                        let t = Instant::now();
                        for i in 0..n {
                            if let Some(state) = containers.get_mut("c0ffee") {
                                std::hint::black_box(state.fold(
                                    paths[i % paths.len()],
                                    i as u64,
                                    16_384,
                                ));
                            }
                        }
                        t.elapsed()
                    })
                    .collect(),
            ),
            n,
        )
    };
    // The owned set as FileLists builds it for a synthetic image.
    let root = tempfile::tempdir().unwrap();
    let packages = synthetic_root(root.path());
    let mut listed = 0usize;
    let lists_time = median(
        (0..passes)
            .map(|_| {
                let t = Instant::now();
                let mut lists = FileLists::new(root.path());
                listed = packages
                    .iter()
                    .map(|p| std::hint::black_box(lists.files(p)).map_or(0, |f| f.len()))
                    .sum();
                t.elapsed()
            })
            .collect(),
    );
    let mut lists = FileLists::new(root.path());
    let mut big: PathMap<usize> = PathMap::default();
    for (index, p) in packages.iter().enumerate() {
        for file in lists.files(p).into_iter().flatten() {
            big.entry(file).or_insert(index);
        }
    }
    let big = Arc::new(big);
    let big_paths: Vec<String> = big.keys().cloned().collect();
    // An app start touching a quarter of the owned files and as many unowned ones.
    let big_app: Vec<String> = big_paths
        .iter()
        .step_by(4)
        .cloned()
        .chain((0..big_paths.len() / 4).map(|i| format!("/etc/app/conf{i}.yaml")))
        .collect();
    let run_big = |paths: &[String]| -> f64 {
        per(
            median(
                (0..passes)
                    .map(|_| {
                        // As the stage does: the container's state looked up per event.
                        let mut containers: PathMap<LoadedFiles> = PathMap::default();
                        let mut files = LoadedFiles::default();
                        files.restrict_to(Arc::clone(&big));
                        containers.insert("c0ffee".into(), files);
                        let t = Instant::now();
                        for i in 0..n {
                            if let Some(state) = containers.get_mut("c0ffee") {
                                std::hint::black_box(state.fold(
                                    &paths[i % paths.len()],
                                    i as u64,
                                    1 << 20,
                                ));
                            }
                        }
                        t.elapsed()
                    })
                    .collect(),
            ),
            n,
        )
    };
    let storm_big = run_big(std::slice::from_ref(&storm_path));
    let app_big = run_big(&big_app);
    // First sight of each owned file: one fold per distinct file, all of them new.
    let first_sight = per(
        median(
            (0..passes)
                .map(|_| {
                    let mut files = LoadedFiles::default();
                    files.restrict_to(Arc::clone(&big));
                    let t = Instant::now();
                    for (i, path) in big_paths.iter().enumerate() {
                        std::hint::black_box(files.fold(path, i as u64, 1 << 20));
                    }
                    t.elapsed()
                })
                .collect(),
        ),
        big_paths.len(),
    );

    let storm_paths = [storm_path.as_str()];
    let app_paths: Vec<&str> = app_paths.iter().map(String::as_str).collect();
    let storm = run(&storm_paths, false);
    let storm_owned = run(&storm_paths, true);
    let app = run(&app_paths, false);
    let app_owned = run(&app_paths, true);
    println!("open + read + close          {open_ns:>8.1} ns");
    for (what, ns) in [
        ("fold, open storm", storm),
        ("fold, open storm, owned", storm_owned),
        ("fold, app start", app),
        ("fold, app start, owned", app_owned),
    ] {
        println!(
            "{what:<28} {ns:>8.1} ns/event  {:>5.2}% of an open",
            100.0 * ns / open_ns
        );
    }
    println!(
        "owned set from FileLists: {} packages, {listed} files listed, {} owned paths",
        packages.len(),
        big.len()
    );
    println!(
        "file lists (worker, per image) {:>8.1} ns per listed file",
        per(lists_time, listed.max(1))
    );
    for (what, ns) in [
        ("fold, open storm, big set", storm_big),
        ("fold, app start, big set", app_big),
        ("fold, first sight (insert)", first_sight),
    ] {
        println!(
            "{what:<28} {ns:>8.1} ns/event  {:>5.2}% of an open",
            100.0 * ns / open_ns
        );
    }
}
