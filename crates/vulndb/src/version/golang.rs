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
    let body = match trimmed.strip_prefix("go") {
        Some(body) => body,
        None => {
            let bare = trimmed.strip_prefix('v').unwrap_or(trimmed);
            // A toolchain version that lost its `go` prefix on the way (`v1.27rc2`,
            // `1.21`): fewer than three numbers, or a pre-release glued to the numbers,
            // which semver never writes. Module versions are full semver and pass as is.
            if !is_toolchain_shape(bare) {
                return bare.to_string();
            }
            bare
        }
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

/// `1.21`, `1.21rc2`, `1.9beta1`, `1.21.3rc1`: numbers then (optionally) a letter.
fn is_toolchain_shape(version: &str) -> bool {
    let numeric_end = version
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(version.len());
    let (numbers, rest) = version.split_at(numeric_end);
    if numbers.is_empty() || numbers.ends_with('.') || numbers.contains("..") {
        return false;
    }
    let parts = numbers.split('.').count();
    let glued_label = rest.starts_with(|c: char| c.is_ascii_alphabetic())
        && rest[1..].chars().all(|c| c.is_ascii_alphanumeric());
    (rest.is_empty() && parts < 3) || (glued_label && parts <= 3)
}

/// Orders two Go versions (module or toolchain spellings).
pub fn compare(a: &str, b: &str) -> Ordering {
    super::semver::compare(&normalize(a), &normalize(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchain_spellings_normalise_as_go_writes_them() {
        for (given, expected) in [
            ("go1.27rc2", "1.27.0-rc.2"),
            ("v1.27rc2", "1.27.0-rc.2"),
            ("1.27rc2", "1.27.0-rc.2"),
            ("go1.21", "1.21.0"),
            ("1.21", "1.21.0"),
            ("go1.9beta1", "1.9.0-beta.1"),
            ("go1.21.3", "1.21.3"),
            ("v1.21.3", "1.21.3"),
            (
                "v0.0.0-20191109021931-daa7c04131f5",
                "0.0.0-20191109021931-daa7c04131f5",
            ),
            ("v2.0.0+incompatible", "2.0.0+incompatible"),
            ("1.27.0-rc.3", "1.27.0-rc.3"),
        ] {
            assert_eq!(normalize(given), expected, "{given}");
        }
    }

    /// A binary built by an rc toolchain is ordered against the rc an advisory names:
    /// `go1.27rc2` is before `1.27.0-rc.3` (fixed there), after `1.27.0-rc.1`.
    #[test]
    fn release_candidates_order_against_osv_spellings() {
        assert_eq!(compare("go1.27rc2", "1.27.0-rc.3"), Ordering::Less);
        assert_eq!(compare("v1.27rc2", "1.27.0-rc.3"), Ordering::Less);
        assert_eq!(compare("go1.27rc2", "1.27.0-rc.1"), Ordering::Greater);
        assert_eq!(compare("go1.27rc2", "1.27.0"), Ordering::Less);
        assert_eq!(compare("go1.27rc2", "1.26.9"), Ordering::Greater);
        assert_eq!(compare("go1.27rc2", "1.27.0-rc.2"), Ordering::Equal);
    }
}
