//! Central asking one node: recorder queries, retro-hunts and response commands travel
//! as request/reply to the node that holds the data ([`rampart_bus::rpc`]). These are
//! the library calls the API's event and response services forward to.
//!
//! An answer is checked chunk by chunk: numbering must be contiguous from 0 and end
//! with the last chunk, so a lost chunk is an error rather than a short answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rampart_bus::rpc::{
    DeployAnswer, DeployText, EventQuery, IncidentAnswer, IncidentRequest, NodeRequest, ReplyChunk,
    ReplyStream, RequestPlane, RespondCommand, RulesText,
};
use rampart_bus::BusError;
use rampart_event::AuditRecord;
use rampart_store::{Ingest, Store};

#[derive(Debug, thiserror::Error)]
pub enum NodeRequestError {
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
    #[error("node {node}: answer chunk {got} came where {want} was due (a chunk was lost)")]
    Gap { node: String, want: u64, got: u64 },
    #[error("storing the audit record: {0}")]
    Store(String),
    /// An incident bundle grew past what central takes ([`NodeClient::max_bundle_bytes`]).
    #[error("node {node}: bundle too large: the incident bundle is over the {limit} MiB central accepts; ask for a narrower window (before/after)")]
    BundleTooLarge { node: String, limit: u64 },
    /// What arrived is not what the node sent (size or SHA-256 differ).
    #[error("node {node}: the incident bundle arrived damaged ({what})")]
    BundleDamaged { node: String, what: String },
}

/// One chunk's records: decoded from the recorder's binary form, or the JSON lines a
/// node that does not send binary answered with.
#[derive(Debug)]
pub enum RecordBatch {
    Records(Vec<rampart_recorder::Record>),
    Lines(String),
}

/// A record as `rampart query --format json` prints it.
fn record_json(r: &rampart_recorder::Record) -> Result<String, serde_json::Error> {
    use rampart_recorder::Record;
    match r {
        Record::Event(e) => serde_json::to_string(e),
        Record::Alert(a) => serde_json::to_string(a),
        Record::Lifecycle(l) => serde_json::to_string(l),
    }
}

/// The records of one answer, batch by batch.
pub struct RecordStream {
    node: String,
    replies: Box<dyn ReplyStream>,
    next_seq: u64,
    done: bool,
    summary: Option<serde_json::Value>,
    /// Bytes of the chunks received so far, as they came over the wire.
    received_bytes: u64,
}

impl RecordStream {
    /// The next batch of JSON lines (as `rampart query --format json` prints them);
    /// `None` at the end. Batches may be empty.
    pub async fn next_batch(&mut self) -> Result<Option<String>, NodeRequestError> {
        Ok(match self.next_records().await? {
            None => None,
            Some(RecordBatch::Lines(l)) => Some(l),
            Some(RecordBatch::Records(records)) => {
                let mut lines = String::new();
                for r in &records {
                    let line = record_json(r).map_err(|e| NodeRequestError::Node {
                        node: self.node.clone(),
                        message: format!("a record does not serialize: {e}"),
                    })?;
                    lines.push_str(&line);
                    lines.push('\n');
                }
                Some(lines)
            }
        })
    }

    /// The next batch as typed records when the node sent them binary; `None` at the
    /// end. Batches may be empty.
    pub async fn next_records(&mut self) -> Result<Option<RecordBatch>, NodeRequestError> {
        let Some(c) = self.next_chunk().await? else {
            return Ok(None);
        };
        let Some(body) = c.records else {
            return Ok(Some(RecordBatch::Lines(c.lines)));
        };
        let mut dec = rampart_recorder::codec::BlockDecoder::new(&body);
        let mut records = Vec::new();
        loop {
            match dec.next_record() {
                Ok(Some(r)) => records.push(r),
                Ok(None) => break,
                Err(e) => {
                    return Err(NodeRequestError::Node {
                        node: self.node.clone(),
                        message: format!("chunk {}: {e}", c.seq),
                    })
                }
            }
        }
        Ok(Some(RecordBatch::Records(records)))
    }

    async fn next_chunk(&mut self) -> Result<Option<ReplyChunk>, NodeRequestError> {
        if self.done {
            return Ok(None);
        }
        let Some(raw) = self.replies.next().await? else {
            return Err(NodeRequestError::Node {
                node: self.node.clone(),
                message: "the answer stopped before its end".into(),
            });
        };
        self.received_bytes += raw.len() as u64;
        let c = ReplyChunk::decode(&raw)?;
        if c.seq != self.next_seq {
            return Err(NodeRequestError::Gap {
                node: self.node.clone(),
                want: self.next_seq,
                got: c.seq,
            });
        }
        self.next_seq += 1;
        if c.end {
            self.done = true;
            self.summary = c.summary.clone();
            if let Some(message) = c.error.clone() {
                return Err(NodeRequestError::Node {
                    node: self.node.clone(),
                    message,
                });
            }
        }
        Ok(Some(c))
    }

    /// Bytes received so far, as they came over the wire.
    pub fn received_bytes(&self) -> u64 {
        self.received_bytes
    }

    /// What the node reported at the end (record counts, an action's audit).
    pub fn summary(&self) -> Option<&serde_json::Value> {
        self.summary.as_ref()
    }

    /// Reads the whole answer: every line, and the summary.
    pub async fn collect(mut self) -> Result<(Vec<String>, serde_json::Value), NodeRequestError> {
        let mut lines = Vec::new();
        while let Some(b) = self.next_batch().await? {
            lines.extend(b.lines().map(str::to_string));
        }
        Ok((
            lines,
            self.summary.take().unwrap_or(serde_json::Value::Null),
        ))
    }
}

/// How often central renews a live stream's lease on the node: a third of the lease
/// (`rampart_agent::fleet::STREAM_LEASE`, 30 s), so one lost renewal ends nothing.
fn rampart_agent_lease_period() -> Duration {
    Duration::from_secs(10)
}

/// A live stream from a node; dropping it cancels the stream on the node.
pub struct LiveStream {
    records: RecordStream,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl LiveStream {
    /// The next batch of JSON lines (possibly empty: the node's heartbeat); `None` when
    /// the node ended the stream.
    pub async fn next_batch(&mut self) -> Result<Option<String>, NodeRequestError> {
        self.records.next_batch().await
    }

    /// As [`LiveStream::next_batch`], typed when the node sent binary records.
    pub async fn next_records(&mut self) -> Result<Option<RecordBatch>, NodeRequestError> {
        self.records.next_records().await
    }
}

/// Sends requests to nodes by name.
#[derive(Clone)]
pub struct NodeClient {
    plane: Arc<dyn RequestPlane>,
    /// How long to wait for each chunk of an answer.
    pub idle: Duration,
    /// Where response commands' audit records go (central's store).
    store: Option<Arc<dyn Store>>,
    /// The largest incident bundle taken from a node.
    pub max_bundle_bytes: u64,
}

impl NodeClient {
    pub fn new(plane: Arc<dyn RequestPlane>, store: Option<Arc<dyn Store>>) -> Self {
        Self {
            plane,
            idle: Duration::from_secs(10),
            store,
            max_bundle_bytes: rampart_bus::rpc::MAX_BUNDLE_BYTES,
        }
    }

    async fn send(&self, node: &str, req: &NodeRequest) -> Result<RecordStream, NodeRequestError> {
        let payload =
            Bytes::from(serde_json::to_vec(req).map_err(|e| BusError::Publish(e.to_string()))?);
        let replies = self.plane.request(node, payload, self.idle).await?;
        Ok(RecordStream {
            node: node.into(),
            replies,
            next_seq: 0,
            done: false,
            summary: None,
            received_bytes: 0,
        })
    }

    /// The node's name and version, if it is connected.
    pub async fn ping(&self, node: &str) -> Result<serde_json::Value, NodeRequestError> {
        Ok(self
            .send(node, &NodeRequest::Ping)
            .await?
            .collect()
            .await?
            .1)
    }

    /// Records from the node's flight recorder.
    pub async fn query_events(
        &self,
        node: &str,
        query: EventQuery,
    ) -> Result<RecordStream, NodeRequestError> {
        self.send(node, &NodeRequest::Query(query)).await
    }

    /// Runs `rules` over the node's recorded history; the hits come back as alerts.
    pub async fn retro_hunt(
        &self,
        node: &str,
        query: EventQuery,
        rules: Vec<RulesText>,
    ) -> Result<RecordStream, NodeRequestError> {
        self.send(node, &NodeRequest::RetroHunt { query, rules })
            .await
    }

    /// A response action on the node. Central records who asked before sending, and the
    /// node's audit record of what happened when it answers, both in the store.
    pub async fn respond(
        &self,
        node: &str,
        command: RespondCommand,
    ) -> Result<serde_json::Value, NodeRequestError> {
        let now = rampart_event::wall_ns();
        let asked = AuditRecord {
            id: rampart_event::audit_id(now),
            ts_ns: now,
            origin: "central".into(),
            actor: command.operator.clone(),
            action: format!("response.request.{}", command.action),
            target: format!("{node}/{}", command.container),
            detail: serde_json::to_string(&command).unwrap_or_default(),
        };
        // Central's own record: no node is marked seen for it.
        self.audit("", vec![asked]).await?;
        let (_, summary) = self
            .send(node, &NodeRequest::Respond(command))
            .await?
            .collect()
            .await?;
        if let Some(rec) = summary
            .get("audit")
            .and_then(|a| serde_json::from_value::<AuditRecord>(a.clone()).ok())
        {
            self.audit(node, vec![rec]).await?;
        }
        Ok(summary)
    }

    /// The node's live events: records the query selects as its recorder seals them,
    /// batch by batch, until the returned stream is dropped (then central cancels it
    /// on the node; meanwhile it renews the node's lease on it).
    pub async fn stream_events(
        &self,
        node: &str,
        query: EventQuery,
    ) -> Result<LiveStream, NodeRequestError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "{:x}-{}-{}",
            rampart_event::wall_ns(),
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let records = self
            .send(
                node,
                &NodeRequest::Stream {
                    id: id.clone(),
                    query,
                },
            )
            .await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let client = self.clone();
        let node_name = node.to_string();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            let renew_every = rampart_agent_lease_period();
            loop {
                let cancel = tokio::select! {
                    _ = &mut stopped => true,
                    _ = tokio::time::sleep(renew_every) => false,
                };
                let lease = NodeRequest::StreamLease {
                    id: id.clone(),
                    cancel,
                };
                let answer = async { client.send(&node_name, &lease).await?.collect().await }.await;
                match answer {
                    Ok((_, summary)) if !cancel && summary["open"] == false => break,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(node = %node_name, error = %e, cancel, "stream lease")
                    }
                }
                if cancel {
                    break;
                }
            }
        });
        Ok(LiveStream {
            records,
            _stop: stop,
        })
    }

    /// Deploys a rules file (or, with `policy`, a response policy) to the node; the node
    /// checks it against what it runs and reloads, or says where it is wrong.
    pub async fn deploy(
        &self,
        node: &str,
        doc: DeployText,
        policy: bool,
    ) -> Result<DeployAnswer, NodeRequestError> {
        let req = if policy {
            NodeRequest::DeployPolicy(doc)
        } else {
            NodeRequest::DeployRules(doc)
        };
        let (_, summary) = self.send(node, &req).await?.collect().await?;
        serde_json::from_value(summary).map_err(|e| NodeRequestError::Node {
            node: node.into(),
            message: format!("a deploy answer that does not decode: {e}"),
        })
    }

    /// The incident bundle of an alert `node` raised (`alert_id` as the node knows it),
    /// built there from its recorder and captures and sent in pieces; the whole is
    /// checked against the size and SHA-256 the node reports at the end.
    pub async fn incident_bundle(
        &self,
        node: &str,
        alert_id: &str,
        before: Duration,
        after: Duration,
    ) -> Result<(Vec<u8>, IncidentAnswer), NodeRequestError> {
        let req = NodeRequest::IncidentBundle(IncidentRequest {
            alert_id: alert_id.into(),
            before_s: before.as_secs(),
            after_s: after.as_secs(),
            max_bytes: self.max_bundle_bytes,
        });
        let mut answer = self.send(node, &req).await?;
        let mut data = Vec::new();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        while let Some(chunk) = answer.next_chunk().await? {
            let Some(piece) = chunk.records else { continue };
            // A node that ignores the bound is cut off here, before it fills memory.
            if (data.len() + piece.len()) as u64 > self.max_bundle_bytes {
                return Err(NodeRequestError::BundleTooLarge {
                    node: node.into(),
                    limit: self.max_bundle_bytes >> 20,
                });
            }
            digest.update(&piece);
            data.extend_from_slice(&piece);
        }
        let summary = answer.summary.take().unwrap_or_default();
        let sent: IncidentAnswer =
            serde_json::from_value(summary).map_err(|e| NodeRequestError::Node {
                node: node.into(),
                message: format!("an incident answer that does not decode: {e}"),
            })?;
        let damaged = |what: String| NodeRequestError::BundleDamaged {
            node: node.into(),
            what,
        };
        if sent.bytes != data.len() as u64 {
            return Err(damaged(format!(
                "{} bytes came of the {} sent",
                data.len(),
                sent.bytes
            )));
        }
        let got: String = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if got != sent.sha256 {
            return Err(damaged(format!(
                "SHA-256 {got}, where the node sent {}",
                sent.sha256
            )));
        }
        Ok((data, sent))
    }

    async fn audit(&self, node: &str, audit: Vec<AuditRecord>) -> Result<(), NodeRequestError> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let node = node.to_string();
        tokio::task::spawn_blocking(move || {
            store.ingest(&Ingest {
                node: &node,
                node_version: "",
                seen_ns: rampart_event::wall_ns(),
                alerts: &[],
                lifecycle: &[],
                audit: &audit,
            })
        })
        .await
        .map_err(|e| NodeRequestError::Store(e.to_string()))?
        .map_err(|e| NodeRequestError::Store(e.to_string()))?;
        Ok(())
    }
}

/// The API's way to the nodes: event queries and retro-hunts, whole answers.
#[async_trait::async_trait]
impl rampart_api::NodeGateway for NodeClient {
    async fn query(
        &self,
        node: &str,
        mut query: EventQuery,
    ) -> Result<rampart_api::NodeAnswer, rampart_api::NodeCallError> {
        // Binary over the wire (nodes that predate it answer with lines anyway).
        query.binary = true;
        let (lines, summary) = async { self.query_events(node, query).await?.collect().await }
            .await
            .map_err(gateway_error)?;
        Ok(rampart_api::NodeAnswer { lines, summary })
    }

    async fn retro_hunt(
        &self,
        node: &str,
        query: EventQuery,
        rules: Vec<RulesText>,
    ) -> Result<rampart_api::NodeAnswer, rampart_api::NodeCallError> {
        let (lines, summary) = async {
            NodeClient::retro_hunt(self, node, query, rules)
                .await?
                .collect()
                .await
        }
        .await
        .map_err(gateway_error)?;
        Ok(rampart_api::NodeAnswer { lines, summary })
    }

    async fn stream_events(
        &self,
        node: &str,
        mut query: EventQuery,
    ) -> Result<rampart_api::nodes::NodeLines, rampart_api::NodeCallError> {
        query.binary = true;
        let live = NodeClient::stream_events(self, node, query)
            .await
            .map_err(gateway_error)?;
        Ok(Box::pin(futures_util::stream::unfold(
            Some(live),
            |live| async move {
                let mut live = live?;
                match live.next_batch().await {
                    Ok(Some(batch)) => {
                        Some((Ok(batch.lines().map(str::to_string).collect()), Some(live)))
                    }
                    Ok(None) => None,
                    Err(e) => Some((Err(gateway_error(e)), None)),
                }
            },
        )))
    }

    async fn deploy(
        &self,
        node: &str,
        kind: rampart_api::DeployKind,
        doc: DeployText,
    ) -> Result<DeployAnswer, rampart_api::NodeCallError> {
        NodeClient::deploy(
            self,
            node,
            doc,
            kind == rampart_api::DeployKind::ResponsePolicy,
        )
        .await
        .map_err(gateway_error)
    }

    async fn respond(
        &self,
        node: &str,
        command: RespondCommand,
    ) -> Result<serde_json::Value, rampart_api::NodeCallError> {
        NodeClient::respond(self, node, command)
            .await
            .map_err(gateway_error)
    }

    async fn incident_bundle(
        &self,
        node: &str,
        alert_id: &str,
        before: Duration,
        after: Duration,
    ) -> Result<rampart_api::nodes::NodeBundle, rampart_api::NodeCallError> {
        match NodeClient::incident_bundle(self, node, alert_id, before, after).await {
            Ok((data, answer)) => Ok(rampart_api::nodes::NodeBundle { data, answer }),
            // Too large is about the request (its window), as the node's own refusal is.
            Err(e @ NodeRequestError::BundleTooLarge { .. }) => {
                Err(rampart_api::NodeCallError::Refused(e.to_string()))
            }
            Err(e) => Err(gateway_error(e)),
        }
    }
}

/// A node's own error is about the request; the rest is about reaching it.
fn gateway_error(e: NodeRequestError) -> rampart_api::NodeCallError {
    match e {
        NodeRequestError::Node { node, message }
            if message != "the answer stopped before its end" =>
        {
            rampart_api::NodeCallError::Refused(format!("node {node}: {message}"))
        }
        other => rampart_api::NodeCallError::Unreachable(other.to_string()),
    }
}
