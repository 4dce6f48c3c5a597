//! Recorded events as a node's source: a JSON-lines file of events (as `rampart sensor`
//! or `rampart query --format json` print them) and container lifecycle changes, fed
//! through the same pipeline as the sensor's (`rampart node --replay FILE`). Lines that
//! are neither are refused with their line number.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use rampart_event::{ContainerLifecycle, Event};

use crate::pipeline::EventSource;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: not an event or a container lifecycle record: {message}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

/// A recorded file, read whole, handed out in order (lifecycle changes interleaved by
/// time, ahead of the events at the same time).
pub struct ReplaySource {
    events: VecDeque<Event>,
    lifecycle: VecDeque<ContainerLifecycle>,
}

impl ReplaySource {
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        let f = std::fs::File::open(path).map_err(|source| ReplayError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut events = VecDeque::new();
        let mut lifecycle = VecDeque::new();
        for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line.map_err(|source| ReplayError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value =
                serde_json::from_str(&line).map_err(|e| ReplayError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: e.to_string(),
                })?;
            let r = if v.get("container_id").is_some() && v.get("kind").is_none() {
                serde_json::from_value::<ContainerLifecycle>(v).map(|l| lifecycle.push_back(l))
            } else {
                serde_json::from_value::<Event>(v).map(|e| events.push_back(e))
            };
            r.map_err(|e| ReplayError::Line {
                path: path.to_path_buf(),
                line: i + 1,
                message: e.to_string(),
            })?;
        }
        Ok(Self { events, lifecycle })
    }

    pub fn len(&self) -> usize {
        self.events.len() + self.lifecycle.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl EventSource for ReplaySource {
    fn recv_timeout(&mut self, _timeout: Duration) -> Result<Event, RecvTimeoutError> {
        // The end of the file is the end of the source: the pipeline stops.
        self.events
            .pop_front()
            .ok_or(RecvTimeoutError::Disconnected)
    }

    fn try_recv(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn stop(&mut self) {
        self.events.clear();
    }

    fn try_recv_lifecycle(&mut self) -> Option<ContainerLifecycle> {
        // Lifecycle first, up to the next event's time.
        let next_ev = self.events.front().map_or(u64::MAX, |e| e.ts_ns);
        if self.lifecycle.front().is_some_and(|l| l.ts_ns <= next_ev) {
            return self.lifecycle.pop_front();
        }
        None
    }
}
