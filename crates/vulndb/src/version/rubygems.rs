//! RubyGems versions, ordered as `Gem::Version#<=>`: a `.` is implied at every
//! digit/letter transition; segments before the first letter segment form the release,
//! the rest the pre-release; trailing zero segments of each group are dropped
//! (`canonical_segments`); numbers beat letters; letters compare as strings.

use std::cmp::Ordering;

use super::{cmp_decimal, is_decimal};

fn segments(version: &str) -> Vec<&str> {
    // Split at dots and at digit/non-digit transitions.
    let bytes = version.trim().as_bytes();
    let version = version.trim();
    let mut out = Vec::new();
    let mut start = 0;
    for i in 0..bytes.len() {
        if bytes[i] == b'.' {
            out.push(&version[start..i]);
            start = i + 1;
        } else if i > start && bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
            out.push(&version[start..i]);
            start = i;
        }
    }
    out.push(&version[start..]);
    let split = out.iter().position(|s| !is_decimal(s)).unwrap_or(out.len());
    let (release, pre) = out.split_at(split);
    let keep = |group: &[&str]| -> usize {
        group
            .iter()
            .rposition(|s| !(is_decimal(s) && s.bytes().all(|c| c == b'0')))
            .map_or(0, |p| p + 1)
    };
    let mut canonical: Vec<&str> = release[..keep(release)].to_vec();
    canonical.extend_from_slice(&pre[..keep(pre)]);
    canonical
}

/// Orders two RubyGems versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let sa = segments(a);
    let sb = segments(b);
    for i in 0..sa.len().max(sb.len()) {
        let x = sa.get(i).copied().unwrap_or("0");
        let y = sb.get(i).copied().unwrap_or("0");
        let ord = match (is_decimal(x), is_decimal(y)) {
            (true, true) => cmp_decimal(x, y),
            (false, false) => x.cmp(y),
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}
