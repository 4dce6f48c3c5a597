//! Previews for `rampart outputs`: the commented example configuration, a sample alert,
//! and how an alert looks in each output format.

use std::sync::Arc;

use rampart_event::Alert;

use crate::encode::{self, slack, splunk, syslog, EncodeContext};
use crate::Encoding;

/// The commented example configuration, with every output and its defaults.
pub const EXAMPLE_CONFIG: &str = include_str!("../outputs.example.yaml");

/// The formats [`render`] can show an alert in: the encoders, and the syslog, Slack and
/// Splunk payloads with their default settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderFormat {
    Json,
    Falco,
    Ocsf,
    Text,
    Cef,
    Syslog,
    Slack,
    Splunk,
}

impl RenderFormat {
    /// Every format with the name users give it.
    pub const NAMES: &'static [(&'static str, RenderFormat)] = &[
        ("json", RenderFormat::Json),
        ("falco", RenderFormat::Falco),
        ("ocsf", RenderFormat::Ocsf),
        ("text", RenderFormat::Text),
        ("cef", RenderFormat::Cef),
        ("syslog", RenderFormat::Syslog),
        ("slack", RenderFormat::Slack),
        ("splunk", RenderFormat::Splunk),
    ];
}

/// Renders `alert` in `format` as one string (what the output would send).
pub fn render(format: RenderFormat, alert: &Alert, ctx: &EncodeContext) -> String {
    match format {
        RenderFormat::Json => encode::encode(Encoding::Json, alert, ctx),
        RenderFormat::Falco => encode::encode(Encoding::Falco, alert, ctx),
        RenderFormat::Ocsf => encode::encode(Encoding::Ocsf, alert, ctx),
        RenderFormat::Text => encode::encode(Encoding::Text, alert, ctx),
        RenderFormat::Cef => encode::encode(Encoding::Cef, alert, ctx),
        RenderFormat::Syslog => syslog::format_rfc5424(
            alert,
            &syslog::SyslogHeader {
                facility: crate::config::Facility::Local0,
                app_name: "rampart".into(),
                proc_id: std::process::id(),
                message: Encoding::Text,
            },
            ctx,
        ),
        RenderFormat::Slack => {
            slack::to_value(alert, ctx, &slack::SlackOverrides::default()).to_string()
        }
        RenderFormat::Splunk => splunk::encode(
            alert,
            ctx,
            &splunk::HecMetadata {
                source: "rampart".into(),
                sourcetype: "rampart:alert".into(),
                index: None,
                format: Encoding::Json,
            },
        ),
    }
}

/// A sample alert for `render` and `test`: a shell reading /etc/shadow in a container.
pub fn sample_alert() -> Alert {
    use rampart_event::*;
    use std::collections::BTreeMap;
    let now_ns = wall_ns();
    let host = encode::local_hostname();
    let mut output_fields = BTreeMap::new();
    output_fields.insert("fd.name".to_string(), serde_json::json!("/etc/shadow"));
    output_fields.insert(
        "proc.cmdline".to_string(),
        serde_json::json!("cat /etc/shadow"),
    );
    output_fields.insert("user.name".to_string(), serde_json::json!("root"));
    Alert {
        id: format!("{:032x}", fastrand::u128(..)),
        ts_ns: now_ns,
        first_ts_ns: now_ns,
        count: 1,
        rule: "Rampart test alert".into(),
        priority: Priority::Notice,
        mitre: vec!["T1003.008".into(), "TA0006".into()],
        tags: vec!["test".into()],
        message: "Test alert from `rampart outputs` (file=/etc/shadow command=cat /etc/shadow)"
            .into(),
        output_fields,
        source: "syscall".into(),
        event: Event {
            compat_syscall: false,
            schema: SCHEMA_VERSION,
            ts_ns: now_ns,
            host: host.into(),
            seq: 0,
            process: Some(Arc::new(Process {
                pid: std::process::id(),
                tid: std::process::id(),
                exe: "/usr/bin/cat".into(),
                argv: vec!["cat".into(), "/etc/shadow".into()],
                comm: "cat".into(),
                ..Default::default()
            })),
            container: Arc::new(Workload::Host { cgroup_id: 0 }),
            payload: Payload::FileOpen {
                path: "/etc/shadow".into(),
                path_raw: None,
                flags: 0,
                mode: 0,
                access: OpenAccess::from_flags(0),
                ret: 3,
                repeats: 0,
            },
        },
        retro: false,
    }
}
