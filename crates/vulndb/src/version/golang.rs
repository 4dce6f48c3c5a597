//! Go versions. Modules use semver with a mandatory `v`; pseudo-versions
//! (`v0.0.0-20191109021931-daa7c04131f5`) are pre-releases and `+incompatible` is build
//! metadata, so plain semver order is Go's order. The toolchain (`stdlib`, `toolchain`)
//! writes `go1.21.3`, `go1.21`, `go1.21rc2`; OSV records write those as `1.21.3`,
//! `1.21.0`, `1.21.0-rc.2`, so [`normalize`] maps the former onto the latter.

use std::cmp::Ordering;

/// Maps Go toolchain spellings onto the semver form OSV uses; other versions come back
/// without their leading `v`.
pub fn normalize(version: &str) -> String {
    let trimmed = version.trim();
    let Some(body) = trimmed.strip_prefix("go") else {
        return trimmed.strip_prefix('v').unwrap_or(trimmed).to_string();
    };
    // go1.21rc2 → 1.21.0-rc.2; go1.9beta1 → 1.9.0-beta.1
    let numeric_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (numbers, pre) = body.split_at(numeric_end);
    let mut parts: Vec<&str> = numbers.split('.').filter(|p| !p.is_empty()).collect();
    while parts.len() < 3 {
        parts.push("0");
    }
    let mut out = parts.join(".");
    if !pre.is_empty() {
        let label_end = pre.find(|c: char| c.is_ascii_digit()).unwrap_or(pre.len());
        let (label, number) = pre.split_at(label_end);
        out.push('-');
        out.push_str(label);
        if !number.is_empty() {
            out.push('.');
            out.push_str(number);
        }
    }
    out
}

/// Orders two Go versions (module or toolchain spellings).
pub fn compare(a: &str, b: &str) -> Ordering {
    super::semver::compare(&normalize(a), &normalize(b))
}
