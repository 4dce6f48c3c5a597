//! `rampart scan --malware-rules` through the binary: without the `yara` feature it
//! exits 2 with a message saying so; with it, the EICAR test file hits and trips
//! `--fail-on` (exit 1).

use std::path::PathBuf;
use std::process::Command;

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
