//! The `baseline:` section of a node's configuration.

use std::path::PathBuf;

use rampart_event::Priority;
use serde::Deserialize;

use crate::model::Mode;

/// Where baselines are kept when the configuration names no file.
pub const DEFAULT_DB: &str = "/var/lib/rampart/baselines.db";

/// How baselines are learned, locked and used.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Learn and check baselines (off by default).
    pub enabled: bool,
    /// The SQLite file baselines persist in.
    pub db: PathBuf,
    /// Discover lasts at least this long (seconds) from a workload's first event.
    pub window_secs: u64,
    /// Lock automatically once nothing new appeared for this long after the window.
    pub stable_secs: u64,
    /// Lock automatically (else only `rampart baseline lock`).
    pub auto_lock: bool,
    /// The mode a baseline takes when it locks: `monitor` or `protect`.
    pub locked_mode: Mode,
    /// Times an item must be seen to be held with high confidence; also the events a
    /// workload needs before it can lock.
    pub min_observations: u64,
    /// The length (seconds) of the scored "minute": the window each container's
    /// features are counted over. 60 in production; tests shorten it so a model can be
    /// learned in seconds. The features keep their per-window meaning (`exec_per_min`
    /// counts the window's execs).
    pub feature_window_secs: u64,
    /// A minute whose highest feature z-score reaches this is an anomaly.
    pub anomaly_threshold: f64,
    /// The same deviation alerts once per this many seconds.
    pub repeat_secs: u64,
    /// How often changed baselines are written to the database.
    pub save_secs: u64,
    /// How often operators' changes in the database (`rampart baseline lock|mode|…`)
    /// are picked up.
    pub poll_secs: u64,
    /// What happens to protect's exec denials in the kernel when the node stops:
    /// `keep` (the default: they are pinned and stay in force, fail-closed, until the
    /// node starts again and takes them over, or `rampart respond release --all`) or
    /// `release` (lifted at stop: fail-open while no node runs). Protect's network rules
    /// (the segmentation programs' allow lists) are not pinned: they lift at stop either
    /// way.
    pub protect_on_stop: ProtectOnStop,
    pub noise: NoiseConfig,
}

/// See [`BaselineConfig::protect_on_stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProtectOnStop {
    #[default]
    Keep,
    Release,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            db: PathBuf::from(DEFAULT_DB),
            window_secs: 3600,
            stable_secs: 600,
            auto_lock: true,
            locked_mode: Mode::Monitor,
            min_observations: 3,
            feature_window_secs: 60,
            anomaly_threshold: 6.0,
            repeat_secs: 60,
            save_secs: 10,
            poll_secs: 2,
            protect_on_stop: ProtectOnStop::Keep,
            noise: NoiseConfig::default(),
        }
    }
}

/// Noise control: generic rules' alerts about behaviour a locked, high-confidence
/// baseline holds as normal are downgraded (never those of critical rules).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NoiseConfig {
    pub enabled: bool,
    /// The priority a downgraded alert takes.
    pub downgrade_to: Priority,
    /// Only these rules are downgraded; empty: every rule that is not critical.
    pub rules: Vec<String>,
    /// Rules never downgraded, beyond those of critical priority or tagged `critical`.
    pub never: Vec<String>,
}

impl Default for NoiseConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            downgrade_to: Priority::Informational,
            rules: Vec::new(),
            never: Vec::new(),
        }
    }
}
