//! RPM versions (`[epoch:]version[-release]`), ordered as librpm's `rpmvercmp` and
//! `rpmverCmp` do, including `~` (sorts before anything) and `^` (sorts after the base
//! but before any further segment).

use std::cmp::Ordering;

use super::cmp_decimal;

/// An RPM EVR split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evr<'a> {
    /// Epoch digits; empty means 0.
    pub epoch: &'a str,
    pub version: &'a str,
    pub release: Option<&'a str>,
}

/// Splits an EVR as rpm's `rpmverParse` does: a leading run of digits followed by `:`
/// is the epoch, the release follows the last `-`.
pub fn parse(evr: &str) -> Evr<'_> {
    let digits = evr.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = if evr.as_bytes().get(digits) == Some(&b':') {
        (&evr[..digits], &evr[digits + 1..])
    } else {
        ("", evr)
    };
    let (version, release) = match rest.rfind('-') {
        Some(dash) => (&rest[..dash], Some(&rest[dash + 1..])),
        None => (rest, None),
    };
    Evr {
        epoch,
        version,
        release,
    }
}

/// Orders two RPM versions: epoch, then version, then release (a missing release
/// sorts before any release).
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = parse(a);
    let b = parse(b);
    cmp_decimal(a.epoch, b.epoch)
        .then_with(|| rpmvercmp(a.version, b.version))
        .then_with(|| match (a.release, b.release) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            (None, None) => Ordering::Equal,
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
        })
}

/// librpm's `rpmvercmp` on one EVR field.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0usize, 0usize);
    let separator = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    while i < a.len() || j < b.len() {
        while i < a.len() && separator(a[i]) {
            i += 1;
        }
        while j < b.len() && separator(b[j]) {
            j += 1;
        }
        let (ca, cb) = (a.get(i).copied(), b.get(j).copied());
        if ca == Some(b'~') || cb == Some(b'~') {
            if ca != Some(b'~') {
                return Ordering::Greater;
            }
            if cb != Some(b'~') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        if ca == Some(b'^') || cb == Some(b'^') {
            if ca.is_none() {
                return Ordering::Less;
            }
            if cb.is_none() {
                return Ordering::Greater;
            }
            if ca != Some(b'^') {
                return Ordering::Greater;
            }
            if cb != Some(b'^') {
                return Ordering::Less;
            }
            i += 1;
            j += 1;
            continue;
        }
        let (Some(first), Some(_)) = (ca, cb) else {
            break;
        };
        let numeric = first.is_ascii_digit();
        let in_segment = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let end_a = i + a[i..].iter().take_while(|c| in_segment(c)).count();
        let end_b = j + b[j..].iter().take_while(|c| in_segment(c)).count();
        if end_b == j {
            // Segments of different kinds: numbers are newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let seg_a = std::str::from_utf8(&a[i..end_a]).unwrap_or("");
        let seg_b = std::str::from_utf8(&b[j..end_b]).unwrap_or("");
        let ord = if numeric {
            cmp_decimal(seg_a, seg_b)
        } else {
            seg_a.cmp(seg_b)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        i = end_a;
        j = end_b;
    }
    match (i >= a.len(), j >= b.len()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}
