//! Turning one event's details into the stable keys a baseline stores: argv with its
//! volatile parts (numbers, hex, UUIDs, temp names) collapsed, file paths collapsed
//! into directory prefixes, and the paths that count as sensitive reads.
//!
//! Every function writes into a caller's buffer, so the per-event path allocates
//! nothing once the buffer has grown.

/// Arguments of a command line kept in a process key; the rest is `…`.
pub const MAX_KEY_ARGS: usize = 16;
/// Directory components kept in a file-write prefix.
pub const MAX_PREFIX_DEPTH: usize = 4;

/// Appends `argv` normalised: numbers become `N`, hex strings of 8 or more digits `H`,
/// UUIDs `U`, and random-looking names (letters and digits mixed, 6 or more, as in
/// `tmp.k3J9xq`) `X`. Arguments are separated by one space.
pub fn push_argv(out: &mut String, argv: &[String]) {
    for (i, arg) in argv.iter().take(MAX_KEY_ARGS).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        push_collapsed(out, arg);
    }
    if argv.len() > MAX_KEY_ARGS {
        out.push_str(" …");
    }
}

/// Byte classes for the tokenizer, one table lookup per byte instead of a chain of
/// range tests (the classification was a quarter of the scoring path's time).
const ALNUM: u8 = 1;
const DIGIT: u8 = 2;
const UPPER: u8 = 4;
const HEX: u8 = 8;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut k = 0;
        if b.is_ascii_alphanumeric() {
            k |= ALNUM;
        }
        if b.is_ascii_digit() {
            k |= DIGIT;
        }
        if b.is_ascii_uppercase() {
            k |= UPPER;
        }
        if b.is_ascii_hexdigit() {
            k |= HEX;
        }
        t[c] = k;
        c += 1;
    }
    t
};

/// Appends `s` with each alphanumeric token collapsed as in [`push_argv`].
///
/// One pass over the bytes, each token classified while it is scanned from a byte-class
/// table; what is kept is copied in as few slices as possible (from the end of the last
/// collapsed token to the start of the next), since most arguments collapse nothing and
/// a copy per token was most of the cost. An ASCII letter or digit is never part of a
/// multi-byte character, so every cut is at a character boundary.
/// [`reference::push_collapsed`] is the plain form it must agree with.
pub fn push_collapsed(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let (mut i, mut kept) = (0, 0);
    while i < b.len() {
        if CLASS[usize::from(b[i])] & ALNUM == 0 {
            i += 1;
            continue;
        }
        let start = i;
        let replacement = if let Some(len) = uuid_at(b, i) {
            i += len;
            "U"
        } else {
            let (mut digits, mut upper, mut all) = (0usize, 0usize, HEX);
            while i < b.len() {
                let k = CLASS[usize::from(b[i])];
                if k & ALNUM == 0 {
                    break;
                }
                digits += usize::from(k & DIGIT != 0);
                upper += usize::from(k & UPPER != 0);
                all &= k;
                i += 1;
            }
            match collapsed(i - start, digits, upper, all & HEX != 0) {
                Some(r) => r,
                None => continue,
            }
        };
        out.push_str(&s[kept..start]);
        out.push_str(replacement);
        kept = i;
    }
    out.push_str(&s[kept..]);
}

/// `8-4-4-4-12` hex digits starting at `i`, not inside a longer token.
fn uuid_at(b: &[u8], i: usize) -> Option<usize> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    // Most tokens are not UUIDs: too short, or no dash after eight characters.
    if b.len() - i < 36 || b[i + 8] != b'-' {
        return None;
    }
    if i > 0 && b[i - 1].is_ascii_alphanumeric() {
        return None;
    }
    let mut p = i;
    for (n, g) in GROUPS.iter().enumerate() {
        if p + g > b.len() || !b[p..p + g].iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        p += g;
        if n < 4 {
            if b.get(p) != Some(&b'-') {
                return None;
            }
            p += 1;
        }
    }
    if b.get(p).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    Some(p - i)
}

/// What a token of `len` bytes collapses to (`N`, `H`, `X`), from its counts of digits
/// and upper-case letters and whether it is all hex digits; `None`: it stays.
fn collapsed(len: usize, digits: usize, upper: usize, all_hex: bool) -> Option<&'static str> {
    if digits == len {
        return Some("N");
    }
    if digits > 0 && len >= 8 && all_hex {
        return Some("H");
    }
    let letters = len - digits;
    // Mixed letters and digits, or mixed case with digits, long enough to be random.
    if len >= 6 && digits > 0 && letters > 0 && (digits * 5 >= len || upper > 0) {
        return Some("X");
    }
    None
}

/// Appends the prefix a written file is learned under: its directory, each component
/// collapsed as in [`push_collapsed`], at most [`MAX_PREFIX_DEPTH`] components deep,
/// ending in `/`. `/proc/1234/…` and `/tmp/tmp.x8Yq2/…` collapse to one prefix.
pub fn push_write_prefix(out: &mut String, path: &str) {
    // Byte searches for `/` (ASCII, so every cut is a character boundary): `str`'s
    // char-pattern searches compare through `memcmp` per candidate.
    let b = path.as_bytes();
    let dir_end = match b.iter().rposition(|&c| c == b'/') {
        Some(0) | None => 0,
        Some(i) => i,
    };
    out.push('/');
    let (mut depth, mut i) = (0, 0);
    while i < dir_end && depth < MAX_PREFIX_DEPTH {
        let end = b[i..dir_end]
            .iter()
            .position(|&c| c == b'/')
            .map_or(dir_end, |p| i + p);
        if end > i {
            push_collapsed(out, &path[i..end]);
            out.push('/');
            depth += 1;
        }
        i = end + 1;
    }
}

/// Why a read of `path` is sensitive, or `None`: credentials and keys, and the memory
/// or environment of other processes.
pub fn sensitive_read(path: &str) -> Option<&'static str> {
    const EXACT: [(&str, &str); 6] = [
        ("/etc/shadow", "password hashes"),
        ("/etc/gshadow", "password hashes"),
        ("/etc/sudoers", "privilege configuration"),
        ("/etc/master.passwd", "password hashes"),
        (
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "service account token",
        ),
        (
            "/run/secrets/kubernetes.io/serviceaccount/token",
            "service account token",
        ),
    ];
    if let Some((_, why)) = EXACT.iter().find(|(p, _)| *p == path) {
        return Some(why);
    }
    if let Some(rest) = path.strip_prefix("/proc/") {
        let (pid, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if pid.bytes().all(|c| c.is_ascii_digit())
            && !pid.is_empty()
            && matches!(tail, "environ" | "mem" | "maps" | "cmdline" | "auxv")
        {
            return Some("another process's memory or environment");
        }
        return None;
    }
    const PARTS: [(&str, &str); 8] = [
        ("/.ssh/", "ssh keys"),
        ("/.aws/credentials", "cloud credentials"),
        ("/.kube/config", "cluster credentials"),
        ("/.docker/config.json", "registry credentials"),
        ("/etc/ssl/private/", "TLS private keys"),
        ("/.gnupg/", "gpg keys"),
        ("/run/secrets/", "mounted secrets"),
        ("/.git-credentials", "git credentials"),
    ];
    PARTS
        .iter()
        .find(|(p, _)| path.contains(p))
        .map(|(_, w)| *w)
}

/// Appends the key of a sensitive read: the path with other processes' ids collapsed.
pub fn push_sensitive_key(out: &mut String, path: &str) {
    if let Some(rest) = path.strip_prefix("/proc/") {
        let (pid, tail) = rest.split_once('/').unwrap_or((rest, ""));
        if pid.bytes().all(|c| c.is_ascii_digit()) {
            out.push_str("/proc/N/");
            out.push_str(tail);
            return;
        }
    }
    out.push_str(path);
}

/// Shannon entropy of a DNS name's characters in bits per character (the label part,
/// without dots): generated names (DGA, tunnelling) score above 3.5.
pub fn entropy(name: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in name.bytes().filter(|b| *b != b'.') {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

/// The straightforward forms the per-event code was first written in: the oracle the
/// tests compare the fast forms against, and what `rampart bench baseline` measures
/// the scoring path against in the same run.
#[doc(hidden)]
pub mod reference {
    /// [`super::push_argv`] over the plain collapsing.
    pub fn push_argv(out: &mut String, argv: &[String]) {
        for (i, arg) in argv.iter().take(super::MAX_KEY_ARGS).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            push_collapsed(out, arg);
        }
        if argv.len() > super::MAX_KEY_ARGS {
            out.push_str(" …");
        }
    }

    /// [`super::push_write_prefix`] over the plain collapsing.
    pub fn push_write_prefix(out: &mut String, path: &str) {
        let dir = match path.rfind('/') {
            Some(0) | None => "",
            Some(i) => &path[..i],
        };
        out.push('/');
        for (depth, comp) in dir.split('/').filter(|c| !c.is_empty()).enumerate() {
            if depth >= super::MAX_PREFIX_DEPTH {
                break;
            }
            push_collapsed(out, comp);
            out.push('/');
        }
    }

    /// Appends `s` collapsed, one byte at a time, as first written.
    pub fn push_collapsed(out: &mut String, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if !b[i].is_ascii_alphanumeric() {
                // Multi-byte characters are copied whole (never split).
                let ch_len = utf8_len(b[i]);
                out.push_str(&s[i..(i + ch_len).min(b.len())]);
                i += ch_len;
                continue;
            }
            if let Some(len) = uuid_at(b, i) {
                out.push('U');
                i += len;
                continue;
            }
            let start = i;
            while i < b.len() && b[i].is_ascii_alphanumeric() {
                i += 1;
            }
            out.push_str(collapse_token(&s[start..i]));
        }
    }

    fn utf8_len(first: u8) -> usize {
        match first {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        }
    }

    /// `8-4-4-4-12` hex digits starting at `i`, not inside a longer token.
    fn uuid_at(b: &[u8], i: usize) -> Option<usize> {
        const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
        if i > 0 && b[i - 1].is_ascii_alphanumeric() {
            return None;
        }
        let mut p = i;
        for (n, g) in GROUPS.iter().enumerate() {
            if p + g > b.len() || !b[p..p + g].iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            p += g;
            if n < 4 {
                if b.get(p) != Some(&b'-') {
                    return None;
                }
                p += 1;
            }
        }
        if b.get(p).is_some_and(u8::is_ascii_alphanumeric) {
            return None;
        }
        Some(p - i)
    }

    fn collapse_token(t: &str) -> &str {
        let b = t.as_bytes();
        let digits = b.iter().filter(|c| c.is_ascii_digit()).count();
        if digits == b.len() {
            return "N";
        }
        if digits > 0 && b.len() >= 8 && b.iter().all(u8::is_ascii_hexdigit) {
            return "H";
        }
        let letters = b.len() - digits;
        let upper = b.iter().filter(|c| c.is_ascii_uppercase()).count();
        // Mixed letters and digits, or mixed case with digits, long enough to be random.
        if b.len() >= 6 && digits > 0 && letters > 0 && (digits * 5 >= b.len() || upper > 0) {
            return "X";
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(a: &[&str]) -> String {
        let v: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        let mut out = String::new();
        push_argv(&mut out, &v);
        out
    }

    #[test]
    fn argv_volatile_parts_collapse() {
        assert_eq!(
            argv(&["sleep", "30"]),
            "sleep N",
            "numbers become N so one baseline item covers every duration"
        );
        assert_eq!(
            argv(&["cat", "/tmp/tmp.k3J9xq/out-42.log"]),
            "cat /tmp/tmp.X/out-N.log"
        );
        assert_eq!(
            argv(&["rm", "/run/123e4567-e89b-12d3-a456-426614174000.pid"]),
            "rm /run/U.pid"
        );
        assert_eq!(argv(&["git", "show", "deadbeef01"]), "git show H");
        assert_eq!(
            argv(&["python3", "-m", "http.server", "8080"]),
            "python3 -m http.server N"
        );
        // Plain words stay: they are what tells one command from another.
        assert_eq!(
            argv(&["curl", "-fsS", "http://web/"]),
            "curl -fsS http://web/"
        );
        assert_eq!(argv(&["echo", "héllo"]), "echo héllo");
    }

    #[test]
    fn the_one_pass_collapsing_agrees_with_the_plain_one() {
        // Generated arguments from pieces that exercise every branch: UUIDs (whole, cut
        // short, glued to a token), hex, numbers, random-looking names, multi-byte
        // characters and separators.
        const PIECES: [&str; 16] = [
            "123e4567-e89b-12d3-a456-426614174000",
            "123e4567-e89b-12d3-a456-42661417400",
            "deadbeef01",
            "42",
            "tmp.k3J9xq",
            "x",
            "héllo",
            "日本",
            "/",
            "-",
            ".",
            "=",
            "Ab1",
            "ABCDEF12",
            "abc123def",
            " ",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut arg = String::new();
            for _ in 0..(seed % 7) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                arg.push_str(PIECES[(seed % PIECES.len() as u64) as usize]);
            }
            seed = seed.wrapping_add(0x9e37_79b9);
            let (mut fast, mut plain) = (String::new(), String::new());
            push_collapsed(&mut fast, &arg);
            reference::push_collapsed(&mut plain, &arg);
            assert_eq!(fast, plain, "{arg:?}");
        }
    }

    #[test]
    fn write_prefixes_collapse_volatile_directories() {
        let p = |s: &str| {
            let mut o = String::new();
            push_write_prefix(&mut o, s);
            o
        };
        assert_eq!(p("/var/log/nginx/access.log"), "/var/log/nginx/");
        assert_eq!(p("/tmp/tmp.a8Xk21/part"), "/tmp/tmp.X/");
        assert_eq!(p("/a/b/c/d/e/f/g.txt"), "/a/b/c/d/");
        assert_eq!(p("/file"), "/");
        assert_eq!(p("/proc/4242/fd/1"), "/proc/N/fd/");
        for path in [
            "",
            "/",
            "x",
            "rel/a/b",
            "//a//b///c",
            "/a/b/",
            "/é/日本/ü.txt",
            "/tmp/tmp.k3J9xq/123e4567-e89b-12d3-a456-426614174000/x",
        ] {
            let mut plain = String::new();
            reference::push_write_prefix(&mut plain, path);
            assert_eq!(p(path), plain, "{path:?}");
        }
    }

    #[test]
    fn sensitive_paths_are_recognised() {
        assert!(sensitive_read("/etc/shadow").is_some());
        assert!(sensitive_read("/root/.ssh/id_ed25519").is_some());
        assert!(sensitive_read("/proc/1/environ").is_some());
        assert!(sensitive_read("/proc/self/status").is_none());
        assert!(sensitive_read("/etc/passwd").is_none());
        let mut k = String::new();
        push_sensitive_key(&mut k, "/proc/77/environ");
        assert_eq!(k, "/proc/N/environ");
    }

    #[test]
    fn entropy_separates_words_from_generated_names() {
        assert!(entropy("example.com") < 3.3);
        assert!(entropy("x9f3kq0zl2m8v7b1n6c5.tunnel.io") > 3.5);
        assert_eq!(entropy(""), 0.0);
    }
}
