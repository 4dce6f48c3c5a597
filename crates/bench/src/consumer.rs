//! A consumer that serializes every event to JSON (and discards it), as the real
//! output path does, counting events.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rampart_sensor::RunningSensor;

pub(crate) struct Consumer {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Consumer {
    /// Takes the sensor's event channel (leaving a closed one in its place).
    pub(crate) fn start(sensor: &mut RunningSensor) -> Self {
        let mut rx = std::mem::replace(&mut sensor.events, rampart_sensor::EventReceiver::closed());
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let (s, c) = (stop.clone(), count.clone());
        let handle = std::thread::spawn(move || {
            let mut buf = Vec::with_capacity(4096);
            let mut json = rampart_event::json::EventJsonWriter::new();
            while !s.load(Ordering::Relaxed) {
                if let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) {
                    buf.clear();
                    let _ = json.write(&ev, &mut buf);
                    c.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            stop,
            count,
            handle: Some(handle),
        }
    }

    /// Stops the consumer and returns the events it saw.
    pub(crate) fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.count.load(Ordering::Relaxed)
    }
}
