//! Reading the history: filtered queries in time order, follow mode, and process
//! trees.
//!
//! A query asks the catalog for the blocks that may hold matching records (time
//! range, containers, kinds), reads only those, and merges them in time order: each
//! block's records are sorted by time, and the blocks are merged with a heap of block
//! cursors, loading a block only once the output reaches its oldest record (blocks of
//! different containers overlap in time). Blocks are read, decompressed, decoded and
//! filtered ahead of the merge on a few threads of the query's own, in the order the
//! merge takes them, so a query with many blocks uses the machine's cores.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_detect::Condition;
use rampart_event::{Event, EventKind, Payload};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::catalog::BlockRef;
use crate::codec::exec_id_hash;
use crate::error::RecorderError;
use crate::record::Record;
use crate::segment::FrameError;
use crate::store::Recorder;

/// What to read. Every filter is optional; all given filters must hold.
#[derive(Clone, Default)]
pub struct Query {
    /// Oldest record time, ns since the Unix epoch (inclusive).
    pub since_ns: Option<u64>,
    /// Newest record time (inclusive).
    pub until_ns: Option<u64>,
    /// A container id prefix or a container name (removed containers included: the
    /// name is taken from the recorded records); `host` for the host's processes.
    pub container: Option<String>,
    /// An image as named (`debian:12`) or its repository (`debian`).
    pub image: Option<String>,
    /// Event kinds (events only; alerts and lifecycle records are kept if asked for).
    pub kinds: Option<Vec<EventKind>>,
    /// Only the process with this exec id and its descendants.
    pub tree: Option<String>,
    /// A rule-language condition (see [`Query::with_where`]).
    pub condition: Option<Arc<Condition>>,
    /// Which records: events, alerts, lifecycle (all when `None`).
    pub records: Option<RecordTypes>,
}

/// Which record types a query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordTypes {
    pub events: bool,
    pub alerts: bool,
    pub lifecycle: bool,
}

impl RecordTypes {
    pub const ALL: RecordTypes = RecordTypes {
        events: true,
        alerts: true,
        lifecycle: true,
    };
    pub const EVENTS: RecordTypes = RecordTypes {
        events: true,
        alerts: false,
        lifecycle: false,
    };
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Query")
            .field("since_ns", &self.since_ns)
            .field("until_ns", &self.until_ns)
            .field("container", &self.container)
            .field("image", &self.image)
            .field("kinds", &self.kinds)
            .field("tree", &self.tree)
            .field("condition", &self.condition.is_some())
            .field("records", &self.records)
            .finish()
    }
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn since(mut self, ns: u64) -> Self {
        self.since_ns = Some(ns);
        self
    }

    pub fn until(mut self, ns: u64) -> Self {
        self.until_ns = Some(ns);
        self
    }

    pub fn container(mut self, key: impl Into<String>) -> Self {
        self.container = Some(key.into());
        self
    }

    pub fn image(mut self, image: impl Into<String>) -> Self {
        self.image = Some(image.into());
        self
    }

    pub fn kinds(mut self, kinds: Vec<EventKind>) -> Self {
        self.kinds = Some(kinds);
        self
    }

    pub fn tree(mut self, exec_id: impl Into<String>) -> Self {
        self.tree = Some(exec_id.into());
        self
    }

    pub fn records(mut self, types: RecordTypes) -> Self {
        self.records = Some(types);
        self
    }

    pub fn condition(mut self, c: Arc<Condition>) -> Self {
        self.condition = Some(c);
        self
    }

    /// Adds a `where` condition in the rule language, compiled against the lists and
    /// macros of the rules files or directories in `rules` (e.g. the shipped `rules/`).
    pub fn with_where<P: AsRef<Path>>(
        self,
        condition: &str,
        rules: &[P],
    ) -> Result<Self, RecorderError> {
        Ok(self.condition(Arc::new(compile_where(condition, rules)?)))
    }
}

/// Compiles a `where` condition against the lists and macros of `rules` (files or
/// directories of `*.yaml`).
pub fn compile_where<P: AsRef<Path>>(
    condition: &str,
    rules: &[P],
) -> Result<Condition, RecorderError> {
    let mut texts = Vec::new();
    for p in rules {
        let p = p.as_ref();
        let files: Vec<std::path::PathBuf> = if p.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(p)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            v.sort();
            v
        } else {
            vec![p.to_path_buf()]
        };
        for f in files {
            texts.push((f.display().to_string(), std::fs::read_to_string(&f)?));
        }
    }
    rampart_detect::compile_condition(condition, &texts)
        .map_err(|e| RecorderError::Condition(e.to_string()))
}

/// A time as `2026-01-02T03:04:05.678901234Z`.
pub fn fmt_ts(ns: u64) -> String {
    rampart_detect::fields::format_time(ns, true)
}

/// The resolved per-record filter.
pub(crate) struct Matcher {
    since: u64,
    until: u64,
    containers: Option<FxHashSet<String>>,
    kinds_mask: Option<u64>,
    execs: Option<FxHashSet<String>>,
    condition: Option<Arc<Condition>>,
    types: RecordTypes,
}

fn container_key(ev: &Event) -> &str {
    ev.container
        .container()
        .map(|c| c.id.as_str())
        .unwrap_or("")
}

impl Matcher {
    fn matches(&self, r: &Record) -> bool {
        self.matches_memo(r, &mut (0, false))
    }

    /// [`Matcher::matches`] with the last workload's container verdict remembered by
    /// its address: a block's records share a few workloads, and a container id is
    /// 64 bytes to hash. Only for records that are all alive while the memo is (the
    /// addresses of one decoded block).
    fn matches_memo(&self, r: &Record, memo: &mut (usize, bool)) -> bool {
        let ts = r.ts_ns();
        if ts < self.since || ts > self.until {
            return false;
        }
        let ev = match r {
            Record::Event(e) => return self.matches_event_memo(e, memo),
            Record::Alert(a) => {
                if !self.types.alerts {
                    return false;
                }
                &a.event
            }
            Record::Lifecycle(l) => {
                return self.types.lifecycle
                    && self.execs.is_none()
                    && self.condition.is_none()
                    && self
                        .containers
                        .as_ref()
                        .is_none_or(|s| s.contains(&l.container_id));
            }
        };
        self.matches_fields(ev, memo)
    }

    /// [`Matcher::matches_memo`] for an event (with the same memo rules).
    pub(crate) fn matches_event_memo(&self, e: &Event, memo: &mut (usize, bool)) -> bool {
        if e.ts_ns < self.since || e.ts_ns > self.until || !self.types.events {
            return false;
        }
        if let Some(m) = self.kinds_mask {
            if m & (1u64 << (e.kind() as u32)) == 0 {
                return false;
            }
        }
        self.matches_fields(e, memo)
    }

    /// The filters an event and an alert's event share: container, process, condition.
    fn matches_fields(&self, ev: &Event, memo: &mut (usize, bool)) -> bool {
        if let Some(s) = &self.containers {
            let at = Arc::as_ptr(&ev.container) as usize;
            if memo.0 != at {
                *memo = (at, s.contains(container_key(ev)));
            }
            if !memo.1 {
                return false;
            }
        }
        if let Some(x) = &self.execs {
            if !ev.process.as_ref().is_some_and(|p| x.contains(&p.exec_id)) {
                return false;
            }
        }
        if let Some(c) = &self.condition {
            if !c.matches(ev) {
                return false;
            }
        }
        true
    }
}

/// A block's matching records, sorted by time.
type Decoded = Result<Vec<Record>, FrameError>;

/// Record buffers the merge has emptied, for the next blocks' records: a busy
/// container's block is megabytes of records, and fresh memory costs page faults.
#[derive(Clone, Default)]
pub(crate) struct BufferPool(Arc<Mutex<Vec<Vec<Record>>>>);

impl BufferPool {
    /// Buffers kept at most (each up to one block's records).
    const MAX: usize = 8;

    pub(crate) fn take(&self) -> Vec<Record> {
        self.0
            .lock()
            .map(|mut p| p.pop().unwrap_or_default())
            .unwrap_or_default()
    }

    pub(crate) fn give(&self, mut v: Vec<Record>) {
        v.clear();
        if let Ok(mut p) = self.0.lock() {
            if p.len() < Self::MAX {
                p.push(v);
            }
        }
    }
}

/// Reads, decodes, filters and sorts one block.
pub(crate) fn decode_block(
    rec: &Recorder,
    m: &Matcher,
    b: &BlockRef,
    pool: &BufferPool,
) -> Decoded {
    let mut memo = (0, false);
    let mut recs = pool.take();
    if let Err(e) = rec.read_block_into(b, &mut recs, |r| m.matches_memo(r, &mut memo)) {
        pool.give(recs);
        return Err(e);
    }
    if !recs.is_sorted_by_key(Record::ts_ns) {
        recs.sort_by_key(Record::ts_ns);
    }
    Ok(recs)
}

/// Threads that decode a query's blocks ahead of its merge. Dropped with the query:
/// the job queue closes and the threads end after the block in hand.
struct ReadAhead {
    jobs: SyncSender<(BlockRef, SyncSender<Decoded>)>,
    /// Results of the blocks handed out, in the order the merge takes them.
    pending: VecDeque<Receiver<Decoded>>,
    depth: usize,
}

impl ReadAhead {
    /// None when one block or one core makes threads pointless.
    fn start(
        rec: &Arc<Recorder>,
        m: &Arc<Matcher>,
        pool: &BufferPool,
        blocks: usize,
    ) -> Option<ReadAhead> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let threads = cores.min(4).min(blocks);
        if threads < 2 {
            return None;
        }
        let (jobs, rx) = sync_channel::<(BlockRef, SyncSender<Decoded>)>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..threads {
            let (rec, m, rx, pool) = (rec.clone(), m.clone(), rx.clone(), pool.clone());
            let spawned = std::thread::Builder::new()
                .name("recorder-query".into())
                .spawn(move || loop {
                    let job = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()));
                    let Ok((b, done)) = job else { return };
                    let _ = done.send(decode_block(&rec, &m, &b, &pool));
                });
            if spawned.is_err() {
                return None;
            }
        }
        Some(ReadAhead {
            jobs,
            pending: VecDeque::new(),
            depth: threads * 2,
        })
    }
}

/// Records in time order. Blocks that fail their checks are skipped (see
/// [`QueryIter::skipped`]).
pub struct QueryIter {
    rec: Arc<Recorder>,
    matcher: Arc<Matcher>,
    read_ahead: Option<ReadAhead>,
    pool: BufferPool,
    /// Blocks not read yet; the first `read_ahead.pending.len()` are being read.
    blocks: VecDeque<BlockRef>,
    /// Cursors by their head: (time, load order, slot). The cursor that gave the
    /// last record is kept out of the heap in `current` while it stays the oldest,
    /// so a run of records from one block (a container's blocks rarely overlap)
    /// costs no heap operation.
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    current: Option<(u64, u64, usize)>,
    cursors: Vec<Option<VecDeque<Record>>>,
    free: Vec<usize>,
    loaded: u64,
    skipped: Vec<(u64, u64, String)>,
    blocks_read: usize,
}

impl QueryIter {
    /// Blocks skipped: segment id, offset, why.
    pub fn skipped(&self) -> &[(u64, u64, String)] {
        &self.skipped
    }

    /// Blocks read so far (the catalog's selectivity shows here).
    pub fn blocks_read(&self) -> usize {
        self.blocks_read
    }

    /// Blocks the catalog selected that are not read yet.
    pub fn blocks_pending(&self) -> usize {
        self.blocks.len()
    }

    /// The next block's records, read ahead when threads are running.
    fn next_block(&mut self) -> Option<(BlockRef, Decoded)> {
        if let Some(ra) = &mut self.read_ahead {
            while ra.pending.len() < ra.depth && ra.pending.len() < self.blocks.len() {
                let b = self.blocks[ra.pending.len()].clone();
                let (tx, rx) = sync_channel(1);
                if ra.jobs.send((b, tx)).is_err() {
                    break;
                }
                ra.pending.push_back(rx);
            }
            if let Some(rx) = ra.pending.pop_front() {
                let b = self.blocks.pop_front()?;
                if let Ok(d) = rx.recv() {
                    return Some((b, d));
                }
                // A reading thread is gone: read this one here, and the rest too.
                self.read_ahead = None;
                let d = decode_block(&self.rec, &self.matcher, &b, &self.pool);
                return Some((b, d));
            }
        }
        let b = self.blocks.pop_front()?;
        let d = decode_block(&self.rec, &self.matcher, &b, &self.pool);
        Some((b, d))
    }

    fn load_next_block(&mut self) {
        let Some((b, decoded)) = self.next_block() else {
            return;
        };
        self.blocks_read += 1;
        let recs = match decoded {
            Ok(r) => r,
            Err(e) => {
                self.skipped.push((b.segment, b.offset, e.to_string()));
                return;
            }
        };
        let Some(ts) = recs.first().map(Record::ts_ns) else {
            self.pool.give(recs);
            return;
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.cursors.push(None);
                self.cursors.len() - 1
            }
        };
        self.cursors[slot] = Some(VecDeque::from(recs));
        self.loaded += 1;
        self.heap.push(Reverse((ts, self.loaded, slot)));
    }

    /// The oldest head of all cursors, the current one included.
    fn oldest(&self) -> Option<(u64, u64, usize)> {
        let top = self.heap.peek().map(|r| r.0);
        match (self.current, top) {
            (Some(c), Some(t)) => Some(c.min(t)),
            (c, t) => c.or(t),
        }
    }
}

impl Iterator for QueryIter {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            let oldest = self.oldest();
            if let Some(b) = self.blocks.front() {
                if oldest.is_none_or(|(t, _, _)| b.min_ts <= t) {
                    self.load_next_block();
                    continue;
                }
            }
            let (_, order, slot) = oldest?;
            match self.current {
                Some(c) if c == (oldest?) => self.current = None,
                Some(c) => {
                    self.heap.pop();
                    self.heap.push(Reverse(c));
                    self.current = None;
                }
                None => {
                    self.heap.pop();
                }
            }
            let cur = self.cursors.get_mut(slot)?.as_mut()?;
            let out = cur.pop_front();
            match cur.front().map(Record::ts_ns) {
                Some(ts) => self.current = Some((ts, order, slot)),
                None => {
                    if let Some(done) = self.cursors[slot].take() {
                        self.pool.give(Vec::from(done));
                    }
                    self.free.push(slot);
                }
            }
            if out.is_some() {
                return out;
            }
        }
    }
}

/// One process in a reconstructed tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessNode {
    pub exec_id: String,
    pub parent_exec_id: Option<String>,
    pub pid: u32,
    pub exe: String,
    pub argv: Vec<String>,
    /// First time the recorder saw it (its exec, or its first event).
    pub first_ts: u64,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub container: String,
    /// Events recorded for it.
    pub events: u64,
}

/// Processes linked parent to child, as far as the recorded events show them.
#[derive(Debug, Clone, Default)]
pub struct ProcessTree {
    pub root: String,
    pub nodes: BTreeMap<String, ProcessNode>,
    pub children: BTreeMap<String, Vec<String>>,
}

impl ProcessTree {
    /// Builds the tree under `root` from events (any order).
    pub fn build<'a>(root: &str, events: impl IntoIterator<Item = &'a Event>) -> ProcessTree {
        let mut nodes: BTreeMap<String, ProcessNode> = BTreeMap::new();
        let mut parent: FxHashMap<String, String> = FxHashMap::default();
        for ev in events {
            let Some(p) = &ev.process else { continue };
            let n = nodes
                .entry(p.exec_id.clone())
                .or_insert_with(|| ProcessNode {
                    exec_id: p.exec_id.clone(),
                    first_ts: ev.ts_ns,
                    ..Default::default()
                });
            n.events += 1;
            n.first_ts = n.first_ts.min(ev.ts_ns);
            // The newest image wins (exec replaces it).
            if matches!(ev.payload, Payload::Exec { .. }) || n.exe.is_empty() {
                n.pid = p.pid;
                n.exe = p.exe.clone();
                n.argv = p.argv.clone();
                n.container = container_key(ev).to_owned();
            }
            if let Payload::Exit { code, signal, .. } = &ev.payload {
                n.exit_code = Some(*code);
                n.exit_signal = *signal;
            }
            let par = p
                .parent_exec_id
                .clone()
                .or_else(|| p.ancestry.first().map(|a| a.exec_id.clone()));
            if let Some(par) = par {
                parent.entry(p.exec_id.clone()).or_insert(par);
            }
            // The ancestry links ancestors the events may not show on their own.
            let mut child = p.exec_id.as_str();
            for a in &p.ancestry {
                parent
                    .entry(child.to_owned())
                    .or_insert_with(|| a.exec_id.clone());
                nodes
                    .entry(a.exec_id.clone())
                    .or_insert_with(|| ProcessNode {
                        exec_id: a.exec_id.clone(),
                        pid: a.pid,
                        exe: a.exe.clone(),
                        argv: a.argv.clone(),
                        first_ts: ev.ts_ns,
                        container: container_key(ev).to_owned(),
                        ..Default::default()
                    });
                child = &a.exec_id;
            }
            if let Payload::Fork { child_exec_id, .. } = &ev.payload {
                parent
                    .entry(child_exec_id.clone())
                    .or_insert_with(|| p.exec_id.clone());
            }
        }
        let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (c, p) in &parent {
            if c != p {
                children.entry(p.clone()).or_default().push(c.clone());
            }
        }
        for v in children.values_mut() {
            v.sort_by_key(|c| nodes.get(c).map(|n| n.first_ts).unwrap_or(0));
        }
        // Keep only the root's subtree.
        let mut keep = FxHashSet::default();
        let mut stack = vec![root.to_owned()];
        while let Some(x) = stack.pop() {
            if keep.insert(x.clone()) {
                if let Some(cs) = children.get(&x) {
                    stack.extend(cs.iter().cloned());
                }
            }
        }
        for (c, p) in parent {
            if keep.contains(&c) {
                if let Some(n) = nodes.get_mut(&c) {
                    n.parent_exec_id = Some(p);
                }
            }
        }
        nodes.retain(|k, _| keep.contains(k));
        children.retain(|k, _| keep.contains(k));
        ProcessTree {
            root: root.to_owned(),
            nodes,
            children,
        }
    }

    /// The root and every descendant.
    pub fn exec_ids(&self) -> FxHashSet<String> {
        let mut s: FxHashSet<String> = self.nodes.keys().cloned().collect();
        s.insert(self.root.clone());
        s
    }

    /// An indented text rendering, one process per line.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_node(&self.root, 0, &mut out, &mut FxHashSet::default());
        out
    }

    fn render_node(&self, id: &str, depth: usize, out: &mut String, seen: &mut FxHashSet<String>) {
        if !seen.insert(id.to_owned()) {
            return;
        }
        let pad = "  ".repeat(depth);
        match self.nodes.get(id) {
            Some(n) => {
                let exit = match (n.exit_code, n.exit_signal) {
                    (_, Some(s)) => format!(" [killed by signal {s}]"),
                    (Some(c), None) => format!(" [exit {c}]"),
                    _ => String::new(),
                };
                out.push_str(&format!(
                    "{pad}{} pid {} {} ({}){exit}\n",
                    fmt_ts(n.first_ts),
                    n.pid,
                    if n.argv.is_empty() {
                        n.exe.clone()
                    } else {
                        n.argv.join(" ")
                    },
                    n.exec_id
                ));
            }
            None => out.push_str(&format!("{pad}({id})\n")),
        }
        if let Some(cs) = self.children.get(id) {
            for c in cs {
                self.render_node(c, depth + 1, out, seen);
            }
        }
    }
}

impl Recorder {
    fn resolve_containers(&self, q: &Query) -> Result<Option<Vec<String>>, RecorderError> {
        let cat = self.catalog();
        let by_key = match q.container.as_deref() {
            Some("host") => Some(vec![String::new()]),
            Some(k) => Some(cat.resolve_containers(k, false)?),
            None => None,
        };
        let by_image = match q.image.as_deref() {
            Some(i) => Some(cat.resolve_containers(i, true)?),
            None => None,
        };
        Ok(match (by_key, by_image) {
            (Some(a), Some(b)) => Some(a.into_iter().filter(|x| b.contains(x)).collect()),
            (a, b) => a.or(b),
        })
    }

    fn matcher(&self, q: &Query) -> Result<(Matcher, Option<Vec<String>>), RecorderError> {
        let mut containers = self.resolve_containers(q)?;
        let types = q.records.unwrap_or(RecordTypes::ALL);
        let since = q.since_ns.unwrap_or(0);
        let until = q.until_ns.unwrap_or(u64::MAX);
        let execs = match &q.tree {
            Some(root) => {
                let tree = self.process_tree(root, Some(since), q.until_ns)?;
                let tree_containers: Vec<String> = tree
                    .nodes
                    .values()
                    .map(|n| n.container.clone())
                    .collect::<FxHashSet<_>>()
                    .into_iter()
                    .collect();
                containers = Some(match containers {
                    Some(c) => c
                        .into_iter()
                        .filter(|x| tree_containers.contains(x))
                        .collect(),
                    None => tree_containers,
                });
                Some(tree.exec_ids())
            }
            None => None,
        };
        let kinds_mask = q
            .kinds
            .as_ref()
            .map(|ks| ks.iter().fold(0u64, |m, k| m | 1u64 << (*k as u32)));
        let m = Matcher {
            since,
            until,
            containers: containers.as_ref().map(|c| c.iter().cloned().collect()),
            kinds_mask,
            execs,
            condition: q.condition.clone(),
            types,
        };
        Ok((m, containers))
    }

    fn candidate_blocks(
        &self,
        m: &Matcher,
        containers: Option<&[String]>,
        after_block: Option<i64>,
    ) -> Result<Vec<BlockRef>, RecorderError> {
        // Some(0) keeps only blocks holding alerts or lifecycle records.
        let mask = if m.types.events {
            m.kinds_mask
        } else {
            Some(0)
        };
        let keep_other = m.types.alerts || m.types.lifecycle;
        Ok(self
            .catalog()
            .blocks(m.since, m.until, containers, mask, keep_other, after_block)?)
    }

    /// A query's filter and the blocks it reads, in the order its merge takes them
    /// (oldest first record first, then catalogue order).
    pub(crate) fn plan(&self, q: &Query) -> Result<(Matcher, Vec<BlockRef>), RecorderError> {
        let (matcher, containers) = self.matcher(q)?;
        let blocks = self.candidate_blocks(&matcher, containers.as_deref(), None)?;
        Ok((matcher, blocks))
    }

    /// Runs a query: matching records in time order across all segments.
    pub fn query(self: &Arc<Self>, q: &Query) -> Result<QueryIter, RecorderError> {
        let (matcher, blocks) = self.plan(q)?;
        let matcher = Arc::new(matcher);
        let pool = BufferPool::default();
        Ok(QueryIter {
            read_ahead: ReadAhead::start(self, &matcher, &pool, blocks.len()),
            rec: self.clone(),
            matcher,
            pool,
            blocks: blocks.into(),
            heap: BinaryHeap::new(),
            current: None,
            cursors: Vec::new(),
            free: Vec::new(),
            loaded: 0,
            skipped: Vec::new(),
            blocks_read: 0,
        })
    }

    /// Follows the history: records of blocks sealed after this call that match `q`,
    /// as they are sealed. Within a block records come in time order; blocks come in
    /// the order they are sealed (one container's block may hold earlier records
    /// than another's sealed before it).
    pub fn follow(self: &Arc<Self>, q: &Query) -> Result<Follow, RecorderError> {
        let (matcher, containers) = self.matcher(q)?;
        let last_block = self.catalog().max_block_id()?;
        Ok(Follow {
            rec: self.clone(),
            matcher,
            containers,
            last_block,
            pending: VecDeque::new(),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The process tree under `exec_id`, from the events of the containers it was
    /// seen in, within the time range.
    pub fn process_tree(
        &self,
        exec_id: &str,
        since_ns: Option<u64>,
        until_ns: Option<u64>,
    ) -> Result<ProcessTree, RecorderError> {
        let containers = {
            let cat = self.catalog();
            let blocks = cat.blocks_with_exec(exec_id_hash(exec_id))?;
            cat.containers_of_blocks(&blocks)?
        };
        if containers.is_empty() {
            return Ok(ProcessTree {
                root: exec_id.to_owned(),
                ..Default::default()
            });
        }
        let m = Matcher {
            since: since_ns.unwrap_or(0),
            until: until_ns.unwrap_or(u64::MAX),
            containers: Some(containers.iter().cloned().collect()),
            kinds_mask: None,
            execs: None,
            condition: None,
            types: RecordTypes::EVENTS,
        };
        let blocks = self.candidate_blocks(&m, Some(&containers), None)?;
        let mut events = Vec::new();
        for b in &blocks {
            if let Ok(recs) = self.read_block(b) {
                events.extend(recs.into_iter().filter_map(|r| match r {
                    Record::Event(e) if m.matches_event(&e) => Some(e),
                    _ => None,
                }));
            }
        }
        Ok(ProcessTree::build(exec_id, events.iter()))
    }
}

impl Matcher {
    fn matches_event(&self, e: &Event) -> bool {
        e.ts_ns >= self.since
            && e.ts_ns <= self.until
            && self
                .containers
                .as_ref()
                .is_none_or(|s| s.contains(container_key(e)))
    }
}

/// Follow mode: see [`Recorder::follow`].
pub struct Follow {
    rec: Arc<Recorder>,
    matcher: Matcher,
    containers: Option<Vec<String>>,
    last_block: i64,
    pending: VecDeque<Record>,
    cancel: Arc<AtomicBool>,
}

impl Follow {
    /// Set to stop a blocking iteration (from another thread).
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    fn poll(&mut self) -> Result<(), RecorderError> {
        // The newest block before looking: blocks that matched nothing up to it move
        // the mark, and one sealed while this poll runs is seen by the next (read
        // after the look, the mark would pass over it unread).
        let newest_before = self.rec.catalog().max_block_id()?;
        let blocks = self.rec.candidate_blocks(
            &self.matcher,
            self.containers.as_deref(),
            Some(self.last_block),
        )?;
        let mut blocks = blocks;
        blocks.sort_by_key(|b| b.id);
        for b in blocks {
            self.last_block = self.last_block.max(b.id);
            if let Ok(recs) = self.rec.read_block(&b) {
                let mut recs: Vec<Record> = recs
                    .into_iter()
                    .filter(|r| self.matcher.matches(r))
                    .collect();
                recs.sort_by_key(Record::ts_ns);
                self.pending.extend(recs);
            }
        }
        self.last_block = self.last_block.max(newest_before);
        Ok(())
    }

    /// The next record, waiting at most `timeout` for one to be sealed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Record>, RecorderError> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(r) = self.pending.pop_front() {
                return Ok(Some(r));
            }
            self.poll()?;
            if !self.pending.is_empty() {
                continue;
            }
            let now = std::time::Instant::now();
            if now >= deadline || self.cancel.load(Ordering::Relaxed) {
                return Ok(None);
            }
            // Woken by this process's writer; a writer in another process is polled.
            let wait = (deadline - now).min(Duration::from_millis(250));
            self.rec.wait_sealed(self.last_block, wait);
        }
    }
}

impl Iterator for Follow {
    type Item = Record;

    /// Blocks until a record comes; `None` once cancelled.
    fn next(&mut self) -> Option<Record> {
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return None;
            }
            match self.next_timeout(Duration::from_millis(500)) {
                Ok(Some(r)) => return Some(r),
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "recorder follow stopped");
                    return None;
                }
            }
        }
    }
}
