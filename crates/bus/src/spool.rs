//! The node's bounded disk queue of outgoing messages, and the forwarder that drains it
//! onto a backplane.
//!
//! Invariants:
//! - Every message goes through the spool, so the backplane sees a node's messages in
//!   the order they were pushed, whether it was up all along or came back after an
//!   outage; the forwarder sends the oldest and only removes it once the backplane
//!   acknowledged it.
//! - A message keeps the id it was given when pushed (node, spool run, sequence) for
//!   every resend, across node restarts too, so the backplane can drop resends.
//! - The spool never exceeds its bounds: a message that does not fit is dropped and
//!   counted (messages and the records they held), and the count goes out with the
//!   next message the node seals ([`Spool::take_dropped_records`]).
//! - One file per message, written to a temporary name then renamed, so a crash leaves
//!   whole messages or none; temporary leftovers are removed at open.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Backplane, OutMessage};

/// Where and how much the spool keeps.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// The node's name, in message ids and on every message.
    pub node: String,
    /// Bytes of queued payloads at most.
    pub max_bytes: u64,
    /// Messages at most.
    pub max_messages: usize,
}

impl SpoolConfig {
    /// 256 MiB and 100,000 messages: at 500 records a message, hours of a busy node's
    /// alerts and inventory.
    pub fn new(dir: impl Into<PathBuf>, node: &str) -> Self {
        Self {
            dir: dir.into(),
            node: node.into(),
            max_bytes: 256 << 20,
            max_messages: 100_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A message waiting in the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpooledMessage {
    pub seq: u64,
    pub id: String,
    pub records: u64,
    pub payload: Bytes,
}

/// The spool's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SpoolStats {
    pub queued_messages: u64,
    pub queued_bytes: u64,
    /// Messages pushed and kept.
    pub accepted: u64,
    /// Messages the backplane acknowledged.
    pub sent: u64,
    /// Messages dropped because the spool was full (or a file was unreadable).
    pub dropped_messages: u64,
    pub dropped_records: u64,
    /// Publish attempts that failed (each is retried).
    pub publish_errors: u64,
}

#[derive(Serialize, Deserialize)]
struct Header {
    id: String,
    records: u64,
}

struct Queue {
    next_seq: u64,
    /// (sequence, bytes on disk), oldest first.
    items: VecDeque<(u64, u64)>,
    bytes: u64,
}

/// The bounded disk queue. Shared between the thread that pushes (a pipeline stage)
/// and the forwarder task.
pub struct Spool {
    config: SpoolConfig,
    /// Distinguishes this open from earlier ones in message ids.
    run: String,
    queue: Mutex<Queue>,
    wake: tokio::sync::Notify,
    accepted: AtomicU64,
    sent: AtomicU64,
    dropped_messages: AtomicU64,
    dropped_records: AtomicU64,
    dropped_unreported: AtomicU64,
    publish_errors: AtomicU64,
}

impl Spool {
    /// Opens the spool directory (creating it), keeping what an earlier run left queued.
    pub fn open(config: SpoolConfig) -> Result<Arc<Self>, SpoolError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                let _ = std::fs::remove_file(entry.path());
            } else if let Some(seq) = name.strip_suffix(".msg").and_then(|s| s.parse().ok()) {
                let len = entry.metadata().map_err(io(&dir))?.len();
                found.push((seq, len));
            }
        }
        found.sort_unstable();
        let bytes = found.iter().map(|(_, l)| l).sum();
        let next_seq = found.last().map(|(s, _)| s + 1).unwrap_or(0);
        if !found.is_empty() {
            tracing::info!(messages = found.len(), bytes, dir = %dir.display(), "spool holds messages from an earlier run; sending them first");
        }
        Ok(Arc::new(Self {
            run: format!("{:x}", rampart_event::wall_ns()),
            config,
            queue: Mutex::new(Queue {
                next_seq,
                items: found.into(),
                bytes,
            }),
            wake: tokio::sync::Notify::new(),
            accepted: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            dropped_messages: AtomicU64::new(0),
            dropped_records: AtomicU64::new(0),
            dropped_unreported: AtomicU64::new(0),
            publish_errors: AtomicU64::new(0),
        }))
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Queue bookkeeping stays consistent at every await-free step; a poisoned lock
        // is still usable.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.config.dir.join(format!("{seq:020}.msg"))
    }

    /// Queues a message of `records` records. `Ok(None)` when it did not fit: dropped
    /// and counted. Returns its id otherwise.
    pub fn push(&self, records: u64, payload: &[u8]) -> Result<Option<String>, SpoolError> {
        let mut q = self.queue();
        let seq = q.next_seq;
        let id = format!("{}.{}.{seq}", self.config.node, self.run);
        let header = serde_json::to_vec(&Header {
            id: id.clone(),
            records,
        })
        .unwrap_or_default();
        let size = (header.len() + 1 + payload.len()) as u64;
        if q.items.len() >= self.config.max_messages || q.bytes + size > self.config.max_bytes {
            drop(q);
            self.drop_counted(records);
            return Ok(None);
        }
        let path = self.path(seq);
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&header)?;
            f.write_all(b"\n")?;
            f.write_all(payload)?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(io(&path))?;
        q.next_seq += 1;
        q.items.push_back((seq, size));
        q.bytes += size;
        drop(q);
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(Some(id))
    }

    fn drop_counted(&self, records: u64) {
        let n = self.dropped_messages.fetch_add(1, Ordering::Relaxed) + 1;
        self.dropped_records.fetch_add(records, Ordering::Relaxed);
        self.dropped_unreported
            .fetch_add(records, Ordering::Relaxed);
        if n.is_power_of_two() {
            tracing::warn!(dropped_messages = n, dir = %self.config.dir.display(), "spool full: message dropped");
        }
    }

    /// Records dropped since the last call: the node reports them with its next batch.
    pub fn take_dropped_records(&self) -> u64 {
        self.dropped_unreported.swap(0, Ordering::Relaxed)
    }

    /// The oldest queued message, or `None` when the spool is empty.
    pub fn head(&self) -> Result<Option<SpooledMessage>, SpoolError> {
        loop {
            let Some(&(seq, _)) = self.queue().items.front() else {
                return Ok(None);
            };
            let path = self.path(seq);
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let parsed = bytes.iter().position(|b| *b == b'\n').and_then(|nl| {
                let h: Header = serde_json::from_slice(&bytes[..nl]).ok()?;
                Some((h, nl))
            });
            match parsed {
                Some((h, nl)) => {
                    return Ok(Some(SpooledMessage {
                        seq,
                        id: h.id,
                        records: h.records,
                        payload: Bytes::from(bytes).slice(nl + 1..),
                    }))
                }
                None => {
                    // Not written by this code (renames are atomic): drop it, counted.
                    tracing::warn!(path = %path.display(), "unreadable spool file dropped");
                    self.remove(seq)?;
                    self.drop_counted(0);
                }
            }
        }
    }

    /// Removes the oldest message once the backplane has it.
    pub fn pop(&self, seq: u64) -> Result<(), SpoolError> {
        self.remove(seq)?;
        self.sent.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn remove(&self, seq: u64) -> Result<(), SpoolError> {
        let mut q = self.queue();
        if q.items.front().map(|(s, _)| *s) == Some(seq) {
            let path = self.path(seq);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&path)(e)),
            }
            if let Some((_, size)) = q.items.pop_front() {
                q.bytes -= size;
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> SpoolStats {
        let q = self.queue();
        SpoolStats {
            queued_messages: q.items.len() as u64,
            queued_bytes: q.bytes,
            accepted: self.accepted.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            dropped_messages: self.dropped_messages.load(Ordering::Relaxed),
            dropped_records: self.dropped_records.load(Ordering::Relaxed),
            publish_errors: self.publish_errors.load(Ordering::Relaxed),
        }
    }

    /// How long the oldest queued message has waited (its file's age); `None` when
    /// nothing waits. The node reports it to central as its bus lag.
    pub fn oldest_age(&self) -> Option<Duration> {
        let seq = self.queue().items.front().map(|(seq, _)| *seq)?;
        let modified = std::fs::metadata(self.path(seq)).ok()?.modified().ok()?;
        Some(modified.elapsed().unwrap_or_default())
    }

    /// Waits until something is pushed (or `timeout`).
    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}

/// Sends the spool's messages in order onto a backplane, retrying each until it is
/// acknowledged, with a backoff from 100 ms to 2 s while the backplane is away.
pub struct Forwarder {
    stop: tokio::sync::watch::Sender<Option<tokio::time::Instant>>,
    task: tokio::task::JoinHandle<()>,
}

/// How long one publish may take before it counts as failed and is retried.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

impl Forwarder {
    pub fn spawn(
        spool: Arc<Spool>,
        bus: Arc<dyn Backplane>,
        runtime: &tokio::runtime::Handle,
    ) -> Self {
        let (stop, stop_rx) = tokio::sync::watch::channel(None);
        let task = runtime.spawn(forward(spool, bus, stop_rx));
        Self { stop, task }
    }

    /// Sends what is queued for up to `drain_for`, then stops; what is left stays on
    /// disk for the next start.
    pub async fn shutdown(self, drain_for: Duration) {
        let _ = self
            .stop
            .send(Some(tokio::time::Instant::now() + drain_for));
        let _ = self.task.await;
    }
}

async fn forward(
    spool: Arc<Spool>,
    bus: Arc<dyn Backplane>,
    mut stop: tokio::sync::watch::Receiver<Option<tokio::time::Instant>>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let deadline = *stop.borrow();
        let past_deadline = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        let head = match spool.head() {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "spool read failed");
                None
            }
        };
        let Some(m) = head else {
            if deadline.is_some() {
                return;
            }
            tokio::select! {
                _ = spool.wait(Duration::from_millis(250)) => {}
                _ = stop.changed() => {}
            }
            continue;
        };
        if past_deadline {
            return;
        }
        let msg = OutMessage {
            id: m.id.clone(),
            node: spool.node().to_string(),
            payload: m.payload.clone(),
        };
        let result = match tokio::time::timeout(PUBLISH_TIMEOUT, bus.publish(msg)).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no acknowledgement within {PUBLISH_TIMEOUT:?}")),
        };
        match result {
            Ok(()) => {
                backoff = Duration::from_millis(100);
                if let Err(e) = spool.pop(m.seq) {
                    tracing::warn!(error = %e, "spool remove failed");
                }
            }
            Err(e) => {
                let n = spool.publish_errors.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(error = %e, failures = n, backplane = bus.kind(), "publish failed; spooling and retrying");
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BusError, Consumer, InProcessBus};
    use async_trait::async_trait;
    use std::sync::atomic::AtomicBool;

    fn config(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            max_bytes: 1 << 20,
            max_messages: 5,
            ..SpoolConfig::new(dir, "node-a")
        }
    }

    #[test]
    fn the_oldest_queued_message_has_an_age() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(config(dir.path())).unwrap();
        assert_eq!(s.oldest_age(), None, "nothing waits");
        s.push(1, b"x").unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let age = s.oldest_age().unwrap();
        assert!(age >= Duration::from_millis(20), "{age:?}");
        let h = s.head().unwrap().unwrap();
        s.pop(h.seq).unwrap();
        assert_eq!(s.oldest_age(), None);
    }

    #[test]
    fn bounded_in_order_and_kept_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(config(dir.path())).unwrap();
        let mut ids = Vec::new();
        for i in 0..7u64 {
            ids.push(s.push(10, format!("payload {i}").as_bytes()).unwrap());
        }
        assert!(ids[..5].iter().all(Option::is_some));
        assert_eq!(ids[5..], [None, None], "full: dropped");
        let st = s.stats();
        assert_eq!(
            (st.queued_messages, st.dropped_messages, st.dropped_records),
            (5, 2, 20)
        );
        assert_eq!(s.take_dropped_records(), 20);
        assert_eq!(s.take_dropped_records(), 0);
        let h = s.head().unwrap().unwrap();
        assert_eq!(&h.payload[..], b"payload 0");
        assert_eq!(Some(h.id.clone()), ids[0]);
        s.pop(h.seq).unwrap();
        drop(s);
        std::fs::write(dir.path().join("00000000000000000099.tmp"), b"half").unwrap();
        let s = Spool::open(config(dir.path())).unwrap();
        let h = s.head().unwrap().unwrap();
        assert_eq!(&h.payload[..], b"payload 1");
        assert_eq!(Some(h.id), ids[1], "a message keeps its id across restarts");
        assert_eq!(s.stats().queued_messages, 4);
        assert!(!dir.path().join("00000000000000000099.tmp").exists());
        let id = s.push(1, b"new").unwrap().unwrap();
        assert!(id.starts_with("node-a."));
        assert_ne!(Some(id), ids[4], "a new run gives new ids");
    }

    /// A backplane that refuses while `down` is set.
    struct Flaky {
        down: AtomicBool,
        inner: InProcessBus,
    }

    #[async_trait]
    impl Backplane for Flaky {
        fn kind(&self) -> &'static str {
            "flaky"
        }
        async fn publish(&self, msg: OutMessage) -> Result<(), BusError> {
            if self.down.load(Ordering::Relaxed) {
                return Err(BusError::Unavailable("down".into()));
            }
            self.inner.publish(msg).await
        }
        async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, BusError> {
            self.inner.consumer(name).await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn forwarder_resends_in_order_after_an_outage() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(SpoolConfig::new(dir.path(), "node-a")).unwrap();
        let bus = Arc::new(Flaky {
            down: AtomicBool::new(true),
            inner: InProcessBus::new(1000),
        });
        let fwd = Forwarder::spawn(
            spool.clone(),
            bus.clone(),
            &tokio::runtime::Handle::current(),
        );
        for i in 0..50u32 {
            spool.push(1, &i.to_be_bytes()).unwrap().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(spool.stats().queued_messages, 50, "held while down");
        assert!(spool.stats().publish_errors >= 1);
        bus.down.store(false, Ordering::Relaxed);
        let mut c = bus.consumer("central").await.unwrap();
        for i in 0..50u32 {
            let d = tokio::time::timeout(Duration::from_secs(10), c.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(&d.payload[..], &i.to_be_bytes());
        }
        fwd.shutdown(Duration::from_secs(1)).await;
        assert_eq!(spool.stats().queued_messages, 0);
        assert_eq!(spool.stats().sent, 50);
    }
}
