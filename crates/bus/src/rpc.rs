//! Request/reply between central and one node: central asks the node that holds the
//! data (recorder queries, retro-hunts, incident bundles) or the containers (response
//! commands), and the node answers with a stream of chunks. Raw events stay on the
//! nodes; they cross the network only when asked for.
//!
//! The transport is behind [`RequestPlane`] (NATS core request/reply in
//! `rampart-bus-nats`: subject `rampart.rpc.<node>`, answers to the caller's inbox).
//! A reply is a sequence of [`ReplyChunk`]s numbered from 0; the last one has `end`
//! set. The caller checks the numbering, so a chunk lost on the way is an error, never
//! a silently short answer.
//!
//! A chunk travels in a binary frame (`RPC1`, sequence, flags, the error and summary
//! lengths, then those and the lines as they are), so a chunk of records is not
//! escaped into a JSON string and parsed back out on the way; [`ReplyChunk::decode`]
//! still reads the JSON chunks of older nodes.
//!
//! Records may instead travel in their compact binary form ([`EventQuery::binary`]):
//! a frame flagged `records` carries one body of the flight recorder's block encoding
//! (strings, containers and processes interned once per chunk, times as deltas), about
//! a twentieth of the records' JSON and no JSON work on either side. This crate does
//! not read it (it knows no event); `rampart_recorder::codec` does. A node that does
//! not know the flag answers with JSON lines, which central still reads.

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::BusError;

/// What central asks a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NodeRequest {
    /// Answered by a summary with the node's name and version.
    Ping,
    /// Records from the node's flight recorder, as JSON lines.
    Query(EventQuery),
    /// Runs rules over the recorder's history; the hits come back as alerts marked
    /// `retro`.
    RetroHunt {
        query: EventQuery,
        /// Rules files' text, by name (as `rampart rules` reads them).
        rules: Vec<RulesText>,
    },
    /// A response action on one of the node's containers, audited.
    Respond(RespondCommand),
    /// Events (records the query selects) as the node's recorder seals them, from now
    /// on, in chunks at least every few seconds (empty ones keep the answer alive),
    /// until the requester cancels it or stops renewing it ([`NodeRequest::StreamLease`]).
    Stream { id: String, query: EventQuery },
    /// Renews the live stream `id` (or, with `cancel`, ends it).
    StreamLease {
        id: String,
        #[serde(default)]
        cancel: bool,
    },
    /// A rules file: checked against the node's rules, installed among its deployed
    /// rules and reloaded when it loads; otherwise refused with located diagnostics
    /// (the running rules stay). Answered by a [`DeployAnswer`] summary.
    DeployRules(DeployText),
    /// A response policy: parsed, then written over the node's policy file and
    /// reloaded; refused with located diagnostics when it does not parse.
    DeployPolicy(DeployText),
    /// The incident bundle of an alert the node raised: its recorder's tar.gz, with
    /// the packet captures the node keeps. The file travels in pieces: each chunk's
    /// binary body ([`ReplyChunk::records`]) is the next piece, in order; chunks
    /// without a body only keep the answer alive while the node builds the bundle.
    /// The last chunk's summary is an [`IncidentAnswer`] whose size and SHA-256 the
    /// caller checks against what it received.
    IncidentBundle(IncidentRequest),
}

/// Which bundle central asks a node for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRequest {
    /// The alert's id as the node raised it (not scoped by the node's name).
    pub alert_id: String,
    /// The window on each side of the alert, in seconds.
    pub before_s: u64,
    pub after_s: u64,
    /// The node refuses a bundle larger than this rather than send it.
    pub max_bytes: u64,
}

/// What a bundle holds, with its size and digest (the last chunk's summary).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentAnswer {
    pub node: String,
    pub alert_id: String,
    /// The tar.gz's size.
    pub bytes: u64,
    /// SHA-256 of the tar.gz, lowercase hex.
    pub sha256: String,
    #[serde(default)]
    pub events: u64,
    #[serde(default)]
    pub processes: u64,
    #[serde(default)]
    pub connections: u64,
    #[serde(default)]
    pub files_written: u64,
    /// Packet captures in the bundle (`packets/`).
    #[serde(default)]
    pub captures: u64,
}

/// The largest incident bundle central asks for by default: it is held in memory
/// and answered as one message.
pub const MAX_BUNDLE_BYTES: u64 = 64 << 20;

/// A node's error answer to [`NodeRequest::IncidentBundle`] starts with this when the
/// alert is not in its recorder (not sealed yet, aged out, or never raised there).
pub const ALERT_NOT_FOUND: &str = "alert not found";

/// A node's error answer to [`NodeRequest::IncidentBundle`] starts with this when the
/// bundle is larger than the request allows.
pub const BUNDLE_TOO_LARGE: &str = "bundle too large";

/// A document central deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployText {
    /// A plain file name (`web.yaml`).
    pub name: String,
    pub text: String,
    /// Who asked (a token's subject).
    #[serde(default)]
    pub operator: String,
}

/// A node's answer to a deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployAnswer {
    pub node: String,
    /// Installed and reloaded.
    pub applied: bool,
    /// Rules (or policy responses) the document defines.
    #[serde(default)]
    pub count: u64,
    #[serde(default)]
    pub diagnostics: Vec<DeployDiagnostic>,
}

/// Where a deployed document is wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployDiagnostic {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

/// A recorder query (see `rampart query`): every filter optional, all must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventQuery {
    pub since_ns: Option<u64>,
    pub until_ns: Option<u64>,
    /// Container id prefix or name, or `host`.
    pub container: Option<String>,
    pub image: Option<String>,
    /// Event kinds or families (`exec`, `file`, …); empty: all.
    pub kinds: Vec<String>,
    /// A rule-language condition, compiled on the node against its rules' lists and
    /// macros.
    #[serde(rename = "where")]
    pub condition: Option<String>,
    /// Which records: events by default; alerts and lifecycle when asked.
    pub events: Option<bool>,
    pub alerts: bool,
    pub lifecycle: bool,
    /// At most this many records (0: no bound).
    pub limit: u64,
    /// Answer with the records in the recorder's binary block encoding
    /// ([`ReplyChunk::records`]) instead of JSON lines.
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RulesText {
    pub name: String,
    pub text: String,
}

/// A response command. `action` and `params` are the response policy's names
/// (`kill`, `kill_tree`, `freeze`, `stop`, `restart`, `quarantine`, `block`,
/// `deny_exec`) and parameters (`grace_s`, `allow`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RespondCommand {
    pub action: String,
    #[serde(default)]
    pub params: serde_json::Value,
    /// Container id (or a unique prefix of it) or name.
    pub container: String,
    /// Only this process of the container (kill).
    #[serde(default)]
    pub pid: Option<u32>,
    /// Undo (unfreeze, release) instead.
    #[serde(default)]
    pub undo: bool,
    /// Resolve and check everything, do nothing: the audit says what would happen.
    #[serde(default)]
    pub dry_run: bool,
    /// Who asked (a token's subject): written in the audit record.
    pub operator: String,
    #[serde(default)]
    pub reason: String,
}

/// One piece of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyChunk {
    /// 0, 1, 2… in the order sent.
    pub seq: u64,
    /// JSON lines (records), possibly empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lines: String,
    /// The last chunk.
    #[serde(default)]
    pub end: bool,
    /// The request failed (on the last chunk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the node reports at the end (counts, the audit record of an action).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<serde_json::Value>,
    /// Records as one body of the recorder's block encoding, instead of `lines` (only
    /// in binary frames: the JSON form has no place for them).
    #[serde(skip)]
    pub records: Option<Bytes>,
}

/// The first bytes of a binary chunk frame.
const FRAME_MAGIC: &[u8; 4] = b"RPC1";
const FRAME_END: u8 = 1;
/// The body is [`ReplyChunk::records`], not lines.
const FRAME_RECORDS: u8 = 2;
/// Magic, sequence, flags, error and summary lengths.
const FRAME_HEADER: usize = 4 + 8 + 1 + 4 + 4;

impl ReplyChunk {
    /// The binary frame.
    pub fn encode(&self) -> Bytes {
        let error = self.error.as_deref().unwrap_or_default().as_bytes();
        // A JSON value always serializes.
        let summary = self
            .summary
            .as_ref()
            .map(|v| serde_json::to_vec(v).unwrap_or_default())
            .unwrap_or_default();
        let body = match &self.records {
            Some(r) => &r[..],
            None => self.lines.as_bytes(),
        };
        let mut b = Vec::with_capacity(FRAME_HEADER + error.len() + summary.len() + body.len());
        b.extend_from_slice(FRAME_MAGIC);
        b.extend_from_slice(&self.seq.to_le_bytes());
        let mut flags = if self.end { FRAME_END } else { 0 };
        if self.records.is_some() {
            flags |= FRAME_RECORDS;
        }
        b.push(flags);
        b.extend_from_slice(&(error.len() as u32).to_le_bytes());
        b.extend_from_slice(&(summary.len() as u32).to_le_bytes());
        b.extend_from_slice(error);
        b.extend_from_slice(&summary);
        b.extend_from_slice(body);
        Bytes::from(b)
    }

    /// The JSON form older nodes send (kept to measure against, and readable by
    /// [`ReplyChunk::decode`]).
    pub fn encode_json(&self) -> Bytes {
        // A struct of strings, numbers and JSON values always serializes.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(b: &[u8]) -> Result<Self, BusError> {
        let bad = |what: &str| BusError::Consume(format!("bad reply chunk: {what}"));
        let Some(rest) = b.strip_prefix(FRAME_MAGIC) else {
            return serde_json::from_slice(b)
                .map_err(|e| BusError::Consume(format!("bad reply chunk: {e}")));
        };
        if b.len() < FRAME_HEADER {
            return Err(bad("a truncated frame header"));
        }
        let u32_at = |i: usize| {
            let mut x = [0u8; 4];
            x.copy_from_slice(&rest[i..i + 4]);
            u32::from_le_bytes(x) as usize
        };
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&rest[..8]);
        let flags = rest[8];
        let (error_len, summary_len) = (u32_at(9), u32_at(13));
        let body = &rest[17..];
        if body.len() < error_len.saturating_add(summary_len) {
            return Err(bad("lengths beyond the frame"));
        }
        let (error, body) = body.split_at(error_len);
        let (summary, lines) = body.split_at(summary_len);
        let (lines, records) = if flags & FRAME_RECORDS != 0 {
            (String::new(), Some(Bytes::copy_from_slice(lines)))
        } else {
            let lines =
                String::from_utf8(lines.to_vec()).map_err(|_| bad("lines are not UTF-8"))?;
            (lines, None)
        };
        Ok(Self {
            seq: u64::from_le_bytes(seq),
            lines,
            records,
            end: flags & FRAME_END != 0,
            error: if error.is_empty() {
                None
            } else {
                Some(String::from_utf8_lossy(error).into_owned())
            },
            summary: if summary.is_empty() {
                None
            } else {
                Some(serde_json::from_slice(summary).map_err(|e| bad(&e.to_string()))?)
            },
        })
    }
}

/// Sends the chunks of one answer.
#[async_trait]
pub trait Replier: Send {
    async fn send(&mut self, chunk: Bytes) -> Result<(), BusError>;
}

/// One request a node received.
pub struct IncomingRequest {
    pub payload: Bytes,
    pub replier: Box<dyn Replier>,
}

/// Requests addressed to this node, in arrival order.
#[async_trait]
pub trait RequestStream: Send {
    /// The next request; `None` once the plane is closed.
    async fn next(&mut self) -> Option<IncomingRequest>;
}

/// The chunks of one answer, in order.
#[async_trait]
pub trait ReplyStream: Send {
    /// The next chunk (raw); `None` when the answer ended or timed out.
    async fn next(&mut self) -> Result<Option<Bytes>, BusError>;
}

/// Request/reply addressed by node name.
#[async_trait]
pub trait RequestPlane: Send + Sync + 'static {
    /// Receives the requests for `node`.
    async fn serve(&self, node: &str) -> Result<Box<dyn RequestStream>, BusError>;
    /// Sends a request to `node`; the answer's chunks follow. `idle` bounds the wait
    /// for each chunk (no node answering at all is an error after it).
    async fn request(
        &self,
        node: &str,
        payload: Bytes,
        idle: std::time::Duration,
    ) -> Result<Box<dyn ReplyStream>, BusError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_json() {
        let r = NodeRequest::Query(EventQuery {
            container: Some("web".into()),
            kinds: vec!["exec".into()],
            condition: Some("proc.name = sh".into()),
            limit: 10,
            ..Default::default()
        });
        let j = serde_json::to_string(&r).unwrap();
        assert!(
            j.contains("\"type\":\"query\"") && j.contains("\"where\""),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<NodeRequest>(&j).unwrap(), r);
        let c = ReplyChunk {
            seq: 3,
            lines: "{}\n".into(),
            end: true,
            error: None,
            summary: None,
            records: None,
        };
        assert_eq!(ReplyChunk::decode(&c.encode()).unwrap(), c);
        assert_eq!(
            ReplyChunk::decode(&c.encode_json()).unwrap(),
            c,
            "older nodes' JSON"
        );
        let full = ReplyChunk {
            seq: 9,
            lines: "{\"a\":\"\\n\"}\n".into(),
            end: true,
            error: Some("boom".into()),
            summary: Some(serde_json::json!({"events": 1})),
            records: None,
        };
        assert_eq!(ReplyChunk::decode(&full.encode()).unwrap(), full);
        // Binary records (not UTF-8) come back as they went, with the summary.
        let binary = ReplyChunk {
            seq: 4,
            lines: String::new(),
            end: false,
            error: None,
            summary: Some(serde_json::json!({"n": 2})),
            records: Some(Bytes::from_static(&[0, 0xff, 0x80, 7])),
        };
        assert_eq!(ReplyChunk::decode(&binary.encode()).unwrap(), binary);
        assert!(ReplyChunk::decode(b"nope").is_err());
        // Cut in the header, and inside the error and summary.
        let frame = full.encode();
        for cut in [5, 20, FRAME_HEADER + 6] {
            assert!(ReplyChunk::decode(&frame[..cut]).is_err(), "cut at {cut}");
        }
    }
}
