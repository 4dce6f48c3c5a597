//! Encoders: pure functions from an [`Alert`] to the bytes one output format expects.
//! No I/O here, so each format is unit-tested against its specification.

use std::time::{Duration, UNIX_EPOCH};

use rampart_event::{Alert, Priority};

use crate::config::Encoding;

pub mod cef;
pub mod falco;
pub mod ocsf;
pub mod slack;
pub mod splunk;
pub mod syslog;

/// What an encoder needs besides the alert itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeContext {
    /// Host name override (config `hostname`); `None` uses the event's host.
    pub hostname_override: Option<String>,
    /// Name of this machine, used when neither the override nor the event has one.
    pub local_hostname: String,
    /// Rampart's version, written where a format names the producing product.
    pub product_version: String,
    /// Add falcosidekick's `uuid` (the alert id) to Falco JSON.
    pub falco_uuid: bool,
}

impl Default for EncodeContext {
    fn default() -> Self {
        Self {
            hostname_override: None,
            local_hostname: local_hostname(),
            product_version: env!("CARGO_PKG_VERSION").to_string(),
            falco_uuid: false,
        }
    }
}

impl EncodeContext {
    /// The host name to report for this alert.
    pub fn hostname<'a>(&'a self, alert: &'a Alert) -> &'a str {
        if let Some(h) = self.hostname_override.as_deref().filter(|h| !h.is_empty()) {
            return h;
        }
        if !alert.event.host.is_empty() {
            return &alert.event.host;
        }
        &self.local_hostname
    }
}

/// This machine's host name as the kernel reports it (empty when unreadable).
pub fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `2023-02-14T16:57:59.176123456Z`: RFC 3339 in UTC with nanoseconds, as Falco writes
/// `time`.
pub fn rfc3339_nanos(ts_ns: u64) -> String {
    humantime::format_rfc3339_nanos(UNIX_EPOCH + Duration::from_nanos(ts_ns)).to_string()
}

/// RFC 3339 in UTC with microseconds: RFC 5424 allows at most 6 fraction digits.
pub fn rfc3339_micros(ts_ns: u64) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(ts_ns)).to_string()
}

/// Milliseconds since the epoch (OCSF `timestamp_t`, CEF `rt`).
pub fn millis(ts_ns: u64) -> u64 {
    ts_ns / 1_000_000
}

/// Falco's text prefix time, `HH:MM:SS.nnnnnnnnn` (UTC).
pub fn falco_clock(ts_ns: u64) -> String {
    let full = rfc3339_nanos(ts_ns);
    // "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ": the clock part sits between 'T' and 'Z'.
    full.get(11..full.len() - 1).unwrap_or_default().to_string()
}

/// Falco's `output` string: `<clock>: <Priority> <message>`.
pub fn falco_output_line(alert: &Alert) -> String {
    format!(
        "{}: {} {}",
        falco_clock(alert.ts_ns),
        alert.priority.falco_name(),
        alert.message
    )
}

/// Syslog severity (RFC 5424 §6.2.1). Falco priorities are syslog severities by name.
pub fn syslog_severity(priority: Priority) -> u8 {
    match priority {
        Priority::Emergency => 0,
        Priority::Alert => 1,
        Priority::Critical => 2,
        Priority::Error => 3,
        Priority::Warning => 4,
        Priority::Notice => 5,
        Priority::Informational => 6,
        Priority::Debug => 7,
    }
}

/// Encodes one alert as one line/body (no trailing newline) in the given encoding.
pub fn encode(encoding: Encoding, alert: &Alert, ctx: &EncodeContext) -> String {
    match encoding {
        Encoding::Json => rampart_json(alert),
        Encoding::Falco => falco::encode(alert, ctx, ctx.falco_uuid),
        Encoding::Ocsf => ocsf::encode(alert, ctx),
        Encoding::Text => falco_output_line(alert),
        Encoding::Cef => cef::encode(alert, ctx),
    }
}

/// Rampart's own JSON: the serde form of [`Alert`].
pub fn rampart_json(alert: &Alert) -> String {
    // Serializing a plain data struct to a String cannot fail: no maps with non-string
    // keys, no custom Serialize impls that error.
    serde_json::to_string(alert).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

#[cfg(test)]
pub(crate) mod sample {
    //! A realistic alert: Falco's "Read sensitive file untrusted" fired by `cat
    //! /etc/shadow` run from a shell in a Debian container.
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use rampart_event::*;

    pub fn alert() -> Alert {
        let event = Event {
            compat_syscall: false,
            schema: SCHEMA_VERSION,
            // 2023-11-14T22:13:20.123456789Z
            ts_ns: 1_700_000_000_123_456_789,
            host: "node-1".into(),
            seq: 7,
            process: Some(Arc::new(Process {
                pid: 4242,
                tid: 4242,
                ppid: 4200,
                exec_id: "b1:4242:99".into(),
                parent_exec_id: Some("b1:4200:50".into()),
                uid: 0,
                exe: "/usr/bin/cat".into(),
                argv: vec!["cat".into(), "/etc/shadow".into()],
                cwd: "/root".into(),
                comm: "cat".into(),
                start_ns: 1_700_000_000_000_000_000,
                ancestry: vec![
                    Arc::new(Ancestor {
                        pid: 4200,
                        exec_id: "b1:4200:50".into(),
                        exe: "/bin/bash".into(),
                        argv: vec!["bash".into()],
                        comm: "bash".into(),
                        exe_upper_layer: false,
                    }),
                    Arc::new(Ancestor {
                        pid: 1,
                        exec_id: "b1:1:1".into(),
                        exe: "/usr/sbin/sshd".into(),
                        argv: vec!["sshd".into(), "-D".into()],
                        comm: "sshd".into(),
                        exe_upper_layer: false,
                    }),
                ],
                ..Default::default()
            })),
            container: Arc::new(Workload::Container(Container {
                id: "3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e".into(),
                runtime: "docker".into(),
                name: "web".into(),
                image: "debian:12".into(),
                image_repository: "debian".into(),
                image_tag: "12".into(),
                image_digest: "sha256:aa11".into(),
                metadata_complete: true,
                ..Default::default()
            })),
            payload: Payload::FileOpen {
                path: "/etc/shadow".into(),
                path_raw: None,
                flags: 0,
                mode: 0,
                access: OpenAccess::from_flags(0),
                ret: 3,
                repeats: 0,
            },
        };
        let mut output_fields = BTreeMap::new();
        output_fields.insert("container.id".into(), "3ad7b26ded6d".into());
        output_fields.insert("fd.name".into(), "/etc/shadow".into());
        output_fields.insert("proc.cmdline".into(), "cat /etc/shadow".into());
        output_fields.insert("proc.pid".into(), 4242.into());
        output_fields.insert("user.name".into(), "root".into());
        Alert {
            id: "6f1c2a9e4b7d4e0f8a3b5c6d7e8f9012".into(),
            ts_ns: 1_700_000_000_123_456_789,
            first_ts_ns: 1_700_000_000_123_456_789,
            count: 1,
            rule: "Read sensitive file untrusted".into(),
            priority: Priority::Warning,
            mitre: vec!["T1555".into(), "TA0006".into()],
            tags: vec![
                "filesystem".into(),
                "maturity_stable".into(),
                "mitre_credential_access".into(),
            ],
            message: "Sensitive file opened for reading by non-trusted program \
                      (file=/etc/shadow user=root command=cat /etc/shadow)"
                .into(),
            output_fields,
            source: "syscall".into(),
            event,
            retro: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_in_utc() {
        let ts = 1_700_000_000_123_456_789;
        assert_eq!(rfc3339_nanos(ts), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(rfc3339_micros(ts), "2023-11-14T22:13:20.123456Z");
        assert_eq!(falco_clock(ts), "22:13:20.123456789");
        assert_eq!(millis(ts), 1_700_000_000_123);
        // Nanoseconds keep their leading zeros.
        assert_eq!(rfc3339_nanos(5), "1970-01-01T00:00:00.000000005Z");
    }

    #[test]
    fn hostname_precedence() {
        let mut alert = sample::alert();
        let mut ctx = EncodeContext {
            hostname_override: None,
            local_hostname: "local".into(),
            product_version: "0".into(),
            falco_uuid: false,
        };
        assert_eq!(ctx.hostname(&alert), "node-1");
        ctx.hostname_override = Some("forced".into());
        assert_eq!(ctx.hostname(&alert), "forced");
        ctx.hostname_override = None;
        alert.event.host = "".into();
        assert_eq!(ctx.hostname(&alert), "local");
    }

    #[test]
    fn rampart_json_round_trips() {
        let alert = sample::alert();
        let back: Alert = serde_json::from_str(&rampart_json(&alert)).unwrap();
        assert_eq!(back, alert);
    }

    #[test]
    fn text_is_falco_text_line() {
        assert_eq!(
            falco_output_line(&sample::alert()),
            "22:13:20.123456789: Warning Sensitive file opened for reading by non-trusted \
             program (file=/etc/shadow user=root command=cat /etc/shadow)"
        );
    }
}
