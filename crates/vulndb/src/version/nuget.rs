//! NuGet versions: semver with up to four numeric parts (`1.2.3.4`), labels compared
//! case-insensitively, build metadata ignored.

use std::cmp::Ordering;

use super::cmp_decimal_lists;
use super::semver::{compare_prerelease, parse_semver_like};

/// Orders two NuGet versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let a = parse_semver_like(a, 4);
    let b = parse_semver_like(b, 4);
    cmp_decimal_lists(&a.numbers, &b.numbers).then_with(|| {
        compare_prerelease(&a.rest.to_ascii_lowercase(), &b.rest.to_ascii_lowercase())
    })
}
