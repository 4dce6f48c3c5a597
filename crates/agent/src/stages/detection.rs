//! Detection as a stage: every event through the rule engine; alerts raised back into
//! the pipeline; aggregation windows closed on the tick and at stop; rules reloaded on
//! SIGHUP.

use rampart_detect::RuleEngine;

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// A change made to each alert before it is raised (the baselines' noise control).
pub type AlertAdjust = Box<dyn FnMut(&mut rampart_event::Alert) + Send>;

pub struct DetectionStage {
    engine: RuleEngine,
    adjust: Option<AlertAdjust>,
}

impl DetectionStage {
    pub fn new(engine: RuleEngine) -> Self {
        Self {
            engine,
            adjust: None,
        }
    }

    /// Passes every alert through `adjust` before raising it.
    pub fn with_adjust(mut self, adjust: AlertAdjust) -> Self {
        self.adjust = Some(adjust);
        self
    }

    fn raise(&mut self, mut alert: rampart_event::Alert, ctx: &StageContext) {
        if let Some(f) = self.adjust.as_mut() {
            f(&mut alert);
        }
        ctx.emit_alert(alert);
    }
}

impl Stage for DetectionStage {
    fn name(&self) -> &str {
        "detection"
    }

    fn subscription(&self) -> Subscription {
        Subscription::EVENTS
    }

    /// Detection sees every event the sensor delivers: a backlog here reaches the
    /// sensor's queue, whose losses show in the stream.
    fn when_full(&self) -> WhenFull {
        WhenFull::Block
    }

    fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError> {
        for record in &batch.records {
            if let Record::Event(ev) = record {
                for alert in self.engine.evaluate(ev) {
                    self.raise(alert, ctx);
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, ctx: &StageContext) -> Result<(), StageError> {
        for alert in self.engine.flush(now_ns) {
            self.raise(alert, ctx);
        }
        Ok(())
    }

    fn reload(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let set = self.engine.reload_same().map_err(|e| {
            StageError::new(format!("rules reload refused, the running set stays: {e}"))
        })?;
        tracing::info!(rules = set.rules().len(), "rules reloaded");
        Ok(())
    }

    fn stop(&mut self, ctx: &StageContext) -> Result<(), StageError> {
        for alert in self.engine.flush_all() {
            self.raise(alert, ctx);
        }
        Ok(())
    }
}
