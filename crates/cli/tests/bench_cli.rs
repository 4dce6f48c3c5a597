//! `rampart bench overhead` end to end on a small exec storm: the arms run, and the
//! paired comparison detaches and re-attaches the loaded sensor (its attached pieces
//! must see the storm's execs). Needs root and BTF: skips with the reason elsewhere,
//! fails in CI. Figures are not asserted: performance is measured, not tested.

use std::process::Command;

#[test]
fn overhead_pairs_the_sensor_with_itself_detached() {
    if !rampart_testbed::kernel_ready() {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "--log", "warn", "bench", "overhead", "--storms", "exec", "--execs", "100", "--rounds",
            "1", "--arms", "with", "--pairs", "2",
        ])
        .output()
        .expect("rampart bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "bench failed: {}", out.status);
    let arms: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("cpu/op"))
        .map(|l| l.split_whitespace().next().unwrap_or(""))
        .collect();
    assert_eq!(
        arms,
        ["without", "with"],
        "--arms keeps the baseline and with"
    );
    let paired: Vec<&str> = stdout.lines().filter(|l| l.contains("paired")).collect();
    assert_eq!(paired.len(), 1, "one paired line for the one sensor arm");
    // 2 pairs of 20 execs: each attached piece reports its execs (exec, fork and exit
    // each), so re-attaching worked; none were lost.
    let events: u64 = paired[0]
        .split("; ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("an event count on the paired line");
    assert!(
        events >= 2 * 20,
        "attached pieces saw {events} events: {}",
        paired[0]
    );
    assert!(paired[0].contains("drops=0"), "{}", paired[0]);
    let refused = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["bench", "overhead", "--arms", "with,nonsense"])
        .output()
        .expect("rampart runs");
    assert!(!refused.status.success(), "an unknown arm is refused");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown arm nonsense"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
