//! `rampart baseline …` and `rampart risk` through the binary: a profile imported from
//! YAML, listed, shown, locked, switched to protect, given an allowed and a forbidden
//! item, exported back; a bad profile refused with file, line and column and nothing
//! written; and `rampart risk` ranking a real container with SYS_ADMIN and the Docker
//! socket that has an alert above an idle one (needs Docker and
//! rampart-test/busybox; containers `base-cli-*`).

use std::process::{Command, Output};

use rampart_baseline::{BaselineStore, SqliteBaselines};

fn rampart(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const PROFILE: &str = r#"workload: compose:shop/web
mode: monitor
locked: true
observations: 120
replicas: [aaaaaaaaaaaa, bbbbbbbbbbbb]
items:
  process:
    "/usr/bin/python3.11 <- <runtime> : python3 -m http.server N":
      first_ns: 1
      last_ns: 2
      count: 40
      replicas: [aaaaaaaaaaaa, bbbbbbbbbbbb]
    "/usr/bin/nc <- <runtime> : nc -l":
      first_ns: 1
      last_ns: 2
      count: 1
      replicas: [bbbbbbbbbbbb]
  network:
    "listen tcp :8080":
      first_ns: 1
      last_ns: 2
      count: 2
      replicas: [aaaaaaaaaaaa, bbbbbbbbbbbb]
"#;

#[test]
fn profiles_import_show_lock_allow_forbid_export() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    let db = db.to_str().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, PROFILE).unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "workload: w\nmode: sometimes\n").unwrap();

    // One bad file refuses the whole import.
    let out = rampart(&[
        "baseline",
        "--db",
        db,
        "import",
        file.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2:"), "{err}");
    assert!(err.contains("expected"), "{err}");
    let list = rampart(&["baseline", "--db", db, "list", "--json"]);
    assert_eq!(stdout(&list).trim(), "[]");

    let out = rampart(&["baseline", "--db", db, "import", file.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = stdout(&rampart(&["baseline", "--db", db, "list"]));
    assert!(list.contains("compose:shop/web"), "{list}");
    assert!(list.contains("monitor (locked)"), "{list}");

    let show = stdout(&rampart(&[
        "baseline",
        "--db",
        db,
        "show",
        "compose:shop/web",
    ]));
    assert!(show.contains("http.server"), "{show}");
    assert!(
        show.contains("[one replica only]"),
        "nc was seen by one replica: {show}"
    );

    let out = rampart(&[
        "baseline",
        "--db",
        db,
        "mode",
        "compose:shop/web",
        "protect",
    ]);
    assert!(
        stdout(&out).contains("protect (locked)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        rampart(&[
            "baseline",
            "--db",
            db,
            "allow",
            "compose:shop/web",
            "process",
            "/usr/bin/curl"
        ])
        .status
        .code(),
        Some(0)
    );
    assert_eq!(
        rampart(&[
            "baseline",
            "--db",
            db,
            "forbid",
            "compose:shop/web",
            "dns",
            "evil.example"
        ])
        .status
        .code(),
        Some(0)
    );
    let bad_kind = rampart(&[
        "baseline",
        "--db",
        db,
        "allow",
        "compose:shop/web",
        "proc",
        "x",
    ]);
    assert_eq!(bad_kind.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_kind.stderr).contains("expected one of: process"));
    let missing = rampart(&["baseline", "--db", db, "lock", "nope"]);
    assert_eq!(missing.status.code(), Some(2));

    let json: serde_json::Value = serde_json::from_str(&stdout(&rampart(&[
        "baseline",
        "--db",
        db,
        "show",
        "compose:shop/web",
        "--json",
    ])))
    .unwrap();
    let origin = |item: &str| {
        json.as_array()
            .unwrap()
            .iter()
            .find(|r| r["item"] == item)
            .map(|r| (r["origin"].clone(), r["confidence"].clone()))
    };
    assert_eq!(
        origin("/usr/bin/curl"),
        Some(("allowed".into(), "high".into()))
    );
    assert_eq!(
        origin("evil.example"),
        Some(("forbidden".into(), "none".into()))
    );

    let exported = dir.path().join("out.yaml");
    let out = rampart(&[
        "baseline",
        "--db",
        db,
        "export",
        "compose:shop/web",
        "-o",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = std::fs::read_to_string(&exported).unwrap();
    assert!(
        text.contains("mode: protect") && text.contains("/usr/bin/curl"),
        "{text}"
    );
    // Into a fresh database, the export gives the same baseline.
    let db2 = dir.path().join("c.db");
    let out = rampart(&[
        "baseline",
        "--db",
        db2.to_str().unwrap(),
        "import",
        exported.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let a = SqliteBaselines::open(std::path::Path::new(db)).unwrap();
    let b = SqliteBaselines::open(&db2).unwrap();
    assert_eq!(
        a.get("compose:shop/web").unwrap().unwrap().0.items,
        b.get("compose:shop/web").unwrap().unwrap().0.items
    );
}

#[test]
fn risk_ranks_a_privileged_container_with_an_alert_above_an_idle_one() {
    let image = rampart_testbed::TEST_IMAGE;
    if !rampart_testbed::require(
        (!rampart_testbed::image_present(image))
            .then(|| format!("docker or the image {image} is missing (run scripts/setup)")),
    ) {
        return;
    }
    let pid = std::process::id();
    let admin = rampart_testbed::TestContainer::start(
        &format!("base-cli-admin-{pid}"),
        &[
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
        ],
        &[],
    );
    let idle = rampart_testbed::TestContainer::start(&format!("base-cli-idle-{pid}"), &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.db");
    {
        let store = SqliteBaselines::open(&db).unwrap();
        store
            .note_container(&admin.id, &admin.name, "compose:ops/admin", 1)
            .unwrap();
        store
            .note_container(&idle.id, &idle.name, "compose:ops/idle", 1)
            .unwrap();
        let alert: rampart_event::Alert = serde_json::from_value(serde_json::json!({
            "id": "a1", "ts_ns": rampart_event::wall_ns(), "first_ts_ns": rampart_event::wall_ns(),
            "count": 1, "rule": "Terminal shell in container", "priority": "notice",
            "message": "m", "source": "syscall",
            "event": {"schema": 1, "ts_ns": 1, "host": "h", "seq": 1,
                "container": {"type": "host"}, "kind": "lost",
                "data": {"source": "kernel", "count": 1}}
        }))
        .unwrap();
        store.record_alert("compose:ops/admin", &alert).unwrap();
    }
    let out = rampart(&[
        "risk",
        "--db",
        db.to_str().unwrap(),
        "--scanner-state",
        dir.path().to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let admin_at = text.find("compose:ops/admin").expect("admin listed");
    let idle_at = text.find("compose:ops/idle").expect("idle listed");
    assert!(admin_at < idle_at, "admin ranks first: {text}");
    assert!(
        text.contains("SYS_ADMIN") && text.contains("Docker socket"),
        "{text}"
    );
    assert!(text.contains("alerts +"), "{text}");
}
