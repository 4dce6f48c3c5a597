//! The outputs configuration: one YAML document (embedded by `rampart up` under its
//! `outputs:` key) listing where alerts go. Every field has a default, so an empty
//! document is valid and means "JSON lines on stdout". Unknown keys are errors, so a
//! typo is reported with its line and column instead of being silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rampart_event::Priority;
use serde::{Deserialize, Serialize};

use crate::NotifyError;

/// All outputs and the knobs shared by them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    /// Alerts held per sink while it is busy; beyond this an alert is dropped for that
    /// sink only and counted. Default 1024.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Host name written into alerts (Falco `hostname`, syslog HOSTNAME, Splunk `host`).
    /// Default: the host name the sensor put on the event, else this machine's name.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Add a `uuid` (the alert id) to Falco-format JSON, as falcosidekick does. Falco
    /// itself has none. Default false.
    #[serde(default)]
    pub falco_uuid: bool,
    /// The outputs. Default: one `stdout` sink writing Rampart JSON lines.
    #[serde(default = "default_sinks")]
    pub sinks: Vec<SinkConfig>,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        Self {
            queue_capacity: default_queue_capacity(),
            hostname: None,
            falco_uuid: false,
            sinks: default_sinks(),
        }
    }
}

fn default_queue_capacity() -> usize {
    1024
}
fn default_sinks() -> Vec<SinkConfig> {
    vec![SinkConfig {
        name: None,
        min_priority: None,
        kind: SinkKind::Stdout(StdoutConfig::default()),
    }]
}

impl OutputsConfig {
    /// Parses a YAML document; errors name the line and column and what was expected.
    pub fn from_yaml_str(text: &str) -> Result<Self, NotifyError> {
        Self::parse_named(text, "<outputs config>")
    }

    /// Reads and parses a YAML file; errors name the file, line and column.
    pub fn from_path(path: &Path) -> Result<Self, NotifyError> {
        let text = std::fs::read_to_string(path).map_err(|source| NotifyError::Io {
            what: format!("reading {}", path.display()),
            source,
        })?;
        Self::parse_named(&text, &path.display().to_string())
    }

    fn parse_named(text: &str, origin: &str) -> Result<Self, NotifyError> {
        // An empty document (or only comments) means "all defaults".
        if text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#')
        }) {
            return Ok(Self::default());
        }
        let config: Self = yaml_serde::from_str(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // The location is reported separately; drop yaml_serde's copy of it.
            let mut message = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            if message.ends_with(&suffix) {
                message.truncate(message.len() - suffix.len());
            }
            NotifyError::Config {
                origin: origin.to_string(),
                line,
                column,
                message,
            }
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks what serde cannot: value ranges and required combinations.
    pub fn validate(&self, origin: &str) -> Result<(), NotifyError> {
        let invalid = |message: String| NotifyError::Config {
            origin: origin.to_string(),
            line: 0,
            column: 0,
            message,
        };
        if self.queue_capacity == 0 {
            return Err(invalid("queue_capacity must be at least 1".into()));
        }
        for (index, sink) in self.sinks.iter().enumerate() {
            let label = sink.display_name(index);
            match &sink.kind {
                SinkKind::File(f) => {
                    if f.path.as_os_str().is_empty() {
                        return Err(invalid(format!("sink {label}: path must not be empty")));
                    }
                    if f.max_size_mb == 0 {
                        return Err(invalid(format!("sink {label}: max_size_mb must be ≥ 1")));
                    }
                }
                SinkKind::Syslog(s) => {
                    if s.address.is_empty() {
                        return Err(invalid(format!("sink {label}: address must not be empty")));
                    }
                    if s.app_name.is_empty() || s.app_name.len() > 48 {
                        return Err(invalid(format!(
                            "sink {label}: app_name must be 1 to 48 characters (RFC 5424)"
                        )));
                    }
                }
                SinkKind::Webhook(w) => check_url(&w.url, &label).map_err(invalid)?,
                SinkKind::Slack(s) => check_url(&s.webhook_url, &label).map_err(invalid)?,
                SinkKind::SplunkHec(s) => {
                    check_url(&s.url, &label).map_err(invalid)?;
                    if s.token.is_empty() {
                        return Err(invalid(format!("sink {label}: token must not be empty")));
                    }
                    if matches!(s.format, Encoding::Text | Encoding::Cef) {
                        return Err(invalid(format!(
                            "sink {label}: format must be json, falco or ocsf (HEC `event` is JSON)"
                        )));
                    }
                }
                SinkKind::Stdout(_) => {}
            }
        }
        Ok(())
    }
}

fn check_url(url: &str, label: &str) -> Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(())
    } else {
        Err(format!(
            "sink {label}: url must start with http:// or https://, got {url:?}"
        ))
    }
}

/// One output: its type-specific settings plus a name and a priority threshold.
/// (Unknown keys are rejected by the type-specific part, which receives every key not
/// named here.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkConfig {
    /// Name used in statistics and logs. Default: `<type>` or `<type>-<index>`.
    #[serde(default)]
    pub name: Option<String>,
    /// Only alerts at least this severe go to this sink. Default: all (`debug`).
    #[serde(default)]
    pub min_priority: Option<Priority>,
    #[serde(flatten)]
    pub kind: SinkKind,
}

impl SinkConfig {
    /// The name shown for this sink: its `name`, else `<type>-<index>`.
    pub fn display_name(&self, index: usize) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => format!("{}-{index}", self.kind.type_name()),
        }
    }
}

/// The output types, selected by `type:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkKind {
    Stdout(StdoutConfig),
    File(FileConfig),
    Syslog(SyslogConfig),
    Webhook(WebhookConfig),
    Slack(SlackConfig),
    SplunkHec(SplunkHecConfig),
}

impl SinkKind {
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkKind::Stdout(_) => "stdout",
            SinkKind::File(_) => "file",
            SinkKind::Syslog(_) => "syslog",
            SinkKind::Webhook(_) => "webhook",
            SinkKind::Slack(_) => "slack",
            SinkKind::SplunkHec(_) => "splunk_hec",
        }
    }
}

/// How one alert is written as one line or one message body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Rampart's own JSON: the serde form of `rampart_event::Alert`.
    #[default]
    Json,
    /// Falco's `json_output: true` alert JSON.
    Falco,
    /// OCSF 1.1 Detection Finding (class 2004).
    Ocsf,
    /// Falco's text line: `HH:MM:SS.nnnnnnnnn: Priority message`.
    Text,
    /// ArcSight Common Event Format.
    Cef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StdoutConfig {
    /// Default `json`.
    #[serde(default)]
    pub format: Encoding,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File written; rotated files are `<path>.1` (newest) … `<path>.<keep_files>`.
    pub path: PathBuf,
    /// Default `json`.
    #[serde(default)]
    pub format: Encoding,
    /// Rotate when the file would grow past this many MiB. Default 100.
    #[serde(default = "default_max_size_mb")]
    pub max_size_mb: u64,
    /// Rotated files kept besides the live one; 0 keeps none. Default 5.
    #[serde(default = "default_keep_files")]
    pub keep_files: u32,
}

fn default_max_size_mb() -> u64 {
    100
}
fn default_keep_files() -> u32 {
    5
}

/// Syslog transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SyslogProtocol {
    /// One datagram per message (RFC 5426). Default.
    #[default]
    Udp,
    /// Octet-counted frames (RFC 6587 §3.4.1) on one kept-open connection.
    Tcp,
}

/// Syslog facility (RFC 5424 §6.2.1), by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Facility {
    Kern,
    User,
    Mail,
    Daemon,
    Auth,
    Syslog,
    Lpr,
    News,
    Uucp,
    Cron,
    Authpriv,
    Ftp,
    Ntp,
    Security,
    Console,
    SolarisCron,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The facility's numeric code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// `host:port` of the syslog receiver.
    pub address: String,
    /// Default `udp`.
    #[serde(default)]
    pub protocol: SyslogProtocol,
    /// Default `local0`.
    #[serde(default)]
    pub facility: Facility,
    /// RFC 5424 APP-NAME. Default `rampart`.
    #[serde(default = "default_app_name")]
    pub app_name: String,
    /// What MSG holds after the header and structured data: `text` (the rendered rule
    /// output, default), `cef`, `json`, `falco` or `ocsf`.
    #[serde(default = "default_syslog_message")]
    pub message: Encoding,
    /// Longest message sent, in bytes; longer ones are cut. Default 8192 (rsyslog's
    /// default `maxMessageSize`).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

fn default_app_name() -> String {
    "rampart".into()
}
fn default_syslog_message() -> Encoding {
    Encoding::Text
}
fn default_max_message_bytes() -> usize {
    8192
}

/// Retries of an HTTP output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Retries after the first attempt, on 5xx, 429, timeouts and connection errors.
    /// Default 3. After the last one the alert is dropped and counted.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// First backoff; doubles on each retry, with jitter. Default 200 ms.
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Backoff never exceeds this. Default 10000 ms.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Whole-request timeout. Default 5000 ms.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: default_max_retries(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            timeout_ms: default_timeout_ms(),
        }
    }
}

fn default_max_retries() -> u32 {
    3
}
fn default_initial_backoff_ms() -> u64 {
    200
}
fn default_max_backoff_ms() -> u64 {
    10_000
}
fn default_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    pub url: String,
    /// Body format. Default `json`.
    #[serde(default)]
    pub format: Encoding,
    /// Extra request headers (e.g. `Authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Retry and timeout policy (see [`RetryConfig`] for defaults).
    #[serde(default)]
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// The incoming-webhook URL Slack gave you.
    pub webhook_url: String,
    /// Overrides of the webhook's defaults (honoured by legacy webhooks only).
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub icon_emoji: Option<String>,
    /// Retry and timeout policy (see [`RetryConfig`] for defaults).
    #[serde(default)]
    pub retry: RetryConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplunkHecConfig {
    /// Base URL of the collector, e.g. `https://splunk:8088`; `/services/collector/event`
    /// is appended unless the URL already ends with it.
    pub url: String,
    /// HEC token, sent as `Authorization: Splunk <token>`.
    pub token: String,
    /// Default: the token's default index.
    #[serde(default)]
    pub index: Option<String>,
    /// Default `rampart`.
    #[serde(default = "default_splunk_source")]
    pub source: String,
    /// Default `rampart:alert`.
    #[serde(default = "default_splunk_sourcetype")]
    pub sourcetype: String,
    /// What goes in `event`: `json` (default), `falco` or `ocsf`.
    #[serde(default)]
    pub format: Encoding,
    /// Retry and timeout policy (see [`RetryConfig`] for defaults).
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_splunk_source() -> String {
    "rampart".into()
}
fn default_splunk_sourcetype() -> String {
    "rampart:alert".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_means_stdout_json() {
        let c = OutputsConfig::from_yaml_str("# nothing\n\n").unwrap();
        assert_eq!(c, OutputsConfig::default());
        assert_eq!(c.sinks.len(), 1);
        assert_eq!(
            c.sinks[0].kind,
            SinkKind::Stdout(StdoutConfig {
                format: Encoding::Json
            })
        );
    }

    #[test]
    fn defaults_fill_unspecified_fields() {
        let c = OutputsConfig::from_yaml_str(
            "sinks:\n  - type: file\n    path: /tmp/a.jsonl\n  - type: syslog\n    address: 127.0.0.1:514\n",
        )
        .unwrap();
        let SinkKind::File(f) = &c.sinks[0].kind else {
            panic!("{c:?}")
        };
        assert_eq!((f.max_size_mb, f.keep_files), (100, 5));
        let SinkKind::Syslog(s) = &c.sinks[1].kind else {
            panic!("{c:?}")
        };
        assert_eq!(s.facility, Facility::Local0);
        assert_eq!(s.facility.code(), 16);
        assert_eq!(s.protocol, SyslogProtocol::Udp);
        assert_eq!(s.message, Encoding::Text);
        assert_eq!(c.sinks[1].display_name(1), "syslog-1");
    }

    #[test]
    fn unknown_key_is_an_error_with_line_and_column() {
        let err = OutputsConfig::from_yaml_str(
            "queue_capacity: 10\nsinks:\n  - type: stdout\n    fromat: json\n",
        )
        .unwrap_err();
        let NotifyError::Config { line, message, .. } = &err else {
            panic!("{err:?}")
        };
        // Keys of one sink are checked together, so the error points at the sink (line
        // 3) and names the offending key.
        assert_eq!(*line, 3, "{err}");
        assert!(message.contains("unknown field `fromat`"), "{err}");
        assert!(
            err.to_string()
                .starts_with("<outputs config>:3:5: sinks[0]:"),
            "{err}"
        );
        // Outside a sink the exact line is known.
        let err = OutputsConfig::from_yaml_str(
            "sinks: []
queue_capacty: 3
",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("<outputs config>:2:1:"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_rejected() {
        for (doc, needle) in [
            ("queue_capacity: 0\n", "queue_capacity"),
            ("sinks:\n  - type: webhook\n    url: ftp://x\n", "http://"),
            (
                "sinks:\n  - type: splunk_hec\n    url: http://127.0.0.1:1\n    token: ''\n",
                "token",
            ),
            ("sinks:\n  - type: nope\n", "nope"),
            (
                "sinks:\n  - type: splunk_hec\n    url: http://127.0.0.1:1\n    token: t\n    format: cef\n",
                "json, falco or ocsf",
            ),
            (
                "sinks:\n  - type: syslog\n    address: a:1\n    facility: local9\n",
                "local9",
            ),
        ] {
            let err = OutputsConfig::from_yaml_str(doc).unwrap_err().to_string();
            assert!(err.contains(needle), "{doc:?} gave {err}");
        }
    }

    #[test]
    fn facility_codes_follow_rfc5424() {
        assert_eq!(Facility::Kern.code(), 0);
        assert_eq!(Facility::Auth.code(), 4);
        assert_eq!(Facility::Authpriv.code(), 10);
        assert_eq!(Facility::SolarisCron.code(), 15);
        assert_eq!(Facility::Local7.code(), 23);
    }
}
