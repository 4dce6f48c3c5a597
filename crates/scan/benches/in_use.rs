//! The in-use map's fold per event (crates/agent's image-scanning stage keeps one per
//! container), against one open + read + close of a file in the same run: the open
//! storm's unit of work. Run: `cargo bench -p rampart-scan --bench in_use`.
//!
//! Events are replayed as the open storm makes them (one file opened again and again)
//! and as an application start makes them (many distinct files), before the image's
//! package files are known (every new path kept) and after (only owned files kept).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_scan::in_use::{LoadedFiles, PathMap};

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
}
