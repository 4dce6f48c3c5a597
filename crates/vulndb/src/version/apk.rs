//! Alpine package versions, ordered as apk-tools does:
//! `number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}` (apk-package(5)).
//! Suffix order: `alpha`, `beta`, `pre`, `rc`, (none), `cvs`, `svn`, `git`, `hg`, `p`.
//! A version that breaks the grammar sorts before a valid one with the same parsed
//! prefix; two such versions compare as plain strings.

use std::cmp::Ordering;

use super::cmp_decimal;

/// Recognised suffixes in ascending order; the empty string stands for "no suffix".
/// Longer names come before their prefixes when parsing (`pre` before `p`).
const SUFFIX_ORDER: [&str; 10] = [
    "alpha", "beta", "pre", "rc", "", "cvs", "svn", "git", "hg", "p",
];
const NO_SUFFIX_WEIGHT: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
struct ApkVersion<'a> {
    original: &'a str,
    numbers: Vec<&'a str>,
    letter: Option<u8>,
    /// (weight in [`SUFFIX_ORDER`], number)
    suffixes: Vec<(usize, &'a str)>,
    build: &'a str,
    invalid: bool,
    remainder: &'a str,
}

fn parse(original: &str) -> ApkVersion<'_> {
    let mut v = ApkVersion {
        original,
        numbers: Vec::new(),
        letter: None,
        suffixes: Vec::new(),
        build: "0",
        invalid: false,
        remainder: "",
    };
    let mut rest = original;
    // number{.number}...
    loop {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            break;
        }
        v.numbers.push(&rest[..digits]);
        rest = &rest[digits..];
        if rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
            rest = &rest[1..];
        } else {
            if rest.starts_with('.') {
                // A trailing dot belongs to the number run.
                rest = &rest[1..];
            }
            break;
        }
    }
    // {letter}
    if let Some(c) = rest.bytes().next().filter(u8::is_ascii_lowercase) {
        v.letter = Some(c);
        rest = &rest[1..];
    }
    // {_suffix{number}}...
    'suffixes: while let Some(after) = rest.strip_prefix('_') {
        for (weight, name) in SUFFIX_ORDER.iter().enumerate() {
            if name.is_empty() {
                continue;
            }
            if let Some(tail) = after.strip_prefix(name) {
                let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
                v.suffixes.push((weight, &tail[..digits]));
                rest = &tail[digits..];
                continue 'suffixes;
            }
        }
        break;
    }
    // {~hash}
    if let Some(after) = rest.strip_prefix('~') {
        let hex = after
            .bytes()
            .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            .count();
        if hex > 0 {
            rest = &after[hex..];
        }
    }
    // {-r#}
    if !rest.is_empty() {
        match rest.strip_prefix("-r") {
            Some(after) => {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                v.build = &after[..digits];
                rest = &after[digits..];
            }
            None => v.invalid = true,
        }
    }
    v.remainder = rest;
    v
}

/// Number parts after the first compare as decimal fractions when either has a
/// leading zero (apk-tools' rule: `1.01 < 1.1`).
fn cmp_number(index: usize, a: &str, b: &str) -> Ordering {
    if index > 0 && (a.starts_with('0') || b.starts_with('0')) {
        a.cmp(b)
    } else {
        cmp_decimal(a, b)
    }
}

/// Orders two Alpine versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    let va = parse(a);
    let vb = parse(b);
    if va.invalid && vb.invalid {
        return a.cmp(b);
    }
    for i in 0..va.numbers.len().max(vb.numbers.len()) {
        let ord = match (va.numbers.get(i), vb.numbers.get(i)) {
            (Some(x), Some(y)) => cmp_number(i, x, y),
            (Some(x), None) => cmp_decimal(x, "0"),
            (None, Some(y)) => cmp_decimal("0", y),
            (None, None) => Ordering::Equal,
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let ord = match (va.letter, vb.letter) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(&y),
    };
    if ord != Ordering::Equal {
        return ord;
    }
    for i in 0..va.suffixes.len().max(vb.suffixes.len()) {
        let (wa, na) = va
            .suffixes
            .get(i)
            .copied()
            .unwrap_or((NO_SUFFIX_WEIGHT, "0"));
        let (wb, nb) = vb
            .suffixes
            .get(i)
            .copied()
            .unwrap_or((NO_SUFFIX_WEIGHT, "0"));
        let ord = wa.cmp(&wb).then_with(|| cmp_decimal(na, nb));
        if ord != Ordering::Equal {
            return ord;
        }
    }
    let ord = cmp_decimal(va.build, vb.build);
    if ord != Ordering::Equal {
        return ord;
    }
    match (va.remainder.is_empty(), vb.remainder.is_empty()) {
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => Ordering::Equal,
    }
}
