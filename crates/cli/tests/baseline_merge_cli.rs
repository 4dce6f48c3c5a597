//! `rampart baseline merge` through the binary: two nodes' baseline databases (filled by
//! `rampart baseline import`, as a node's would be) merged into one profile, which a
//! third node imports: what both nodes learned is normal there, what one node of the two
//! learned is low, what one node forbade stays forbidden; a bad `--from` is refused.

use std::process::{Command, Output};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap()
}

fn node_profile(replica: &str, extra: &str) -> String {
    format!(
        r#"workload: compose:shop/web
mode: monitor
locked: true
observations: 50
replicas: [{replica}]
items:
  process:
    "/usr/bin/python3.11 <- <runtime> : python3 -m http.server N":
      first_ns: 1
      last_ns: 2
      count: 20
      replicas: [{replica}]
{extra}"#
    )
}

fn import(db: &str, file: &std::path::Path) {
    let out = rampart(&["baseline", "--db", db, "import", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_nodes_baselines_merge_into_a_profile_a_third_node_imports() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (a_db, b_db, c_db) = (path("a.db"), path("b.db"), path("c.db"));
    let a_yaml = dir.path().join("a.yaml");
    std::fs::write(
        &a_yaml,
        node_profile(
            "aaaaaaaaaaaa",
            r#"    "/usr/bin/nc <- <runtime> : nc -l":
      first_ns: 1
      last_ns: 2
      count: 9
      replicas: [aaaaaaaaaaaa]
  network:
    "out tcp 10.0.0.9:22":
      first_ns: 1
      last_ns: 2
      count: 3
      replicas: [aaaaaaaaaaaa]
      origin: forbidden
"#,
        ),
    )
    .unwrap();
    let b_yaml = dir.path().join("b.yaml");
    std::fs::write(
        &b_yaml,
        node_profile(
            "bbbbbbbbbbbb",
            r#"  network:
    "out tcp 10.0.0.9:22":
      first_ns: 1
      last_ns: 2
      count: 5
      replicas: [bbbbbbbbbbbb]
"#,
        ),
    )
    .unwrap();
    import(&a_db, &a_yaml);
    import(&b_db, &b_yaml);

    let merged = dir.path().join("merged.yaml");
    let out = rampart(&[
        "baseline",
        "merge",
        "compose:shop/web",
        "--from",
        &format!("node-a={a_db}"),
        "--from",
        &format!("node-b={b_db}"),
        "-o",
        merged.to_str().unwrap(),
    ]);
    let summary = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{summary}");
    eprintln!("{summary}");
    assert!(
        summary.contains("node-a: 20 by 1, node-b: 20 by 1"),
        "what each node saw: {summary}"
    );

    import(&c_db, &merged);
    let out = rampart(&[
        "baseline",
        "--db",
        &c_db,
        "show",
        "compose:shop/web",
        "--json",
    ]);
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let row = |item: &str| {
        rows.iter()
            .find(|r| r["item"] == item)
            .unwrap_or_else(|| panic!("{item} in {rows:#?}"))
            .clone()
    };
    let server = row("/usr/bin/python3.11 <- <runtime> : python3 -m http.server N");
    assert_eq!(server["count"], 40);
    assert_eq!(server["confidence"], "high");
    assert_eq!(
        row("/usr/bin/nc <- <runtime> : nc -l")["confidence"],
        "low",
        "one node of two"
    );
    let ssh = row("out tcp 10.0.0.9:22");
    assert_eq!(ssh["origin"], "forbidden");
    assert_eq!(ssh["confidence"], "none");

    let out = rampart(&["baseline", "merge", "compose:shop/web", "--from", &a_db]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("expected NODE=FILE"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
