//! The node's configuration (`rampart up --config FILE`): one YAML file, every key
//! optional. With none at all, a node runs the shipped rule library and writes alerts
//! as JSON lines on stdout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rampart_detect::NoiseConfig;
use rampart_notify::OutputsConfig;
use rampart_sensor::SensorConfig;
use serde::Deserialize;

/// The whole configuration of a node (`rampart up`); every key has a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Rules files or directories. Default: the shipped library (`rules/`).
    pub rules: Vec<PathBuf>,
    /// Where alerts go. Default: JSON lines on stdout.
    pub outputs: Option<OutputsConfig>,
    pub sensor: SensorSection,
    pub alerts: AlertSection,
    pub response: ResponseSection,
    pub recorder: RecorderSection,
    pub scanner: ScannerSection,
    /// The network flow table, segmentation and detectors (issue #20); absent: off.
    pub network: Option<rampart_netflow::EngineConfig>,
    /// Behaviour baselines per workload (learn, lock, monitor, protect; noise control).
    pub baseline: rampart_baseline::BaselineConfig,
    /// Where `rampart node` publishes (NATS JetStream, mutual TLS); unused by
    /// `rampart up`.
    pub central: Option<CentralSection>,
}

/// `rampart node`'s link to central: the NATS server, the node's name and certificate,
/// and the disk spool that holds batches while NATS is away.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralSection {
    /// `nats://host:4222` (a comma-separated list for a cluster).
    pub nats_url: String,
    /// The node's name in the fleet (default: the certificate's, else the host name).
    pub node_name: Option<String>,
    /// The CA, the node's certificate and key (default: what `rampart node enroll`
    /// wrote to `tls_dir`).
    pub tls: Option<TlsFiles>,
    /// Where `rampart node enroll` keeps the node's credentials.
    pub tls_dir: PathBuf,
    /// Accept a plain, unauthenticated NATS connection beyond localhost (off: refused).
    pub allow_plain_remote: bool,
    /// The disk spool for batches not yet acknowledged by NATS.
    pub spool_dir: PathBuf,
    /// The spool's bound in MiB; beyond it new batches are dropped and counted.
    pub spool_max_mb: u64,
    /// The JetStream stream's bound in MiB when this node is the first to create it
    /// (central's `nats.stream_max_mb` when central was first); reserved on disk.
    pub stream_max_mb: u64,
    /// Records per message at most.
    pub batch_records: usize,
    /// Serve central's requests (recorder queries, retro-hunts, response commands).
    pub serve_requests: bool,
    /// Prometheus `/metrics` on this loopback address; null: off.
    pub metrics_listen: Option<String>,
    /// Rules files central deploys land here (loaded after the node's own rules).
    pub deployed_rules_dir: PathBuf,
    /// How often the node reports its sensor's health to central, seconds.
    pub health_secs: u64,
    /// Central's enrollment address (`host:port`): with it, the node renews its
    /// certificate there on its own before it expires.
    pub renew_with: Option<String>,
    /// Renew once less than this fraction of the certificate's lifetime is left.
    pub renew_at: f64,
    /// How often the certificate's remaining lifetime is checked, seconds.
    pub renew_check_secs: u64,
}

/// PEM files of a mutual-TLS link.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where `rampart node enroll` writes the node's credentials by default.
pub const DEFAULT_NODE_TLS_DIR: &str = "/var/lib/rampart/node-tls";

impl Default for CentralSection {
    fn default() -> Self {
        Self {
            nats_url: "nats://127.0.0.1:4222".into(),
            node_name: None,
            tls: None,
            tls_dir: PathBuf::from(DEFAULT_NODE_TLS_DIR),
            allow_plain_remote: false,
            spool_dir: PathBuf::from("/var/lib/rampart/spool"),
            spool_max_mb: 256,
            stream_max_mb: 8192,
            batch_records: 500,
            serve_requests: true,
            metrics_listen: Some("127.0.0.1:9464".into()),
            deployed_rules_dir: PathBuf::from("/var/lib/rampart/deployed-rules"),
            health_secs: 15,
            renew_with: None,
            renew_at: 1.0 / 3.0,
            renew_check_secs: 600,
        }
    }
}

impl CentralSection {
    /// The TLS files: as configured, else the enrolled ones when they exist.
    pub fn tls_files(&self) -> Option<TlsFiles> {
        if let Some(t) = &self.tls {
            return Some(t.clone());
        }
        let t = TlsFiles {
            ca: self.tls_dir.join("ca.pem"),
            cert: self.tls_dir.join("node.pem"),
            key: self.tls_dir.join("node-key.pem"),
        };
        (t.ca.is_file() && t.cert.is_file() && t.key.is_file()).then_some(t)
    }

    /// The node's name: configured, else the enrolled one (`tls_dir/node-name`), else
    /// the host name.
    pub fn node_name(&self) -> String {
        if let Some(n) = &self.node_name {
            return n.clone();
        }
        if let Ok(n) = std::fs::read_to_string(self.tls_dir.join("node-name")) {
            let n = n.trim();
            if !n.is_empty() {
                return n.to_string();
            }
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".into())
    }
}

/// The flight recorder: every event, alert and container lifecycle change on disk.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecorderSection {
    pub enabled: bool,
    /// Where the segments and catalog live (`rampart query` reads the same place).
    pub dir: PathBuf,
    /// Oldest segments go once the recording is larger than this many MiB.
    pub max_size_mb: u64,
    /// Segments whose newest record is older than this many hours go (0: no limit).
    pub max_age_hours: u64,
    /// Log the recorder's counters every this many seconds (0: only in the final
    /// report); `rampart up --stats SECS` sets it.
    pub stats_secs: u64,
}

impl Default for RecorderSection {
    fn default() -> Self {
        let d = rampart_recorder::RecorderConfig::default();
        Self {
            enabled: true,
            dir: d.dir,
            max_size_mb: d.max_total_bytes >> 20,
            max_age_hours: d.max_age.map_or(0, |a| a.as_secs() / 3600),
            stats_secs: 0,
        }
    }
}

impl RecorderSection {
    pub fn recorder_config(&self) -> rampart_recorder::RecorderConfig {
        rampart_recorder::RecorderConfig {
            max_total_bytes: self.max_size_mb << 20,
            max_age: (self.max_age_hours > 0)
                .then(|| Duration::from_secs(self.max_age_hours * 3600)),
            ..rampart_recorder::RecorderConfig::with_dir(&self.dir)
        }
    }
}

/// The image scanner: every image a container runs from is scanned and re-matched on
/// database changes (crates/agent `ImageScanStage`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScannerSection {
    pub enabled: bool,
    /// The vulnerability database (default: `rampart db`'s). Until it exists nothing is
    /// scanned; `rampart db update` or `rampart db import` creates it.
    pub db: Option<PathBuf>,
    /// Per-container reports (findings ranked in-use first).
    pub state_dir: PathBuf,
    /// A running workload gaining a finding at or above this raises an alert.
    pub alert_severity: rampart_event::Severity,
    /// `rampart db update` every this many hours (0: never; offline nodes use
    /// `rampart db import`).
    pub update_every_hours: u64,
    /// The same schedule in seconds, for intervals shorter than an hour (a local
    /// mirror); when above 0 it replaces `update_every_hours`.
    pub update_every_secs: u64,
    /// Where `rampart db update` fetches OSV's exports.
    pub update_base_url: String,
    /// The ecosystems fetched (OSV's names, e.g. `Debian`, `PyPI`); empty: `rampart db
    /// update`'s default list.
    pub update_ecosystems: Vec<String>,
    /// Bound on the loaded package files kept per container.
    pub max_files_per_container: usize,
}

impl Default for ScannerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            db: None,
            state_dir: PathBuf::from("/var/lib/rampart/scanner"),
            alert_severity: rampart_event::Severity::High,
            update_every_hours: 0,
            update_every_secs: 0,
            update_base_url: rampart_vulndb::update::DEFAULT_BASE_URL.to_string(),
            update_ecosystems: Vec::new(),
            max_files_per_container: 16_384,
        }
    }
}

impl ScannerSection {
    /// The stage's configuration; `libraries_visible` is the sensor's `all_opens`.
    pub fn stage_config(&self, libraries_visible: bool) -> crate::stages::ImageScanConfig {
        let mut config = crate::stages::ImageScanConfig::new(
            self.db
                .clone()
                .unwrap_or_else(rampart_vulndb::default_db_path),
            self.state_dir.clone(),
        );
        config.cache_dir = rampart_scan::cache::default_cache_root();
        config.alert_severity = self.alert_severity;
        config.libraries_visible = libraries_visible;
        config.max_files_per_container = self.max_files_per_container;
        let every = match self.update_every_secs {
            0 => self.update_every_hours.saturating_mul(3600),
            secs => secs,
        };
        if every > 0 {
            let mut options = rampart_vulndb::update::UpdateOptions {
                base_url: self.update_base_url.clone(),
                ..Default::default()
            };
            if !self.update_ecosystems.is_empty() {
                options.ecosystems = self.update_ecosystems.clone();
            }
            config.update = Some((options, Duration::from_secs(every)));
        }
        config
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponseSection {
    /// Response policy file (see crates/respond). None: alerts only, no actions.
    pub policy: Option<PathBuf>,
    /// The local control socket `rampart respond` talks to (root only); None: off.
    pub control_socket: Option<PathBuf>,
    /// Docker's authorization plugin, served while the node runs; None: off.
    pub docker_authz: Option<DockerAuthzSection>,
    /// While a response policy or `action: kill` rules are in force, the node's
    /// threads run at nice -N (as auditd's priority_boost), so the chain from the
    /// kernel event to the action is not queued behind the workloads on a busy CPU;
    /// 0: off.
    pub priority_boost: u8,
}

impl Default for ResponseSection {
    fn default() -> Self {
        Self {
            policy: None,
            control_socket: Some(PathBuf::from(rampart_respond::control::DEFAULT_SOCKET)),
            docker_authz: None,
            priority_boost: 10,
        }
    }
}

/// `rampart up` as Docker's authorization plugin (see crates/authz).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DockerAuthzSection {
    /// The authz policy file; None: the shipped default (`rampart authz --print-default-policy`).
    pub policy: Option<PathBuf>,
    /// The plugin's name, as dockerd's `authorization-plugins` lists it.
    pub name: String,
    /// Where the socket goes (`NAME.sock`); dockerd looks in /run/docker/plugins.
    pub socket_dir: PathBuf,
}

impl Default for DockerAuthzSection {
    fn default() -> Self {
        Self {
            policy: None,
            name: "rampart".into(),
            socket_dir: PathBuf::from(rampart_authz::PLUGIN_SOCKET_DIR),
        }
    }
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
    /// containerd's API socket, followed for container metadata beside Docker (or
    /// without it, on Kubernetes nodes); empty: not followed.
    pub containerd_socket: Option<PathBuf>,
    /// The Kubernetes node name put on pods (default: `$RAMPART_NODE_NAME`, which the
    /// DaemonSet sets from `spec.nodeName`, else the host name).
    pub k8s_node: Option<String>,
    /// How syscalls are hooked (see `rampart sensor --syscall-hook`).
    pub syscall_hook: rampart_bpf::SyscallHook,
    /// Do not watch 32-bit syscalls (see `rampart sensor --no-compat-syscalls`).
    pub no_compat_syscalls: bool,
    /// Longest an event waits in the kernel ring while events flow, ms (null: 3 with a
    /// response policy or kill rules, whose actions wait for the alert; else 10, fewer
    /// wake-ups of the pipeline's threads per event).
    pub drain_ms: Option<u64>,
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
  containerd_socket: /run/containerd/containerd.sock  # followed beside Docker when present; "" = off
  k8s_node: null        # Kubernetes node name on pods; default $RAMPART_NODE_NAME, else the host name
  syscall_hook: auto    # auto, fexit, syscall_tracepoints or sys_exit (see `rampart sensor --help`)
  no_compat_syscalls: false  # true: 32-bit syscalls (int 0x80) go unseen, every syscall a little cheaper
  drain_ms: null        # longest an event waits in the kernel ring; null: 3 with a response policy or kill rules, else 10
alerts:
  aggregate_window_secs: 10   # identical alerts within the window become one, with a count
  rate_per_rule: 10           # sustained alerts/s per rule (0 = unlimited)
  burst: 50
recorder:               # the flight recorder: every event, alert and container start/stop on disk
  enabled: true
  dir: /var/lib/rampart/recorder   # rampart query and rampart incident read it
  max_size_mb: 10240    # oldest segments are deleted whole beyond this
  max_age_hours: 168    # and once older than this (0 = no age limit)
  stats_secs: 0         # log its counters every N seconds (0 = off; rampart up --stats N)
scanner:                # scans each image a container runs from; a running workload gaining a vulnerability raises an alert
  enabled: true
  db: null              # default: rampart db's ($RAMPART_DATA_DIR/vuln.db, else /var/lib/rampart/vuln.db); nothing is scanned until it exists
  state_dir: /var/lib/rampart/scanner   # per-container reports: findings ranked in use first
  alert_severity: high
  update_every_hours: 0 # rampart db update on a schedule when online (0 = off)
  update_every_secs: 0  # the same in seconds, for a local mirror (replaces the hours when > 0)
  update_base_url: https://osv-vulnerabilities.storage.googleapis.com
  update_ecosystems: [] # OSV ecosystems fetched (empty = rampart db update's default list)
  max_files_per_container: 16384  # loaded package files kept per container (in-use evidence)
baseline:               # learns what each workload normally does; alerts on (or denies) the rest
  enabled: false
  db: /var/lib/rampart/baselines.db   # rampart baseline list|show|lock|mode|allow|forbid|export|import edit it
  window_secs: 3600     # discover lasts at least this long per workload
  stable_secs: 600      # then locks once nothing new appeared for this long
  auto_lock: true
  locked_mode: monitor  # monitor (alert) or protect (deny exec of anything outside, in the kernel)
  min_observations: 3   # sightings for high confidence (an item seen by one replica of several stays low)
  feature_window_secs: 60 # the scored "minute" each container's features are counted over
  anomaly_threshold: 6.0  # robust z-score of a minute's features that raises an anomaly
  repeat_secs: 60       # one alert per deviation per window
  save_secs: 10
  poll_secs: 2          # operators' changes are picked up this often
  protect_on_stop: keep # keep: protect's exec denials stay in the kernel (pinned) when the node stops, until it starts again or `rampart respond release --all`; release: lifted at stop (fail-open)
  noise:                # generic rules' alerts inside a locked high-confidence baseline are downgraded
    enabled: true
    downgrade_to: informational
    rules: []           # only these rules; empty = every rule below critical
    never: []           # rules never downgraded (critical ones never are)
response:
  policy: null          # a response policy file (kill, freeze, quarantine, deny exec…); null = alert only
  control_socket: /run/rampart/control.sock  # `rampart respond` acts through it (root only); null = off
  docker_authz: null    # {policy: FILE, name: rampart, socket_dir: /run/docker/plugins}: Docker's authz plugin
  priority_boost: 10    # with a policy or kill rules, the node runs at nice -N so responses keep up on a busy CPU; 0 = off
outputs:                # see `rampart outputs example` for every output
  sinks:
    - type: stdout
# rampart node only: publish to central over NATS JetStream (mutual TLS).
# central:
#   nats_url: nats://central.example:4222
#   node_name: null       # default: the enrolled name, else the host name
#   tls: null             # {ca, cert, key}; default: what `rampart node enroll` wrote to tls_dir
#   tls_dir: /var/lib/rampart/node-tls
#   allow_plain_remote: false  # a plain connection beyond localhost is refused
#   spool_dir: /var/lib/rampart/spool
#   spool_max_mb: 256     # batches beyond this while NATS is away are dropped and counted
#   stream_max_mb: 8192   # the JetStream stream's bound if this node creates it (reserved on disk)
#   batch_records: 500
#   serve_requests: true  # answer central's recorder queries and response commands
#   metrics_listen: 127.0.0.1:9464  # Prometheus /metrics, loopback only; null: off
#   deployed_rules_dir: /var/lib/rampart/deployed-rules  # rules files central deploys
#   health_secs: 15       # sensor health to central every N seconds
#   renew_with: null      # central's enrollment host:port: renew the certificate before it expires
#   renew_at: 0.333       # ... once less than this fraction of its lifetime is left
#   renew_check_secs: 600
"#;

/// The shipped rule library: `$RAMPART_RULES_DIR`, `/etc/rampart/rules`, `./rules`,
/// else the library built into the binary, written out once (see [`builtin_rules_dir`]).
pub fn default_rules_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("RAMPART_RULES_DIR").map(PathBuf::from),
        Some(PathBuf::from("/etc/rampart/rules")),
        Some(PathBuf::from("rules")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_dir())
        .or_else(builtin_rules_dir)
}

/// Only a copy this user owns and nobody else may write is used: in a shared
/// temporary directory another user could otherwise plant rules that never fire.
fn ours(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    std::fs::metadata(dir).is_ok_and(|m| m.uid() == me && m.mode() & 0o022 == 0)
}

/// The rule library built into the binary, as a directory: written once per content
/// (`rules-builtin-<digest>`) under `$RAMPART_DATA_DIR`, `/var/lib/rampart` or the
/// temporary directory, whichever is writable first; a complete copy is reused.
pub fn builtin_rules_dir() -> Option<PathBuf> {
    let name = format!("rules-builtin-{:016x}", rampart_detect::library::digest());
    let bases = [
        std::env::var_os("RAMPART_DATA_DIR").map(PathBuf::from),
        Some(PathBuf::from("/var/lib/rampart")),
        Some(std::env::temp_dir()),
    ];
    for base in bases.into_iter().flatten() {
        let dir = base.join(&name);
        if dir.join(".complete").is_file() && ours(&dir) {
            return Some(dir);
        }
        // Written beside and renamed, so a reader never sees half a library.
        let partial = base.join(format!("{name}.{}", std::process::id()));
        let written = std::fs::create_dir_all(&partial).is_ok()
            && {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).is_ok()
            }
            && rampart_detect::library::FILES
                .iter()
                .all(|(file, text)| std::fs::write(partial.join(file), text).is_ok())
            && std::fs::write(partial.join(".complete"), b"").is_ok();
        if written
            && (std::fs::rename(&partial, &dir).is_ok()
                || (dir.join(".complete").is_file() && ours(&dir)))
        {
            let _ = std::fs::remove_dir_all(&partial);
            return Some(dir);
        }
        let _ = std::fs::remove_dir_all(&partial);
    }
    None
}

impl NodeConfig {
    /// Reads a configuration file; `None` gives the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { at, message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                at,
                message,
            },
            other => other,
        })
    }

    /// Parses YAML; unknown keys are refused. Errors name the line and column.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        yaml_serde::from_str(text).map_err(|e| {
            let at = e.location().map(|l| (l.line(), l.column()));
            // The location is reported on its own; drop yaml_serde's copy of it.
            let mut message = e.to_string();
            if let Some((line, column)) = at {
                let suffix = format!(" at line {line} column {column}");
                if message.ends_with(&suffix) {
                    message.truncate(message.len() - suffix.len());
                }
            }
            ConfigError::Parse {
                path: PathBuf::from("<config>"),
                at,
                message,
            }
        })
    }

    /// The alert noise control the `alerts` section asks for.
    pub fn noise(&self) -> NoiseConfig {
        NoiseConfig {
            window_ns: (self.alerts.aggregate_window_secs * 1e9) as u64,
            rate_per_sec: self.alerts.rate_per_rule,
            burst: self.alerts.burst,
        }
    }

    /// The rules files to load: `overrides` if given, else `rules:`, else the shipped
    /// library.
    pub fn rule_paths(&self, overrides: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigError> {
        if !overrides.is_empty() {
            return Ok(overrides.to_vec());
        }
        if !self.rules.is_empty() {
            return Ok(self.rules.clone());
        }
        default_rules_dir()
            .map(|d| vec![d])
            .ok_or(ConfigError::NoRules)
    }
}

impl SensorSection {
    /// The ring's drain interval: as configured, else short when actions wait for
    /// alerts (a response policy, kill rules), else the sensor's default.
    pub fn drain_interval(&self, actions_wait: bool) -> Duration {
        match self.drain_ms {
            Some(ms) => Duration::from_millis(ms),
            None if actions_wait => rampart_sensor::LOW_LATENCY_DRAIN_INTERVAL,
            None => rampart_sensor::DEFAULT_DRAIN_INTERVAL,
        }
    }

    /// The sensor's configuration.
    pub fn sensor_config(&self) -> Result<SensorConfig, ConfigError> {
        Ok(SensorConfig {
            kinds: rampart_sensor::parse_kinds(&self.kinds).map_err(ConfigError::Kinds)?,
            container: self.container.clone(),
            filter_ro_libs: !self.all_opens,
            open_repeat_window: self.open_repeat_window_ms.map_or(
                rampart_sensor::DEFAULT_OPEN_REPEAT_WINDOW,
                Duration::from_millis,
            ),
            docker: !self.no_docker,
            containerd_socket: match &self.containerd_socket {
                Some(p) if p.as_os_str().is_empty() => None,
                Some(p) => Some(p.clone()),
                None => Some(rampart_sensor::containerd::DEFAULT_SOCKET.into()),
            },
            k8s_node: self
                .k8s_node
                .clone()
                .or_else(|| std::env::var("RAMPART_NODE_NAME").ok())
                .unwrap_or_default(),
            syscall_hook: self.syscall_hook,
            compat_syscalls: !self.no_compat_syscalls,
            drain_interval: self.drain_interval(false),
            ..Default::default()
        })
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}{}: {message}", path.display(), at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
    Parse {
        path: PathBuf,
        /// Line and column, where the YAML parser knows them.
        at: Option<(usize, usize)>,
        message: String,
    },
    #[error("no rules given and the shipped library was not found (set RAMPART_RULES_DIR or use --rules)")]
    NoRules,
    #[error("sensor.kinds: {0}")]
    Kinds(rampart_sensor::KindsError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_parses_and_unknown_keys_are_refused() {
        let c = NodeConfig::parse(DEFAULT_CONFIG).unwrap();
        assert!(c.rules.is_empty());
        assert_eq!(c.alerts.burst, 50.0);
        assert!(c.outputs.is_some());
        let d = RecorderSection::default();
        assert_eq!(
            (
                c.recorder.enabled,
                &c.recorder.dir,
                c.recorder.max_size_mb,
                c.recorder.max_age_hours
            ),
            (d.enabled, &d.dir, d.max_size_mb, d.max_age_hours),
            "the printed defaults are the defaults"
        );
        let bad = NodeConfig::parse("sensr: {}\n").unwrap_err().to_string();
        assert!(bad.contains("unknown field `sensr`"), "{bad}");
        let bad = NodeConfig::parse("alerts:\n  burst: lots\n")
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("<config>:2:"), "{bad}");
    }

    #[test]
    fn central_section_defaults_and_errors_name_the_line() {
        let c =
            NodeConfig::parse("central:\n  nats_url: nats://c:4222\n  node_name: web-1\n").unwrap();
        let s = c.central.unwrap();
        assert_eq!(s.nats_url, "nats://c:4222");
        assert_eq!(s.node_name(), "web-1");
        assert_eq!(s.spool_max_mb, 256);
        assert!(s.serve_requests);
        let e = NodeConfig::parse("central:\n  nats_url: x\n  spool_max_mb: lots\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("<config>:3:"), "{e}");
        let e = NodeConfig::parse("central:\n  tls: {ca: a}\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing field `cert`"), "{e}");
    }

    #[test]
    fn rule_paths_prefer_overrides_then_the_file() {
        let c = NodeConfig::parse("rules: [a.yaml]\n").unwrap();
        let o = [PathBuf::from("b.yaml")];
        assert_eq!(c.rule_paths(&o).unwrap(), o.to_vec());
        assert_eq!(c.rule_paths(&[]).unwrap(), vec![PathBuf::from("a.yaml")]);
    }

    #[test]
    fn unknown_sensor_kinds_are_refused_with_the_choices() {
        let c = NodeConfig::parse("sensor: {kinds: [proces]}\n").unwrap();
        let e = c.sensor.sensor_config().unwrap_err().to_string();
        assert!(e.contains("proces") && e.contains("process"), "{e}");
    }

    #[test]
    fn the_drain_is_short_only_where_actions_wait_unless_configured() {
        let auto = NodeConfig::parse("").unwrap().sensor;
        assert_eq!(auto.drain_interval(false), Duration::from_millis(10));
        assert_eq!(auto.drain_interval(true), Duration::from_millis(3));
        assert_eq!(
            auto.sensor_config().unwrap().drain_interval,
            Duration::from_millis(10)
        );
        let set = NodeConfig::parse("sensor: {drain_ms: 25}\n")
            .unwrap()
            .sensor;
        assert_eq!(set.drain_interval(true), Duration::from_millis(25));
        assert_eq!(
            set.sensor_config().unwrap().drain_interval,
            Duration::from_millis(25)
        );
        assert!(NodeConfig::parse("sensor: {drain_ms: soon}\n").is_err());
    }
}
