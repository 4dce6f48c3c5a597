//! Response as a stage: every alert through the response policy; the actions taken or
//! simulated come back as audit alerts (`source: "response"`), which reach the alert
//! outputs and the recorder and are never responded to themselves; the policy is
//! reloaded on SIGHUP (a refused file keeps the policy in force).
//!
//! Docker stop and restart wait out a grace period of seconds: they run on a worker
//! thread of the stage's own, so the next alert is answered meanwhile; their audit
//! alerts follow on the next tick. Containers that stop or die have their kernel rules
//! (quarantine, blocks, exec denial) lifted, once their cgroup is gone.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rampart_event::{Alert, Event, LifecycleAction};
use rampart_respond::{AuditRecord, Pending, PolicyStore, Responder, Toolbox};

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

/// After a container goes, its cgroup is removed shortly after: look again then.
const SWEEP_AFTER_NS: [u64; 3] = [0, 2_000_000_000, 10_000_000_000];

pub struct ResponseStage {
    responder: Arc<Responder>,
    slow_tx: Option<Sender<(Pending, Arc<Alert>)>>,
    /// Audit records finished elsewhere (the slow worker, the control socket), with
    /// the event they are about.
    done_rx: Receiver<(AuditRecord, Event)>,
    done_tx: Sender<(AuditRecord, Event)>,
    worker: Option<JoinHandle<()>>,
    /// Wall-clock times (ns) at which to sweep kernel rules of vanished cgroups.
    sweeps: Vec<u64>,
}

impl ResponseStage {
    pub fn new(policy: Arc<PolicyStore>, toolbox: Arc<Toolbox>) -> Self {
        Self::with_responder(Arc::new(Responder::new(policy, toolbox)))
    }

    /// A stage around a responder shared with others (the control socket).
    pub fn with_responder(responder: Arc<Responder>) -> Self {
        let (done_tx, done_rx) = mpsc::channel();
        Self {
            responder,
            slow_tx: None,
            done_rx,
            done_tx,
            worker: None,
            sweeps: Vec::new(),
        }
    }

    pub fn responder(&self) -> &Arc<Responder> {
        &self.responder
    }

    /// Where records of actions taken outside the stage (manual responses through
    /// the control socket) go, to be raised as audit alerts on the next tick.
    pub fn audit_sender(&self) -> Sender<(AuditRecord, Event)> {
        self.done_tx.clone()
    }

    /// Hands a slow action to the worker (started on first use).
    fn run_slow(&mut self, p: Pending, alert: Arc<Alert>) -> Result<(), StageError> {
        if self.slow_tx.is_none() {
            let (tx, rx) = mpsc::channel::<(Pending, Arc<Alert>)>();
            let responder = self.responder.clone();
            let done = self.done_tx.clone();
            let worker = std::thread::Builder::new()
                .name("response-slow".into())
                .spawn(move || {
                    for (p, alert) in rx {
                        let _ = done.send((responder.execute(p), alert.event.clone()));
                    }
                })
                .map_err(StageError::new)?;
            self.slow_tx = Some(tx);
            self.worker = Some(worker);
        }
        if let Some(tx) = &self.slow_tx {
            tx.send((p, alert))
                .map_err(|_| StageError::new("the response worker is gone"))?;
        }
        Ok(())
    }

    fn emit_done(&self, ctx: &StageContext) {
        for (audit, event) in self.done_rx.try_iter() {
            ctx.emit_alert(audit.to_alert(event));
        }
    }

    fn sweep_due(&mut self, now_ns: u64) {
        if !self.sweeps.iter().any(|t| *t <= now_ns) {
            return;
        }
        self.sweeps.retain(|t| *t > now_ns);
        if let Err(e) = self.responder.sweep_gone() {
            tracing::warn!("response: releasing the kernel rules of gone containers: {e}");
        }
    }
}

impl Stage for ResponseStage {
    fn name(&self) -> &str {
        "response"
    }

    fn subscription(&self) -> Subscription {
        Subscription {
            events: false,
            alerts: true,
            lifecycle: true,
        }
    }

    /// An alert the policy would act on must not be dropped; alerts are few.
    fn when_full(&self) -> WhenFull {
        WhenFull::Block
    }

    fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError> {
        if batch.shed_before > 0 {
            tracing::warn!(
                missed = batch.shed_before,
                "response missed alerts (queue full)"
            );
        }
        for record in &batch.records {
            match record {
                Record::Alert(alert) => {
                    let (done, pending) = self.responder.plan(alert);
                    for audit in done {
                        ctx.emit_alert(audit.to_alert(alert.event.clone()));
                    }
                    for p in pending {
                        if p.is_slow() {
                            self.run_slow(p, alert.clone())?;
                        } else {
                            let audit = self.responder.execute(p);
                            ctx.emit_alert(audit.to_alert(alert.event.clone()));
                        }
                    }
                }
                Record::Lifecycle(l) if !matches!(l.action, LifecycleAction::Start) => {
                    let now = rampart_event::wall_ns();
                    self.sweeps.extend(SWEEP_AFTER_NS.iter().map(|d| now + d));
                }
                _ => {}
            }
        }
        self.sweep_due(rampart_event::wall_ns());
        self.emit_done(ctx);
        Ok(())
    }

    fn flush(&mut self, now_ns: u64, ctx: &StageContext) -> Result<(), StageError> {
        self.sweep_due(now_ns);
        self.emit_done(ctx);
        Ok(())
    }

    fn reload(&mut self, _ctx: &StageContext) -> Result<(), StageError> {
        let p = self.responder.policy().reload().map_err(|e| {
            StageError::new(format!(
                "response policy reload refused, the policy in force stays: {e}"
            ))
        })?;
        tracing::info!(
            responses = p.file.responses.len(),
            "response policy reloaded"
        );
        Ok(())
    }

    /// Waits for the slow actions under way, so their audit alerts are not lost.
    fn stop(&mut self, ctx: &StageContext) -> Result<(), StageError> {
        self.slow_tx = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        self.emit_done(ctx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    use rampart_event::{Alert, Container, Event, Payload, Priority, Workload};
    use rampart_respond::policy::Policy;

    use super::*;
    use crate::{Controls, PipelineBuilder};

    /// Raises one alert per event, as detection would.
    struct Raiser;
    impl Stage for Raiser {
        fn name(&self) -> &str {
            "raiser"
        }
        fn subscription(&self) -> Subscription {
            Subscription::EVENTS
        }
        fn handle(&mut self, batch: &Batch, ctx: &StageContext) -> Result<(), StageError> {
            for r in &batch.records {
                if let Record::Event(ev) = r {
                    ctx.emit_alert(Alert {
                        id: format!("alert-{}", ev.seq),
                        ts_ns: ev.ts_ns,
                        first_ts_ns: ev.ts_ns,
                        count: 1,
                        rule: "Crypto miner".into(),
                        priority: Priority::Critical,
                        mitre: vec![],
                        tags: vec![],
                        message: "m".into(),
                        output_fields: Default::default(),
                        source: "syscall".into(),
                        event: (**ev).clone(),
                        retro: false,
                    });
                }
            }
            Ok(())
        }
    }

    #[test]
    fn alerts_become_audited_responses_in_the_pipeline() {
        let policy = Policy::parse(
            "scope: {names: [\"web-*\"]}\nresponses:\n  - {name: freeze-miners, when: {rules: [\"Crypto*\"]}, action: freeze, mode: dry-run}\n",
            std::path::Path::new("policy.yaml"),
        )
        .unwrap();
        let seen = crate::stages::AlertLog::new();
        let pipeline = PipelineBuilder::new()
            .stage(Raiser)
            .stage(ResponseStage::new(
                Arc::new(PolicyStore::new(policy)),
                Toolbox::new(),
            ))
            .stage(seen.stage())
            .start()
            .unwrap();
        let (tx, mut rx) = mpsc::channel();
        for (seq, name) in [(1, "web-1"), (2, "db-1")] {
            tx.send(Event {
                schema: 1,
                ts_ns: crate::wall_ns(),
                host: "h".into(),
                seq,
                process: None,
                container: Arc::new(Workload::Container(Container {
                    id: format!("{seq:064x}"),
                    name: name.into(),
                    ..Container::default()
                })),
                compat_syscall: false,
                payload: Payload::Exec {
                    filename: "/x".into(),
                    interpreter: None,
                    from_memfd: false,
                    from_deleted: false,
                },
            })
            .unwrap();
        }
        let controls = Controls {
            deadline: Some(Instant::now() + Duration::from_millis(1500)),
            ..Controls::default()
        };
        pipeline.run(&mut rx, &controls);
        let seen = seen.alerts();
        let audits: Vec<&Arc<Alert>> = seen.iter().filter(|a| a.source == "response").collect();
        // web-1 is in scope (simulated freeze), db-1 is not; the audit alert is not
        // responded to again.
        assert_eq!(audits.len(), 1, "{seen:#?}");
        let a = audits[0];
        assert_eq!(a.event.seq, 1);
        assert_eq!(
            a.output_fields.get("response.result"),
            Some(&serde_json::json!("simulated"))
        );
        assert_eq!(
            a.output_fields.get("response.alert_id"),
            Some(&serde_json::json!("alert-1"))
        );
        assert!(a.message.contains("would freeze"), "{}", a.message);
    }
}
