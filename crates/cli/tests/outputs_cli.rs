//! `rampart outputs` through the binary: validate, example, render and test, with their
//! exit codes (0 ok, 1 an alert lost, 2 bad input).

use std::process::{Command, Output};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap()
}

fn example_path() -> String {
    format!(
        "{}/../notify/outputs.example.yaml",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn validate_accepts_the_example_and_rejects_a_typo() {
    let ok = rampart(&["outputs", "validate", &example_path()]);
    assert_eq!(ok.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(stdout.contains(" output(s) OK\n"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "sinks:\n  - type: stdout\n    formt: json\n").unwrap();
    let output = rampart(&["outputs", "validate", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("bad.yaml:"));
    let missing = dir.path().join("missing.yaml");
    let output = rampart(&["outputs", "validate", missing.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn example_prints_the_shipped_example() {
    let output = rampart(&["outputs", "example"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        std::fs::read_to_string(example_path()).unwrap()
    );
}

#[test]
fn test_command_delivers_a_sample_alert_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts.jsonl");
    let config = dir.path().join("outputs.yaml");
    std::fs::write(
        &config,
        format!(
            "sinks:\n  - type: file\n    path: {}\n    format: ocsf\n",
            out.display()
        ),
    )
    .unwrap();
    let output = rampart(&["outputs", "test", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["class_uid"], 2004);
    assert_eq!(v["finding_info"]["title"], "Rampart test alert");

    // A receiver that is down: the test reports the loss with exit code 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = dir.path().join("down.yaml");
    std::fs::write(
        &down,
        format!("sinks:\n  - type: syslog\n    protocol: tcp\n    address: 127.0.0.1:{port}\n"),
    )
    .unwrap();
    let output = rampart(&["outputs", "test", down.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn render_reads_an_alert_file_and_rejects_junk() {
    let dir = tempfile::tempdir().unwrap();
    // The built-in sample, as JSON, read back from a file.
    let sample = rampart(&["outputs", "render", "--format", "json"]);
    assert_eq!(sample.status.code(), Some(0));
    let alert_file = dir.path().join("alert.json");
    std::fs::write(&alert_file, &sample.stdout).unwrap();
    let output = rampart(&["outputs", "render", "--alert", alert_file.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(0));
    let falco: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        falco["rule"], "Rampart test alert",
        "falco is the default format"
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"rule\": 1}").unwrap();
    let output = rampart(&["outputs", "render", "--alert", junk.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let output = rampart(&["outputs", "render", "--format", "yaml"]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap refuses an unknown format"
    );
}
