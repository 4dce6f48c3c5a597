//! What the recorder stores: events, alerts and container lifecycle records.

use rampart_event::{Alert, Event};
use serde::{Deserialize, Serialize};

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(Event),
    Alert(Alert),
    Lifecycle(LifecycleRecord),
}

impl Record {
    /// Time of the record, ns since the Unix epoch (what queries order by).
    pub fn ts_ns(&self) -> u64 {
        match self {
            Record::Event(e) => e.ts_ns,
            Record::Alert(a) => a.ts_ns,
            Record::Lifecycle(l) => l.ts_ns,
        }
    }

    /// The container the record belongs to (`None`: the host).
    pub fn container_id(&self) -> Option<&str> {
        match self {
            Record::Event(e) => e.container.container().map(|c| c.id.as_str()),
            Record::Alert(a) => a.event.container.container().map(|c| c.id.as_str()),
            Record::Lifecycle(l) => Some(l.container_id.as_str()),
        }
    }
}

/// What happened to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum LifecycleAction {
    Start,
    Stop,
    /// The container's main process ended.
    Die {
        exit_code: i64,
    },
}

/// A container started, stopped or died (from the runtime's event stream).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifecycleRecord {
    pub ts_ns: u64,
    #[serde(flatten)]
    pub action: LifecycleAction,
    pub container_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
}
