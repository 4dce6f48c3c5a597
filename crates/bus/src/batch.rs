//! The batch format nodes publish: JSON of a [`NodeBatch`], one message per up to
//! hundreds of records. Versioned by `v`; a consumer refuses versions it does not know
//! instead of guessing.

use rampart_event::fleet::NodeReport;
use rampart_event::{Alert, AuditRecord, ContainerLifecycle};
use serde::{Deserialize, Serialize};

/// The batch format version this build writes and reads.
pub const BATCH_VERSION: u32 = 1;

/// One record a node reports to central.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "record", rename_all = "snake_case")]
pub enum BusRecord {
    /// Boxed: an alert carries its whole event, several times a lifecycle record.
    Alert(Box<Alert>),
    Lifecycle(ContainerLifecycle),
    Audit(AuditRecord),
    /// What the node reports about itself (rules, health, scan results). A node sends
    /// these in batches of their own, so a central that does not know them refuses
    /// only those.
    Report(NodeReport),
    /// The node's flow summaries ([`crate::flows`]), in batches of their own like
    /// reports.
    Flows(crate::flows::FlowReport),
}

/// What one bus message carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeBatch {
    pub v: u32,
    pub node: String,
    /// The node's software version (central's inventory shows it).
    #[serde(default)]
    pub node_version: String,
    /// When the node sealed the batch, ns since the epoch (central's lag figure).
    pub sealed_ns: u64,
    /// Records a full spool or a full stage queue made the node drop before this batch
    /// (central shows the gap).
    #[serde(default)]
    pub dropped_before: u64,
    pub records: Vec<BusRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("batch does not decode: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("batch version {0} is unknown to this build (it reads {BATCH_VERSION})")]
    Version(u32),
}

impl NodeBatch {
    pub fn new(node: &str, node_version: &str, records: Vec<BusRecord>) -> Self {
        Self {
            v: BATCH_VERSION,
            node: node.into(),
            node_version: node_version.into(),
            sealed_ns: rampart_event::wall_ns(),
            dropped_before: 0,
            records,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serialising these types cannot fail (string keys, no non-finite floats the
        // alert's JSON fields could not already hold as JSON values).
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BatchError> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        // One parse in the common case; the version alone is read only to explain a
        // batch that does not decode (another version may have another shape).
        match serde_json::from_slice::<Self>(bytes) {
            Ok(b) if b.v == BATCH_VERSION => Ok(b),
            Ok(b) => Err(BatchError::Version(b.v)),
            Err(e) => match serde_json::from_slice::<Version>(bytes) {
                Ok(Version { v }) if v != BATCH_VERSION => Err(BatchError::Version(v)),
                _ => Err(e.into()),
            },
        }
    }

    /// Takes the batch's node reports out (the store keeps them apart from records).
    pub fn take_reports(&mut self) -> Vec<NodeReport> {
        let mut reports = Vec::new();
        self.records.retain_mut(|r| match r {
            BusRecord::Report(x) => {
                reports.push(std::mem::replace(x, NodeReport::Rules(Default::default())));
                false
            }
            _ => true,
        });
        reports
    }

    /// Takes the batch's flow reports out (the store keeps them in their own tables).
    pub fn take_flows(&mut self) -> Vec<crate::flows::FlowReport> {
        let mut flows = Vec::new();
        self.records.retain_mut(|r| match r {
            BusRecord::Flows(x) => {
                flows.push(std::mem::take(x));
                false
            }
            _ => true,
        });
        flows
    }

    /// The batch's records split by kind, as the store ingests them (node reports,
    /// which [`NodeBatch::take_reports`] takes, are left out).
    pub fn split(self) -> (Vec<Alert>, Vec<ContainerLifecycle>, Vec<AuditRecord>) {
        let (mut a, mut l, mut r) = (Vec::new(), Vec::new(), Vec::new());
        for rec in self.records {
            match rec {
                BusRecord::Alert(x) => a.push(*x),
                BusRecord::Lifecycle(x) => l.push(x),
                BusRecord::Audit(x) => r.push(x),
                BusRecord::Report(_) | BusRecord::Flows(_) => {}
            }
        }
        (a, l, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_event::LifecycleAction;

    #[test]
    fn round_trip_and_version_check() {
        let b = NodeBatch::new(
            "node-a",
            "0.1.0",
            vec![
                BusRecord::Lifecycle(ContainerLifecycle {
                    ts_ns: 5,
                    action: LifecycleAction::Die { exit_code: 1 },
                    container_id: "c".into(),
                    name: "n".into(),
                    image: "i".into(),
                    labels: Default::default(),
                }),
                BusRecord::Audit(AuditRecord {
                    id: "a".into(),
                    ts_ns: 6,
                    origin: "node-a".into(),
                    actor: "rule:x".into(),
                    action: "response.kill".into(),
                    target: "c".into(),
                    detail: String::new(),
                }),
            ],
        );
        let back = NodeBatch::decode(&b.encode()).unwrap();
        assert_eq!(back, b);
        let (a, l, r) = back.split();
        assert_eq!((a.len(), l.len(), r.len()), (0, 1, 1));
        let future = br#"{"v":2,"node":"x","sealed_ns":0,"records":[]}"#;
        assert!(matches!(
            NodeBatch::decode(future),
            Err(BatchError::Version(2))
        ));
        assert!(NodeBatch::decode(b"{oops").is_err());
    }
}
