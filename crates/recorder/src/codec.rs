//! The block body encoding: records in a compact binary form, with strings, containers,
//! processes and ancestors interned per block.
//!
//! A block body is a sequence of records, each a tag byte then its fields:
//!
//! - `0` event: timestamp and sequence as zigzag varint deltas from the previous event
//!   in the block, host (string ref), flags, workload ref, process ref (when the flags
//!   say there is one), payload kind and fields;
//! - `1` alert and `2` lifecycle: a length-prefixed JSON document (rare records; JSON
//!   keeps their open-ended fields, e.g. `output_fields`, exactly).
//!
//! A container's Kubernetes identity is preceded by a form byte: `0` none, `1` the
//! first form (namespace, pod, container, pod uid), `2` the current one (those, then
//! workload kind and name, node, service account and the pod's labels). Both forms
//! read, so segments written before the second still decode.
//!
//! A *ref* is a varint: `0` means a definition follows inline and takes the next index
//! in its table; `n > 0` refers to entry `n - 1`. Strings, workloads, processes and
//! ancestors each have their own table, which starts empty in every block: a block
//! decodes on its own, so any block can be read (or lost) without the others.
//!
//! The payload kinds the sensor emits most are hand-encoded; the rest are stored as
//! their JSON (kind byte [`JSON_PAYLOAD`]), which keeps every field of kinds added
//! later without a format change.

use std::sync::Arc;

use rampart_event::{
    Alert, Ancestor, Container, Event, EventKind, KubernetesIdentity, L4Proto, LossSource,
    OpenAccess, Payload, Process, SockAddr, Workload,
};
use rustc_hash::FxHashMap;

use crate::record::{LifecycleRecord, Record};

const TAG_EVENT: u8 = 0;
const TAG_ALERT: u8 = 1;
const TAG_LIFECYCLE: u8 = 2;
/// Payload kind byte: the payload follows as JSON.
pub(crate) const JSON_PAYLOAD: u8 = 0xff;

/// The byte before a container's Kubernetes identity (`0`: none). `K8S_V1` (segments
/// written before workload, node, service account and pod labels were kept) is still
/// read; `K8S_V2` is written.
const K8S_V1: u8 = 1;
const K8S_V2: u8 = 2;

const FLAG_COMPAT: u8 = 1;
const FLAG_PROCESS: u8 = 2;

/// Why a block body did not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("block body ends inside a record")]
    Truncated,
    #[error("bad {0} in block body")]
    Bad(&'static str),
    #[error("JSON record: {0}")]
    Json(String),
}

/// A stable 64-bit hash (FNV-1a) of an exec id: stored in block summaries and the
/// catalog, so it must never change with a dependency's version.
pub fn exec_id_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // SQLite integers are signed 64-bit: the catalog stores the bits as i64.
    h
}

/// What the catalog keeps of a block, also written beside the body in its frame so
/// the catalog can be rebuilt without decompressing anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockSummary {
    pub min_ts: u64,
    pub max_ts: u64,
    pub records: u32,
    pub events: u32,
    /// Bit `k as usize` for every [`EventKind`] `k` in the block.
    pub kinds: u64,
    /// Containers of the block's records: id (empty for the host), name, image.
    pub containers: Vec<(String, String, String)>,
    /// [`exec_id_hash`] of every process (and ancestor) exec id in the block.
    pub exec_hashes: Vec<u64>,
    /// Ids of the alerts in the block.
    pub alert_ids: Vec<String>,
    /// Lifecycle records in the block.
    pub lifecycles: u32,
    /// Losses the block's `lost` events with source `recorder` report (not stored:
    /// known only while the block is written, so a block that cannot be written
    /// passes its marks on instead of losing them).
    pub recorder_losses: u64,
}

impl BlockSummary {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.min_ts);
        put_u64(out, self.max_ts);
        put_u64(out, self.records.into());
        put_u64(out, self.events.into());
        put_u64(out, self.kinds);
        put_u64(out, self.lifecycles.into());
        put_u64(out, self.containers.len() as u64);
        for (id, name, image) in &self.containers {
            put_raw_str(out, id);
            put_raw_str(out, name);
            put_raw_str(out, image);
        }
        put_u64(out, self.exec_hashes.len() as u64);
        for h in &self.exec_hashes {
            out.extend_from_slice(&h.to_le_bytes());
        }
        put_u64(out, self.alert_ids.len() as u64);
        for a in &self.alert_ids {
            put_raw_str(out, a);
        }
    }

    pub(crate) fn decode(buf: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader { buf, pos: 0 };
        let min_ts = r.u64()?;
        let max_ts = r.u64()?;
        let records = r.u32()?;
        let events = r.u32()?;
        let kinds = r.u64()?;
        let lifecycles = r.u32()?;
        let n = r.len(3)?;
        let mut containers = Vec::with_capacity(n);
        for _ in 0..n {
            containers.push((
                r.raw_str()?.to_owned(),
                r.raw_str()?.to_owned(),
                r.raw_str()?.to_owned(),
            ));
        }
        let n = r.len(8)?;
        let mut exec_hashes = Vec::with_capacity(n);
        for _ in 0..n {
            let b = r.bytes(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            exec_hashes.push(u64::from_le_bytes(a));
        }
        let n = r.len(1)?;
        let mut alert_ids = Vec::with_capacity(n);
        for _ in 0..n {
            alert_ids.push(r.raw_str()?.to_owned());
        }
        Ok(Self {
            min_ts,
            max_ts,
            records,
            events,
            kinds,
            containers,
            exec_hashes,
            alert_ids,
            lifecycles,
            recorder_losses: 0,
        })
    }
}

/// One block's table of shared definitions (workloads, processes, ancestors), each
/// written once and referred to by index after.
///
/// Interning is by `Arc` address first (the sensor shares one Arc per process and
/// container), then by value, keyed by a hash of the identity, so events that were
/// decoded separately still share one definition.
struct Interned<T> {
    by_ptr: FxHashMap<usize, u32>,
    by_key: FxHashMap<u64, Vec<u32>>,
    defs: Vec<Arc<T>>,
    /// Arcs matched by value: kept alive so their address cannot be reused by another
    /// value while the block is open (the address map would then lie).
    pinned: Vec<Arc<T>>,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Self {
            by_ptr: FxHashMap::default(),
            by_key: FxHashMap::default(),
            defs: Vec::new(),
            pinned: Vec::new(),
        }
    }
}

impl<T: PartialEq> Interned<T> {
    /// The index of the definition `item` already has in this block, or `None` after
    /// adding it as the next index (the caller then writes its definition inline).
    /// `key` hashes its identity; it is computed only when the address is new.
    fn find_or_add(&mut self, item: &Arc<T>, key: impl FnOnce() -> u64) -> Option<u32> {
        let ptr = Arc::as_ptr(item) as usize;
        if let Some(&i) = self.by_ptr.get(&ptr) {
            return Some(i);
        }
        let key = key();
        let defs = &self.defs;
        if let Some(&i) = self
            .by_key
            .get(&key)
            .and_then(|c| c.iter().find(|&&i| *defs[i as usize] == **item))
        {
            self.by_ptr.insert(ptr, i);
            self.pinned.push(item.clone());
            return Some(i);
        }
        let i = self.defs.len() as u32;
        self.by_key.entry(key).or_default().push(i);
        self.by_ptr.insert(ptr, i);
        self.defs.push(item.clone());
        None
    }

    /// Empty for the next block, keeping capacity.
    fn clear(&mut self) {
        self.by_ptr.clear();
        self.by_key.clear();
        self.defs.clear();
        self.pinned.clear();
    }
}

/// Builds one block body.
#[derive(Default)]
pub struct BlockEncoder {
    buf: Vec<u8>,
    strings: FxHashMap<Box<str>, u32>,
    workloads: Interned<Workload>,
    processes: Interned<Process>,
    ancestors: Interned<Ancestor>,
    /// The host of the last event and its string ref: every event names its host,
    /// and the sensor shares one `Arc` for it (held here, so the address is not reused).
    last_host: Option<(Arc<str>, u32)>,
    prev_ts: u64,
    prev_seq: u64,
    summary: BlockSummary,
    containers_seen: FxHashMap<Box<str>, usize>,
    exec_seen: rustc_hash::FxHashSet<u64>,
    /// Tests write the form older segments have, to check it still reads.
    #[cfg(test)]
    k8s_v1: bool,
}

impl BlockEncoder {
    /// Uncompressed bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.summary.records == 0
    }

    pub fn records(&self) -> u32 {
        self.summary.records
    }

    /// Oldest record time, if any.
    pub fn min_ts(&self) -> Option<u64> {
        (self.summary.records > 0).then_some(self.summary.min_ts)
    }

    /// The body and its summary; the encoder is empty again afterwards (its tables
    /// keep their capacity for the next block).
    pub fn finish(&mut self) -> (Vec<u8>, BlockSummary) {
        let body = std::mem::take(&mut self.buf);
        let mut summary = std::mem::take(&mut self.summary);
        summary.exec_hashes = self.exec_seen.drain().collect();
        summary.exec_hashes.sort_unstable();
        self.strings.clear();
        self.workloads.clear();
        self.processes.clear();
        self.ancestors.clear();
        self.containers_seen.clear();
        self.last_host = None;
        self.prev_ts = 0;
        self.prev_seq = 0;
        (body, summary)
    }

    /// Gives a written body's buffer back for the next block.
    pub fn recycle(&mut self, mut body: Vec<u8>) {
        if self.buf.is_empty() && body.capacity() > self.buf.capacity() {
            body.clear();
            self.buf = body;
        }
    }

    fn note_ts(&mut self, ts: u64) {
        let s = &mut self.summary;
        if s.records == 0 {
            s.min_ts = ts;
            s.max_ts = ts;
        } else {
            s.min_ts = s.min_ts.min(ts);
            s.max_ts = s.max_ts.max(ts);
        }
        s.records += 1;
    }

    fn note_container(&mut self, id: &str, name: &str, image: &str) {
        match self.containers_seen.get(id) {
            Some(&i) => {
                // A later record may know the name (metadata arrived late).
                let c = &mut self.summary.containers[i];
                if c.1.is_empty() && !name.is_empty() {
                    c.1 = name.to_owned();
                }
                if c.2.is_empty() && !image.is_empty() {
                    c.2 = image.to_owned();
                }
            }
            None => {
                self.containers_seen
                    .insert(id.into(), self.summary.containers.len());
                self.summary
                    .containers
                    .push((id.to_owned(), name.to_owned(), image.to_owned()));
            }
        }
    }

    fn note_workload(&mut self, w: &Workload) {
        match w {
            Workload::Container(c) => self.note_container(&c.id, &c.name, &c.image),
            Workload::Host { .. } => self.note_container("", "", ""),
        }
    }

    pub fn push(&mut self, rec: &Record) {
        match rec {
            Record::Event(ev) => self.push_event(ev),
            Record::Alert(a) => self.push_alert(a),
            Record::Lifecycle(l) => self.push_lifecycle(l),
        }
    }

    fn push_alert(&mut self, a: &Alert) {
        self.note_ts(a.ts_ns);
        self.note_workload(&a.event.container);
        if let Some(p) = &a.event.process {
            self.exec_seen.insert(exec_id_hash(&p.exec_id));
        }
        self.summary.alert_ids.push(a.id.clone());
        self.buf.push(TAG_ALERT);
        // Serialising our own typed value cannot fail (no non-string map keys).
        let json = serde_json::to_vec(a).unwrap_or_default();
        put_bytes(&mut self.buf, &json);
    }

    fn push_lifecycle(&mut self, l: &LifecycleRecord) {
        self.note_ts(l.ts_ns);
        self.note_container(&l.container_id, &l.name, &l.image);
        self.summary.lifecycles += 1;
        self.buf.push(TAG_LIFECYCLE);
        let json = serde_json::to_vec(l).unwrap_or_default();
        put_bytes(&mut self.buf, &json);
    }

    pub fn push_event(&mut self, ev: &Event) {
        self.note_ts(ev.ts_ns);
        self.summary.events += 1;
        let kind = ev.kind();
        self.summary.kinds |= 1u64 << (kind as u32);
        if let Payload::Lost {
            source: LossSource::Recorder,
            count,
            ..
        } = &ev.payload
        {
            self.summary.recorder_losses += count;
        }
        self.buf.push(TAG_EVENT);
        let dts = ev.ts_ns.wrapping_sub(self.prev_ts) as i64;
        put_i64(&mut self.buf, dts);
        self.prev_ts = ev.ts_ns;
        let dseq = ev.seq.wrapping_sub(self.prev_seq) as i64;
        put_i64(&mut self.buf, dseq);
        self.prev_seq = ev.seq;
        match &self.last_host {
            Some((h, i)) if Arc::ptr_eq(h, &ev.host) => put_u64(&mut self.buf, u64::from(*i) + 1),
            _ => {
                let i = self.str_index(&ev.host);
                self.last_host = Some((ev.host.clone(), i));
            }
        }
        let mut flags = 0;
        if ev.compat_syscall {
            flags |= FLAG_COMPAT;
        }
        if ev.process.is_some() {
            flags |= FLAG_PROCESS;
        }
        self.buf.push(flags);
        self.workload(&ev.container);
        if let Some(p) = &ev.process {
            self.process(p);
        }
        self.payload(&ev.payload);
    }

    fn str(&mut self, s: &str) {
        self.str_index(s);
    }

    /// Writes a string ref (or definition) and returns its index in the table.
    fn str_index(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.strings.get(s) {
            put_u64(&mut self.buf, u64::from(i) + 1);
            return i;
        }
        let i = self.strings.len() as u32;
        self.strings.insert(s.into(), i);
        self.buf.push(0);
        put_raw_str(&mut self.buf, s);
        i
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            None => self.buf.push(0),
            Some(s) => {
                self.buf.push(1);
                self.str(s);
            }
        }
    }

    fn strs(&mut self, v: &[String]) {
        put_u64(&mut self.buf, v.len() as u64);
        for s in v {
            self.str(s);
        }
    }

    fn workload(&mut self, w: &Arc<Workload>) {
        let key = || match &**w {
            Workload::Container(c) => exec_id_hash(&c.id) ^ c.cgroup_id,
            Workload::Host { cgroup_id } => *cgroup_id,
        };
        if let Some(i) = self.workloads.find_or_add(w, key) {
            put_u64(&mut self.buf, u64::from(i) + 1);
            return;
        }
        self.note_workload(w);
        self.buf.push(0);
        match &**w {
            Workload::Host { cgroup_id } => {
                self.buf.push(0);
                put_u64(&mut self.buf, *cgroup_id);
            }
            Workload::Container(c) => {
                self.buf.push(1);
                self.container(c);
            }
        }
    }

    fn container(&mut self, c: &Container) {
        self.str(&c.id);
        put_u64(&mut self.buf, c.cgroup_id);
        self.str(&c.runtime);
        self.str(&c.name);
        self.str(&c.image);
        self.str(&c.image_repository);
        self.str(&c.image_tag);
        self.str(&c.image_digest);
        put_u64(&mut self.buf, c.labels.len() as u64);
        for (k, v) in &c.labels {
            self.str(k);
            self.str(v);
        }
        match &c.k8s {
            None => self.buf.push(0),
            #[cfg(test)]
            Some(k) if self.k8s_v1 => {
                self.buf.push(K8S_V1);
                self.str(&k.namespace);
                self.str(&k.pod);
                self.str(&k.container);
                self.str(&k.pod_uid);
            }
            Some(k) => {
                self.buf.push(K8S_V2);
                self.str(&k.namespace);
                self.str(&k.pod);
                self.str(&k.container);
                self.str(&k.pod_uid);
                self.str(&k.workload_kind);
                self.str(&k.workload_name);
                self.str(&k.node);
                self.str(&k.service_account);
                put_u64(&mut self.buf, k.labels.len() as u64);
                for (key, v) in &k.labels {
                    self.str(key);
                    self.str(v);
                }
            }
        }
        self.buf
            .push(u8::from(c.privileged) | u8::from(c.metadata_complete) << 1);
        self.strs(&c.cap_add);
        self.str(&c.network_mode);
    }

    fn process(&mut self, p: &Arc<Process>) {
        if let Some(i) = self.processes.find_or_add(p, || exec_id_hash(&p.exec_id)) {
            put_u64(&mut self.buf, u64::from(i) + 1);
            return;
        }
        self.exec_seen.insert(exec_id_hash(&p.exec_id));
        self.buf.push(0);
        put_u64(&mut self.buf, p.pid.into());
        put_i64(&mut self.buf, i64::from(p.tid) - i64::from(p.pid));
        put_u64(&mut self.buf, p.ppid.into());
        self.str(&p.exec_id);
        self.opt_str(p.parent_exec_id.as_deref());
        put_u64(&mut self.buf, p.uid.into());
        put_u64(&mut self.buf, p.gid.into());
        put_u64(&mut self.buf, p.euid.into());
        put_u64(&mut self.buf, p.egid.into());
        match p.auid {
            None => self.buf.push(0),
            Some(a) => {
                self.buf.push(1);
                put_u64(&mut self.buf, a.into());
            }
        }
        self.str(&p.exe);
        self.strs(&p.argv);
        self.str(&p.cwd);
        self.str(&p.comm);
        put_u64(&mut self.buf, p.start_ns);
        put_u64(&mut self.buf, p.tty.into());
        // Bit 2: the hook variables read at exec follow the ancestry (segments
        // written before it have none, and read as not read). Bit 3: a mask of the
        // ancestors whose executable was written in their container comes next
        // (segments written before it read as none).
        let upper_ancestors = p
            .ancestry
            .iter()
            .enumerate()
            .filter(|(_, a)| a.exe_upper_layer)
            .fold(0u64, |m, (i, _)| m | 1 << i.min(63));
        self.buf.push(
            u8::from(p.argv_truncated)
                | u8::from(p.exe_upper_layer) << 1
                | u8::from(p.env.is_some()) << 2
                | u8::from(upper_ancestors != 0) << 3,
        );
        if upper_ancestors != 0 {
            put_u64(&mut self.buf, upper_ancestors);
        }
        put_u64(&mut self.buf, p.ancestry.len() as u64);
        for a in &p.ancestry {
            self.ancestor(a);
        }
        if let Some(env) = &p.env {
            self.strs(env);
        }
    }

    fn ancestor(&mut self, a: &Arc<Ancestor>) {
        if let Some(i) = self.ancestors.find_or_add(a, || exec_id_hash(&a.exec_id)) {
            put_u64(&mut self.buf, u64::from(i) + 1);
            return;
        }
        self.exec_seen.insert(exec_id_hash(&a.exec_id));
        self.buf.push(0);
        put_u64(&mut self.buf, a.pid.into());
        self.str(&a.exec_id);
        self.str(&a.exe);
        self.strs(&a.argv);
        self.str(&a.comm);
    }

    fn sockaddr(&mut self, a: &SockAddr) {
        match a {
            SockAddr::Inet { ip, port } | SockAddr::Inet6 { ip, port } => {
                let tag = if matches!(a, SockAddr::Inet { .. }) {
                    0
                } else {
                    2
                };
                match ip {
                    std::net::IpAddr::V4(v4) => {
                        self.buf.push(tag);
                        self.buf.extend_from_slice(&v4.octets());
                    }
                    std::net::IpAddr::V6(v6) => {
                        self.buf.push(tag + 1);
                        self.buf.extend_from_slice(&v6.octets());
                    }
                }
                put_u64(&mut self.buf, (*port).into());
            }
            SockAddr::Unix { path } => {
                self.buf.push(4);
                self.str(path);
            }
            SockAddr::Other { number } => {
                self.buf.push(5);
                put_u64(&mut self.buf, (*number).into());
            }
        }
    }

    fn opt_sockaddr(&mut self, a: Option<&SockAddr>) {
        match a {
            None => self.buf.push(0xff),
            Some(a) => self.sockaddr(a),
        }
    }

    fn payload(&mut self, p: &Payload) {
        let b = &mut self.buf;
        match p {
            Payload::Exec {
                filename,
                interpreter,
                from_memfd,
                from_deleted,
            } => {
                b.push(EventKind::Exec as u8);
                b.push(u8::from(*from_memfd) | u8::from(*from_deleted) << 1);
                self.str(filename);
                self.opt_str(interpreter.as_deref());
            }
            Payload::Fork {
                child_pid,
                child_exec_id,
            } => {
                b.push(EventKind::Fork as u8);
                put_u64(b, (*child_pid).into());
                self.str(child_exec_id);
            }
            Payload::Exit {
                code,
                signal,
                core_dumped,
            } => {
                b.push(EventKind::Exit as u8);
                put_i64(b, (*code).into());
                match signal {
                    None => b.push(u8::from(*core_dumped) << 1),
                    Some(s) => {
                        b.push(1 | u8::from(*core_dumped) << 1);
                        put_i64(b, (*s).into());
                    }
                }
            }
            Payload::FileOpen {
                path,
                path_raw,
                flags,
                mode,
                access,
                ret,
                repeats,
            } => {
                b.push(EventKind::FileOpen as u8);
                b.push(
                    u8::from(access.read)
                        | u8::from(access.write) << 1
                        | u8::from(access.create) << 2
                        | u8::from(access.truncate) << 3,
                );
                put_u64(b, (*flags).into());
                put_u64(b, (*mode).into());
                put_i64(b, *ret);
                put_u64(b, *repeats);
                self.str(path);
                self.opt_str(path_raw.as_deref());
            }
            Payload::FileUnlink { path, ret } => {
                b.push(EventKind::FileUnlink as u8);
                put_i64(b, *ret);
                self.str(path);
            }
            Payload::FileRename {
                old_path,
                new_path,
                ret,
            } => {
                b.push(EventKind::FileRename as u8);
                put_i64(b, *ret);
                self.str(old_path);
                self.str(new_path);
            }
            Payload::FileLink {
                old_path,
                new_path,
                symbolic,
                ret,
            } => {
                b.push(EventKind::FileLink as u8);
                b.push(u8::from(*symbolic));
                put_i64(b, *ret);
                self.str(old_path);
                self.str(new_path);
            }
            Payload::FileChmod { path, mode, ret } => {
                b.push(EventKind::FileChmod as u8);
                put_u64(b, (*mode).into());
                put_i64(b, *ret);
                self.str(path);
            }
            Payload::FileChown {
                path,
                uid,
                gid,
                ret,
            } => {
                b.push(EventKind::FileChown as u8);
                put_i64(b, *uid);
                put_i64(b, *gid);
                put_i64(b, *ret);
                self.str(path);
            }
            Payload::FileTruncate { path, length, ret } => {
                b.push(EventKind::FileTruncate as u8);
                put_i64(b, *length);
                put_i64(b, *ret);
                self.str(path);
            }
            Payload::NetConnect {
                proto,
                local,
                remote,
                ret,
            } => {
                b.push(EventKind::NetConnect as u8);
                b.push(proto_code(*proto));
                put_i64(b, *ret);
                self.opt_sockaddr(local.as_ref());
                self.sockaddr(remote);
            }
            Payload::NetAccept {
                proto,
                local,
                remote,
                ret,
            } => {
                b.push(EventKind::NetAccept as u8);
                b.push(proto_code(*proto));
                put_i64(b, *ret);
                self.opt_sockaddr(local.as_ref());
                self.opt_sockaddr(remote.as_ref());
            }
            Payload::NetBind { proto, local, ret } => {
                b.push(EventKind::NetBind as u8);
                b.push(proto_code(*proto));
                put_i64(b, *ret);
                self.sockaddr(local);
            }
            Payload::NetListen {
                proto,
                local,
                backlog,
                ret,
            } => {
                b.push(EventKind::NetListen as u8);
                b.push(proto_code(*proto));
                put_i64(b, (*backlog).into());
                put_i64(b, *ret);
                self.opt_sockaddr(local.as_ref());
            }
            Payload::Mount {
                call,
                source,
                target,
                fstype,
                flags,
                ret,
            } => {
                b.push(EventKind::Mount as u8);
                put_u64(b, *flags);
                put_i64(b, *ret);
                self.str(call);
                self.str(source);
                self.str(target);
                self.str(fstype);
            }
            Payload::Lost { source, count, cpu } => {
                b.push(EventKind::Lost as u8);
                b.push(match source {
                    LossSource::Kernel => 0,
                    LossSource::Queue => 1,
                    LossSource::Output => 2,
                    LossSource::Recorder => 3,
                });
                put_u64(b, *count);
                match cpu {
                    None => b.push(0),
                    Some(c) => {
                        b.push(1);
                        put_u64(b, (*c).into());
                    }
                }
            }
            other => {
                b.push(JSON_PAYLOAD);
                let json = serde_json::to_vec(other).unwrap_or_default();
                put_bytes(b, &json);
            }
        }
    }
}

/// Overwrites `dst` with `s`, keeping its allocation.
fn set_string(dst: &mut String, s: &str) {
    dst.clear();
    dst.push_str(s);
}

fn proto_code(p: L4Proto) -> u8 {
    match p {
        L4Proto::Tcp => 0,
        L4Proto::Udp => 1,
        L4Proto::Unix => 2,
        L4Proto::Other => 3,
    }
}

fn proto_from(c: u8) -> Result<L4Proto, CodecError> {
    Ok(match c {
        0 => L4Proto::Tcp,
        1 => L4Proto::Udp,
        2 => L4Proto::Unix,
        3 => L4Proto::Other,
        _ => return Err(CodecError::Bad("protocol")),
    })
}

pub(crate) fn put_u64(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_i64(out: &mut Vec<u8>, v: i64) {
    put_u64(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_raw_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A cursor over untrusted bytes: every read is bounds-checked.
pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn u8(&mut self) -> Result<u8, CodecError> {
        let b = *self.buf.get(self.pos).ok_or(CodecError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(CodecError::Bad("varint"))
    }

    pub fn u32(&mut self) -> Result<u32, CodecError> {
        u32::try_from(self.u64()?).map_err(|_| CodecError::Bad("u32"))
    }

    fn u16(&mut self) -> Result<u16, CodecError> {
        u16::try_from(self.u64()?).map_err(|_| CodecError::Bad("u16"))
    }

    pub fn i64(&mut self) -> Result<i64, CodecError> {
        let u = self.u64()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, CodecError> {
        i32::try_from(self.i64()?).map_err(|_| CodecError::Bad("i32"))
    }

    /// A count of items each at least `min_size` bytes long: refused when the rest of
    /// the buffer could not hold them (so garbage cannot make us allocate gigabytes).
    pub fn len(&mut self, min_size: usize) -> Result<usize, CodecError> {
        let n = self.u64()?;
        let left = (self.buf.len() - self.pos.min(self.buf.len())) as u64;
        if n.saturating_mul(min_size.max(1) as u64) > left {
            return Err(CodecError::Truncated);
        }
        Ok(n as usize)
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Truncated)?;
        let b = self.buf.get(self.pos..end).ok_or(CodecError::Truncated)?;
        self.pos = end;
        Ok(b)
    }

    pub fn raw_str(&mut self) -> Result<&'a str, CodecError> {
        let n = self.len(1)?;
        std::str::from_utf8(self.bytes(n)?).map_err(|_| CodecError::Bad("utf-8"))
    }
}

/// Decodes one block body (a block's, or a chunk of records a node sent central).
pub struct BlockDecoder<'a> {
    r: Reader<'a>,
    strings: Vec<&'a str>,
    hosts: FxHashMap<u32, Arc<str>>,
    last_host: Option<(u32, Arc<str>)>,
    workloads: Vec<Arc<Workload>>,
    processes: Vec<Arc<Process>>,
    ancestors: Vec<Arc<Ancestor>>,
    prev_ts: u64,
    prev_seq: u64,
}

impl<'a> BlockDecoder<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Self {
            r: Reader { buf: body, pos: 0 },
            strings: Vec::new(),
            hosts: FxHashMap::default(),
            last_host: None,
            workloads: Vec::new(),
            processes: Vec::new(),
            ancestors: Vec::new(),
            prev_ts: 0,
            prev_seq: 0,
        }
    }

    /// The next record, `None` at the end of the body.
    pub fn next_record(&mut self) -> Result<Option<Record>, CodecError> {
        if self.r.is_empty() {
            return Ok(None);
        }
        let rec = match self.r.u8()? {
            TAG_EVENT => Record::Event(self.event()?),
            TAG_ALERT => {
                let n = self.r.len(1)?;
                let json = self.r.bytes(n)?;
                Record::Alert(Box::new(
                    serde_json::from_slice(json).map_err(|e| CodecError::Json(e.to_string()))?,
                ))
            }
            TAG_LIFECYCLE => {
                let n = self.r.len(1)?;
                let json = self.r.bytes(n)?;
                Record::Lifecycle(
                    serde_json::from_slice(json).map_err(|e| CodecError::Json(e.to_string()))?,
                )
            }
            _ => return Err(CodecError::Bad("record tag")),
        };
        Ok(Some(rec))
    }

    /// [`BlockDecoder::next_record`] for a reader that looks at events one at a time
    /// and keeps few (a retro-hunt): an event is decoded into `ev`, reusing the
    /// strings its payload holds from the previous one and the block's shared host,
    /// workload and process, so an event costs no allocation; alerts and lifecycle
    /// records are decoded (checked) and dropped. `Some(true)`: `ev` holds the next
    /// event; `Some(false)`: another record went by; `None`: the body's end. After an
    /// error `ev` holds a mix of events: drop the block's results.
    pub fn next_event_into(&mut self, ev: &mut Event) -> Result<Option<bool>, CodecError> {
        if self.r.is_empty() {
            return Ok(None);
        }
        if self.r.buf.get(self.r.pos) != Some(&TAG_EVENT) {
            return self.next_record().map(|r| r.map(|_| false));
        }
        self.r.pos += 1;
        let ts_ns = self.prev_ts.wrapping_add(self.r.i64()? as u64);
        self.prev_ts = ts_ns;
        let seq = self.prev_seq.wrapping_add(self.r.i64()? as u64);
        self.prev_seq = seq;
        let (hi, hs) = self.str_idx()?;
        match &self.last_host {
            Some((i, h)) if *i == hi => {
                if !Arc::ptr_eq(&ev.host, h) {
                    ev.host = h.clone();
                }
            }
            _ => {
                let h = self
                    .hosts
                    .entry(hi)
                    .or_insert_with(|| Arc::from(hs))
                    .clone();
                self.last_host = Some((hi, h.clone()));
                ev.host = h;
            }
        }
        let flags = self.r.u8()?;
        let w = self.workload_index()?;
        if !Arc::ptr_eq(&ev.container, &self.workloads[w]) {
            ev.container = self.workloads[w].clone();
        }
        if flags & FLAG_PROCESS != 0 {
            let p = self.process_index()?;
            if !ev
                .process
                .as_ref()
                .is_some_and(|q| Arc::ptr_eq(q, &self.processes[p]))
            {
                ev.process = Some(self.processes[p].clone());
            }
        } else {
            ev.process = None;
        }
        self.payload_into(&mut ev.payload)?;
        ev.schema = rampart_event::SCHEMA_VERSION;
        ev.ts_ns = ts_ns;
        ev.seq = seq;
        ev.compat_syscall = flags & FLAG_COMPAT != 0;
        Ok(Some(true))
    }

    /// [`BlockDecoder::payload`] into `dst`: the kinds most events are (file opens,
    /// execs, forks, unlinks) reuse the strings `dst` holds when it is of the same
    /// kind; the rest are decoded anew.
    fn payload_into(&mut self, dst: &mut Payload) -> Result<(), CodecError> {
        let at = self.r.pos;
        let kind = self.r.u8()?;
        match dst {
            Payload::FileOpen {
                path,
                path_raw,
                flags,
                mode,
                access,
                ret,
                repeats,
            } if kind == EventKind::FileOpen as u8 => {
                let a = self.r.u8()?;
                *flags = self.r.u32()?;
                *mode = self.r.u32()?;
                *ret = self.r.i64()?;
                *repeats = self.r.u64()?;
                set_string(path, self.str()?);
                self.opt_str_into(path_raw)?;
                *access = OpenAccess {
                    read: a & 1 != 0,
                    write: a & 2 != 0,
                    create: a & 4 != 0,
                    truncate: a & 8 != 0,
                };
            }
            Payload::Exec {
                filename,
                interpreter,
                from_memfd,
                from_deleted,
            } if kind == EventKind::Exec as u8 => {
                let bits = self.r.u8()?;
                set_string(filename, self.str()?);
                self.opt_str_into(interpreter)?;
                *from_memfd = bits & 1 != 0;
                *from_deleted = bits & 2 != 0;
            }
            Payload::Fork {
                child_pid,
                child_exec_id,
            } if kind == EventKind::Fork as u8 => {
                *child_pid = self.r.u32()?;
                set_string(child_exec_id, self.str()?);
            }
            Payload::FileUnlink { path, ret } if kind == EventKind::FileUnlink as u8 => {
                *ret = self.r.i64()?;
                set_string(path, self.str()?);
            }
            _ => {
                self.r.pos = at;
                *dst = self.payload()?;
            }
        }
        Ok(())
    }

    fn opt_str_into(&mut self, dst: &mut Option<String>) -> Result<(), CodecError> {
        match self.r.u8()? {
            0 => *dst = None,
            1 => {
                let s = self.str()?;
                match dst {
                    Some(d) => set_string(d, s),
                    None => *dst = Some(s.to_owned()),
                }
            }
            _ => return Err(CodecError::Bad("option")),
        }
        Ok(())
    }

    fn str_idx(&mut self) -> Result<(u32, &'a str), CodecError> {
        let r = self.r.u64()?;
        if r == 0 {
            let s = self.r.raw_str()?;
            self.strings.push(s);
            return Ok(((self.strings.len() - 1) as u32, s));
        }
        let i = (r - 1) as usize;
        let s = self.strings.get(i).ok_or(CodecError::Bad("string ref"))?;
        Ok((i as u32, s))
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        Ok(self.str_idx()?.1)
    }

    fn string(&mut self) -> Result<String, CodecError> {
        Ok(self.str()?.to_owned())
    }

    fn opt_string(&mut self) -> Result<Option<String>, CodecError> {
        match self.r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.string()?)),
            _ => Err(CodecError::Bad("option")),
        }
    }

    fn strings(&mut self) -> Result<Vec<String>, CodecError> {
        let n = self.r.len(1)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.string()?);
        }
        Ok(v)
    }

    fn event(&mut self) -> Result<Event, CodecError> {
        let ts_ns = self.prev_ts.wrapping_add(self.r.i64()? as u64);
        self.prev_ts = ts_ns;
        let seq = self.prev_seq.wrapping_add(self.r.i64()? as u64);
        self.prev_seq = seq;
        let (hi, hs) = self.str_idx()?;
        let host = match &self.last_host {
            // Every event names its host, nearly always the same one.
            Some((i, h)) if *i == hi => h.clone(),
            _ => {
                let h = self
                    .hosts
                    .entry(hi)
                    .or_insert_with(|| Arc::from(hs))
                    .clone();
                self.last_host = Some((hi, h.clone()));
                h
            }
        };
        let flags = self.r.u8()?;
        let container = self.workload()?;
        let process = if flags & FLAG_PROCESS != 0 {
            Some(self.process()?)
        } else {
            None
        };
        let payload = self.payload()?;
        Ok(Event {
            schema: rampart_event::SCHEMA_VERSION,
            ts_ns,
            host,
            seq,
            process,
            container,
            compat_syscall: flags & FLAG_COMPAT != 0,
            payload,
        })
    }

    fn workload(&mut self) -> Result<Arc<Workload>, CodecError> {
        let i = self.workload_index()?;
        Ok(self.workloads[i].clone())
    }

    /// The index in the workload table of the next workload ref (defining it first
    /// when it is inline); always in range.
    fn workload_index(&mut self) -> Result<usize, CodecError> {
        let r = self.r.u64()?;
        if r != 0 {
            let i = (r - 1) as usize;
            return if i < self.workloads.len() {
                Ok(i)
            } else {
                Err(CodecError::Bad("workload ref"))
            };
        }
        let w = match self.r.u8()? {
            0 => Workload::Host {
                cgroup_id: self.r.u64()?,
            },
            1 => Workload::Container(self.container()?),
            _ => return Err(CodecError::Bad("workload")),
        };
        self.workloads.push(Arc::new(w));
        Ok(self.workloads.len() - 1)
    }

    fn container(&mut self) -> Result<Container, CodecError> {
        let id = self.string()?;
        let cgroup_id = self.r.u64()?;
        let runtime = self.string()?;
        let name = self.string()?;
        let image = self.string()?;
        let image_repository = self.string()?;
        let image_tag = self.string()?;
        let image_digest = self.string()?;
        let n = self.r.len(2)?;
        let mut labels = std::collections::BTreeMap::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = self.string()?;
            labels.insert(k, v);
        }
        let k8s = match self.r.u8()? {
            0 => None,
            K8S_V1 => Some(KubernetesIdentity {
                namespace: self.string()?,
                pod: self.string()?,
                container: self.string()?,
                pod_uid: self.string()?,
                // Segments written before K8S_V2 have no more than that.
                ..Default::default()
            }),
            K8S_V2 => {
                let mut k = KubernetesIdentity {
                    namespace: self.string()?,
                    pod: self.string()?,
                    container: self.string()?,
                    pod_uid: self.string()?,
                    workload_kind: self.string()?,
                    workload_name: self.string()?,
                    node: self.string()?,
                    service_account: self.string()?,
                    ..Default::default()
                };
                let n = self.r.len(2)?;
                for _ in 0..n {
                    let key = self.string()?;
                    let v = self.string()?;
                    k.labels.insert(key, v);
                }
                Some(k)
            }
            _ => return Err(CodecError::Bad("k8s option")),
        };
        let bits = self.r.u8()?;
        let cap_add = self.strings()?;
        let network_mode = self.string()?;
        Ok(Container {
            id,
            cgroup_id,
            runtime,
            name,
            image,
            image_repository,
            image_tag,
            image_digest,
            labels,
            k8s,
            privileged: bits & 1 != 0,
            cap_add,
            network_mode,
            metadata_complete: bits & 2 != 0,
        })
    }

    fn process(&mut self) -> Result<Arc<Process>, CodecError> {
        let i = self.process_index()?;
        Ok(self.processes[i].clone())
    }

    /// The index in the process table of the next process ref (defining it first
    /// when it is inline); always in range.
    fn process_index(&mut self) -> Result<usize, CodecError> {
        let r = self.r.u64()?;
        if r != 0 {
            let i = (r - 1) as usize;
            return if i < self.processes.len() {
                Ok(i)
            } else {
                Err(CodecError::Bad("process ref"))
            };
        }
        let pid = self.r.u32()?;
        let tid = i64::from(pid)
            .checked_add(self.r.i64()?)
            .and_then(|t| u32::try_from(t).ok())
            .ok_or(CodecError::Bad("tid"))?;
        let ppid = self.r.u32()?;
        let exec_id = self.string()?;
        let parent_exec_id = self.opt_string()?;
        let uid = self.r.u32()?;
        let gid = self.r.u32()?;
        let euid = self.r.u32()?;
        let egid = self.r.u32()?;
        let auid = match self.r.u8()? {
            0 => None,
            1 => Some(self.r.u32()?),
            _ => return Err(CodecError::Bad("auid option")),
        };
        let exe = self.string()?;
        let argv = self.strings()?;
        let cwd = self.string()?;
        let comm = self.string()?;
        let start_ns = self.r.u64()?;
        let tty = self.r.u32()?;
        let bits = self.r.u8()?;
        let upper_ancestors = if bits & 8 != 0 { self.r.u64()? } else { 0 };
        let n = self.r.len(1)?;
        let mut ancestry = Vec::with_capacity(n);
        for i in 0..n {
            ancestry.push(self.ancestor(upper_ancestors >> i.min(63) & 1 != 0)?);
        }
        let env = if bits & 4 != 0 {
            Some(self.strings()?)
        } else {
            None
        };
        let p = Arc::new(Process {
            pid,
            tid,
            ppid,
            exec_id,
            parent_exec_id,
            uid,
            gid,
            euid,
            egid,
            auid,
            exe,
            argv,
            argv_truncated: bits & 1 != 0,
            cwd,
            comm,
            start_ns,
            tty,
            ancestry,
            exe_upper_layer: bits & 2 != 0,
            env,
        });
        self.processes.push(p);
        Ok(self.processes.len() - 1)
    }

    /// `upper`: the ancestor's executable was written in its container (a definition
    /// takes it; a reference is to a definition that already has it).
    fn ancestor(&mut self, upper: bool) -> Result<Arc<Ancestor>, CodecError> {
        let r = self.r.u64()?;
        if r != 0 {
            return self
                .ancestors
                .get((r - 1) as usize)
                .cloned()
                .ok_or(CodecError::Bad("ancestor ref"));
        }
        let a = Arc::new(Ancestor {
            pid: self.r.u32()?,
            exec_id: self.string()?,
            exe: self.string()?,
            argv: self.strings()?,
            comm: self.string()?,
            exe_upper_layer: upper,
        });
        self.ancestors.push(a.clone());
        Ok(a)
    }

    fn sockaddr_tagged(&mut self, tag: u8) -> Result<SockAddr, CodecError> {
        Ok(match tag {
            0..=3 => {
                let ip: std::net::IpAddr = if tag.is_multiple_of(2) {
                    let b = self.r.bytes(4)?;
                    std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
                } else {
                    let b = self.r.bytes(16)?;
                    let mut a = [0u8; 16];
                    a.copy_from_slice(b);
                    std::net::Ipv6Addr::from(a).into()
                };
                let port = self.r.u16()?;
                if tag < 2 {
                    SockAddr::Inet { ip, port }
                } else {
                    SockAddr::Inet6 { ip, port }
                }
            }
            4 => SockAddr::Unix {
                path: self.string()?,
            },
            5 => SockAddr::Other {
                number: self.r.u16()?,
            },
            _ => return Err(CodecError::Bad("socket address")),
        })
    }

    fn sockaddr(&mut self) -> Result<SockAddr, CodecError> {
        let tag = self.r.u8()?;
        self.sockaddr_tagged(tag)
    }

    fn opt_sockaddr(&mut self) -> Result<Option<SockAddr>, CodecError> {
        match self.r.u8()? {
            0xff => Ok(None),
            t => Ok(Some(self.sockaddr_tagged(t)?)),
        }
    }

    fn payload(&mut self) -> Result<Payload, CodecError> {
        let kind = self.r.u8()?;
        if kind == JSON_PAYLOAD {
            let n = self.r.len(1)?;
            let json = self.r.bytes(n)?;
            return serde_json::from_slice(json).map_err(|e| CodecError::Json(e.to_string()));
        }
        let k = EventKind::ALL
            .get(kind as usize)
            .copied()
            .ok_or(CodecError::Bad("event kind"))?;
        Ok(match k {
            EventKind::Exec => {
                let bits = self.r.u8()?;
                Payload::Exec {
                    filename: self.string()?,
                    interpreter: self.opt_string()?,
                    from_memfd: bits & 1 != 0,
                    from_deleted: bits & 2 != 0,
                }
            }
            EventKind::Fork => Payload::Fork {
                child_pid: self.r.u32()?,
                child_exec_id: self.string()?,
            },
            EventKind::Exit => {
                let code = self.r.i32()?;
                let bits = self.r.u8()?;
                let signal = if bits & 1 != 0 {
                    Some(self.r.i32()?)
                } else {
                    None
                };
                Payload::Exit {
                    code,
                    signal,
                    core_dumped: bits & 2 != 0,
                }
            }
            EventKind::FileOpen => {
                let a = self.r.u8()?;
                let flags = self.r.u32()?;
                let mode = self.r.u32()?;
                let ret = self.r.i64()?;
                let repeats = self.r.u64()?;
                Payload::FileOpen {
                    path: self.string()?,
                    path_raw: self.opt_string()?,
                    flags,
                    mode,
                    access: OpenAccess {
                        read: a & 1 != 0,
                        write: a & 2 != 0,
                        create: a & 4 != 0,
                        truncate: a & 8 != 0,
                    },
                    ret,
                    repeats,
                }
            }
            EventKind::FileUnlink => {
                let ret = self.r.i64()?;
                Payload::FileUnlink {
                    path: self.string()?,
                    ret,
                }
            }
            EventKind::FileRename => {
                let ret = self.r.i64()?;
                Payload::FileRename {
                    old_path: self.string()?,
                    new_path: self.string()?,
                    ret,
                }
            }
            EventKind::FileLink => {
                let symbolic = self.r.u8()? != 0;
                let ret = self.r.i64()?;
                Payload::FileLink {
                    old_path: self.string()?,
                    new_path: self.string()?,
                    symbolic,
                    ret,
                }
            }
            EventKind::FileChmod => {
                let mode = self.r.u32()?;
                let ret = self.r.i64()?;
                Payload::FileChmod {
                    path: self.string()?,
                    mode,
                    ret,
                }
            }
            EventKind::FileChown => {
                let uid = self.r.i64()?;
                let gid = self.r.i64()?;
                let ret = self.r.i64()?;
                Payload::FileChown {
                    path: self.string()?,
                    uid,
                    gid,
                    ret,
                }
            }
            EventKind::FileTruncate => {
                let length = self.r.i64()?;
                let ret = self.r.i64()?;
                Payload::FileTruncate {
                    path: self.string()?,
                    length,
                    ret,
                }
            }
            EventKind::NetConnect => {
                let proto = proto_from(self.r.u8()?)?;
                let ret = self.r.i64()?;
                Payload::NetConnect {
                    proto,
                    local: self.opt_sockaddr()?,
                    remote: self.sockaddr()?,
                    ret,
                }
            }
            EventKind::NetAccept => {
                let proto = proto_from(self.r.u8()?)?;
                let ret = self.r.i64()?;
                Payload::NetAccept {
                    proto,
                    local: self.opt_sockaddr()?,
                    remote: self.opt_sockaddr()?,
                    ret,
                }
            }
            EventKind::NetBind => {
                let proto = proto_from(self.r.u8()?)?;
                let ret = self.r.i64()?;
                Payload::NetBind {
                    proto,
                    local: self.sockaddr()?,
                    ret,
                }
            }
            EventKind::NetListen => {
                let proto = proto_from(self.r.u8()?)?;
                let backlog = self.r.i32()?;
                let ret = self.r.i64()?;
                Payload::NetListen {
                    proto,
                    local: self.opt_sockaddr()?,
                    backlog,
                    ret,
                }
            }
            EventKind::Mount => {
                let flags = self.r.u64()?;
                let ret = self.r.i64()?;
                Payload::Mount {
                    call: self.string()?,
                    source: self.string()?,
                    target: self.string()?,
                    fstype: self.string()?,
                    flags,
                    ret,
                }
            }
            EventKind::Lost => {
                let source = match self.r.u8()? {
                    0 => LossSource::Kernel,
                    1 => LossSource::Queue,
                    2 => LossSource::Output,
                    3 => LossSource::Recorder,
                    _ => return Err(CodecError::Bad("loss source")),
                };
                let count = self.r.u64()?;
                let cpu = match self.r.u8()? {
                    0 => None,
                    1 => Some(self.r.u32()?),
                    _ => return Err(CodecError::Bad("cpu option")),
                };
                Payload::Lost { source, count, cpu }
            }
            _ => return Err(CodecError::Bad("event kind")),
        })
    }
}

/// Decodes a whole body.
pub(crate) fn decode_all(body: &[u8]) -> Result<Vec<Record>, CodecError> {
    let mut out = Vec::new();
    decode_into(body, &mut out, |_| true)?;
    Ok(out)
}

/// Decodes a body, appending the records `keep` accepts to `out`; on an error `out`
/// is cut back to what it held.
pub(crate) fn decode_into(
    body: &[u8],
    out: &mut Vec<Record>,
    mut keep: impl FnMut(&Record) -> bool,
) -> Result<(), CodecError> {
    let start = out.len();
    let mut d = BlockDecoder::new(body);
    let mut read = || -> Result<(), CodecError> {
        while !d.r.is_empty() {
            // An event (nearly every record) is built straight into its slot and
            // dropped there if `keep` refuses it: a record is a few hundred bytes, and
            // moving it through `Option`s and `Result`s on its way in cost more than
            // decoding its fields.
            if d.r.buf.get(d.r.pos) == Some(&TAG_EVENT) {
                d.r.pos += 1;
                out.push(Record::Event(d.event()?));
            } else if let Some(r) = d.next_record()? {
                out.push(r);
            }
            if out.last().is_some_and(|r| !keep(r)) {
                out.truncate(out.len() - 1);
            }
        }
        Ok(())
    };
    let res = read();
    if res.is_err() {
        out.truncate(start);
    }
    res
}

/// An event to decode into with [`BlockDecoder::next_event_into`] (any value: every
/// field is overwritten).
pub(crate) fn scratch_event() -> Event {
    Event {
        schema: rampart_event::SCHEMA_VERSION,
        ts_ns: 0,
        host: Arc::from(""),
        seq: 0,
        process: None,
        container: Arc::new(Workload::Host { cgroup_id: 0 }),
        compat_syscall: false,
        payload: Payload::Lost {
            source: LossSource::Recorder,
            count: 0,
            cpu: None,
        },
    }
}

/// A body's events through [`BlockDecoder::next_event_into`] (one reused event,
/// cloned out): for tests and fuzzing, which check it against [`decode_all`].
#[doc(hidden)]
pub fn decode_events_in_place(body: &[u8]) -> Result<Vec<Event>, CodecError> {
    let mut d = BlockDecoder::new(body);
    let mut ev = scratch_event();
    let mut out = Vec::new();
    while let Some(is_event) = d.next_event_into(&mut ev)? {
        if is_event {
            out.push(ev.clone());
        }
    }
    Ok(out)
}

/// The record count of an encoded [`BlockSummary`], read without decoding the rest.
pub(crate) fn summary_records(summary: &[u8]) -> Option<u32> {
    let mut r = Reader {
        buf: summary,
        pos: 0,
    };
    r.u64().ok()?;
    r.u64().ok()?;
    r.u32().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample;

    fn roundtrip(records: &[Record]) -> (usize, Vec<Record>) {
        let mut enc = BlockEncoder::default();
        for r in records {
            enc.push(r);
        }
        let (body, summary) = enc.finish();
        assert_eq!(summary.records as usize, records.len());
        (body.len(), decode_all(&body).unwrap())
    }

    #[test]
    fn workload_round_trips_exactly() {
        let events = sample::load_events(&sample::workload_file()).unwrap();
        assert!(events.len() > 10_000, "{}", events.len());
        let records: Vec<Record> = events.into_iter().map(Record::Event).collect();
        // Blocks of a few thousand records, as the writer makes them.
        for chunk in records.chunks(3000) {
            let (_, back) = roundtrip(chunk);
            assert_eq!(back, chunk);
        }
    }

    #[test]
    fn separately_decoded_processes_are_interned_by_value() {
        let a = sample::event(1, 1, Some("abcd"), 7, "/etc/passwd");
        let mut b = sample::event(2, 2, Some("abcd"), 7, "/etc/passwd");
        // Same values, different Arcs.
        b.process = Some(Arc::new((**a.process.as_ref().unwrap()).clone()));
        b.container = Arc::new((*a.container).clone());
        let (one, _) = roundtrip(&[Record::Event(a.clone())]);
        let (two, back) = roundtrip(&[Record::Event(a), Record::Event(b)]);
        assert!(two - one < 16, "second event cost {} bytes", two - one);
        let (Record::Event(x), Record::Event(y)) = (&back[0], &back[1]) else {
            panic!()
        };
        assert!(Arc::ptr_eq(
            x.process.as_ref().unwrap(),
            y.process.as_ref().unwrap()
        ));
    }

    #[test]
    fn ancestors_written_in_their_container_round_trip() {
        let mut e = sample::event(3, 1, Some("c0ffee"), 9, "/etc/shadow");
        let ancestor = |pid: u32, upper: bool| {
            Arc::new(Ancestor {
                pid,
                exec_id: format!("ab:{pid}:1"),
                exe: format!("/tmp/x{pid}"),
                exe_upper_layer: upper,
                ..Default::default()
            })
        };
        let p = Arc::make_mut(e.process.as_mut().unwrap());
        p.ancestry = vec![ancestor(20, false), ancestor(21, true), ancestor(22, false)];
        // A second process sharing the flagged ancestor reads it back flagged too.
        let mut f = e.clone();
        let q = Arc::make_mut(f.process.as_mut().unwrap());
        q.pid = 30;
        q.ancestry.remove(0);
        let records = [Record::Event(e), Record::Event(f)];
        let (_, back) = roundtrip(&records);
        assert_eq!(back, records);
    }

    fn k8s_event() -> Event {
        let mut e = sample::event(5, 1, Some("c0ffee"), 9, "/etc/shadow");
        let mut c = e.container.container().unwrap().clone();
        c.k8s = Some(KubernetesIdentity {
            namespace: "payments".into(),
            pod: "api-7d4b9c8f5-x2x9k".into(),
            container: "api".into(),
            pod_uid: "0d5e-11".into(),
            workload_kind: "Deployment".into(),
            workload_name: "api".into(),
            node: "node-1".into(),
            service_account: "api-runner".into(),
            labels: [("app".to_string(), "api".to_string())].into(),
        });
        e.container = Arc::new(Workload::Container(c));
        e
    }

    #[test]
    fn kubernetes_identity_round_trips_whole() {
        let e = k8s_event();
        let (_, back) = roundtrip(&[Record::Event(e.clone())]);
        assert_eq!(back, vec![Record::Event(e)]);
    }

    #[test]
    fn kubernetes_identity_of_the_first_form_still_reads() {
        let e = k8s_event();
        let mut enc = BlockEncoder {
            k8s_v1: true,
            ..Default::default()
        };
        enc.push(&Record::Event(e.clone()));
        let (body, _) = enc.finish();
        let back = decode_all(&body).unwrap();
        let Record::Event(b) = &back[0] else { panic!() };
        let k = b.container.container().unwrap().k8s.clone().unwrap();
        // What the first form had comes back; the rest is empty, not garbage.
        assert_eq!(
            (k.namespace.as_str(), k.pod.as_str(), k.container.as_str()),
            ("payments", "api-7d4b9c8f5-x2x9k", "api")
        );
        assert_eq!(k.pod_uid, "0d5e-11");
        assert!(k.workload_kind.is_empty() && k.service_account.is_empty());
        assert!(k.labels.is_empty());
        // The fields after the identity still line up.
        assert_eq!(b.payload, e.payload);
        assert_eq!(b.process, e.process);
    }

    #[test]
    fn events_decoded_in_place_equal_whole_decoding() {
        use rampart_event::*;
        let events = sample::load_events(&sample::workload_file()).unwrap();
        // Payloads that switch kind and option shape from event to event, so the
        // reused strings and options are overwritten every way.
        let odd = [
            Payload::FileOpen {
                path: "/etc/a-much-longer-path-than-the-last/one".into(),
                path_raw: Some("../a".into()),
                flags: 0o2,
                mode: 0o644,
                access: OpenAccess::from_flags(0o2),
                ret: -13,
                repeats: 4,
            },
            Payload::Exec {
                filename: "/bin/sh".into(),
                interpreter: Some("/bin/bash".into()),
                from_memfd: true,
                from_deleted: true,
            },
            Payload::Exec {
                filename: "/x".into(),
                interpreter: None,
                from_memfd: false,
                from_deleted: false,
            },
            Payload::DnsQuery {
                query: "example.org".into(),
                qtype: 1,
                server: SockAddr::Other { number: 1 },
            },
            Payload::FileUnlink {
                path: String::new(),
                ret: 0,
            },
            Payload::Fork {
                child_pid: 9,
                child_exec_id: "b:9:1".into(),
            },
        ];
        let mut records = Vec::new();
        for (i, e) in events.iter().take(4000).enumerate() {
            let mut e = e.clone();
            if i % 7 == 0 {
                e.payload = odd[(i / 7) % odd.len()].clone();
            }
            if i % 11 == 0 {
                e.process = None;
            }
            records.push(Record::Event(e));
            if i % 500 == 0 {
                records.push(Record::Lifecycle(LifecycleRecord {
                    ts_ns: i as u64,
                    action: LifecycleAction::Die { exit_code: 1 },
                    container_id: "abc".into(),
                    name: "web".into(),
                    image: "nginx:1".into(),
                    labels: Default::default(),
                }));
            }
        }
        for chunk in records.chunks(1500) {
            let mut enc = BlockEncoder::default();
            for r in chunk {
                enc.push(r);
            }
            let (body, _) = enc.finish();
            let whole: Vec<Event> = decode_all(&body)
                .unwrap()
                .into_iter()
                .filter_map(|r| match r {
                    Record::Event(e) => Some(e),
                    _ => None,
                })
                .collect();
            assert!(whole.len() > 1000);
            assert_eq!(decode_events_in_place(&body).unwrap(), whole);
            // A body cut anywhere fails as whole decoding does, without a panic.
            for cut in [1, body.len() / 3, body.len() - 1] {
                assert_eq!(
                    decode_events_in_place(&body[..cut]).is_err(),
                    decode_all(&body[..cut]).is_err()
                );
            }
        }
    }

    #[test]
    fn every_payload_kind_round_trips() {
        use rampart_event::*;
        let inet = SockAddr::Inet {
            ip: "10.0.0.1".parse().unwrap(),
            port: 443,
        };
        let v6 = SockAddr::Inet6 {
            ip: "::1".parse().unwrap(),
            port: 53,
        };
        let payloads = vec![
            Payload::Exec {
                filename: "/bin/sh".into(),
                interpreter: Some("/bin/bash".into()),
                from_memfd: true,
                from_deleted: false,
            },
            Payload::Exit {
                code: -1,
                signal: Some(9),
                core_dumped: true,
            },
            Payload::Exit {
                code: 0,
                signal: None,
                core_dumped: false,
            },
            Payload::FileLink {
                old_path: "a".into(),
                new_path: "b".into(),
                symbolic: true,
                ret: 0,
            },
            Payload::FileRename {
                old_path: "a".into(),
                new_path: "b".into(),
                ret: -2,
            },
            Payload::FileChmod {
                path: "/x".into(),
                mode: 0o755,
                ret: 0,
            },
            Payload::FileChown {
                path: "/x".into(),
                uid: -1,
                gid: 5,
                ret: 0,
            },
            Payload::FileTruncate {
                path: "/x".into(),
                length: 9,
                ret: 0,
            },
            Payload::NetConnect {
                proto: L4Proto::Tcp,
                local: Some(v6.clone()),
                remote: inet.clone(),
                ret: -115,
            },
            Payload::NetAccept {
                proto: L4Proto::Unix,
                local: Some(SockAddr::Unix {
                    path: "/run/s".into(),
                }),
                remote: None,
                ret: 4,
            },
            Payload::NetBind {
                proto: L4Proto::Udp,
                local: SockAddr::Other { number: 17 },
                ret: 0,
            },
            Payload::NetListen {
                proto: L4Proto::Tcp,
                local: None,
                backlog: 128,
                ret: 0,
            },
            Payload::Mount {
                call: "mount".into(),
                source: "proc".into(),
                target: "/proc".into(),
                fstype: "proc".into(),
                flags: 14,
                ret: 0,
            },
            Payload::Lost {
                source: LossSource::Kernel,
                count: 12,
                cpu: Some(1),
            },
            Payload::DnsQuery {
                query: "example.org".into(),
                qtype: 1,
                server: inet,
            },
            Payload::Ptrace {
                request: 16,
                target_pid: 4,
                ret: 0,
            },
        ];
        let records: Vec<Record> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let mut e = sample::event(1000 - i as u64, i as u64, None, 3, "/");
                e.payload = p;
                e.compat_syscall = i % 2 == 0;
                Record::Event(e)
            })
            .collect();
        assert_eq!(roundtrip(&records).1, records);
    }
}
