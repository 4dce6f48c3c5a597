//! Alert outputs as a stage: every alert to the configured sinks (stdout, files,
//! syslog, webhooks…) through the notify crate's dispatcher, which never waits; at
//! stop, the sinks are flushed and their counters kept for the node's report.

use std::sync::{Arc, Mutex};

use rampart_notify::{Dispatcher, OutputsConfig, SinkStats};
use serde::Serialize;

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription};

/// Kernel-to-output latency of the alerts delivered, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatencySummary {
    pub alerts: usize,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

impl LatencySummary {
    fn of(mut us: Vec<u64>) -> Option<Self> {
        us.sort_unstable();
        let last = us.len().checked_sub(1)?;
        let p = |q: f64| us[(last as f64 * q) as usize];
        Some(Self {
            alerts: us.len(),
            p50_us: p(0.5),
            p99_us: p(0.99),
            max_us: p(1.0),
        })
    }
}

/// What the outputs stage reports once stopped.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OutputsReport {
    pub sinks: Vec<SinkStats>,
    /// Over the first alert of each burst (aggregates are delivered when their window
    /// closes, so their age says nothing about the pipeline).
    pub latency: Option<LatencySummary>,
}

pub struct OutputsStage {
    runtime: Option<tokio::runtime::Runtime>,
    dispatcher: Option<Dispatcher>,
    latencies_us: Vec<u64>,
    report: Arc<Mutex<OutputsReport>>,
}

impl OutputsStage {
    /// Builds the sinks (on a small runtime of their own) and returns the stage and
    /// where its report will be once the pipeline has stopped.
    pub fn new(config: &OutputsConfig) -> Result<(Self, Arc<Mutex<OutputsReport>>), StageError> {
        rampart_notify::install_ring_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name("rampart-outputs")
            .build()
            .map_err(StageError::new)?;
        let dispatcher = {
            let _g = runtime.enter();
            Dispatcher::from_config(config).map_err(StageError::new)?
        };
        let report = Arc::new(Mutex::new(OutputsReport::default()));
        Ok((
            Self {
                runtime: Some(runtime),
                dispatcher: Some(dispatcher),
                latencies_us: Vec::new(),
                report: report.clone(),
            },
            report,
        ))
    }
}

impl Stage for OutputsStage {
    fn name(&self) -> &str {
        "outputs"
    }

    fn subscription(&self) -> Subscription {
        Subscription::ALERTS
    }

    /// The dispatcher never waits (each sink has its own counted queue), so this
    /// stage keeps up; a full queue here would only mean a stalled thread.
    fn when_full(&self) -> crate::stage::WhenFull {
        crate::stage::WhenFull::Block
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        let (Some(rt), Some(dispatcher)) = (&self.runtime, &self.dispatcher) else {
            return Err(StageError::new("outputs already stopped"));
        };
        let _g = rt.enter();
        let now = crate::wall_ns();
        for record in &batch.records {
            if let Record::Alert(alert) = record {
                if alert.count <= 1 {
                    self.latencies_us
                        .push(now.saturating_sub(alert.ts_ns) / 1000);
                }
                dispatcher.dispatch(alert.clone());
            }
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let (Some(rt), Some(dispatcher)) = (self.runtime.take(), self.dispatcher.take()) else {
            return Ok(());
        };
        let sinks = rt.block_on(dispatcher.shutdown());
        let mut report = self
            .report
            .lock()
            .map_err(|_| StageError::new("outputs report lock poisoned"))?;
        report.sinks = sinks;
        report.latency = LatencySummary::of(std::mem::take(&mut self.latencies_us));
        Ok(())
    }
}
