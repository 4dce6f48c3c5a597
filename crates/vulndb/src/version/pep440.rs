//! PyPI versions: PEP 440 order (epoch, release, pre, post, dev, local), and for
//! strings PEP 440 rejects, the setuptools "legacy" order, which sorts every legacy
//! version before every PEP 440 version (as `packaging` did while it had
//! `LegacyVersion`).

use std::cmp::Ordering;

use super::{cmp_decimal, cmp_decimal_lists, is_decimal};

/// A parsed PEP 440 version. Numbers are kept as digit strings (no overflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pep440 {
    pub epoch: String,
    pub release: Vec<String>,
    /// (`a` | `b` | `rc`, number)
    pub pre: Option<(String, String)>,
    pub post: Option<String>,
    pub dev: Option<String>,
    pub local: Vec<String>,
}

/// A PyPI version: PEP 440 or legacy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PyPiVersion {
    Pep440(Pep440),
    /// setuptools' legacy key: normalised parts, compared by concatenation.
    Legacy(Vec<String>),
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }
    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.s.get(self.pos + offset).copied()
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn digits(&mut self) -> Option<String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        (self.pos > start).then(|| String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }
    fn is_sep(c: Option<u8>) -> bool {
        matches!(c, Some(b'-' | b'_' | b'.'))
    }
    /// Matches one of `words` (longest listed first) at the cursor.
    fn word(&mut self, words: &[&str]) -> Option<String> {
        for w in words {
            if self.s[self.pos..].starts_with(w.as_bytes()) {
                self.pos += w.len();
                return Some((*w).to_string());
            }
        }
        None
    }
    /// `[-_.]?WORD[-_.]?N?` where the trailing separator belongs only if digits follow.
    fn labelled(&mut self, words: &[&str]) -> Option<(String, Option<String>)> {
        let save = self.pos;
        if Self::is_sep(self.peek()) {
            self.pos += 1;
        }
        let Some(word) = self.word(words) else {
            self.pos = save;
            return None;
        };
        let number =
            if Self::is_sep(self.peek()) && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                self.digits()
            } else {
                self.digits()
            };
        Some((word, number))
    }
}

fn normalize_number(n: Option<String>) -> String {
    n.unwrap_or_else(|| "0".to_string())
}

/// Parses a strict PEP 440 version (appendix B grammar, case-insensitive).
pub fn parse_pep440(version: &str) -> Option<Pep440> {
    let lower = version.trim().to_ascii_lowercase();
    let mut c = Cursor {
        s: lower.as_bytes(),
        pos: 0,
    };
    c.eat(b'v');
    let mut epoch = "0".to_string();
    let save = c.pos;
    match c.digits() {
        Some(e) if c.eat(b'!') => epoch = e,
        _ => c.pos = save,
    }
    let mut release = vec![c.digits()?];
    while c.peek() == Some(b'.') && c.peek_at(1).is_some_and(|d| d.is_ascii_digit()) {
        c.pos += 1;
        release.push(c.digits()?);
    }
    let pre = c
        .labelled(&["preview", "alpha", "beta", "pre", "rc", "a", "b", "c"])
        .map(|(word, n)| {
            let word = match word.as_str() {
                "alpha" => "a",
                "beta" => "b",
                "c" | "pre" | "preview" => "rc",
                other => other,
            };
            (word.to_string(), normalize_number(n))
        });
    // Post: `-N` (implicit) or `[-_.]?(post|rev|r)[-_.]?N?`.
    let save = c.pos;
    let mut post = None;
    if c.eat(b'-') {
        if let Some(n) = c.digits() {
            post = Some(n);
        } else {
            c.pos = save;
        }
    }
    if post.is_none() {
        if let Some((_, n)) = c.labelled(&["post", "rev", "r"]) {
            post = Some(normalize_number(n));
        }
    }
    let dev = c.labelled(&["dev"]).map(|(_, n)| normalize_number(n));
    let mut local = Vec::new();
    if c.eat(b'+') {
        let mut part = String::new();
        loop {
            match c.peek() {
                Some(ch) if ch.is_ascii_alphanumeric() => {
                    part.push(char::from(ch));
                    c.pos += 1;
                }
                Some(b'-' | b'_' | b'.') if !part.is_empty() => {
                    local.push(std::mem::take(&mut part));
                    c.pos += 1;
                }
                _ => break,
            }
        }
        if part.is_empty() {
            return None;
        }
        local.push(part);
    }
    if c.pos != c.s.len() {
        return None;
    }
    Some(Pep440 {
        epoch,
        release,
        pre,
        post,
        dev,
        local,
    })
}

/// setuptools' legacy parse: runs of digits, runs of letters, `.` and `-`, normalised
/// so that concatenated keys order as `pkg_resources` did.
fn legacy_key(version: &str) -> Vec<String> {
    let lower = version.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut tokens: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let run = |pred: fn(&u8) -> bool| bytes[i..].iter().take_while(|b| pred(b)).count();
        let len = if c.is_ascii_digit() {
            run(u8::is_ascii_digit)
        } else if c.is_ascii_lowercase() {
            run(u8::is_ascii_lowercase)
        } else if c == b'.' || c == b'-' {
            1
        } else {
            i += 1;
            continue;
        };
        tokens.push(&lower[i..i + len]);
        i += len;
    }
    tokens.push("final");
    let mut parts: Vec<String> = Vec::new();
    for token in tokens {
        if token == "." {
            continue;
        }
        let part = match token {
            "pre" | "preview" | "rc" => "c",
            "-" => "final-",
            "dev" => "@",
            other => other,
        };
        let part = if part.starts_with(|c: char| c.is_ascii_digit()) {
            format!("{part:0>8}")
        } else {
            format!("*{part}")
        };
        if part.starts_with('*') {
            if part.as_str() < "*final" {
                while parts.last().is_some_and(|p| p == "*final-") {
                    parts.pop();
                }
            }
            while parts.last().is_some_and(|p| p == "00000000") {
                parts.pop();
            }
        }
        parts.push(part);
    }
    parts
}

/// Parses a PyPI version, falling back to the legacy scheme.
pub fn parse(version: &str) -> PyPiVersion {
    match parse_pep440(version) {
        Some(v) => PyPiVersion::Pep440(v),
        None => PyPiVersion::Legacy(legacy_key(version)),
    }
}

fn cmp_opt_number(a: &Option<String>, b: &Option<String>, none_is_greater: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) if none_is_greater => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) if none_is_greater => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => cmp_decimal(x, y),
    }
}

fn compare_pep440(a: &Pep440, b: &Pep440) -> Ordering {
    // A dev release with neither pre nor post sorts before the pre-releases of the
    // same release (1.0.dev0 < 1.0a0).
    let dev_only = |v: &Pep440| v.pre.is_none() && v.post.is_none() && v.dev.is_some();
    let pre = match (dev_only(a), dev_only(b)) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        _ => match (&a.pre, &b.pre) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Greater,
            (Some(_), None) => Ordering::Less,
            (Some((la, na)), Some((lb, nb))) => la.cmp(lb).then_with(|| cmp_decimal(na, nb)),
        },
    };
    cmp_decimal(&a.epoch, &b.epoch)
        .then_with(|| cmp_decimal_lists(&a.release, &b.release))
        .then(pre)
        .then_with(|| cmp_opt_number(&a.post, &b.post, false))
        .then_with(|| cmp_opt_number(&a.dev, &b.dev, true))
        .then_with(|| compare_local(&a.local, &b.local))
}

/// Local labels: numeric parts compare as numbers and above alphanumeric ones; a
/// longer label that extends a shorter one is greater.
fn compare_local(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
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
    a.len().cmp(&b.len())
}

/// Orders two parsed PyPI versions.
pub fn compare_parsed(a: &PyPiVersion, b: &PyPiVersion) -> Ordering {
    match (a, b) {
        (PyPiVersion::Pep440(x), PyPiVersion::Pep440(y)) => compare_pep440(x, y),
        (PyPiVersion::Legacy(_), PyPiVersion::Pep440(_)) => Ordering::Less,
        (PyPiVersion::Pep440(_), PyPiVersion::Legacy(_)) => Ordering::Greater,
        (PyPiVersion::Legacy(x), PyPiVersion::Legacy(y)) => x.concat().cmp(&y.concat()),
    }
}

/// Orders two PyPI versions.
pub fn compare(a: &str, b: &str) -> Ordering {
    compare_parsed(&parse(a), &parse(b))
}

/// PEP 503 name normalisation: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.push(c.to_ascii_lowercase());
            in_sep = false;
        }
    }
    out
}

/// The normalised spelling of a version (PEP 440 "normalized form", with trailing zero
/// release parts dropped so that equal versions get equal keys); legacy versions keep
/// their lowercased text.
pub fn canonical(version: &str) -> String {
    let Some(v) = parse_pep440(version) else {
        return version.trim().to_ascii_lowercase();
    };
    let strip = |n: &str| match n.trim_start_matches('0') {
        "" => "0".to_string(),
        digits => digits.to_string(),
    };
    let mut release: Vec<String> = v.release.iter().map(|n| strip(n)).collect();
    while release.len() > 1 && release.last().is_some_and(|n| n == "0") {
        release.pop();
    }
    let mut out = String::new();
    if strip(&v.epoch) != "0" {
        out.push_str(&strip(&v.epoch));
        out.push('!');
    }
    out.push_str(&release.join("."));
    if let Some((label, n)) = &v.pre {
        out.push_str(label);
        out.push_str(&strip(n));
    }
    if let Some(n) = &v.post {
        out.push_str(".post");
        out.push_str(&strip(n));
    }
    if let Some(n) = &v.dev {
        out.push_str(".dev");
        out.push_str(&strip(n));
    }
    if !v.local.is_empty() {
        let local: Vec<String> = v
            .local
            .iter()
            .map(|p| if is_decimal(p) { strip(p) } else { p.clone() })
            .collect();
        out.push('+');
        out.push_str(&local.join("."));
    }
    out
}
