//! The record every action taken or simulated leaves: what, on which container and
//! process, why (response, rule, alert id), who (policy or operator), when, and the
//! result. It becomes an [`Alert`] with `source: "response"` so it reaches the alert
//! outputs and the flight recorder like any other alert.

use std::collections::BTreeMap;

use rampart_event::{Alert, Event, Priority};
use serde::Serialize;

use crate::action::{ActionKind, Mode, Outcome};
use crate::Target;

/// `source` of the alerts audit records become; the responder ignores them.
pub const AUDIT_SOURCE: &str = "response";

/// Who asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "name", rename_all = "snake_case")]
pub enum Actor {
    /// A response of the policy, by name.
    Policy(String),
    /// A person, by the name the CLI passes (login name, uid).
    Operator(String),
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// Enforced and confirmed.
    Done,
    /// Dry run: checked, not done.
    Simulated,
    /// Alert mode: nothing done.
    AlertOnly,
    /// Over a rate limit: not done.
    RateLimited,
    /// The safety rules forbade it.
    Refused,
    /// Tried and failed.
    Failed,
}

/// One action taken or simulated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    /// When it was decided, ns since the epoch.
    pub ts_ns: u64,
    pub action: ActionKind,
    pub mode: Mode,
    pub actor: Actor,
    pub target: Target,
    /// The rule whose alert triggered it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_id: Option<String>,
    /// The operator's reason, or why the action differs from the policy's.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    pub result: AuditResult,
    pub detail: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    /// The triggering event's time, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger_ts_ns: Option<u64>,
    /// When the effect was confirmed (enforced actions).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_ns: Option<u64>,
}

impl AuditRecord {
    pub(crate) fn from_outcome(o: &Outcome, actor: Actor, target: &Target, ts_ns: u64) -> Self {
        let result = match o.mode {
            Mode::Enforce => AuditResult::Done,
            Mode::DryRun => AuditResult::Simulated,
            Mode::Alert => AuditResult::AlertOnly,
        };
        Self {
            ts_ns,
            action: o.kind,
            mode: o.mode,
            actor,
            target: target.clone(),
            rule: None,
            alert_id: None,
            reason: String::new(),
            result,
            detail: o.detail.clone(),
            method: o.method.clone(),
            pids: o.pids.clone(),
            trigger_ts_ns: None,
            completed_ns: o.performed.then_some(o.completed_ns),
        }
    }

    /// Trigger to completion, when both are known.
    pub fn latency_ns(&self) -> Option<u64> {
        Some(self.completed_ns?.saturating_sub(self.trigger_ts_ns?))
    }

    /// The record as an alert (`source: "response"`), carrying `event`: the event
    /// that triggered it, with its container and process.
    /// The fleet's audit record of this action (what central stores), from `origin`
    /// (the node's name).
    pub fn to_record(&self, origin: &str) -> rampart_event::AuditRecord {
        rampart_event::AuditRecord {
            id: rampart_event::audit_id(self.ts_ns),
            ts_ns: self.ts_ns,
            origin: origin.to_string(),
            actor: match &self.actor {
                Actor::Policy(n) => format!("policy:{n}"),
                Actor::Operator(n) => format!("operator:{n}"),
            },
            action: format!("response.{}", self.action.as_str()),
            target: self.target.display(),
            detail: serde_json::to_string(self).unwrap_or_default(),
        }
    }

    pub fn to_alert(&self, event: Event) -> Alert {
        let priority = match self.result {
            AuditResult::Done => Priority::Warning,
            AuditResult::Failed | AuditResult::Refused => Priority::Error,
            _ => Priority::Notice,
        };
        let who = match &self.actor {
            Actor::Policy(n) => format!("policy response {n:?}"),
            Actor::Operator(n) => format!("operator {n}"),
        };
        let message = format!(
            "response {} {} on {}: {} ({who}{}{})",
            self.action.as_str(),
            serde_json::to_value(self.result)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            self.target.display(),
            self.detail,
            self.rule
                .as_deref()
                .map(|r| format!(", rule {r:?}"))
                .unwrap_or_default(),
            if self.reason.is_empty() {
                String::new()
            } else {
                format!(", {}", self.reason)
            },
        );
        let mut output_fields = BTreeMap::new();
        if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(self) {
            for (k, v) in map {
                output_fields.insert(format!("response.{k}"), v);
            }
        }
        Alert {
            id: rampart_event::audit_id(self.ts_ns),
            ts_ns: self.ts_ns,
            first_ts_ns: self.ts_ns,
            count: 1,
            rule: format!("Response {}", self.action.as_str()),
            priority,
            mitre: Vec::new(),
            tags: vec![
                "response".into(),
                format!("response.{}", self.action.as_str()),
            ],
            message,
            output_fields,
            source: AUDIT_SOURCE.into(),
            event,
            retro: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_record_names_the_action_the_actor_and_the_target() {
        let a = AuditRecord {
            ts_ns: 7,
            action: ActionKind::Freeze,
            mode: Mode::Enforce,
            actor: Actor::Policy("db-freeze".into()),
            target: Target {
                container_id: "0123456789abcdef".into(),
                container_name: "db".into(),
                ..Target::default()
            },
            rule: Some("Crypto miner".into()),
            alert_id: Some("a1".into()),
            reason: String::new(),
            result: AuditResult::Done,
            detail: "frozen".into(),
            method: String::new(),
            pids: Vec::new(),
            trigger_ts_ns: None,
            completed_ns: None,
        };
        let r = a.to_record("node-1");
        assert_eq!(
            (
                r.action.as_str(),
                r.actor.as_str(),
                r.origin.as_str(),
                r.ts_ns
            ),
            ("response.freeze", "policy:db-freeze", "node-1", 7)
        );
        assert!(r.target.contains("db"), "{}", r.target);
        let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
        assert_eq!(detail["alert_id"], "a1");
    }
}
