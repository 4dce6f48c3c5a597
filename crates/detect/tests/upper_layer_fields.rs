//! The upper-layer flag of a process and of its ancestors: `proc.is_exe_upper_layer`,
//! `proc.is_pexe_upper_layer`, `proc.is_aexe_upper_layer[N]` (0 the process itself) and
//! `proc.is_aexe_upper_layer` without an index (any ancestor, not the process).

use rampart_detect::load_texts;
use rampart_detect::tests_format::build_event;
use serde_json::json;

const FIELDS: &[(&str, &str)] = &[
    ("self", "proc.is_exe_upper_layer = true"),
    ("parent", "proc.is_pexe_upper_layer = true"),
    ("a0", "proc.is_aexe_upper_layer[0] = true"),
    ("a1", "proc.is_aexe_upper_layer[1] = true"),
    ("a2", "proc.is_aexe_upper_layer[2] = true"),
    ("any", "proc.is_aexe_upper_layer = true"),
];

fn rules() -> String {
    FIELDS
        .iter()
        .map(|(name, cond)| {
            format!("- rule: {name}\n  desc: d\n  condition: evt.type = execve and {cond}\n  output: o\n  priority: NOTICE\n")
        })
        .collect()
}

/// The rules that match an exec whose process (`own`) and ancestors (parent first)
/// have these flags.
fn matching(own: bool, ancestors: &[bool]) -> Vec<String> {
    let (set, errors) = load_texts(&[("r.yaml".into(), rules())]);
    assert!(errors.is_empty(), "{errors:?}");
    let ancestry: Vec<_> = ancestors
        .iter()
        .enumerate()
        .map(|(i, up)| json!({"pid": 10 + i, "exe": format!("/x{i}"), "exe_upper_layer": up}))
        .collect();
    let ev = build_event(&json!({
        "kind": "exec",
        "process": {"comm": "cat", "exe": "/bin/cat", "exe_upper_layer": own, "ancestry": ancestry},
        "container": {"type": "container", "id": "c0ffee000001"},
    }))
    .unwrap();
    set.matching_rules(&ev)
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn each_ancestor_is_read_by_its_index_and_any_means_an_ancestor() {
    assert_eq!(matching(false, &[true, false]), ["parent", "a1", "any"]);
    assert_eq!(matching(false, &[false, true]), ["a2", "any"]);
    // The process's own flag is index 0, and not "any ancestor".
    assert_eq!(matching(true, &[false, false]), ["self", "a0"]);
    assert!(matching(false, &[false, false, false]).is_empty());
    // No ancestry known: nothing about ancestors holds.
    assert_eq!(matching(true, &[]), ["self", "a0"]);
}
