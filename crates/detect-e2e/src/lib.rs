//! Test helpers for the end-to-end tests of Rampart's rule library (`rules/`): one
//! real sensor per test binary whose events go through the real rule engine (our
//! library loaded beside Falco's stable rules), containers on the real Docker engine,
//! and waits for (or checks the absence of) rule matches.
//!
//! Only tests use this crate; it has no runtime role.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rampart_detect::{load_files, load_files_with, ResolveOptions, RuleSet, StaticResolver};
use rampart_event::Event;
use rampart_sensor::{RunningSensor, SensorConfig};

/// The busybox test image built by scripts/build-test-images.
pub const IMAGE: &str = rampart_testbed::TEST_IMAGE;

/// `rules/` of this repository.
pub fn rules_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules"))
}

/// Falco's stable rules from the shared fixtures.
pub fn falco_rules() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/fixtures/falco/falco_rules.yaml"
    ))
}

/// The harness's own control rules (tests/data/control_rules.yaml): loaded beside the
/// library, never shipped, not among [`Detector::ours`].
pub fn control_rules() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/control_rules.yaml"
    ))
}

/// True when the test can run; prints why it skips, and fails instead in CI.
pub fn ready() -> bool {
    rampart_testbed::ready(IMAGE)
}

/// One rule match on one real event.
#[derive(Clone)]
pub struct Match {
    pub rule: String,
    pub event: Arc<Event>,
}

impl Match {
    pub fn container_id(&self) -> Option<&str> {
        self.event.container.container().map(|c| c.id.as_str())
    }
    pub fn cmdline(&self) -> String {
        self.event
            .process
            .as_ref()
            .map(|p| p.argv.join(" "))
            .unwrap_or_default()
    }
}

/// The resolver behind the detector's host names (`fd.sip.name = …`): this machine has
/// no cluster DNS, so a test maps a name to one of its containers, then calls
/// `detector().rules.hostnames().refresh()`. Names it does not map do not resolve.
pub fn resolver() -> &'static Arc<StaticResolver> {
    static R: OnceLock<Arc<StaticResolver>> = OnceLock::new();
    R.get_or_init(|| Arc::new(StaticResolver::new()))
}

/// The shared sensor + engine and everything they matched so far.
pub struct Detector {
    pub rules: Arc<RuleSet>,
    /// Names of the rules that come from `rules/` (the rest are Falco's).
    pub ours: Vec<String>,
    matches: Mutex<Vec<Match>>,
    cv: Condvar,
}

/// Starts (once per test binary) the sensor and the rule set of Falco's stable rules
/// plus our library, evaluating every event in a background thread.
pub fn detector() -> &'static Detector {
    static D: OnceLock<&'static Detector> = OnceLock::new();
    D.get_or_init(|| {
        let opts = ResolveOptions {
            resolver: resolver().clone(),
            timeout: Duration::from_secs(2),
        };
        let (set, errors) = load_files_with(&[falco_rules(), rules_dir(), control_rules()], &opts);
        let ours_only = load_files(&[rules_dir()]);
        assert!(
            ours_only.1.is_empty(),
            "rules/ has errors: {:?}",
            ours_only.1
        );
        // Falco's file may carry errors of its own (fields Rampart refuses); ours and
        // the controls add none.
        assert!(
            errors
                .iter()
                .all(|e| !e.file.contains("/rules/") && !e.file.ends_with("control_rules.yaml")),
            "{errors:?}"
        );
        let d: &'static Detector = Box::leak(Box::new(Detector {
            rules: Arc::new(set),
            ours: ours_only.0.rules().iter().map(|r| r.name.clone()).collect(),
            matches: Mutex::new(Vec::new()),
            cv: Condvar::new(),
        }));
        let mut sensor = rampart_sensor::start(SensorConfig {
            bpf_object: rampart_testbed::bpf_object(),
            queue_capacity: 1 << 20,
            ..Default::default()
        })
        .expect("sensor starts");
        // The rules here include module loading, which a kernel without module support
        // only shows on the sys_exit hook (the calls fail with ENOSYS there). The events
        // are the same on every hook; the sensor's own tests cover the default one.
        let unhooked = sensor.stats.snapshot().unhooked_syscalls;
        if !unhooked.is_empty() {
            eprintln!(
                "the default syscall hook cannot see {unhooked:?} on this kernel: the rules \
                 run on a sensor on the sys_exit hook"
            );
            drop(sensor);
            sensor = rampart_sensor::start(SensorConfig {
                bpf_object: rampart_testbed::bpf_object(),
                queue_capacity: 1 << 20,
                syscall_hook: rampart_bpf::SyscallHook::SysExit,
                ..Default::default()
            })
            .expect("sensor on sys_exit starts");
        }
        std::thread::spawn(move || {
            let mut sensor: RunningSensor = sensor;
            // Live events on this node: users named as `rampart up` names them.
            let users = rampart_detect::HostPasswd::default();
            while let Ok(ev) = sensor.events.recv() {
                let names: Vec<String> = d
                    .rules
                    .matching_rules_with(&ev, &users)
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                if names.is_empty() {
                    continue;
                }
                let ev = Arc::new(ev);
                let mut m = d.lock();
                for rule in names {
                    m.push(Match {
                        rule,
                        event: ev.clone(),
                    });
                }
                d.cv.notify_all();
            }
        });
        d
    })
}

impl Detector {
    /// The match list; a test that panicked while holding it must not fail the others.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Match>> {
        self.matches.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until `rule` matched an event of `container` that satisfies `pred`.
    pub fn wait_for(
        &self,
        rule: &str,
        container: &TestContainer,
        timeout: Duration,
        pred: impl Fn(&Match) -> bool,
    ) -> Match {
        assert!(
            self.rules.rules().iter().any(|r| r.name == rule),
            "no rule named {rule:?}"
        );
        let deadline = Instant::now() + timeout;
        let mut guard = self.lock();
        loop {
            if let Some(m) = guard
                .iter()
                .find(|m| m.rule == rule && m.container_id() == Some(&container.id) && pred(m))
            {
                return m.clone();
            }
            let now = Instant::now();
            if now >= deadline {
                let seen: Vec<String> = guard
                    .iter()
                    .filter(|m| m.container_id() == Some(&container.id))
                    .map(|m| format!("{} <- {}", m.rule, m.cmdline()))
                    .collect();
                drop(guard);
                panic!(
                    "rule {rule:?} did not fire in {} (matches there: {seen:#?})",
                    container.name
                );
            }
            guard = self
                .cv
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Every match so far in `container`.
    pub fn matches_in(&self, container: &TestContainer) -> Vec<Match> {
        self.lock()
            .iter()
            .filter(|m| m.container_id() == Some(&container.id))
            .cloned()
            .collect()
    }

    /// Matches of our library's rules on host processes (no container) whose own or
    /// an ancestor's command line carries `mark`.
    pub fn our_host_matches_carrying(&self, mark: &str) -> Vec<Match> {
        self.host_matches_carrying(mark, |rule| self.ours.iter().any(|r| r == rule))
    }

    /// Matches of `rule` (any loaded rule, the harness's controls included) on host
    /// processes whose own or an ancestor's command line carries `mark`.
    pub fn host_matches_of_carrying(&self, rule: &str, mark: &str) -> Vec<Match> {
        self.host_matches_carrying(mark, |r| r == rule)
    }

    fn host_matches_carrying(&self, mark: &str, rule: impl Fn(&str) -> bool) -> Vec<Match> {
        self.lock()
            .iter()
            .filter(|m| m.event.container.container().is_none() && rule(&m.rule))
            .filter(|m| {
                m.event.process.as_ref().is_some_and(|p| {
                    p.argv.iter().any(|a| a.contains(mark))
                        || p.ancestry
                            .iter()
                            .any(|a| a.argv.iter().any(|x| x.contains(mark)))
                })
            })
            .cloned()
            .collect()
    }

    /// Matches of our library's rules in `container`.
    pub fn our_matches_in(&self, container: &TestContainer) -> Vec<Match> {
        self.matches_in(container)
            .into_iter()
            .filter(|m| self.ours.contains(&m.rule))
            .collect()
    }
}

pub use rampart_testbed::{docker, TestContainer, TestNetwork};
