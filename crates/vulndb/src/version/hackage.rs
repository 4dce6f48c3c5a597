//! Hackage versions (`Data.Version`): dot-separated numbers compared in turn; when one
//! is a prefix of the other the longer is greater (`1.0 < 1.0.0`).

use std::cmp::Ordering;

use super::{cmp_decimal, is_decimal};

/// Orders two Hackage versions. Non-numeric parts (invalid on Hackage) sort after
/// numeric ones, as plain strings.
pub fn compare(a: &str, b: &str) -> Ordering {
    let pa: Vec<&str> = a.split('.').collect();
    let pb: Vec<&str> = b.split('.').collect();
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (is_decimal(x), is_decimal(y)) {
            (true, true) => cmp_decimal(x, y),
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}
