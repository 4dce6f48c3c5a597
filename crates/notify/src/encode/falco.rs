//! Falco-compatible alert JSON, as Falco writes it with `json_output: true` (and the
//! default `json_include_output_property` / `json_include_tags_property`), so tools built
//! for Falco (falcosidekick, SIEM parsers) read Rampart alerts unchanged.
//!
//! Falco builds the object with nlohmann::json, whose objects are sorted maps, so keys
//! come out in byte order: `hostname`, `output`, `output_fields`, `priority`, `rule`,
//! `source`, `tags`, `time`. `output` is `"<evt.time>: <Priority> <message>"`;
//! `output_fields` holds the template's fields plus `evt.time` (the event time in ns, an
//! integer) from that prefix; `tags` is a sorted set; `time` is RFC 3339 UTC with 9
//! fraction digits. Falco itself has no `uuid`; falcosidekick adds one, so Rampart adds
//! it (the alert id) only when asked.

use std::collections::{BTreeMap, BTreeSet};

use rampart_event::Alert;
use serde::Serialize;

use super::{falco_output_line, rfc3339_nanos, EncodeContext};

/// Field order matches the byte order of the key names (see the module doc).
#[derive(Serialize)]
struct FalcoAlert<'a> {
    hostname: &'a str,
    output: String,
    output_fields: BTreeMap<&'a str, serde_json::Value>,
    priority: &'static str,
    rule: &'a str,
    source: &'a str,
    tags: BTreeSet<&'a str>,
    time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<&'a str>,
}

/// Encodes `alert` as Falco's JSON alert; `with_uuid` adds falcosidekick's `uuid`.
pub fn encode(alert: &Alert, ctx: &EncodeContext, with_uuid: bool) -> String {
    let mut output_fields: BTreeMap<&str, serde_json::Value> = alert
        .output_fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    // Falco merges the prefix's fields last, so `evt.time` is always the event time.
    output_fields.insert("evt.time", serde_json::Value::from(alert.ts_ns));
    // Falco rules carry MITRE ids as tags; Rampart keeps them apart, so merge them back.
    let tags: BTreeSet<&str> = alert
        .tags
        .iter()
        .chain(alert.mitre.iter())
        .map(String::as_str)
        .collect();
    let doc = FalcoAlert {
        hostname: ctx.hostname(alert),
        output: falco_output_line(alert),
        output_fields,
        priority: alert.priority.falco_name(),
        rule: &alert.rule,
        source: &alert.source,
        tags,
        time: rfc3339_nanos(alert.ts_ns),
        uuid: with_uuid.then_some(alert.id.as_str()),
    };
    serde_json::to_string(&doc).unwrap_or_default()
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

    /// Expected text written by hand from Falco's formats.cpp: sorted keys, the
    /// `<time>: <Priority> <msg>` output, `evt.time` in ns among output_fields, tags as a
    /// sorted set, `time` with nine fraction digits.
    #[test]
    fn matches_falco_json_output_exactly() {
        let expected = concat!(
            r#"{"hostname":"node-1","#,
            r#""output":"22:13:20.123456789: Warning Sensitive file opened for reading by non-trusted program (file=/etc/shadow user=root command=cat /etc/shadow)","#,
            r#""output_fields":{"container.id":"3ad7b26ded6d","evt.time":1700000000123456789,"fd.name":"/etc/shadow","proc.cmdline":"cat /etc/shadow","proc.pid":4242,"user.name":"root"},"#,
            r#""priority":"Warning","rule":"Read sensitive file untrusted","source":"syscall","#,
            r#""tags":["T1555","TA0006","filesystem","maturity_stable","mitre_credential_access"],"#,
            r#""time":"2023-11-14T22:13:20.123456789Z"}"#
        );
        assert_eq!(encode(&sample::alert(), &ctx(), false), expected);
    }

    #[test]
    fn uuid_is_added_only_on_request() {
        let alert = sample::alert();
        let with: serde_json::Value = serde_json::from_str(&encode(&alert, &ctx(), true)).unwrap();
        assert_eq!(with["uuid"], "6f1c2a9e4b7d4e0f8a3b5c6d7e8f9012");
        assert!(!encode(&alert, &ctx(), false).contains("uuid"));
    }

    #[test]
    fn duplicate_tags_collapse_and_control_characters_escape() {
        let mut alert = sample::alert();
        alert.tags = vec!["b".into(), "a".into(), "b".into()];
        alert.mitre = vec!["a".into()];
        alert.message = "line1\nline2\t\"q\"".into();
        let out = encode(&alert, &ctx(), false);
        assert!(out.contains(r#""tags":["a","b"]"#), "{out}");
        assert!(out.contains(r#"line1\nline2\t\"q\""#), "{out}");
    }
}
