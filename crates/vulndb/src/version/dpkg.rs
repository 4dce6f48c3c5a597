//! Debian package versions (`[epoch:]upstream[-revision]`), ordered as
//! `dpkg --compare-versions` does (deb-version(7), dpkg's `verrevcmp`).

use std::cmp::Ordering;

use super::cmp_decimal;

/// A Debian version split into its three parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebianVersion<'a> {
    /// Numeric epoch as written (empty means 0).
    pub epoch: &'a str,
    pub upstream: &'a str,
    /// Debian revision (empty when absent, which orders like `0`).
    pub revision: &'a str,
}

/// Splits a version into epoch, upstream version and revision as dpkg does: the epoch
/// ends at the first `:`, the revision starts after the last `-`.
pub fn parse(version: &str) -> DebianVersion<'_> {
    let version = version.trim();
    let (epoch, rest) = match version.split_once(':') {
        Some((epoch, rest)) if epoch.bytes().all(|c| c.is_ascii_digit()) => (epoch, rest),
        // dpkg rejects a non-numeric epoch; keep the whole string as upstream so the
        // order stays total.
        _ => ("", version),
    };
    let (upstream, revision) = match rest.rfind('-') {
        Some(dash) => (&rest[..dash], &rest[dash + 1..]),
        None => (rest, ""),
    };
    DebianVersion {
        epoch,
        upstream,
        revision,
    }
}

/// Orders two Debian versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = parse(a);
    let b = parse(b);
    cmp_decimal(a.epoch, b.epoch)
        .then_with(|| verrevcmp(a.upstream.as_bytes(), b.upstream.as_bytes()))
        .then_with(|| verrevcmp(a.revision.as_bytes(), b.revision.as_bytes()))
}

/// Sort weight of one non-digit character: `~` before end of string, end before
/// letters, letters before everything else.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`: alternate non-digit runs (compared by [`order`]) and digit runs
/// (compared numerically).
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let (mut i, mut j) = (0usize, 0usize);
    let at = |s: &[u8], k: usize| s.get(k).copied();
    while i < a.len() || j < b.len() {
        while at(a, i).is_some_and(|c| !c.is_ascii_digit())
            || at(b, j).is_some_and(|c| !c.is_ascii_digit())
        {
            let ac = order(at(a, i));
            let bc = order(at(b, j));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        let start_a = i;
        while at(a, i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        let start_b = j;
        while at(b, j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        let ord = cmp_decimal(
            std::str::from_utf8(&a[start_a..i]).unwrap_or("0"),
            std::str::from_utf8(&b[start_b..j]).unwrap_or("0"),
        );
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
