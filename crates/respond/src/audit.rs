//! The record every action taken or simulated leaves: what, on which container and
//! process, why (response, rule, alert id), who (policy or operator), when, and the
//! result. It becomes an [`Alert`] with `source: "response"` so it reaches the alert
//! outputs and the flight recorder like any other alert.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

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

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn audit_id(ts: u64) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let a = ts ^ 0x5851_f42d_4c95_7f2du64.wrapping_mul(n);
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a as u16) & 0xfff,
        (n >> 48) as u16 & 0xfff,
        n & 0xffff_ffff_ffff
    )
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
            id: audit_id(self.ts_ns),
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
