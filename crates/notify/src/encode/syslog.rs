//! RFC 5424 syslog messages and RFC 6587 octet-counting framing.
//!
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] MSG` where PRI = facility × 8 +
//! severity (the Falco priority is the syslog severity of the same name), TIMESTAMP is
//! RFC 3339 UTC with microseconds (the RFC allows at most six fraction digits), MSGID is
//! `alert`, and one SD-ELEMENT `rampart@32473` carries the alert's identity (32473 is the
//! IANA example enterprise number, RFC 5612). MSG is the rendered message, or CEF/JSON
//! as configured, without a BOM (the RFC's MSG-ANY form).

use std::fmt::Write;

use rampart_event::Alert;

use super::{encode, rfc3339_micros, syslog_severity, EncodeContext};
use crate::config::{Encoding, Facility};

/// SD-ID of Rampart's structured-data element.
pub const SD_ID: &str = "rampart@32473";
/// RFC 5424 MSGID for alerts.
pub const MSG_ID: &str = "alert";

/// Settings of the RFC 5424 header that do not come from the alert.
#[derive(Debug, Clone)]
pub struct SyslogHeader {
    pub facility: Facility,
    pub app_name: String,
    pub proc_id: u32,
    pub message: Encoding,
}

/// PRI value: facility code × 8 + severity.
pub fn pri(facility: Facility, alert: &Alert) -> u8 {
    facility.code() * 8 + syslog_severity(alert.priority)
}

/// Escapes an SD PARAM-VALUE: `"`, `\` and `]` take a backslash (RFC 5424 §6.3.3).
pub fn escape_param_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Makes a header field PRINTUSASCII (33–126) and at most `max` bytes; empty becomes
/// the NILVALUE `-`.
pub fn header_field(s: &str, max: usize) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".into()
    } else {
        cleaned
    }
}

/// Builds the complete RFC 5424 message for one alert.
pub fn format_rfc5424(alert: &Alert, header: &SyslogHeader, ctx: &EncodeContext) -> String {
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "<{}>1 {} {} {} {} {} ",
        pri(header.facility, alert),
        rfc3339_micros(alert.ts_ns),
        header_field(ctx.hostname(alert), 255),
        header_field(&header.app_name, 48),
        header.proc_id,
        MSG_ID,
    );
    let mut params: Vec<(&str, String)> = vec![
        ("id", alert.id.clone()),
        ("rule", alert.rule.clone()),
        ("priority", alert.priority.falco_name().to_string()),
        ("source", alert.source.clone()),
        ("count", alert.count.to_string()),
    ];
    if !alert.mitre.is_empty() {
        params.push(("mitre", alert.mitre.join(",")));
    }
    if let Some(c) = alert.event.container.container() {
        params.push(("container_id", c.id.clone()));
        params.push(("container_name", c.name.clone()));
        params.push(("image", c.image.clone()));
        if let Some(k) = &c.k8s {
            params.push(("k8s_ns", k.namespace.clone()));
            params.push(("k8s_pod", k.pod.clone()));
            if !k.service_account.is_empty() {
                params.push(("k8s_sa", k.service_account.clone()));
            }
        }
    }
    if let Some(p) = alert.event.process.as_deref() {
        params.push(("pid", p.pid.to_string()));
        params.push(("exe", p.exe.clone()));
    }
    let _ = write!(out, "[{SD_ID}");
    for (name, value) in &params {
        let _ = write!(out, " {name}=\"{}\"", escape_param_value(value));
    }
    out.push(']');
    out.push(' ');
    let body = match header.message {
        Encoding::Text => alert.message.clone(),
        other => encode(other, alert, ctx),
    };
    out.push_str(&body);
    out
}

/// Cuts `msg` to at most `max` bytes on a character boundary.
pub fn truncate_to(msg: &mut String, max: usize) {
    if msg.len() <= max {
        return;
    }
    let mut end = max;
    while end > 0 && !msg.is_char_boundary(end) {
        end -= 1;
    }
    msg.truncate(end);
}

/// Octet-counting frame (RFC 6587 §3.4.1): `MSG-LEN SP SYSLOG-MSG`.
pub fn octet_counted(msg: &str) -> Vec<u8> {
    let mut frame = format!("{} ", msg.len()).into_bytes();
    frame.extend_from_slice(msg.as_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sample;

    fn header(message: Encoding) -> SyslogHeader {
        SyslogHeader {
            facility: Facility::Local0,
            app_name: "rampart".into(),
            proc_id: 77,
            message,
        }
    }

    fn ctx() -> EncodeContext {
        EncodeContext {
            hostname_override: None,
            local_hostname: "unused".into(),
            product_version: "0.1.0".into(),
            falco_uuid: false,
        }
    }

    /// Expected text written from RFC 5424's ABNF: local0 (16) × 8 + warning (4) = 132.
    #[test]
    fn message_follows_rfc5424() {
        let got = format_rfc5424(&sample::alert(), &header(Encoding::Text), &ctx());
        let expected = concat!(
            "<132>1 2023-11-14T22:13:20.123456Z node-1 rampart 77 alert ",
            "[rampart@32473 id=\"6f1c2a9e4b7d4e0f8a3b5c6d7e8f9012\" rule=\"Read sensitive file untrusted\" ",
            "priority=\"Warning\" source=\"syscall\" count=\"1\" mitre=\"T1555,TA0006\" ",
            "container_id=\"3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e\" ",
            "container_name=\"web\" image=\"debian:12\" pid=\"4242\" exe=\"/usr/bin/cat\"] ",
            "Sensitive file opened for reading by non-trusted program (file=/etc/shadow user=root command=cat /etc/shadow)"
        );
        assert_eq!(got, expected);
    }

    #[test]
    fn pri_combines_facility_and_severity() {
        let mut alert = sample::alert();
        alert.priority = rampart_event::Priority::Emergency;
        assert_eq!(pri(Facility::Kern, &alert), 0);
        alert.priority = rampart_event::Priority::Debug;
        assert_eq!(pri(Facility::Local7, &alert), 191);
        alert.priority = rampart_event::Priority::Critical;
        assert_eq!(pri(Facility::Auth, &alert), 34);
    }

    #[test]
    fn param_values_and_header_fields_are_escaped() {
        assert_eq!(escape_param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(header_field("my host\té", 255), "my_host__");
        assert_eq!(header_field("", 255), "-");
        assert_eq!(header_field(&"x".repeat(300), 255).len(), 255);
    }

    #[test]
    fn cef_body_and_framing() {
        let msg = format_rfc5424(&sample::alert(), &header(Encoding::Cef), &ctx());
        assert!(msg.contains("] CEF:0|Rampart|Rampart|0.1.0|"), "{msg}");
        let frame = octet_counted("<13>1 - - - - - - hi");
        assert_eq!(frame, b"20 <13>1 - - - - - - hi");
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut s = "aé".repeat(10);
        truncate_to(&mut s, 4);
        assert_eq!(s, "aéa"); // 'é' is 2 bytes: a + é + a = 4 bytes
        let mut t = "aéa".to_string();
        truncate_to(&mut t, 2);
        assert_eq!(t, "a");
    }
}
