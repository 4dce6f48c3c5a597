//! The flight recorder as a stage: every event the sensor delivers (before any rule),
//! every alert (audit alerts included) and every container lifecycle change go to the
//! recorder's own writer thread. The stage never waits: the pipeline drops batches it
//! cannot take (counted), the writer sheds what its queue cannot hold (counted), and a
//! `lost` event with source `recorder` marks each gap in the recording.

use std::sync::{Arc, Mutex};

use rampart_event::{Event, LossSource, Payload, Workload};
use rampart_recorder::{Recorder, RecorderConfig, Stats, Writer};

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// Where the recorder's counters are once the stage has stopped.
pub type RecorderReport = Arc<Mutex<Option<Stats>>>;

pub struct RecorderStage {
    writer: Option<Writer>,
    /// Writer sheds already marked in the recording.
    shed_marked: u64,
    report: RecorderReport,
    host: Arc<str>,
}

impl RecorderStage {
    /// Opens (and repairs) the recording directory and starts its writer; returns the
    /// stage and where its counters will be once the pipeline has stopped.
    pub fn open(config: RecorderConfig) -> Result<(Self, RecorderReport), StageError> {
        let dir = config.dir.clone();
        let recorder = Recorder::open(config)
            .map_err(|e| StageError::new(format!("recorder at {}: {e}", dir.display())))?;
        let writer = Writer::start(recorder).map_err(StageError::new)?;
        let report = Arc::new(Mutex::new(None));
        Ok((
            Self {
                writer: Some(writer),
                shed_marked: 0,
                report: report.clone(),
                host: rampart_sensor::hostname().into(),
            },
            report,
        ))
    }

    /// A `lost` event for `count` records the recording is missing.
    fn lost(&self, count: u64) -> Event {
        Event {
            schema: rampart_event::SCHEMA_VERSION,
            ts_ns: rampart_event::wall_ns(),
            host: self.host.clone(),
            seq: 0,
            process: None,
            container: Arc::new(Workload::Host { cgroup_id: 0 }),
            compat_syscall: false,
            payload: Payload::Lost {
                source: LossSource::Recorder,
                count,
                cpu: None,
            },
        }
    }
}

impl Stage for RecorderStage {
    fn name(&self) -> &str {
        "recorder"
    }

    fn subscription(&self) -> Subscription {
        Subscription::ALL
    }

    /// Recording must never hold up detection or response.
    fn when_full(&self) -> WhenFull {
        WhenFull::DropNewest
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        let Some(writer) = &self.writer else {
            return Err(StageError::new("recorder already stopped"));
        };
        // Gaps: batches the pipeline dropped for this stage, and records the writer's
        // own queue shed since the last batch.
        let shed = writer.stats().shed;
        let missed = batch.shed_before + shed.saturating_sub(self.shed_marked);
        self.shed_marked = shed;
        if missed > 0 {
            writer.try_append_event(Arc::new(self.lost(missed)));
        }
        for record in &batch.records {
            match record {
                Record::Event(ev) => writer.try_append_event(ev.clone()),
                Record::Alert(alert) => writer.try_append_alert((**alert).clone()),
                Record::Lifecycle(change) => writer.try_append_lifecycle((**change).clone()),
            };
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let stats = writer.close().map_err(StageError::new)?;
        if let Ok(mut report) = self.report.lock() {
            *report = Some(stats);
        }
        Ok(())
    }
}
