//! `rampart scan --malware-rules` through the binary: without the `yara` feature it
//! exits 2 with a message saying so; with it, the EICAR test file hits and trips
//! `--fail-on` (exit 1).

use std::path::PathBuf;
use std::process::Command;

/// Creates an empty vulnerability database the way `rampart db` would.
fn rampart_vulndb_open(path: &std::path::Path) {
    let output = Command::new(bin())
        .args(["db", "--db"])
        .arg(path)
        .args(["stats", "--json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

/// A scratch directory removed on drop (this crate has no tempfile dependency).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A project holding the EICAR file and a benign neighbour, and a rules file for EICAR
/// (a hex string made from the bytes).
fn setup() -> (Scratch, PathBuf, PathBuf) {
    let temp = Scratch(std::env::temp_dir().join(format!(
        "rampart-scan-cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    )));
    let project = temp.0.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("eicar.com"),
        rampart_secrets::eicar_test_file(),
    )
    .unwrap();
    std::fs::write(project.join("readme.txt"), "an ordinary file\n").unwrap();
    let hex: Vec<String> = rampart_secrets::eicar_test_file()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let rules = temp.0.join("eicar.yar");
    std::fs::write(
        &rules,
        format!(
            "rule Test_EICAR {{ strings: $e = {{ {} }} condition: $e at 0 and filesize <= 128 }}\n",
            hex.join(" ")
        ),
    )
    .unwrap();
    (temp, project, rules)
}

#[test]
fn scan_with_malware_rules() {
    let (_temp, project, rules) = setup();
    let output = Command::new(bin())
        .args([
            "scan",
            "--no-cache",
            "--format",
            "json",
            "--fail-on",
            "high",
        ])
        .arg("--malware-rules")
        .arg(&rules)
        .arg(&project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if cfg!(feature = "yara") {
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let hits: Vec<(&str, &str)> = report["content_findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["rule_id"].as_str().unwrap(), f["path"].as_str().unwrap()))
            .collect();
        assert_eq!(hits, [("Test_EICAR", "eicar.com")]);
    } else {
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(output.stdout.is_empty());
        assert!(
            stderr.contains("--malware-rules") && stderr.contains("without YARA support"),
            "{stderr}"
        );
    }
}

/// The flags reach the scan job: format, output file, the fail-on threshold (exit 1)
/// and the notes on standard error; bad values and bad targets exit 2.
#[test]
fn scan_flags_output_and_exit_codes() {
    let (_temp, project, _rules) = setup();
    let token = format!("ghp_{}", "Zx8Kq2Lm9Rt4Vw7Yb3Nc6Hd1Jf5Gs0Pa8Ue2");
    std::fs::write(
        project.join("settings.conf"),
        format!("export GITHUB_TOKEN={token}\n"),
    )
    .unwrap();
    let report = project.join("report.json");
    // The default database lives here: none at first.
    let data = project.with_file_name("data");
    let output = Command::new(bin())
        .env("RAMPART_DATA_DIR", &data)
        .args([
            "scan",
            "--no-cache",
            "--format",
            "json",
            "--fail-on",
            "high",
            "-o",
        ])
        .arg(&report)
        .arg(&project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(output.stdout.is_empty(), "the report goes to the file");
    assert!(
        stderr.contains("warning: no vulnerability database: no package was checked"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&report).unwrap();
    assert!(!text.contains(&token), "secrets are redacted");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(json["content_findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["rule_id"] == "github-pat" && f["severity"] == "high"));

    // Without secrets and with no database, --fail-on fails: nothing could be checked.
    let output = Command::new(bin())
        .env("RAMPART_DATA_DIR", &data)
        .args(["scan", "--no-cache", "--no-secrets", "--fail-on", "low"])
        .arg(&project)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--allow-empty-db"), "{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("WARNING: no vulnerability database") && stdout.contains("not checked"),
        "{stdout}"
    );

    // Accepting that, nothing trips; the table goes to standard output.
    let output = Command::new(bin())
        .env("RAMPART_DATA_DIR", &data)
        .args([
            "scan",
            "--no-cache",
            "--no-secrets",
            "--fail-on",
            "low",
            "--allow-empty-db",
        ])
        .arg(&project)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(!output.stdout.is_empty());

    // The default database is used when it exists: an empty one is said to be empty.
    rampart_vulndb_open(&data.join("vuln.db"));
    let output = Command::new(bin())
        .env("RAMPART_DATA_DIR", &data)
        .args([
            "scan",
            "--no-cache",
            "--no-secrets",
            "--format",
            "json",
            "--fail-on",
            "low",
        ])
        .arg(&project)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["database"]["state"], "empty", "{json}");

    for (args, expected) in [
        (
            vec!["--fail-on", "severe"],
            "invalid value 'severe' for '--fail-on <SEVERITY>': unknown severity \"severe\": expected unknown, low, medium, high or critical",
        ),
        (vec!["--format", "yaml"], "invalid value 'yaml' for '--format <FORMAT>'"),
        (vec!["--store-sbom"], "--db <FILE>"),
    ] {
        let output = Command::new(bin())
            .arg("scan")
            .args(&args)
            .arg(&project)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let missing = project.join("no-such-image.tar");
    std::fs::write(&missing, b"not a tar at all").unwrap();
    let output = Command::new(bin())
        .args(["scan", "--no-cache"])
        .arg(&missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("rampart: scanning ") && stderr.contains("no-such-image.tar"),
        "{stderr}"
    );
}
