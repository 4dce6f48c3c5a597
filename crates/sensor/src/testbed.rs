//! Shared by the end-to-end tests of every crate: whether the real test bed (root,
//! BTF, a Docker engine and the locally built test image) is here. Elsewhere a test
//! skips and prints why; in CI (`CI` set) it fails instead, so nothing skips silently.

use std::process::Command;

/// The busybox test image built by `scripts/build-test-images`.
pub const TEST_IMAGE: &str = "rampart-test/busybox:latest";

/// Why the end-to-end test bed is unavailable, or `None` when it is ready.
pub fn unavailable(image: &str) -> Option<String> {
    if let Err(e) = rampart_bpf::probe().check_required() {
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
    match unavailable(image) {
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
