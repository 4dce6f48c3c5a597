//! OCSF Detection Finding (schema 1.1.0; class `2004`, category `2` Findings, activity
//! `1` Create, so `type_uid` 200401).
//!
//! Mapping:
//! - `time` = the alert time in ms; `start_time`/`end_time` = first/last aggregated event;
//!   `count` = how many events the alert stands for.
//! - `severity_id` from the Falco priority: Emergency → 6 Fatal, Alert and Critical →
//!   5 Critical, Error → 4 High, Warning → 3 Medium, Notice → 2 Low, Informational and
//!   Debug → 1 Informational.
//! - `finding_info`: `uid` = alert id, `title` = rule, `desc` = rendered message,
//!   `analytic` = the rule (type 1 Rule), `attacks` = one entry per MITRE id (`TA…` as a
//!   tactic, `T1234` as a technique, `T1234.001` as a sub-technique under its technique).
//! - `evidences[0]` carries the process (with its parent chain) and the container;
//!   `resources` names the container; `device.hostname` the node.
//! - `unmapped` keeps the rule's `output_fields` and tags, which OCSF has no place for.

use rampart_event::{Alert, Ancestor, Container, Priority, Process};
use serde_json::{json, Map, Value};

use super::{millis, EncodeContext};

pub const CLASS_UID: u32 = 2004;
pub const CATEGORY_UID: u32 = 2;
pub const ACTIVITY_CREATE: u32 = 1;
pub const SCHEMA_VERSION: &str = "1.1.0";
/// MITRE ATT&CK version the tactic names below come from.
pub const ATTACK_VERSION: &str = "v14";

/// OCSF `severity_id` and its caption for a Falco priority.
pub fn severity(priority: Priority) -> (u8, &'static str) {
    match priority {
        Priority::Emergency => (6, "Fatal"),
        Priority::Alert | Priority::Critical => (5, "Critical"),
        Priority::Error => (4, "High"),
        Priority::Warning => (3, "Medium"),
        Priority::Notice => (2, "Low"),
        Priority::Informational | Priority::Debug => (1, "Informational"),
    }
}

/// Names of the MITRE ATT&CK Enterprise tactics, by id.
pub fn tactic_name(id: &str) -> Option<&'static str> {
    Some(match id {
        "TA0043" => "Reconnaissance",
        "TA0042" => "Resource Development",
        "TA0001" => "Initial Access",
        "TA0002" => "Execution",
        "TA0003" => "Persistence",
        "TA0004" => "Privilege Escalation",
        "TA0005" => "Defense Evasion",
        "TA0006" => "Credential Access",
        "TA0007" => "Discovery",
        "TA0008" => "Lateral Movement",
        "TA0009" => "Collection",
        "TA0011" => "Command and Control",
        "TA0010" => "Exfiltration",
        "TA0040" => "Impact",
        _ => return None,
    })
}

fn attack_for(id: &str) -> Option<Value> {
    let id = id.trim();
    if id.starts_with("TA") {
        let mut tactic = json!({ "uid": id });
        if let Some(name) = tactic_name(id) {
            tactic["name"] = json!(name);
        }
        return Some(json!({ "tactic": tactic, "version": ATTACK_VERSION }));
    }
    if !id.starts_with('T') || id.len() < 5 {
        return None;
    }
    match id.split_once('.') {
        Some((technique, _)) => Some(json!({
            "technique": { "uid": technique },
            "sub_technique": { "uid": id },
            "version": ATTACK_VERSION,
        })),
        None => Some(json!({ "technique": { "uid": id }, "version": ATTACK_VERSION })),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn ancestor_json(a: &Ancestor) -> Value {
    json!({
        "pid": a.pid,
        "uid": a.exec_id,
        "name": a.comm,
        "cmd_line": a.argv.join(" "),
        "file": { "path": a.exe, "name": file_name(&a.exe), "type_id": 1, "type": "Regular File" },
    })
}

fn process_json(p: &Process) -> Value {
    let mut v = json!({
        "pid": p.pid,
        "uid": p.exec_id,
        "name": p.comm,
        "cmd_line": p.argv.join(" "),
        "created_time": millis(p.start_ns),
        "file": { "path": p.exe, "name": file_name(&p.exe), "type_id": 1, "type": "Regular File" },
        "user": { "uid": p.uid.to_string() },
        "lineage": p.ancestry.iter().map(|a| a.exe.as_str()).collect::<Vec<_>>(),
    });
    // parent_process nests the ancestry: parent, then its parent, and so on.
    let mut parent: Option<Value> = None;
    for a in p.ancestry.iter().rev() {
        let mut node = ancestor_json(a);
        if let Some(up) = parent.take() {
            node["parent_process"] = up;
        }
        parent = Some(node);
    }
    if let Some(parent) = parent {
        v["parent_process"] = parent;
    }
    v
}

fn container_json(c: &Container) -> Value {
    let mut v = json!({
        "uid": c.id,
        "name": c.name,
        "image": { "name": c.image, "tag": c.image_tag, "uid": c.image_digest },
    });
    if !c.runtime.is_empty() {
        v["runtime"] = json!(c.runtime);
    }
    if let Some(k8s) = &c.k8s {
        v["orchestrator"] = json!("Kubernetes");
        if !k8s.pod_uid.is_empty() {
            v["pod_uuid"] = json!(k8s.pod_uid);
        }
    }
    v
}

/// Builds the Detection Finding as a JSON value.
pub fn to_value(alert: &Alert, ctx: &EncodeContext) -> Value {
    let (severity_id, severity_caption) = severity(alert.priority);
    let attacks: Vec<Value> = alert.mitre.iter().filter_map(|m| attack_for(m)).collect();
    let mut finding_info = json!({
        "uid": alert.id,
        "title": alert.rule,
        "desc": alert.message,
        "analytic": { "name": alert.rule, "type_id": 1, "type": "Rule" },
        "created_time": millis(alert.ts_ns),
        "first_seen_time": millis(alert.first_ts_ns),
        "last_seen_time": millis(alert.ts_ns),
        "types": [alert.source],
    });
    if !attacks.is_empty() {
        finding_info["attacks"] = Value::Array(attacks);
    }

    let mut evidence = Map::new();
    if let Some(p) = alert.event.process.as_deref() {
        evidence.insert("process".into(), process_json(p));
    }
    let container = alert.event.container.container();
    if let Some(c) = container {
        evidence.insert("container".into(), container_json(c));
    }

    let mut doc = json!({
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity_caption,
        "status_id": 1,
        "status": "New",
        "time": millis(alert.ts_ns),
        "start_time": millis(alert.first_ts_ns),
        "end_time": millis(alert.ts_ns),
        "count": alert.count,
        "message": alert.message,
        "finding_info": finding_info,
        "metadata": {
            "version": SCHEMA_VERSION,
            "uid": alert.id,
            "product": {
                "name": "Rampart",
                "vendor_name": "Rampart",
                "version": ctx.product_version,
            },
        },
        "device": { "hostname": ctx.hostname(alert), "type_id": 0, "type": "Unknown" },
        "unmapped": {
            "output_fields": alert.output_fields,
            "tags": alert.tags,
            "event_kind": alert.event.kind().as_str(),
        },
    });
    if !evidence.is_empty() {
        doc["evidences"] = json!([Value::Object(evidence)]);
    }
    if let Some(c) = container {
        doc["resources"] = json!([{ "uid": c.id, "name": c.name, "type": "container" }]);
    }
    doc
}

/// Encodes the Detection Finding as one JSON line.
pub fn encode(alert: &Alert, ctx: &EncodeContext) -> String {
    to_value(alert, ctx).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sample;

    fn ctx() -> EncodeContext {
        EncodeContext {
            hostname_override: None,
            local_hostname: "unused".into(),
            product_version: "0.1.0".into(),
            falco_uuid: false,
        }
    }

    /// Expected values taken from the OCSF 1.1 Detection Finding class and its objects
    /// (finding_info, attack, process, container), not from this encoder.
    #[test]
    fn detection_finding_has_the_required_and_mapped_attributes() {
        let v = to_value(&sample::alert(), &ctx());
        assert_eq!(v["class_uid"], 2004);
        assert_eq!(v["category_uid"], 2);
        assert_eq!(v["activity_id"], 1);
        assert_eq!(v["type_uid"], 200401);
        assert_eq!(v["severity_id"], 3, "Warning is Medium");
        assert_eq!(v["time"], 1_700_000_000_123u64);
        assert_eq!(v["metadata"]["version"], "1.1.0");
        assert_eq!(v["metadata"]["product"]["name"], "Rampart");
        assert_eq!(v["finding_info"]["uid"], "6f1c2a9e4b7d4e0f8a3b5c6d7e8f9012");
        assert_eq!(v["finding_info"]["title"], "Read sensitive file untrusted");
        assert_eq!(v["finding_info"]["analytic"]["type_id"], 1);
        let attacks = v["finding_info"]["attacks"].as_array().unwrap();
        assert_eq!(attacks[0]["technique"]["uid"], "T1555");
        assert_eq!(attacks[1]["tactic"]["uid"], "TA0006");
        assert_eq!(attacks[1]["tactic"]["name"], "Credential Access");
        let process = &v["evidences"][0]["process"];
        assert_eq!(process["pid"], 4242);
        assert_eq!(process["cmd_line"], "cat /etc/shadow");
        assert_eq!(process["file"]["name"], "cat");
        assert_eq!(process["parent_process"]["name"], "bash");
        assert_eq!(process["parent_process"]["parent_process"]["name"], "sshd");
        assert_eq!(process["lineage"], json!(["/bin/bash", "/usr/sbin/sshd"]));
        let container = &v["evidences"][0]["container"];
        assert_eq!(container["name"], "web");
        assert_eq!(container["image"]["name"], "debian:12");
        assert_eq!(v["resources"][0]["type"], "container");
        assert_eq!(v["device"]["hostname"], "node-1");
        assert_eq!(v["unmapped"]["output_fields"]["proc.pid"], 4242);
    }

    #[test]
    fn severity_mapping_covers_every_priority() {
        use Priority::*;
        let ids: Vec<u8> = [
            Emergency,
            Alert,
            Critical,
            Error,
            Warning,
            Notice,
            Informational,
            Debug,
        ]
        .into_iter()
        .map(|p| severity(p).0)
        .collect();
        assert_eq!(ids, [6, 5, 5, 4, 3, 2, 1, 1]);
    }

    #[test]
    fn sub_techniques_sit_under_their_technique_and_junk_is_skipped() {
        let mut alert = sample::alert();
        alert.mitre = vec!["T1059.004".into(), "nonsense".into(), "TA9999".into()];
        let v = to_value(&alert, &ctx());
        let attacks = v["finding_info"]["attacks"].as_array().unwrap();
        assert_eq!(attacks.len(), 2);
        assert_eq!(attacks[0]["technique"]["uid"], "T1059");
        assert_eq!(attacks[0]["sub_technique"]["uid"], "T1059.004");
        assert_eq!(attacks[1]["tactic"]["uid"], "TA9999");
        assert!(attacks[1]["tactic"].get("name").is_none());
    }

    #[test]
    fn host_process_has_no_container() {
        let mut alert = sample::alert();
        alert.event.container = std::sync::Arc::new(rampart_event::Workload::Host { cgroup_id: 1 });
        let v = to_value(&alert, &ctx());
        assert!(v.get("resources").is_none());
        assert!(v["evidences"][0].get("container").is_none());
        assert_eq!(v["evidences"][0]["process"]["pid"], 4242);
    }
}
