//! Behaviour baselines: learn what each workload normally does, alert on the rest with
//! an explanation, quiet generic rules inside what is normal, and rank workloads by risk.
//!
//! - [`engine`]: workload identity ([`workload_of`]: Kubernetes workload, else compose
//!   project and service, else image), learning per workload (processes with normalised
//!   argv, file-write prefixes, sensitive reads, network edges, user ids, privilege
//!   calls, DNS names; each with first/last seen, count, replicas, confidence), the
//!   lifecycle discover → lock (after a window and a stable period, or by hand) →
//!   monitor → protect, deviation alerts, and noise control.
//! - [`anomaly`]: per-minute features per container and a robust z-score model fitted
//!   per workload at lock; an anomaly names its top features against the normal range.
//! - [`netallow`]: the network a locked baseline holds as normal (learned edges, DNS
//!   names), as the allow list protect mode enforces in the kernel.
//! - [`risk`]: a score per workload with its breakdown (alerts, vulnerabilities and
//!   whether their package is in use, exposure, privileges, baseline deviations).
//! - [`fleet`]: a workload's baselines from several nodes merged (the union, with what
//!   each node saw of every item, and trust across nodes), and as one importable profile.
//! - [`store`]: persistence behind [`BaselineStore`], in SQLite ([`SqliteBaselines`]).
//! - [`profile`]: the YAML form of a baseline (`rampart baseline export|import`), so
//!   profiles can live in git.
//!
//! What this crate does not do: read the kernel or Docker (the node's stage feeds it
//! events and applies the exec denials it asks for), or send anything anywhere.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod anomaly;
pub mod config;
pub mod engine;
pub mod fleet;
pub mod model;
pub mod netallow;
pub mod normalize;
pub mod profile;
pub mod risk;
pub mod store;

pub use config::{BaselineConfig, NoiseConfig, ProtectOnStop};
pub use engine::{
    lock, set_mode, unlock, workload_of, ContainerSeen, Engine, EngineStats, ProtectRequest,
};
pub use model::{Baseline, Confidence, Item, ItemKind, Mode, Origin};
pub use store::{BaselineStore, SqliteBaselines, StoreError};
