//! schemathesis (from PyPI; `scripts/setup` installs it in /var/cache/rampart/venv)
//! fuzzes the served /openapi.json against a real server (TLS, SQLite with alerts,
//! an admin token, so writes are tried too): no 5xx, no crash, and the server still
//! answers afterwards. Operations documented as not implemented yet (501) and the
//! never-ending event streams are left out; everything else is fuzzed. Skips when
//! schemathesis is missing, fails in CI.

mod support;

use std::process::Command;

use rampart_event::Priority;
use support::{alert, Server, SEC, T0};

fn schemathesis() -> String {
    std::env::var("RAMPART_SCHEMATHESIS")
        .unwrap_or_else(|_| "/var/cache/rampart/venv/bin/schemathesis".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error() {
    let bin = schemathesis();
    if !rampart_testbed::tool_ready(&bin, &["--version"], "scripts/setup installs it") {
        return;
    }
    let s = Server::start().await;
    let alerts: Vec<_> = (0..50u64)
        .map(|i| {
            alert(
                &format!("a{i}"),
                T0 + i * SEC,
                &format!("rule-{}", i % 5),
                Priority::ALL[(i % 8) as usize],
                Some(&format!("c{}", i % 3)),
            )
        })
        .collect();
    s.ingest("node-a", &alerts);
    let addr = s.server.local_addr;
    let mut cmd = Command::new(&bin);
    cmd.arg("run")
        .arg(format!("https://{addr}/openapi.json"))
        .args(["--tls-verify"])
        .arg(&s.cert)
        .args(["-H", &format!("Authorization: Bearer {}", s.admin)])
        .args(["--checks", "not_a_server_error"])
        .args([
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--request-timeout",
            "10",
            "--workers",
            "2",
        ])
        .args(["--exclude-operation-id", "StreamAlerts"])
        .args(["--exclude-operation-id", "StreamEvents"])
        // Its cache of failures goes to the test's temporary directory, not the tree.
        .current_dir(s.dir.path())
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    for r in rampart_api::http::routes() {
        if r.unimplemented {
            cmd.args(["--exclude-operation-id", r.rpc]);
        }
    }
    // schemathesis itself now and then stops on an internal error (under Python 3.11:
    // "SystemError: AST constructor recursion depth mismatch" while it builds test
    // data). Such a run found nothing about the server, so it is run once more; a
    // server error (ST101) is never retried.
    let mut cmd = Some(cmd);
    let mut stdout = String::new();
    for attempt in 1..=2 {
        let mut c = cmd.take().unwrap();
        let (out, c) = tokio::task::spawn_blocking(move || (c.output(), c))
            .await
            .unwrap();
        cmd = Some(c);
        let out = out.unwrap();
        stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("{stdout}\n{stderr}");
        if out.status.success() {
            break;
        }
        let tool_error = !stdout.contains("Server error")
            && (stdout.contains("Runtime Error") || stdout.contains("SystemError"));
        assert!(
            tool_error && attempt == 1,
            "schemathesis failed: {stdout}\n{stderr}"
        );
    }
    // It tested something, and the server survived it.
    assert!(stdout.contains("passed"), "{stdout}");
    let c = s.client(Some(&s.viewer));
    assert_eq!(
        c.request("GET", "/v1/alerts", None).await.unwrap().status,
        200
    );
    s.server.stop().await;
}
