//! Kubernetes admission control for Rampart: the AdmissionReview v1 types
//! ([`review`]), the pod policy and its evaluation ([`policy`]), what Rampart knows of
//! image scans ([`scans`]), a decision as an audit record and an alert, the same
//! policy over manifest files for CI ([`check_manifests`]), and the webhook served
//! over TLS ([`server`]), which `rampart central` runs.
//!
//! A `ValidatingWebhookConfiguration` points at `/validate`; `/mutate` (for a
//! `MutatingWebhookConfiguration`) answers the same and also returns the JSON Patch
//! that adds the policy's default limits. `failurePolicy` is the cluster's choice,
//! documented in deploy/kubernetes/README.md: `Ignore` (the shipped default) admits
//! pods while Rampart is down, so an outage never blocks the cluster by surprise;
//! `Fail` enforces the policy at the price of blocking pod creation while it is down.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod policy;
pub mod review;
pub mod scans;
pub mod server;

use base64::Engine;
use rampart_event::{
    AdmissionRequest, AuditRecord, Event, Payload, Priority, Workload, SCHEMA_VERSION,
};
use serde_json::Value;

pub use policy::{Action, AdmissionPolicy, Decision, Mode, Violation};
pub use review::{AdmissionResponse, AdmissionReview};
pub use scans::{NoScans, ScanFacts, ScanReportDir};

#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    #[error("not an AdmissionReview: {0}")]
    Review(String),
    #[error("{origin}: document {document}: {message}")]
    Manifest {
        origin: String,
        document: usize,
        message: String,
    },
    #[error(transparent)]
    Policy(#[from] policy::PolicyError),
}

/// Answers one review. `mutate` adds the policy's patch (for the mutating endpoint).
/// The decision is `None` when the request was not one the policy looks at (no
/// object, a DELETE).
pub fn answer_review(
    policy: &AdmissionPolicy,
    scans: &dyn ScanFacts,
    review: &AdmissionReview,
    mutate: bool,
    now_ns: u64,
) -> Result<(AdmissionReview, Option<Decision>), AdmissionError> {
    let req = review
        .request
        .as_ref()
        .ok_or_else(|| AdmissionError::Review("no request".into()))?;
    if review.api_version != review::API_VERSION {
        return Err(AdmissionError::Review(format!(
            "apiVersion {:?}, expected {}",
            review.api_version,
            review::API_VERSION
        )));
    }
    let allow = |uid: &str| AdmissionResponse {
        uid: uid.to_string(),
        allowed: true,
        ..Default::default()
    };
    if req.object.is_null() || req.operation == "DELETE" || req.operation == "CONNECT" {
        return Ok((AdmissionReview::answer(allow(&req.uid)), None));
    }
    let decision = policy.evaluate(&req.kind.kind, &req.namespace, &req.object, scans, now_ns);
    let mut response = allow(&req.uid);
    response.allowed = decision.allowed;
    response.warnings = decision.warning_texts();
    if !decision.allowed {
        response.status = Some(review::Status {
            code: 403,
            message: decision.denial_message(),
        });
    } else if mutate && !decision.patch.is_empty() {
        let patch = serde_json::to_vec(&decision.patch).unwrap_or_default();
        response.patch = Some(base64::engine::general_purpose::STANDARD.encode(patch));
        response.patch_type = Some("JSONPatch".into());
    }
    Ok((AdmissionReview::answer(response), Some(decision)))
}

/// The audit record of a decision (`admission.allow`, `admission.warn`,
/// `admission.deny`), by the requesting user.
pub fn audit_record(d: &Decision, user: &str, origin: &str, now_ns: u64) -> AuditRecord {
    let action = if !d.allowed {
        "admission.deny"
    } else if !d.warnings.is_empty() {
        "admission.warn"
    } else {
        "admission.allow"
    };
    AuditRecord {
        id: rampart_event::audit_id(now_ns),
        ts_ns: now_ns,
        origin: origin.into(),
        actor: user.into(),
        action: action.into(),
        target: format!("{}/{}/{}", d.kind, d.namespace, d.name),
        detail: serde_json::to_string(d).unwrap_or_default(),
    }
}

/// Who asked for an admission: the API server's `userInfo.username` and the
/// operation (`CREATE`, `UPDATE`); both empty for a manifest checked in CI.
#[derive(Debug, Clone, Copy, Default)]
pub struct Requester<'a> {
    pub user: &'a str,
    pub operation: &'a str,
}

/// The event of a decision: what was asked, by whom, and which clauses answered.
/// No process and no container exist yet: the workload is the host's (`cgroup_id`
/// 0), and the pod to be is named in the payload.
pub fn event(d: &Decision, by: Requester<'_>, host: &str, now_ns: u64) -> Event {
    let decision = if !d.allowed {
        "deny"
    } else if !d.warnings.is_empty() {
        "warn"
    } else {
        "allow"
    };
    let clauses = |v: &[Violation]| -> Vec<String> {
        let mut c: Vec<String> = Vec::new();
        for x in v {
            if !c.contains(&x.clause) {
                c.push(x.clause.clone());
            }
        }
        c
    };
    Event {
        schema: SCHEMA_VERSION,
        ts_ns: now_ns,
        host: host.into(),
        seq: 0,
        process: None,
        container: std::sync::Arc::new(Workload::Host { cgroup_id: 0 }),
        compat_syscall: false,
        payload: Payload::Admission(AdmissionRequest {
            kind: d.kind.clone(),
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            user: by.user.into(),
            operation: by.operation.into(),
            decision: decision.into(),
            denied_by: clauses(&d.denials),
            warned_by: clauses(&d.warnings),
            images: d.images.clone(),
        }),
    }
}

/// The alert shown for a decision that denied or warned (a clean admission is only
/// audited), on the decision's own [`event`].
pub fn alert(
    d: &Decision,
    by: Requester<'_>,
    host: &str,
    now_ns: u64,
) -> Option<rampart_event::Alert> {
    if d.allowed && d.warnings.is_empty() {
        return None;
    }
    let (rule, priority, list) = if d.allowed {
        ("Admission policy warning", Priority::Notice, &d.warnings)
    } else {
        ("Admission denied", Priority::Warning, &d.denials)
    };
    let mut output_fields = std::collections::BTreeMap::new();
    output_fields.insert("k8s.ns.name".into(), Value::from(d.namespace.clone()));
    output_fields.insert("k8s.workload.kind".into(), Value::from(d.kind.clone()));
    output_fields.insert("k8s.workload.name".into(), Value::from(d.name.clone()));
    output_fields.insert("ka.user.name".into(), Value::from(by.user));
    output_fields.insert("ka.verb".into(), Value::from(by.operation.to_lowercase()));
    output_fields.insert("container.images".into(), Value::from(d.images.clone()));
    let clauses: Vec<&str> = list.iter().map(|v| v.clause.as_str()).collect();
    output_fields.insert("admission.clauses".into(), Value::from(clauses));
    let message = if d.allowed {
        d.warning_texts().join("; ")
    } else {
        d.denial_message()
    };
    let who = if by.user.is_empty() {
        String::new()
    } else {
        format!(" (user={} operation={})", by.user, by.operation)
    };
    Some(rampart_event::Alert {
        id: format!("admission-{}", rampart_event::audit_id(now_ns)),
        ts_ns: now_ns,
        first_ts_ns: now_ns,
        count: 1,
        rule: rule.into(),
        priority,
        mitre: vec!["T1610".into()],
        tags: vec!["admission".into(), "kubernetes".into()],
        message: format!("{message}{who}"),
        output_fields,
        source: "admission".into(),
        event: event(d, by, host, now_ns),
        retro: false,
    })
}

/// Checks every object in a multi-document YAML manifest (`kind: List` items too)
/// as the webhook would; objects without pods are skipped.
pub fn check_manifests(
    policy: &AdmissionPolicy,
    scans: &dyn ScanFacts,
    text: &str,
    origin: &str,
    now_ns: u64,
) -> Result<Vec<Decision>, AdmissionError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| AdmissionError::Manifest {
            origin: origin.to_string(),
            document: i + 1,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let items: Vec<Value> = if value["kind"] == "List" {
            value["items"].as_array().cloned().unwrap_or_default()
        } else {
            vec![value]
        };
        for item in items {
            let kind = item["kind"]
                .as_str()
                .ok_or_else(|| AdmissionError::Manifest {
                    origin: origin.to_string(),
                    document: i + 1,
                    message: "no kind".into(),
                })?;
            if policy::pod_spec_pointer(kind).is_some() {
                let ns = item["metadata"]["namespace"].as_str().unwrap_or("default");
                out.push(policy.evaluate(kind, ns, &item, scans, now_ns));
            }
        }
    }
    Ok(out)
}
