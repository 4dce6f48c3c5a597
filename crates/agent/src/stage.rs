//! The one trait every part of the node pipeline implements, and what flows to it.

use std::sync::mpsc::Sender;
use std::sync::Arc;

use rampart_event::{Alert, ContainerLifecycle, Event};

/// What the pipeline hands a stage: sensor events, alerts raised by stages, and
/// containers starting, stopping and dying.
#[derive(Debug, Clone)]
pub enum Record {
    Event(Arc<Event>),
    Alert(Arc<Alert>),
    Lifecycle(Arc<ContainerLifecycle>),
}

/// Which records a stage receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub events: bool,
    pub alerts: bool,
    pub lifecycle: bool,
}

impl Subscription {
    pub const EVENTS: Self = Self {
        events: true,
        alerts: false,
        lifecycle: false,
    };
    pub const ALERTS: Self = Self {
        events: false,
        alerts: true,
        lifecycle: false,
    };
    pub const ALL: Self = Self {
        events: true,
        alerts: true,
        lifecycle: true,
    };
}

/// What happens when a stage's queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// The pipeline waits for room: the backlog reaches the sensor's own queue, whose
    /// losses are counted and show as `lost` events in the stream. For stages that
    /// must see every event the sensor delivers (detection).
    Block,
    /// The batch is dropped for this stage only and counted; the stage learns how
    /// many records it missed with its next batch. For stages that must never hold
    /// up the others (recording, network maps).
    DropNewest,
}

/// A batch of records, in the order the pipeline received them.
#[derive(Debug)]
pub struct Batch {
    pub records: Vec<Record>,
    /// Records this stage missed since its previous batch (its queue was full).
    pub shed_before: u64,
}

/// A stage's handle back into the pipeline.
pub struct StageContext {
    alerts: Sender<Arc<Alert>>,
}

impl StageContext {
    pub(crate) fn new(alerts: Sender<Arc<Alert>>) -> Self {
        Self { alerts }
    }

    /// Raises an alert: it reaches every stage that subscribes to alerts.
    pub fn emit_alert(&self, alert: Alert) {
        // The receiver lives as long as the pipeline; once it has stopped, there is
        // nobody left to tell.
        let _ = self.alerts.send(Arc::new(alert));
    }
}

/// Why a stage failed. A failure in `handle` or `flush` is logged and counted and
/// the stage goes on; a failure in `start` stops the pipeline from starting.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StageError(pub String);

impl StageError {
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// One part of the node pipeline (detection, outputs, the recorder, response, the
/// network map…). Each stage runs on its own thread behind its own bounded queue;
/// its methods are called in order, never concurrently.
pub trait Stage: Send + 'static {
    /// A short name for logs and counters (`detection`, `outputs`).
    fn name(&self) -> &str;

    /// Which records it wants.
    fn subscription(&self) -> Subscription;

    /// What the pipeline does when its queue is full.
    fn when_full(&self) -> WhenFull {
        WhenFull::DropNewest
    }

    /// Called once on the stage's thread before the first batch.
    fn start(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }

    /// Handles a batch of records.
    fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError>;

    /// Periodic tick (every quarter second), with the wall clock in ns since the
    /// epoch: close time windows, flush buffers.
    fn flush(&mut self, _now_ns: u64, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }

    /// SIGHUP: reload configuration. An error keeps what runs.
    fn reload(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }

    /// Shutdown, after the last batch: deliver what is held back.
    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        Ok(())
    }
}
