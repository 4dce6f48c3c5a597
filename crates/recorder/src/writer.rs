//! The writer: a thread that takes records from a bounded queue and encodes them into
//! blocks (one open block per container, up to a bound), and a second thread, the
//! sealer, that compresses, writes and catalogues the sealed blocks (the append side)
//! and applies retention. Encoding is the per-record work; compression, I/O and the
//! catalog are per block, so the sealer keeps them off the record path and the two
//! run on two cores when there are two. Producers never wait: a full queue sheds the
//! record and counts it. A slow disk fills the sealer's small queue of blocks, which
//! holds the encoder up, whose own queue then sheds.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{
    channel, sync_channel, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError,
    TrySendError,
};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_event::{Alert, Event, Workload};
use rustc_hash::FxHashMap;

use crate::codec::{BlockEncoder, BlockSummary};
use crate::error::RecorderError;
use crate::record::{LifecycleRecord, Record};
use crate::store::{Appender, Recorder, Stats};

/// The encoding thread's name (what `top -H` and the benchmark see).
pub const WRITER_THREAD: &str = "rampart-recorder";
/// The sealing thread's name (15 bytes: the kernel keeps no more).
pub const SEALER_THREAD: &str = "recorder-sealer";
/// How often the counters are published for other processes.
const PUBLISH_EVERY: Duration = Duration::from_secs(2);
/// Sealed blocks waiting for the sealer (each up to the block size).
const SEALER_QUEUE: usize = 8;

enum Msg {
    Event(Arc<Event>),
    /// A batch of events in one message: the producer's thread and the writer's trade
    /// one wake-up per batch instead of one per event (on a busy core each wake-up is
    /// a context switch, which cost more than encoding the event).
    Events(Vec<Arc<Event>>),
    Record(Box<Record>),
    Flush(SyncSender<()>),
    /// Holds the encoder up this long (tests of a writer falling behind).
    Stall(Duration),
    Stop,
}

impl Msg {
    /// What the queue's event bound counts this message as (flushes and stops are
    /// sent past `Writer::offer`, uncounted).
    fn events_counted(&self) -> usize {
        match self {
            Msg::Events(v) => v.len(),
            Msg::Event(_) | Msg::Record(_) => 1,
            Msg::Flush(_) | Msg::Stall(_) | Msg::Stop => 0,
        }
    }
}

/// How far the writer is behind its producers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterLag {
    /// Records queued and not yet encoded.
    pub queued: u64,
    /// How long the oldest of them has waited, at most: the time since the encoder
    /// last found its queue empty (zero when nothing waits). A writer that keeps up
    /// empties its queue every few milliseconds; one that stalls, or cannot keep up,
    /// shows it growing.
    pub behind: Duration,
}

/// Reads a writer's [`WriterLag`] from another thread (cheap: two atomics and a clock
/// read; the encoder stores the time once per empty queue, never per record).
#[derive(Debug, Clone)]
pub struct LagProbe {
    in_flight: Arc<AtomicUsize>,
    /// When the encoder last found its queue empty, ns after `base`.
    drained_at: Arc<AtomicU64>,
    base: Instant,
}

impl LagProbe {
    pub fn lag(&self) -> WriterLag {
        let queued = self.in_flight.load(Ordering::Relaxed) as u64;
        if queued == 0 {
            return WriterLag::default();
        }
        let now = self.base.elapsed().as_nanos() as u64;
        let drained = self.drained_at.load(Ordering::Relaxed);
        WriterLag {
            queued,
            behind: Duration::from_nanos(now.saturating_sub(drained)),
        }
    }
}

/// The handle producers append through. Cloneable senders are not exposed: one
/// handle, shared by reference (or in an `Arc`), keeps the shutdown explicit.
pub struct Writer {
    tx: SyncSender<Msg>,
    /// Events queued and not yet encoded: the queue's bound in events (its channel
    /// bounds messages, and a batch is one message).
    in_flight: Arc<AtomicUsize>,
    capacity: usize,
    rec: Arc<Recorder>,
    thread: Option<JoinHandle<()>>,
    lag: LagProbe,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("recorder", &self.rec)
            .finish()
    }
}

impl Writer {
    /// Starts the writer thread of a writable recorder (one at a time).
    pub fn start(rec: Arc<Recorder>) -> Result<Writer, RecorderError> {
        if !rec.is_writable() {
            return Err(RecorderError::ReadOnly);
        }
        if rec.writer_running.swap(true, Ordering::SeqCst) {
            return Err(RecorderError::WriterRunning);
        }
        let appender = match Appender::new(rec.clone()) {
            Ok(a) => a,
            Err(e) => {
                rec.writer_running.store(false, Ordering::SeqCst);
                return Err(e);
            }
        };
        let (tx, rx) = sync_channel(rec.cfg.queue_capacity.max(1));
        let (seal_tx, seal_rx) = sync_channel(SEALER_QUEUE);
        let (bodies_tx, bodies_rx) = channel();
        let sealer = Sealer {
            appender,
            bodies: bodies_tx,
        };
        let sealer = std::thread::Builder::new()
            .name(SEALER_THREAD.into())
            .spawn(move || sealer.run(seal_rx));
        let sealer = match sealer {
            Ok(t) => t,
            Err(e) => {
                rec.writer_running.store(false, Ordering::SeqCst);
                return Err(e.into());
            }
        };
        let in_flight = Arc::new(AtomicUsize::new(0));
        let lag = LagProbe {
            in_flight: in_flight.clone(),
            drained_at: Arc::new(AtomicU64::new(0)),
            base: Instant::now(),
        };
        let worker = Worker::new(rec.clone(), seal_tx, sealer, bodies_rx, lag.clone());
        let thread = std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || worker.run(rx))?;
        Ok(Writer {
            tx,
            in_flight,
            capacity: rec.cfg.queue_capacity.max(1),
            rec,
            thread: Some(thread),
            lag,
        })
    }

    /// How far the writer is behind now.
    pub fn lag(&self) -> WriterLag {
        self.lag.lag()
    }

    /// A handle that reads [`Writer::lag`] from elsewhere (the node's health report).
    pub fn lag_probe(&self) -> LagProbe {
        self.lag.clone()
    }

    /// Holds the encoder up for `d` once it reaches this point of its queue: a stalled
    /// writer, for tests of what reports its lag. False when the queue is full.
    #[doc(hidden)]
    pub fn stall(&self, d: Duration) -> bool {
        self.tx.try_send(Msg::Stall(d)).is_ok()
    }

    fn offer(&self, m: Msg) -> bool {
        let n = m.events_counted();
        if self.in_flight.fetch_add(n, Ordering::Relaxed) + n > self.capacity {
            return self.shed(n);
        }
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => self.shed(n),
        }
    }

    fn shed(&self, n: usize) -> bool {
        self.in_flight.fetch_sub(n, Ordering::Relaxed);
        self.rec
            .counters
            .shed
            .fetch_add(n as u64, Ordering::Relaxed);
        false
    }

    /// Queues an event; false (and counted as shed) when the queue is full.
    pub fn try_append_event(&self, ev: Arc<Event>) -> bool {
        self.offer(Msg::Event(ev))
    }

    /// Appends a batch of events as one hand-off (all of them, or none when the queue
    /// has no room for the whole batch: they are counted as shed).
    pub fn try_append_events(&self, events: Vec<Arc<Event>>) -> bool {
        if events.is_empty() {
            return true;
        }
        self.offer(Msg::Events(events))
    }

    pub fn try_append_alert(&self, alert: Alert) -> bool {
        self.offer(Msg::Record(Box::new(Record::Alert(Box::new(alert)))))
    }

    pub fn try_append_lifecycle(&self, l: LifecycleRecord) -> bool {
        self.offer(Msg::Record(Box::new(Record::Lifecycle(l))))
    }

    pub fn try_append(&self, r: Record) -> bool {
        match r {
            Record::Event(e) => self.try_append_event(Arc::new(e)),
            other => self.offer(Msg::Record(Box::new(other))),
        }
    }

    /// Seals every open block, writes it, and waits until it is catalogued (and
    /// synced when so configured). Blocks the caller, not the producers.
    pub fn flush(&self) -> Result<(), RecorderError> {
        let (tx, rx) = sync_channel(1);
        self.tx
            .send(Msg::Flush(tx))
            .map_err(|_| RecorderError::WriterGone)?;
        rx.recv().map_err(|_| RecorderError::WriterGone)
    }

    pub fn stats(&self) -> Stats {
        self.rec.stats()
    }

    pub fn recorder(&self) -> &Arc<Recorder> {
        &self.rec
    }

    /// Flushes and stops the thread.
    pub fn close(mut self) -> Result<Stats, RecorderError> {
        self.stop()?;
        Ok(self.rec.stats())
    }

    fn stop(&mut self) -> Result<(), RecorderError> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let _ = self.tx.send(Msg::Stop);
        let res = t.join().map_err(|_| RecorderError::WriterGone);
        self.rec.writer_running.store(false, Ordering::SeqCst);
        res
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

enum Item<'a> {
    Event(&'a Event),
    Record(&'a Record),
}

struct OpenBlock {
    enc: BlockEncoder,
    opened: Instant,
    /// Records pushed by the worker when this block last took one (for eviction).
    last_push: u64,
}

/// What the encoder hands the sealer.
enum SealMsg {
    Block(Vec<u8>, BlockSummary),
    /// Everything before it is written: sync (when configured) and answer.
    Flush(SyncSender<()>),
}

/// The append side's thread: compresses, writes and catalogues sealed blocks, and
/// applies retention; gives the bodies' buffers back for reuse.
struct Sealer {
    appender: Appender,
    bodies: Sender<Vec<u8>>,
}

impl Sealer {
    fn run(mut self, rx: Receiver<SealMsg>) {
        self.appender.enforce_retention();
        let mut last_retention = Instant::now();
        let mut last_publish = Instant::now();
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(SealMsg::Block(body, summary)) => {
                    self.appender.write_block(&body, summary);
                    let _ = self.bodies.send(body);
                }
                Ok(SealMsg::Flush(done)) => {
                    if self.appender.sync_on_flush() {
                        self.appender.sync();
                    }
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.appender.roll();
                    self.appender.publish_stats();
                    return;
                }
            }
            if last_publish.elapsed() >= PUBLISH_EVERY {
                last_publish = Instant::now();
                self.appender.publish_stats();
            }
            if last_retention.elapsed() >= Duration::from_secs(10) {
                last_retention = Instant::now();
                self.appender.enforce_retention();
            }
        }
    }
}

struct Worker {
    rec: Arc<Recorder>,
    sealer: Option<SyncSender<SealMsg>>,
    sealer_thread: Option<JoinHandle<()>>,
    /// Body buffers the sealer is done with.
    bodies: Receiver<Vec<u8>>,
    open: FxHashMap<Box<str>, OpenBlock>,
    /// Finished encoders, reused so their buffers and tables keep their capacity.
    spare: Vec<BlockEncoder>,
    block_bytes: usize,
    max_age: Duration,
    max_open: usize,
    max_span: u64,
    pushed: u64,
    in_flight: Arc<AtomicUsize>,
    lag: LagProbe,
}

impl Worker {
    fn new(
        rec: Arc<Recorder>,
        sealer: SyncSender<SealMsg>,
        sealer_thread: JoinHandle<()>,
        bodies: Receiver<Vec<u8>>,
        lag: LagProbe,
    ) -> Self {
        Self {
            in_flight: lag.in_flight.clone(),
            lag,
            sealer: Some(sealer),
            sealer_thread: Some(sealer_thread),
            bodies,
            block_bytes: rec.cfg.block_bytes.max(1),
            max_age: rec.cfg.max_block_age,
            max_open: rec.cfg.max_open_blocks.max(1),
            max_span: rec.cfg.max_block_span.as_nanos().min(u64::MAX as u128) as u64,
            rec,
            open: FxHashMap::default(),
            spare: Vec::new(),
            pushed: 0,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let tick = (self.max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut last_tick = Instant::now();
        let mut n: u32 = 0;
        let mut batch: Vec<Msg> = Vec::with_capacity(BATCH);
        loop {
            // The clock is read when the queue runs dry or every 1024 records, never
            // per record: under load that would cost more than the record.
            let first = match rx.try_recv() {
                Ok(m) => Ok(m),
                Err(TryRecvError::Disconnected) => Err(RecvTimeoutError::Disconnected),
                Err(TryRecvError::Empty) => {
                    if last_tick.elapsed() >= tick {
                        last_tick = Instant::now();
                        self.seal_aged();
                    }
                    let m = rx.recv_timeout(tick);
                    // The queue was empty until the wait ended (a message ends it as it
                    // arrives): nothing waits from before now.
                    self.lag
                        .drained_at
                        .store(self.lag.base.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    m
                }
            };
            match first {
                Ok(m) => batch.push(m),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    self.stop();
                    return;
                }
            }
            // Take what else is queued, and ask for its memory before touching it: the
            // producer's core wrote these events, so each is a cache miss here, and
            // misses overlap when asked for together.
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            for m in &batch {
                match m {
                    Msg::Event(ev) => prefetch(Arc::as_ptr(ev)),
                    Msg::Events(v) => v.iter().for_each(|ev| prefetch(Arc::as_ptr(ev))),
                    _ => {}
                }
            }
            for m in &batch {
                match m {
                    Msg::Event(ev) => prefetch_event_parts(ev),
                    Msg::Events(v) => v.iter().for_each(|ev| prefetch_event_parts(ev)),
                    _ => {}
                }
            }
            for m in batch.drain(..) {
                let taken = m.events_counted();
                match m {
                    Msg::Event(ev) => self.push(partition_key(&ev.container), Item::Event(&ev)),
                    Msg::Events(events) => {
                        for ev in &events {
                            self.push(partition_key(&ev.container), Item::Event(ev));
                        }
                    }
                    Msg::Record(r) => {
                        let key = match &*r {
                            Record::Event(e) => partition_key(&e.container),
                            Record::Alert(a) => partition_key(&a.event.container),
                            Record::Lifecycle(l) => l.container_id.as_str(),
                        }
                        .to_owned();
                        self.push(&key, Item::Record(&r))
                    }
                    Msg::Flush(done) => {
                        self.seal_all();
                        self.hand_to_sealer(SealMsg::Flush(done));
                    }
                    Msg::Stall(d) => std::thread::sleep(d),
                    Msg::Stop => {
                        self.stop();
                        return;
                    }
                }
                self.in_flight.fetch_sub(taken, Ordering::Relaxed);
                n += taken.max(1) as u32;
                if n >= 1024 {
                    n = 0;
                    if last_tick.elapsed() >= tick {
                        last_tick = Instant::now();
                        self.seal_aged();
                    }
                }
            }
        }
    }

    /// Seals every block, lets the sealer write them, close the segment and end.
    fn stop(&mut self) {
        self.seal_all();
        self.sealer = None;
        if let Some(t) = self.sealer_thread.take() {
            let _ = t.join();
        }
    }

    fn hand_to_sealer(&mut self, m: SealMsg) {
        let gone = match &self.sealer {
            Some(tx) => tx.send(m).is_err(),
            None => true,
        };
        if gone {
            // The sealer panicked: what it was handed is lost, and counted.
            self.rec
                .counters
                .write_errors
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn push(&mut self, key: &str, item: Item<'_>) {
        self.pushed += 1;
        let pushed = self.pushed;
        let ts = match item {
            Item::Event(ev) => ev.ts_ns,
            Item::Record(rec) => rec.ts_ns(),
        };
        // One lookup on the common path: the container's block is open and the
        // record falls within its span.
        let span = self.max_span;
        let reopen = match self.open.get(key) {
            None => {
                if self.open.len() >= self.max_open {
                    // A container gone quiet (or gone) gives its slot up: its block is
                    // sealed now rather than every container sharing blocks from here on.
                    if let Some(lru) = self
                        .open
                        .iter()
                        .min_by_key(|(_, b)| b.last_push)
                        .map(|(k, _)| k.to_string())
                    {
                        self.seal(lru);
                    }
                }
                true
            }
            Some(b) => b
                .enc
                .min_ts()
                .is_some_and(|min| ts.saturating_sub(min) > span),
        };
        if reopen {
            self.seal(key.to_owned());
            let enc = self.spare.pop().unwrap_or_default();
            self.open.insert(
                key.into(),
                OpenBlock {
                    enc,
                    opened: Instant::now(),
                    last_push: pushed,
                },
            );
        }
        let Some(block) = self.open.get_mut(key) else {
            return;
        };
        block.last_push = pushed;
        match item {
            Item::Event(ev) => block.enc.push_event(ev),
            Item::Record(rec) => block.enc.push(rec),
        }
        self.rec.counters.appended.fetch_add(1, Ordering::Relaxed);
        if block.enc.len() >= self.block_bytes {
            self.seal(key.to_owned());
        }
    }

    fn seal(&mut self, key: String) {
        if let Some(mut b) = self.open.remove(key.as_str()) {
            if !b.enc.is_empty() {
                let (body, summary) = b.enc.finish();
                if let Ok(buf) = self.bodies.try_recv() {
                    b.enc.recycle(buf);
                }
                self.hand_to_sealer(SealMsg::Block(body, summary));
            }
            self.spare.push(b.enc);
        }
    }

    fn seal_aged(&mut self) {
        let aged: Vec<String> = self
            .open
            .iter()
            .filter(|(_, b)| b.opened.elapsed() >= self.max_age)
            .map(|(k, _)| k.to_string())
            .collect();
        for k in aged {
            self.seal(k);
        }
    }

    fn seal_all(&mut self) {
        let mut keys: Vec<String> = self.open.keys().map(|k| k.to_string()).collect();
        keys.sort();
        for k in keys {
            self.seal(k);
        }
    }
}

/// Records the writer takes off its queue at once.
const BATCH: usize = 64;

/// Asks for the cache line at `p`; a hint only (it never faults, whatever `p` is).
#[inline(always)]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching reads nothing architecturally; SSE is baseline on x86_64.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The parts of an event the encoder reads next: its container, process and the
/// path its payload names.
#[inline(always)]
fn prefetch_event_parts(ev: &Event) {
    prefetch(Arc::as_ptr(&ev.container));
    if let Some(p) = &ev.process {
        prefetch(Arc::as_ptr(p));
    }
    if let rampart_event::Payload::FileOpen { path, .. } = &ev.payload {
        prefetch(path.as_ptr());
    }
}

fn partition_key(w: &Workload) -> &str {
    match w {
        Workload::Container(c) => &c.id,
        Workload::Host { .. } => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::LifecycleAction;
    use crate::sample;
    use crate::store::RecorderConfig;

    fn count(rec: &Recorder) -> usize {
        let blocks = rec
            .catalog()
            .blocks(0, u64::MAX, None, None, true, None)
            .unwrap();
        blocks
            .iter()
            .map(|b| rec.read_block(b).unwrap().len())
            .sum()
    }

    #[test]
    fn appends_are_batched_per_container_and_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig {
            // The sample events are from 1970: no age bound here.
            max_age: None,
            ..RecorderConfig::with_dir(dir.path())
        })
        .unwrap();
        let w = Writer::start(rec.clone()).unwrap();
        assert!(matches!(
            Writer::start(rec.clone()),
            Err(RecorderError::WriterRunning)
        ));
        for i in 0..1000u64 {
            let c = if i % 2 == 0 { "aaaa" } else { "bbbb" };
            assert!(w.try_append_event(Arc::new(sample::event(i, i, Some(c), 5, "/x"))));
        }
        assert!(w.try_append_lifecycle(LifecycleRecord {
            ts_ns: 2000,
            action: LifecycleAction::Die { exit_code: 137 },
            container_id: "aaaa".into(),
            name: "web".into(),
            image: "nginx:1".into(),
            labels: Default::default(),
        }));
        w.flush().unwrap();
        let s = w.stats();
        assert_eq!((s.appended, s.shed), (1001, 0));
        // One block per container.
        assert_eq!(s.blocks, 2);
        assert_eq!(count(&rec), 1001);
        let stats = w.close().unwrap();
        assert_eq!(stats.blocks, 2);
        // A new writer may start after the first closed.
        let w = Writer::start(rec.clone()).unwrap();
        w.try_append_event(Arc::new(sample::event(5000, 1, None, 5, "/y")));
        drop(w);
        assert_eq!(count(&rec), 1002);
    }

    #[test]
    fn full_queue_sheds_and_counts_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig {
            queue_capacity: 4,
            ..RecorderConfig::with_dir(dir.path())
        })
        .unwrap();
        let w = Writer::start(rec.clone()).unwrap();
        let ev = Arc::new(sample::event(1, 1, Some("cccc"), 5, "/x"));
        let mut accepted = 0u64;
        let t = Instant::now();
        for _ in 0..200_000 {
            accepted += u64::from(w.try_append_event(ev.clone()));
        }
        assert!(t.elapsed() < Duration::from_secs(20));
        w.flush().unwrap();
        let s = w.stats();
        assert_eq!(s.appended, accepted);
        assert_eq!(s.appended + s.shed, 200_000);
        assert_eq!(count(&rec) as u64, accepted);
    }

    #[test]
    fn batches_are_appended_whole_or_shed_whole_within_the_event_bound() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig {
            queue_capacity: 8,
            ..RecorderConfig::with_dir(dir.path())
        })
        .unwrap();
        let w = Writer::start(rec.clone()).unwrap();
        let batch = |from: u64, n: u64| -> Vec<Arc<Event>> {
            (from..from + n)
                .map(|i| Arc::new(sample::event(i, i, Some("dddd"), 5, "/x")))
                .collect()
        };
        // More events than the queue holds in one batch: shed whole, and counted.
        assert!(!w.try_append_events(batch(0, 9)));
        assert!(w.try_append_events(Vec::new()));
        let (mut accepted, mut offered) = (0u64, 9u64);
        for k in 0..20_000u64 {
            let n = 1 + k % 8;
            offered += n;
            if w.try_append_events(batch(100 + k * 8, n)) {
                accepted += n;
            }
        }
        w.flush().unwrap();
        let s = w.stats();
        assert!(accepted > 0);
        assert_eq!(s.appended, accepted);
        assert_eq!(s.appended + s.shed, offered);
        assert_eq!(count(&rec) as u64, accepted);
    }

    #[test]
    fn a_new_container_beyond_the_bound_seals_the_least_recent_block() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig {
            max_open_blocks: 2,
            max_age: None,
            ..RecorderConfig::with_dir(dir.path())
        })
        .unwrap();
        let w = Writer::start(rec.clone()).unwrap();
        for (i, c) in ["aaaa", "bbbb", "aaaa", "cccc", "aaaa", "bbbb"]
            .iter()
            .enumerate()
        {
            for k in 0..10u64 {
                let t = i as u64 * 100 + k;
                w.try_append_event(Arc::new(sample::event(t, t, Some(c), 1, "/x")));
            }
        }
        w.close().unwrap();
        assert_eq!(count(&rec), 60);
        // Every block holds one container: none was shared.
        let blocks = rec
            .catalog()
            .blocks(0, u64::MAX, None, None, true, None)
            .unwrap();
        for b in &blocks {
            assert_eq!(
                rec.catalog().containers_of_blocks(&[b.id]).unwrap().len(),
                1
            );
        }
        // bbbb was evicted for cccc, then cccc for bbbb: aaaa stayed open throughout.
        assert_eq!(blocks.len(), 4);
    }

    #[test]
    fn blocks_are_sealed_by_size_and_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig {
            block_bytes: 4096,
            max_block_age: Duration::from_millis(50),
            ..RecorderConfig::with_dir(dir.path())
        })
        .unwrap();
        let w = Writer::start(rec.clone()).unwrap();
        for i in 0..2000u64 {
            w.try_append_event(Arc::new(sample::event(
                i,
                i,
                Some("dddd"),
                i as u32,
                &format!("/f/{i}"),
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while count(&rec) < 2000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Sealed without a flush: by size (many blocks), the rest by age.
        assert_eq!(count(&rec), 2000);
        assert!(w.stats().blocks > 5);
    }
}
#[cfg(test)]
mod reopen_tests {
    use super::*;
    use crate::store::RecorderConfig;
    #[test]
    fn closing_releases_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::open(RecorderConfig::with_dir(dir.path())).unwrap();
        let w = Writer::start(rec.clone()).unwrap();
        w.try_append_event(Arc::new(crate::sample::event(1, 1, None, 1, "/")));
        w.close().unwrap();
        assert_eq!(Arc::strong_count(&rec), 1);
        drop(rec);
        Recorder::open(RecorderConfig::with_dir(dir.path())).unwrap();
    }
}
