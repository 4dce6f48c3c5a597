//! Response as a stage: every alert through the response policy; the actions taken or
//! simulated come back as audit alerts (`source: "response"`), which reach the alert
//! outputs and the recorder and are never responded to themselves; the policy is
//! reloaded on SIGHUP (a refused file keeps the policy in force).

use std::sync::Arc;

use rampart_respond::{PolicyStore, Responder, Toolbox};

use crate::stage::{Batch, Record, Stage, StageContext, StageError, Subscription, WhenFull};

pub struct ResponseStage {
    responder: Responder,
}

impl ResponseStage {
    pub fn new(policy: Arc<PolicyStore>, toolbox: Arc<Toolbox>) -> Self {
        Self {
            responder: Responder::new(policy, toolbox),
        }
    }

    pub fn responder(&self) -> &Responder {
        &self.responder
    }
}

impl Stage for ResponseStage {
    fn name(&self) -> &str {
        "response"
    }

    fn subscription(&self) -> Subscription {
        Subscription::ALERTS
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
            if let Record::Alert(alert) = record {
                for audit in self.responder.on_alert(alert) {
                    ctx.emit_alert(audit.to_alert(alert.event.clone()));
                }
            }
        }
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
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::sync::Mutex;
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

    struct Collect(Arc<Mutex<Vec<Arc<Alert>>>>);
    impl Stage for Collect {
        fn name(&self) -> &str {
            "collect"
        }
        fn subscription(&self) -> Subscription {
            Subscription::ALERTS
        }
        fn handle(&mut self, batch: &Batch, _ctx: &StageContext) -> Result<(), StageError> {
            for r in &batch.records {
                if let Record::Alert(a) = r {
                    self.0.lock().unwrap().push(a.clone());
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
        let seen = Arc::new(Mutex::new(Vec::new()));
        let pipeline = PipelineBuilder::new()
            .stage(Raiser)
            .stage(ResponseStage::new(
                Arc::new(PolicyStore::new(policy)),
                Toolbox::new(),
            ))
            .stage(Collect(seen.clone()))
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
        let seen = seen.lock().unwrap();
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
