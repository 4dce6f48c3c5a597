//! Rampart's response: what is done about an alert, and the record of it.
//!
//! This crate owns the actions, each behind the one [`Action`] trait (kill a process
//! or its tree, freeze and thaw, stop and restart, network quarantine, blocked
//! destinations, exec denial), the three [`Mode`]s they run in (alert, dry-run,
//! enforce), the response [`Policy`] that picks an action and a mode for an alert
//! (with rate limits and a stateful-workload label), the [`Responder`] that applies
//! it, and the [`AuditRecord`] every action taken or simulated leaves behind (also as
//! an [`rampart_event::Alert`] with `source: "response"`, so it reaches the alert
//! outputs and the flight recorder).
//!
//! It does not know why an alert was raised; detection does. Kernel-side actions go
//! through `rampart_bpf::response` (pinned maps and links, so they outlive a restart
//! of rampart until released); Docker ones through bollard.
//!
//! Safety: actions only ever touch a container (never the host's processes, never
//! rampart's own container or process), re-check a process's identity against its
//! start time before signalling it (pid reuse), and the policy acts only on
//! containers inside its `scope`.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod action;
pub mod audit;
pub mod control;
pub mod docker;
mod error;
pub mod exec;
pub mod freeze;
pub mod kill;
pub mod lifecycle;
pub mod net;
pub mod policy;
pub mod responder;
pub mod target;
pub mod toolbox;

pub use action::{Action, ActionKind, Mode, Outcome};
pub use audit::{Actor, AuditRecord, AuditResult};
pub use error::RespondError;
pub use policy::{ActionSpec, Policy, PolicyStore};
pub use responder::{ManualRequest, Pending, Responder};
pub use target::{ProcessRef, Target};
pub use toolbox::Toolbox;

pub use rampart_event::wall_ns;
