//! Semantic Versioning 2.0 order (npm, crates.io, Hex, OSV `SEMVER` ranges), tolerant
//! of a leading `v` and of fewer or more than three numeric parts, as advisories
//! contain both.

use std::cmp::Ordering;

use super::{cmp_decimal, cmp_decimal_lists, is_decimal};

/// A version split into numeric parts and the text after them (pre-release and build
/// metadata, with their leading `-`/`+`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemverLike {
    pub leading_v: bool,
    pub numbers: Vec<String>,
    pub rest: String,
}

/// Splits `v1.2.3-rc.1+build` into `[1, 2, 3]` and `-rc.1+build`. Numeric parts past
/// `max_numbers` are appended to the rest as `.N` (so `1.2.3.4` is a pre-release of
/// `1.2.3` under semver rules).
pub fn parse_semver_like(version: &str, max_numbers: usize) -> SemverLike {
    let leading_v = version.starts_with('v');
    let body = version.strip_prefix('v').unwrap_or(version);
    let mut numbers = Vec::new();
    let mut rest = String::new();
    let mut current = String::new();
    for (pos, c) in body.char_indices() {
        if c.is_ascii_digit() {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            numbers.push(std::mem::take(&mut current));
        }
        if c == '.' {
            continue;
        }
        rest = body[pos..].to_string();
        break;
    }
    if rest.is_empty() && !current.is_empty() {
        numbers.push(current);
    }
    if numbers.len() > max_numbers {
        let extra: String = numbers[max_numbers..]
            .iter()
            .map(|n| match n.trim_start_matches('0') {
                "" => ".0".to_string(),
                digits => format!(".{digits}"),
            })
            .collect();
        numbers.truncate(max_numbers);
        rest = extra + &rest;
    }
    SemverLike {
        leading_v,
        numbers,
        rest,
    }
}

/// Compares the pre-release parts of two versions by semver §11 (build metadata
/// after `+` is ignored; a version without pre-release is greater).
pub fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let a = a.split('+').next().unwrap_or("");
    let b = b.split('+').next().unwrap_or("");
    let a = a.strip_prefix('-').unwrap_or(a);
    let b = b.strip_prefix('-').unwrap_or(b);
    match (a.is_empty(), b.is_empty()) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Greater,
        (false, true) => return Ordering::Less,
        _ => {}
    }
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (is_decimal(x), is_decimal(y)) {
                    (true, true) => cmp_decimal(x, y),
                    (false, false) => x.cmp(y),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// Orders two semantic versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = parse_semver_like(a, 3);
    let b = parse_semver_like(b, 3);
    cmp_decimal_lists(&a.numbers, &b.numbers).then_with(|| compare_prerelease(&a.rest, &b.rest))
}
