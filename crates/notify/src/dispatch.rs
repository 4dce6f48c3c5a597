//! Fan-out of alerts to every sink.
//!
//! Each sink runs in its own task behind its own bounded queue. [`Dispatcher::dispatch`]
//! never waits: when a sink's queue is full the alert is dropped *for that sink only*
//! and counted, so a slow or dead sink cannot hold up detection or the other sinks.
//! Deliveries that fail after the sink's own retries are counted too. Nothing is lost
//! silently: [`Dispatcher::stats`] reports every count, per sink.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rampart_event::{Alert, Priority};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::OutputsConfig;
use crate::sink::{build_sinks, AlertSink};
use crate::NotifyError;

/// Counts of one sink.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    pub name: String,
    /// Delivered.
    pub sent: u64,
    /// Dropped because the sink's queue was full.
    pub dropped_queue_full: u64,
    /// Dropped because delivery failed (after retries).
    pub failed: u64,
    /// Not sent to this sink because of its `min_priority`.
    pub filtered: u64,
}

impl SinkStats {
    /// Alerts this sink lost, for any reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.failed
    }
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    dropped_queue_full: AtomicU64,
    failed: AtomicU64,
    filtered: AtomicU64,
}

enum Command {
    Alert(Arc<Alert>),
    Flush(oneshot::Sender<()>),
}

struct Lane {
    name: String,
    min_priority: Option<Priority>,
    tx: mpsc::Sender<Command>,
    counters: Arc<Counters>,
    task: JoinHandle<()>,
}

/// Sends every alert to every sink; see the module doc.
pub struct Dispatcher {
    lanes: Vec<Lane>,
}

impl Dispatcher {
    /// Builds the sinks of `config` and starts one task per sink. Needs a tokio runtime.
    pub fn from_config(config: &OutputsConfig) -> Result<Self, NotifyError> {
        let sinks = build_sinks(config)?;
        let with_filters = sinks
            .into_iter()
            .zip(config.sinks.iter().map(|s| s.min_priority))
            .collect();
        Ok(Self::new(with_filters, config.queue_capacity))
    }

    /// Starts one task per sink, each behind a queue of `queue_capacity` alerts.
    pub fn new(sinks: Vec<(Box<dyn AlertSink>, Option<Priority>)>, queue_capacity: usize) -> Self {
        let lanes = sinks
            .into_iter()
            .map(|(sink, min_priority)| {
                let (tx, rx) = mpsc::channel(queue_capacity.max(1));
                let counters = Arc::new(Counters::default());
                let name = sink.name().to_string();
                let task = tokio::spawn(run_sink(sink, rx, counters.clone()));
                Lane {
                    name,
                    min_priority,
                    tx,
                    counters,
                    task,
                }
            })
            .collect();
        Self { lanes }
    }

    /// Queues `alert` for every sink whose threshold it meets; never waits.
    pub fn dispatch(&self, alert: Arc<Alert>) {
        for lane in &self.lanes {
            // Priority orders most severe first, so "at least as severe" is `<=`.
            if lane.min_priority.is_some_and(|min| alert.priority > min) {
                lane.counters.filtered.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            match lane.tx.try_send(Command::Alert(alert.clone())) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let n = lane
                        .counters
                        .dropped_queue_full
                        .fetch_add(1, Ordering::Relaxed)
                        + 1;
                    // Log the 1st, 2nd, 4th, 8th… drop: visible without flooding the log.
                    if n.is_power_of_two() {
                        tracing::warn!(sink = %lane.name, dropped = n, "alert queue full, alert dropped for this sink");
                    }
                }
                // The sink's task is gone (it panicked): the alert is lost for it.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    lane.counters.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Waits until every sink has handled what was queued before this call and flushed.
    pub async fn flush(&self) {
        let mut waits = Vec::with_capacity(self.lanes.len());
        for lane in &self.lanes {
            let (done, wait) = oneshot::channel();
            if lane.tx.send(Command::Flush(done)).await.is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    /// Current counts, one entry per sink in configuration order.
    pub fn stats(&self) -> Vec<SinkStats> {
        self.lanes
            .iter()
            .map(|lane| SinkStats {
                name: lane.name.clone(),
                sent: lane.counters.sent.load(Ordering::Relaxed),
                dropped_queue_full: lane.counters.dropped_queue_full.load(Ordering::Relaxed),
                failed: lane.counters.failed.load(Ordering::Relaxed),
                filtered: lane.counters.filtered.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Delivers what is queued, flushes every sink, stops the tasks and returns the
    /// final counts.
    pub async fn shutdown(self) -> Vec<SinkStats> {
        self.flush().await;
        let stats_source: Vec<(String, Arc<Counters>)> = self
            .lanes
            .iter()
            .map(|l| (l.name.clone(), l.counters.clone()))
            .collect();
        for lane in self.lanes {
            drop(lane.tx);
            let _ = lane.task.await;
        }
        stats_source
            .into_iter()
            .map(|(name, c)| SinkStats {
                name,
                sent: c.sent.load(Ordering::Relaxed),
                dropped_queue_full: c.dropped_queue_full.load(Ordering::Relaxed),
                failed: c.failed.load(Ordering::Relaxed),
                filtered: c.filtered.load(Ordering::Relaxed),
            })
            .collect()
    }
}

async fn run_sink(
    mut sink: Box<dyn AlertSink>,
    mut rx: mpsc::Receiver<Command>,
    counters: Arc<Counters>,
) {
    while let Some(command) = rx.recv().await {
        match command {
            Command::Alert(alert) => match sink.send(&alert).await {
                Ok(()) => {
                    counters.sent.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let n = counters.failed.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(sink = %sink.name(), failed = n, error = %e, "alert delivery failed, alert dropped for this sink");
                    }
                }
            },
            Command::Flush(done) => {
                if let Err(e) = sink.flush().await {
                    tracing::warn!(sink = %sink.name(), error = %e, "flush failed");
                }
                let _ = done.send(());
            }
        }
    }
    if let Err(e) = sink.flush().await {
        tracing::warn!(sink = %sink.name(), error = %e, "final flush failed");
    }
}
