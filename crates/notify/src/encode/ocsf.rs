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

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_event::{Alert, Ancestor, Container, Priority, Process};
use serde::Serialize;
use serde_json::Value;

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

/// One `attack` object: a tactic, or a technique with an optional sub-technique.
#[derive(Serialize)]
struct Attack<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    tactic: Option<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    technique: Option<Named<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_technique: Option<Named<'a>>,
    version: &'static str,
}

#[derive(Serialize)]
struct Named<'a> {
    uid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
}

fn named(uid: &str) -> Named<'_> {
    Named { uid, name: None }
}

fn attack_for(id: &str) -> Option<Attack<'_>> {
    let id = id.trim();
    let mut attack = Attack {
        tactic: None,
        technique: None,
        sub_technique: None,
        version: ATTACK_VERSION,
    };
    if id.starts_with("TA") {
        attack.tactic = Some(Named {
            uid: id,
            name: tactic_name(id),
        });
    } else if id.starts_with('T') && id.len() >= 5 {
        match id.split_once('.') {
            Some((technique, _)) => {
                attack.technique = Some(named(technique));
                attack.sub_technique = Some(named(id));
            }
            None => attack.technique = Some(named(id)),
        }
    } else {
        return None;
    }
    Some(attack)
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[derive(Serialize)]
struct OcsfFile<'a> {
    path: &'a str,
    name: &'a str,
    type_id: u8,
    #[serde(rename = "type")]
    type_name: &'static str,
}

fn regular_file(path: &str) -> OcsfFile<'_> {
    OcsfFile {
        path,
        name: file_name(path),
        type_id: 1,
        type_name: "Regular File",
    }
}

#[derive(Serialize)]
struct OcsfUser {
    uid: String,
}

/// OCSF `process`; ancestors fill the same shape without the fields Rampart does not
/// keep for them.
#[derive(Serialize)]
struct OcsfProcess<'a> {
    pid: u32,
    uid: &'a str,
    name: &'a str,
    cmd_line: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_time: Option<u64>,
    file: OcsfFile<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<OcsfUser>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lineage: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_process: Option<Box<OcsfProcess<'a>>>,
}

/// `parent_process` nests the ancestry: parent, then its parent, and so on.
fn ancestors(chain: &[Arc<Ancestor>]) -> Option<Box<OcsfProcess<'_>>> {
    let (first, rest) = chain.split_first()?;
    Some(Box::new(OcsfProcess {
        pid: first.pid,
        uid: &first.exec_id,
        name: &first.comm,
        cmd_line: first.argv.join(" "),
        created_time: None,
        file: regular_file(&first.exe),
        user: None,
        lineage: None,
        parent_process: ancestors(rest),
    }))
}

fn process(p: &Process) -> OcsfProcess<'_> {
    OcsfProcess {
        pid: p.pid,
        uid: &p.exec_id,
        name: &p.comm,
        cmd_line: p.argv.join(" "),
        created_time: Some(millis(p.start_ns)),
        file: regular_file(&p.exe),
        user: Some(OcsfUser {
            uid: p.uid.to_string(),
        }),
        lineage: Some(p.ancestry.iter().map(|a| a.exe.as_str()).collect()),
        parent_process: ancestors(&p.ancestry),
    }
}

#[derive(Serialize)]
struct OcsfImage<'a> {
    name: &'a str,
    tag: &'a str,
    uid: &'a str,
}

#[derive(Serialize)]
struct OcsfContainer<'a> {
    uid: &'a str,
    name: &'a str,
    image: OcsfImage<'a>,
    #[serde(skip_serializing_if = "str::is_empty")]
    runtime: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    orchestrator: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_uuid: Option<&'a str>,
}

fn container(c: &Container) -> OcsfContainer<'_> {
    OcsfContainer {
        uid: &c.id,
        name: &c.name,
        image: OcsfImage {
            name: &c.image,
            tag: &c.image_tag,
            uid: &c.image_digest,
        },
        runtime: &c.runtime,
        orchestrator: c.k8s.as_ref().map(|_| "Kubernetes"),
        pod_uuid: c
            .k8s
            .as_ref()
            .map(|k| k.pod_uid.as_str())
            .filter(|u| !u.is_empty()),
    }
}

#[derive(Serialize)]
struct Analytic<'a> {
    name: &'a str,
    type_id: u8,
    #[serde(rename = "type")]
    type_name: &'static str,
}

#[derive(Serialize)]
struct FindingInfo<'a> {
    uid: &'a str,
    title: &'a str,
    desc: &'a str,
    analytic: Analytic<'a>,
    created_time: u64,
    first_seen_time: u64,
    last_seen_time: u64,
    types: [&'a str; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attacks: Vec<Attack<'a>>,
}

#[derive(Serialize)]
struct Evidence<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    process: Option<OcsfProcess<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    container: Option<OcsfContainer<'a>>,
}

#[derive(Serialize)]
struct Resource<'a> {
    uid: &'a str,
    name: &'a str,
    #[serde(rename = "type")]
    type_name: &'static str,
}

#[derive(Serialize)]
struct Product<'a> {
    name: &'static str,
    vendor_name: &'static str,
    version: &'a str,
}

#[derive(Serialize)]
struct Metadata<'a> {
    version: &'static str,
    uid: &'a str,
    product: Product<'a>,
}

#[derive(Serialize)]
struct Device<'a> {
    hostname: &'a str,
    type_id: u8,
    #[serde(rename = "type")]
    type_name: &'static str,
}

#[derive(Serialize)]
struct Unmapped<'a> {
    output_fields: &'a BTreeMap<String, Value>,
    tags: &'a [String],
    event_kind: &'static str,
}

#[derive(Serialize)]
struct DetectionFinding<'a> {
    activity_id: u32,
    activity_name: &'static str,
    category_uid: u32,
    category_name: &'static str,
    class_uid: u32,
    class_name: &'static str,
    type_uid: u32,
    type_name: &'static str,
    severity_id: u8,
    severity: &'static str,
    status_id: u8,
    status: &'static str,
    time: u64,
    start_time: u64,
    end_time: u64,
    count: u64,
    message: &'a str,
    finding_info: FindingInfo<'a>,
    metadata: Metadata<'a>,
    device: Device<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    evidences: Vec<Evidence<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<Resource<'a>>,
    unmapped: Unmapped<'a>,
}

fn finding<'a>(alert: &'a Alert, ctx: &'a EncodeContext) -> DetectionFinding<'a> {
    let (severity_id, severity_caption) = severity(alert.priority);
    let workload = alert.event.container.container();
    let evidence = Evidence {
        process: alert.event.process.as_deref().map(process),
        container: workload.map(container),
    };
    let has_evidence = evidence.process.is_some() || evidence.container.is_some();
    DetectionFinding {
        activity_id: ACTIVITY_CREATE,
        activity_name: "Create",
        category_uid: CATEGORY_UID,
        category_name: "Findings",
        class_uid: CLASS_UID,
        class_name: "Detection Finding",
        type_uid: CLASS_UID * 100 + ACTIVITY_CREATE,
        type_name: "Detection Finding: Create",
        severity_id,
        severity: severity_caption,
        status_id: 1,
        status: "New",
        time: millis(alert.ts_ns),
        start_time: millis(alert.first_ts_ns),
        end_time: millis(alert.ts_ns),
        count: alert.count,
        message: &alert.message,
        finding_info: FindingInfo {
            uid: &alert.id,
            title: &alert.rule,
            desc: &alert.message,
            analytic: Analytic {
                name: &alert.rule,
                type_id: 1,
                type_name: "Rule",
            },
            created_time: millis(alert.ts_ns),
            first_seen_time: millis(alert.first_ts_ns),
            last_seen_time: millis(alert.ts_ns),
            types: [&alert.source],
            attacks: alert.mitre.iter().filter_map(|m| attack_for(m)).collect(),
        },
        metadata: Metadata {
            version: SCHEMA_VERSION,
            uid: &alert.id,
            product: Product {
                name: "Rampart",
                vendor_name: "Rampart",
                version: &ctx.product_version,
            },
        },
        device: Device {
            hostname: ctx.hostname(alert),
            type_id: 0,
            type_name: "Unknown",
        },
        evidences: if has_evidence {
            vec![evidence]
        } else {
            Vec::new()
        },
        resources: workload
            .map(|c| Resource {
                uid: &c.id,
                name: &c.name,
                type_name: "container",
            })
            .into_iter()
            .collect(),
        unmapped: Unmapped {
            output_fields: &alert.output_fields,
            tags: &alert.tags,
            event_kind: alert.event.kind().as_str(),
        },
    }
}

/// Builds the Detection Finding as a JSON value (for embedding in other payloads).
pub fn to_value(alert: &Alert, ctx: &EncodeContext) -> Value {
    serde_json::to_value(finding(alert, ctx)).unwrap_or(Value::Null)
}

/// Encodes the Detection Finding as one JSON line (serialized straight from typed
/// structs: no intermediate `Value` tree).
pub fn encode(alert: &Alert, ctx: &EncodeContext) -> String {
    serde_json::to_string(&finding(alert, ctx)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sample;
    use serde_json::json;

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
        let ids: Vec<u8> = Priority::ALL.into_iter().map(|p| severity(p).0).collect();
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
