//! CRAN versions (`package_version`): integers separated by `.` or `-`, compared in
//! turn; when one is a prefix of the other the longer is greater.

use std::cmp::Ordering;

use super::{cmp_decimal_lists, is_decimal};

/// Orders two CRAN versions. Parts that are not integers (invalid on CRAN) are skipped.
pub fn compare(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.split(['.', '-'])
            .filter(|p| is_decimal(p))
            .map(str::to_string)
            .collect()
    };
    let pa = parts(a);
    let pb = parts(b);
    cmp_decimal_lists(&pa, &pb).then_with(|| pa.len().cmp(&pb.len()))
}
