//! The consumer's end of the sensor: events arrive in batches (one per ring drain) and
//! are handed out one at a time. One channel message per batch, not per event: on one
//! CPU a consumer woken per event preempted the attribution thread and each other
//! stage in turn, a futex round trip per event per thread.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvError, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use rampart_event::Event;

/// Events from the sensor, in order (see the module doc).
pub struct EventReceiver {
    rx: Receiver<Vec<Event>>,
    pending: VecDeque<Event>,
}

impl EventReceiver {
    pub(crate) fn new(rx: Receiver<Vec<Event>>) -> Self {
        Self {
            rx,
            pending: VecDeque::new(),
        }
    }

    /// A receiver whose sender is gone: empty and disconnected.
    pub fn closed() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        drop(tx);
        Self::new(rx)
    }

    /// The next event, waiting for one; Err once the sensor has stopped and everything
    /// it sent has been received.
    pub fn recv(&mut self) -> Result<Event, RecvError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            self.pending = self.rx.recv()?.into();
        }
    }

    /// The next event, waiting at most `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.pending = self.rx.recv_timeout(left)?.into();
        }
    }

    /// An event already received or queued, without waiting.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Ok(ev);
            }
            self.pending = self.rx.try_recv()?.into();
        }
    }

    /// Every event already received or queued, without waiting (empty if none).
    pub fn try_recv_batch(&mut self) -> Vec<Event> {
        let mut out: Vec<Event> = self.pending.drain(..).collect();
        while let Ok(batch) = self.rx.try_recv() {
            if out.is_empty() {
                out = batch;
            } else {
                out.extend(batch);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_event::Payload;

    fn ev(seq: u64) -> Event {
        let mut d =
            crate::Decoder::new("h".into(), "b".into(), 0, crate::ContainerCache::default());
        let mut e = d.internal_event(
            1,
            Payload::Lost {
                source: rampart_event::LossSource::Queue,
                count: 1,
                cpu: None,
            },
        );
        e.seq = seq;
        e
    }

    #[test]
    fn hands_out_batches_one_event_at_a_time_in_order() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let mut r = EventReceiver::new(rx);
        tx.send(vec![ev(1), ev(2)]).unwrap();
        tx.send(vec![]).unwrap();
        tx.send(vec![ev(3)]).unwrap();
        assert_eq!(r.recv().unwrap().seq, 1);
        assert_eq!(r.try_recv().unwrap().seq, 2);
        assert_eq!(
            r.recv_timeout(Duration::from_millis(10)).unwrap().seq,
            3,
            "an empty batch is skipped"
        );
        assert!(matches!(r.try_recv(), Err(TryRecvError::Empty)));
        assert!(matches!(
            r.recv_timeout(Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        ));
        tx.send(vec![ev(4), ev(5)]).unwrap();
        tx.send(vec![ev(6)]).unwrap();
        assert_eq!(r.recv().unwrap().seq, 4);
        let rest: Vec<u64> = r.try_recv_batch().iter().map(|e| e.seq).collect();
        assert_eq!(rest, vec![5, 6]);
        drop(tx);
        assert!(r.recv().is_err());
        assert!(matches!(
            EventReceiver::closed().try_recv(),
            Err(TryRecvError::Disconnected)
        ));
    }
}
