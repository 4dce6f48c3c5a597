//! What the image-scan tests share: reading the scanner's JSON reports (and the
//! testbed's poller).
#![allow(dead_code)]

pub use rampart_testbed::wait_for;
use std::path::Path;

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
