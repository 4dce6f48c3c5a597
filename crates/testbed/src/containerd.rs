//! A containerd of the test's own, beside the one the shared dockerd runs: its own
//! root, state directory, socket and config (the CRI plugin off), so a test can run
//! containers the way a Kubernetes node's containerd does (`ctr -n k8s.io run` with
//! the kubelet's CRI labels) without Docker being involved. Images come from the
//! shared engine (`docker save | ctr image import`: there is no registry). Its tasks
//! are killed and its directories removed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The namespace the kubelet's containerd (CRI) uses.
pub const K8S_NAMESPACE: &str = "k8s.io";

pub struct Containerd {
    pub socket: PathBuf,
    pub log: PathBuf,
    root: PathBuf,
    state: PathBuf,
    child: Option<Child>,
}

/// Why a containerd of our own cannot run here, or `None`.
pub fn containerd_unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("a containerd of the test's own needs root".into());
    }
    let ok = |program: &str, arg: &str| {
        Command::new(program)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !ok("containerd", "--version") || !ok("ctr", "--version") {
        return Some(
            "containerd and ctr are not installed (Debian's containerd; run scripts/setup)".into(),
        );
    }
    None
}

impl Containerd {
    /// Starts containerd; `tag` names its directories (start it with the caller's
    /// container prefix).
    pub fn start(tag: &str) -> Result<Self, String> {
        let id = format!("{tag}-{}", std::process::id());
        let root = PathBuf::from(format!("/var/lib/rampart-test/{id}/containerd"));
        // Short: the shims' sockets live under it.
        let state = PathBuf::from(format!("/run/{id}"));
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(&root).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&state).map_err(|e| e.to_string())?;
        let socket = state.join("containerd.sock");
        let config = root.join("config.toml");
        let log = root.join("containerd.log");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{}\"\nstate = \"{}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}.ttrpc\"\n",
                root.join("root").display(),
                state.join("state").display(),
                socket.display(),
                socket.display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let logf = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let errf = logf.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(logf)
            .stderr(errf)
            .spawn()
            .map_err(|e| format!("starting containerd: {e}"))?;
        let mut c = Self {
            socket,
            log,
            root: root.parent().map(PathBuf::from).unwrap_or(root),
            state,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if c.ctr(&["version"]).status.success() {
                return Ok(c);
            }
            if let Some(ch) = c.child.as_mut() {
                if let Ok(Some(st)) = ch.try_wait() {
                    return Err(format!("containerd exited ({st}): {}", c.log_text()));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "containerd did not answer in 30 s: {}",
                    c.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr -a SOCKET -n k8s.io ARGS…`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", K8S_NAMESPACE])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("ctr runs")
    }

    /// Copies an image from the shared Docker engine into the `k8s.io` namespace and
    /// returns the name containerd knows it by (`docker.io/…`).
    pub fn import_image(&self, image: &str) -> Result<String, String> {
        let script = format!(
            "docker save {image} | ctr -a {} -n {K8S_NAMESPACE} image import -",
            self.socket.display()
        );
        let o = Command::new("sh")
            .args(["-c", &script])
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        Ok(
            if image.split('/').next().is_some_and(|h| h.contains('.')) {
                image.to_string()
            } else {
                format!("docker.io/{image}")
            },
        )
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills and deletes every task and container it still has.
    pub fn clean(&self) {
        let ids =
            String::from_utf8_lossy(&self.ctr(&["containers", "list", "-q"]).stdout).into_owned();
        for id in ids.lines().filter(|l| !l.is_empty()) {
            let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", id]);
            let deadline = Instant::now() + Duration::from_secs(5);
            while !self.ctr(&["task", "delete", id]).status.success()
                && self
                    .ctr(&["task", "list", "-q"])
                    .stdout
                    .windows(id.len())
                    .any(|w| w == id.as_bytes())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.ctr(&["containers", "delete", id]);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.clean();
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill on our own child's pid; SIGTERM lets containerd close cleanly.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while !matches!(c.try_wait(), Ok(Some(_))) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // The snapshots are overlay mounts below the root: unmount before removing.
        let _ = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "grep -o ' {}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l",
                    self.root.display()
                ),
            ])
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
