//! The network engine (`rampart_netflow`) as a stage: it reads the flows the kernel
//! reports changed once a second (four times a second under a flood of new flows, so
//! the kernel's change ring does not overflow into a whole-table read), names processes from the sensor's connect/listen/accept events, and
//! raises the segmentation's and the detectors' alerts. It writes the flow table and
//! the baselines under its state directory for `rampart net`. Other stages' alerts
//! of rules with `capture: true` (tagged `capture`) get the packets around them, as
//! its own alerts do, when `network.capture` is on.

use std::time::{Duration, Instant};

use rampart_netflow::{EngineConfig, NetworkEngine};

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

const POLL_EVERY: Duration = Duration::from_secs(1);
const POLL_BUSY: Duration = Duration::from_millis(250);
/// Flows read in one poll beyond which the next comes at [`POLL_BUSY`] (the kernel's
/// ring holds about 16k reports).
const BUSY_FLOWS: u64 = 4096;
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// Writing the table takes at most about 1/SAVE_SHARE of the time.
const SAVE_SHARE: u32 = 100;

pub struct NetflowStage {
    config: EngineConfig,
    engine: Option<NetworkEngine>,
    last_poll: Instant,
    poll_every: Duration,
    last_save: Instant,
    save_every: Duration,
    /// The engine's `flows_read` when the table was last written.
    saved_at_reads: u64,
}

impl NetflowStage {
    pub fn new(config: EngineConfig) -> Self {
        Self {
            config,
            engine: None,
            last_poll: Instant::now(),
            poll_every: POLL_EVERY,
            last_save: Instant::now(),
            save_every: SAVE_EVERY,
            saved_at_reads: 0,
        }
    }
}

impl Stage for NetflowStage {
    fn name(&self) -> &str {
        "netflow"
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            alerts: true,
            ..Subscription::EVENTS
        }
    }

    fn when_full(&self) -> WhenFull {
        WhenFull::DropNewest
    }

    fn start(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let host = rampart_sensor::hostname();
        let engine = NetworkEngine::start(self.config.clone(), None, &host)
            .map_err(|e| StageError::new(format!("network: {e}")))?;
        tracing::info!(
            attached = ?engine.probe().map(|p| p.attached().to_vec()),
            "network flow table running"
        );
        self.engine = Some(engine);
        Ok(())
    }

    fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        for r in &batch.records {
            match r {
                Record::Event(ev) => engine.observe_event(ev),
                Record::Alert(a) if a.tags.iter().any(|t| t == rampart_detect::CAPTURE_TAG) => {
                    let cgroup_id = a.event.container.container().map_or(0, |c| c.cgroup_id);
                    engine.capture_around(&a.id, cgroup_id, a.ts_ns);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, ctx: &StageContext) -> Result<(), StageError> {
        let Some(engine) = self.engine.as_mut() else {
            return Ok(());
        };
        if self.last_poll.elapsed() < self.poll_every {
            return Ok(());
        }
        self.last_poll = Instant::now();
        let read_before = engine.stats.flows_read;
        let alerts = engine.poll(now_ns).map_err(StageError::new)?;
        self.poll_every = if engine.stats.flows_read - read_before > BUSY_FLOWS {
            POLL_BUSY
        } else {
            POLL_EVERY
        };
        for a in alerts {
            ctx.emit_alert(a);
        }
        // Written when something changed, and never so often that writing a big
        // table becomes a real share of the time.
        if self.last_save.elapsed() >= self.save_every
            && engine.stats.flows_read != self.saved_at_reads
        {
            let started = Instant::now();
            engine.save_flows().map_err(StageError::new)?;
            self.last_save = Instant::now();
            self.save_every = SAVE_EVERY.max(started.elapsed() * SAVE_SHARE);
            self.saved_at_reads = engine.stats.flows_read;
        }
        Ok(())
    }

    fn reload(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        if let Some(engine) = self.engine.as_mut() {
            let n = engine.reload_baselines().map_err(StageError::new)?;
            tracing::info!(workloads = n, "network baselines reloaded");
        }
        Ok(())
    }

    fn stop(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        if let Some(engine) = self.engine.as_ref() {
            engine.save_flows().map_err(StageError::new)?;
            engine.save_baselines();
        }
        Ok(())
    }
}
