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
use crate::{Mode, RespondError, Target};

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
}

impl Responder {
    pub fn new(policy: Arc<PolicyStore>, toolbox: Arc<Toolbox>) -> Self {
        Self {
            policy,
            toolbox,
            limiter: Mutex::new(Limiter::default()),
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
        if alert.source == AUDIT_SOURCE {
            return Vec::new();
        }
        let Some(target) = Target::from_event(&alert.event) else {
            return Vec::new();
        };
        let policy = self.policy.current();
        let limits = policy.file.rate_limit.clone();
        let mut out = Vec::new();
        for d in policy.decide(alert, &target) {
            if d.mode == Mode::Alert {
                continue;
            }
            let ts = crate::wall_ns();
            let admitted = self
                .limiter
                .lock()
                .map_err(|_| "rate limiter poisoned".to_string())
                .and_then(|mut l| {
                    l.take(&target.container_id, limits.per_container, limits.global)
                });
            let mut rec = match admitted {
                Err(why) => AuditRecord {
                    ts_ns: ts,
                    action: d.action.kind(),
                    mode: d.mode,
                    actor: Actor::Policy(d.response.clone()),
                    target: target.clone(),
                    rule: None,
                    alert_id: None,
                    reason: String::new(),
                    result: AuditResult::RateLimited,
                    detail: why,
                    method: String::new(),
                    pids: Vec::new(),
                    trigger_ts_ns: None,
                    completed_ns: None,
                },
                Ok(()) => self.run(
                    &d.action,
                    &target,
                    d.mode,
                    false,
                    Actor::Policy(d.response.clone()),
                ),
            };
            rec.rule = Some(alert.rule.clone());
            rec.alert_id = Some(alert.id.clone());
            rec.trigger_ts_ns = Some(alert.ts_ns);
            if let Some(s) = d.substituted {
                rec.reason = s;
            }
            tracing::info!(
                action = rec.action.as_str(),
                result = ?rec.result,
                container = %target.display(),
                rule = %alert.rule,
                "response: {}",
                rec.detail
            );
            out.push(rec);
        }
        out
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
