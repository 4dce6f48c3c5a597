//! JSON-lines output that survives a full disk: failed writes are counted and
//! reported, never fatal, and a `lost` event marks the gap once writing works again.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rampart_event::{Event, LossSource, Payload};
use rampart_sensor::Stats;

enum Target {
    Stdout(io::Stdout),
    File(BufWriter<File>, PathBuf),
}

pub struct JsonLines {
    target: Target,
    line: Vec<u8>,
    json: rampart_event::json::EventJsonWriter,
    /// Events not written since the last successful write.
    unwritten: u64,
    last_warning: Option<Instant>,
}

impl JsonLines {
    pub fn open(path: Option<PathBuf>) -> io::Result<Self> {
        let target = match path {
            None => Target::Stdout(io::stdout()),
            Some(p) => {
                let f = OpenOptions::new().create(true).append(true).open(&p)?;
                Target::File(BufWriter::with_capacity(256 * 1024, f), p)
            }
        };
        Ok(Self {
            target,
            line: Vec::with_capacity(4096),
            json: rampart_event::json::EventJsonWriter::new(),
            unwritten: 0,
            last_warning: None,
        })
    }

    fn write_raw(&mut self) -> io::Result<()> {
        match &mut self.target {
            Target::Stdout(s) => s.lock().write_all(&self.line),
            Target::File(w, _) => w.write_all(&self.line),
        }
    }

    /// Writes one event; on failure counts it and keeps going.
    pub fn write(&mut self, ev: &Event, stats: &Stats) {
        if self.unwritten > 0 {
            // Mark the gap before the first event that gets through.
            let gap = Event {
                payload: Payload::Lost {
                    source: LossSource::Output,
                    count: self.unwritten,
                    cpu: None,
                },
                process: None,
                ..ev.clone()
            };
            self.line.clear();
            if self.json.write(&gap, &mut self.line).is_ok() {
                self.line.push(b'\n');
                if self.write_raw().is_ok() {
                    self.unwritten = 0;
                }
            }
        }
        self.line.clear();
        if self.json.write(ev, &mut self.line).is_err() {
            stats.output_errors.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.line.push(b'\n');
        if let Err(e) = self.write_raw() {
            self.fail(e, stats);
        }
    }

    fn fail(&mut self, e: io::Error, stats: &Stats) {
        self.unwritten += 1;
        stats.output_drops.fetch_add(1, Ordering::Relaxed);
        stats.output_errors.fetch_add(1, Ordering::Relaxed);
        if self
            .last_warning
            .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
        {
            self.last_warning = Some(Instant::now());
            let dest = match &self.target {
                Target::Stdout(_) => "stdout".to_string(),
                Target::File(_, p) => p.display().to_string(),
            };
            tracing::error!(
                error = %e,
                output = %dest,
                dropped = stats.output_drops.load(Ordering::Relaxed),
                "cannot write events; counting them as lost and continuing"
            );
        }
        // A buffered writer that failed may hold a partial line: drop it.
        if let Target::File(w, p) = &mut self.target {
            if let Ok(f) = OpenOptions::new().append(true).open(&*p) {
                let old = std::mem::replace(w, BufWriter::with_capacity(256 * 1024, f));
                // Discard, not flush, what the failed writer still buffers.
                let _ = old.into_parts();
            }
        }
    }

    pub fn flush(&mut self, stats: &Stats) {
        let r = match &mut self.target {
            Target::Stdout(s) => s.flush(),
            Target::File(w, _) => w.flush(),
        };
        if let Err(e) = r {
            self.fail(e, stats);
        }
    }
}
