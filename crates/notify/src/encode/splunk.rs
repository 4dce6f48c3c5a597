//! Splunk HTTP Event Collector event JSON (`/services/collector/event`):
//! `{"time": <epoch seconds, ms precision>, "host", "source", "sourcetype", "index"?,
//! "event": <alert>}`. `index` is left out when not configured so the token's default
//! index applies.

use rampart_event::Alert;
use serde::Serialize;
use serde_json::value::RawValue;

use super::{falco, ocsf, rampart_json, EncodeContext};
use crate::config::Encoding;

/// Splunk metadata that does not come from the alert.
#[derive(Debug, Clone)]
pub struct HecMetadata {
    pub source: String,
    pub sourcetype: String,
    pub index: Option<String>,
    /// What goes in `event`: `json`, `falco` or `ocsf` (others fall back to `json`).
    pub format: Encoding,
}

#[derive(Serialize)]
struct HecEvent<'a> {
    time: f64,
    host: &'a str,
    source: &'a str,
    sourcetype: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<&'a str>,
    /// Already-encoded JSON, embedded as is (no intermediate `Value` tree).
    event: Box<RawValue>,
}

/// Event time in seconds with millisecond precision, as HEC's `<sec>.<ms>` expects.
pub fn hec_time(ts_ns: u64) -> f64 {
    // Dividing the integer milliseconds gives the double nearest to "<sec>.<ms>", which
    // serializes back as exactly those digits.
    (ts_ns / 1_000_000) as f64 / 1000.0
}

/// Builds the HEC event body.
pub fn encode(alert: &Alert, ctx: &EncodeContext, meta: &HecMetadata) -> String {
    let encoded = match meta.format {
        Encoding::Falco => falco::encode(alert, ctx, ctx.falco_uuid),
        Encoding::Ocsf => ocsf::encode(alert, ctx),
        _ => rampart_json(alert),
    };
    // The encoders always emit valid JSON; `null` is only a guard.
    let event = RawValue::from_string(encoded).unwrap_or_default();
    let doc = HecEvent {
        time: hec_time(alert.ts_ns),
        host: ctx.hostname(alert),
        source: &meta.source,
        sourcetype: &meta.sourcetype,
        index: meta.index.as_deref(),
        event,
    };
    serde_json::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sample;
    use serde_json::Value;

    fn ctx() -> EncodeContext {
        EncodeContext {
            hostname_override: None,
            local_hostname: "unused".into(),
            product_version: "0.1.0".into(),
            falco_uuid: false,
        }
    }

    #[test]
    fn envelope_follows_hec_event_format() {
        let alert = sample::alert();
        let meta = HecMetadata {
            source: "rampart".into(),
            sourcetype: "rampart:alert".into(),
            index: Some("security".into()),
            format: Encoding::Json,
        };
        let body = encode(&alert, &ctx(), &meta);
        // The envelope's scalar part, written by hand from the HEC format description.
        assert!(
            body.starts_with(
                r#"{"time":1700000000.123,"host":"node-1","source":"rampart","sourcetype":"rampart:alert","index":"security","event":{"#
            ),
            "{body}"
        );
        let v: Value = serde_json::from_str(&body).unwrap();
        let back: Alert = serde_json::from_value(v["event"].clone()).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn index_is_omitted_when_unset_and_falco_event_embeds() {
        let meta = HecMetadata {
            source: "s".into(),
            sourcetype: "st".into(),
            index: None,
            format: Encoding::Falco,
        };
        let v: Value = serde_json::from_str(&encode(&sample::alert(), &ctx(), &meta)).unwrap();
        assert!(v.get("index").is_none());
        assert_eq!(v["event"]["rule"], "Read sensitive file untrusted");
        assert_eq!(v["event"]["priority"], "Warning");
    }

    #[test]
    fn time_keeps_exact_milliseconds() {
        for (ns, text) in [
            (1_700_000_000_123_456_789u64, "1700000000.123"),
            (1_700_000_000_001_000_000, "1700000000.001"),
            (1_700_000_000_999_999_999, "1700000000.999"),
            (1_000_000_000, "1.0"),
        ] {
            assert_eq!(serde_json::to_string(&hec_time(ns)).unwrap(), text);
        }
    }
}
