//! The `rampart outputs` subcommands, driven as the CLI will drive them.

use std::path::PathBuf;

use rampart_notify::cli::{self, OutputsArgs, OutputsCommand, RenderFormat};
use rampart_notify::encode::EncodeContext;

fn example_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/outputs.example.yaml"))
}

async fn run(command: OutputsCommand) -> i32 {
    cli::run(OutputsArgs { command }).await.unwrap()
}

#[tokio::test]
async fn validate_accepts_the_example_and_rejects_a_typo() {
    assert_eq!(
        run(OutputsCommand::Validate {
            file: example_path()
        })
        .await,
        0
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "sinks:\n  - type: stdout\n    formt: json\n").unwrap();
    assert_eq!(run(OutputsCommand::Validate { file: bad }).await, 2);
    let missing = dir.path().join("missing.yaml");
    assert_eq!(run(OutputsCommand::Validate { file: missing }).await, 2);
}

#[tokio::test]
async fn test_command_delivers_a_sample_alert_to_a_file() {
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
    assert_eq!(run(OutputsCommand::Test { file: Some(config) }).await, 0);
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
    assert_eq!(run(OutputsCommand::Test { file: Some(down) }).await, 1);
}

#[tokio::test]
async fn render_reads_an_alert_file_and_rejects_junk() {
    let dir = tempfile::tempdir().unwrap();
    let alert_file = dir.path().join("alert.json");
    std::fs::write(
        &alert_file,
        serde_json::to_string(&cli::sample_alert()).unwrap(),
    )
    .unwrap();
    let render = |alert| OutputsCommand::Render {
        format: RenderFormat::Falco,
        alert,
    };
    assert_eq!(run(render(Some(alert_file))).await, 0);
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, "{\"rule\": 1}").unwrap();
    assert_eq!(run(render(Some(junk))).await, 2);
}

#[test]
fn render_produces_each_format() {
    let alert = cli::sample_alert();
    let ctx = EncodeContext::default();
    let check = |f: RenderFormat, prefix: &str| {
        let out = cli::render(f, &alert, &ctx);
        assert!(out.starts_with(prefix), "{f:?}: {out}");
    };
    check(RenderFormat::Json, "{\"id\":");
    check(RenderFormat::Falco, "{\"hostname\":");
    check(RenderFormat::Ocsf, "{");
    check(RenderFormat::Cef, "CEF:0|Rampart|Rampart|");
    check(RenderFormat::Syslog, "<133>1 "); // local0 × 8 + notice (5)
    check(RenderFormat::Slack, "{");
    check(RenderFormat::Splunk, "{\"time\":");
    let text = cli::render(RenderFormat::Text, &alert, &ctx);
    assert!(text.contains(": Notice Test alert"), "{text}");
}
