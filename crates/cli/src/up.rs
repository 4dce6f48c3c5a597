//! `rampart up`: sensor + detection + alert outputs on one host, from one YAML file
//! (every key optional). With no configuration at all it runs the shipped rule library
//! and writes alerts as JSON lines on stdout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use rampart_detect::{NoiseConfig, RuleEngine};
use rampart_notify::{Dispatcher, OutputsConfig};
use rampart_sensor::SensorConfig;
use serde::Deserialize;

#[derive(Args, Debug)]
pub struct UpArgs {
    /// YAML configuration (see `rampart up --print-default-config`).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Rules files or directories (repeatable); replaces `rules:` from the config.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub duration: Option<u64>,
    /// Print the default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
}

/// The whole configuration of `rampart up`; every key has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpConfig {
    /// Rules files or directories. Default: the shipped library (`rules/`).
    pub rules: Vec<PathBuf>,
    /// Where alerts go. Default: JSON lines on stdout.
    pub outputs: Option<OutputsConfig>,
    pub sensor: SensorSection,
    pub alerts: AlertSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSection {
    /// Only these event kinds or families (default: all).
    pub kinds: Vec<String>,
    /// Only this container (id prefix or name), or `host`.
    pub container: Option<String>,
    /// Also report read-only opens of shared libraries.
    pub all_opens: bool,
    /// Milliseconds a process's repeated read-only opens of a file fold into one
    /// event (0: report every open; default: the sensor's, 1000).
    pub open_repeat_window_ms: Option<u64>,
    /// Do not ask Docker for metadata.
    pub no_docker: bool,
    /// How syscalls are hooked (see `rampart sensor --syscall-hook`).
    pub syscall_hook: rampart_bpf::SyscallHook,
    /// Do not watch 32-bit syscalls (see `rampart sensor --no-compat-syscalls`).
    pub no_compat_syscalls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertSection {
    /// Identical alerts within this many seconds aggregate into one with a count.
    pub aggregate_window_secs: f64,
    /// Sustained alerts per second allowed per rule (0 = unlimited).
    pub rate_per_rule: f64,
    /// Burst allowed above the rate.
    pub burst: f64,
}

impl Default for AlertSection {
    fn default() -> Self {
        let n = NoiseConfig::default();
        Self {
            aggregate_window_secs: n.window_ns as f64 / 1e9,
            rate_per_rule: n.rate_per_sec,
            burst: n.burst,
        }
    }
}

pub const DEFAULT_CONFIG: &str = r#"# rampart up: every key is optional; these are the defaults.
rules: []               # files or directories; empty = the shipped library (rules/)
sensor:
  kinds: []             # e.g. [process, file, net]; empty = everything
  container: null       # id prefix or name, or "host"
  all_opens: false      # also read-only opens of shared libraries
  open_repeat_window_ms: 1000  # a process re-reading a file: one event per window, with a count; 0 = every open
  no_docker: false
  syscall_hook: auto    # auto, fexit, syscall_tracepoints or sys_exit (see `rampart sensor --help`)
  no_compat_syscalls: false  # true: 32-bit syscalls (int 0x80) go unseen, every syscall a little cheaper
alerts:
  aggregate_window_secs: 10   # identical alerts within the window become one, with a count
  rate_per_rule: 10           # sustained alerts/s per rule (0 = unlimited)
  burst: 50
outputs:                # see `rampart outputs example` for every output
  sinks:
    - type: stdout
"#;

/// The shipped rule library: `$RAMPART_RULES_DIR`, `/etc/rampart/rules`, `./rules`, or
/// the source tree's `rules/`.
pub fn default_rules_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RAMPART_RULES_DIR").map(PathBuf::from),
        Some(PathBuf::from("/etc/rampart/rules")),
        Some(PathBuf::from("rules")),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_dir())
}

fn load_config(path: Option<&Path>) -> anyhow::Result<UpConfig> {
    let Some(path) = path else {
        return Ok(UpConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    yaml_serde::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

pub fn run(a: UpArgs) -> anyhow::Result<i32> {
    if a.print_default_config {
        print!("{DEFAULT_CONFIG}");
        return Ok(0);
    }
    let cfg = load_config(a.config.as_deref())?;
    let rules: Vec<PathBuf> = if !a.rules.is_empty() {
        a.rules.clone()
    } else if !cfg.rules.is_empty() {
        cfg.rules.clone()
    } else {
        vec![default_rules_dir().context(
            "no rules given and the shipped library was not found (set RAMPART_RULES_DIR or use --rules)",
        )?]
    };
    let noise = NoiseConfig {
        window_ns: (cfg.alerts.aggregate_window_secs * 1e9) as u64,
        rate_per_sec: cfg.alerts.rate_per_rule,
        burst: cfg.alerts.burst,
    };
    let (engine, errors) = RuleEngine::load_with(&rules, noise)?;
    let engine = engine.with_users(std::sync::Arc::new(rampart_detect::HostPasswd::default()));
    for e in &errors {
        eprintln!("rampart: rule not loaded: {e}");
    }
    tracing::info!(
        rules = engine.ruleset().rules().len(),
        failed = errors.len(),
        "rules loaded"
    );

    rampart_notify::install_ring_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("rampart-outputs")
        .build()?;
    let outputs = cfg.outputs.clone().unwrap_or_default();
    let dispatcher = {
        let _g = rt.enter();
        Dispatcher::from_config(&outputs)?
    };

    let stop = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload.clone())?;

    let mut sensor = rampart_sensor::start(SensorConfig {
        kinds: crate::sensor_cmd::parse_kinds(&cfg.sensor.kinds)?,
        container: cfg.sensor.container.clone(),
        filter_ro_libs: !cfg.sensor.all_opens,
        open_repeat_window: cfg.sensor.open_repeat_window_ms.map_or(
            rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
            Duration::from_millis,
        ),
        docker: !cfg.sensor.no_docker,
        syscall_hook: cfg.sensor.syscall_hook,
        compat_syscalls: !cfg.sensor.no_compat_syscalls,
        ..Default::default()
    })?;
    tracing::info!("rampart up: sensor, detection and outputs running");
    let deadline = a.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let mut latencies_us: Vec<u64> = Vec::new();
    let mut last_flush = Instant::now();
    let send = |alert: rampart_event::Alert, lat: &mut Vec<u64>| {
        let now = wall_ns();
        lat.push(now.saturating_sub(alert.ts_ns) / 1000);
        let _g = rt.enter();
        dispatcher.dispatch(Arc::new(alert));
    };
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if reload.swap(false, Ordering::Relaxed) {
            match engine.reload_same() {
                Ok(set) => tracing::info!(rules = set.rules().len(), "rules reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "rules reload refused; the running set stays")
                }
            }
        }
        match sensor.events.recv_timeout(Duration::from_millis(50)) {
            Ok(ev) => {
                for alert in engine.evaluate(&ev) {
                    send(alert, &mut latencies_us);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_flush.elapsed() >= Duration::from_millis(250) {
            last_flush = Instant::now();
            for alert in engine.flush(wall_ns()) {
                send(alert, &mut Vec::new());
            }
        }
    }
    sensor.stop();
    for alert in engine.flush_all() {
        send(alert, &mut Vec::new());
    }
    let stats = rt.block_on(dispatcher.shutdown());
    for s in stats {
        tracing::info!(sink = ?s, "output");
    }
    if !latencies_us.is_empty() {
        latencies_us.sort_unstable();
        let p = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize];
        eprintln!(
            "rampart: alert latency kernel->output over {} alerts: p50={}us p99={}us max={}us",
            latencies_us.len(),
            p(0.5),
            p(0.99),
            p(1.0)
        );
    }
    Ok(0)
}

/// Now, in nanoseconds since the Unix epoch (the clock events and alerts carry).
pub fn wall_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_unknown_keys_are_refused() {
        let c: UpConfig = yaml_serde::from_str(DEFAULT_CONFIG).unwrap();
        assert!(c.rules.is_empty());
        assert_eq!(c.alerts.burst, 50.0);
        assert!(c.outputs.is_some());
        let bad: Result<UpConfig, _> = yaml_serde::from_str("sensr: {}\n");
        assert!(bad.is_err());
    }
}
