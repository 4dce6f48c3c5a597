//! Every rule of the library in `rules/` performed for real in a container: for each
//! rule, `tests/data/rule_scenarios.yaml` holds a script that does the behaviour the
//! rule describes and a neighbouring script that looks similar but must stay quiet.
//! The real sensor and engine (the shared harness of this crate) watch; a match counts
//! for a scenario only when it comes from that container and from a process whose own
//! or an ancestor's command line carries the scenario's marker.
//!
//! Entries that share an image and `docker run` flags share one container; containers
//! run in parallel, the scenarios of one container one after another. All problems are
//! collected and reported together at the end. `known_gap` entries (the rule misses a
//! behaviour it should catch) and `cannot_fire` entries are reported, not failed; a
//! `cannot_fire` rule that fires fails (the entry is stale), a known gap that fires is
//! printed loudly (some gaps depend on timing, so that alone does not fail).
//! Needs root and dockerd: skips with the reason elsewhere, fails in CI.
//!
//! The same runner performs Falco's stable rules (the shared fixture, loaded
//! unmodified beside the library by the harness) from
//! `tests/data/falco_stable_scenarios.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_detect_e2e::{detector, ready, Match, TestContainer};

const SCENARIOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/rule_scenarios.yaml"
);
const FALCO_SCENARIOS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/falco_stable_scenarios.yaml"
);
/// Longest a single script may run (host-side `timeout`; a hung script is a failure).
const SCRIPT_TIMEOUT_SECS: u32 = 30;
/// How long, after the last script, events may take to reach the engine.
const FIRE_DEADLINE: Duration = Duration::from_secs(20);
/// Time given to late events before asserting that a benign script did not fire.
const SETTLE: Duration = Duration::from_secs(3);

/// One entry of the scenario file.
#[derive(Debug, Default, Clone)]
struct Scenario {
    line: usize,
    rule: String,
    /// Names one way of performing the rule's behaviour, when a rule has several
    /// entries (an attacker varies the technique; each variant must fire).
    variant: Option<String>,
    image: String,
    flags: Vec<String>,
    setup: Option<String>,
    benign: String,
    fire: String,
    fire_tty: bool,
    /// `NAME=value` pairs `docker exec -e` sets for the fire script (the way an
    /// operator's or attacker's `docker exec -e` puts a variable into a container).
    fire_env: Vec<String>,
    cannot_fire: Option<String>,
    known_gap: Option<String>,
}

/// Parses the small YAML subset the scenario file uses: a top-level sequence of
/// mappings whose values are plain or quoted scalars, `[a, b]` flow lists of plain
/// scalars, or `|` literal blocks indented by four spaces. Anything else is an error
/// with its line, so the file cannot silently mean something else. (The crate has no
/// YAML dependency, and this keeps it that way.)
fn parse_scenarios(text: &str) -> Result<Vec<Scenario>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<Scenario> = Vec::new();
    let mut seen_keys: BTreeSet<String> = BTreeSet::new();
    let mut i = 0;
    while i < lines.len() {
        let raw = lines[i];
        let n = i + 1;
        i += 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let body = if let Some(rest) = raw.strip_prefix("- ") {
            out.push(Scenario {
                line: n,
                ..Default::default()
            });
            seen_keys.clear();
            rest
        } else if let Some(rest) = raw.strip_prefix("  ") {
            if rest.starts_with(' ') {
                return Err(format!("line {n}: unexpected indentation"));
            }
            rest
        } else {
            return Err(format!(
                "line {n}: expected `- key: value` or `  key: value`"
            ));
        };
        let Some(sc) = out.last_mut() else {
            return Err(format!("line {n}: a key outside an entry"));
        };
        let (key, value) = body
            .split_once(':')
            .ok_or_else(|| format!("line {n}: expected `key: value`"))?;
        let (key, value) = (key.trim(), value.trim());
        if !seen_keys.insert(key.to_string()) {
            return Err(format!("line {n}: duplicate key {key:?}"));
        }
        let text_value = if value == "|" {
            let mut block = String::new();
            while i < lines.len() {
                let l = lines[i];
                if l.trim().is_empty() {
                    block.push('\n');
                } else if let Some(content) = l.strip_prefix("    ") {
                    block.push_str(content);
                    block.push('\n');
                } else {
                    break;
                }
                i += 1;
            }
            // Clip chomping: one final newline.
            let trimmed = block.trim_end_matches('\n');
            format!("{trimmed}\n")
        } else if value.len() >= 2
            && ((value.starts_with('"') && value.ends_with('"'))
                || (value.starts_with('\'') && value.ends_with('\'')))
        {
            value[1..value.len() - 1].to_string()
        } else {
            value.to_string()
        };
        match key {
            "rule" => sc.rule = text_value,
            "variant" => sc.variant = Some(text_value),
            "image" => sc.image = text_value,
            "flags" | "fire_env" => {
                let inner = value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .ok_or_else(|| format!("line {n}: {key} must be a [flow, list]"))?;
                let list = inner
                    .split(',')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect();
                if key == "flags" {
                    sc.flags = list;
                } else {
                    sc.fire_env = list;
                }
            }
            "setup" => sc.setup = Some(text_value),
            "benign" => sc.benign = text_value,
            "fire" => sc.fire = text_value,
            "fire_tty" => {
                sc.fire_tty = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("line {n}: fire_tty must be true or false")),
                }
            }
            "cannot_fire" => sc.cannot_fire = Some(text_value),
            "known_gap" => sc.known_gap = Some(text_value),
            _ => return Err(format!("line {n}: unknown key {key:?}")),
        }
    }
    Ok(out)
}

/// Marker of one script of one scenario; fixed width, so no marker contains another.
fn marker(idx: usize, kind: char) -> String {
    format!("scn{idx:03}{kind}")
}

/// Whether a match comes from a process started by the script with `mark`.
fn carries(m: &Match, mark: &str) -> bool {
    m.event.process.as_ref().is_some_and(|p| {
        p.argv.iter().any(|a| a.contains(mark))
            || p.ancestry
                .iter()
                .any(|a| a.argv.iter().any(|x| x.contains(mark)))
    })
}

/// The rule and, for one of several variants, which.
fn label(s: &Scenario) -> String {
    match &s.variant {
        Some(v) => format!("{} [{v}]", s.rule),
        None => s.rule.clone(),
    }
}

fn describe(m: &Match) -> String {
    let comm = m
        .event
        .process
        .as_ref()
        .map(|p| p.comm.as_str())
        .unwrap_or("?");
    let cmd: String = m.cmdline().chars().take(120).collect();
    format!("{} <- [{comm}] {}", m.rule, cmd.replace('\n', "⏎"))
}

/// Outcome of one script run.
struct Ran {
    ok: bool,
    detail: String,
}

/// Runs `script` in the container as `sh -c` with the marker on the shell's command
/// line (first, so argv truncation cannot drop it) and in `$SCN`. The trailing
/// commands keep the shell from exec'ing the script's last command in place, which
/// would drop the marker from that process's ancestry.
fn run_script(c: &TestContainer, script: &str, mark: &str, tty: bool, extra_env: &[String]) -> Ran {
    let wrapped = format!(": {mark}; {{\n{script}\n}}; r=$?; exit $r");
    let env = format!("SCN={mark}");
    let extra: Vec<String> = extra_env
        .iter()
        .flat_map(|kv| ["-e".to_string(), kv.clone()])
        .collect();
    let limit = SCRIPT_TIMEOUT_SECS.to_string();
    let out = if tty {
        // `docker exec -it` under a real pseudo-terminal (util-linux `script`).
        let inner = format!(
            "timeout --foreground {limit} docker exec -it -e {env} {} {} sh -c '{}'",
            extra
                .iter()
                .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
                .collect::<Vec<_>>()
                .join(" "),
            c.name,
            wrapped.replace('\'', r"'\''")
        );
        Command::new("script")
            .args(["-qec", &inner, "/dev/null"])
            .stdin(Stdio::null())
            .output()
    } else {
        Command::new("timeout")
            .args([&limit, "docker", "exec", "-e", &env])
            .args(&extra)
            .args([&c.name, "sh", "-c"])
            .arg(&wrapped)
            .stdin(Stdio::null())
            .output()
    };
    match out {
        Ok(o) if o.status.success() => Ran {
            ok: true,
            detail: String::new(),
        },
        Ok(o) => Ran {
            ok: false,
            detail: format!(
                "exit {:?}: {}",
                o.status.code(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
        },
        Err(e) => Ran {
            ok: false,
            detail: e.to_string(),
        },
    }
}

/// Which rules a scenario file covers: where they load from, and the prefix of its
/// container names (the two suites run in parallel in one test binary).
struct Suite {
    file: &'static str,
    rules: fn() -> std::path::PathBuf,
    rules_label: &'static str,
    container_prefix: &'static str,
    title: &'static str,
}

const LIBRARY: Suite = Suite {
    file: SCENARIOS,
    rules: rampart_detect_e2e::rules_dir,
    rules_label: "rules/",
    container_prefix: "rampart-lic",
    title: "library_in_containers",
};

const FALCO_STABLE: Suite = Suite {
    file: FALCO_SCENARIOS,
    rules: rampart_detect_e2e::falco_rules,
    rules_label: "falco_rules.yaml",
    container_prefix: "rampart-lfc",
    title: "falco_stable_in_containers",
};

fn load_scenarios(file: &str) -> Vec<Scenario> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    match parse_scenarios(&text) {
        Ok(s) => s,
        Err(e) => panic!("{file}: {e}"),
    }
}

fn start_container(name: &str, image: &str, flags: &[String]) -> Result<TestContainer, String> {
    rampart_testbed::remove_container(name);
    let mut args: Vec<&str> = vec!["run", "-d", "--name", name];
    args.extend(flags.iter().map(String::as_str));
    args.extend([image, "sleep", "900"]);
    let out = Command::new("docker")
        .args(&args)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "docker {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(TestContainer {
        id: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        name: name.to_string(),
    })
}

#[test]
fn falco_scenario_file_parses_and_names_each_stable_rule_once() {
    let scenarios = load_scenarios(FALCO_SCENARIOS);
    let problems = coverage_problems(&FALCO_STABLE, &scenarios);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn scenario_file_parses_and_names_each_rule_once() {
    let scenarios = load_scenarios(SCENARIOS);
    let problems = coverage_problems(&LIBRARY, &scenarios);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The parser refuses what it does not understand instead of guessing.
    assert!(parse_scenarios("- rule: x\n  colour: red\n").is_err());
    assert!(parse_scenarios("- rule: x\n  rule: y\n").is_err());
    assert!(parse_scenarios("- rule: x\n  flags: --privileged\n").is_err());
    // Several entries of one rule must each name a distinct variant.
    let two = parse_scenarios(
        "- rule: Netcat listener started\n  variant: a\n- rule: Netcat listener started\n  variant: a\n",
    )
    .expect("valid subset");
    assert!(coverage_problems(&LIBRARY, &two)
        .iter()
        .any(|p| p.contains("variant \"a\" named 2 times")));
    let s = parse_scenarios("- rule: 'a b'\n  fire: |\n    one\n\n    two\n  flags: [-v, /a:/b]\n")
        .expect("valid subset");
    assert_eq!(s[0].rule, "a b");
    assert_eq!(s[0].fire, "one\n\ntwo\n");
    assert_eq!(s[0].flags, ["-v", "/a:/b"]);
    let s = parse_scenarios("- rule: x\n  fire_env: [NODE_OPTIONS=--require=/tmp/h.js]\n")
        .expect("valid subset");
    assert_eq!(s[0].fire_env, ["NODE_OPTIONS=--require=/tmp/h.js"]);
}

/// Entries against the suite's rules: one per rule, or several that each name a
/// distinct `variant`; none for a missing rule; each complete; disabled rules declared
/// as such.
fn coverage_problems(suite: &Suite, scenarios: &[Scenario]) -> Vec<String> {
    let (set, errors) = rampart_detect::load_files(&[(suite.rules)()]);
    let label = suite.rules_label;
    let mut problems: Vec<String> = errors.iter().map(|e| format!("{label}: {e:?}")).collect();
    let rules: BTreeMap<&str, bool> = set
        .rules()
        .iter()
        .map(|r| (r.name.as_str(), r.enabled))
        .collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut variants: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for s in scenarios {
        *count.entry(s.rule.as_str()).or_default() += 1;
        if let Some(v) = &s.variant {
            *variants.entry((s.rule.as_str(), v.as_str())).or_default() += 1;
        }
        let at = format!("line {} ({:?})", s.line, s.rule);
        match rules.get(s.rule.as_str()) {
            None => problems.push(format!("{at}: no rule of that name in {label}")),
            Some(false) if s.cannot_fire.is_none() => {
                problems.push(format!("{at}: the rule is disabled; say so in cannot_fire"))
            }
            _ => {}
        }
        if s.image.is_empty() || s.fire.trim().is_empty() || s.benign.trim().is_empty() {
            problems.push(format!("{at}: needs image, fire and benign"));
        }
        if s.cannot_fire.is_some() && s.known_gap.is_some() {
            problems.push(format!(
                "{at}: cannot_fire and known_gap exclude each other"
            ));
        }
    }
    for (rule, n) in &count {
        let unnamed = scenarios
            .iter()
            .filter(|s| s.rule == *rule && s.variant.is_none())
            .count();
        if *n > 1 && unnamed > 0 {
            problems.push(format!(
                "{rule:?}: {n} entries, {unnamed} without a `variant:` (one per rule, or each a named variant)"
            ));
        }
    }
    for ((rule, variant), n) in &variants {
        if *n > 1 {
            problems.push(format!("{rule:?}: variant {variant:?} named {n} times"));
        }
    }
    for rule in rules.keys() {
        if !count.contains_key(rule) {
            problems.push(format!(
                "{rule:?}: no scenario in {} (every rule needs one)",
                suite.file
            ));
        }
    }
    problems
}

#[test]
fn every_library_rule_fires_in_a_real_container() {
    run_suite(&LIBRARY);
}

#[test]
fn every_falco_stable_rule_fires_in_a_real_container() {
    run_suite(&FALCO_STABLE);
}

fn run_suite(suite: &Suite) {
    if !ready() {
        return;
    }
    let t0 = Instant::now();
    let scenarios = load_scenarios(suite.file);
    let missing_images: BTreeSet<&str> = scenarios
        .iter()
        .map(|s| s.image.as_str())
        .filter(|i| !rampart_testbed::image_present(i))
        .collect();
    if !missing_images.is_empty() {
        rampart_testbed::skip_or_fail(format!(
            "test images {missing_images:?} missing (scripts/setup builds them)"
        ));
        return;
    }
    let mut failures = coverage_problems(suite, &scenarios);
    let d = detector();

    // RAMPART_SCENARIO_FILTER=text runs only the rules whose name (or variant) contains
    // it (while writing a scenario); the coverage check above still covers the whole file.
    let filter = std::env::var("RAMPART_SCENARIO_FILTER")
        .ok()
        .map(|f| f.to_lowercase());
    // One container per (image, flags); each runs its scenarios in file order.
    let mut groups: BTreeMap<(String, Vec<String>), Vec<usize>> = BTreeMap::new();
    for (i, s) in scenarios.iter().enumerate() {
        if filter
            .as_ref()
            .is_some_and(|f| !label(s).to_lowercase().contains(f.as_str()))
        {
            continue;
        }
        groups
            .entry((s.image.clone(), s.flags.clone()))
            .or_default()
            .push(i);
    }
    type GroupResult = (Option<TestContainer>, Vec<String>, Vec<usize>);
    let results: Vec<GroupResult> = std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .iter()
            .enumerate()
            .map(|(g, ((image, flags), idxs))| {
                let scenarios = &scenarios;
                // RAMPART_TEST_CONTAINER_PREFIX puts a prefix before the names (an
                // engineer's own prefix on a shared Docker host).
                let name = format!(
                    "{}{}-{g}",
                    std::env::var("RAMPART_TEST_CONTAINER_PREFIX").unwrap_or_default(),
                    suite.container_prefix
                );
                scope.spawn(move || run_group(&name, image, flags, idxs, scenarios))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| (None, vec!["a group panicked".into()], vec![]))
            })
            .collect()
    });
    let scripts_done = Instant::now();
    let mut where_ran: BTreeMap<usize, String> = BTreeMap::new();
    for (c, errs, placed) in &results {
        failures.extend(errs.iter().cloned());
        if let Some(c) = c {
            for i in placed {
                where_ran.insert(*i, c.id.clone());
            }
        }
    }
    let containers: BTreeMap<String, &TestContainer> = results
        .iter()
        .filter_map(|(c, _, _)| c.as_ref())
        .map(|c| (c.id.clone(), c))
        .collect();

    // Wait until every expected alert arrived (or the deadline), and at least SETTLE.
    let fired = |i: usize| -> Option<Match> {
        let c = containers.get(where_ran.get(&i)?)?;
        let mark = marker(i, 'f');
        d.matches_in(c)
            .into_iter()
            .find(|m| m.rule == scenarios[i].rule && carries(m, &mark))
    };
    let expected: Vec<usize> = (0..scenarios.len())
        .filter(|i| {
            scenarios[*i].cannot_fire.is_none()
                && scenarios[*i].known_gap.is_none()
                && where_ran.contains_key(i)
        })
        .collect();
    let deadline = scripts_done + FIRE_DEADLINE;
    loop {
        let pending = expected.iter().filter(|i| fired(**i).is_none()).count();
        if (pending == 0 && scripts_done.elapsed() >= SETTLE) || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }

    let (mut n_fired, mut n_quiet) = (0, 0);
    let mut gaps = Vec::new();
    let mut gaps_fired = Vec::new();
    let mut cannot = Vec::new();
    for (i, s) in scenarios.iter().enumerate() {
        let Some(c) = where_ran.get(&i).and_then(|id| containers.get(id)) else {
            continue;
        };
        let all = d.matches_in(c);
        let benign_mark = marker(i, 'b');
        let loud: Vec<String> = all
            .iter()
            .filter(|m| m.rule == s.rule && carries(m, &benign_mark))
            .map(describe)
            .collect();
        if loud.is_empty() {
            n_quiet += 1;
        } else {
            failures.push(format!(
                "{:?} (line {}): the benign neighbour fired it: {loud:#?}",
                label(s),
                s.line
            ));
        }
        let hit = fired(i);
        match (&s.cannot_fire, &s.known_gap, hit) {
            (Some(why), _, None) => cannot.push(format!("{}: {why}", s.rule)),
            (None, Some(why), None) => gaps.push(format!("{}: {why}", s.rule)),
            (Some(_), _, Some(m)) => failures.push(format!(
                "{:?} (line {}): marked cannot_fire but fired ({}); update the entry",
                s.rule,
                s.line,
                describe(&m)
            )),
            // Not a failure: some gaps depend on timing (e.g. the lineage the sensor saw).
            (None, Some(why), Some(m)) => gaps_fired.push(format!(
                "{}: fired this time ({}); remove known_gap once it fires every run ({why})",
                s.rule,
                describe(&m)
            )),
            (None, None, Some(_)) => n_fired += 1,
            (None, None, None) => {
                let fire_mark = marker(i, 'f');
                let of_script: Vec<String> = all
                    .iter()
                    .filter(|m| carries(m, &fire_mark))
                    .map(describe)
                    .collect();
                let of_rule: Vec<String> = all
                    .iter()
                    .filter(|m| m.rule == s.rule)
                    .map(describe)
                    .collect();
                failures.push(format!(
                    "{:?} (line {}): did not fire in {}; the fire script matched {of_script:#?}; \
                     the rule matched there {of_rule:#?}",
                    label(s),
                    s.line,
                    c.name
                ));
            }
        }
    }
    for g in &gaps {
        eprintln!("known gap: {g}");
    }
    for g in &gaps_fired {
        eprintln!("KNOWN GAP FIRED: {g}");
    }
    for c in &cannot {
        eprintln!("cannot fire: {c}");
    }
    eprintln!(
        "{}: {} rules{}: {n_fired} fired, {n_quiet} benign quiet, {} cannot_fire, {} known gaps ({} of them fired this run); {} containers; {:.1}s",
        suite.title,
        where_ran.len(),
        if filter.is_some() { " (filtered)" } else { "" },
        cannot.len(),
        gaps.len() + gaps_fired.len(),
        gaps_fired.len(),
        containers.len(),
        t0.elapsed().as_secs_f64()
    );
    drop(results);
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Starts the group's container and runs setup, benign and fire of each scenario.
fn run_group(
    name: &str,
    image: &str,
    flags: &[String],
    idxs: &[usize],
    scenarios: &[Scenario],
) -> (Option<TestContainer>, Vec<String>, Vec<usize>) {
    let mut errs = Vec::new();
    let c = match start_container(name, image, flags) {
        Ok(c) => c,
        Err(e) => {
            for &i in idxs {
                errs.push(format!(
                    "{:?}: container did not start: {e}",
                    scenarios[i].rule
                ));
            }
            return (None, errs, vec![]);
        }
    };
    let mut placed = Vec::new();
    for &i in idxs {
        let s = &scenarios[i];
        let steps = [
            ("setup", s.setup.as_deref(), 's', false, &[][..]),
            ("benign", Some(s.benign.as_str()), 'b', false, &[][..]),
            (
                "fire",
                Some(s.fire.as_str()),
                'f',
                s.fire_tty,
                &s.fire_env[..],
            ),
        ];
        for (what, script, kind, tty, env) in steps {
            let Some(script) = script else { continue };
            let r = run_script(&c, script, &marker(i, kind), tty, env);
            if !r.ok {
                errs.push(format!(
                    "{:?} (line {}): {what} script failed in {}: {}",
                    label(s),
                    s.line,
                    c.name,
                    r.detail
                ));
            }
        }
        placed.push(i);
    }
    (Some(c), errs, placed)
}
