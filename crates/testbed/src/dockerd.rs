//! A dockerd of the test's own, beside the shared one: its own data root, exec root,
//! pid file, API socket, managed containerd namespace and network namespace, no
//! iptables and no bridge, so a test can reconfigure or break it (an authorization
//! plugin, a reload) without disturbing anyone. Stopped and its directories removed
//! on drop.
//!
//! The network namespace matters: a dockerd started with `--bridge=none` deletes the
//! host's `docker0` (moby's removeDefaultBridgeInterface), which breaks the shared
//! engine's default network; in a namespace of its own it deletes nothing of ours.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct Dockerd {
    /// `unix:///…`, for `docker -H`.
    pub host: String,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    /// Its daemon.json (`--config-file`).
    pub config: PathBuf,
    pub log: PathBuf,
    data_root: PathBuf,
    exec_root: PathBuf,
    child: Option<Child>,
}

/// Why a dockerd of our own cannot run here, or `None`.
pub fn dockerd_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("a second dockerd needs root".into());
    }
    let ok = |program: &str| {
        Command::new(program)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok("unshare") {
        return Some("unshare (util-linux) is missing".into());
    }
    (!ok("dockerd")).then(|| "dockerd is not installed (run scripts/setup)".into())
}

impl Dockerd {
    /// Starts dockerd with `daemon_json` as its configuration file; `tag` names its
    /// directories (start it with the caller's container prefix).
    pub fn start(tag: &str, daemon_json: &str) -> Result<Self, String> {
        let id = format!("{tag}-{}", std::process::id());
        let data_root = PathBuf::from(format!("/var/lib/rampart-test/{id}"));
        // Short: containerd's and the shim's sockets live under it.
        let exec_root = PathBuf::from(format!("/run/{id}"));
        let _ = std::fs::remove_dir_all(&exec_root);
        std::fs::create_dir_all(&data_root).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&exec_root).map_err(|e| e.to_string())?;
        let socket = exec_root.join("docker.sock");
        let pidfile = exec_root.join("docker.pid");
        let config = data_root.join("daemon.json");
        let log = data_root.join("dockerd.log");
        std::fs::write(&config, daemon_json).map_err(|e| e.to_string())?;
        let logf = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let errf = logf.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg(format!("--data-root={}", data_root.join("root").display()))
            .arg(format!("--exec-root={}", exec_root.join("exec").display()))
            .arg(format!("--pidfile={}", pidfile.display()))
            .arg(format!("--config-file={}", config.display()))
            .arg(format!("-H=unix://{}", socket.display()))
            .arg(format!("--containerd-namespace={id}"))
            .arg(format!("--containerd-plugins-namespace={id}-plugins"))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(errf)
            .spawn()
            .map_err(|e| format!("starting dockerd: {e}"))?;
        let mut d = Self {
            host: format!("unix://{}", socket.display()),
            socket,
            pidfile,
            config,
            log,
            data_root,
            exec_root,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if d.docker(&["version", "--format", "{{.Server.Version}}"])
                .status
                .success()
            {
                return Ok(d);
            }
            if let Some(c) = d.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    return Err(format!("dockerd exited ({st}): {}", d.log_text()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!("dockerd did not answer in 60 s: {}", d.log_text()));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `docker -H THIS ARGS…`.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .output()
            .expect("docker runs")
    }

    /// Copies an image from the shared engine into this one.
    pub fn load_image(&self, image: &str) -> Result<(), String> {
        let script = format!("docker save {image} | docker -H {} load", self.host);
        let o = Command::new("sh")
            .args(["-c", &script])
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).into_owned())
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.exec_root);
        let _ = std::fs::remove_dir_all(&self.data_root);
    }
}
