//! Shared by the end-to-end tests of every crate: whether the real test bed (root,
//! BTF, a Docker engine and the locally built test image) is here. Elsewhere a test
//! skips and prints why; in CI (`CI` set) it fails instead, so nothing skips silently.
//! Also the Docker helpers those tests share: `docker()`, test containers and networks.

use std::process::Command;

/// The busybox test image built by `scripts/build-test-images`.
pub const TEST_IMAGE: &str = "rampart-test/busybox:latest";

/// Why the end-to-end test bed is unavailable, or `None` when it is ready.
pub fn unavailable(image: &str) -> Option<String> {
    if let Err(e) = rampart_bpf::check_requirements() {
        return Some(e.to_string());
    }
    let image_ok = Command::new("docker")
        .args(["image", "inspect", image])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    (!image_ok).then(|| format!("docker or the image {image} is missing (run scripts/setup)"))
}

/// True when the test bed is ready; otherwise prints the reason and returns false,
/// or panics under CI.
pub fn ready(image: &str) -> bool {
    present_or_skip(unavailable(image))
}

/// As [`ready`], for tests that need only root and the kernel (no Docker).
pub fn kernel_ready() -> bool {
    present_or_skip(
        rampart_bpf::check_requirements()
            .err()
            .map(|e| e.to_string()),
    )
}

fn present_or_skip(missing: Option<String>) -> bool {
    match missing {
        None => true,
        Some(reason) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "end-to-end test cannot run in CI: {reason}"
            );
            eprintln!("skipping end-to-end test: {reason}");
            false
        }
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
        let _ = Command::new("docker").args(["rm", "-f", name]).output();
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
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}
