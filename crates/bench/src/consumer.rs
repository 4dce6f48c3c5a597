//! A consumer that serializes every event to JSON (and discards it), as the real
//! output path does, counting events; optionally also folding each event into the
//! image scanner's per-container in-use map, as `rampart up`'s image-scan stage does.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_event::{Event, Workload};
use rampart_scan::in_use::{loaded_path, LoadedFiles, PathMap};
use rampart_sensor::RunningSensor;

/// The image-scan stage's per-event bound on a container's loaded files.
const IN_USE_BOUND: usize = 16_384;

/// One event through the in-use bookkeeping, as the image-scan stage's `observe` does it.
fn fold_in_use(loaded: &mut PathMap<LoadedFiles>, ev: &Event) {
    let id = match ev.container.as_ref() {
        Workload::Container(c) => c.id.as_str(),
        Workload::Host { .. } => "host",
    };
    // Looked up without allocating, as the stage does.
    if !loaded.contains_key(id) {
        loaded.insert(id.to_string(), LoadedFiles::default());
    }
    if let (Some(files), Some(path)) = (loaded.get_mut(id), loaded_path(ev)) {
        std::hint::black_box(files.fold(path, ev.ts_ns, IN_USE_BOUND));
    }
}

pub(crate) struct Consumer {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    /// Time spent in the in-use bookkeeping (ns, each call timed, so an upper bound
    /// by a clock read per event).
    in_use_ns: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    /// Takes the sensor's event channel (leaving a closed one in its place).
    pub(crate) fn start(sensor: &mut RunningSensor) -> Self {
        Self::start_with(sensor, false)
    }

    /// As [`Consumer::start`]; with `in_use`, every event also goes through the image
    /// scanner's in-use bookkeeping as the stage does it: the container's set looked up
    /// by id (the storm runs on the host, so host events stand for one container's),
    /// then the fold of the file an exec or open shows.
    pub(crate) fn start_with(sensor: &mut RunningSensor, in_use: bool) -> Self {
        let mut rx = std::mem::replace(&mut sensor.events, rampart_sensor::EventReceiver::closed());
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let in_use_ns = Arc::new(AtomicU64::new(0));
        let (s, c, f) = (stop.clone(), count.clone(), in_use_ns.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(4096);
            let mut json = rampart_event::json::EventJsonWriter::new();
            let mut loaded: PathMap<LoadedFiles> = PathMap::default();
            while !s.load(Ordering::Relaxed) {
                if let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) {
                    buf.clear();
                    let _ = json.write(&ev, &mut buf);
                    if in_use {
                        let t = std::time::Instant::now();
                        fold_in_use(&mut loaded, &ev);
                        f.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            stop,
            count,
            in_use_ns,
            handle: Some(handle),
        }
    }

    /// Stops the consumer and returns the events it saw.
    pub(crate) fn finish(self) -> u64 {
        self.finish_with_in_use().0
    }

    /// Stops the consumer and returns the events it saw and the ns it spent in the
    /// in-use bookkeeping.
    pub(crate) fn finish_with_in_use(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        (
            self.count.load(Ordering::Relaxed),
            self.in_use_ns.load(Ordering::Relaxed),
        )
    }
}
