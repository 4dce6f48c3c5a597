//! The shipped rule library (`rules/` at the repository's root), carried inside the
//! binary so a copied `rampart` has its rules. A test keeps this list equal to the
//! directory.

/// Each file of the library: its name and its text.
pub const FILES: &[(&str, &str)] = &[
    (
        "command_and_control.yaml",
        include_str!("../../../rules/command_and_control.yaml"),
    ),
    (
        "credential_access.yaml",
        include_str!("../../../rules/credential_access.yaml"),
    ),
    (
        "defense_evasion.yaml",
        include_str!("../../../rules/defense_evasion.yaml"),
    ),
    (
        "discovery.yaml",
        include_str!("../../../rules/discovery.yaml"),
    ),
    (
        "execution.yaml",
        include_str!("../../../rules/execution.yaml"),
    ),
    (
        "exfiltration.yaml",
        include_str!("../../../rules/exfiltration.yaml"),
    ),
    ("impact.yaml", include_str!("../../../rules/impact.yaml")),
    ("macros.yaml", include_str!("../../../rules/macros.yaml")),
    (
        "persistence.yaml",
        include_str!("../../../rules/persistence.yaml"),
    ),
    (
        "privilege_escalation.yaml",
        include_str!("../../../rules/privilege_escalation.yaml"),
    ),
];

/// A short digest of the library's content (FNV-1a), for naming a copy of it.
pub fn digest() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, text) in FILES {
        for b in name.bytes().chain([0]).chain(text.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_list_is_the_rules_directory() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml"))
            .collect();
        on_disk.sort();
        let embedded: Vec<&str> = super::FILES.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            on_disk, embedded,
            "add new rules files to crates/detect/src/library.rs"
        );
        let (set, errors) = crate::loader::load_texts(
            &super::FILES
                .iter()
                .map(|(n, t)| (n.to_string(), t.to_string()))
                .collect::<Vec<_>>(),
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert!(set.rules().len() > 20);
    }
}
