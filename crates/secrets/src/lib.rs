//! Rampart's secret and malware detection for single files.
//!
//! This crate owns:
//! - **Secrets**: rules in gitleaks' TOML format (rules with `regex`,
//!   `secretGroup`, `entropy`, `keywords`, `path`, per-rule and global
//!   allowlists with `regexTarget`, `regexes`, `paths`, `stopwords`, `commits`,
//!   `condition`), applied the way gitleaks' `detect` package applies them: a
//!   case-insensitive Aho-Corasick keyword pre-filter over the whole file, then
//!   only the rules whose keywords occur, with Go's ASCII regex classes, Shannon
//!   entropy thresholds and allowlists. Findings are redacted; binary files are
//!   not searched. [`SecretScanner::builtin`] is Rampart's own rule set
//!   (`rules/default.toml`).
//! - **Malware** (cargo feature `yara`): YARA rules through `yara-x`, where a
//!   rule that does not compile is reported and skipped.
//!
//! The image and directory walker (`rampart-scan`) calls this crate per file.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod config;
mod go_regex;
#[cfg(feature = "yara")]
mod malware;
mod scanner;

/// Compiles a gitleaks (Go RE2) pattern the way rule regexes are compiled:
/// translated to Rust syntax, ASCII classes, matching raw bytes.
pub use go_regex::compile as compile_gitleaks_regex;
#[cfg(feature = "yara")]
pub use malware::{MalwareError, MalwareFinding, MalwareScanner, MalwareSession, SkippedYaraRule};
pub use scanner::{
    is_binary, redact, shannon_entropy, SecretFinding, SecretRulesError, SecretScanner, SkippedRule,
};

/// The EICAR anti-malware test file (68 bytes, as its standard defines it), for
/// self-tests of malware scanning. Assembled at run time so that no source file or
/// checkout holds it verbatim (antivirus would flag those).
pub fn eicar_test_file() -> Vec<u8> {
    [
        "X5O!P%@AP[4\\PZX54(P^)7CC)7}",
        "$EICAR-STANDARD-",
        "ANTIVIRUS-TEST-FILE!",
        "$H+H*",
    ]
    .concat()
    .into_bytes()
}

#[cfg(test)]
mod thread_safety {
    /// The scanner walks images on several threads and shares one rule set.
    #[test]
    fn scanners_are_shareable_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<super::SecretScanner>();
        assert_eq!(super::eicar_test_file().len(), 68);
        #[cfg(feature = "yara")]
        shareable::<super::MalwareScanner>();
    }
}
