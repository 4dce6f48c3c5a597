//! The responder: alerts in, actions and audit records out. Applies the policy in
//! force (scope, selectors, stateful substitution), rate limits per container and
//! globally, and records every action taken or simulated. Manual responses from an
//! operator go through the same path, with the operator as the actor.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rampart_event::Alert;

use crate::audit::{Actor, AuditRecord, AuditResult, AUDIT_SOURCE};
use crate::policy::{ActionSpec, Limit, PolicyStore};
use crate::toolbox::Toolbox;
use crate::{ActionKind, Mode, RespondError, Target};

/// Sliding-window counts of actions.
#[derive(Default)]
struct Limiter {
    per_container: HashMap<String, VecDeque<Instant>>,
    global: VecDeque<Instant>,
}

fn admit(q: &mut VecDeque<Instant>, l: Limit, now: Instant) -> bool {
    let window = Duration::from_secs(u64::from(l.seconds.get()));
    while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
        q.pop_front();
    }
    q.len() < l.count.get() as usize
}

impl Limiter {
    /// Takes one action's slot, or says which limit is reached.
    fn take(&mut self, container: &str, per: Limit, global: Limit) -> Result<(), String> {
        let now = Instant::now();
        let q = self.per_container.entry(container.to_string()).or_default();
        if !admit(q, per, now) {
            return Err(format!(
                "rate limit: {} actions per {} s on this container",
                per.count, per.seconds
            ));
        }
        if !admit(&mut self.global, global, now) {
            return Err(format!(
                "rate limit: {} actions per {} s in all",
                global.count, global.seconds
            ));
        }
        q.push_back(now);
        self.global.push_back(now);
        // Forget containers with nothing in their window.
        if self.per_container.len() > 4096 {
            self.per_container.retain(|_, q| !q.is_empty());
        }
        Ok(())
    }
}

/// An action decided (by the policy or an operator) and not yet carried out.
#[derive(Debug, Clone)]
pub struct Pending {
    pub spec: ActionSpec,
    pub target: Target,
    pub mode: Mode,
    pub undo: bool,
    pub actor: Actor,
    pub rule: Option<String>,
    pub alert_id: Option<String>,
    pub trigger_ts_ns: Option<u64>,
    pub reason: String,
}

impl Pending {
    /// Takes seconds (a Docker stop or restart waits out the grace period): not to be
    /// run on the pipeline's thread.
    pub fn is_slow(&self) -> bool {
        self.mode == Mode::Enforce
            && matches!(self.spec.kind(), ActionKind::Stop | ActionKind::Restart)
    }

    fn record(&self, result: AuditResult, detail: String) -> AuditRecord {
        AuditRecord {
            ts_ns: crate::wall_ns(),
            action: self.spec.kind(),
            mode: self.mode,
            actor: self.actor.clone(),
            target: self.target.clone(),
            rule: self.rule.clone(),
            alert_id: self.alert_id.clone(),
            reason: self.reason.clone(),
            result,
            detail,
            method: String::new(),
            pids: Vec::new(),
            trigger_ts_ns: self.trigger_ts_ns,
            completed_ns: None,
        }
    }
}

/// An operator's request (`rampart respond …`).
#[derive(Debug, Clone)]
pub struct ManualRequest {
    pub action: ActionSpec,
    pub target: Target,
    /// Undo instead (unfreeze, release); kill and stop cannot be undone.
    pub undo: bool,
    pub mode: Mode,
    /// Who: login name or uid.
    pub operator: String,
    pub reason: String,
}

pub struct Responder {
    policy: Arc<PolicyStore>,
    toolbox: Arc<Toolbox>,
    limiter: Mutex<Limiter>,
    /// Rules marked `action: kill` that the kernel cannot check: their alerts kill
    /// the process from here.
    rule_kills: Mutex<std::collections::HashSet<String>>,
    /// Rules marked `action: kill` that the kernel enforces: their alerts are
    /// audited as kills already done.
    kernel_kills: Mutex<std::collections::HashSet<String>>,
}

impl Responder {
    pub fn new(policy: Arc<PolicyStore>, toolbox: Arc<Toolbox>) -> Self {
        Self {
            policy,
            toolbox,
            limiter: Mutex::new(Limiter::default()),
            rule_kills: Mutex::new(Default::default()),
            kernel_kills: Mutex::new(Default::default()),
        }
    }

    /// The rules marked `action: kill` whose kill the kernel carries out on the
    /// syscall's own hook: their alerts become audit records of that kill.
    pub fn set_kernel_kills(&self, rules: impl IntoIterator<Item = String>) {
        if let Ok(mut k) = self.kernel_kills.lock() {
            *k = rules.into_iter().collect();
        }
    }

    /// The audit record of a kill the kernel did for `alert`'s rule: done when the
    /// process is gone (or a zombie), failed when it still runs (the kernel's entry
    /// did not match what the rule saw).
    fn kernel_kill_record(&self, alert: &Alert, target: &Target) -> AuditRecord {
        let gone = target
            .process
            .as_ref()
            .is_none_or(crate::target::process_gone);
        AuditRecord {
            ts_ns: crate::wall_ns(),
            action: ActionKind::Kill,
            mode: Mode::Enforce,
            actor: Actor::Policy(format!("rule {:?} action: kill", alert.rule)),
            target: target.clone(),
            rule: Some(alert.rule.clone()),
            alert_id: Some(alert.id.clone()),
            reason: String::new(),
            result: if gone {
                AuditResult::Done
            } else {
                AuditResult::Failed
            },
            detail: if gone {
                format!(
                    "killed in the kernel before its syscall returned: {}",
                    target.display()
                )
            } else {
                format!(
                    "the kernel's kill did not match (a syscall its hook does not see): the process still runs in {}; killing it from user space",
                    target.display()
                )
            },
            method: "kernel".into(),
            pids: target.process.iter().map(|p| p.pid).collect(),
            trigger_ts_ns: Some(alert.event.ts_ns),
            completed_ns: None,
        }
    }

    /// The rules whose alerts kill their process (rules marked `action: kill` that
    /// were not compiled to the kernel).
    pub fn set_rule_kills(&self, rules: impl IntoIterator<Item = String>) {
        if let Ok(mut k) = self.rule_kills.lock() {
            *k = rules.into_iter().collect();
        }
    }

    pub fn policy(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    pub fn toolbox(&self) -> &Arc<Toolbox> {
        &self.toolbox
    }

    /// Responds to one alert as the policy says. Returns the audit records of the
    /// actions taken or simulated (none in alert mode, none for the audit alerts
    /// themselves, none for the host's processes or containers out of scope).
    pub fn on_alert(&self, alert: &Alert) -> Vec<AuditRecord> {
        let (mut out, pending) = self.plan(alert);
        out.extend(pending.into_iter().map(|p| self.execute(p)));
        out
    }

    /// The first half of [`Responder::on_alert`]: what the policy decides, rate
    /// limits applied (their refusals are the records returned at once), the actions
    /// not yet carried out, so a caller can run the slow ones ([`Pending::is_slow`])
    /// off its own thread.
    pub fn plan(&self, alert: &Alert) -> (Vec<AuditRecord>, Vec<Pending>) {
        let mut done = Vec::new();
        let mut pending = Vec::new();
        if alert.source == AUDIT_SOURCE {
            return (done, pending);
        }
        let Some(target) = Target::from_event(&alert.event) else {
            return (done, pending);
        };
        // A process the kernel's entry did not stop (a 32-bit or io_uring open, say,
        // which the kernel-side kill does not see) is killed from user space instead.
        let mut kernel_missed = false;
        if self
            .kernel_kills
            .lock()
            .is_ok_and(|k| k.contains(&alert.rule))
        {
            let rec = self.kernel_kill_record(alert, &target);
            kernel_missed = matches!(rec.result, AuditResult::Failed);
            done.push(rec);
        }
        let policy = self.policy.current();
        let limits = policy.file.rate_limit.clone();
        let mut decisions = policy.decide(alert, &target);
        if kernel_missed
            || self
                .rule_kills
                .lock()
                .is_ok_and(|k| k.contains(&alert.rule))
        {
            decisions.push(crate::policy::Decision {
                response: format!("rule {:?} action: kill", alert.rule),
                action: ActionSpec::Kill { tree: false },
                mode: Mode::Enforce,
                substituted: None,
            });
        }
        for d in decisions {
            if d.mode == Mode::Alert {
                continue;
            }
            let admitted = self
                .limiter
                .lock()
                .map_err(|_| "rate limiter poisoned".to_string())
                .and_then(|mut l| {
                    l.take(&target.container_id, limits.per_container, limits.global)
                });
            let p = Pending {
                spec: d.action.clone(),
                target: target.clone(),
                mode: d.mode,
                undo: false,
                actor: Actor::Policy(d.response.clone()),
                rule: Some(alert.rule.clone()),
                alert_id: Some(alert.id.clone()),
                trigger_ts_ns: Some(alert.ts_ns),
                reason: d.substituted.clone().unwrap_or_default(),
            };
            match admitted {
                Ok(()) => pending.push(p),
                Err(why) => {
                    let mut rec = p.record(AuditResult::RateLimited, why);
                    rec.ts_ns = crate::wall_ns();
                    done.push(rec);
                }
            }
        }
        (done, pending)
    }

    /// Carries out a planned action and records it.
    pub fn execute(&self, p: Pending) -> AuditRecord {
        let mut rec = self.run(&p.spec, &p.target, p.mode, p.undo, p.actor.clone());
        rec.rule = p.rule;
        rec.alert_id = p.alert_id;
        rec.trigger_ts_ns = p.trigger_ts_ns;
        if !p.reason.is_empty() {
            rec.reason = p.reason;
        }
        tracing::info!(
            action = rec.action.as_str(),
            result = ?rec.result,
            container = %p.target.display(),
            rule = rec.rule.as_deref().unwrap_or(""),
            "response: {}",
            rec.detail
        );
        rec
    }

    /// Lifts the kernel rules (quarantine, blocks, exec denial) of cgroups that no
    /// longer exist: their container is gone, and a new container never reuses a
    /// cgroup id. Returns the ids released. Does nothing (and loads nothing) when
    /// rampart has never pinned anything.
    pub fn sweep_gone(&self) -> Result<Vec<u64>, RespondError> {
        if !std::path::Path::new(rampart_bpf::response::PIN_ROOT)
            .join("maps")
            .is_dir()
        {
            return Ok(Vec::new());
        }
        let mut guard = self.toolbox.guard()?;
        let guarded = guard.guarded()?;
        if guarded.is_empty() {
            return Ok(Vec::new());
        }
        let Some(live) = crate::target::live_cgroup_ids() else {
            return Ok(Vec::new());
        };
        let mut released = Vec::new();
        for g in guarded {
            if live.contains(&g.cgroup_id) {
                continue;
            }
            if g.network {
                guard.release_network(g.cgroup_id)?;
            }
            if g.exec {
                guard.release_exec(g.cgroup_id)?;
            }
            tracing::info!(
                cgroup = g.cgroup_id,
                "response: kernel rules of a container that is gone released"
            );
            released.push(g.cgroup_id);
        }
        Ok(released)
    }

    /// Carries out an operator's request (no policy, no rate limit: the operator is
    /// accountable, and the record names them).
    pub fn manual(&self, req: &ManualRequest) -> AuditRecord {
        let mut rec = self.run(
            &req.action,
            &req.target,
            req.mode,
            req.undo,
            Actor::Operator(req.operator.clone()),
        );
        rec.reason = req.reason.clone();
        rec
    }

    fn run(
        &self,
        spec: &ActionSpec,
        target: &Target,
        mode: Mode,
        undo: bool,
        actor: Actor,
    ) -> AuditRecord {
        let ts = crate::wall_ns();
        let action = spec.build(&self.toolbox);
        let res = if undo {
            action.undo(target, mode)
        } else {
            action.apply(target, mode)
        };
        match res {
            Ok(o) => AuditRecord::from_outcome(&o, actor, target, ts),
            Err(e) => AuditRecord {
                ts_ns: ts,
                action: spec.kind(),
                mode,
                actor,
                target: target.clone(),
                rule: None,
                alert_id: None,
                reason: String::new(),
                result: if matches!(e, RespondError::Refused(_)) {
                    AuditResult::Refused
                } else {
                    AuditResult::Failed
                },
                detail: e.to_string(),
                method: String::new(),
                pids: Vec::new(),
                trigger_ts_ns: None,
                completed_ns: None,
            },
        }
    }

    /// Undoes everything rampart put in place in the kernel (quarantines, blocks,
    /// exec denials) on every container: `rampart respond release --all`.
    pub fn release_all(&self) -> Result<rampart_bpf::response::Released, RespondError> {
        Ok(self.toolbox.guard()?.release_all()?)
    }
}
