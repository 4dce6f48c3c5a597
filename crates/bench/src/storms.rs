//! The storms: loops of one operation, run in a child process so the sensor (which
//! ignores its own process) sees them. The child prints the storm's elapsed
//! nanoseconds; the parent reads its CPU time from `RUSAGE_CHILDREN`, the robust
//! figure on a shared machine (wall time also counts waiting for a core).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::stats::cpu_time;
use crate::BenchError;

/// One kind of storm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StormKind {
    /// fork + exec `/bin/true` + wait.
    Exec,
    /// open + read one byte + close.
    Open,
    /// Loopback TCP connect, read one byte, close with a reset (SO_LINGER 0).
    Connect,
    /// Loopback TCP connect, read one byte, close with FINs (the server's close
    /// first, so its side waits in TIME_WAIT): how most connections end.
    ConnectFin,
    /// getppid, which the sensor does not watch: the cost of the hook itself.
    Syscall,
    /// A loopback UDP echo, not DNS: sendto, recvfrom, sendto back, recvfrom (what
    /// a program on the receive calls costs the datagrams it does not read).
    Udp,
    /// A bulk transfer over one loopback TCP connection: N MiB written in 64 KiB
    /// writes and read on the other end (flow accounting's per-packet cost).
    Bulk,
    /// A workload of all of them: per round one exec, 20 opens, 2 connects and 200
    /// getppid calls.
    Mixed,
    /// One open per millisecond: latency on a steady stream, not a queue.
    PacedOpen,
    /// One open per [`QUIET_OPEN_INTERVAL`]: each the first event after a quiet spell.
    QuietOpen,
}

impl StormKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::ConnectFin => "connect-fin",
            Self::Syscall => "syscall",
            Self::Udp => "udp",
            Self::Bulk => "bulk",
            Self::Mixed => "mixed",
            Self::PacedOpen => "paced-open",
            Self::QuietOpen => "quiet-open",
        }
    }
}

impl FromStr for StormKind {
    type Err = BenchError;
    fn from_str(s: &str) -> Result<Self, BenchError> {
        Ok(match s {
            "exec" => Self::Exec,
            "open" => Self::Open,
            "connect" => Self::Connect,
            "connect-fin" => Self::ConnectFin,
            "syscall" => Self::Syscall,
            "udp" => Self::Udp,
            "bulk" => Self::Bulk,
            "mixed" => Self::Mixed,
            "paced-open" => Self::PacedOpen,
            "quiet-open" => Self::QuietOpen,
            other => return Err(BenchError::UnknownStorm(other.to_string())),
        })
    }
}

/// Longer than the sensor's quiet threshold: each open of the `quiet-open` storm is
/// the first event after a quiet spell, which the kernel must wake the reader for.
pub const QUIET_OPEN_INTERVAL: Duration = Duration::from_millis(60);

/// How to start a child process of the bench: a program and its leading arguments
/// (e.g. `rampart bench-storm`); the storm's kind and count are appended.
#[derive(Clone, Debug)]
pub struct Child {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl Child {
    /// This executable with the given leading arguments (a hidden subcommand).
    pub fn current_exe(args: &[&str]) -> Result<Self, BenchError> {
        Ok(Self {
            program: std::env::current_exe().map_err(BenchError::io("finding this executable"))?,
            args: args.iter().map(OsString::from).collect(),
        })
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        c
    }
}

/// Wall time a storm child measured, and the CPU time (user + system) it used.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sample {
    pub wall: Duration,
    pub cpu: Duration,
}

/// Runs `n` operations of a storm in a child process; zeros if it could not run.
pub(crate) fn in_child(child: &Child, kind: StormKind, n: u64) -> Sample {
    let cpu_before = cpu_time(libc::RUSAGE_CHILDREN);
    let out = child
        .command()
        .args([kind.as_str(), &n.to_string()])
        .output();
    let cpu = cpu_time(libc::RUSAGE_CHILDREN).saturating_sub(cpu_before);
    let ns = out
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    Sample {
        wall: Duration::from_nanos(ns),
        cpu,
    }
}

/// The child's side: runs `n` operations of the storm and returns the elapsed time
/// (the caller prints its nanoseconds).
pub fn run_storm(kind: StormKind, n: u64) -> Result<Duration, BenchError> {
    let file = crate::bench_file()?;
    Ok(match kind {
        StormKind::Exec => exec_storm(n)?,
        StormKind::Open => open_storm(n, &file),
        StormKind::Connect => connect_storm(n, true),
        StormKind::ConnectFin => connect_storm(n, false),
        StormKind::Syscall => syscall_storm(n),
        StormKind::Udp => udp_storm(n),
        StormKind::Bulk => bulk_storm(n),
        StormKind::Mixed => mixed_storm(n, &file)?,
        StormKind::PacedOpen => paced_open_storm(n, &file, Duration::from_millis(1)),
        StormKind::QuietOpen => paced_open_storm(n, &file, QUIET_OPEN_INTERVAL),
    })
}

/// What the exec storm runs. It must exist and succeed: a failed exec (fork, an
/// execve that returns ENOENT, exit) is a different and much cheaper workload.
const EXEC_TARGET: &str = "/bin/true";

fn exec_once() -> Result<(), BenchError> {
    let status = Command::new(EXEC_TARGET)
        .status()
        .map_err(BenchError::io(format!("exec storm: running {EXEC_TARGET}")))?;
    if !status.success() {
        return Err(BenchError::Io {
            what: format!("exec storm: {EXEC_TARGET}"),
            source: std::io::Error::other(format!("exited with {status}")),
        });
    }
    Ok(())
}

fn exec_storm(n: u64) -> Result<Duration, BenchError> {
    let t = Instant::now();
    for _ in 0..n {
        exec_once()?;
    }
    Ok(t.elapsed())
}

fn open_storm(n: u64, path: &Path) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        if let Ok(mut f) = std::fs::File::open(path) {
            let mut b = [0u8; 1];
            let _ = f.read(&mut b);
        }
    }
    t.elapsed()
}

fn syscall_storm(n: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: getppid has no arguments and no side effects.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
    t.elapsed()
}

fn udp_storm(n: u64) -> Duration {
    let (Ok(a), Ok(b)) = (
        std::net::UdpSocket::bind("127.0.0.1:0"),
        std::net::UdpSocket::bind("127.0.0.1:0"),
    ) else {
        return Duration::ZERO;
    };
    let (Ok(a_addr), Ok(b_addr)) = (a.local_addr(), b.local_addr()) else {
        return Duration::ZERO;
    };
    let mut buf = [0u8; 64];
    let t = Instant::now();
    for _ in 0..n {
        let echoed = a.send_to(b"ping", b_addr).is_ok()
            && b.recv_from(&mut buf).is_ok()
            && b.send_to(b"pong", a_addr).is_ok()
            && a.recv_from(&mut buf).is_ok();
        if !echoed {
            return Duration::ZERO;
        }
    }
    t.elapsed()
}

fn paced_open_storm(n: u64, path: &Path, interval: Duration) -> Duration {
    let t = Instant::now();
    for _ in 0..n {
        let _ = std::fs::File::open(path);
        std::thread::sleep(interval);
    }
    t.elapsed()
}

fn connect_storm(n: u64, reset: bool) -> Duration {
    let Some((addr, acceptor)) = loopback_acceptor(n) else {
        return Duration::ZERO;
    };
    let t = Instant::now();
    for _ in 0..n {
        if reset {
            connect_once(addr);
        } else if let Ok(mut s) = TcpStream::connect(addr) {
            let mut b = [0u8; 2];
            // The byte, then the server's FIN.
            while matches!(s.read(&mut b), Ok(n) if n > 0) {}
        }
    }
    let d = t.elapsed();
    let _ = acceptor.join();
    d
}

/// Writes `mib` MiB over one loopback TCP connection to a reader thread; the time
/// runs from the first write to the reader's last byte.
fn bulk_storm(mib: u64) -> Duration {
    const CHUNK: usize = 64 << 10;
    let Ok(listener) = TcpListener::bind("127.0.0.1:0") else {
        return Duration::ZERO;
    };
    let Ok(addr) = listener.local_addr() else {
        return Duration::ZERO;
    };
    let reader = std::thread::spawn(move || {
        let mut total = 0u64;
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = vec![0u8; CHUNK];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
        }
        total
    });
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Duration::ZERO;
    };
    let buf = vec![0x5au8; CHUNK];
    let t = Instant::now();
    for _ in 0..mib * (1 << 20) / CHUNK as u64 {
        if s.write_all(&buf).is_err() {
            break;
        }
    }
    drop(s);
    let received = reader.join().unwrap_or(0);
    let d = t.elapsed();
    // A transfer cut short is no figure.
    if received != mib << 20 {
        return Duration::ZERO;
    }
    d
}

/// A loopback listener answering `n` connections with one byte each, on its own thread.
fn loopback_acceptor(n: u64) -> Option<(std::net::SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = listener.local_addr().ok()?;
    let acceptor = std::thread::spawn(move || {
        for _ in 0..n {
            match listener.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(b"x");
                }
                Err(_) => break,
            }
        }
    });
    Some((addr, acceptor))
}

/// Connects, reads the byte, and closes with a reset (SO_LINGER 0): no connection is
/// left in TIME_WAIT, so a storm does not slow the ones after it (in the -icount guest
/// the bare connect storm ran 36% faster after an arm than before it otherwise).
fn connect_once(addr: std::net::SocketAddr) {
    use std::os::fd::AsRawFd;
    if let Ok(mut s) = TcpStream::connect(addr) {
        let mut b = [0u8; 1];
        let _ = s.read(&mut b);
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid socket and a correctly sized linger struct.
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }
}

/// `n` rounds of a mixed workload (see [`StormKind::Mixed`]).
fn mixed_storm(n: u64, path: &Path) -> Result<Duration, BenchError> {
    const OPENS: u64 = 20;
    const CONNECTS: u64 = 2;
    const SYSCALLS: u64 = 200;
    let Some((addr, acceptor)) = loopback_acceptor(n * CONNECTS) else {
        return Ok(Duration::ZERO);
    };
    let t = Instant::now();
    for _ in 0..n {
        exec_once()?;
        open_storm(OPENS, path);
        for _ in 0..CONNECTS {
            connect_once(addr);
        }
        syscall_storm(SYSCALLS);
    }
    let d = t.elapsed();
    let _ = acceptor.join();
    Ok(d)
}

/// Environment of the throughput generator child: seconds to run, file to open.
pub(crate) const GEN_SECS_ENV: &str = "RAMPART_BENCH_GEN_SECS";
pub(crate) const GEN_FILE_ENV: &str = "RAMPART_BENCH_GEN_FILE";

/// The throughput generator child's side: opens a file in a loop for the seconds
/// its environment gives.
pub fn gen_opens() {
    let secs: u64 = std::env::var(GEN_SECS_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let path = std::env::var(GEN_FILE_ENV).unwrap_or_else(|_| "/etc/hostname".into());
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        for _ in 0..1000 {
            let _ = std::fs::File::open(&path);
        }
    }
}

/// Spawns the throughput generator child.
pub(crate) fn spawn_gen(
    child: &Child,
    secs: u64,
    file: &Path,
) -> std::io::Result<std::process::Child> {
    child
        .command()
        .env(GEN_SECS_ENV, secs.to_string())
        .env(GEN_FILE_ENV, file)
        .spawn()
}
