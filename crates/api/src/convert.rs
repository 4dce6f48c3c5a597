//! Between the store's and the event crate's types and the contract's messages.

use rampart_event::{Priority, Severity};
use rampart_proto::v1 as pb;
use rampart_store::{AlertStatus, ContainerRecord, ContainerState, Cursor, StoredAlert};

use crate::core::ApiError;

/// JSON numbers past 2^53 lose digits as a protobuf `double`, so they travel as
/// strings (nanosecond times are such numbers).
const EXACT_DOUBLE: u64 = 1 << 53;

pub fn json_to_value(v: serde_json::Value) -> pbjson_types::Value {
    use pbjson_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => {
            let big = n.as_u64().is_some_and(|u| u > EXACT_DOUBLE)
                || n.as_i64().is_some_and(|i| i.unsigned_abs() > EXACT_DOUBLE);
            if big {
                Kind::StringValue(n.to_string())
            } else {
                Kind::NumberValue(n.as_f64().unwrap_or_default())
            }
        }
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(pbjson_types::ListValue {
            values: a.into_iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(object_to_struct(o)),
    };
    pbjson_types::Value { kind: Some(kind) }
}

pub fn object_to_struct(o: serde_json::Map<String, serde_json::Value>) -> pbjson_types::Struct {
    pbjson_types::Struct {
        fields: o.into_iter().map(|(k, v)| (k, json_to_value(v))).collect(),
    }
}

/// A serializable value as a `Struct` (`None` when it is not a JSON object).
pub fn to_struct<T: serde::Serialize>(v: &T) -> Option<pbjson_types::Struct> {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::Object(o)) => Some(object_to_struct(o)),
        _ => None,
    }
}

pub fn severity(s: Severity) -> pb::Severity {
    match s {
        Severity::Unknown => pb::Severity::Unspecified,
        Severity::Low => pb::Severity::Low,
        Severity::Medium => pb::Severity::Medium,
        Severity::High => pb::Severity::High,
        Severity::Critical => pb::Severity::Critical,
    }
}

pub fn severity_from(s: pb::Severity) -> Option<Severity> {
    match s {
        pb::Severity::Unspecified => None,
        pb::Severity::Low => Some(Severity::Low),
        pb::Severity::Medium => Some(Severity::Medium),
        pb::Severity::High => Some(Severity::High),
        pb::Severity::Critical => Some(Severity::Critical),
    }
}

pub fn priority(p: Priority) -> pb::Priority {
    match p {
        Priority::Emergency => pb::Priority::Emergency,
        Priority::Alert => pb::Priority::Alert,
        Priority::Critical => pb::Priority::Critical,
        Priority::Error => pb::Priority::Error,
        Priority::Warning => pb::Priority::Warning,
        Priority::Notice => pb::Priority::Notice,
        Priority::Informational => pb::Priority::Informational,
        Priority::Debug => pb::Priority::Debug,
    }
}

pub fn priority_from(p: pb::Priority) -> Option<Priority> {
    Priority::ALL.into_iter().find(|x| priority(*x) == p)
}

pub fn status(s: AlertStatus) -> pb::AlertStatus {
    match s {
        AlertStatus::Open => pb::AlertStatus::Open,
        AlertStatus::Acknowledged => pb::AlertStatus::Acknowledged,
        AlertStatus::Resolved => pb::AlertStatus::Resolved,
    }
}

pub fn status_from(s: pb::AlertStatus) -> Option<AlertStatus> {
    match s {
        pb::AlertStatus::Unspecified => None,
        pb::AlertStatus::Open => Some(AlertStatus::Open),
        pb::AlertStatus::Acknowledged => Some(AlertStatus::Acknowledged),
        pb::AlertStatus::Resolved => Some(AlertStatus::Resolved),
    }
}

/// An enum field's value, or a clear error naming the field.
pub fn enum_field<E: TryFrom<i32>>(field: &str, v: i32) -> Result<E, ApiError> {
    E::try_from(v).map_err(|_| ApiError::Invalid(format!("{field}: {v} is not a known value")))
}

pub fn container_ref(w: &rampart_event::Workload) -> Option<pb::ContainerRef> {
    let c = w.container()?;
    Some(pb::ContainerRef {
        id: c.id.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        image_digest: c.image_digest.clone(),
        pod: c.k8s.as_ref().map(|k| k.pod.clone()).unwrap_or_default(),
        namespace: c
            .k8s
            .as_ref()
            .map(|k| k.namespace.clone())
            .unwrap_or_default(),
    })
}

pub fn alert(a: &rampart_event::Alert) -> pb::Alert {
    pb::Alert {
        id: a.id.clone(),
        ts_ns: a.ts_ns,
        first_ts_ns: a.first_ts_ns,
        count: a.count,
        rule: a.rule.clone(),
        priority: priority(a.priority) as i32,
        severity: severity(a.priority.severity()) as i32,
        mitre: a.mitre.clone(),
        tags: a.tags.clone(),
        message: a.message.clone(),
        container: container_ref(&a.event.container),
        retro: a.retro,
        output_fields: to_struct(&a.output_fields),
        event: to_struct(&a.event),
        ..Default::default()
    }
}

pub fn stored_alert(s: &StoredAlert) -> pb::Alert {
    pb::Alert {
        node: s.node.clone(),
        status: status(s.status) as i32,
        updated_ns: s.updated_ns,
        comments: s
            .comments
            .iter()
            .map(|c| pb::Comment {
                ts_ns: c.ts_ns,
                author: c.author.clone(),
                text: c.text.clone(),
            })
            .collect(),
        ..alert(&s.alert)
    }
}

/// A page token is the cursor `ts_ns.id`; opaque to clients.
pub fn page_token(c: &Cursor) -> String {
    format!("{}.{}", c.ts_ns, c.id)
}

pub fn cursor(token: &str) -> Result<Cursor, ApiError> {
    let bad = || {
        ApiError::Invalid(format!(
            "page_token {token:?} is not a token this server returned"
        ))
    };
    let (ts, id) = token.split_once('.').ok_or_else(bad)?;
    Ok(Cursor {
        ts_ns: ts.parse().map_err(|_| bad())?,
        id: id.to_string(),
    })
}

pub fn container_state(s: ContainerState) -> pb::ContainerState {
    match s {
        ContainerState::Running => pb::ContainerState::Running,
        ContainerState::Stopped => pb::ContainerState::Stopped,
        ContainerState::Exited => pb::ContainerState::Exited,
    }
}

pub fn container(c: &ContainerRecord) -> pb::Container {
    pb::Container {
        id: c.id.clone(),
        node: c.node.clone(),
        name: c.name.clone(),
        image: c.image.clone(),
        image_digest: c.image_digest.clone(),
        state: container_state(c.state) as i32,
        first_seen_ns: c.first_seen_ns,
        last_seen_ns: c.last_seen_ns,
        started_ns: c.started_ns.unwrap_or_default(),
        finished_ns: c.finished_ns.unwrap_or_default(),
        has_exit_code: c.exit_code.is_some(),
        exit_code: c.exit_code.unwrap_or_default(),
    }
}

pub fn audit(r: &rampart_store::AuditRecord) -> pb::AuditRecord {
    pb::AuditRecord {
        id: r.id.clone(),
        ts_ns: r.ts_ns,
        origin: r.origin.clone(),
        actor: r.actor.clone(),
        action: r.action.clone(),
        target: r.target.clone(),
        detail: r.detail.clone(),
    }
}

pub fn event(e: &rampart_event::Event) -> pb::Event {
    pb::Event {
        ts_ns: e.ts_ns,
        kind: serde_json::to_value(e.kind())
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        event: to_struct(e),
    }
}
