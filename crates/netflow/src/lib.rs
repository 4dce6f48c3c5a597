//! Rampart's network view, on top of the kernel's flow table (`rampart_bpf::netflow`):
//!
//! - [`table`]: flows per container and 5-tuple with bytes and packets both ways, the
//!   process that opened them, and the peer named ([`directory`]: another container by
//!   workload, the host, or an external address with the DNS name it was resolved from
//!   in that container, from answers read in the kernel ([`dns`])); listening ports;
//! - [`graph`]: workloads and external endpoints as nodes, edges per protocol/port with
//!   bytes, connection counts and state; table, JSON and DOT output;
//! - [`segment`]: learned segmentation (discover, monitor, protect), editable baselines
//!   as YAML, and the kernel rules protect mode puts in force;
//! - [`guard`]: the same kernel protect mode for allow lists another part decides
//!   (the behaviour baselines' learned edges), attached to the guarded containers only;
//! - [`policy`]: Kubernetes NetworkPolicy per workload from the graph, and simulation of
//!   a policy against observed flows;
//! - [`detect`]: network threat detectors with MITRE ATT&CK ids; [`tls`] reads the
//!   ClientHello (SNI, JA4);
//! - [`capture`]: per-container rolling packet buffers and pcapng around an alert.
//!
//! Storage backends are not its business: it hands out values for others to keep.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod bench;
pub mod capture;
pub mod detect;
pub mod directory;
pub mod dns;
pub mod engine;
pub mod flow;
pub mod graph;
pub mod guard;
pub mod policy;
pub mod segment;
pub mod table;
pub mod tls;

pub use directory::{ContainerInfo, Directory};
pub use engine::{EngineConfig, NetworkEngine};
pub use flow::{Direction, Flow, Peer, ProcessRef, Proto};
pub use graph::{EdgeState, Graph, GraphEdge, GraphNode, GraphQuery, NodeKind};
pub use table::FlowTable;

/// What this crate's fallible parts report.
#[derive(Debug, thiserror::Error)]
pub enum NetflowError {
    #[error("{what}: {reason}")]
    Parse { what: String, reason: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("docker: {0}")]
    Docker(String),
    #[error("kernel: {0}")]
    Bpf(#[from] rampart_bpf::BpfError),
}
