//! Bad and pathological input: random conditions and mutated rules files never panic,
//! errors stay located, and huge or deeply nested rules load in bounded time.

use std::time::{Duration, Instant};

use rampart_detect::{load_texts, parse_condition};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "proc.name",
    "fd.name",
    "proc.aname[2]",
    "evt.type",
    "evt.arg.flags",
    "evt.arg[0]",
    "fd.sport",
    "user.uid",
    "container.privileged",
    "fd.sip",
    "proc.bogus",
    "tolower(",
    "val(",
    "=",
    "!=",
    "<",
    ">=",
    " in ",
    " contains ",
    " icontains ",
    " startswith ",
    " endswith ",
    " glob ",
    " pmatch ",
    " exists",
    " regex ",
    " intersects ",
    " and ",
    " or ",
    "not ",
    "(",
    ")",
    ",",
    "\"a b\"",
    "'x'",
    "execve",
    "open",
    "/etc/",
    "0",
    "-1",
    "0x1f",
    "true",
    "1.2.3.4",
    "10.0.0.0/8",
    "[",
    "]",
    "\\",
    "\"",
    "é",
    " ",
    "\n",
    "macro_x",
    "shell_binaries",
];

fn random_condition(rng: &mut Rng) -> String {
    let n = 1 + rng.below(24);
    let mut s = String::new();
    for _ in 0..n {
        if rng.below(10) == 0 {
            // raw byte noise (valid UTF-8)
            s.push(char::from_u32(32 + rng.below(200) as u32).unwrap_or('?'));
        } else {
            s.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
    }
    s
}

#[test]
fn random_conditions_never_panic_and_errors_stay_in_range() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ok, mut bad) = (0, 0);
    let start = Instant::now();
    for _ in 0..20_000 {
        let c = random_condition(&mut rng);
        match parse_condition(&c) {
            Ok(_) => ok += 1,
            Err(e) => {
                assert!(e.offset <= c.len(), "offset {} beyond {:?}", e.offset, c);
                assert!(!e.message.is_empty());
                bad += 1;
            }
        }
    }
    println!("{ok} parsed, {bad} rejected in {:?}", start.elapsed());
    assert!(
        ok > 100 && bad > 100,
        "generator should exercise both paths: {ok}/{bad}"
    );
}

#[test]
fn random_conditions_compile_or_fail_with_a_position() {
    let mut rng = Rng(42);
    let mut loaded = 0;
    for i in 0..2_000 {
        let c = random_condition(&mut rng).replace('\n', " ");
        let text = format!(
            "- list: shell_binaries\n  items: [sh, bash]\n- macro: macro_x\n  condition: proc.name = sh\n- rule: r{i}\n  desc: d\n  condition: '{}'\n  output: o %proc.name\n  priority: INFO\n",
            c.replace('\'', "''")
        );
        let (set, errors) = load_texts(&[("fuzz.yaml".into(), text)]);
        loaded += set.rules().len();
        for e in errors {
            assert!(e.line >= 1 && e.col >= 1, "{e}");
        }
    }
    assert!(loaded > 0);
}

#[test]
fn mutated_rules_files_never_panic() {
    let base = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/example_rules.yaml"
    ))
    .unwrap();
    let mut rng = Rng(7);
    for _ in 0..300 {
        let mut b = base.clone();
        for _ in 0..1 + rng.below(8) {
            let i = rng.below(b.len());
            match rng.below(3) {
                0 => b[i] = b" :-[]{}'\"#|>\nabc0"[rng.below(17)],
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, b"()\n, '"[rng.below(6)]),
            }
        }
        let text = String::from_utf8_lossy(&b).into_owned();
        let (_set, errors) = load_texts(&[("m.yaml".into(), text)]);
        for e in errors {
            assert!(!e.message.is_empty());
        }
    }
}

#[test]
fn deep_nesting_is_refused_quickly_and_huge_lists_load() {
    let deep = format!("{}proc.name = sh{}", "(".repeat(50_000), ")".repeat(50_000));
    let nots = format!("{}proc.name = sh", "not ".repeat(50_000));
    let items: Vec<String> = (0..100_000).map(|i| format!("bin{i}")).collect();
    let long_or = (0..5_000)
        .map(|i| format!("proc.name = p{i}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let text = format!(
        "- list: big\n  items: [{}]\n- rule: deep\n  desc: d\n  condition: {deep}\n  output: o\n  priority: INFO\n- rule: nots\n  desc: d\n  condition: {nots}\n  output: o\n  priority: INFO\n- rule: big list\n  desc: d\n  condition: proc.name in (big)\n  output: o\n  priority: INFO\n- rule: long or\n  desc: d\n  condition: {long_or}\n  output: o\n  priority: INFO\n",
        items.join(", ")
    );
    let start = Instant::now();
    let (set, errors) = load_texts(&[("big.yaml".into(), text)]);
    let took = start.elapsed();
    println!("pathological file loaded in {took:?}");
    assert_eq!(set.rules().len(), 2, "big list and long or load");
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(e.message.contains("nested deeper"), "{e}");
        let want_line = match e.item.as_deref() {
            Some("rule 'deep'") => 5,
            Some("rule 'nots'") => 10,
            other => panic!("unexpected failing item {other:?}"),
        };
        assert_eq!(e.line, want_line, "{e}");
    }
    assert!(took < Duration::from_secs(60), "took {took:?}");
    let ev = rampart_detect::tests_format::build_event(
        &serde_json::json!({"kind": "exec", "process": {"comm": "bin99999"}}),
    )
    .unwrap();
    assert_eq!(set.matching_rules(&ev), ["big list"]);
}

/// Macros that each use the previous one twice double at every level (2^40 tests
/// once expanded): the rule is refused with a located error, quickly.
#[test]
fn exponential_macro_expansion_is_refused_quickly() {
    let mut text = String::from("- macro: m0\n  condition: proc.name = sh\n");
    for i in 1..=40 {
        text.push_str(&format!(
            "- macro: m{i}\n  condition: (m{p} or m{p})\n",
            p = i - 1
        ));
    }
    text.push_str("- rule: blowup\n  desc: d\n  condition: evt.type = execve and m40\n  output: o\n  priority: INFO\n");
    text.push_str("- rule: fine\n  desc: d\n  condition: evt.type = execve and m3\n  output: o\n  priority: INFO\n");
    let start = Instant::now();
    let (set, errors) = load_texts(&[("macros.yaml".into(), text)]);
    let took = start.elapsed();
    println!("exponential macros refused in {took:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let names: Vec<&str> = set.rules().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["fine"]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert!(e.message.contains("condition too large"), "{e}");
    assert_eq!(e.item.as_deref(), Some("rule 'blowup'"));
    assert_eq!(e.line, 85, "{e}");
}

/// Lists that each include the previous one twice would double at every level; they
/// load as the sets they are, in bounded time.
#[test]
fn self_doubling_lists_load_as_sets() {
    let mut text = String::from("- list: l0\n  items: [a, b]\n");
    for i in 1..=64 {
        text.push_str(&format!(
            "- list: l{i}\n  items: [l{p}, l{p}, x{i}]\n",
            p = i - 1
        ));
    }
    text.push_str(
        "- rule: r\n  desc: d\n  condition: proc.name in (l64)\n  output: o\n  priority: INFO\n",
    );
    let start = Instant::now();
    let (set, errors) = load_texts(&[("lists.yaml".into(), text)]);
    let took = start.elapsed();
    println!("doubling lists loaded in {took:?}");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let ev = |comm: &str| {
        rampart_detect::tests_format::build_event(
            &serde_json::json!({"kind": "exec", "process": {"comm": comm}}),
        )
        .unwrap()
    };
    assert_eq!(set.matching_rules(&ev("b")), ["r"]);
    assert_eq!(set.matching_rules(&ev("x64")), ["r"]);
    assert!(set.matching_rules(&ev("y")).is_empty());
}
