//! The way from the API to the fleet's nodes. Under `rampart central` raw events stay
//! on the nodes, so event queries and retro-hunts naming another node go there as
//! request/reply ([`rampart_bus::rpc`]); `rampart-central`'s `NodeClient` implements
//! [`NodeGateway`] over NATS. The API only sees JSON lines back, as the node's
//! recorder writes them.

use async_trait::async_trait;
use rampart_bus::rpc::{
    DeployAnswer, DeployText, EventQuery, IncidentAnswer, RespondCommand, RulesText,
};

/// Why a node could not answer.
#[derive(Debug, thiserror::Error)]
pub enum NodeCallError {
    /// Nobody answered (the node is down or not connected), or the answer broke off.
    #[error("{0}")]
    Unreachable(String),
    /// The node answered with an error (a bad `where` condition, a rules file that
    /// does not load): the caller's input.
    #[error("{0}")]
    Refused(String),
}

/// A live stream's batches of JSON lines (records), as the node sends them; it ends
/// when the node ends it, and dropping it cancels it on the node.
pub type NodeLines = std::pin::Pin<
    Box<dyn futures_util::Stream<Item = Result<Vec<String>, NodeCallError>> + Send + 'static>,
>;

/// What a deploy replaces on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeployKind {
    Rules,
    ResponsePolicy,
}

/// An answer: the records as JSON lines, and what the node reported at the end.
#[derive(Debug, Clone, Default)]
pub struct NodeAnswer {
    pub lines: Vec<String>,
    pub summary: serde_json::Value,
}

/// An incident bundle a node built: the tar.gz, and what it holds.
#[derive(Debug, Clone, Default)]
pub struct NodeBundle {
    pub data: Vec<u8>,
    pub answer: IncidentAnswer,
}

/// Request/reply to a node by name.
#[async_trait]
pub trait NodeGateway: Send + Sync + 'static {
    /// Records of the node's flight recorder.
    async fn query(&self, node: &str, query: EventQuery) -> Result<NodeAnswer, NodeCallError>;

    /// Runs rules over the node's recorded history; the lines are alerts.
    async fn retro_hunt(
        &self,
        node: &str,
        query: EventQuery,
        rules: Vec<RulesText>,
    ) -> Result<NodeAnswer, NodeCallError>;

    /// Records the node's recorder seals from now on (live events).
    async fn stream_events(
        &self,
        node: &str,
        query: EventQuery,
    ) -> Result<NodeLines, NodeCallError> {
        let _ = query;
        Err(NodeCallError::Unreachable(format!(
            "node {node}: this server cannot stream a node's events"
        )))
    }

    /// Deploys a rules file or response policy to the node, which checks it against
    /// what it runs and reloads when it passes.
    async fn deploy(
        &self,
        node: &str,
        kind: DeployKind,
        doc: DeployText,
    ) -> Result<DeployAnswer, NodeCallError> {
        let _ = (kind, doc);
        Err(NodeCallError::Unreachable(format!(
            "node {node}: this server cannot deploy to nodes"
        )))
    }

    /// A response action on one of the node's containers, taken and audited there.
    /// The answer holds the node's audit record (`audit`) and what its responder did
    /// (`response`: `result`, `detail`).
    async fn respond(
        &self,
        node: &str,
        command: RespondCommand,
    ) -> Result<serde_json::Value, NodeCallError> {
        let _ = command;
        Err(NodeCallError::Unreachable(format!(
            "node {node}: this server cannot ask nodes for response actions"
        )))
    }

    /// The incident bundle of an alert the node raised (`alert_id` as the node knows
    /// it), built there from its recorder and packet captures.
    async fn incident_bundle(
        &self,
        node: &str,
        alert_id: &str,
        before: std::time::Duration,
        after: std::time::Duration,
    ) -> Result<NodeBundle, NodeCallError> {
        let _ = (alert_id, before, after);
        Err(NodeCallError::Unreachable(format!(
            "node {node}: this server cannot fetch incident bundles from nodes"
        )))
    }
}
