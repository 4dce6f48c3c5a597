//! `rampart admission check` over manifest files as a CI step would run it, and a
//! copied `rampart` binary that carries its rule library (no source tree, no rules/).

use std::process::Command;

fn rampart() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
}

#[test]
fn admission_check_denies_and_warns_like_the_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("app.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      hostNetwork: true\n      containers:\n        - name: app\n          image: nginx:1.25\n          securityContext: {privileged: true}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    )
    .unwrap();
    let out = rampart()
        .args(["admission", "check"])
        .arg(&manifest)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Deployment shop/web: DENIED"), "{text}");
    assert!(
        text.contains("deny: container app: runs privileged [privileged]"),
        "{text}"
    );
    assert!(
        text.contains("deny: hostNetwork is set [host_namespaces]"),
        "{text}"
    );
    assert!(
        text.contains("warn: container app: image nginx:1.25 has not been scanned"),
        "{text}"
    );

    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "clauses:\n  privileged: warn\n  host_namespaces: off\n",
    )
    .unwrap();
    let out = rampart()
        .args(["admission", "check", "--policy"])
        .arg(&policy)
        .arg(&manifest)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("Deployment shop/web: allowed")
            && text.contains("warn: container app: runs privileged"),
        "{text}"
    );

    std::fs::write(&policy, "clauses:\n  privileged: maybe\n").unwrap();
    let out = rampart()
        .args(["admission", "check", "--policy"])
        .arg(&policy)
        .arg(&manifest)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("policy.yaml:2:") && err.contains("maybe"),
        "file, line and what was wrong: {err}"
    );
}

#[test]
fn a_copied_binary_carries_the_rule_library() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("rampart");
    std::fs::copy(env!("CARGO_BIN_EXE_rampart"), &copy).unwrap();
    let out = Command::new(&copy)
        .args(["rules", "list"])
        .current_dir(dir.path())
        .env("RAMPART_DATA_DIR", dir.path().join("data"))
        .env_remove("RAMPART_RULES_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let last = text.lines().last().unwrap_or("");
    let n: usize = last
        .split_whitespace()
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(n > 100, "the whole library: {last}");
    assert!(last.contains("0 error(s)"), "{last}");
    assert!(
        std::fs::read_dir(dir.path().join("data"))
            .unwrap()
            .any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("rules-builtin-")),
        "written out from the binary"
    );
}
