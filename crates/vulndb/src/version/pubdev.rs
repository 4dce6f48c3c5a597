//! Pub (Dart) versions: semver, except that build metadata is ordered too
//! (`1.0.0 < 1.0.0+build`, `1.2.3+1 < 1.2.3+2`), as `pub_semver` does.

use std::cmp::Ordering;

use super::cmp_decimal_lists;
use super::semver::{compare_prerelease, parse_semver_like};

/// Orders two Pub versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = parse_semver_like(a, 3);
    let b = parse_semver_like(b, 3);
    cmp_decimal_lists(&a.numbers, &b.numbers)
        .then_with(|| compare_prerelease(&a.rest, &b.rest))
        .then_with(|| {
            let build_a = a.rest.split_once('+').map(|(_, b)| b).unwrap_or("");
            let build_b = b.rest.split_once('+').map(|(_, b)| b).unwrap_or("");
            build_a.cmp(build_b)
        })
}
