//! What the recorder stores: events, alerts and container lifecycle records.

use rampart_event::{Alert, Event};

/// One stored record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(Event),
    /// Boxed: an alert is twice an event's size, and queries move records by value,
    /// so an inline alert would double every event's moves.
    Alert(Box<Alert>),
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

/// A container started, stopped or died: the pipeline's lifecycle record, stored as is.
pub use rampart_event::{ContainerLifecycle as LifecycleRecord, LifecycleAction};
