//! Where Rampart's alerts go. This crate owns:
//!
//! - [`OutputsConfig`]: the YAML configuration of outputs (`rampart up` embeds it under
//!   `outputs:`), with documented defaults; see `outputs.example.yaml`.
//! - [`encode`]: pure encoders from a [`rampart_event::Alert`] to Rampart JSON,
//!   Falco-compatible JSON, OCSF Detection Finding, RFC 5424 syslog, CEF, Slack and Splunk
//!   HEC payloads.
//! - [`AlertSink`] and its transports ([`sink`]): JSON lines on stdout or a rotating
//!   file, syslog over UDP/TCP, generic HTTP webhooks, Slack and Splunk HEC over one
//!   retrying HTTP client.
//! - [`Dispatcher`]: fans every alert out to all sinks through one bounded queue per
//!   sink, so a slow or dead sink never holds up the others; whatever a sink loses (queue
//!   full, delivery given up) is counted per sink in [`SinkStats`].
//! - [`preview`]: the example configuration, a sample alert and [`render`], which
//!   `rampart outputs` prints.
//!
//! It knows nothing about how alerts are produced.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod dispatch;
pub mod encode;
pub mod preview;
pub mod sink;

pub use config::{Encoding, OutputsConfig, SinkConfig, SinkKind};
pub use dispatch::{Dispatcher, SinkStats};
pub use preview::{render, sample_alert, RenderFormat, EXAMPLE_CONFIG};
pub use sink::{build_sinks, AlertSink};

/// Errors of this crate: configuration, I/O and delivery.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The configuration is malformed or out of range. `line`/`column` are 1-based, 0
    /// when the problem is not tied to one place.
    #[error("{origin}{}: {message}", location(*line, *column))]
    Config {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A sink could not deliver an alert (after its retries, where it has any).
    #[error("{sink}: {message}")]
    Delivery { sink: String, message: String },
}

fn location(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// Installs rustls' ring crypto provider as the process default, once; the HTTP client
/// uses it for https. (Plain http needs no provider.)
pub fn install_ring_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means another provider was installed first, which is fine to keep.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
