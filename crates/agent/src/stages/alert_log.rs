//! A stage that keeps every alert the pipeline raises, with the moment it arrived, for
//! an embedding program (or a test) to read while the pipeline runs.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rampart_event::Alert;

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription};

/// An alert with the moment it reached the stage.
pub type TimedAlert = (Instant, Arc<Alert>);

/// The alerts an [`AlertLogStage`] has seen, shared with whoever reads them.
#[derive(Debug, Clone, Default)]
pub struct AlertLog(Arc<Mutex<Vec<TimedAlert>>>);

impl AlertLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A stage that appends to this log.
    pub fn stage(&self) -> AlertLogStage {
        AlertLogStage(self.clone())
    }

    /// The alerts so far, in arrival order.
    pub fn alerts(&self) -> Vec<Arc<Alert>> {
        self.lock().iter().map(|(_, a)| a.clone()).collect()
    }

    /// The alerts so far with the moment each reached the stage.
    pub fn timed(&self) -> Vec<TimedAlert> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    // A panicking reader leaves the list whole (pushes are single calls), so a
    // poisoned lock is still safe to read.
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<TimedAlert>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Appends each alert to its [`AlertLog`].
#[derive(Debug)]
pub struct AlertLogStage(AlertLog);

impl Stage for AlertLogStage {
    fn name(&self) -> &str {
        "alert-log"
    }

    fn subscription(&self) -> Subscription {
        Subscription::ALERTS
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        let now = Instant::now();
        let mut log = self.0.lock();
        log.extend(batch.records.iter().filter_map(|r| match r {
            Record::Alert(a) => Some((now, a.clone())),
            _ => None,
        }));
        Ok(())
    }
}
