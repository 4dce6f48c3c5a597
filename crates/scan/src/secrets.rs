//! Secret scanning for the walk: `rampart-secrets` rules as a [`FileContentScanner`].

use sha2::{Digest, Sha256};

use crate::catalog::FileContentScanner;
use crate::model::{Finding, Severity};

/// Secrets from `rampart-secrets`, as a file-content scanner for the walk.
pub struct SecretContentScanner {
    scanner: rampart_secrets::SecretScanner,
    fingerprint: String,
}

impl SecretContentScanner {
    /// The built-in rule set (gitleaks' defaults).
    pub fn builtin() -> Self {
        let scanner = rampart_secrets::SecretScanner::builtin();
        let ids: Vec<&str> = scanner.rule_ids().collect();
        let fingerprint = format!(
            "secrets-builtin-{:x}",
            Sha256::digest(ids.join("\n").as_bytes())
        );
        SecretContentScanner {
            scanner,
            fingerprint,
        }
    }

    /// Rules in gitleaks' TOML format.
    pub fn from_gitleaks_toml(text: &str) -> Result<Self, rampart_secrets::SecretRulesError> {
        let scanner = rampart_secrets::SecretScanner::from_gitleaks_toml(text)?;
        let fingerprint = format!("secrets-{:x}", Sha256::digest(text.as_bytes()));
        Ok(SecretContentScanner {
            scanner,
            fingerprint,
        })
    }
}

impl FileContentScanner for SecretContentScanner {
    fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// Binary files (judged from the first 8 KiB, as gitleaks does) get path rules only.
    fn needs_whole_file(&self, path: &str, head: &[u8]) -> bool {
        !rampart_secrets::is_binary(path, head)
    }

    fn scan(&self, path: &str, bytes: &[u8]) -> Vec<Finding> {
        self.scanner
            .scan(path, bytes)
            .into_iter()
            .map(|f| Finding {
                rule_id: f.rule_id,
                kind: "secret".into(),
                description: f.description,
                severity: Severity::High,
                path: f.path,
                line: u32::try_from(f.line).unwrap_or(u32::MAX),
                excerpt: f.redacted,
                layer: None,
            })
            .collect()
    }
}
