//! Loads the real programs into the running kernel and checks records arrive.
//! Needs root and BTF; skips with a reason elsewhere, fails in CI.

use rampart_bpf::netflow::{KernelFlow, NetflowProbe};
use rampart_bpf::wire::{kind, Record};
use rampart_bpf::{ActiveSyscallHook, LoadOptions, SyscallHook};

/// Runs a shell script in a child process (the loader ignores this test's own).
fn run_sh(script: &str) {
    let status = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .status()
        .expect("sh");
    assert!(status.success(), "{script}");
}

/// Load options with the test bed's object (the fresh build under scripts/test).
fn test_options() -> LoadOptions {
    LoadOptions {
        object: rampart_testbed::bpf_object(),
        ..Default::default()
    }
}

fn can_run() -> bool {
    rampart_testbed::kernel_ready()
}

/// The hook syscall events use by default: fexit where the kernel accepts BPF
/// trampolines, else sys_exit where 32-bit syscalls are watched (it sees them itself),
/// else the syscalls' exit tracepoints, else the sys_exit tracepoint.
fn default_hook() -> ActiveSyscallHook {
    let features = rampart_bpf::probe();
    if features.fentry {
        return ActiveSyscallHook::Fexit;
    }
    eprintln!(
        "this kernel refuses BPF trampolines ({}): the fexit hook cannot run here",
        features.trampoline_refusal.unwrap_or_default()
    );
    if features.ia32_emulation {
        eprintln!(
            "32-bit syscalls need sys_exit here: it is the default, before syscall tracepoints"
        );
        ActiveSyscallHook::SysExit
    } else if features.syscall_tracepoints {
        ActiveSyscallHook::SyscallTracepoints
    } else {
        eprintln!("this kernel has no syscall tracepoints: the default is sys_exit");
        ActiveSyscallHook::SysExit
    }
}

/// Every hook delivers the same records; the default picks the cheapest the kernel
/// allows.
#[test]
fn loads_and_sees_exec_and_open() {
    if !can_run() {
        return;
    }
    let _ = env_logger::builder().is_test(true).try_init();
    let default = default_hook();
    let mut cases = vec![
        (SyscallHook::Auto, default),
        (SyscallHook::SysExit, ActiveSyscallHook::SysExit),
    ];
    if default == ActiveSyscallHook::Fexit {
        cases.push((SyscallHook::Fexit, ActiveSyscallHook::Fexit));
    }
    if rampart_bpf::probe().syscall_tracepoints {
        cases.push((
            SyscallHook::SyscallTracepoints,
            ActiveSyscallHook::SyscallTracepoints,
        ));
    }
    for (hook, expect) in cases {
        let started = std::time::Instant::now();
        let mut sensor = rampart_bpf::load(&LoadOptions {
            syscall_hook: hook,
            ..test_options()
        })
        .expect("load");
        eprintln!("{hook:?}: loaded and attached in {:?}", started.elapsed());
        assert_eq!(sensor.syscall_hook, expect, "{:?}", sensor.warnings);
        // A fallback from the default says why, one reason per hook it passed over.
        let passed_over = match (hook, expect) {
            (SyscallHook::Auto, ActiveSyscallHook::SyscallTracepoints) => 1,
            // Beside 32-bit syscalls, sys_exit comes before the tracepoints.
            (SyscallHook::Auto, ActiveSyscallHook::SysExit)
                if rampart_bpf::probe().ia32_emulation =>
            {
                1
            }
            (SyscallHook::Auto, ActiveSyscallHook::SysExit) => 2,
            _ => 0,
        };
        assert_eq!(
            sensor.hook_refusals.len(),
            passed_over,
            "{:?}",
            sensor.hook_refusals
        );
        // Only the per-syscall hooks can miss a syscall: one the kernel does not
        // implement (here: no tracepoint for it).
        match expect {
            ActiveSyscallHook::SyscallTracepoints => {
                let without_tracepoint: Vec<&str> = rampart_bpf::SYSCALLS
                    .iter()
                    .map(|(name, ..)| *name)
                    .filter(|name| {
                        !std::path::Path::new(&format!(
                            "/sys/kernel/tracing/events/syscalls/sys_exit_{name}"
                        ))
                        .exists()
                    })
                    .collect();
                assert_eq!(sensor.unhooked, without_tracepoint);
            }
            ActiveSyscallHook::SysExit => assert!(sensor.unhooked.is_empty()),
            _ => {}
        }
        sees_exec_create_and_unlink(&mut sensor);
    }
}

fn sees_exec_create_and_unlink(sensor: &mut rampart_bpf::Sensor) {
    for w in &sensor.warnings {
        eprintln!("warning: {w}");
    }
    assert!(sensor.warnings.is_empty(), "{:?}", sensor.warnings);
    let marker = format!("/tmp/rampart-bpf-test-{}", std::process::id());
    run_sh(&format!(
        "echo hi > {marker}; cat {marker} >/dev/null; rm {marker}"
    ));
    let (mut exec_seen, mut open_seen, mut unlink_seen) = (false, false, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline && !(exec_seen && open_seen && unlink_seen) {
        while let Some(item) = sensor.ring.next() {
            let rec = Record::parse(&item).expect("well-formed record");
            match rec.hdr.kind {
                kind::EXEC => {
                    let [filename, _interp, exe, argv, _cwd] = rec.take::<5>().unwrap();
                    if filename == b"/bin/sh"
                        && argv.windows(marker.len()).any(|w| w == marker.as_bytes())
                    {
                        assert!(
                            exe.ends_with(b"sh")
                                || exe.ends_with(b"dash")
                                || exe.ends_with(b"bash"),
                            "{}",
                            String::from_utf8_lossy(exe)
                        );
                        exec_seen = true;
                    }
                }
                kind::OPEN => {
                    let [path, _] = rec.take::<2>().unwrap();
                    if path == marker.as_bytes() && rec.hdr.args[1] & 0o100 != 0 {
                        open_seen = true;
                    }
                }
                kind::UNLINK => {
                    let [path, _] = rec.take::<2>().unwrap();
                    if path == marker.as_bytes() {
                        unlink_seen = true;
                    }
                }
                _ => {}
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(exec_seen, "no exec record for sh");
    assert!(open_seen, "no create-open record for {marker}");
    assert!(unlink_seen, "no unlink record for {marker}");
    let (full, shed) = sensor.kernel_drops();
    eprintln!("kernel drops: full={full} shed={shed}");
}

/// A family left out (here because its kinds are filtered out; a kernel refusal leaves
/// the same gap) costs only itself: its fexit stubs and syscall tracepoints are not
/// attached, or on sys_exit the dispatcher falls through an empty tail-call slot, and
/// every other family still arrives.
#[test]
fn a_missing_handler_costs_only_its_family() {
    if !can_run() {
        return;
    }
    let mut cases = vec![(SyscallHook::SysExit, vec!["h_open"])];
    let open_syscalls = vec!["open", "openat", "openat2", "creat"];
    if default_hook() == ActiveSyscallHook::Fexit {
        cases.push((SyscallHook::Fexit, open_syscalls.clone()));
    }
    if rampart_bpf::probe().syscall_tracepoints {
        cases.push((SyscallHook::SyscallTracepoints, open_syscalls));
    }
    for (hook, skipped) in cases {
        let opts = LoadOptions {
            kind_mask: !(1u64 << kind::OPEN),
            syscall_hook: hook,
            ..test_options()
        };
        let mut sensor = rampart_bpf::load(&opts).expect("load");
        assert_eq!(sensor.skipped, skipped, "{hook:?}");
        only_opens_are_missing(&mut sensor);
    }
}

fn only_opens_are_missing(sensor: &mut rampart_bpf::Sensor) {
    let marker = format!("/tmp/rampart-bpf-skip-{}", std::process::id());
    run_sh(&format!("echo hi > {marker}; rm {marker}"));
    let (mut unlink_seen, mut opens) = (false, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline && !unlink_seen {
        while let Some(item) = sensor.ring.next() {
            let rec = Record::parse(&item).expect("well-formed record");
            match rec.hdr.kind {
                kind::OPEN => opens += 1,
                kind::UNLINK => {
                    let [path, _] = rec.take::<2>().unwrap();
                    unlink_seen |= path == marker.as_bytes();
                }
                _ => {}
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        unlink_seen,
        "unlink of {marker} missing with h_open skipped"
    );
    assert_eq!(opens, 0, "open records arrived with h_open not loaded");
}

/// The fexit stubs' code passes this kernel's verifier. Built by `make -C bpf
/// stubs-as-tp` into tp_btf/sys_exit sections, whose context is the same as the fexit
/// one (the syscall's pt_regs, then its result), and loaded (not attached) as such: on
/// a kernel that refuses trampolines this is as close to the fexit path as it gets.
#[test]
fn fexit_stub_code_passes_the_verifier_and_reports_an_open() {
    if !can_run() {
        return;
    }
    let out = std::env::temp_dir().join(format!("rampart-stubs-{}.bpf.o", std::process::id()));
    let bpf_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bpf");
    let built = std::process::Command::new("make")
        .args(["-s", "-C", bpf_dir, "stubs-as-tp"])
        .arg(format!("STUBS_OUT={}", out.display()))
        .status();
    if !matches!(built, Ok(s) if s.success()) {
        rampart_testbed::skip_or_fail(format!(
            "cannot build the stubs object (needs clang and make): {built:?}"
        ));
        return;
    }
    let object = std::fs::read(&out).expect("stubs object");
    let _ = std::fs::remove_file(&out);
    let btf = aya::Btf::from_sys_fs().expect("kernel BTF");
    let mut ebpf = aya::EbpfLoader::new()
        .btf(Some(&btf))
        .load(&object)
        .expect("stubs object loads");
    let mut refused = Vec::new();
    for (name, ..) in rampart_bpf::SYSCALLS {
        let program = format!("fx_{name}");
        let prog: &mut aya::programs::BtfTracePoint = ebpf
            .program_mut(&program)
            .unwrap_or_else(|| panic!("{program} missing"))
            .try_into()
            .unwrap_or_else(|e| panic!("{program} is not tp_btf: {e}"));
        if let Err(e) = prog.load("sys_exit", &btf) {
            refused.push(format!("{program}: {e}"));
        }
    }
    assert!(refused.is_empty(), "{refused:#?}");

    // And one stub does its job: fx_openat, run on sys_exit, takes its arguments from
    // the syscall's pt_regs and its result from the context, as under fexit. (It sees
    // every syscall as an openat there; only the real openat below is looked for.)
    let openat: &mut aya::programs::BtfTracePoint = ebpf
        .program_mut("fx_openat")
        .expect("fx_openat")
        .try_into()
        .expect("tp_btf");
    openat.attach().expect("attach fx_openat on sys_exit");
    let mut ring =
        aya::maps::RingBuf::try_from(ebpf.map_mut("events").expect("events map")).expect("ring");
    let marker = format!("/tmp/rampart-stub-open-{}", std::process::id());
    run_sh(&format!(": > {marker}; rm -f {marker}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut seen = None;
    while seen.is_none() && std::time::Instant::now() < deadline {
        // Every syscall on the host makes a record here: drain without pausing.
        while let Some(item) = ring.next() {
            let Ok(rec) = Record::parse(&item) else {
                continue;
            };
            if rec.hdr.kind != kind::OPEN {
                continue;
            }
            let Ok([path, _base]) = rec.take::<2>() else {
                continue;
            };
            if path == marker.as_bytes() {
                seen = Some(rec.hdr.args);
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let args = seen.unwrap_or_else(|| panic!("no open record for {marker} from fx_openat"));
    const O_CREAT: u64 = 0o100;
    const NR_OPENAT: u64 = 257;
    assert!(args[0] as i64 >= 0, "the result (an fd): {args:?}");
    assert!(args[1] & O_CREAT != 0, "the flags: {args:?}");
    assert_eq!(args[3], NR_OPENAT, "the syscall number: {args:?}");
}

/// A process re-reading a file within the window makes one record; the next one after
/// the window carries how many were folded. Opens that write are never folded.
#[test]
fn repeated_read_only_opens_fold_into_the_next_record() {
    if !can_run() {
        return;
    }
    let window = std::time::Duration::from_millis(500);
    let mut sensor = rampart_bpf::load(&LoadOptions {
        open_repeat_window: window,
        ..test_options()
    })
    .expect("load");
    let marker = format!("/tmp/rampart-fold-{}", std::process::id());
    std::fs::write(&marker, "x\n").expect("marker");
    let folded_before = sensor.opens_folded();
    // One shell process: `read < f` opens read-only, `>> f` opens for writing.
    run_sh(&format!(
        "i=0; while [ $i -lt 50 ]; do read x < {marker}; i=$((i+1)); done; \
         echo y >> {marker}; echo y >> {marker}; sleep 0.8; read x < {marker}"
    ));
    let (mut reads, mut writes) = (Vec::new(), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        while let Some(item) = sensor.ring.next() {
            let rec = Record::parse(&item).expect("well-formed record");
            if rec.hdr.kind != kind::OPEN {
                continue;
            }
            let [path, _] = rec.take::<2>().unwrap();
            if path != marker.as_bytes() {
                continue;
            }
            if rec.hdr.args[1] & 0o3 == 0 {
                reads.push(rec.hdr.args[4]);
            } else {
                writes += 1;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&marker);
    assert_eq!(reads, vec![0, 49], "read-only opens: repeats per record");
    assert_eq!(writes, 2, "every open for writing is reported");
    assert!(sensor.opens_folded() - folded_before >= 49);

    // The sensor's own repeated opens (this process is ignored) are not folds: they
    // make no event, so they take no fold entry and do not count.
    let folded_before = sensor.opens_folded();
    for _ in 0..2000 {
        std::fs::read("/etc/hostname").expect("read /etc/hostname");
    }
    let own_folds = sensor.opens_folded() - folded_before;
    assert!(
        own_folds < 1000,
        "{own_folds} folds counted while this ignored process re-read a file 2000 times"
    );
}

/// The sensor's reader sleeps on a long timer once the stream has been quiet, so the
/// first event after a quiet spell must wake it: a reader blocked in poll() returns
/// with data, instead of at its timeout (events are otherwise submitted without a
/// wakeup, for batches).
#[test]
fn the_first_event_after_a_quiet_spell_wakes_the_reader() {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};
    if !can_run() {
        return;
    }
    let mut sensor = rampart_bpf::load(&LoadOptions {
        kind_mask: 1 << kind::OPEN,
        ..test_options()
    })
    .expect("load");
    assert!(sensor.wakes_after_quiet);
    let marker = format!("/tmp/rampart-wake-{}", std::process::id());
    std::fs::write(&marker, "x").expect("marker");
    // An event first, so that a wakeup has been sent; then a quiet spell longer than
    // WAKEUP_IDLE_NS (10 ms).
    run_sh(&format!(": < {marker}"));
    let quiet_until = Instant::now() + Duration::from_millis(50);
    while Instant::now() < quiet_until {
        while sensor.ring.next().is_some() {}
        std::thread::sleep(Duration::from_millis(5));
    }
    let opener = {
        let marker = marker.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            run_sh(&format!(": < {marker}"));
        })
    };
    let mut pfd = libc::pollfd {
        fd: sensor.ring.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let started = Instant::now();
    // SAFETY: pfd is a valid pollfd array of length 1 for the call.
    let ready = unsafe { libc::poll(&mut pfd, 1, 3000) };
    let waited = started.elapsed();
    opener.join().expect("opener");
    let _ = std::fs::remove_file(&marker);
    eprintln!("woken after {waited:?}");
    assert!(
        ready == 1 && pfd.revents & libc::POLLIN != 0,
        "poll returned {ready} after {waited:?}: the first event did not wake the reader"
    );
    assert!(waited < Duration::from_millis(2500), "{waited:?}");
}

/// Builds tests/images/compat32.c as a 32-bit program (`-m32`) or as a 64-bit one that
/// makes the same calls through int 0x80. Freestanding: only gcc is needed. Outside CI
/// a missing compiler skips (None) with the reason.
/// `RAMPART_COMPAT32_DIR` names a directory with both already built (`compat32`,
/// `compat64`): the kernel matrix's guests have no compiler.
fn build_compat32(dir: &std::path::Path, bits: &str) -> Option<std::path::PathBuf> {
    if let Some(prebuilt) = std::env::var_os("RAMPART_COMPAT32_DIR") {
        let program = std::path::Path::new(&prebuilt).join(format!("compat{bits}"));
        assert!(program.is_file(), "RAMPART_COMPAT32_DIR has no {program:?}");
        return Some(program);
    }
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/images/compat32.c");
    let out = dir.join(format!("compat{bits}"));
    let built = std::process::Command::new("gcc")
        .arg(format!("-m{bits}"))
        .args([
            "-nostdlib",
            "-static",
            "-ffreestanding",
            "-fno-pie",
            "-no-pie",
            "-fno-stack-protector",
            "-mgeneral-regs-only",
            "-O2",
            "-o",
        ])
        .arg(&out)
        .arg(src)
        .output();
    match built {
        Ok(o) if o.status.success() => Some(out),
        other => {
            rampart_testbed::skip_or_fail(format!(
                "cannot build compat32.c with gcc -m{bits}: {other:?}"
            ));
            None
        }
    }
}

/// What one run of compat32 produced, by the x86_64 number the handlers saw.
#[derive(Default, Debug)]
struct CompatSeen {
    /// openat of compat32-file (x86_64 number 257), flagged compat.
    openat: bool,
    /// ftruncate with the length from two 32-bit registers.
    truncate_length: Option<u64>,
    /// chown's 16-bit "unchanged" ids, widened.
    chown_ids: Option<(u64, u64)>,
    /// socketcall(SYS_CONNECT) and connect(2) to 127.0.0.1:9 and :10.
    connect_ports: Vec<u16>,
    /// socketcall(SYS_SENDTO) to port 53.
    dns: bool,
    /// setresuid16(0xffff, ...), as setresuid (x86_64 117) with -1s.
    setresuid: bool,
    /// Records of the run's process without the compat flag.
    unflagged: usize,
    /// Records of the run's process (any kind).
    records: usize,
    /// Those whose cgroup leaf names (v2 or cpuset) do not name the container it ran in
    /// (none when it ran on the host).
    outside_container: usize,
}

/// Where compat32 runs. The program stages what the shipped rules rightly flag (32-bit
/// syscalls, a PTRACE_ATTACH), so it runs in a container of the test image wherever
/// Docker is: a sensor watching the host then sees a container do it, and the records
/// must carry that container's cgroup. Only where there is no Docker (the kernel
/// matrix's guest) does it run on the host.
enum CompatRunner {
    Host,
    Container { name_prefix: String },
}

impl CompatRunner {
    fn pick() -> Self {
        match rampart_testbed::unavailable(rampart_testbed::TEST_IMAGE) {
            None => CompatRunner::Container {
                name_prefix: std::env::var("RAMPART_TEST_CONTAINER_PREFIX").unwrap_or_default(),
            },
            Some(why) => {
                eprintln!("compat32 runs on the host: {why}");
                CompatRunner::Host
            }
        }
    }

    /// Runs `program` to its end in a fresh writable directory; returns that
    /// directory as the program sees it and the container's id (None on the host).
    fn run(&self, program: &std::path::Path) -> (std::path::PathBuf, Option<String>) {
        let bits = program.file_name().unwrap().to_string_lossy().into_owned();
        match self {
            CompatRunner::Host => {
                let dir = tempfile_dir("compat32");
                let child = std::process::Command::new(program)
                    .current_dir(&dir)
                    .status()
                    .expect("run compat32");
                assert!(child.success(), "{program:?}: {child:?}");
                (dir, None)
            }
            CompatRunner::Container { name_prefix } => {
                let name = format!("{name_prefix}rampart-kernel-{bits}-{}", std::process::id());
                rampart_testbed::remove_container(&name);
                let mount = format!("{}:/compat:ro", program.parent().unwrap().display());
                let inside = format!("/compat/{bits}");
                let id = rampart_testbed::docker(&[
                    "create",
                    "--name",
                    &name,
                    "--network",
                    "none",
                    "-v",
                    &mount,
                    "-w",
                    "/tmp",
                    rampart_testbed::TEST_IMAGE,
                    &inside,
                ]);
                let ran = std::process::Command::new("docker")
                    .args(["start", "-a", &id])
                    .status()
                    .expect("docker start");
                rampart_testbed::remove_container(&name);
                assert!(ran.success(), "{program:?} in a container: {ran:?}");
                ("/tmp".into(), Some(id))
            }
        }
    }
}

fn run_compat32(
    sensor: &mut rampart_bpf::Sensor,
    runner: &CompatRunner,
    program: &std::path::Path,
) -> CompatSeen {
    let (dir, container) = runner.run(program);
    let mut seen = CompatSeen::default();
    let mut leaves = std::collections::HashMap::new();
    let comm = program.file_name().unwrap().to_string_lossy().into_owned();
    // Its exit record comes after all of its syscalls' records in the one ring.
    let mut exited = false;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !exited && std::time::Instant::now() < deadline {
        while let Some(item) = sensor.ring.next() {
            let rec = Record::parse(&item).expect("well-formed record");
            let h = &rec.hdr;
            // Leaf names come with a cgroup pair's first record only (the container
            // runtime's, before the program's): keep them by the pair's ids.
            let pair = (h.cgroup_id, h.cpuset_cgroup_id);
            if !rec.cgroup_leaf.is_empty() || !rec.cpuset_leaf.is_empty() {
                let mut names = String::from_utf8_lossy(rec.cgroup_leaf).into_owned();
                names.push(' ');
                names.push_str(&String::from_utf8_lossy(rec.cpuset_leaf));
                leaves.insert(pair, names);
            }
            let name = String::from_utf8_lossy(&h.comm);
            if !name.trim_end_matches('\0').starts_with(&comm) {
                continue;
            }
            seen.records += 1;
            if let Some(id) = &container {
                if !leaves.get(&pair).is_some_and(|n| n.contains(id.as_str())) {
                    seen.outside_container += 1;
                }
            }
            exited |= h.kind == kind::EXIT;
            if matches!(h.kind, kind::EXEC | kind::FORK | kind::EXIT) {
                continue;
            }
            if h.args[5] & rampart_bpf::wire::EVF_COMPAT == 0 {
                seen.unflagged += 1;
                continue;
            }
            match h.kind {
                kind::OPEN => {
                    let [path, base] = rec.take::<2>().unwrap();
                    seen.openat |= path == b"compat32-file"
                        && h.args[3] == 257
                        && base == dir.as_os_str().as_encoded_bytes();
                }
                kind::TRUNCATE => seen.truncate_length = Some(h.args[1]),
                kind::CHOWN => seen.chown_ids = Some((h.args[1], h.args[2])),
                kind::CONNECT => {
                    let [_, remote] = rec.take::<2>().unwrap();
                    if remote.len() >= 4 {
                        seen.connect_ports
                            .push(u16::from_be_bytes([remote[2], remote[3]]));
                    }
                }
                kind::DNS => seen.dns = true,
                kind::SETID => {
                    seen.setresuid =
                        h.args[1] == 117 && h.args[2..5].iter().all(|a| *a == 0xffff_ffff);
                }
                _ => {}
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if container.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    seen
}

fn tempfile_dir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("rampart-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Syscalls made through the 32-bit entry, by a 32-bit program and by int 0x80 from a
/// 64-bit one, arrive on every hook with the x86_64 numbers and argument layout the
/// decoder knows, and flagged; switched off, the per-syscall hooks miss them.
#[test]
fn syscalls_through_the_32_bit_entry_arrive_translated_and_flagged() {
    if !can_run() {
        return;
    }
    if !rampart_bpf::probe().ia32_emulation {
        eprintln!("skipping: this kernel runs no 32-bit syscalls (no ia32 emulation)");
        return;
    }
    let dir = tempfile_dir("compat32-build");
    let Some(programs) = ["32", "64"]
        .iter()
        .map(|bits| build_compat32(&dir, bits))
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    let runner = CompatRunner::pick();
    let mut cases = vec![
        (SyscallHook::Auto, true),
        (SyscallHook::SysExit, true),
        (SyscallHook::Auto, false),
    ];
    // The 32-bit complement program beside a per-syscall hook (Auto takes sys_exit
    // instead where trampolines are refused).
    if default_hook() == ActiveSyscallHook::Fexit {
        cases.push((SyscallHook::Fexit, true));
    }
    if rampart_bpf::probe().syscall_tracepoints {
        cases.push((SyscallHook::SyscallTracepoints, true));
    }
    for (hook, compat_syscalls) in cases {
        let mut sensor = rampart_bpf::load(&LoadOptions {
            syscall_hook: hook,
            compat_syscalls,
            ..test_options()
        })
        .expect("load");
        assert!(sensor.warnings.is_empty(), "{:?}", sensor.warnings);
        // sys_exit sees them whatever the option says.
        let expect_seen = compat_syscalls || sensor.syscall_hook == ActiveSyscallHook::SysExit;
        assert_eq!(sensor.compat_syscalls, expect_seen, "{hook:?}");
        // Beside fexit, on the ia32 entry points: no program on every syscall.
        let expect_compat_hook = match (expect_seen, sensor.syscall_hook) {
            (false, _) => ActiveSyscallHook::None,
            (true, ActiveSyscallHook::Fexit) => ActiveSyscallHook::Fexit,
            (true, _) => ActiveSyscallHook::SysExit,
        };
        assert_eq!(
            sensor.compat_hook, expect_compat_hook,
            "{hook:?}: {:?}",
            sensor.hook_refusals
        );
        for program in &programs {
            let seen = run_compat32(&mut sensor, &runner, program);
            let what = format!("{hook:?} (compat_syscalls {compat_syscalls}), {program:?}");
            eprintln!("{what}: {seen:?}");
            assert_eq!(seen.unflagged, 0, "{what}: records without the compat flag");
            assert!(seen.records > 0, "{what}: no record of the run");
            assert_eq!(
                seen.outside_container, 0,
                "{what}: records not attributed to the container"
            );
            if !expect_seen {
                assert!(!seen.openat && seen.connect_ports.is_empty(), "{what}");
                continue;
            }
            assert!(seen.openat, "{what}: no openat of compat32-file");
            assert_eq!(seen.truncate_length, Some((1 << 32) + 7), "{what}");
            assert_eq!(seen.chown_ids, Some((0xffff_ffff, 0xffff_ffff)), "{what}");
            assert_eq!(seen.connect_ports, vec![9, 10], "{what}");
            assert!(seen.dns, "{what}: no DNS record for socketcall(SYS_SENDTO)");
            assert!(seen.setresuid, "{what}: no setresuid(-1, -1, -1)");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// With `cgroup_names_once`, a cgroup pair's leaf names come in its first record and
/// are empty after that; every record carries both ids. A real cgroup made in the
/// cpuset hierarchy (v1 hosts) or in cgroup2, with a shell moved into it.
#[test]
fn cgroup_names_come_once_per_cgroup_pair() {
    use std::os::unix::fs::MetadataExt;
    if !can_run() {
        return;
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    let hierarchy = |fstype: &str, option: Option<&str>| {
        mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 3
                && f[2] == fstype
                && option.is_none_or(|o| f[3].split(',').any(|x| x == o)))
            .then(|| std::path::PathBuf::from(f[1]))
        })
    };
    let (base, in_cpuset) = match (
        hierarchy("cgroup", Some("cpuset")),
        hierarchy("cgroup2", None),
    ) {
        (Some(c), _) => (c, true),
        (None, Some(v)) => (v, false),
        (None, None) => panic!("no cgroup hierarchy is mounted"),
    };
    let leaf = format!("rampart-names-{}", std::process::id());
    let dir = base.join(&leaf);
    std::fs::create_dir(&dir).expect("make a cgroup");
    if in_cpuset {
        // A v1 cpuset takes tasks only once it has cpus and mems.
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let parent = std::fs::read_to_string(base.join(file)).expect("parent cpuset");
            std::fs::write(dir.join(file), parent.trim()).expect("cpuset setting");
        }
    }
    let id = std::fs::metadata(&dir).expect("stat cgroup").ino();
    let mut sensor = rampart_bpf::load(&LoadOptions {
        kind_mask: 1 << kind::OPEN,
        ..test_options()
    })
    .expect("load");
    let marker = format!("/tmp/{leaf}");
    std::fs::write(&marker, "x").expect("marker");
    // Distinct flags per open, so that none is folded as a repeat.
    run_sh(&format!(
        "echo $$ > {}/cgroup.procs && : >> {marker} && : >> {marker} && : > {marker}",
        dir.display()
    ));
    let mut names = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while names.len() < 3 && std::time::Instant::now() < deadline {
        while let Some(item) = sensor.ring.next() {
            let rec = Record::parse(&item).expect("well-formed record");
            let Ok([path, _]) = rec.take::<2>() else {
                continue;
            };
            if path != marker.as_bytes() {
                continue;
            }
            let ids = (rec.hdr.cgroup_id, rec.hdr.cpuset_cgroup_id);
            if in_cpuset {
                assert_eq!(ids.1, id, "the cpuset cgroup id is the cgroup's inode");
            } else {
                assert_eq!(ids.0, id, "the cgroup id is the cgroup's inode");
            }
            let name = if in_cpuset {
                rec.cpuset_leaf
            } else {
                rec.cgroup_leaf
            };
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&marker);
    let _ = std::fs::remove_dir(&dir);
    assert_eq!(
        names,
        vec![leaf, String::new(), String::new()],
        "names per record"
    );
}

/// Processes given in `ignored_tgids` beside the sensor's own make no records (the
/// kernel looks them up in its map); the sensor alone is ignored by a compare.
#[test]
fn ignored_processes_make_no_records() {
    use std::io::Write;
    if !can_run() {
        return;
    }
    let marker = format!("/tmp/rampart-ignored-{}", std::process::id());
    std::fs::write(&marker, "x").expect("marker");
    // A shell that opens the marker for writing once told to: ignored below.
    let mut quiet = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("read go; : >> {marker}"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let mut sensor = rampart_bpf::load(&LoadOptions {
        kind_mask: 1 << kind::OPEN,
        ignored_tgids: vec![std::process::id(), quiet.id()],
        ..test_options()
    })
    .expect("load");
    writeln!(quiet.stdin.take().expect("stdin"), "go").expect("tell sh");
    assert!(quiet.wait().expect("wait sh").success());
    // The same open from a process that is not ignored.
    run_sh(&format!(": >> {marker}"));
    let quiet_pid = quiet.id();
    let mut openers = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while openers.is_empty() && std::time::Instant::now() < deadline {
        while let Some(item) = sensor.ring.next() {
            let rec = Record::parse(&item).expect("well-formed record");
            let Ok([path, _]) = rec.take::<2>() else {
                continue;
            };
            if path == marker.as_bytes() {
                openers.push(rec.hdr.tgid);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&marker);
    assert_eq!(openers.len(), 1, "one open reported: {openers:?}");
    assert_ne!(
        openers[0], quiet_pid,
        "the ignored shell's open was reported"
    );
}

/// Opens of `marker` (written to, so never folded) the ring holds now.
fn marker_opens(sensor: &mut rampart_bpf::Sensor, marker: &str) -> usize {
    let mut n = 0;
    while let Some(item) = sensor.ring.next() {
        let rec = Record::parse(&item).expect("well-formed record");
        if let Ok([path, _]) = rec.take::<2>() {
            n += usize::from(path == marker.as_bytes());
        }
    }
    n
}

#[test]
fn the_hook_switch_detaches_and_reattaches_every_program() {
    if !can_run() {
        return;
    }
    // The default hook, and the syscall tracepoints (links of another kind).
    for hook in [SyscallHook::Auto, SyscallHook::SyscallTracepoints] {
        switch_round_trip(hook);
    }
}

fn switch_round_trip(syscall_hook: SyscallHook) {
    let marker = format!("/tmp/rampart-switch-{}", std::process::id());
    let mut sensor = rampart_bpf::load(&LoadOptions {
        kind_mask: 1 << kind::OPEN | 1 << kind::EXEC,
        ignored_tgids: vec![std::process::id()],
        syscall_hook,
        ..test_options()
    })
    .expect("load");
    eprintln!("hook switch with {:?}", sensor.syscall_hook);
    let switch = sensor.hook_switch();
    let settle = || std::thread::sleep(std::time::Duration::from_millis(200));
    run_sh(&format!(": >> {marker}"));
    settle();
    assert_eq!(marker_opens(&mut sensor, &marker), 1, "attached at load");
    switch.detach();
    switch.detach(); // idempotent
                     // Drop what other processes made before the detach returned.
    while sensor.ring.next().is_some() {}
    run_sh(&format!(": >> {marker}"));
    settle();
    let mut any = 0;
    while sensor.ring.next().is_some() {
        any += 1;
    }
    // Nothing at all: not the shell's exec or exit, nor its open.
    assert_eq!(any, 0, "records while detached");
    switch.attach().expect("re-attach");
    switch.attach().expect("attach twice"); // idempotent: no duplicate hooks
    run_sh(&format!(": >> {marker}"));
    settle();
    let _ = std::fs::remove_file(&marker);
    assert_eq!(
        marker_opens(&mut sensor, &marker),
        1,
        "one record per open after re-attaching"
    );
    // The switch does not keep a dropped sensor's programs alive.
    drop(sensor);
    switch.detach();
    assert!(switch.attach().is_err(), "attached a dropped sensor");
}

/// The netflow programs loaded with `options` and attached at the cgroup v2 root;
/// `None` (after can_run's or skip_or_fail's word) when this kernel or host cannot.
fn netflow_probe_at_root(
    options: rampart_bpf::netflow::NetflowOptions,
) -> Option<rampart_bpf::netflow::NetflowProbe> {
    if !can_run() {
        return None;
    }
    // The host's may sit at /sys/fs/cgroup/unified beside v1 controllers.
    let Some(root) = rampart_bpf::probe().cgroup_v2_mount else {
        rampart_testbed::skip_or_fail("no cgroup v2 mount: the netflow programs attach to one");
        return None;
    };
    let mut probe = rampart_bpf::netflow::NetflowProbe::load(
        rampart_testbed::netflow_object().as_deref(),
        options,
    )
    .expect("the netflow programs load");
    probe
        .attach(std::path::Path::new(&root))
        .expect("attached at the cgroup v2 root");
    Some(probe)
}

/// A loopback TCP connection: its listener, and the client's and the server's ends.
fn loopback_connection() -> (
    std::net::TcpListener,
    std::net::TcpStream,
    std::net::TcpStream,
) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("its address").port();
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    (listener, client, server)
}

/// A socket-accounting probe where the kernel has BPF trampolines, which `reading`
/// needs (`has` says the probe reads it); None where it cannot load, and where the
/// kernel refuses trampolines, after checking the probe says it lacks the reading.
fn socket_probe_where_trampolines(
    reading: &str,
    has: fn(&NetflowProbe) -> bool,
) -> Option<NetflowProbe> {
    let probe = socket_probe_at_root()?;
    let features = rampart_bpf::probe();
    if !features.fentry {
        eprintln!(
            "this kernel refuses BPF trampolines ({}): no {reading} with socket accounting",
            features.trampoline_refusal.unwrap_or_default()
        );
        assert!(!has(&probe), "{reading} read without trampolines");
        return None;
    }
    assert!(has(&probe), "{reading} not read, with trampolines");
    Some(probe)
}

/// The last reported flow from local port `local` to remote port `remote`.
fn flow_between(flows: &[KernelFlow], local: u16, remote: u16) -> Option<KernelFlow> {
    flows
        .iter()
        .rev()
        .find(|f| f.local_port == local && f.remote_port == remote)
        .cloned()
}

/// Reads the probe's flows until both ends of a loopback TCP connection between ports
/// `a` and `b` are `ended`, or 3 s pass: the ends from `a` and from `b`, as last read.
fn read_until_both_ended(
    probe: &mut NetflowProbe,
    a: u16,
    b: u16,
    ended: impl Fn(&KernelFlow) -> bool,
) -> (Option<KernelFlow>, Option<KernelFlow>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut flows = Vec::new();
    loop {
        probe.read_changes(&mut flows).expect("the sockets read");
        let ends = (flow_between(&flows, a, b), flow_between(&flows, b, a));
        let done = ends.0.as_ref().is_some_and(&ended) && ends.1.as_ref().is_some_and(&ended);
        if done || std::time::Instant::now() > deadline {
            return ends;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The netflow programs with socket accounting at the cgroup v2 root.
fn socket_probe_at_root() -> Option<rampart_bpf::netflow::NetflowProbe> {
    use rampart_bpf::netflow::{Accounting, NetflowOptions};
    netflow_probe_at_root(NetflowOptions {
        accounting: Accounting::Sockets,
        ..NetflowOptions::default()
    })
}

/// The netflow object loads on this kernel (the kernel matrix runs this on Debian's
/// 6.1 too) and counts a loopback TCP connection at the cgroup v2 root: a flow on each
/// side with the bytes each way and both FINs, and the process that connected.
#[test]
fn the_netflow_programs_load_and_count_a_loopback_connection() {
    use rampart_bpf::netflow::{Initiator, NetflowOptions, TCP};
    use std::io::{Read, Write};
    const SENT: usize = 200_000;
    let Some(probe) = netflow_probe_at_root(NetflowOptions::default()) else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("its address").port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.write_all(&vec![7u8; SENT]).expect("write");
    });
    let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let client_port = client.local_addr().expect("its address").port();
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect("read");
    drop(client);
    server.join().expect("the server thread");
    assert_eq!(got.len(), SENT);

    // Both ends' last FIN and ACK may trail the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let (client_flow, server_flow) = loop {
        let flows = probe.flows().expect("the flow table reads");
        let side = |local: u16, remote: u16| {
            flows
                .iter()
                .find(|f| f.proto == TCP && f.local_port == local && f.remote_port == remote)
                .cloned()
        };
        let (c, s) = (side(client_port, port), side(port, client_port));
        let closed = |f: &Option<rampart_bpf::netflow::KernelFlow>| {
            f.as_ref()
                .is_some_and(|f| f.tcp_flags_out & 1 != 0 && f.tcp_flags_in & 1 != 0)
        };
        if (closed(&c) && closed(&s)) || std::time::Instant::now() > deadline {
            break (c, s);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let c = client_flow.expect("the client's flow");
    let s = server_flow.expect("the server's flow");
    assert_eq!(c.initiator, Initiator::Local, "{c:?}");
    assert_eq!(s.initiator, Initiator::Remote, "{s:?}");
    assert!(c.bytes_in >= SENT as u64 && c.bytes_out > 0, "{c:?}");
    assert!(s.bytes_out >= SENT as u64 && s.bytes_in > 0, "{s:?}");
    assert_eq!(
        (c.tcp_flags_out & 0x13, c.tcp_flags_in & 0x13),
        (0x13, 0x13),
        "SYN, ACK and FIN each way: {c:?}"
    );
    let owner = probe
        .owners()
        .expect("the owners read")
        .into_iter()
        .find(|o| o.cgroup_id == c.cgroup_id && o.remote_port == port)
        .expect("the connect's owner");
    assert_eq!(owner.pid, std::process::id(), "{owner:?}");
}

/// Socket accounting loads on this kernel (the kernel matrix runs this on Debian's
/// 6.1 too: the iterator and the socket-end tracepoints, and the cgroup ancestry read
/// both ways the kernels keep it) and reports a loopback connection at the cgroup v2
/// root: while it is open, through the iterator with its bytes so far and its
/// listener; once closed, from each socket's end, with FINs both ways.
#[test]
fn the_socket_programs_load_and_report_a_loopback_connection_live_and_at_its_end() {
    use rampart_bpf::netflow::Initiator;
    use std::io::{Read, Write};
    const SENT: usize = 100_000;
    let Some(mut probe) = socket_probe_at_root() else {
        return;
    };
    let (listener, mut client, mut server) = loopback_connection();
    let port = listener.local_addr().expect("its address").port();
    let client_port = client.local_addr().expect("its address").port();
    server.write_all(&vec![7u8; SENT]).expect("write");
    let mut got = vec![0u8; SENT];
    client.read_exact(&mut got).expect("read");
    let mut flows = Vec::new();
    probe.read_changes(&mut flows).expect("the sockets read");
    let live =
        flow_between(&flows, client_port, port).expect("the open connection, from the iterator");
    assert!(live.bytes_in >= SENT as u64, "{live:?}");
    assert_eq!(live.initiator, Initiator::Local, "{live:?}");
    assert_eq!(live.tcp_flags_in & 1, 0, "not closed yet: {live:?}");
    assert!(
        probe.listener_queues().iter().any(|q| q.port == port),
        "the listener: {:?}",
        probe.listener_queues()
    );
    // Unchanged since: not reported again.
    let mut again = Vec::new();
    probe.read_changes(&mut again).expect("the sockets read");
    assert!(
        flow_between(&again, client_port, port).is_none(),
        "{again:?}"
    );

    drop(client);
    drop(server);
    let (c, s) = read_until_both_ended(&mut probe, client_port, port, |f| f.tcp_flags_in & 1 != 0);
    let c = c.expect("the client's socket end");
    let s = s.expect("the server's socket end");
    assert_eq!(s.initiator, Initiator::Remote, "{s:?}");
    assert!(
        c.bytes_in >= SENT as u64 && s.bytes_out >= SENT as u64,
        "{c:?} {s:?}"
    );
    assert_eq!(
        (c.tcp_flags_out & 0x13, c.tcp_flags_in & 0x13),
        (0x13, 0x13),
        "SYN, ACK and FIN each way: {c:?}"
    );
    assert_eq!(
        probe.stats().expect("stats").flows_created,
        0,
        "no packet program ran"
    );
}

/// An accepted socket inherits its listener's backlog, which is how the kernel side
/// tells it from a connected one; a listener made with backlog 0 passes none on, and
/// its connections are still counted as accepted, live and at their end (the
/// listening ports from the iterator).
#[test]
fn a_listener_with_backlog_zero_still_has_its_connections_counted_as_accepted() {
    use rampart_bpf::netflow::Initiator;
    use std::os::fd::AsRawFd;
    let Some(mut probe) = socket_probe_at_root() else {
        return;
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    // listen() again on a listener sets its backlog.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    let port = listener.local_addr().expect("its address").port();
    let client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let (server, _) = listener.accept().expect("accept");
    let client_port = client.local_addr().expect("its address").port();
    let mut flows = Vec::new();
    probe.read_changes(&mut flows).expect("the sockets read");
    let live = flows
        .iter()
        .find(|f| f.local_port == port && f.remote_port == client_port)
        .expect("the accepted connection, from the iterator");
    assert_eq!(live.initiator, Initiator::Remote, "{live:?}");
    drop(client);
    drop(server);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let ended = loop {
        let mut got = Vec::new();
        probe.read_changes(&mut got).expect("the sockets read");
        let end = got.into_iter().find(|f| {
            f.local_port == port && f.remote_port == client_port && f.tcp_flags_in & 1 != 0
        });
        if end.is_some() || std::time::Instant::now() > deadline {
            break end;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let ended = ended.expect("the accepted socket's end");
    assert_eq!(ended.initiator, Initiator::Remote, "{ended:?}");
    assert_eq!(ended.tcp_flags_in & 2, 2, "its SYN came in: {ended:?}");
}

/// A connection its server closed first (its socket then orphaned, in FIN_WAIT2) and
/// its client then aborted: the orphan's end, which follows the reset at once, says
/// the reset came in and carries the counters; the client's says it sent one.
#[test]
fn an_orphaned_socket_a_reset_closes_ends_with_the_reset_and_its_counters() {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    const FIN: u8 = 1;
    const RST: u8 = 4;
    let Some(mut probe) = socket_probe_at_root() else {
        return;
    };
    let (listener, mut client, mut server) = loopback_connection();
    let port = listener.local_addr().expect("its address").port();
    let client_port = client.local_addr().expect("its address").port();
    server.write_all(b"x").expect("write");
    drop(server);
    let mut b = [0u8; 1];
    client.read_exact(&mut b).expect("the byte");
    assert_eq!(client.read(&mut b).expect("the server's FIN"), 0);
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized linger struct.
    let set = unsafe {
        libc::setsockopt(
            client.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0);
    drop(client);
    let (client_end, server_end) = read_until_both_ended(&mut probe, client_port, port, |f| {
        (f.tcp_flags_in | f.tcp_flags_out) & (FIN | RST) != 0
    });
    let server_end = server_end.expect("the server's end");
    assert_eq!(
        (
            server_end.tcp_flags_in & (RST | FIN),
            server_end.tcp_flags_out & RST
        ),
        (RST, 0),
        "the reset came in, and the end is no close: {server_end:?}"
    );
    assert!(
        server_end.bytes_out > 1 && server_end.packets_out >= 2,
        "its counters (the byte, its FIN): {server_end:?}"
    );
    let client_end = client_end.expect("the client's end");
    assert_eq!(client_end.tcp_flags_out & RST, RST, "{client_end:?}");
}

/// Socket accounting counts packets a process writes whole through a raw socket
/// where the kernel has BPF trampolines (the kernel matrix runs this on Debian's
/// 6.1), as nmap's SYN scan sends them: SYNs to 30 ports make 30 outbound flows that
/// saw only their SYN, owned by the process that sent them. Without trampolines it
/// counts none and says so.
#[test]
fn socket_accounting_counts_syns_written_through_a_raw_socket_where_trampolines_exist() {
    use rampart_bpf::netflow::Initiator;
    const PORTS: std::ops::Range<u16> = 7000..7030;
    let Some(mut probe) =
        socket_probe_where_trampolines("raw sends", NetflowProbe::reads_raw_sends)
    else {
        return;
    };
    // SAFETY: plain socket calls on a descriptor this test owns and closes.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_RAW) };
    assert!(fd >= 0, "a raw socket: {}", std::io::Error::last_os_error());
    let target = [127u8, 7, 7, 7];
    let to = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(target),
        },
        sin_zero: [0; 8],
    };
    for port in PORTS {
        // IPv4 (the kernel fills in its length and checksum), then a bare SYN from
        // port 40000.
        let mut packet = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 127, 0, 0, 1];
        packet.extend_from_slice(&target);
        packet.extend_from_slice(&40000u16.to_be_bytes());
        packet.extend_from_slice(&port.to_be_bytes());
        packet.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        // SAFETY: the packet and address outlive the call.
        let sent = unsafe {
            libc::sendto(
                fd,
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        assert_eq!(sent, 40, "{}", std::io::Error::last_os_error());
    }
    // SAFETY: closes the socket made above.
    unsafe { libc::close(fd) };
    let mut flows = Vec::new();
    probe.read_changes(&mut flows).expect("the flows read");
    let scan: Vec<_> = flows
        .iter()
        .filter(|f| f.remote.to_string() == "127.7.7.7" && f.local_port == 40000)
        .collect();
    assert_eq!(scan.len(), PORTS.len(), "one flow per port: {flows:?}");
    for f in &scan {
        assert!(PORTS.contains(&f.remote_port), "{f:?}");
        assert_eq!(
            (f.initiator, f.tcp_flags_out, f.tcp_flags_in, f.packets_out),
            (Initiator::Local, 0x02, 0, 1),
            "a SYN out, nothing back: {f:?}"
        );
    }
    let owner = probe
        .owner(scan[0].cgroup_id, 6, scan[0].remote, scan[0].remote_port)
        .expect("the owners read")
        .expect("the sender");
    assert_eq!(owner.pid, std::process::id(), "{owner:?}");
    let stats = probe.stats().expect("stats");
    assert!(
        stats.socket_flows_created >= PORTS.len() as u64,
        "{stats:?}"
    );
    assert_eq!(stats.flows_created, 0, "no packet program ran: {stats:?}");
}

/// Socket accounting counts UDP where the kernel has BPF trampolines (the kernel
/// matrix runs this on Debian's 6.1): a connected client's three datagrams and the
/// server's two answers (sendto, recvfrom) make a flow at each end with the datagrams
/// and their bytes each way (IPv4 and UDP headers on), and who sent first, once both
/// sockets are closed. Without trampolines UDP makes no flows, and it says so.
#[test]
fn socket_accounting_counts_udp_datagrams_where_trampolines_exist() {
    use rampart_bpf::netflow::Initiator;
    let Some(mut probe) = socket_probe_where_trampolines("UDP flows", NetflowProbe::counts_udp)
    else {
        return;
    };
    let server = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let server_port = server.local_addr().expect("its address").port();
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.connect(("127.0.0.1", server_port)).expect("connect");
    let client_port = client.local_addr().expect("its address").port();
    for s in [&server, &client] {
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .expect("timeout");
    }
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        client.send(&[1u8; 100]).expect("send");
    }
    let mut from = None;
    for _ in 0..3 {
        let (n, addr) = server.recv_from(&mut buf).expect("a datagram");
        assert_eq!(n, 100);
        from = Some(addr);
    }
    let from = from.expect("the client's address");
    for _ in 0..2 {
        server.send_to(&[2u8; 50], from).expect("send");
    }
    for _ in 0..2 {
        assert_eq!(client.recv(&mut buf).expect("an answer"), 50);
    }
    drop(client);
    drop(server);
    let mut flows = Vec::new();
    probe.read_changes(&mut flows).expect("the flows read");
    let end = |local: u16, remote: u16| {
        flows
            .iter()
            .rev()
            .find(|f| f.proto == 17 && f.local_port == local && f.remote_port == remote)
            .cloned()
            .unwrap_or_else(|| panic!("the flow {local} -> {remote}: {flows:?}"))
    };
    let c = end(client_port, server_port);
    let counted = |f: &rampart_bpf::netflow::KernelFlow| {
        (
            f.packets_out,
            f.bytes_out,
            f.packets_in,
            f.bytes_in,
            f.initiator,
        )
    };
    assert_eq!(
        counted(&c),
        (3, 3 * 128, 2, 2 * 78, Initiator::Local),
        "{c:?}"
    );
    let s = end(server_port, client_port);
    assert_eq!(
        counted(&s),
        (2, 2 * 78, 3, 3 * 128, Initiator::Remote),
        "{s:?}"
    );
    let stats = probe.stats().expect("stats");
    assert!(stats.socket_flows_created >= 2, "{stats:?}");
    assert_eq!(stats.flows_created, 0, "no packet program ran: {stats:?}");
}

/// Socket accounting reads DNS answers at the resolver's receive calls: a process
/// that sent to UDP port 53 gets each answer from that port reported whole, whether
/// it reads with recvfrom, recvmsg or recvmmsg (glibc, musl, resolvers on
/// sendmmsg/recvmmsg), on an IPv4 or a dual-stack IPv6 socket, and with read() (Go,
/// busybox) where the kernel has trampolines (the kernel matrix runs this on
/// Debian's 6.1); a datagram from another port is not a DNS answer.
#[test]
fn socket_accounting_reads_dns_answers_at_each_receive_call() {
    use rampart_bpf::netflow::NetRecord;
    use std::os::fd::AsRawFd;
    let Some(mut probe) = socket_probe_at_root() else {
        return;
    };
    // A loopback address of its own, so no resolver on the host holds its port 53.
    let server = std::net::UdpSocket::bind("127.53.0.9:53").expect("bind port 53");
    let other = std::net::UdpSocket::bind("127.53.0.9:0").expect("bind");
    let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    client.connect("127.53.0.9:53").expect("connect");
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    // Header (id, flags: response, one question, one answer) and the question.
    let answer = |id: u8| {
        let mut m = vec![0x12, id, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
        m.extend_from_slice(b"\x03dns\x07example\x04test\x00\x00\x01\x00\x01");
        m.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc0\x00\x02\x4d");
        m
    };
    let fd = client.as_raw_fd();
    // read() only where the UDP receive itself is hooked (fexit: trampolines).
    let trampolines = rampart_bpf::probe().fentry;
    let mut calls = vec![(1u8, "recvfrom"), (2, "recvmsg"), (3, "recvmmsg")];
    if trampolines {
        calls.push((5, "read"));
    }
    for (id, call) in calls {
        client.send(b"query for the sink").expect("send");
        let (_, from) = server.recv_from(&mut [0u8; 64]).expect("the query");
        server.send_to(&answer(id), from).expect("the answer");
        let mut buf = [0u8; 512];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: the buffers outlive the calls; the headers point at them only.
        let got = unsafe {
            match call {
                "recvfrom" => libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                ),
                "read" => libc::read(fd, buf.as_mut_ptr().cast(), buf.len()),
                "recvmsg" => {
                    let mut msg: libc::msghdr = std::mem::zeroed();
                    msg.msg_iov = &mut iov;
                    msg.msg_iovlen = 1;
                    libc::recvmsg(fd, &mut msg, 0)
                }
                _ => {
                    let mut m: libc::mmsghdr = std::mem::zeroed();
                    m.msg_hdr.msg_iov = &mut iov;
                    m.msg_hdr.msg_iovlen = 1;
                    let n = libc::recvmmsg(fd, &mut m, 1, 0, std::ptr::null_mut());
                    if n == 1 {
                        m.msg_len as isize
                    } else {
                        -1
                    }
                }
            }
        };
        assert_eq!(got, answer(id).len() as isize, "{call} read the answer");
    }
    // A dual-stack IPv6 socket asking over IPv4 (udpv6_recvmsg, a v4-mapped peer).
    let dual = std::net::UdpSocket::bind("[::]:0").expect("bind");
    dual.connect("[::ffff:127.53.0.9]:53").expect("connect");
    dual.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    dual.send(b"query for the sink").expect("send");
    let (_, from) = server.recv_from(&mut [0u8; 64]).expect("the query");
    server.send_to(&answer(6), from).expect("the answer");
    assert_eq!(
        dual.recv(&mut [0u8; 512]).expect("the answer"),
        answer(6).len()
    );
    // Not from port 53: the same bytes, to an asker, are no answer.
    let unconnected = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    unconnected
        .send_to(b"query", "127.53.0.9:53")
        .expect("a query marks the asker");
    other
        .send_to(&answer(4), unconnected.local_addr().expect("its address"))
        .expect("send");
    unconnected
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .expect("timeout");
    unconnected
        .recv_from(&mut [0u8; 512])
        .expect("the datagram");
    let mut records = Vec::new();
    probe.read_records(&mut records);
    let ids: Vec<u8> = records
        .iter()
        .filter_map(|r| match r {
            NetRecord::DnsAnswer { flow, message, .. }
                if flow.remote_port == 53 && flow.remote.to_string() == "127.53.0.9" =>
            {
                assert_eq!(message.len(), answer(1).len(), "the whole message");
                Some(message[1])
            }
            _ => None,
        })
        .collect();
    let expected: &[u8] = if trampolines {
        &[1, 2, 3, 5, 6]
    } else {
        &[1, 2, 3, 6]
    };
    assert_eq!(ids, expected, "one answer per receive call: {records:?}");
}

/// Socket accounting reads each TCP socket's first payload where the kernel has BPF
/// trampolines (fentry on tcp_sendmsg; the kernel matrix runs this on Debian's 6.1):
/// a client's TLS ClientHello whole, a server's first bytes (an SSH banner), one
/// record per socket however much it sends after, and none for the same process's
/// next connection to the same peer and service within the minute. Without
/// trampolines it reads none and says so.
#[test]
fn first_payloads_are_read_once_a_minute_per_process_peer_and_service_with_trampolines() {
    use rampart_bpf::netflow::NetRecord;
    use std::io::{Read, Write};
    let Some(mut probe) =
        socket_probe_where_trampolines("first payloads", NetflowProbe::reads_first_payload)
    else {
        return;
    };
    // What was read is kept per CPU (see below): this thread stays on one.
    // SAFETY: a zeroed CPU set with one CPU in it, for the calling thread.
    unsafe {
        let mut one: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(libc::sched_getcpu().max(0) as usize, &mut one);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one),
            0
        );
    }
    let (listener, mut client, mut server) = loopback_connection();
    let port = listener.local_addr().expect("its address").port();
    let client_port = client.local_addr().expect("its address").port();
    // A TLS record (handshake, TLS 1.0 record version) holding a ClientHello, longer
    // than the first bytes kept of other payloads (it goes whole).
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x01, 0x27, 0x01, 0x00, 0x01, 0x23, 0x03, 0x03,
    ];
    hello.resize(300, 0x5a);
    client.write_all(&hello).expect("the hello");
    client.write_all(b"more after it").expect("write");
    let banner = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    server.write_all(banner).expect("the banner");
    let mut got = vec![0u8; hello.len() + 13];
    server.read_exact(&mut got).expect("read");
    let mut got = vec![0u8; banner.len()];
    client.read_exact(&mut got).expect("read");
    let mut records = Vec::new();
    probe.read_records(&mut records);
    fn between(records: &[NetRecord], local: u16, remote: u16) -> Vec<&NetRecord> {
        records
            .iter()
            .filter(|r| match r {
                NetRecord::TlsClientHello { flow, .. } | NetRecord::FirstData { flow, .. } => {
                    flow.local_port == local && flow.remote_port == remote
                }
                _ => false,
            })
            .collect()
    }
    match between(&records, client_port, port).as_slice() {
        [NetRecord::TlsClientHello { record, .. }] => assert_eq!(record, &hello),
        other => panic!("the client's ClientHello, once: {other:?}"),
    }
    match between(&records, port, client_port).as_slice() {
        [NetRecord::FirstData { data, .. }] => {
            assert!(data.starts_with(b"SSH-2.0-"), "{data:?}")
        }
        other => panic!("the server's banner, once: {other:?}"),
    }

    // Within the minute, the same process's first payloads to the same peer and
    // service are not read again, at either end (counted); to another service they are.
    let repeated_before = probe.stats().expect("stats").first_payloads_repeated;
    let exchange = |listener: &std::net::TcpListener, first: &[u8]| -> (u16, u16) {
        let port = listener.local_addr().expect("its address").port();
        let mut client = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let (mut server, _) = listener.accept().expect("accept");
        client.write_all(first).expect("write");
        server.write_all(banner).expect("the banner");
        let mut got = vec![0u8; first.len()];
        server.read_exact(&mut got).expect("read");
        let mut got = vec![0u8; banner.len()];
        client.read_exact(&mut got).expect("read");
        (client.local_addr().expect("its address").port(), port)
    };
    let (again_port, _) = exchange(&listener, &hello);
    let other = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let (http_port, other_port) = exchange(&other, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    records.clear();
    probe.read_records(&mut records);
    assert!(
        between(&records, again_port, port).is_empty(),
        "{records:?}"
    );
    assert!(
        between(&records, port, again_port).is_empty(),
        "{records:?}"
    );
    match between(&records, http_port, other_port).as_slice() {
        [NetRecord::FirstData { data, .. }] => assert!(data.starts_with(b"GET /"), "{data:?}"),
        other => panic!("the HTTP request, once: {other:?}"),
    }
    assert_eq!(
        between(&records, other_port, http_port).len(),
        1,
        "the other service's banner: {records:?}"
    );
    let repeated = probe.stats().expect("stats").first_payloads_repeated - repeated_before;
    assert_eq!(repeated, 2, "the second hello and its banner");
}
