//! The pipeline: one router that takes events from a source and fans them out, shared
//! (`Arc`), to every stage, each on its own thread behind a bounded queue; alerts the
//! stages raise come back to the router and fan out the same way.
//!
//! Invariants:
//! - A stage sees records in the order the router received them, and its methods are
//!   never called concurrently.
//! - Nothing is dropped silently: a full queue either holds the router up
//!   ([`WhenFull::Block`]) or drops that batch for that stage only, counted, and the
//!   stage's next batch says how many it missed ([`Batch::shed_before`]).
//! - A stage never waits on the router (the alert channel is unbounded: alerts are
//!   few, rate-limited by detection's noise control), so a blocking send from the
//!   router cannot deadlock.
//! - While [`Pipeline::run`] runs, alerts are fanned out by a thread of their own the
//!   moment a stage raises them (the router sleeps in the sensor's channel and would
//!   hold an alert until the next event or its 50 ms timeout: the response to it
//!   waited with it). Router and alert thread deliver under one lock, so an alert
//!   reaches every stage after the event batch it came from.
//! - Stages stop in the order they were added; the alerts a stage raises while
//!   stopping reach every stage added after it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_event::{Alert, ContainerLifecycle, Event};
use serde::Serialize;

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// Batches a stage's queue holds before it is full.
pub const DEFAULT_QUEUE_BATCHES: usize = 256;
/// Events the router gathers into one batch at most (what is queued, never waiting).
pub const MAX_BATCH: usize = 1024;
/// How often stages get [`Stage::flush`].
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How long the alert thread waits for an alert before it looks whether to stop.
const ALERT_WAIT: Duration = Duration::from_millis(50);

/// Where events come from: the sensor, or a replay.
pub trait EventSource {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError>;
    /// An event already queued, without waiting.
    fn try_recv(&mut self) -> Option<Event>;
    /// Stops producing; what is already queued can still be received.
    fn stop(&mut self);
    /// A container lifecycle change already queued, without waiting.
    fn try_recv_lifecycle(&mut self) -> Option<ContainerLifecycle> {
        None
    }
}

impl EventSource for rampart_sensor::RunningSensor {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        self.events.recv_timeout(timeout)
    }
    fn try_recv(&mut self) -> Option<Event> {
        self.events.try_recv().ok()
    }
    fn stop(&mut self) {
        rampart_sensor::RunningSensor::stop(self);
    }
    fn try_recv_lifecycle(&mut self) -> Option<ContainerLifecycle> {
        self.lifecycle.try_recv().ok()
    }
}

impl EventSource for Receiver<Event> {
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        Receiver::recv_timeout(self, timeout)
    }
    fn try_recv(&mut self) -> Option<Event> {
        Receiver::try_recv(self).ok()
    }
    fn stop(&mut self) {}
}

/// When the router stops and when it asks the stages to reload.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    pub stop: Arc<AtomicBool>,
    pub reload: Arc<AtomicBool>,
    pub deadline: Option<Instant>,
}

impl Controls {
    /// Stop on SIGINT or SIGTERM, reload on SIGHUP.
    pub fn from_signals(deadline: Option<Instant>) -> std::io::Result<Self> {
        let c = Self {
            deadline,
            ..Self::default()
        };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, c.stop.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, c.reload.clone())?;
        Ok(c)
    }

    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("stage {stage} failed to start: {source}")]
    StageStart { stage: String, source: StageError },
    #[error("cannot start the thread of stage {stage}: {source}")]
    Thread {
        stage: String,
        source: std::io::Error,
    },
}

/// Counters of one stage.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StageStats {
    pub name: String,
    /// Records queued for it.
    pub delivered: u64,
    /// Records dropped for it because its queue was full.
    pub shed: u64,
    /// Calls that returned an error.
    pub errors: u64,
}

/// Counters of the whole pipeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PipelineStats {
    pub events: u64,
    pub alerts: u64,
    pub stages: Vec<StageStats>,
}

enum Control {
    Batch(Batch),
    Flush(u64),
    Reload,
    Stop,
}

#[derive(Default)]
struct LaneCounters {
    delivered: AtomicU64,
    shed: AtomicU64,
    errors: AtomicU64,
}

struct Lane {
    name: String,
    subscription: Subscription,
    when_full: WhenFull,
    tx: SyncSender<Control>,
    /// Shed since the last batch that reached the stage.
    shed_pending: u64,
    /// Batches shed, for logging the 1st, 2nd, 4th… without flooding the log.
    shed_batches: u64,
    counters: Arc<LaneCounters>,
    thread: Option<JoinHandle<()>>,
}

impl Lane {
    fn deliver(&mut self, records: &[Record]) {
        if records.is_empty() || self.thread.is_none() {
            return;
        }
        let n = records.len() as u64;
        let batch = Batch {
            records: records.to_vec(),
            shed_before: self.shed_pending,
        };
        let sent = match self.when_full {
            WhenFull::Block => self.tx.send(Control::Batch(batch)).is_ok(),
            WhenFull::DropNewest => match self.tx.try_send(Control::Batch(batch)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    let total = self.counters.shed.fetch_add(n, Ordering::Relaxed) + n;
                    metrics::counter!("rampart_dropped_total", "source" => "stage").increment(n);
                    self.shed_pending += n;
                    self.shed_batches += 1;
                    if self.shed_batches.is_power_of_two() {
                        tracing::warn!(stage = %self.name, shed = total, "stage queue full, records dropped for this stage");
                    }
                    return;
                }
                Err(TrySendError::Disconnected(_)) => false,
            },
        };
        if sent {
            self.shed_pending = 0;
            self.counters.delivered.fetch_add(n, Ordering::Relaxed);
        } else {
            // The stage's thread is gone (it panicked): count what it cannot take.
            self.counters.shed.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn control(&self, c: Control) {
        if self.thread.is_none() {
            return;
        }
        // A stage that must never hold the router up does not for its ticks either: a
        // tick its full queue cannot take is skipped (the next one comes in 250 ms).
        if self.when_full == WhenFull::DropNewest && matches!(c, Control::Flush(_)) {
            let _ = self.tx.try_send(c);
        } else {
            let _ = self.tx.send(c);
        }
    }

    fn stop(&mut self) {
        self.control(Control::Stop);
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!(stage = %self.name, "stage thread panicked");
            }
        }
    }

    fn stats(&self) -> StageStats {
        StageStats {
            name: self.name.clone(),
            delivered: self.counters.delivered.load(Ordering::Relaxed),
            shed: self.counters.shed.load(Ordering::Relaxed),
            errors: self.counters.errors.load(Ordering::Relaxed),
        }
    }
}

/// Stages, in the order they will be started and stopped.
pub struct PipelineBuilder {
    stages: Vec<Box<dyn Stage>>,
    queue_batches: usize,
}

impl Default for PipelineBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PipelineBuilder {
    pub fn new() -> Self {
        Self {
            stages: Vec::new(),
            queue_batches: DEFAULT_QUEUE_BATCHES,
        }
    }

    pub fn stage(mut self, stage: impl Stage) -> Self {
        self.stages.push(Box::new(stage));
        self
    }

    pub fn boxed_stage(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Batches each stage's queue holds.
    pub fn queue_batches(mut self, n: usize) -> Self {
        self.queue_batches = n.max(1);
        self
    }

    /// Starts every stage on its own thread; fails if any stage's `start` fails (the
    /// stages already started are stopped again).
    pub fn start(self) -> Result<Pipeline, PipelineError> {
        let (alerts_tx, alerts_rx) = mpsc::channel();
        let pipeline = Pipeline {
            lanes: Arc::new(Mutex::new(Vec::new())),
            alerts_rx: Some(alerts_rx),
            forwarder: None,
            events: 0,
            alerts: Arc::new(AtomicU64::new(0)),
        };
        for stage in self.stages {
            match start_lane(stage, self.queue_batches, alerts_tx.clone()) {
                Ok(lane) => pipeline.lanes().push(lane),
                Err(e) => {
                    pipeline.shutdown();
                    return Err(e);
                }
            }
        }
        Ok(pipeline)
    }
}

fn start_lane(
    mut stage: Box<dyn Stage>,
    queue_batches: usize,
    alerts: mpsc::Sender<Arc<Alert>>,
) -> Result<Lane, PipelineError> {
    let name = stage.name().to_string();
    let subscription = stage.subscription();
    let when_full = stage.when_full();
    let (tx, rx) = mpsc::sync_channel(queue_batches);
    let (started_tx, started_rx) = mpsc::sync_channel(1);
    let counters = Arc::new(LaneCounters::default());
    let thread = {
        let counters = counters.clone();
        let lane_name = name.clone();
        std::thread::Builder::new()
            .name(format!("rampart-{name}"))
            .spawn(move || {
                let ctx = StageContext::new(alerts);
                let started = stage.start(&ctx);
                let ok = started.is_ok();
                let _ = started_tx.send(started);
                if ok {
                    run_stage(stage.as_mut(), &lane_name, &rx, &ctx, &counters);
                }
            })
            .map_err(|source| PipelineError::Thread {
                stage: name.clone(),
                source,
            })?
    };
    match started_rx.recv() {
        Ok(Ok(())) => Ok(Lane {
            name,
            subscription,
            when_full,
            tx,
            shed_pending: 0,
            shed_batches: 0,
            counters,
            thread: Some(thread),
        }),
        Ok(Err(source)) => {
            let _ = thread.join();
            Err(PipelineError::StageStart {
                stage: name,
                source,
            })
        }
        Err(_) => {
            let _ = thread.join();
            Err(PipelineError::StageStart {
                stage: name,
                source: StageError::new("the stage's thread ended while starting"),
            })
        }
    }
}

fn run_stage(
    stage: &mut dyn Stage,
    name: &str,
    rx: &Receiver<Control>,
    ctx: &StageContext,
    counters: &LaneCounters,
) {
    let failed = |what: &str, e: StageError| {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(stage = %name, error = %e, "stage {what} failed");
    };
    while let Ok(c) = rx.recv() {
        match c {
            Control::Batch(b) => {
                if let Err(e) = stage.handle(&b, ctx) {
                    failed("batch", e);
                }
            }
            Control::Flush(now) => {
                if let Err(e) = stage.flush(now, ctx) {
                    failed("flush", e);
                }
            }
            Control::Reload => {
                if let Err(e) = stage.reload(ctx) {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(stage = %name, error = %e, "reload refused; what runs stays");
                }
            }
            Control::Stop => {
                if let Err(e) = stage.stop(ctx) {
                    failed("stop", e);
                }
                return;
            }
        }
    }
}

/// Fans alerts out to every stage that subscribes to them.
fn deliver_alerts(lanes: &mut [Lane], alerts: Vec<Arc<Alert>>, count: &AtomicU64) {
    if alerts.is_empty() {
        return;
    }
    count.fetch_add(alerts.len() as u64, Ordering::Relaxed);
    metrics::counter!("rampart_alerts_total").increment(alerts.len() as u64);
    let records: Vec<Record> = alerts.into_iter().map(Record::Alert).collect();
    for lane in lanes.iter_mut().filter(|l| l.subscription.alerts) {
        lane.deliver(&records);
    }
}

/// The alert thread of a running pipeline: hands the channel back when it stops.
struct Forwarder {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Receiver<Arc<Alert>>>,
}

/// A running pipeline; see the module doc.
pub struct Pipeline {
    lanes: Arc<Mutex<Vec<Lane>>>,
    /// With the router while no alert thread runs.
    alerts_rx: Option<Receiver<Arc<Alert>>>,
    forwarder: Option<Forwarder>,
    events: u64,
    alerts: Arc<AtomicU64>,
}

impl Pipeline {
    pub fn builder() -> PipelineBuilder {
        PipelineBuilder::new()
    }

    /// The lanes, for delivering; a panic elsewhere while they were held leaves them
    /// as they were (every update is one counter or one send).
    fn lanes(&self) -> MutexGuard<'_, Vec<Lane>> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fans events out to every stage that subscribes to them.
    pub fn push_events(&mut self, events: Vec<Arc<Event>>) {
        self.events += events.len() as u64;
        metrics::counter!("rampart_events_total").increment(events.len() as u64);
        let records: Vec<Record> = events.into_iter().map(Record::Event).collect();
        for lane in self.lanes().iter_mut().filter(|l| l.subscription.events) {
            lane.deliver(&records);
        }
    }

    /// Fans container lifecycle changes out to every stage that subscribes to them.
    pub fn push_lifecycle(&mut self, changes: Vec<ContainerLifecycle>) {
        let records: Vec<Record> = changes
            .into_iter()
            .map(|c| Record::Lifecycle(Arc::new(c)))
            .collect();
        for lane in self.lanes().iter_mut().filter(|l| l.subscription.lifecycle) {
            lane.deliver(&records);
        }
    }

    /// Fans the alerts raised so far out to every stage that subscribes to them.
    /// (With no alert thread running: it does this as alerts come.)
    pub fn pump_alerts(&mut self) {
        let Some(rx) = &self.alerts_rx else { return };
        let alerts: Vec<Arc<Alert>> = rx.try_iter().collect();
        deliver_alerts(&mut self.lanes(), alerts, &self.alerts);
    }

    /// Starts the alert thread (see the module doc); the router stops pumping.
    fn start_forwarder(&mut self) {
        let Some(rx) = self.alerts_rx.take() else {
            return;
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (lanes, count, stop_flag) = (self.lanes.clone(), self.alerts.clone(), stop.clone());
        // Hands the channel back if the thread cannot start, so the router pumps.
        let (back_tx, back_rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("rampart-alerts".into())
            .spawn(move || {
                let Ok(rx) = back_rx.recv() else {
                    return mpsc::channel().1;
                };
                forward_alerts(rx, &lanes, &count, &stop_flag)
            });
        match spawned {
            Ok(thread) => {
                let _ = back_tx.send(rx);
                self.forwarder = Some(Forwarder { stop, thread });
            }
            Err(e) => {
                tracing::warn!(error = %e, "no alert thread: alerts go out with the router's next wakeup");
                self.alerts_rx = Some(rx);
            }
        }
    }

    /// Stops the alert thread and takes the channel back, with what it still holds.
    fn stop_forwarder(&mut self) {
        let Some(f) = self.forwarder.take() else {
            return;
        };
        f.stop.store(true, Ordering::Relaxed);
        match f.thread.join() {
            Ok(rx) => self.alerts_rx = Some(rx),
            Err(_) => tracing::error!("the alert thread panicked; later alerts are lost"),
        }
    }

    /// Every stage's periodic tick.
    pub fn flush(&mut self, now_ns: u64) {
        for lane in self.lanes().iter() {
            lane.control(Control::Flush(now_ns));
        }
    }

    /// Every stage reloads its configuration.
    pub fn reload(&mut self) {
        for lane in self.lanes().iter() {
            lane.control(Control::Reload);
        }
    }

    pub fn stats(&self) -> PipelineStats {
        PipelineStats {
            events: self.events,
            alerts: self.alerts.load(Ordering::Relaxed),
            stages: self.lanes().iter().map(Lane::stats).collect(),
        }
    }

    /// Runs until the controls say stop or the source ends: events in batches of what
    /// is queued, alerts after every batch, a flush tick every [`FLUSH_EVERY`], a
    /// reload when asked. Then stops the source, delivers what it still held, and
    /// stops every stage.
    pub fn run(mut self, source: &mut dyn EventSource, controls: &Controls) -> PipelineStats {
        let mut last_flush = Instant::now();
        self.start_forwarder();
        loop {
            if controls.should_stop() {
                break;
            }
            if controls.reload.swap(false, Ordering::Relaxed) {
                self.reload();
            }
            match source.recv_timeout(Duration::from_millis(50)) {
                Ok(ev) => {
                    let mut batch = Vec::with_capacity(64);
                    batch.push(Arc::new(ev));
                    while batch.len() < MAX_BATCH {
                        let Some(ev) = source.try_recv() else { break };
                        batch.push(Arc::new(ev));
                    }
                    self.push_events(batch);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let changes: Vec<ContainerLifecycle> =
                std::iter::from_fn(|| source.try_recv_lifecycle()).collect();
            self.push_lifecycle(changes);
            self.pump_alerts();
            if last_flush.elapsed() >= FLUSH_EVERY {
                last_flush = Instant::now();
                self.flush(crate::wall_ns());
            }
        }
        // From here on the router delivers alerts itself, in the stop order.
        self.stop_forwarder();
        source.stop();
        let changes: Vec<ContainerLifecycle> =
            std::iter::from_fn(|| source.try_recv_lifecycle()).collect();
        self.push_lifecycle(changes);
        loop {
            let batch: Vec<Arc<Event>> = std::iter::from_fn(|| source.try_recv())
                .take(MAX_BATCH)
                .map(Arc::new)
                .collect();
            if batch.is_empty() {
                break;
            }
            self.push_events(batch);
            self.pump_alerts();
        }
        self.shutdown()
    }

    /// Stops every stage in order (see the module doc) and returns the counters.
    pub fn shutdown(mut self) -> PipelineStats {
        self.stop_forwarder();
        self.pump_alerts();
        let n = self.lanes().len();
        for i in 0..n {
            // Stage threads never take the lock: joining one under it is safe.
            self.lanes()[i].stop();
            self.pump_alerts();
        }
        self.stats()
    }
}

/// The alert thread: waits for alerts and fans each wakeup's worth out at once.
fn forward_alerts(
    rx: Receiver<Arc<Alert>>,
    lanes: &Mutex<Vec<Lane>>,
    count: &AtomicU64,
    stop: &AtomicBool,
) -> Receiver<Arc<Alert>> {
    while !stop.load(Ordering::Relaxed) {
        let first = match rx.recv_timeout(ALERT_WAIT) {
            Ok(a) => a,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut alerts = vec![first];
        alerts.extend(rx.try_iter());
        let mut lanes = lanes.lock().unwrap_or_else(|e| e.into_inner());
        deliver_alerts(&mut lanes, alerts, count);
    }
    rx
}
