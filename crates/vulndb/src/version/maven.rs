//! Maven versions, ordered by the rules of Maven's `ComparableVersion` as the POM
//! reference specifies them: the version is split into tokens at `.`, `-` and at
//! digit/letter transitions (a transition counts as `-`); trailing "null" tokens
//! (`0`, ``, `final`, `ga`) are trimmed before each `-`; missing tokens are padded
//! with nulls; `alpha < beta < milestone < rc = cr < snapshot < "" = ga = final =
//! release < sp`, unknown qualifiers after those in lexical order; and when the
//! separators differ, `.qualifier < -qualifier < -number < .number`.

use std::cmp::Ordering;

use super::{cmp_decimal, is_decimal};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Token {
    /// `.`, `-`, or empty for the first token.
    separator: &'static str,
    value: String,
    /// A padding token standing in for a missing one.
    padding: bool,
}

const QUALIFIER_ORDER: [&str; 7] = ["alpha", "beta", "milestone", "rc", "snapshot", "", "sp"];

fn qualifier_rank(value: &str) -> usize {
    QUALIFIER_ORDER
        .iter()
        .position(|q| *q == value)
        .unwrap_or(QUALIFIER_ORDER.len())
}

impl Token {
    fn is_null(&self) -> bool {
        matches!(self.value.as_str(), "0" | "" | "final" | "ga")
    }

    fn same(&self, other: &Token) -> bool {
        self.separator == other.separator && self.value == other.value
    }

    /// Rank of the separator/kind pair when separators differ.
    fn kind_rank(&self) -> u8 {
        match (is_decimal(&self.value), self.separator) {
            (false, ".") => 0,
            (false, _) => 1,
            (true, "-") => 2,
            (true, _) => 3,
        }
    }

    fn padding_for(other: &Token) -> Token {
        let value = match other.separator {
            // `sp` is the only qualifier above "no qualifier", so `.sp` is padded with
            // the empty qualifier instead of 0.
            "." if other.value == "sp" => String::new(),
            "." => "0".to_string(),
            _ => String::new(),
        };
        Token {
            separator: if other.separator == "." { "." } else { "-" },
            value,
            padding: true,
        }
    }

    fn less_than(&self, other: &Token) -> bool {
        if self.separator != other.separator {
            return self.kind_rank() < other.kind_rank();
        }
        let (num_a, num_b) = (is_decimal(&self.value), is_decimal(&other.value));
        if num_a && num_b {
            return cmp_decimal(&self.value, &other.value) == Ordering::Less;
        }
        // Numbers sort after qualifiers, except padding zeros.
        if num_a && !self.padding {
            return false;
        }
        if num_b && !other.padding {
            return true;
        }
        let (ra, rb) = (qualifier_rank(&self.value), qualifier_rank(&other.value));
        if ra == QUALIFIER_ORDER.len() && rb == QUALIFIER_ORDER.len() {
            return self.value < other.value;
        }
        ra < rb
    }
}

fn tokenize(version: &str) -> Vec<Token> {
    let lower = version.to_ascii_lowercase();
    let mut tokens = Vec::new();
    let mut separator: &'static str = "";
    for (index, raw) in lower.split_inclusive(['.', '-']).enumerate() {
        let (body, next_separator) = match raw.as_bytes().last() {
            Some(b'.') => (&raw[..raw.len() - 1], "."),
            Some(b'-') => (&raw[..raw.len() - 1], "-"),
            _ => (raw, ""),
        };
        if index > 0 && separator.is_empty() {
            break;
        }
        // Split at digit/non-digit transitions.
        let bytes = body.as_bytes();
        let mut start = 0;
        let mut pieces: Vec<&str> = Vec::new();
        for i in 1..bytes.len() {
            if bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
                pieces.push(&body[start..i]);
                start = i;
            }
        }
        pieces.push(&body[start..]);
        let count = pieces.len();
        for (j, piece) in pieces.into_iter().enumerate() {
            let followed_by_transition = j + 1 < count;
            let mut value = match piece {
                "" => "0".to_string(),
                "cr" => "rc".to_string(),
                "ga" | "final" | "release" => String::new(),
                "a" if followed_by_transition => "alpha".to_string(),
                "b" if followed_by_transition => "beta".to_string(),
                "m" if followed_by_transition => "milestone".to_string(),
                other => other.to_string(),
            };
            if is_decimal(&value) {
                let trimmed = value.trim_start_matches('0');
                value = if trimmed.is_empty() {
                    "0".to_string()
                } else {
                    trimmed.to_string()
                };
            }
            tokens.push(Token {
                separator: if j > 0 { "-" } else { separator },
                value,
                padding: false,
            });
        }
        separator = next_separator;
        if separator.is_empty() {
            break;
        }
    }
    // A trailing separator (or an empty version) stands for an empty, null token.
    if !separator.is_empty() || tokens.is_empty() {
        tokens.push(Token {
            separator,
            value: "0".to_string(),
            padding: false,
        });
    }
    // Trim trailing nulls, then repeat before each remaining `-`, from the end.
    let mut i = tokens.len() as isize - 1;
    while i > 0 {
        let idx = i as usize;
        if tokens[idx].is_null() {
            tokens.remove(idx);
            i -= 1;
            continue;
        }
        while i >= 0 && tokens[i as usize].separator != "-" {
            i -= 1;
        }
        i -= 1;
    }
    tokens
}

/// Orders two Maven versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let ta = tokenize(a);
    let tb = tokenize(b);
    if ta.len() == tb.len() && ta.iter().zip(&tb).all(|(x, y)| x.same(y)) {
        return Ordering::Equal;
    }
    for i in 0..ta.len().max(tb.len()) {
        let left = ta
            .get(i)
            .cloned()
            .unwrap_or_else(|| Token::padding_for(&tb[i]));
        let right = tb
            .get(i)
            .cloned()
            .unwrap_or_else(|| Token::padding_for(&ta[i]));
        if left.same(&right) {
            continue;
        }
        return if left.less_than(&right) {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    Ordering::Greater
}
