//! `rampart db import|stats` through the binary: flags, output and exit codes (0 ok, 1
//! `--strict` with unreadable files, 3 `--fail-on-new` with new findings, 2 errors).

use std::path::Path;
use std::process::{Command, Output};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap()
}

fn fixture(path: &str) -> String {
    format!(
        "{}/../../../shared/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

#[test]
fn import_then_stats_on_the_crates_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("sub/vuln.db");
    let db = db_file.to_str().unwrap();
    let import = rampart(&["db", "import", &fixture("advisories/crates"), "--db", db]);
    let stdout = String::from_utf8_lossy(&import.stdout);
    assert_eq!(code(&import), Some(0), "{stdout}");
    assert!(stdout.starts_with("imported "), "{stdout}");
    assert!(
        stdout.contains("\nre-matched 0 of 0 stored SBOMs"),
        "{stdout}"
    );
    // `--db` is global: accepted before the subcommand too.
    let stats = rampart(&["db", "--db", db, "stats", "--json"]);
    assert_eq!(code(&stats), Some(0));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["advisories"].as_u64().unwrap() > 1000, "{stats}");
    assert_eq!(stats["ecosystems"][0][0], "crates.io");
    let text = rampart(&["db", "stats", "--db", db]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with(&format!("database {db}\n")), "{text}");
}

#[test]
fn strict_import_fails_on_a_malformed_file_but_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("bad.json"), "[{\"id\": ").unwrap();
    std::fs::write(
        src.join("good.json"),
        r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1.0.0"]}]}"#,
    )
    .unwrap();
    let db_file = dir.path().join("vuln.db");
    let db = db_file.to_str().unwrap();
    let src = src.to_str().unwrap();
    assert_eq!(
        code(&rampart(&["db", "import", src, "--db", db, "--strict"])),
        Some(1)
    );
    assert_eq!(code(&rampart(&["db", "import", src, "--db", db])), Some(0));
    // A missing path is an error (exit 2, named), not a silent success.
    let missing = dir.path().join("missing");
    let output = rampart(&["db", "import", missing.to_str().unwrap(), "--db", db]);
    assert_eq!(code(&output), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("rampart: ") && stderr.contains("missing"),
        "{stderr}"
    );
}

#[test]
fn fail_on_new_exits_3_when_an_import_adds_findings() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("vuln.db");
    let requests = rampart_vulndb::PackageRef {
        ecosystem: "PyPI".into(),
        name: "requests".into(),
        version: "2.19.0".into(),
        source_name: None,
        purl: "pkg:pypi/requests@2.19.0".into(),
    };
    rampart_vulndb::VulnDb::open(&db_file)
        .unwrap()
        .store_sbom("shop:1@sha256:aaaa", &[requests])
        .unwrap();
    let advisory = fixture("advisories/pypi/vulns/requests/PYSEC-2018-28.yaml");
    let db = db_file.to_str().unwrap();
    let args = ["db", "import", &advisory, "--db", db, "--fail-on-new"];
    let first = rampart(&args);
    assert_eq!(code(&first), Some(3), "a new finding trips --fail-on-new");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("\nNEW "), "{stdout}");
    assert!(
        stdout.contains("PYSEC-2018-28 in shop:1@sha256:aaaa"),
        "{stdout}"
    );
    // Unchanged records: nothing new.
    assert_eq!(code(&rampart(&args)), Some(0));
    assert!(Path::new(db).exists());
}

/// `rampart db update` through the binary: a server without the export (404) and an
/// unreachable one both exit 2 with the URL and the reason, and the database that was
/// there keeps answering. (Downloads, ETags and integrity checks are tested in
/// rampart-vulndb's `tests/update.rs` against a local server.)
#[test]
fn update_failures_exit_2_and_leave_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("vuln.db");
    let db = db_file.to_str().unwrap();
    let import = rampart(&["db", "import", &fixture("advisories/crates"), "--db", db]);
    assert_eq!(code(&import), Some(0));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let missing = rampart(&[
        "db",
        "update",
        "--db",
        db,
        "--base-url",
        &base,
        "--ecosystem",
        "crates.io",
    ]);
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(code(&missing), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{base}/crates.io/all.zip: server answered 404")),
        "{stderr}"
    );

    // Nothing listens on port 1.
    let unreachable = rampart(&[
        "db",
        "update",
        "--db",
        db,
        "--base-url",
        "http://127.0.0.1:1",
        "--ecosystem",
        "Red Hat",
    ]);
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(code(&unreachable), Some(2), "{stderr}");
    assert!(
        stderr.contains("http://127.0.0.1:1/Red%20Hat/all.zip"),
        "{stderr}"
    );

    let stats = rampart(&["db", "--db", db, "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert!(stats["advisories"].as_u64().unwrap() > 1000, "{stats}");
}
