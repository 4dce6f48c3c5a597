//! `cargo bench -p rampart-netflow --bench kernel_read` (root, cgroup v2): what one
//! poll of the node's network stage costs in user space as the kernel's flow table
//! fills with idle flows, the read before (the whole table and every connect owner,
//! two system calls an entry) against the read of only the flows the kernel reported
//! changed, in the same run on the same table. Prints JSON.
//!
//! The table is filled by loopback connects (two flows each, the client's and the
//! server's) from a child process in a cgroup of the bench's own, the programs
//! attached there.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rampart_bpf::netflow::{NetflowOptions, NetflowProbe};

const STORM: &str = r#"
import socket, struct, sys, threading
n = int(sys.argv[1])
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096)
port = s.getsockname()[1]
def accept():
    for _ in range(n):
        c, _ = s.accept(); c.close()
t = threading.Thread(target=accept); t.start()
for _ in range(n):
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
t.join()
"#;

/// Runs `n` loopback connects in a child placed in `cgroup`.
fn connects(cgroup: &std::path::Path, n: usize) -> Result<Duration, String> {
    let procs = cgroup.join("cgroup.procs");
    let t = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && exec python3 -c '{STORM}' {n}",
            procs.display()
        ))
        .status()
        .map_err(|e| format!("sh: {e}"))?;
    if !status.success() {
        return Err(format!("connect storm: {status}"));
    }
    Ok(t.elapsed())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn timed<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let r = f();
    (t.elapsed().as_secs_f64() * 1e3, r)
}

struct Cgroup(PathBuf);

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn run() -> Result<serde_json::Value, String> {
    let root =
        rampart_netflow::directory::cgroup2_root().ok_or("no cgroup v2 hierarchy mounted")?;
    let dir = root.join(format!("rampart-net-read-bench-{}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cgroup = Cgroup(dir);
    let mut probe =
        NetflowProbe::load(None, NetflowOptions::default()).map_err(|e| e.to_string())?;
    probe.attach(&cgroup.0).map_err(|e| e.to_string())?;
    let rounds = 5;
    let mut out = Vec::new();
    let mut sink = Vec::new();
    for fill in [2_500usize, 5_000, 10_000] {
        // The table now holds about 2 × (this and the earlier fills) flows, idle.
        connects(&cgroup.0, fill)?;
        probe.read_changes(&mut sink).map_err(|e| e.to_string())?;
        sink.clear();
        let flows = probe.flows().map_err(|e| e.to_string())?.len();
        let (mut whole, mut idle, mut busy) = (Vec::new(), Vec::new(), Vec::new());
        let changed_connects = 100;
        let mut changed = 0;
        for _ in 0..rounds {
            // The read before: every connect owner, then the whole table.
            let (ms, r) = timed(|| {
                let owners = probe.owners().map(|o| o.len());
                let all = probe.flows().map(|f| f.len());
                (owners, all)
            });
            r.0.map_err(|e| e.to_string())?;
            r.1.map_err(|e| e.to_string())?;
            whole.push(ms);
            // The read now, nothing changed since the last one.
            let (ms, r) = timed(|| probe.read_changes(&mut sink));
            r.map_err(|e| e.to_string())?;
            sink.clear();
            idle.push(ms);
            // The read now after 100 new connections.
            connects(&cgroup.0, changed_connects)?;
            let (ms, r) = timed(|| probe.read_changes(&mut sink));
            let r = r.map_err(|e| e.to_string())?;
            changed = r.changed;
            sink.clear();
            busy.push(ms);
        }
        out.push(serde_json::json!({
            "flows_in_table": flows,
            "read_whole_table_ms": median(whole),
            "read_changes_idle_ms": median(idle),
            "read_changes_after_100_connects_ms": median(busy),
            "flows_changed_per_100_connects": changed,
        }));
    }
    let stats = probe.stats().map_err(|e| e.to_string())?;
    Ok(serde_json::json!({ "rounds": rounds, "reads": out, "kernel": stats }))
}

fn main() {
    match run() {
        Ok(v) => println!("{v:#}"),
        Err(e) => {
            eprintln!("kernel_read bench skipped: {e} (it needs root, cgroup v2 and python3)");
        }
    }
}
