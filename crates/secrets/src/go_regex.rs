//! Go RE2 pattern syntax → Rust `regex` syntax, and the builder settings that
//! give Go's ASCII semantics.
//!
//! The two dialects are nearly the same. What differs and is rewritten here:
//! - Go reads `{` as a literal when it does not start a valid repetition
//!   (`{{[^}]+}}`); Rust rejects it, so it becomes `\{`.
//! - Inside a character class Go takes `[`, `&&`, `--` and `~~` literally; Rust
//!   reads nested classes and set operations there, so they are escaped.
//! - `\Q...\E` quoting (Go) has no Rust form: the quoted text is escaped.
//!
//! Matching runs on raw bytes with Unicode mode off: `\w`, `\d`, `\s` and `\b`
//! are ASCII in Go too, and an ASCII `\b` keeps Rust's fast DFA engines usable.

use regex::bytes::{Regex, RegexBuilder};

/// Compiled-program limit per pattern. Gitleaks patterns use large counted
/// repetitions (`{250,}`, `{109,269}`) that pass Go's limits but can exceed
/// Rust's 10 MiB default.
const REGEX_SIZE_LIMIT: usize = 64 << 20;

/// Rewrites a Go RE2 pattern into an equivalent Rust `regex` pattern.
pub fn translate(go_pattern: &str) -> String {
    let chars: Vec<char> = go_pattern.chars().collect();
    let mut out = String::with_capacity(go_pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    // Position in `out` right after a class's opening `[` (and `^`), where a
    // `]` is a literal in Go.
    let mut class_body_start = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            i = copy_escape(&chars, i, &mut out);
            class_body_start = false;
            continue;
        }
        if in_class {
            match c {
                ']' if class_body_start => out.push_str("\\]"),
                ']' => {
                    out.push(']');
                    in_class = false;
                }
                '[' if chars.get(i + 1) == Some(&':') => {
                    // POSIX class `[:alpha:]` is the same in both dialects.
                    if let Some(end) = find_posix_class_end(&chars, i) {
                        out.extend(&chars[i..=end]);
                        i = end + 1;
                        class_body_start = false;
                        continue;
                    }
                    out.push_str("\\[");
                }
                '[' => out.push_str("\\["),
                '&' | '~' => {
                    out.push('\\');
                    out.push(c);
                }
                '-' if chars.get(i + 1) == Some(&'-') => {
                    // `--` would be set difference in Rust; Go reads a range
                    // ending in (or starting at) `-`. Escaping the second dash
                    // keeps Go's meaning.
                    out.push_str("-\\-");
                    i += 2;
                    class_body_start = false;
                    continue;
                }
                _ => out.push(c),
            }
            class_body_start = false;
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_body_start = true;
            }
            '{' => {
                if let Some(end) = valid_repetition_end(&chars, i) {
                    out.extend(&chars[i..=end]);
                    i = end + 1;
                    continue;
                }
                out.push_str("\\{");
            }
            '}' => out.push_str("\\}"),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Copies the escape starting at `chars[start] == '\\'`; returns the index
/// after it.
fn copy_escape(chars: &[char], start: usize, out: &mut String) -> usize {
    let Some(&next) = chars.get(start + 1) else {
        // A trailing backslash is an error in both dialects; keep it so the
        // compiler reports it.
        out.push('\\');
        return start + 1;
    };
    match next {
        'Q' => {
            // Quote everything up to `\E` (or the end) literally.
            let mut j = start + 2;
            while j < chars.len() {
                if chars[j] == '\\' && chars.get(j + 1) == Some(&'E') {
                    return j + 2;
                }
                let mut buf = [0u8; 4];
                out.push_str(&regex::escape(chars[j].encode_utf8(&mut buf)));
                j += 1;
            }
            j
        }
        'x' | 'p' | 'P' if chars.get(start + 2) == Some(&'{') => {
            // `\x{...}`, `\p{...}`: copy the braces verbatim.
            let mut j = start + 2;
            while j < chars.len() && chars[j] != '}' {
                j += 1;
            }
            let end = j.min(chars.len().saturating_sub(1));
            out.extend(&chars[start..=end]);
            end + 1
        }
        _ => {
            out.push('\\');
            out.push(next);
            start + 2
        }
    }
}

/// `[:name:]` starting at `start`; returns the index of the closing `]`.
fn find_posix_class_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 2;
    if chars.get(j) == Some(&'^') {
        j += 1;
    }
    while j < chars.len() && chars[j].is_ascii_alphabetic() {
        j += 1;
    }
    (chars.get(j) == Some(&':') && chars.get(j + 1) == Some(&']')).then_some(j + 1)
}

/// `{n}`, `{n,}` or `{n,m}` starting at `start`; returns the index of `}`.
fn valid_repetition_end(chars: &[char], start: usize) -> Option<usize> {
    let mut j = start + 1;
    let digits_start = j;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    if j == digits_start {
        return None;
    }
    if chars.get(j) == Some(&',') {
        j += 1;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
    }
    (chars.get(j) == Some(&'}')).then_some(j)
}

/// Compiles a Go RE2 pattern for matching raw bytes with Go's ASCII classes.
///
/// Falls back to Unicode mode only for patterns that need it (`\p{Greek}`,
/// non-ASCII literals); those still match Go's semantics for such constructs.
pub fn compile(go_pattern: &str) -> Result<Regex, regex::Error> {
    let translated = translate(go_pattern);
    let ascii = RegexBuilder::new(&translated)
        .unicode(false)
        .size_limit(REGEX_SIZE_LIMIT)
        .build();
    match ascii {
        Ok(regex) => Ok(regex),
        Err(ascii_error) => RegexBuilder::new(&translated)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|_| ascii_error),
    }
}

/// For patterns of gitleaks' common shape `(?i)[\w.-]{0,50}?(?:keyword)...`,
/// the same pattern without the optional leading context class.
///
/// The leading `[\w.-]{0,N}` only widens a match to the left: wherever the
/// full pattern matches, the stripped one matches too (inside that match). So
/// "stripped pattern matches nowhere" proves "full pattern matches nowhere",
/// and the stripped form is several times faster to search because it starts
/// on the keyword literals. Returns `None` for patterns of any other shape.
pub fn without_leading_context(go_pattern: &str) -> Option<String> {
    let (flags, rest) = match go_pattern.strip_prefix("(?") {
        Some(after) => {
            let close = after.find(')')?;
            let flags = &after[..close];
            if flags.is_empty() || !flags.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
                return None;
            }
            (&go_pattern[..close + 3], &after[close + 1..])
        }
        None => ("", go_pattern),
    };
    let after_class = rest.strip_prefix(r"[\w.-]{0,")?;
    let digits = after_class.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let after_count = after_class[digits..].strip_prefix('}')?;
    let remainder = after_count.strip_prefix('?').unwrap_or(after_count);
    // A quantifier or alternation right after would change what the class
    // belonged to; only a plain continuation is safe.
    if remainder.is_empty() || remainder.starts_with(['*', '+', '?', '{', '|', ')']) {
        return None;
    }
    Some(format!("{flags}{remainder}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_braces_are_escaped_and_repetitions_kept() {
        assert_eq!(translate(r"a{2,5}b{3}c{4,}"), r"a{2,5}b{3}c{4,}");
        assert_eq!(translate(r"\$?{{[^}]+}}"), r"\$?\{\{[^}]+\}\}");
        let re = compile(r"^\$\{\{[ \t]*secrets\.[A-Z_]+[ \t]*}}$").unwrap();
        assert!(re.is_match(b"${{ secrets.TOKEN }}"));
        assert!(!re.is_match(b"${{ vars.TOKEN }}"));
    }

    #[test]
    fn class_brackets_and_set_operators_are_literal_like_go() {
        let re = compile(r"^[[a&&b~~]+$").unwrap();
        assert!(re.is_match(b"[&&~~ab"));
        assert!(!re.is_match(b"c"));
        let posix = compile(r"^pat[[:alnum:]]{3}$").unwrap();
        assert!(posix.is_match(b"patA1z"));
        assert!(!posix.is_match(b"patA-z"));
        let leading_bracket = compile(r"^[]x]+$").unwrap();
        assert!(leading_bracket.is_match(b"]x]"));
    }

    #[test]
    fn leading_context_is_stripped_only_from_the_known_shape() {
        assert_eq!(
            without_leading_context(r"(?i)[\w.-]{0,50}?(?:adobe)(?:[ \t\w.-]{0,20})x").as_deref(),
            Some(r"(?i)(?:adobe)(?:[ \t\w.-]{0,20})x")
        );
        assert_eq!(
            without_leading_context(r"[\w.-]{0,50}?(?:key)=").as_deref(),
            Some(r"(?:key)=")
        );
        assert_eq!(without_leading_context(r"ghp_[0-9a-zA-Z]{36}"), None);
        assert_eq!(without_leading_context(r"(?i)[\w.-]{0,50}+x"), None);
        assert_eq!(without_leading_context(r"(?i)[\w.-]{0,50}?|x"), None);
        assert_eq!(without_leading_context(r"(?:x)[\w.-]{0,50}?y"), None);
    }

    #[test]
    fn quoted_text_is_literal() {
        let re = compile(r"a\Q.*+\Eb").unwrap();
        assert!(re.is_match(b"a.*+b"));
        assert!(!re.is_match(b"axxb"));
    }

    #[test]
    fn perl_classes_are_ascii_like_go() {
        let word = compile(r"^\w+$").unwrap();
        assert!(word.is_match(b"abc_123"));
        assert!(!word.is_match("abcé".as_bytes()));
        let boundary = compile(r"\bkey\b").unwrap();
        assert!(boundary.is_match("é key é".as_bytes()));
        assert!(!boundary.is_match(b"monkeys"));
    }

    #[test]
    fn unicode_only_patterns_still_compile() {
        let greek = compile(r"\p{Greek}+").unwrap();
        assert!(greek.is_match("αβγ".as_bytes()));
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    /// Every gitleaks pattern must compile in ASCII byte mode (not through the
    /// Unicode fallback), since that is where Go's semantics and the fast
    /// engines are.
    #[test]
    fn all_fixture_patterns_compile_in_ascii_mode() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/fixtures/secrets/gitleaks.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let config = crate::config::parse(&text).unwrap();
        let mut patterns = Vec::new();
        for entry in config.rules {
            let rule = entry.parsed.unwrap();
            patterns.push(rule.regex.clone());
            patterns.push(rule.path.clone());
            for allowlist in rule.allowlists.iter().chain(rule.allowlist.iter()) {
                patterns.extend(allowlist.regexes.iter().cloned());
                patterns.extend(allowlist.paths.iter().cloned());
            }
        }
        for entry in config.allowlists {
            let allowlist = entry.parsed.unwrap();
            patterns.extend(allowlist.regexes.iter().cloned());
            patterns.extend(allowlist.paths.iter().cloned());
        }
        patterns.retain(|p| !p.is_empty());
        assert!(patterns.len() > 300, "only {} patterns", patterns.len());
        for pattern in &patterns {
            let result = RegexBuilder::new(&translate(pattern))
                .unicode(false)
                .size_limit(REGEX_SIZE_LIMIT)
                .build();
            assert!(result.is_ok(), "{pattern}: {:?}", result.err());
        }
    }
}
