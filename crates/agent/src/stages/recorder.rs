//! The flight recorder as a stage: every event the sensor delivers (before any rule),
//! every alert (audit alerts included) and every container lifecycle change go to the
//! recorder's own writer thread. The stage never waits: the pipeline drops batches it
//! cannot take (counted), the writer sheds what its queue cannot hold or a full disk
//! will not take (counted), and a `lost` event with source `recorder` marks each gap
//! in the recording. With a stats interval it logs the recorder's counters (appended,
//! shed, dropped for space, segments, bytes, oldest record) while the node runs.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_event::{Event, LossSource, Payload, Workload};
use rampart_recorder::{Recorder, RecorderConfig, Stats, Writer};

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// Where the recorder's counters are once the stage has stopped.
pub type RecorderReport = Arc<Mutex<Option<Stats>>>;

pub struct RecorderStage {
    writer: Option<Writer>,
    recorder: Arc<Recorder>,
    /// Writer sheds (queue full or disk full) already marked in the recording.
    shed_marked: u64,
    report: RecorderReport,
    host: Arc<str>,
    stats_every: Option<Duration>,
    last_stats: Instant,
}

impl RecorderStage {
    /// Opens (and repairs) the recording directory and starts its writer; returns the
    /// stage and where its counters will be once the pipeline has stopped.
    pub fn open(config: RecorderConfig) -> Result<(Self, RecorderReport), StageError> {
        let dir = config.dir.clone();
        let recorder = Recorder::open(config)
            .map_err(|e| StageError::new(format!("recorder at {}: {e}", dir.display())))?;
        let writer = Writer::start(recorder.clone()).map_err(StageError::new)?;
        let report = Arc::new(Mutex::new(None));
        Ok((
            Self {
                writer: Some(writer),
                recorder,
                shed_marked: 0,
                report: report.clone(),
                host: rampart_sensor::hostname().into(),
                stats_every: None,
                last_stats: Instant::now(),
            },
            report,
        ))
    }

    /// Logs the recorder's counters every `every` while the stage runs.
    pub fn with_stats_every(mut self, every: Option<Duration>) -> Self {
        self.stats_every = every.filter(|d| !d.is_zero());
        self
    }

    /// Reads how far the stage's writer is behind (for the node's health report).
    pub fn lag_probe(&self) -> Option<rampart_recorder::LagProbe> {
        self.writer.as_ref().map(Writer::lag_probe)
    }

    /// The recorder the stage writes to (its live counters, queries beside the writer).
    pub fn recorder(&self) -> Arc<Recorder> {
        self.recorder.clone()
    }

    /// Records that never reached the disk: shed by the writer's queue or by a full disk.
    fn writer_losses(stats: &Stats) -> u64 {
        stats.shed + stats.shed_disk_full
    }

    /// Marks in the recording what it lost since the last mark (plus `dropped`, batches
    /// the pipeline dropped for this stage).
    fn mark_losses(&mut self, dropped: u64) {
        let Some(writer) = &self.writer else { return };
        let lost = Self::writer_losses(&writer.stats());
        let missed = dropped + lost.saturating_sub(self.shed_marked);
        // A mark the queue sheds is counted there and tried again with the next one
        // (a mark a full disk sheds is passed on by the writer).
        if missed > 0 && writer.try_append_event(Arc::new(self.lost(missed))) {
            self.shed_marked = lost;
        }
    }

    fn log_stats(&self) {
        let s = self.recorder.stats();
        let summary = self.recorder.summary().unwrap_or_default();
        let oldest = summary
            .oldest_ns
            .map_or_else(|| "-".to_string(), rampart_recorder::query::fmt_ts);
        tracing::info!(
            appended = s.appended,
            shed = s.shed,
            shed_disk_full = s.shed_disk_full,
            segments = summary.segments,
            segments_deleted = s.segments_deleted,
            bytes = summary.bytes,
            blocks = s.blocks,
            write_errors = s.write_errors,
            catalog_errors = s.catalog_errors,
            oldest = %oldest,
            "recorder stats"
        );
        eprintln!(
            "rampart: recorder: {} appended, {} shed (queue full), {} shed (disk full), {} segments ({} deleted), {} bytes, oldest {}",
            s.appended,
            s.shed,
            s.shed_disk_full,
            summary.segments,
            s.segments_deleted,
            summary.bytes,
            oldest
        );
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
        if self.writer.is_none() {
            return Err(StageError::new("recorder already stopped"));
        }
        // Gaps: batches the pipeline dropped for this stage, and records the writer
        // shed since the last batch.
        self.mark_losses(batch.shed_before);
        let Some(writer) = &self.writer else {
            return Err(StageError::new("recorder already stopped"));
        };
        // Events go over as runs, one hand-off each (see `Writer::try_append_events`);
        // alerts and lifecycle changes, rare, one by one in their place.
        let mut run: Vec<Arc<Event>> = Vec::with_capacity(batch.records.len());
        for record in &batch.records {
            match record {
                Record::Event(ev) => run.push(ev.clone()),
                Record::Alert(alert) => {
                    writer.try_append_events(std::mem::take(&mut run));
                    writer.try_append_alert((**alert).clone());
                }
                Record::Lifecycle(change) => {
                    writer.try_append_events(std::mem::take(&mut run));
                    writer.try_append_lifecycle((**change).clone());
                }
            };
        }
        writer.try_append_events(run);
        Ok(())
    }

    fn flush(&mut self, _now_ns: u64, _ctx: &StageContext) -> Result<(), StageError> {
        // A quiet node still marks what a full disk shed.
        self.mark_losses(0);
        if let Some(every) = self.stats_every {
            if self.last_stats.elapsed() >= every {
                self.last_stats = Instant::now();
                self.log_stats();
            }
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        if self.stats_every.is_some() {
            self.log_stats();
        }
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
