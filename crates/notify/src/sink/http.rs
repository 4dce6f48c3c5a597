//! HTTP outputs (generic webhook, Slack, Splunk HEC) over one retrying client.
//!
//! Retry policy: a 5xx or 429 answer, a timeout or a connection error is retried up to
//! `max_retries` times, sleeping `min(max_backoff, initial_backoff × 2^attempt)` with
//! "equal jitter" (half fixed, half random) so many agents do not retry in step. Any
//! other answer (e.g. 400 or 403) will not get better by retrying and fails at once. A
//! failure is returned to the dispatcher, which counts it as a dropped alert.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use rampart_event::Alert;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use super::AlertSink;
use crate::config::{Encoding, RetryConfig, SlackConfig, SplunkHecConfig, WebhookConfig};
use crate::encode::slack::SlackOverrides;
use crate::encode::splunk::HecMetadata;
use crate::encode::{encode, slack, splunk, EncodeContext};
use crate::NotifyError;

/// Path of HEC's JSON event endpoint.
pub const HEC_EVENT_PATH: &str = "/services/collector/event";

/// Backoff before retry number `attempt` (0-based), without jitter.
pub fn backoff_base(retry: &RetryConfig, attempt: u32) -> Duration {
    let factor = 1u64.checked_shl(attempt.min(32)).unwrap_or(u64::MAX);
    Duration::from_millis(
        retry
            .initial_backoff_ms
            .saturating_mul(factor)
            .min(retry.max_backoff_ms),
    )
}

/// Backoff with equal jitter: uniformly in `[base/2, base]`.
pub fn backoff_with_jitter(retry: &RetryConfig, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    let base = backoff_base(retry, attempt).as_millis() as u64;
    let half = base / 2;
    Duration::from_millis(half + rng.u64(0..=base - half))
}

/// POSTs bodies to one URL with fixed headers and the retry policy.
pub struct HttpPoster {
    client: reqwest::Client,
    url: String,
    headers: HeaderMap,
    retry: RetryConfig,
    rng: fastrand::Rng,
}

impl HttpPoster {
    pub fn new(
        url: &str,
        headers: &BTreeMap<String, String>,
        retry: &RetryConfig,
    ) -> Result<Self, NotifyError> {
        crate::install_ring_crypto_provider();
        let bad = |message: String| NotifyError::Config {
            origin: url.to_string(),
            line: 0,
            column: 0,
            message,
        };
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| bad(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| bad(format!("header {name} value: {e}")))?;
            map.insert(name, value);
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(retry.timeout_ms))
            .connect_timeout(Duration::from_millis(retry.timeout_ms))
            .user_agent(concat!("rampart/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("building HTTP client: {e}")))?;
        Ok(Self {
            client,
            url: url.to_string(),
            headers: map,
            retry: retry.clone(),
            rng: fastrand::Rng::new(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends `body`, retrying as the policy says. Returns the attempts made on success.
    pub async fn post(&mut self, body: Vec<u8>, content_type: &'static str) -> Result<u32, String> {
        let mut attempt = 0u32;
        loop {
            let response = self
                .client
                .post(&self.url)
                .headers(self.headers.clone())
                .header(CONTENT_TYPE, content_type)
                .body(body.clone())
                .send()
                .await;
            let retryable_error = match response {
                Ok(r) if r.status().is_success() => return Ok(attempt + 1),
                Ok(r) if r.status().is_server_error() || r.status().as_u16() == 429 => {
                    format!("HTTP {}", r.status())
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    let text: String = text.chars().take(200).collect();
                    return Err(format!("HTTP {status} (not retried): {text}"));
                }
                Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                    format!("request failed: {e}")
                }
                Err(e) => return Err(format!("request failed (not retried): {e}")),
            };
            if attempt >= self.retry.max_retries {
                return Err(format!(
                    "gave up after {} attempts, last: {retryable_error}",
                    attempt + 1
                ));
            }
            tokio::time::sleep(backoff_with_jitter(&self.retry, attempt, &mut self.rng)).await;
            attempt += 1;
        }
    }
}

enum Payload {
    Webhook(Encoding),
    Slack(SlackOverrides),
    Splunk(HecMetadata),
}

/// A webhook, Slack or Splunk HEC output.
pub struct HttpSink {
    name: String,
    ctx: EncodeContext,
    poster: HttpPoster,
    payload: Payload,
}

impl HttpSink {
    pub fn webhook(
        name: String,
        c: &WebhookConfig,
        ctx: EncodeContext,
    ) -> Result<Self, NotifyError> {
        Ok(Self {
            name,
            ctx,
            poster: HttpPoster::new(&c.url, &c.headers, &c.retry)?,
            payload: Payload::Webhook(c.format),
        })
    }

    pub fn slack(name: String, c: &SlackConfig, ctx: EncodeContext) -> Result<Self, NotifyError> {
        Ok(Self {
            name,
            ctx,
            poster: HttpPoster::new(&c.webhook_url, &BTreeMap::new(), &c.retry)?,
            payload: Payload::Slack(SlackOverrides {
                channel: c.channel.clone(),
                username: c.username.clone(),
                icon_emoji: c.icon_emoji.clone(),
            }),
        })
    }

    pub fn splunk(
        name: String,
        c: &SplunkHecConfig,
        ctx: EncodeContext,
    ) -> Result<Self, NotifyError> {
        let base = c.url.trim_end_matches('/');
        let url = if base.ends_with(HEC_EVENT_PATH) {
            base.to_string()
        } else {
            format!("{base}{HEC_EVENT_PATH}")
        };
        let mut headers = BTreeMap::new();
        headers.insert(AUTHORIZATION.to_string(), format!("Splunk {}", c.token));
        Ok(Self {
            name,
            ctx,
            poster: HttpPoster::new(&url, &headers, &c.retry)?,
            payload: Payload::Splunk(HecMetadata {
                source: c.source.clone(),
                sourcetype: c.sourcetype.clone(),
                index: c.index.clone(),
                format: c.format,
            }),
        })
    }

    fn body(&self, alert: &Alert) -> (Vec<u8>, &'static str) {
        match &self.payload {
            Payload::Webhook(encoding) => {
                let content_type = match encoding {
                    Encoding::Json | Encoding::Falco | Encoding::Ocsf => "application/json",
                    Encoding::Text | Encoding::Cef => "text/plain; charset=utf-8",
                };
                (
                    encode(*encoding, alert, &self.ctx).into_bytes(),
                    content_type,
                )
            }
            Payload::Slack(o) => (
                slack::to_value(alert, &self.ctx, o)
                    .to_string()
                    .into_bytes(),
                "application/json",
            ),
            Payload::Splunk(m) => (
                splunk::encode(alert, &self.ctx, m).into_bytes(),
                "application/json",
            ),
        }
    }
}

impl AlertSink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn send<'a>(&'a mut self, alert: &'a Alert) -> BoxFuture<'a, Result<(), NotifyError>> {
        Box::pin(async move {
            let (body, content_type) = self.body(alert);
            self.poster
                .post(body, content_type)
                .await
                .map(|_| ())
                .map_err(|message| NotifyError::Delivery {
                    sink: self.name.clone(),
                    message: format!("POST {}: {message}", self.poster.url()),
                })
        })
    }

    fn flush(&mut self) -> BoxFuture<'_, Result<(), NotifyError>> {
        // Every alert is sent before `send` returns; nothing is buffered.
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_stays_in_range() {
        let retry = RetryConfig {
            max_retries: 10,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
            timeout_ms: 1000,
        };
        let bases: Vec<u64> = (0..6)
            .map(|a| backoff_base(&retry, a).as_millis() as u64)
            .collect();
        assert_eq!(bases, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff_base(&retry, 200).as_millis(), 1000);
        let mut rng = fastrand::Rng::with_seed(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let d = backoff_with_jitter(&retry, 2, &mut rng).as_millis() as u64;
            assert!((200..=400).contains(&d), "{d}");
            seen.insert(d);
        }
        assert!(
            seen.len() > 50,
            "jitter should spread delays: {}",
            seen.len()
        );
    }

    #[test]
    fn bad_header_is_a_config_error() {
        let mut headers = BTreeMap::new();
        headers.insert("bad header".to_string(), "x".to_string());
        let err = HttpPoster::new("http://127.0.0.1:9", &headers, &RetryConfig::default())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("bad header"), "{err}");
    }
}
