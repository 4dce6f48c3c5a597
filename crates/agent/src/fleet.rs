//! The node's side of request/reply with central: recorder queries, retro-hunts and
//! response commands, answered from this node's flight recorder and responder. Raw
//! events stay on the node until central asks for them.
//!
//! Each request is handled on its own task; the recorder is read through a read-only
//! handle (the writer keeps recording meanwhile) on a blocking thread, and the answer
//! goes back in chunks of at most [`CHUNK_BYTES`] of JSON lines (the records as
//! `rampart query --format json` prints them), numbered so central can tell a lost
//! chunk from the end. A query or stream that asks for `binary` records gets them in
//! the recorder's own block encoding instead (one block body per chunk, of at most
//! [`BINARY_CHUNK_BYTES`]): no JSON on the node, a twentieth of the bytes on the wire.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rampart_bus::rpc::{
    DeployAnswer, DeployDiagnostic, DeployText, EventQuery, IncidentAnswer, IncidentRequest,
    IncomingRequest, NodeRequest, ReplyChunk, RequestPlane, RespondCommand,
};
use rampart_bus::BusError;
use rampart_recorder::{Query, Record, RecordTypes, Recorder};
use rampart_respond::policy::{ActionName, ActionParams};
use rampart_respond::{ActionSpec, ManualRequest, Mode, PolicyStore, Responder, Toolbox};

/// A chunk holds up to this many bytes of JSON lines (NATS's default message bound is
/// 1 MiB).
pub const CHUNK_BYTES: usize = 256 << 10;

/// A chunk of binary records holds up to this many bytes of block encoding: under
/// NATS's 1 MiB message bound with room for the frame and one more record. Fewer,
/// larger chunks cost fewer messages and fewer string tables (each chunk interns its
/// strings anew).
pub const BINARY_CHUNK_BYTES: usize = 896 << 10;

/// Live event streams a node serves at once, at most (each holds a blocking thread
/// following the recorder).
pub const MAX_STREAMS: usize = 8;

/// A live stream whose requester has not renewed it for this long ends (central renews
/// every third of it while its client listens; a central that died stops renewing).
pub const STREAM_LEASE: Duration = Duration::from_secs(30);

/// A live stream sends a chunk, empty if need be, at least this often, so central's
/// wait for the next chunk never runs out while the recorder is quiet.
pub const STREAM_HEARTBEAT: Duration = Duration::from_secs(2);

/// A live stream's events wait at most this long before they are sent.
const STREAM_FLUSH: Duration = Duration::from_millis(100);

/// Incident bundles a node builds at once, at most (each reads its recorder's window
/// on a blocking thread and writes a temporary file).
pub const MAX_BUNDLES: usize = 2;

/// What the node answers from.
pub struct NodeService {
    pub node: String,
    /// The flight recorder's directory.
    pub recorder_dir: PathBuf,
    /// The node's rules (lists and macros for `where` conditions).
    pub rules: Vec<PathBuf>,
    /// Carries out response commands (manual requests: no policy, audited).
    pub responder: Arc<Responder>,
    /// Where deployed rules and policies go, and how the node reloads; None: deploys
    /// are refused.
    pub deploy: Option<DeployTargets>,
    /// The network stage's packet captures (`network.capture.dir`): incident bundles
    /// take the alert's captures from there.
    pub captures: Option<PathBuf>,
    /// Live streams open, by id: when each was last renewed.
    streams: Mutex<HashMap<String, Instant>>,
    /// Incident bundles being built (each build holds a count until it ends, even
    /// when central has stopped waiting for it).
    bundles: Arc<std::sync::atomic::AtomicUsize>,
    /// Bytes of block encoding per chunk of binary records ([`BINARY_CHUNK_BYTES`];
    /// benchmarks set the previous 256 KiB to compare).
    pub binary_chunk_bytes: usize,
}

/// What a deploy from central changes on this node.
#[derive(Debug, Clone)]
pub struct DeployTargets {
    /// Deployed rules files (one of the node's rule paths).
    pub rules_dir: PathBuf,
    /// The response policy file the node runs, if any.
    pub policy: Option<PathBuf>,
    /// Raised to reload, as SIGHUP does.
    pub reload: Arc<std::sync::atomic::AtomicBool>,
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
            deploy: None,
            captures: None,
            streams: Mutex::new(HashMap::new()),
            bundles: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            binary_chunk_bytes: BINARY_CHUNK_BYTES,
        }
    }

    fn streams(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
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
    /// Records in the recorder's block encoding, when the request asked for `binary`.
    binary: Option<rampart_recorder::codec::BlockEncoder>,
    /// A binary chunk is sent once its encoding reaches this many bytes.
    binary_chunk_bytes: usize,
}

impl ChunkSender {
    /// Adds one record, as a JSON line or binary as the request asked; false once
    /// central has gone away.
    fn record(&mut self, r: &Record) -> Result<bool, String> {
        match &mut self.binary {
            Some(enc) => {
                enc.push(r);
                if enc.len() >= self.binary_chunk_bytes {
                    return Ok(self.flush(false, None, None));
                }
                Ok(true)
            }
            None => {
                let line = record_json(r).map_err(|e| e.to_string())?;
                Ok(self.line(&line))
            }
        }
    }

    /// Adds one JSON line; false once central has gone away.
    fn line(&mut self, line: &str) -> bool {
        self.buf.push_str(line);
        self.buf.push('\n');
        if self.buf.len() >= CHUNK_BYTES {
            return self.flush(false, None, None);
        }
        true
    }

    /// Sends one piece of a file as a chunk's binary body; false once central has gone
    /// away.
    fn body(&mut self, piece: Bytes) -> bool {
        let c = ReplyChunk {
            seq: self.seq,
            lines: String::new(),
            end: false,
            error: None,
            summary: None,
            records: Some(piece),
        };
        self.seq += 1;
        self.tx.blocking_send(c).is_ok()
    }

    fn flush(
        &mut self,
        end: bool,
        error: Option<String>,
        summary: Option<serde_json::Value>,
    ) -> bool {
        let records = match &mut self.binary {
            Some(enc) if !enc.is_empty() => Some(Bytes::from(enc.finish().0)),
            _ => None,
        };
        let c = ReplyChunk {
            seq: self.seq,
            lines: std::mem::take(&mut self.buf),
            end,
            error,
            summary,
            records,
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
            binary: None,
            binary_chunk_bytes: service
                .binary_chunk_bytes
                .clamp(4 << 10, BINARY_CHUNK_BYTES),
        };
        let r = serde_json::from_slice::<NodeRequest>(&payload)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(|r| {
                if let NodeRequest::Query(q) | NodeRequest::Stream { query: q, .. } = &r {
                    if q.binary {
                        out.binary = Some(Default::default());
                    }
                }
                answer(&service, &r, &mut out)
            });
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
        NodeRequest::Stream { id, query } => stream(service, id, query, out),
        NodeRequest::StreamLease { id, cancel } => {
            let mut streams = service.streams();
            let open = match streams.get_mut(id) {
                Some(_) if *cancel => {
                    streams.remove(id);
                    false
                }
                Some(renewed) => {
                    *renewed = Instant::now();
                    true
                }
                None => false,
            };
            Ok(serde_json::json!({ "node": service.node, "open": open }))
        }
        NodeRequest::DeployRules(d) => deploy_targets(service)
            .and_then(|t| deploy_rules(&service.node, &service.rules, t, d))
            .and_then(answer_json),
        NodeRequest::DeployPolicy(d) => deploy_targets(service)
            .and_then(|t| deploy_policy(&service.node, t, d))
            .and_then(answer_json),
        NodeRequest::IncidentBundle(r) => incident_bundle(service, r, out)
            .and_then(|a| serde_json::to_value(a).map_err(|e| e.to_string())),
    }
}

fn deploy_targets(service: &NodeService) -> Result<&DeployTargets, String> {
    service
        .deploy
        .as_ref()
        .ok_or_else(|| format!("node {} takes no deploys", service.node))
}

fn answer_json(a: DeployAnswer) -> Result<serde_json::Value, String> {
    serde_json::to_value(a).map_err(|e| e.to_string())
}

/// A deployed document's name: a plain file name (no directories), `.yaml` added to a
/// rules file without it.
fn deploy_name(given: &str, rules: bool) -> Result<String, String> {
    let plain = !given.is_empty()
        && !given.contains('/')
        && !given.contains('\0')
        && !given.starts_with('.')
        && given.len() <= 200;
    if !plain {
        return Err(format!(
            "{given:?}: a deployed file needs a plain file name (no '/', not hidden)"
        ));
    }
    Ok(
        if rules && !(given.ends_with(".yaml") || given.ends_with(".yml")) {
            format!("{given}.yaml")
        } else {
            given.to_string()
        },
    )
}

/// Writes `text` to `path` through a temporary file and a rename, so the node never
/// reloads half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.deploy-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The yaml files of a rules directory, sorted (as the loader reads them).
fn rule_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

type Located = (String, u32, u32, String);

fn load_errors(paths: &[PathBuf]) -> (usize, Vec<Located>) {
    let v = rampart_detect::tools::validate_files(paths);
    (
        v.rules,
        v.errors
            .into_iter()
            .map(|e| (e.file, e.line, e.col, e.message))
            .collect(),
    )
}

/// Checks a rules file with the node's own rules (its lists and macros) and installs it
/// when it adds no load error; the running rules stay otherwise.
/// `node` runs `rules` (its deployed rules directory among them).
pub fn deploy_rules(
    node: &str,
    rules: &[PathBuf],
    targets: &DeployTargets,
    d: &DeployText,
) -> Result<DeployAnswer, String> {
    let name = deploy_name(&d.name, true)?;
    let installed = targets.rules_dir.join(&name);
    // The node's rules as they would be: its own, the other deployed files, this one.
    let mut base: Vec<PathBuf> = rules
        .iter()
        .filter(|p| **p != targets.rules_dir)
        .cloned()
        .collect();
    base.extend(
        rule_files(&targets.rules_dir)
            .into_iter()
            .filter(|f| *f != installed),
    );
    let tmp = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let candidate = tmp.path().join(&name);
    std::fs::write(&candidate, &d.text).map_err(|e| format!("{}: {e}", candidate.display()))?;
    let (_, before) = load_errors(&base);
    let mut with = base;
    with.push(candidate.clone());
    let (count, after) = load_errors(&with);
    let shown = candidate.display().to_string();
    let diagnostics: Vec<DeployDiagnostic> = after
        .into_iter()
        .filter(|e| !before.contains(e))
        .map(|(file, line, column, message)| DeployDiagnostic {
            file: if file == shown { name.clone() } else { file },
            line,
            column,
            message,
        })
        .collect();
    if !diagnostics.is_empty() {
        tracing::warn!(node = %node, file = %name, operator = %d.operator, errors = diagnostics.len(), "deployed rules refused; the running rules stay");
        return Ok(DeployAnswer {
            node: node.to_string(),
            applied: false,
            count: 0,
            diagnostics,
        });
    }
    write_atomically(&installed, &d.text)?;
    targets
        .reload
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(node = %node, file = %installed.display(), operator = %d.operator, rules = count, "rules deployed from central; reloading");
    Ok(DeployAnswer {
        node: node.to_string(),
        applied: true,
        count: count as u64,
        diagnostics: Vec::new(),
    })
}

/// Parses a response policy and writes it over the node's policy file when it parses.
pub fn deploy_policy(
    node: &str,
    targets: &DeployTargets,
    d: &DeployText,
) -> Result<DeployAnswer, String> {
    let name = deploy_name(&d.name, false)?;
    let refused = |file: String, line: usize, column: usize, message: String| DeployAnswer {
        node: node.to_string(),
        applied: false,
        count: 0,
        diagnostics: vec![DeployDiagnostic {
            file,
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
            message,
        }],
    };
    let policy = match rampart_respond::Policy::parse(&d.text, Path::new(&name)) {
        Ok(p) => p,
        Err(rampart_respond::RespondError::Policy {
            file,
            line,
            column,
            message,
        }) => return Ok(refused(file.display().to_string(), line, column, message)),
        Err(e) => return Ok(refused(name, 0, 0, e.to_string())),
    };
    let path = targets.policy.as_ref().ok_or(
        "this node runs no response policy file (response.policy in its configuration), so there is none to replace",
    )?;
    write_atomically(path, &d.text)?;
    targets
        .reload
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(node = %node, file = %path.display(), operator = %d.operator, "response policy deployed from central; reloading");
    Ok(DeployAnswer {
        node: node.to_string(),
        applied: true,
        count: policy.file.responses.len() as u64,
        diagnostics: Vec::new(),
    })
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
        if !out.record(&r)? {
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

/// Follows the recorder: every record the query matches, from now on, as the recorder
/// seals its blocks, until central cancels or stops renewing the stream, or `limit`.
fn stream(
    service: &NodeService,
    id: &str,
    q: &EventQuery,
    out: &mut ChunkSender,
) -> Result<serde_json::Value, String> {
    let rq = recorder_query(service, q)?;
    {
        let mut streams = service.streams();
        if streams.len() >= MAX_STREAMS && !streams.contains_key(id) {
            return Err(format!(
                "node {}: {MAX_STREAMS} live streams are open already",
                service.node
            ));
        }
        streams.insert(id.to_string(), Instant::now());
    }
    struct Close<'a>(&'a NodeService, &'a str);
    impl Drop for Close<'_> {
        fn drop(&mut self) {
            self.0.streams().remove(self.1);
        }
    }
    let _close = Close(service, id);
    let recorder = open_recorder(service)?;
    let mut follow = recorder.follow(&rq).map_err(|e| e.to_string())?;
    let (mut n, mut last_sent, mut first_waiting) = (0u64, Instant::now(), None::<Instant>);
    let ended = loop {
        match service.streams().get(id) {
            None => break "cancelled",
            Some(renewed) if renewed.elapsed() > STREAM_LEASE => break "lease expired",
            Some(_) => {}
        }
        match follow.next_timeout(STREAM_FLUSH) {
            Ok(Some(r)) => {
                if !out.record(&r)? {
                    break "central went away";
                }
                first_waiting.get_or_insert_with(Instant::now);
                n += 1;
                if q.limit > 0 && n >= q.limit {
                    break "limit";
                }
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        let due = first_waiting.is_some_and(|t| t.elapsed() >= STREAM_FLUSH)
            || last_sent.elapsed() >= STREAM_HEARTBEAT;
        if due {
            if !out.flush(false, None, None) {
                break "central went away";
            }
            last_sent = Instant::now();
            first_waiting = None;
        }
    };
    tracing::debug!(node = %service.node, stream = %id, records = n, ended, "live stream ended");
    Ok(serde_json::json!({ "node": service.node, "records": n, "ended": ended }))
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

/// Builds the incident bundle of an alert this node raised and sends it in pieces of
/// [`CHUNK_BYTES`] (empty chunks every [`STREAM_HEARTBEAT`] while it is built, so
/// central's wait for the next chunk does not run out on a long window).
fn incident_bundle(
    service: &NodeService,
    r: &IncidentRequest,
    out: &mut ChunkSender,
) -> Result<IncidentAnswer, String> {
    use std::io::Read as _;
    use std::sync::atomic::Ordering;
    struct Slot(Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for Slot {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
    if service.bundles.fetch_add(1, Ordering::Relaxed) >= MAX_BUNDLES {
        service.bundles.fetch_sub(1, Ordering::Relaxed);
        return Err(format!(
            "node {}: {MAX_BUNDLES} incident bundles are being built already; try again shortly",
            service.node
        ));
    }
    let slot = Slot(service.bundles.clone());
    let recorder = open_recorder(service)?;
    // Owned by the build: it comes back with the result, or goes with the thread when
    // central has stopped waiting.
    let tmp = tempfile::tempdir().map_err(|e| format!("a temporary directory: {e}"))?;
    let path = tmp.path().join("bundle.tar.gz");
    let (alert_id, captures) = (r.alert_id.clone(), service.captures.clone());
    let (before, after) = (
        Duration::from_secs(r.before_s),
        Duration::from_secs(r.after_s),
    );
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let out_path = path.clone();
    std::thread::Builder::new()
        .name("incident-bundle".into())
        .spawn(move || {
            let built = recorder.incident_bundle_with_captures(
                &alert_id,
                before,
                after,
                &out_path,
                captures.as_deref(),
            );
            drop(slot);
            let _ = done_tx.send((built, tmp));
        })
        .map_err(|e| format!("a thread to build the bundle: {e}"))?;
    let (summary, _tmp) = loop {
        match done_rx.recv_timeout(STREAM_HEARTBEAT) {
            Ok(built) => break built,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if !out.flush(false, None, None) {
                    return Err("central went away".into());
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err("building the bundle failed (its thread ended)".into())
            }
        }
    };
    let summary = summary.map_err(|e| match e {
        rampart_recorder::RecorderError::AlertNotFound(id) => format!(
            "{}: alert {id:?} is not in node {}'s recorder (yet: the recorder seals its blocks every few seconds; or it aged out)",
            rampart_bus::rpc::ALERT_NOT_FOUND,
            service.node
        ),
        e => format!("incident bundle: {e}"),
    })?;
    let mut file = std::fs::File::open(&path).map_err(|e| format!("the bundle: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("the bundle: {e}"))?
        .len();
    if size > r.max_bytes {
        return Err(format!(
            "{}: the bundle of alert {:?} is {} MiB, over the {} MiB central accepts; ask for a narrower window (before/after)",
            rampart_bus::rpc::BUNDLE_TOO_LARGE,
            r.alert_id,
            size.div_ceil(1 << 20),
            r.max_bytes >> 20
        ));
    }
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    let mut sent = 0u64;
    loop {
        let mut piece = vec![0u8; CHUNK_BYTES];
        let n = file
            .read(&mut piece)
            .map_err(|e| format!("reading the bundle: {e}"))?;
        if n == 0 {
            break;
        }
        piece.truncate(n);
        digest.update(&piece);
        sent += n as u64;
        if !out.body(Bytes::from(piece)) {
            return Err("central went away".into());
        }
    }
    let sha256 = digest
        .finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    tracing::info!(node = %service.node, alert = %r.alert_id, bytes = sent, "incident bundle sent to central");
    Ok(IncidentAnswer {
        node: service.node.clone(),
        alert_id: r.alert_id.clone(),
        bytes: sent,
        sha256,
        events: summary.events as u64,
        processes: summary.processes as u64,
        connections: summary.connections as u64,
        files_written: summary.files_written as u64,
        captures: summary.captures as u64,
    })
}

/// A reply chunk as bytes (for tests of other transports).
pub fn encode_chunk(c: &ReplyChunk) -> Bytes {
    c.encode()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    const OWN: &str = "- macro: spawned_shell\n  condition: evt.type = execve and proc.name in (sh, bash)\n- rule: Own\n  desc: d\n  condition: spawned_shell\n  output: o %proc.name\n  priority: WARNING\n  tags: [T1059]\n";

    fn doc(name: &str, text: &str) -> DeployText {
        DeployText {
            name: name.into(),
            text: text.into(),
            operator: "admin".into(),
        }
    }

    #[test]
    fn a_deployed_rules_file_uses_the_nodes_macros_and_a_bad_one_is_refused_located() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("own.yaml");
        std::fs::write(&own, OWN).unwrap();
        let deployed = dir.path().join("deployed");
        std::fs::create_dir_all(&deployed).unwrap();
        let targets = DeployTargets {
            rules_dir: deployed.clone(),
            policy: None,
            reload: Arc::new(AtomicBool::new(false)),
        };
        let rules = vec![own, deployed.clone()];
        // Uses the node's own macro: only valid with the node's rules.
        let good = "- rule: Deployed shell\n  desc: d\n  condition: spawned_shell and container.id != host\n  output: o %proc.name\n  priority: ERROR\n  tags: [T1059.004]\n";
        let a = deploy_rules("n1", &rules, &targets, &doc("web", good)).unwrap();
        assert!(a.applied && a.diagnostics.is_empty(), "{a:?}");
        assert_eq!(a.count, 2, "the node's rule and the deployed one");
        assert_eq!(
            std::fs::read_to_string(deployed.join("web.yaml")).unwrap(),
            good
        );
        assert!(
            targets.reload.swap(false, Ordering::Relaxed),
            "reload raised"
        );

        // Line 3, a condition that does not parse: refused where it is wrong, and the
        // installed file is untouched.
        let bad = "- rule: Deployed shell\n  desc: d\n  condition: spawned_shell and (\n  output: o\n  priority: ERROR\n";
        let a = deploy_rules("n1", &rules, &targets, &doc("web.yaml", bad)).unwrap();
        assert!(!a.applied);
        let d = &a.diagnostics[0];
        assert_eq!((d.file.as_str(), d.line), ("web.yaml", 3), "{a:?}");
        assert!(d.column > 0 && !d.message.is_empty(), "{d:?}");
        assert_eq!(
            std::fs::read_to_string(deployed.join("web.yaml")).unwrap(),
            good
        );
        assert!(!targets.reload.load(Ordering::Relaxed));
        // Names cannot leave the directory.
        assert!(deploy_rules("n1", &rules, &targets, &doc("../x.yaml", good)).is_err());
        assert!(deploy_rules("n1", &rules, &targets, &doc(".hidden", good)).is_err());
    }

    #[test]
    fn a_deployed_policy_replaces_the_file_only_when_it_parses() {
        let dir = tempfile::tempdir().unwrap();
        let policy = dir.path().join("policy.yaml");
        let targets = DeployTargets {
            rules_dir: dir.path().join("deployed"),
            policy: Some(policy.clone()),
            reload: Arc::new(AtomicBool::new(false)),
        };
        let bad = "responses:\n  - name: x\n    when: {rules: [\"Shell*\"]}\n    action: explode\n";
        let a = deploy_policy("n1", &targets, &doc("policy.yaml", bad)).unwrap();
        assert!(!a.applied);
        assert!(a.diagnostics[0].line > 0, "{a:?}");
        assert!(!policy.exists());
        assert!(!targets.reload.load(Ordering::Relaxed));
        let good = "responses:\n  - name: x\n    when: {rules: [\"Shell*\"]}\n    action: kill\n";
        let a = deploy_policy("n1", &targets, &doc("policy.yaml", good)).unwrap();
        assert!(a.applied && a.count == 1, "{a:?}");
        assert_eq!(std::fs::read_to_string(&policy).unwrap(), good);
        assert!(targets.reload.load(Ordering::Relaxed));
        let no_policy = DeployTargets {
            policy: None,
            ..targets.clone()
        };
        assert!(deploy_policy("n1", &no_policy, &doc("p.yaml", good)).is_err());
    }
}
