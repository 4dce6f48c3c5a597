//! The node's side of request/reply with central: recorder queries, retro-hunts and
//! response commands, answered from this node's flight recorder and responder. Raw
//! events stay on the node until central asks for them.
//!
//! Each request is handled on its own task; the recorder is read through a read-only
//! handle (the writer keeps recording meanwhile) on a blocking thread, and the answer
//! goes back in chunks of at most [`CHUNK_BYTES`] of JSON lines (the records as
//! `rampart query --format json` prints them), numbered so central can tell a lost
//! chunk from the end.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rampart_bus::rpc::{
    EventQuery, IncomingRequest, NodeRequest, ReplyChunk, RequestPlane, RespondCommand,
};
use rampart_bus::BusError;
use rampart_recorder::{Query, Record, RecordTypes, Recorder};
use rampart_respond::policy::{ActionName, ActionParams};
use rampart_respond::{ActionSpec, ManualRequest, Mode, PolicyStore, Responder, Toolbox};

/// A chunk holds up to this many bytes of JSON lines (NATS's default message bound is
/// 1 MiB).
pub const CHUNK_BYTES: usize = 256 << 10;

/// What the node answers from.
pub struct NodeService {
    pub node: String,
    /// The flight recorder's directory.
    pub recorder_dir: PathBuf,
    /// The node's rules (lists and macros for `where` conditions).
    pub rules: Vec<PathBuf>,
    /// Carries out response commands (manual requests: no policy, audited).
    pub responder: Arc<Responder>,
}

impl NodeService {
    pub fn new(node: &str, recorder_dir: &Path, rules: Vec<PathBuf>) -> Self {
        Self {
            node: node.into(),
            recorder_dir: recorder_dir.to_path_buf(),
            rules,
            responder: Arc::new(Responder::new(
                Arc::new(PolicyStore::empty()),
                Toolbox::new(),
            )),
        }
    }
}

/// Serves central's requests for this node until the plane closes or `stop` resolves.
pub async fn serve_requests(
    plane: Arc<dyn RequestPlane>,
    service: Arc<NodeService>,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    let mut requests = plane.serve(&service.node).await?;
    tracing::info!(node = %service.node, "serving central's requests");
    tokio::pin!(stop);
    loop {
        let req = tokio::select! {
            _ = &mut stop => return Ok(()),
            r = requests.next() => r,
        };
        let Some(req) = req else { return Ok(()) };
        tokio::spawn(handle(service.clone(), req));
    }
}

/// Sends chunks as the blocking side produces them.
struct ChunkSender {
    tx: tokio::sync::mpsc::Sender<ReplyChunk>,
    seq: u64,
    buf: String,
}

impl ChunkSender {
    /// Adds one JSON line; false once central has gone away.
    fn line(&mut self, line: &str) -> bool {
        self.buf.push_str(line);
        self.buf.push('\n');
        if self.buf.len() >= CHUNK_BYTES {
            return self.flush(false, None, None);
        }
        true
    }

    fn flush(
        &mut self,
        end: bool,
        error: Option<String>,
        summary: Option<serde_json::Value>,
    ) -> bool {
        let c = ReplyChunk {
            seq: self.seq,
            lines: std::mem::take(&mut self.buf),
            end,
            error,
            summary,
        };
        self.seq += 1;
        self.tx.blocking_send(c).is_ok()
    }
}

async fn handle(service: Arc<NodeService>, mut req: IncomingRequest) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<ReplyChunk>(8);
    let payload = req.payload.clone();
    let worker = tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender {
            tx,
            seq: 0,
            buf: String::new(),
        };
        let r = serde_json::from_slice::<NodeRequest>(&payload)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|r| answer(&service, &r, &mut out));
        match r {
            Ok(summary) => out.flush(true, None, Some(summary)),
            Err(e) => out.flush(true, Some(e), None),
        };
    });
    while let Some(chunk) = rx.recv().await {
        if let Err(e) = req.replier.send(chunk.encode()).await {
            tracing::debug!(error = %e, "central went away mid-answer");
            break;
        }
    }
    drop(rx);
    let _ = worker.await;
}

fn answer(
    service: &NodeService,
    req: &NodeRequest,
    out: &mut ChunkSender,
) -> Result<serde_json::Value, String> {
    match req {
        NodeRequest::Ping => Ok(serde_json::json!({
            "node": service.node,
            "version": env!("CARGO_PKG_VERSION"),
        })),
        NodeRequest::Query(q) => query(service, q, out),
        NodeRequest::RetroHunt { query, rules } => retro_hunt(service, query, rules, out),
        NodeRequest::Respond(c) => respond(service, c),
    }
}

fn recorder_query(service: &NodeService, q: &EventQuery) -> Result<Query, String> {
    let mut rq = Query::new();
    if let Some(t) = q.since_ns {
        rq = rq.since(t);
    }
    if let Some(t) = q.until_ns {
        rq = rq.until(t);
    }
    if let Some(c) = &q.container {
        rq = rq.container(c.clone());
    }
    if let Some(i) = &q.image {
        rq = rq.image(i.clone());
    }
    if let Some(kinds) = rampart_sensor::parse_kinds(&q.kinds).map_err(|e| e.to_string())? {
        rq = rq.kinds(kinds.into_iter().collect());
    }
    if let Some(c) = &q.condition {
        rq = rq
            .with_where(c, &service.rules)
            .map_err(|e| format!("where: {e}"))?;
    }
    Ok(rq.records(RecordTypes {
        events: q.events.unwrap_or(true),
        alerts: q.alerts,
        lifecycle: q.lifecycle,
    }))
}

fn open_recorder(service: &NodeService) -> Result<Arc<Recorder>, String> {
    Recorder::open_read_only(&service.recorder_dir)
        .map_err(|e| format!("recorder {}: {e}", service.recorder_dir.display()))
}

fn record_json(r: &Record) -> Result<String, serde_json::Error> {
    match r {
        Record::Event(e) => serde_json::to_string(e),
        Record::Alert(a) => serde_json::to_string(a),
        Record::Lifecycle(l) => serde_json::to_string(l),
    }
}

fn query(
    service: &NodeService,
    q: &EventQuery,
    out: &mut ChunkSender,
) -> Result<serde_json::Value, String> {
    let rq = recorder_query(service, q)?;
    let recorder = open_recorder(service)?;
    let mut it = recorder.query(&rq).map_err(|e| e.to_string())?;
    let mut n = 0u64;
    for r in it.by_ref() {
        let line = record_json(&r).map_err(|e| e.to_string())?;
        if !out.line(&line) {
            return Err("central went away".into());
        }
        n += 1;
        if q.limit > 0 && n >= q.limit {
            break;
        }
    }
    Ok(serde_json::json!({
        "node": service.node,
        "records": n,
        "skipped_blocks": it.skipped().len(),
    }))
}

fn retro_hunt(
    service: &NodeService,
    q: &EventQuery,
    rules: &[rampart_bus::rpc::RulesText],
    out: &mut ChunkSender,
) -> Result<serde_json::Value, String> {
    if rules.is_empty() {
        return Err("a retro-hunt needs at least one rules file".into());
    }
    // The engine loads files: the texts go to a private directory of this request.
    let dir = std::env::temp_dir().join(format!(
        "rampart-hunt-{}-{}",
        std::process::id(),
        rampart_event::wall_ns()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let mut paths = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            // Only the base name is kept: a name cannot point outside the directory.
            let base = Path::new(&r.name)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let p = dir.join(format!("{i:03}-{base}.yaml"));
            std::fs::write(&p, &r.text).map_err(|e| format!("{}: {e}", p.display()))?;
            paths.push(p);
        }
        let rq = recorder_query(service, q)?;
        let recorder = open_recorder(service)?;
        let report = recorder
            .retro_hunt(&paths, &rq)
            .map_err(|e| e.to_string())?;
        let mut n = 0u64;
        for a in &report.alerts {
            let line = serde_json::to_string(a).map_err(|e| e.to_string())?;
            if !out.line(&line) {
                return Err("central went away".into());
            }
            n += 1;
            if q.limit > 0 && n >= q.limit {
                break;
            }
        }
        Ok(serde_json::json!({
            "node": service.node,
            "events": report.events,
            "alerts": report.alerts.len(),
            "load_errors": report.load_errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        }))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn respond(service: &NodeService, c: &RespondCommand) -> Result<serde_json::Value, String> {
    let name: ActionName = serde_json::from_value(serde_json::Value::String(c.action.clone()))
        .map_err(|_| {
            format!(
                "unknown action {:?} (kill, kill_tree, freeze, stop, restart, quarantine, block, deny_exec)",
                c.action
            )
        })?;
    let params: ActionParams = if c.params.is_null() {
        ActionParams::default()
    } else {
        serde_json::from_value(c.params.clone()).map_err(|e| format!("params: {e}"))?
    };
    let action = ActionSpec::from_params(name, &params)?;
    let mut target = service
        .responder
        .toolbox()
        .docker()
        .and_then(|d| d.target(&c.container))
        .map_err(|e| format!("container {}: {e}", c.container))?;
    if let Some(pid) = c.pid {
        target.process = Some(rampart_respond::ProcessRef {
            pid,
            exec_id: None,
            exe: String::new(),
        });
    }
    let rec = service.responder.manual(&ManualRequest {
        action,
        target,
        undo: c.undo,
        mode: if c.dry_run {
            Mode::DryRun
        } else {
            Mode::Enforce
        },
        operator: c.operator.clone(),
        reason: c.reason.clone(),
    });
    tracing::warn!(node = %service.node, operator = %c.operator, action = %c.action, container = %c.container, result = ?rec.result, "response command from central");
    let fleet = rec.to_record(&service.node);
    Ok(serde_json::json!({
        "node": service.node,
        "audit": fleet,
        "response": rec,
    }))
}

/// A reply chunk as bytes (for tests of other transports).
pub fn encode_chunk(c: &ReplyChunk) -> Bytes {
    c.encode()
}
