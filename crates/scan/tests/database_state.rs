//! A scan says when its vulnerability database is missing, empty or stale, in every
//! output format, and `--fail-on` fails on a database that could check nothing unless
//! `--allow-empty-db`.

mod common;

use common::{args, run};

fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("requirements.txt"), "requests==2.19.0\n").unwrap();
    dir
}

/// Scans `target` in `format` with the extra flags; returns the exit code and the text.
fn scan(target: &str, format: &str, extra: &[&str]) -> (i32, String) {
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut list = vec![
        target,
        "--format",
        format,
        "-o",
        out.path().to_str().unwrap(),
        "--no-secrets",
        "--no-cache",
    ];
    list.extend_from_slice(extra);
    let code = run(args(&list)).unwrap();
    (code, std::fs::read_to_string(out.path()).unwrap())
}

/// What each format says about the database: the state and the warning sentence.
fn said(format: &str, text: &str) -> (String, String) {
    if format == "table" {
        let warning = text
            .lines()
            .find_map(|l| l.strip_prefix("WARNING: "))
            .unwrap_or_default()
            .to_string();
        return (String::new(), warning);
    }
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    match format {
        "json" => (
            json["database"]["state"].as_str().unwrap().to_string(),
            String::new(),
        ),
        "sarif" => (
            json["runs"][0]["properties"]["rampart:database"]["state"]
                .as_str()
                .unwrap()
                .to_string(),
            json["runs"][0]["invocations"][0]["toolExecutionNotifications"][0]["message"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        "cyclonedx" => {
            let properties = json["metadata"]["properties"].as_array().unwrap();
            let get = |name: &str| {
                properties
                    .iter()
                    .find(|p| p["name"] == name)
                    .and_then(|p| p["value"].as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            (
                get("rampart:database:state"),
                get("rampart:database:warning"),
            )
        }
        "spdx" => {
            let comment = json["creationInfo"]["comment"]
                .as_str()
                .unwrap()
                .to_string();
            let state = comment
                .strip_prefix("vulnerability database ")
                .and_then(|rest| rest.split([':', ' ']).next())
                .unwrap_or_default()
                .to_string();
            (state, comment)
        }
        other => panic!("{other}"),
    }
}

const FORMATS: [&str; 5] = ["table", "json", "sarif", "cyclonedx", "spdx"];

#[test]
fn an_empty_database_is_said_in_every_format_and_fails_fail_on() {
    let dir = project();
    let target = dir.path().to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("vuln.db");
    drop(rampart_vulndb::VulnDb::open(&db).unwrap());
    let db = db.to_str().unwrap();
    for format in FORMATS {
        let (code, text) = scan(target, format, &["--db", db, "--fail-on", "critical"]);
        assert_eq!(code, 1, "{format}: an empty database cannot pass --fail-on");
        let (state, warning) = said(format, &text);
        if format != "table" {
            assert_eq!(state, "empty", "{format}: {text}");
        }
        if format != "json" {
            assert!(
                warning.contains("is empty") && warning.contains("rampart db update"),
                "{format}: {warning:?}"
            );
        }
        let (code, _) = scan(
            target,
            format,
            &["--db", db, "--fail-on", "critical", "--allow-empty-db"],
        );
        assert_eq!(code, 0, "{format}: accepted with --allow-empty-db");
    }
    // Without --fail-on an empty database says so and exits 0.
    let (code, text) = scan(target, "table", &["--db", db]);
    assert_eq!(code, 0);
    assert!(text.contains("Vulnerabilities: not checked."), "{text}");
    assert!(!text.contains("No known vulnerabilities found"), "{text}");
}

#[test]
fn no_database_at_all_is_said_and_fails_fail_on() {
    let dir = project();
    let target = dir.path().to_str().unwrap();
    for format in FORMATS {
        let (code, text) = scan(target, format, &["--fail-on", "critical"]);
        assert_eq!(code, 1, "{format}");
        let (state, warning) = said(format, &text);
        if format != "table" {
            assert_eq!(state, "missing", "{format}: {text}");
        }
        if format != "json" {
            assert!(
                warning.contains("no vulnerability database"),
                "{format}: {warning:?}"
            );
        }
    }
}

#[test]
fn a_stale_database_is_said_and_a_current_one_is_not() {
    let dir = project();
    let target = dir.path().to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let db_path = data.path().join("vuln.db");
    let advisory = common::fixtures().join("advisories/pypi/vulns/requests/PYSEC-2018-28.yaml");
    rampart_vulndb::VulnDb::open(&db_path)
        .unwrap()
        .import(&advisory)
        .unwrap();
    let db = db_path.to_str().unwrap();

    for format in FORMATS {
        let (_, text) = scan(target, format, &["--db", db]);
        let (state, warning) = said(format, &text);
        if format != "table" {
            assert_eq!(state, "current", "{format}: {text}");
        }
        if format != "json" && format != "spdx" {
            assert!(warning.is_empty(), "{format}: {warning}");
        }
    }
    // A database older than the allowed age (0 days here, a second after the import)
    // is stale; it still matched, so --fail-on judges the findings, not the database.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for format in FORMATS {
        let (code, text) = scan(
            target,
            format,
            &[
                "--db",
                db,
                "--max-db-age-days",
                "0",
                "--fail-on",
                "critical",
            ],
        );
        assert_eq!(
            code, 0,
            "{format}: nothing critical, a stale database is a warning"
        );
        let (state, warning) = said(format, &text);
        if format != "table" {
            assert_eq!(state, "stale", "{format}: {text}");
        }
        if format != "json" {
            assert!(
                warning.contains("is stale") && warning.contains("more than 0 days"),
                "{format}: {warning:?}"
            );
        }
    }
}
