//! Transports: each [`AlertSink`] turns alerts into bytes with an encoder and delivers
//! them somewhere. A sink is owned by one dispatcher task, so it takes `&mut self`.

use futures_util::future::BoxFuture;
use rampart_event::Alert;

use crate::config::{OutputsConfig, SinkKind};
use crate::encode::EncodeContext;
use crate::NotifyError;

pub mod http;
pub mod lines;
pub mod syslog;

/// One place alerts go.
pub trait AlertSink: Send {
    /// Name used in statistics and logs.
    fn name(&self) -> &str;
    /// Delivers one alert; an `Err` means this alert is lost for this sink (after the
    /// sink's own retries, where it has any).
    fn send<'a>(&'a mut self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>>;
    /// Pushes out anything buffered.
    fn flush(&mut self) -> BoxFuture<'_, Result<(), NotifyError>>;
}

/// The encoder context the configuration asks for.
pub fn encode_context(config: &OutputsConfig) -> EncodeContext {
    EncodeContext {
        hostname_override: config.hostname.clone(),
        falco_uuid: config.falco_uuid,
        ..EncodeContext::default()
    }
}

/// Builds every configured sink, in configuration order. Files are opened and HTTP
/// clients built here, so a bad path or header fails now; network sinks connect lazily
/// on their first alert, so a receiver that is down at start does not stop the others.
pub fn build_sinks(config: &OutputsConfig) -> Result<Vec<Box<dyn AlertSink>>, NotifyError> {
    // A config embedded in another document (`rampart up`) skipped `from_yaml_str`.
    config.validate("outputs")?;
    let ctx = encode_context(config);
    let mut sinks: Vec<Box<dyn AlertSink>> = Vec::with_capacity(config.sinks.len());
    for (index, sink) in config.sinks.iter().enumerate() {
        let name = sink.display_name(index);
        let built: Box<dyn AlertSink> = match &sink.kind {
            SinkKind::Stdout(c) => Box::new(lines::LineSink::stdout(name, c.format, ctx.clone())),
            SinkKind::File(c) => Box::new(lines::LineSink::file(name, c, ctx.clone())?),
            SinkKind::Syslog(c) => Box::new(syslog::SyslogSink::new(name, c, ctx.clone())),
            SinkKind::Webhook(c) => Box::new(http::HttpSink::webhook(name, c, ctx.clone())?),
            SinkKind::Slack(c) => Box::new(http::HttpSink::slack(name, c, ctx.clone())?),
            SinkKind::SplunkHec(c) => Box::new(http::HttpSink::splunk(name, c, ctx.clone())?),
        };
        sinks.push(built);
    }
    Ok(sinks)
}
