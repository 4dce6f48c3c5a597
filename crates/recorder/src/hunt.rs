//! Retro-hunts: a rules file run over recorded history by the same engine as live
//! detection, its alerts marked `retro`.

use std::path::Path;
use std::sync::Arc;

use rampart_detect::RuleEngine;
use rampart_event::Alert;

use crate::error::RecorderError;
use crate::query::{Query, RecordTypes};
use crate::record::Record;
use crate::store::Recorder;

/// What a retro-hunt found.
#[derive(Debug, Clone, Default)]
pub struct HuntReport {
    /// Alerts raised (aggregated as live), each with `retro` set.
    pub alerts: Vec<Alert>,
    /// Events evaluated.
    pub events: u64,
    /// Rules files' errors (the rules that loaded still ran).
    pub load_errors: Vec<String>,
    /// Blocks skipped because they failed their checks: segment id, offset, why.
    pub skipped_blocks: Vec<(u64, u64, String)>,
}

impl Recorder {
    /// Loads the rules files (or directories) and runs them over the events `q`
    /// selects (its record types are ignored: only events are evaluated), in time
    /// order, as the live engine would have seen them.
    pub fn retro_hunt<P: AsRef<Path>>(
        self: &Arc<Self>,
        rules: &[P],
        q: &Query,
    ) -> Result<HuntReport, RecorderError> {
        let (engine, errors) =
            RuleEngine::load(rules).map_err(|e| RecorderError::Rules(e.to_string()))?;
        let mut report = self.retro_hunt_with(&engine, q)?;
        report.load_errors = errors.iter().map(ToString::to_string).collect();
        Ok(report)
    }

    /// [`Recorder::retro_hunt`] with an engine the caller loaded (its noise control
    /// state carries over: give it a fresh engine per hunt).
    pub fn retro_hunt_with(
        self: &Arc<Self>,
        engine: &RuleEngine,
        q: &Query,
    ) -> Result<HuntReport, RecorderError> {
        let q = q.clone().records(RecordTypes::EVENTS);
        let mut it = self.query(&q)?;
        let mut report = HuntReport::default();
        for r in it.by_ref() {
            if let Record::Event(ev) = r {
                report.events += 1;
                report.alerts.extend(engine.evaluate(&ev));
            }
        }
        // Windows still open at the end of the range close now.
        report.alerts.extend(engine.flush_all());
        for a in &mut report.alerts {
            a.retro = true;
        }
        report.skipped_blocks = it.skipped().to_vec();
        Ok(report)
    }
}
