//! The audit record: something someone did (an API write on central, a response action
//! on a node), kept by central and carried on the bus like alerts.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Something someone did: an API write, a response action on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Unique, chosen by whoever records it ([`audit_id`]), so a record sent twice over
    /// an at-least-once bus is stored once.
    pub id: String,
    pub ts_ns: u64,
    /// Where it happened: `central` or a node name.
    pub origin: String,
    /// Who: a token's subject, `node:<name>`, `rule:<name>`.
    pub actor: String,
    /// What, dotted: `alert.acknowledge`, `response.kill`.
    pub action: String,
    /// On what: an alert id, a container id.
    pub target: String,
    /// Free-form detail (JSON text by convention).
    #[serde(default)]
    pub detail: String,
}

/// A unique id for a record this process creates: time, process and a counter, so ids
/// from different processes and restarts do not collide.
pub fn audit_id(now_ns: u64) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{now_ns:016x}-{:08x}-{n:x}", std::process::id())
}
