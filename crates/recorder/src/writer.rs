//! The writer: a thread that takes records from a bounded queue, batches them into
//! blocks (one open block per container, up to a bound), and hands sealed blocks to
//! the append side. Producers never wait: a full queue sheds the record and counts it.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rampart_event::{Alert, Event, Workload};
use rustc_hash::FxHashMap;

use crate::codec::BlockEncoder;
use crate::error::RecorderError;
use crate::record::{LifecycleRecord, Record};
use crate::store::{Appender, Recorder, Stats};

enum Msg {
    Event(Arc<Event>),
    Record(Box<Record>),
    Flush(SyncSender<()>),
    Stop,
}

/// The handle producers append through. Cloneable senders are not exposed: one
/// handle, shared by reference (or in an `Arc`), keeps the shutdown explicit.
pub struct Writer {
    tx: SyncSender<Msg>,
    rec: Arc<Recorder>,
    thread: Option<JoinHandle<()>>,
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
        let worker = Worker::new(rec.clone(), appender);
        let thread = std::thread::Builder::new()
            .name("rampart-recorder".into())
            .spawn(move || worker.run(rx))?;
        Ok(Writer {
            tx,
            rec,
            thread: Some(thread),
        })
    }

    fn offer(&self, m: Msg) -> bool {
        match self.tx.try_send(m) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.rec.counters.shed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Queues an event; false (and counted as shed) when the queue is full.
    pub fn try_append_event(&self, ev: Arc<Event>) -> bool {
        self.offer(Msg::Event(ev))
    }

    pub fn try_append_alert(&self, alert: Alert) -> bool {
        self.offer(Msg::Record(Box::new(Record::Alert(alert))))
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

struct Worker {
    rec: Arc<Recorder>,
    appender: Appender,
    open: FxHashMap<Box<str>, OpenBlock>,
    /// Finished encoders, reused so their buffers and tables keep their capacity.
    spare: Vec<BlockEncoder>,
    block_bytes: usize,
    max_age: Duration,
    max_open: usize,
    max_span: u64,
    pushed: u64,
}

impl Worker {
    fn new(rec: Arc<Recorder>, appender: Appender) -> Self {
        Self {
            block_bytes: rec.cfg.block_bytes.max(1),
            max_age: rec.cfg.max_block_age,
            max_open: rec.cfg.max_open_blocks.max(1),
            max_span: rec.cfg.max_block_span.as_nanos().min(u64::MAX as u128) as u64,
            rec,
            appender,
            open: FxHashMap::default(),
            spare: Vec::new(),
            pushed: 0,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        self.appender.enforce_retention();
        let tick = (self.max_age / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let mut last_tick = Instant::now();
        let mut last_retention = Instant::now();
        let mut n: u32 = 0;
        loop {
            match rx.recv_timeout(tick) {
                Ok(Msg::Event(ev)) => self.push(partition_key(&ev.container), Item::Event(&ev)),
                Ok(Msg::Record(r)) => {
                    let key = match &*r {
                        Record::Event(e) => partition_key(&e.container),
                        Record::Alert(a) => partition_key(&a.event.container),
                        Record::Lifecycle(l) => l.container_id.as_str(),
                    }
                    .to_owned();
                    self.push(&key, Item::Record(&r))
                }
                Ok(Msg::Flush(done)) => {
                    self.seal_all();
                    if self.rec.cfg.sync_on_flush {
                        self.appender.sync();
                    }
                    let _ = done.send(());
                }
                Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.seal_all();
                    self.appender.roll();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            n = n.wrapping_add(1);
            // Checking the clock for every record would cost more than the record.
            if n.is_multiple_of(1024) || last_tick.elapsed() >= tick {
                last_tick = Instant::now();
                self.seal_aged();
                if last_retention.elapsed() >= Duration::from_secs(10) {
                    last_retention = Instant::now();
                    self.appender.enforce_retention();
                }
            }
        }
    }

    fn push(&mut self, key: &str, item: Item<'_>) {
        self.pushed += 1;
        let pushed = self.pushed;
        if !self.open.contains_key(key) {
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
        let ts = match item {
            Item::Event(ev) => ev.ts_ns,
            Item::Record(rec) => rec.ts_ns(),
        };
        let span = self.max_span;
        if self
            .open
            .get(key)
            .and_then(|b| b.enc.min_ts())
            .is_some_and(|min| ts.saturating_sub(min) > span)
        {
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
                self.appender.write_block(&body, summary);
                b.enc.recycle(body);
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
