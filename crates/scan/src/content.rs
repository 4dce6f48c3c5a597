//! Several file-content scanners (secrets and malware) run as one, since the walk
//! takes a single [`FileContentScanner`].

use std::sync::Arc;

use crate::catalog::{FileContentScanner, CONTENT_HEAD_BYTES};
use crate::model::Finding;

/// Runs each scanner in turn; a file is read whole if any of them needs it.
pub struct ContentScanners {
    scanners: Vec<Arc<dyn FileContentScanner>>,
}

impl ContentScanners {
    pub fn new(scanners: Vec<Arc<dyn FileContentScanner>>) -> Self {
        ContentScanners { scanners }
    }
}

impl FileContentScanner for ContentScanners {
    fn fingerprint(&self) -> String {
        let parts: Vec<String> = self.scanners.iter().map(|s| s.fingerprint()).collect();
        parts.join("+")
    }

    fn needs_whole_file(&self, path: &str, head: &[u8]) -> bool {
        self.scanners.iter().any(|s| s.needs_whole_file(path, head))
    }

    /// A scanner that does not need the whole file gets only its head, as it would
    /// on its own (a malware scanner reading a binary whole must not make the secret
    /// scanner search it).
    fn scan(&self, path: &str, bytes: &[u8]) -> Vec<Finding> {
        let head = &bytes[..bytes.len().min(CONTENT_HEAD_BYTES)];
        let mut findings = Vec::new();
        for scanner in &self.scanners {
            let input = if bytes.len() > head.len() && !scanner.needs_whole_file(path, head) {
                head
            } else {
                bytes
            };
            findings.extend(scanner.scan(path, input));
        }
        findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the length it was given; wants whole files only when `whole`.
    struct Probe {
        name: &'static str,
        whole: bool,
    }

    impl FileContentScanner for Probe {
        fn fingerprint(&self) -> String {
            self.name.to_string()
        }
        fn needs_whole_file(&self, _path: &str, _head: &[u8]) -> bool {
            self.whole
        }
        fn scan(&self, path: &str, bytes: &[u8]) -> Vec<Finding> {
            vec![Finding {
                rule_id: self.name.to_string(),
                kind: "probe".into(),
                description: String::new(),
                severity: crate::Severity::Low,
                path: path.to_string(),
                line: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                excerpt: String::new(),
                layer: None,
            }]
        }
    }

    #[test]
    fn each_scanner_gets_what_it_asked_for() {
        let both = ContentScanners::new(vec![
            Arc::new(Probe {
                name: "head",
                whole: false,
            }),
            Arc::new(Probe {
                name: "whole",
                whole: true,
            }),
        ]);
        assert_eq!(both.fingerprint(), "head+whole");
        assert!(both.needs_whole_file("f", b""));
        let data = vec![0u8; CONTENT_HEAD_BYTES * 3];
        let lengths: Vec<(String, u32)> = both
            .scan("f", &data)
            .into_iter()
            .map(|f| (f.rule_id, f.line))
            .collect();
        let head = CONTENT_HEAD_BYTES as u32;
        assert_eq!(
            lengths,
            [("head".to_string(), head), ("whole".to_string(), head * 3)]
        );
        // Short files go to everyone whole.
        let lengths: Vec<u32> = both.scan("f", b"abc").iter().map(|f| f.line).collect();
        assert_eq!(lengths, [3, 3]);
    }
}
