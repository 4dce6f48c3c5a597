//! Rampart's test bed, for tests only: the one policy for tests that need something
//! this machine may lack (root and the kernel's BPF features, a Docker engine, a test
//! image, a system tool), and the Docker helpers the end-to-end tests share.
//!
//! The policy: where a prerequisite is missing, a test prints why and skips; under CI
//! (`CI` set to anything but empty, `0` or `false`) it fails instead, so nothing skips
//! silently where the suite is meant to run whole. `CI` is read once, here.

pub mod containerd;
pub mod dockerd;
pub mod http;

use std::fmt::Display;
use std::process::Command;
use std::sync::OnceLock;

/// The busybox test image built by `scripts/build-test-images`.
pub const TEST_IMAGE: &str = "rampart-test/busybox:latest";

/// The Debian test image built by `scripts/build-debian-image`.
pub const DEBIAN_IMAGE: &str = "rampart-test/debian:12";

/// True under CI, where a missing prerequisite is a failure, not a skip.
pub fn in_ci() -> bool {
    static IN_CI: OnceLock<bool> = OnceLock::new();
    *IN_CI.get_or_init(|| {
        std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE"))
    })
}

/// A prerequisite is missing: prints why (the test then returns), or panics under CI.
pub fn skip_or_fail(reason: impl Display) {
    assert!(!in_ci(), "required in CI: {reason}");
    eprintln!("skipping: {reason}");
}

/// True when nothing is missing; otherwise [`skip_or_fail`] and false.
pub fn require(missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(reason) => {
            skip_or_fail(reason);
            false
        }
    }
}

/// Why the kernel side is unavailable (not root, no BTF, no BPF), or `None`.
pub fn kernel_unavailable() -> Option<String> {
    rampart_bpf::check_requirements()
        .err()
        .map(|e| e.to_string())
}

/// True when a local image is present.
pub fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Why the end-to-end test bed (kernel, Docker, `image`) is unavailable, or `None`.
pub fn unavailable(image: &str) -> Option<String> {
    kernel_unavailable().or_else(|| {
        (!image_present(image))
            .then(|| format!("docker or the image {image} is missing (run scripts/setup)"))
    })
}

/// True when the test bed for containers of `image` is ready; otherwise skips or fails.
pub fn ready(image: &str) -> bool {
    require(unavailable(image))
}

/// As [`ready`], for tests that need only root and the kernel (no Docker).
pub fn kernel_ready() -> bool {
    require(kernel_unavailable())
}

/// The BPF object the kernel tests load: the one `make -C bpf rebuild` just built when
/// `RAMPART_BPF_OBJECT` names it (scripts/test), so they exercise the current C on
/// this kernel; else `None`, the embedded (committed) object.
pub fn bpf_object() -> Option<Vec<u8>> {
    let path = std::env::var_os("RAMPART_BPF_OBJECT")?;
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("RAMPART_BPF_OBJECT={}: {e}", path.to_string_lossy()),
    }
}

/// The netflow object the kernel tests load: `RAMPART_NETFLOW_OBJECT` when set (the
/// one `make -C bpf rebuild` just built), else `None`, the embedded one.
pub fn netflow_object() -> Option<Vec<u8>> {
    let path = std::env::var_os("RAMPART_NETFLOW_OBJECT")?;
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(e) => panic!("RAMPART_NETFLOW_OBJECT={}: {e}", path.to_string_lossy()),
    }
}

/// True when `program` runs (`program ARGS…` exits at all); otherwise skips or fails
/// with `why` (what installs it).
pub fn tool_ready(program: &str, args: &[&str], why: &str) -> bool {
    let runs = Command::new(program).args(args).output().is_ok();
    runs || {
        skip_or_fail(format!("{program} is not available: {why}"));
        false
    }
}

/// Runs docker and returns stdout; panics with stderr on failure.
pub fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `docker rm -f NAME`, ignoring whether it existed.
pub fn remove_container(name: &str) {
    let _ = Command::new("docker").args(["rm", "-f", name]).output();
}

/// A user-defined Docker network (containers on it resolve each other by name).
pub struct TestNetwork {
    pub name: String,
}

impl TestNetwork {
    pub fn create(name: &str) -> Self {
        let _ = Command::new("docker")
            .args(["network", "rm", name])
            .output();
        docker(&["network", "create", name]);
        Self {
            name: name.to_string(),
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["network", "rm", &self.name])
            .output();
    }
}

/// A container of the test image, removed on drop.
pub struct TestContainer {
    pub id: String,
    pub name: String,
}

impl TestContainer {
    /// `docker run -d --name NAME EXTRA… IMAGE CMD…` (CMD defaults to `sleep 300`).
    pub fn start(name: &str, extra: &[&str], cmd: &[&str]) -> Self {
        remove_container(name);
        let mut args = vec!["run", "-d", "--name", name];
        args.extend_from_slice(extra);
        args.push(TEST_IMAGE);
        if cmd.is_empty() {
            args.extend_from_slice(&["sleep", "300"]);
        } else {
            args.extend_from_slice(cmd);
        }
        let id = docker(&args);
        Self {
            id,
            name: name.to_string(),
        }
    }

    /// `docker exec NAME sh -c SCRIPT` without a terminal; returns stdout.
    pub fn exec(&self, script: &str) -> String {
        let out = Command::new("docker")
            .args(["exec", &self.name, "sh", "-c", script])
            .output()
            .expect("docker exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `docker exec -it` under a real pseudo-terminal (util-linux `script`), so the
    /// shell in the container gets a controlling tty as with an interactive user.
    pub fn exec_tty(&self, script: &str) -> String {
        let inner = format!(
            "docker exec -it {} sh -c '{}'",
            self.name,
            script.replace('\'', r"'\''")
        );
        let out = Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("script runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The container's address on a network.
    pub fn ip(&self, network: &str) -> String {
        docker(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
            &self.name,
        ])
    }
}

impl Drop for TestContainer {
    fn drop(&mut self) {
        remove_container(&self.name);
    }
}

/// The PostgreSQL scripts/setup starts: `RAMPART_TEST_PG` (a libpq connection string),
/// else the local `rampart` role and database on 127.0.0.1.
pub fn postgres_url() -> String {
    std::env::var("RAMPART_TEST_PG").unwrap_or_else(|_| {
        "host=127.0.0.1 port=5432 user=rampart password=rampart dbname=rampart".into()
    })
}

/// The PostgreSQL URL when the server answers on its port; otherwise skips or fails
/// (`RAMPART_TEST_PG_ADDR` names the port to try, 127.0.0.1:5432 by default).
pub fn postgres_ready() -> Option<String> {
    let addr = std::env::var("RAMPART_TEST_PG_ADDR").unwrap_or_else(|_| "127.0.0.1:5432".into());
    if port_open(&addr) {
        Some(postgres_url())
    } else {
        skip_or_fail(format!(
            "PostgreSQL is not listening on {addr} (scripts/setup starts it)"
        ));
        None
    }
}

/// Polls `f` every 100 ms until it returns `Some` (returned) or `limit` passes (`None`).
pub fn wait_for<T>(limit: std::time::Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    None
}

/// True when something accepts TCP connections at `addr` (`host:port`).
pub fn port_open(addr: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(mut addrs) = addr.to_socket_addrs() else {
        return false;
    };
    addrs.any(|a| {
        std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(500)).is_ok()
    })
}

/// True when `nats-server` (Debian's, from scripts/setup) can be started; else skips
/// or fails.
pub fn nats_server_ready() -> bool {
    tool_ready(
        "nats-server",
        &["--version"],
        "scripts/setup installs Debian's nats-server",
    )
}

/// A nats-server of the test's own (streams under `store_dir`) and the PostgreSQL URL,
/// for tests of central's path from the bus into its store; `None` (skipped or failed,
/// as [`nats_server_ready`] and [`postgres_ready`] say) when either is missing.
pub fn nats_and_postgres(store_dir: &std::path::Path) -> Option<(NatsServer, String)> {
    if !nats_server_ready() {
        return None;
    }
    let url = postgres_ready()?;
    Some((NatsServer::start(store_dir), url))
}

/// A nats-server with JetStream of a test's own, on a free loopback port, so a test can
/// kill and restart it without disturbing anyone else's. Killed on drop.
pub struct NatsServer {
    pub port: u16,
    pub store_dir: std::path::PathBuf,
    /// Extra nats-server configuration (e.g. a `tls { … }` block), passed with `-c`.
    pub config: Option<String>,
    child: Option<std::process::Child>,
}

impl NatsServer {
    /// Starts `nats-server -js` keeping its streams under `store_dir`, and waits until it
    /// accepts connections.
    pub fn start(store_dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = Self {
            port,
            store_dir: store_dir.to_path_buf(),
            config: None,
            child: None,
        };
        s.restart();
        s
    }

    /// As [`NatsServer::start`] with extra configuration text (written next to the
    /// store and passed with `-c`), e.g. a `tls { … verify: true }` block.
    pub fn start_with_config(store_dir: &std::path::Path, config: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = Self {
            port,
            store_dir: store_dir.to_path_buf(),
            config: Some(config.to_string()),
            child: None,
        };
        s.restart();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to clients) and waits for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store (after [`NatsServer::kill`]).
    pub fn restart(&mut self) {
        self.kill();
        std::fs::create_dir_all(&self.store_dir).expect("nats store dir");
        let log = std::fs::File::create(self.store_dir.join("nats-server.log")).ok();
        let mut cmd = Command::new("nats-server");
        cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()]);
        // A configuration with its own `jetstream { store_dir }` keeps JetStream across
        // a reload (command-line -js/-sd do not survive one, and may not be repeated).
        if !self
            .config
            .as_deref()
            .is_some_and(|c| c.contains("jetstream"))
        {
            cmd.arg("-js").arg("-sd").arg(&self.store_dir);
        }
        if let Some(conf) = &self.config {
            let path = self.store_dir.join("nats-server.conf");
            std::fs::write(&path, conf).expect("nats-server config");
            cmd.arg("-c").arg(path);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        match log {
            Some(f) => cmd.stderr(f),
            None => cmd.stderr(std::process::Stdio::null()),
        };
        self.child = Some(cmd.spawn().expect("nats-server starts"));
        let addr = format!("127.0.0.1:{}", self.port);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !port_open(&addr) {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not listen on {addr}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Where Debian's PostgreSQL 15 server programs are (scripts/setup installs them).
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// True when a PostgreSQL server of a test's own can be started (Debian's
/// PostgreSQL 15 programs and the `postgres` system user); else skips or fails.
pub fn pg_server_ready() -> bool {
    let have = std::path::Path::new(PG_BIN).join("pg_ctl").is_file()
        && Command::new("id")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success());
    if !have {
        skip_or_fail(format!(
            "{PG_BIN}/pg_ctl and the postgres user are missing (scripts/setup installs PostgreSQL 15)"
        ));
    }
    have
}

/// A PostgreSQL server of a test's own on a free loopback port (never the shared one
/// on 5432), so a test can stop and restart it. Its superuser `rampart_test` has a
/// random password. Stopped on drop.
pub struct PgServer {
    pub port: u16,
    pub data_dir: std::path::PathBuf,
    password: String,
    running: bool,
}

impl PgServer {
    /// `initdb` into `dir` (as the postgres user) and start the server.
    pub fn start(dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        std::fs::create_dir_all(dir).expect("pg dir");
        let data_dir = dir.join("data");
        let password = format!("pw{:x}{:x}", std::process::id(), port as u64 * 7919);
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).expect("pwfile");
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .expect("chown");
        assert!(status.success(), "chown {}", dir.display());
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/initdb"))
            .args(["-U", "rampart_test", "--auth=scram-sha-256", "-E", "UTF8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(&data_dir)
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut s = Self {
            port,
            data_dir,
            password,
            running: false,
        };
        s.restart();
        s
    }

    /// A libpq connection string for the server's `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=rampart_test password={} dbname=postgres",
            self.port, self.password
        )
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(format!("{PG_BIN}/pg_ctl"))
            .arg("-D")
            .arg(&self.data_dir)
            .args(args)
            .output()
            .expect("pg_ctl runs")
    }

    /// Stops the server (fast shutdown: clients are disconnected).
    pub fn stop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["stop", "-m", "fast", "-w"]);
            self.running = false;
        }
    }

    /// Starts it (again) on the same port and data, and waits until it accepts.
    pub fn restart(&mut self) {
        self.stop();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.data_dir.display()
        );
        let log = self.data_dir.with_file_name("postgres.log");
        let out = self.pg_ctl(&["start", "-w", "-o", &opts, "-l", &log.to_string_lossy()]);
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        self.running = true;
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}
