//! The response object against the real kernel, without Docker: a cgroup v2 directory
//! of our own, children moved into it, connects refused and execs killed there, and
//! everything released. Pins go under a directory of this test's own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_bpf::response::{ExecPolicy, NetPolicy, NetRule, ResponseGuard};

fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        let (_, point, ty) = (it.next()?, it.next()?, it.next()?);
        (ty == "cgroup2").then(|| PathBuf::from(point))
    })
}

/// Runs `script` with sh in `cgroup` (it moves itself there first).
fn run_in(cgroup: &Path, script: &str) -> std::process::Output {
    let full = format!("echo $$ > {}/cgroup.procs && {script}", cgroup.display());
    Command::new("sh")
        .args(["-c", &full])
        .output()
        .expect("sh runs")
}

fn connects(cgroup: &Path, port: u16) -> bool {
    let py = format!("import socket; socket.create_connection(('127.0.0.1', {port}), 2).close()");
    run_in(cgroup, &format!("exec python3 -c \"{py}\""))
        .status
        .success()
}

struct Dirs {
    cgroup: PathBuf,
    pins: PathBuf,
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.cgroup);
        let _ = std::fs::remove_dir_all(&self.pins);
    }
}

#[test]
fn connects_refused_and_execs_killed_in_a_guarded_cgroup_until_released() {
    if !rampart_testbed::kernel_ready()
        || !rampart_testbed::tool_ready("python3", &["-c", "pass"], "apt-get install python3")
    {
        return;
    }
    let Some(root) = cgroup2_root() else {
        rampart_testbed::skip_or_fail("no cgroup2 mount");
        return;
    };
    rampart_bpf::mount_kernel_filesystems().expect("bpffs");
    let id = std::process::id();
    let dirs = Dirs {
        cgroup: root.join(format!("rampart-respond-bpftest-{id}")),
        pins: PathBuf::from(format!("/sys/fs/bpf/rampart-respond-test-{id}")),
    };
    std::fs::create_dir_all(&dirs.cgroup).expect("cgroup");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});

    let mut guard = ResponseGuard::open_at(&dirs.pins).expect("open");
    assert!(connects(&dirs.cgroup, port), "connect before any guard");

    // Block the destination: refused at connect().
    let cgid = guard
        .guard_network(
            &dirs.cgroup,
            &NetPolicy {
                deny: vec![NetRule {
                    ports: vec![port],
                    ..NetRule::host("127.0.0.1".parse().unwrap())
                }],
                ..NetPolicy::default()
            },
        )
        .expect("guard");
    assert!(!connects(&dirs.cgroup, port), "blocked destination");
    assert!(guard.stats(cgid).unwrap().connect_refused >= 1);

    // Quarantine: loopback allowed or not.
    let q = |allow_loopback| NetPolicy {
        quarantine: true,
        allow_loopback,
        ..NetPolicy::default()
    };
    guard
        .guard_network(&dirs.cgroup, &q(true))
        .expect("quarantine");
    assert!(connects(&dirs.cgroup, port), "quarantine keeps loopback");
    guard
        .guard_network(&dirs.cgroup, &q(false))
        .expect("quarantine");
    assert!(!connects(&dirs.cgroup, port), "quarantine without loopback");

    // A second guard (rampart restarted) sees the same state through the pins.
    drop(guard);
    assert!(
        !connects(&dirs.cgroup, port),
        "pinned links outlive the loader"
    );
    let mut guard = ResponseGuard::open_at(&dirs.pins).expect("reopen");
    assert_eq!(guard.guarded().unwrap().len(), 1);

    // Exec denial by path, resolved in the kernel (/bin is a link to /usr/bin on
    // merged-/usr systems: the kernel sees the file's real path).
    let marker = std::env::temp_dir().join(format!("rampart-respond-marker-{id}"));
    let _ = std::fs::remove_file(&marker);
    let touch = std::fs::canonicalize("/bin/touch").expect("touch");
    let enforcement = guard
        .deny_exec(
            cgid,
            &ExecPolicy {
                deny_upper_layer: false,
                deny_paths: vec![touch.display().to_string()],
            },
        )
        .expect("deny exec");
    eprintln!("exec denial: {enforcement:?}");
    let out = run_in(
        &dirs.cgroup,
        &format!("exec /bin/touch {}", marker.display()),
    );
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(9),
        "{out:?}"
    );
    assert!(!marker.exists(), "the denied exec wrote its marker");
    assert_eq!(guard.stats(cgid).unwrap().exec_killed, 1);
    // Another binary still runs.
    let out = run_in(&dirs.cgroup, "exec /bin/true");
    assert!(out.status.success(), "{out:?}");

    let released = guard.release_all().expect("release");
    assert_eq!(released.cgroups, vec![cgid]);
    assert!(guard.guarded().unwrap().is_empty());
    assert!(connects(&dirs.cgroup, port), "connect after release");
    let out = run_in(
        &dirs.cgroup,
        &format!("exec /bin/touch {}", marker.display()),
    );
    assert!(out.status.success());
    assert!(marker.exists());
    let _ = std::fs::remove_file(&marker);
    assert_eq!(
        std::fs::read_dir(dirs.pins.join("links")).unwrap().count(),
        0,
        "links left pinned"
    );
}
