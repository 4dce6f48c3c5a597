//! The response object against the real kernel, without Docker: a cgroup v2 directory
//! of our own, children moved into it, connects refused and execs killed there, and
//! everything released. Pins go under a directory of this test's own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use rampart_bpf::response::{ExecEnforcement, ExecPolicy, NetPolicy, NetRule, ResponseGuard};

fn cgroup2_root() -> Option<PathBuf> {
    rampart_bpf::probe().cgroup_v2_mount.map(PathBuf::from)
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

/// Exec denial with whichever enforcement this kernel allows (BPF LSM's -EPERM where
/// it loads, else SIGKILL at sched_process_exec), needing nothing but a shell: the
/// kernel matrix runs it in the Debian guests, where LSM is expected
/// (`RAMPART_EXPECT_BPF_LSM=1`), and this host takes the signal path. Two copies of
/// one program under different paths: the denied one never runs its first
/// instruction (no marker), the allowed one does.
#[test]
fn denied_exec_never_runs_its_first_instruction_with_the_enforcement_the_kernel_allows() {
    if !rampart_testbed::kernel_ready() {
        return;
    }
    let Some(root) = cgroup2_root() else {
        rampart_testbed::skip_or_fail("no cgroup2 mount");
        return;
    };
    rampart_bpf::mount_kernel_filesystems().expect("bpffs");
    let id = std::process::id();
    let dirs = Dirs {
        cgroup: root.join(format!("rampart-respond-exectest-{id}")),
        pins: PathBuf::from(format!("/sys/fs/bpf/rampart-respond-exectest-{id}")),
    };
    std::fs::create_dir_all(&dirs.cgroup).expect("cgroup");
    let work = tempfile_dir(&format!("rampart-respond-exec-{id}"));
    // coreutils' touch on a full system, busybox (by its argv[0]) in the guest.
    let touch = std::fs::canonicalize("/bin/touch").expect("touch");
    let (denied, allowed) = (work.join("denied/touch"), work.join("allowed/touch"));
    for copy in [&denied, &allowed] {
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(&touch, copy).expect("copy touch");
    }
    let marker = |name: &str| work.join(format!("marker-{name}"));

    let mut guard = ResponseGuard::open_at(&dirs.pins).expect("open");
    let (available, why_not_lsm) = ResponseGuard::available_exec_enforcement();
    eprintln!("exec enforcement available: {available:?} ({why_not_lsm:?})");
    let cgid = rampart_bpf::response::cgroup_id(&dirs.cgroup).expect("cgroup id");
    let enforcement = guard
        .deny_exec(
            cgid,
            &ExecPolicy {
                deny_upper_layer: false,
                deny_paths: vec![denied.display().to_string()],
            },
        )
        .expect("deny exec");
    eprintln!("exec denial in force: {enforcement:?}");
    assert_eq!(guard.exec_enforcement(), Some(enforcement));
    if std::env::var_os("RAMPART_EXPECT_BPF_LSM").is_some_and(|v| v == "1") {
        assert_eq!(
            available,
            ExecEnforcement::Lsm,
            "the probe does not report BPF LSM: {why_not_lsm:?}"
        );
        assert_eq!(enforcement, ExecEnforcement::Lsm, "LSM did not attach");
    }

    let out = run_in(
        &dirs.cgroup,
        &format!("exec {} {}", denied.display(), marker("denied").display()),
    );
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !marker("denied").exists(),
        "the denied exec ran and wrote its marker"
    );
    let stats = guard.stats(cgid).expect("stats");
    match enforcement {
        ExecEnforcement::Lsm => {
            // execve returned EPERM: the shell reports it and exits 126, no signal.
            assert_eq!(out.status.code(), Some(126), "{out:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not permitted"), "{err}");
            assert_eq!((stats.exec_denied, stats.exec_killed), (1, 0), "{stats:?}");
        }
        ExecEnforcement::Signal => {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&out.status),
                Some(9),
                "{out:?}"
            );
            assert_eq!((stats.exec_denied, stats.exec_killed), (0, 1), "{stats:?}");
        }
    }

    // The same program under another path runs, in the same cgroup.
    let out = run_in(
        &dirs.cgroup,
        &format!("exec {} {}", allowed.display(), marker("allowed").display()),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(marker("allowed").exists(), "the allowed exec did not run");

    assert!(guard.release_exec(cgid).expect("release"));
    assert_eq!(guard.exec_enforcement(), None, "exec hook left attached");
    let out = run_in(
        &dirs.cgroup,
        &format!("exec {} {}", denied.display(), marker("denied").display()),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(marker("denied").exists(), "released, yet still denied");
    let _ = std::fs::remove_dir_all(&work);
}

/// A fresh directory under the temp dir.
fn tempfile_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

/// Rules marked `action: kill` as the kernel runs them (bpf/response/kill.h, open.h),
/// needing only a shell and `unshare`: the kill programs act on tasks in a pid
/// namespace below the host's, so the processes run under `unshare -p -f`. An open
/// of a path under the rule's prefix and an exec of the rule's path never reach the
/// next command (no marker); other paths, and the same open in the host's pid
/// namespace, go on. The kernel matrix runs it in the Debian guests too.
#[test]
fn exec_and_open_kills_stop_the_caller_in_a_child_pid_namespace_only() {
    if !rampart_testbed::kernel_ready()
        || !rampart_testbed::tool_ready("unshare", &["--help"], "apt-get install util-linux")
    {
        return;
    }
    use rampart_bpf::response::{KernelKills, KillOpen, OpenMatch};
    rampart_bpf::mount_kernel_filesystems().expect("bpffs");
    let id = std::process::id();
    let pins = PathBuf::from(format!("/sys/fs/bpf/rampart-respond-killtest-{id}"));
    let _dirs = Dirs {
        cgroup: PathBuf::from(format!("/nonexistent/rampart-killtest-{id}")),
        pins: pins.clone(),
    };
    let work = tempfile_dir(&format!("rampart-respond-kill-{id}"));
    std::fs::create_dir_all(work.join("secret")).unwrap();
    std::fs::write(work.join("secret/key"), "k").unwrap();
    std::fs::write(work.join("other"), "o").unwrap();
    let touch = std::fs::canonicalize("/bin/touch").expect("touch");
    let killed_exe = work.join("kx/touch");
    std::fs::create_dir_all(killed_exe.parent().unwrap()).unwrap();
    std::fs::copy(&touch, &killed_exe).expect("copy touch");

    let mut guard = ResponseGuard::open_at(&pins).expect("open");
    guard
        .set_kernel_kills(&KernelKills {
            exec_paths: vec![(killed_exe.display().to_string(), 21)],
            opens: vec![KillOpen {
                path: format!("{}/", work.join("secret").display()),
                matches: OpenMatch::Prefix,
                syscalls: vec![],
                read: false,
                write: false,
                regular_only: false,
                rule: 22,
            }],
            ..KernelKills::default()
        })
        .expect("kernel kills");
    let w = work.display();
    let marker = |n: u32| work.join(format!("m{n}"));
    let in_child_ns = |script: &str| {
        Command::new("unshare")
            .args(["-p", "-f", "sh", "-c", script])
            .output()
            .expect("unshare runs")
    };
    // The shell's redirection opens the file; its next command writes the marker.
    let out = in_child_ns(&format!("exec 3< {w}/secret/key; touch {w}/m1"));
    assert!(!marker(1).exists(), "the killed open returned: {out:?}");
    let out = in_child_ns(&format!("cd {w}/secret && exec 3< key; touch {w}/m2"));
    assert!(!marker(2).exists(), "a relative open returned: {out:?}");
    let out = in_child_ns(&format!("exec 3< {w}/other; touch {w}/m3"));
    assert!(marker(3).exists(), "another path was killed: {out:?}");
    let out = in_child_ns(&format!("{} {w}/m4", killed_exe.display()));
    assert!(!marker(4).exists(), "the killed exec ran: {out:?}");
    // The host's own processes are never killed.
    let out = run_host(&format!("exec 3< {w}/secret/key; touch {w}/m5"));
    assert!(marker(5).exists(), "a host process was killed: {out:?}");
    assert!(guard.kernel_kill_count(22) >= 2);
    assert!(guard.kernel_kill_count(21) >= 1);

    guard.release_kernel_kills().expect("release");
    let out = in_child_ns(&format!("exec 3< {w}/secret/key; touch {w}/m6"));
    assert!(marker(6).exists(), "released, yet killed: {out:?}");
    let left: Vec<_> = std::fs::read_dir(pins.join("links"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "links left pinned: {left:?}");
    let _ = std::fs::remove_dir_all(&work);
}

fn run_host(script: &str) -> std::process::Output {
    Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("sh runs")
}
