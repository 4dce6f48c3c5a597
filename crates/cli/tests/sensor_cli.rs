//! The `rampart` binary end to end: probe, sensor to a file with filters, and a full
//! disk for the output. Needs root and dockerd: skips with the reason elsewhere, fails
//! in CI.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "rampart-test/busybox:latest";

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rampart")
}

fn ready() -> bool {
    rampart_testbed::ready(IMAGE)
}

/// Starts `rampart sensor` and waits until it says it is running.
fn start_sensor(args: &[&str]) -> Child {
    let mut child = Command::new(bin())
        .arg("sensor")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("rampart starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[sensor] {line}");
            if line.contains("sensor running") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("sensor reports running");
    child
}

fn stop(mut child: Child) {
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "sensor exited with {status}");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("sensor did not stop on SIGTERM");
}

fn read_events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn probe_reports_capabilities() {
    if !ready() {
        return;
    }
    let out = Command::new(bin())
        .args(["probe", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["btf"], true);
    assert_eq!(v["ring_buffer"], true);
    assert!(v["kernel"].as_str().is_some_and(|k| !k.is_empty()));
}

#[test]
fn probe_refuses_clearly_when_not_root() {
    // nobody cannot load BPF: the probe must say so, not panic.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "probe",
        ])
        .output();
    let Ok(out) = out else {
        rampart_testbed::skip_or_fail("setpriv (util-linux) unavailable");
        return;
    };
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("must run as root"), "{err}");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin(),
            "sensor",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must run as root"));
}

#[test]
fn sensor_writes_filtered_container_events_to_a_file() {
    if !ready() {
        return;
    }
    let dir = tempdir();
    let out = dir.join("events.jsonl");
    let name = "rampart-cli-filter";
    let sensor = start_sensor(&[
        "--kind",
        "file_open,exec",
        "--container",
        name,
        "--open-repeat-window-ms",
        "300",
        "-o",
        out.to_str().unwrap(),
    ]);
    rampart_testbed::remove_container(name);
    let st = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--name",
            name,
            IMAGE,
            "sh",
            "-c",
            "cat /etc/passwd >/dev/null; ls /; \
             i=0; while [ $i -lt 20 ]; do read x < /etc/hostname; i=$((i+1)); done; \
             sleep 0.5; read x < /etc/hostname",
        ])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_secs(1));
    stop(sensor);
    let events = read_events(&out);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "file_open" && e["data"]["path"] == "/etc/passwd"),
        "no open of /etc/passwd in {} events",
        events.len()
    );
    assert!(events.iter().any(|e| e["kind"] == "exec"));
    // The shell's 20 reads within the window make one event; the read after it
    // carries the 19 folded in between.
    let repeats: Vec<u64> = events
        .iter()
        .filter(|e| e["kind"] == "file_open" && e["data"]["path"] == "/etc/hostname")
        .map(|e| e["data"]["repeats"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(repeats, vec![0, 19]);
    for e in &events {
        let kind = e["kind"].as_str().unwrap();
        assert!(
            matches!(kind, "file_open" | "exec" | "lost"),
            "{kind} passed the filter"
        );
        if kind != "lost" {
            assert_eq!(e["container"]["name"], name);
        }
    }
}

#[test]
fn full_output_disk_is_reported_and_survived() {
    if !ready() {
        return;
    }
    let dir = tempdir();
    let mnt = dir.join("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .unwrap()
        .success();
    assert!(ok, "mounting a small tmpfs");
    let out = mnt.join("events.jsonl");
    let mut child = Command::new(bin())
        .args([
            "sensor",
            "--kind",
            "exec,file_open",
            "--stats",
            "--stats-interval",
            "1",
            "-o",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Activity until the 64 KiB fill up (the sensor may take seconds to load on a
    // loaded machine, so wait for the disk to be full rather than for a fixed time),
    // then a second more of it, which the sensor must drop.
    let activity = || {
        let _ = Command::new("/bin/cat")
            .arg("/etc/hostname")
            .stdout(Stdio::null())
            .status();
    };
    let full = |path: &Path| std::fs::metadata(path).map_or(0, |m| m.len()) > 56 * 1024;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !full(&out) && Instant::now() < deadline {
        activity();
    }
    assert!(full(&out), "the sensor wrote 56 KiB of events within 60 s");
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        activity();
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "sensor died on a full disk"
    );
    // Free space: writing resumes and the gap is marked (wait for the mark).
    std::fs::write(&out, b"").unwrap();
    let marked = |events: &[serde_json::Value]| {
        events.iter().any(|e| {
            e["kind"] == "lost"
                && e["data"]["source"] == "output"
                && e["data"]["count"].as_u64() > Some(0)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marked(&read_events(&out)) && Instant::now() < deadline {
        activity();
    }
    // One more stats interval, so the last stats line counts the drops.
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: kill with a valid pid and signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let events = read_events(&out);
    let _ = Command::new("umount").arg(&mnt).status();
    assert!(output.status.success());
    assert!(marked(&events), "the gap is marked once writing resumes");
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains("cannot write events"),
        "no error report: {err}"
    );
    let last_stats = err
        .lines()
        .filter_map(|l| l.strip_prefix("rampart stats: "))
        .next_back()
        .expect("stats printed");
    let stats: serde_json::Value = serde_json::from_str(last_stats).unwrap();
    assert!(stats["output_drops"].as_u64().unwrap() > 0, "{stats}");
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rampart-cli-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An unknown syscall hook is refused before anything loads, naming the choices.
#[test]
fn an_unknown_syscall_hook_is_refused_with_the_choices() {
    let out = Command::new(bin())
        .args(["sensor", "--syscall-hook", "kprobes"])
        .output()
        .expect("rampart runs");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown syscall hook \"kprobes\"")
            && stderr.contains("auto, fexit, syscall_tracepoints, sys_exit"),
        "{stderr}"
    );
}
