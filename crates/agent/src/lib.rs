//! The node pipeline: the one place where a node's parts meet.
//!
//! The sensor is the source; every other part (detection, alert outputs, and the
//! recorder, response and network parts to come) is a [`Stage`]: started once, handed
//! batches of shared records (events as `Arc`, and alerts stages raise), ticked to
//! flush, told to reload on SIGHUP, stopped in order. The [`pipeline`] fans records out
//! behind bounded queues whose drops are counted. [`node`] builds the stages `rampart
//! up` runs from the node's [`config`]; the CLI only parses arguments and calls it.
//!
//! This crate knows which stages exist, not what they do inside: each stage adapter in
//! [`stages`] calls its part's public API.
//!
//! [`fleet`] is the node's side of request/reply with central (`rampart node`): recorder
//! queries, retro-hunts and response commands answered on this node.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod fleet;
pub mod kernel_kill;
pub mod manual;
pub mod node;
pub mod pipeline;
pub mod replay;
pub mod stage;
pub mod stages;

pub use config::{NodeConfig, DEFAULT_CONFIG};
pub use node::{run_node, run_node_from, NodeError, NodeOptions, NodeReport, Publisher};
pub use pipeline::{Controls, EventSource, Pipeline, PipelineBuilder, PipelineStats, StageStats};
pub use stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

pub use rampart_event::wall_ns;
