//! What the image-scan tests share: polling, and reading the scanner's JSON reports.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

/// Polls `f` every 100 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// The scan report at `path`, once it is there and whole.
pub fn report(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The report's finding for `package`.
pub fn finding<'a>(report: &'a serde_json::Value, package: &str) -> Option<&'a serde_json::Value> {
    report["vulnerabilities"]
        .as_array()?
        .iter()
        .find(|v| v["package_name"] == package)
}
