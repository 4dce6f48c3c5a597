//! Packagist (Composer) versions, ordered as PHP's `version_compare` after Composer's
//! normalisation: a leading `v` is dropped, `-`, `_`, `+` become `.`, a `.` is implied
//! at every digit/non-digit transition, and special words order as
//! `dev < alpha = a < beta = b < RC = rc < (number) < pl = p`; other words rank with
//! `dev`.

use std::cmp::Ordering;

use super::{cmp_decimal, is_decimal};

fn canonical(version: &str) -> Vec<String> {
    let v = version
        .strip_prefix('v')
        .or_else(|| version.strip_prefix('V'))
        .unwrap_or(version);
    let mut out = String::with_capacity(v.len() + 4);
    let mut prev: Option<char> = None;
    for c in v.chars() {
        let c = if matches!(c, '-' | '_' | '+') { '.' } else { c };
        if let Some(p) = prev {
            let boundary = p != '.' && c != '.' && p.is_ascii_digit() != c.is_ascii_digit();
            if boundary {
                out.push('.');
            }
        }
        out.push(c);
        prev = Some(c);
    }
    out.split('.').map(str::to_string).collect()
}

/// Weight of a non-numeric part; `#` stands for "a number here".
fn weight(part: &str) -> u8 {
    if part.starts_with("RC") {
        return 3;
    }
    const SPECIALS: [&str; 6] = ["dev", "a", "b", "rc", "#", "p"];
    SPECIALS
        .iter()
        .position(|s| part.starts_with(s))
        .map_or(0, |p| p as u8)
}

fn compare_parts(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = match (is_decimal(x), is_decimal(y)) {
            (true, true) => cmp_decimal(x, y),
            (false, false) => weight(x).cmp(&weight(y)),
            (true, false) => weight("#").cmp(&weight(y)),
            (false, true) => weight(x).cmp(&weight("#")),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let hash = ["#".to_string()];
    match a.len().cmp(&b.len()) {
        Ordering::Greater => {
            if is_decimal(&a[b.len()]) {
                Ordering::Greater
            } else {
                compare_parts(&a[b.len()..], &hash)
            }
        }
        Ordering::Less => {
            if is_decimal(&b[a.len()]) {
                Ordering::Less
            } else {
                compare_parts(&hash, &b[a.len()..])
            }
        }
        Ordering::Equal => Ordering::Equal,
    }
}

/// Orders two Packagist versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_parts(&canonical(a), &canonical(b))
}
