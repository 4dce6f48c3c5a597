//! NATS JetStream behind `rampart_bus::Backplane`, for `rampart node` and `rampart
//! central` on different hosts.
//!
//! - One stream (`RAMPART` by default) on the subjects `rampart.node.<node>`, kept on
//!   disk, with a duplicate window: a node's resend of a message id the stream already
//!   holds is acknowledged and dropped (`Nats-Msg-Id`).
//! - A publish returns once JetStream acknowledged the message (stored).
//! - Central reads through a durable pull consumer with explicit acks: it acks after
//!   its store commit, and a restarted central resumes after the last ack.
//! - The client reconnects by itself; the stream is (re)declared on the first publish
//!   or consume that finds the server, so a node starts while NATS is still away.
//! - Secure by default: with [`NatsTls`] the client requires TLS, verifies the server
//!   against the fleet's CA and presents its own certificate (mutual TLS; the
//!   nats-server runs with `verify: true`). Without it, only a loopback server is
//!   accepted: a plain connection beyond localhost is refused unless
//!   [`NatsConfig::allow_plain_remote`] says otherwise.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull, stream};
use async_trait::async_trait;
use futures_util::StreamExt;
use rampart_bus::{rpc, Acker, Backplane, BusError, Consumer, Delivery, OutMessage};
use tokio::sync::Mutex;

/// Where and how the stream lives.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://127.0.0.1:4222`.
    pub url: String,
    pub stream: String,
    /// Messages go to `<subject_prefix>.<node>`.
    pub subject_prefix: String,
    /// Resends within this window are dropped by JetStream (later ones by the store).
    pub duplicate_window: Duration,
    /// Messages older than this leave the stream (central keeps what it stored).
    pub max_age: Duration,
    /// Bytes the stream keeps at most (oldest go first); -1 for no bound.
    pub max_bytes: i64,
    /// How long a request to JetStream (publish ack, consumer setup) may take.
    pub request_timeout: Duration,
    /// A message delivered to a consumer and not acked within this is delivered again
    /// (central died before its store commit, or the ack was lost).
    pub ack_wait: Duration,
    /// Bytes a consumer asks the server for at once. The server keeps at most its
    /// `max_pending` (64 MiB by default) queued for one client and disconnects it as a
    /// slow consumer beyond that; an unbounded pull of 200 node batches of ~1 MB did,
    /// and the messages in flight then waited out `ack_wait`.
    pub pull_max_bytes: usize,
    /// Mutual TLS with the fleet's CA (`rampart central init`, `rampart node enroll`).
    pub tls: Option<NatsTls>,
    /// Accept a plain, unauthenticated connection to a server beyond loopback. Off by
    /// default; only for a network that is protected some other way.
    pub allow_plain_remote: bool,
    /// The subject prefix of this client's reply inboxes (`_INBOX` when unset). A node
    /// uses its own ([`node_inbox_prefix`]): the fleet's NATS permissions let it
    /// subscribe only there, so it never sees another's replies.
    pub inbox_prefix: Option<String>,
}

/// The files of a mutual-TLS connection, PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTls {
    /// The CA the server's certificate must chain to.
    pub ca: PathBuf,
    /// This client's certificate and key (signed by the same CA).
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl NatsConfig {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.into(),
            stream: "RAMPART".into(),
            subject_prefix: "rampart.node".into(),
            duplicate_window: Duration::from_secs(600),
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 8 << 30,
            request_timeout: Duration::from_secs(4),
            ack_wait: Duration::from_secs(30),
            pull_max_bytes: 16 << 20,
            tls: None,
            allow_plain_remote: false,
            inbox_prefix: None,
        }
    }

    /// The configuration of node `node`: as [`NatsConfig::new`] with the node's own
    /// reply inbox.
    pub fn for_node(url: &str, node: &str) -> Self {
        let mut c = Self::new(url);
        c.inbox_prefix = Some(node_inbox_prefix(node));
        c
    }

    /// Refuses a plain connection beyond loopback (unless allowed) and missing TLS files.
    pub fn check_security(&self) -> Result<(), NatsError> {
        match &self.tls {
            Some(t) => {
                for (what, p) in [("ca", &t.ca), ("cert", &t.cert), ("key", &t.key)] {
                    if !p.is_file() {
                        return Err(NatsError::TlsFile {
                            what,
                            path: p.clone(),
                        });
                    }
                }
                Ok(())
            }
            None if self.allow_plain_remote || url_is_loopback(&self.url) => Ok(()),
            None => Err(NatsError::PlainRemote {
                url: self.url.clone(),
            }),
        }
    }

    fn options(&self) -> async_nats::ConnectOptions {
        let mut o = async_nats::ConnectOptions::new()
            .name("rampart")
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(self.request_timeout));
        if let Some(p) = &self.inbox_prefix {
            o = o.custom_inbox_prefix(p);
        }
        if let Some(t) = &self.tls {
            o = o
                .require_tls(true)
                .add_root_certificates(t.ca.clone())
                .add_client_certificate(t.cert.clone(), t.key.clone());
        }
        o
    }
}

/// True when every host in a NATS URL list (`nats://h:p,nats://h2:p`) is loopback.
pub fn url_is_loopback(url: &str) -> bool {
    url.split(',').all(|u| {
        let u = u.trim();
        let rest = u.split_once("://").map_or(u, |(_, r)| r);
        let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        let hostport = hostport.split('/').next().unwrap_or_default();
        let host = if let Some(h) = hostport.strip_prefix('[') {
            h.split(']').next().unwrap_or_default()
        } else {
            hostport.rsplit_once(':').map_or(hostport, |(h, _)| h)
        };
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    })
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("cannot set up the NATS client for {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("refusing a plain, unauthenticated NATS connection beyond localhost ({url}): configure TLS (the CA and this process's certificate and key from `rampart central init` / `rampart node enroll`)")]
    PlainRemote { url: String },
    #[error("NATS TLS {what} file {}: not found", path.display())]
    TlsFile { what: &'static str, path: PathBuf },
}

/// The JetStream backplane.
pub struct NatsBackplane {
    config: NatsConfig,
    client: async_nats::Client,
    js: jetstream::Context,
    /// Set once the stream is known to exist on the server.
    stream_ready: Mutex<bool>,
}

/// The reply-inbox prefix of node `node`'s NATS client: `_INBOX_<node>` (one token).
pub fn node_inbox_prefix(node: &str) -> String {
    format!("_INBOX_{}", subject_token(node))
}

/// A node name as one subject token: NATS separators and wildcards become `_`.
pub fn subject_token(node: &str) -> String {
    let t: String = node
        .chars()
        .map(|c| match c {
            '.' | '*' | '>' | ' ' | '\t' | '\r' | '\n' => '_',
            c => c,
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

impl NatsBackplane {
    /// A client that connects in the background and keeps reconnecting, so this returns
    /// at once even when the server is away.
    pub async fn connect(config: NatsConfig) -> Result<Self, NatsError> {
        config.check_security()?;
        let client = config
            .options()
            .retry_on_initial_connect()
            // Back off to 2 s at most, so a node is back within seconds of the server.
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts.min(20) as u64).min(2000))
            })
            .connect(config.url.as_str())
            .await
            .map_err(|e| NatsError::Connect {
                url: config.url.clone(),
                reason: e.to_string(),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(config.request_timeout);
        Ok(Self {
            config,
            client,
            js,
            stream_ready: Mutex::new(false),
        })
    }

    /// Connects once, without retrying, and returns the server's refusal if there is
    /// one (a TLS handshake the server rejects, a certificate from another CA): what
    /// `rampart node check` and the tests use to see that the connection is allowed.
    pub async fn probe(config: &NatsConfig) -> Result<(), NatsError> {
        config.check_security()?;
        let err = |e: String| NatsError::Connect {
            url: config.url.clone(),
            reason: e,
        };
        let client = config
            .options()
            .connect(config.url.as_str())
            .await
            .map_err(|e| err(e.to_string()))?;
        // The server may accept the TCP and TLS handshake and drop the client right
        // after checking its certificate: a round trip shows it kept us.
        client.flush().await.map_err(|e| err(e.to_string()))?;
        let _ = client.drain().await;
        Ok(())
    }

    /// The core NATS client (request/reply between central and the nodes).
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// Deletes the stream and everything in it (benchmarks clean up their own).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        *self.stream_ready.lock().await = false;
        self.js
            .delete_stream(&self.config.stream)
            .await
            .map(|_| ())
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    fn subjects(&self) -> String {
        format!("{}.>", self.config.subject_prefix)
    }

    async fn stream(&self) -> Result<stream::Stream, BusError> {
        let mut ready = self.stream_ready.lock().await;
        if *ready {
            return self
                .js
                .get_stream(&self.config.stream)
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()));
        }
        let s = self
            .js
            .get_or_create_stream(stream::Config {
                name: self.config.stream.clone(),
                subjects: vec![self.subjects()],
                storage: stream::StorageType::File,
                duplicate_window: self.config.duplicate_window,
                max_age: self.config.max_age,
                max_bytes: self.config.max_bytes,
                discard: stream::DiscardPolicy::Old,
                ..Default::default()
            })
            .await
            .map_err(|e| BusError::Unavailable(self.stream_creation_error(&e.to_string())))?;
        *ready = true;
        Ok(s)
    }

    /// JetStream's own words, plus what to do when the server cannot reserve the
    /// stream's bound on disk (its error 10047 names neither the stream nor the size).
    fn stream_creation_error(&self, server_said: &str) -> String {
        if server_said.contains("10047") || server_said.contains("insufficient storage") {
            format!(
                "{server_said}: JetStream could not reserve {} MiB for stream {} on the \
                 server's disk; free space there, raise its max_file_store, or set a \
                 smaller stream_max_mb",
                self.config.max_bytes >> 20,
                self.config.stream
            )
        } else {
            server_said.to_string()
        }
    }

    async fn ensure_stream(&self) -> Result<(), BusError> {
        if !*self.stream_ready.lock().await {
            self.stream().await?;
        }
        Ok(())
    }

    /// The durable consumer's pull stream, and the stream sequence from which it has
    /// not read everything: past its ack floor, or the stream's first sequence for a
    /// new consumer (what a stream held before central existed is not central's loss).
    async fn open_messages(&self, name: &str) -> Result<(pull::Stream, u64), BusError> {
        let stream = self.stream().await?;
        let consumer = stream
            .get_or_create_consumer(
                name,
                pull::Config {
                    durable_name: Some(name.to_string()),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: self.config.ack_wait,
                    filter_subject: self.subjects(),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| BusError::Consume(e.to_string()))?;
        let info = consumer.cached_info();
        let unread_from = if info.delivered.stream_sequence == 0 {
            stream.cached_info().state.first_sequence.max(1)
        } else {
            info.ack_floor.stream_sequence + 1
        };
        let messages = consumer
            .stream()
            .max_bytes_per_batch(self.config.pull_max_bytes)
            .heartbeat(Duration::from_secs(15))
            .messages()
            .await
            .map_err(|e| BusError::Consume(e.to_string()))?;
        Ok((messages, unread_from))
    }
}

#[async_trait]
impl Backplane for NatsBackplane {
    fn kind(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, msg: OutMessage) -> Result<(), BusError> {
        self.ensure_stream().await?;
        let subject = format!(
            "{}.{}",
            self.config.subject_prefix,
            subject_token(&msg.node)
        );
        let ack = self
            .js
            .send_publish(
                subject,
                jetstream::message::PublishMessage::build()
                    .payload(msg.payload)
                    .message_id(&msg.id),
            )
            .await
            .map_err(|e| BusError::Publish(e.to_string()))?;
        ack.await.map_err(|e| BusError::Publish(e.to_string()))?;
        Ok(())
    }

    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, BusError> {
        let (messages, unread_from) = self.open_messages(name).await?;
        Ok(Box::new(NatsConsumer {
            backplane: NatsBackplane {
                config: self.config.clone(),
                client: self.client.clone(),
                js: self.js.clone(),
                stream_ready: Mutex::new(true),
            },
            name: name.to_string(),
            messages: Some(messages),
            failures: 0,
            stream_errors: 0,
            next_new: unread_from,
            lost: Arc::new(AtomicU64::new(0)),
        }))
    }
}

/// A durable pull consumer that reopens itself when the server goes away and comes
/// back: `next` waits through outages instead of failing.
struct NatsConsumer {
    backplane: NatsBackplane,
    name: String,
    messages: Option<pull::Stream>,
    failures: u64,
    /// Errors from the current pull stream since its last message.
    stream_errors: u32,
    /// The stream sequence the next message delivered for the first time should have
    /// (at open: just past the ack floor). The stream is bounded (`max_bytes`,
    /// `max_age`, oldest discarded): a first delivery beyond it means messages left the
    /// stream unread, unless they are still there and come again (delivered to a pull
    /// given up on, or before a restart): only those below the stream's first sequence
    /// are counted. A message acked out of order just before a restart and discarded
    /// after it counts too, so the count is at most one commit group high; and a
    /// message delivered to a central that stopped before acking it, then discarded
    /// before it came again, moves the ack floor past it unseen (the count is low by
    /// those).
    next_new: u64,
    /// Messages the stream discarded before this consumer read them.
    lost: Arc<AtomicU64>,
}

impl NatsConsumer {
    /// Notes a message's stream sequence; a gap before a first delivery is checked
    /// against the stream (in a task of its own, so `next` stays cancel-safe).
    fn note_sequence(&mut self, m: &jetstream::Message) {
        let Ok(info) = m.info() else { return };
        if info.delivered != 1 {
            return;
        }
        let seq = info.stream_sequence;
        if seq > self.next_new {
            let (expected, js, stream, lost) = (
                self.next_new,
                self.backplane.js.clone(),
                self.backplane.config.stream.clone(),
                self.lost.clone(),
            );
            tokio::spawn(async move {
                count_discarded(js, stream, expected, seq, lost).await;
            });
        }
        self.next_new = self.next_new.max(seq + 1);
    }
}

/// Counts the messages of stream sequences `expected..seq` that are no longer in the
/// stream (below its first sequence): discarded before the consumer read them.
async fn count_discarded(
    js: jetstream::Context,
    stream: String,
    expected: u64,
    seq: u64,
    lost: Arc<AtomicU64>,
) {
    async fn first_sequence(js: &jetstream::Context, stream: &str) -> Result<u64, String> {
        let mut s = js.get_stream(stream).await.map_err(|e| e.to_string())?;
        let info = s.info().await.map_err(|e| e.to_string())?;
        Ok(info.state.first_sequence)
    }
    let first = match first_sequence(&js, &stream).await {
        Ok(first) => first,
        Err(e) => {
            tracing::warn!(error = %e, stream, "cannot tell whether stream sequences {expected}..{seq} were discarded");
            return;
        }
    };
    let gone_until = seq.min(first);
    if gone_until > expected {
        let n = gone_until - expected;
        lost.fetch_add(n, Ordering::Relaxed);
        tracing::error!(
            stream,
            lost = n,
            "{n} messages left stream {stream} unread (sequences {expected}..{gone_until}): its max_bytes or max_age was reached before central read them; raise them (the node's stream_max_mb) or central's throughput"
        );
    }
}

/// Whether a pull stream that just reported `kind` (the `errors_in_a_row`th error since
/// its last message) is still worth polling. As async-nats' own ordered consumer does:
/// one missed heartbeat, or a failed pull request while the server is away, leaves the
/// stream working; an ended stream, or errors that keep coming, do not.
fn keep_pull_stream(kind: pull::MessagesErrorKind, errors_in_a_row: u32) -> bool {
    use pull::MessagesErrorKind as Kind;
    match kind {
        Kind::MissingHeartbeat | Kind::Pull | Kind::NoResponders => errors_in_a_row < 3,
        Kind::ConsumerDeleted
        | Kind::PushBasedConsumer
        | Kind::RequestLimitExceeded
        | Kind::Other => false,
    }
}

struct NatsAck(jetstream::Message);

#[async_trait]
impl Acker for NatsAck {
    /// Waits for the server to confirm the ack: a plain ack is only published, and a
    /// consumer stopped right after could see the message again on restart.
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        self.0
            .double_ack()
            .await
            .map_err(|e| BusError::Ack(e.to_string()))
    }
}

#[async_trait]
impl Consumer for NatsConsumer {
    fn lost_messages(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        loop {
            let Some(messages) = self.messages.as_mut() else {
                match self.backplane.open_messages(&self.name).await {
                    Ok((m, _)) => {
                        tracing::info!(consumer = %self.name, "NATS consumer resumed");
                        self.messages = Some(m);
                    }
                    Err(e) => {
                        self.failures += 1;
                        if self.failures.is_power_of_two() {
                            tracing::warn!(error = %e, consumer = %self.name, "NATS consumer cannot resume yet");
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
                continue;
            };
            match messages.next().await {
                Some(Ok(m)) => {
                    self.failures = 0;
                    self.stream_errors = 0;
                    self.note_sequence(&m);
                    let id = m
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default();
                    let node = m
                        .subject
                        .as_str()
                        .strip_prefix(&format!("{}.", self.backplane.config.subject_prefix))
                        .unwrap_or_default()
                        .to_string();
                    let payload = m.payload.clone();
                    return Ok(Some(Delivery::new(id, node, payload, Box::new(NatsAck(m)))));
                }
                Some(Err(e)) => {
                    self.stream_errors += 1;
                    if keep_pull_stream(e.kind(), self.stream_errors) {
                        // The pull stream re-requests by itself once the server answers
                        // again. Dropping it here would strand the messages already sent
                        // to it until JetStream's ack wait (30 s) redelivers them.
                        tracing::debug!(error = %e, consumer = %self.name, "NATS consumer stream error; keeping the pull");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    // Ended by the server, or failing again and again: start a fresh pull
                    // on the durable consumer, which resumes after the acks.
                    tracing::debug!(error = %e, consumer = %self.name, "NATS consumer stream error; reopening");
                    self.messages = None;
                    self.stream_errors = 0;
                    self.backplane.stream_ready = Mutex::new(false);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None => {
                    self.messages = None;
                }
            }
        }
    }
}

/// Request/reply subjects: `rampart.rpc.<node>`.
pub const RPC_PREFIX: &str = "rampart.rpc";

struct NatsReplier {
    client: async_nats::Client,
    reply: async_nats::Subject,
}

#[async_trait]
impl rpc::Replier for NatsReplier {
    async fn send(&mut self, chunk: bytes::Bytes) -> Result<(), BusError> {
        self.client
            .publish(self.reply.clone(), chunk)
            .await
            .map_err(|e| BusError::Publish(e.to_string()))
    }
}

struct NatsRequests {
    client: async_nats::Client,
    sub: async_nats::Subscriber,
}

#[async_trait]
impl rpc::RequestStream for NatsRequests {
    async fn next(&mut self) -> Option<rpc::IncomingRequest> {
        loop {
            let m = self.sub.next().await?;
            // A request without a reply subject cannot be answered.
            let Some(reply) = m.reply else { continue };
            return Some(rpc::IncomingRequest {
                payload: m.payload,
                replier: Box::new(NatsReplier {
                    client: self.client.clone(),
                    reply,
                }),
            });
        }
    }
}

struct NatsReplies {
    node: String,
    sub: async_nats::Subscriber,
    idle: Duration,
}

#[async_trait]
impl rpc::ReplyStream for NatsReplies {
    async fn next(&mut self) -> Result<Option<bytes::Bytes>, BusError> {
        match tokio::time::timeout(self.idle, self.sub.next()).await {
            Err(_) => Err(BusError::Unavailable(format!(
                "node {} did not answer within {:?}",
                self.node, self.idle
            ))),
            Ok(None) => Ok(None),
            Ok(Some(m)) if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) => Err(
                BusError::Unavailable(format!("no node named {} is connected", self.node)),
            ),
            Ok(Some(m)) => Ok(Some(m.payload)),
        }
    }
}

#[async_trait]
impl rpc::RequestPlane for NatsBackplane {
    async fn serve(&self, node: &str) -> Result<Box<dyn rpc::RequestStream>, BusError> {
        let sub = self
            .client
            .subscribe(format!("{RPC_PREFIX}.{}", subject_token(node)))
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(Box::new(NatsRequests {
            client: self.client.clone(),
            sub,
        }))
    }

    async fn request(
        &self,
        node: &str,
        payload: bytes::Bytes,
        idle: Duration,
    ) -> Result<Box<dyn rpc::ReplyStream>, BusError> {
        let inbox = self.client.new_inbox();
        let sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        self.client
            .publish_with_reply(
                format!("{RPC_PREFIX}.{}", subject_token(node)),
                inbox,
                payload,
            )
            .await
            .map_err(|e| BusError::Publish(e.to_string()))?;
        self.client
            .flush()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(Box::new(NatsReplies {
            node: node.to_string(),
            sub,
            idle,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_become_one_token() {
        assert_eq!(subject_token("web-1.prod"), "web-1_prod");
        assert_eq!(subject_token("a*b>c d"), "a_b_c_d");
        assert_eq!(subject_token(""), "_");
    }

    #[test]
    fn plain_connections_only_to_loopback() {
        for ok in [
            "nats://127.0.0.1:4222",
            "nats://localhost:4222",
            "nats://[::1]:4222",
            "nats://u:p@127.0.0.1:4222,nats://127.0.0.2:4223",
            "127.0.0.1:4222",
        ] {
            assert!(url_is_loopback(ok), "{ok}");
            NatsConfig::new(ok).check_security().unwrap();
        }
        for remote in [
            "nats://10.0.0.5:4222",
            "nats://central.example:4222",
            "nats://127.0.0.1:4222,nats://10.0.0.5:4222",
        ] {
            assert!(!url_is_loopback(remote), "{remote}");
            let e = NatsConfig::new(remote).check_security().unwrap_err();
            assert!(matches!(e, NatsError::PlainRemote { .. }), "{e}");
            let mut c = NatsConfig::new(remote);
            c.allow_plain_remote = true;
            c.check_security().unwrap();
        }
        let mut c = NatsConfig::new("nats://10.0.0.5:4222");
        c.tls = Some(NatsTls {
            ca: "/nonexistent/ca.pem".into(),
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/k.pem".into(),
        });
        let e = c.check_security().unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn a_pull_stream_survives_passing_errors_but_not_its_end() {
        use async_nats::jetstream::consumer::pull::MessagesErrorKind as Kind;
        for passing in [Kind::MissingHeartbeat, Kind::Pull, Kind::NoResponders] {
            assert!(keep_pull_stream(passing, 1), "{passing:?}");
            assert!(keep_pull_stream(passing, 2), "{passing:?}");
            assert!(!keep_pull_stream(passing, 3), "{passing:?} again and again");
        }
        for ended in [
            Kind::ConsumerDeleted,
            Kind::PushBasedConsumer,
            Kind::RequestLimitExceeded,
            Kind::Other,
        ] {
            assert!(!keep_pull_stream(ended, 1), "{ended:?}");
        }
    }
}
