//! `rampart db import|stats` through the same clap types the `rampart` binary embeds.

use std::path::PathBuf;

use clap::Parser;
use rampart_vulndb::cli::{default_db_path, run, DbArgs};
use rampart_vulndb::VulnDb;

#[derive(Parser)]
#[command(name = "rampart")]
struct Rampart {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    Db(DbArgs),
}

fn db_args(args: &[&str]) -> DbArgs {
    let mut argv = vec!["rampart", "db"];
    argv.extend_from_slice(args);
    match Rampart::try_parse_from(argv).unwrap().command {
        Command::Db(args) => args,
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-vulndb-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn import_then_stats_on_the_crates_fixture() {
    let dir = temp_dir("import");
    let db_file = dir.join("sub/vuln.db");
    let fixtures = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/advisories/crates"
    );
    let code = run(db_args(&[
        "import",
        fixtures,
        "--db",
        db_file.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(code, 0);
    let code = run(db_args(&[
        "stats",
        "--json",
        "--db",
        db_file.to_str().unwrap(),
    ]))
    .unwrap();
    assert_eq!(code, 0);
    let stats = VulnDb::open(&db_file).unwrap().stats().unwrap();
    assert!(stats.advisories > 1000, "{stats:?}");
    assert_eq!(stats.ecosystems.len(), 1);
    assert_eq!(stats.ecosystems[0].0, "crates.io");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_import_fails_on_a_malformed_file_but_keeps_the_rest() {
    let dir = temp_dir("strict");
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("bad.json"), "[{\"id\": ").unwrap();
    std::fs::write(
        src.join("good.json"),
        r#"{"id": "X-1", "modified": "2024-01-01T00:00:00Z", "affected": [{"package": {"ecosystem": "npm", "name": "x"}, "versions": ["1.0.0"]}]}"#,
    )
    .unwrap();
    let db_file = dir.join("vuln.db");
    let db = db_file.to_str().unwrap();
    assert_eq!(
        run(db_args(&[
            "import",
            src.to_str().unwrap(),
            "--db",
            db,
            "--strict"
        ]))
        .unwrap(),
        1
    );
    assert_eq!(
        run(db_args(&["import", src.to_str().unwrap(), "--db", db])).unwrap(),
        0
    );
    assert_eq!(
        VulnDb::open(&db_file).unwrap().stats().unwrap().advisories,
        1
    );
    // A missing path is an error, not a silent success.
    assert!(run(db_args(&[
        "import",
        dir.join("missing").to_str().unwrap(),
        "--db",
        db
    ]))
    .is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn default_path_honours_rampart_data_dir() {
    // The only test in this binary that touches the environment.
    std::env::set_var("RAMPART_DATA_DIR", "/tmp/rampart-data-dir-test");
    assert_eq!(
        default_db_path(),
        PathBuf::from("/tmp/rampart-data-dir-test/vuln.db")
    );
    std::env::remove_var("RAMPART_DATA_DIR");
    let fallback = default_db_path();
    assert!(
        fallback == std::path::Path::new("/var/lib/rampart/vuln.db")
            || fallback.ends_with(".local/share/rampart/vuln.db"),
        "{fallback:?}"
    );
}
