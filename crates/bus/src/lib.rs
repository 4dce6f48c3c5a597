//! The backplane between nodes and central, behind one [`Backplane`] trait: in one
//! process ([`InProcessBus`], tokio channels, for `rampart up`) or across hosts
//! (`rampart-bus-nats`, NATS JetStream, for `rampart node` and `rampart central`).
//!
//! What a node sends is a [`NodeBatch`] (alerts, container lifecycle, audit records: up
//! to hundreds of records a message) with a message id unique to that batch. Delivery
//! is at-least-once: a publisher resends until the backplane acknowledges, the
//! backplane drops a resend it already holds (JetStream's `Nats-Msg-Id`), and a
//! consumer acknowledges only after the store has committed, so a crash redelivers and
//! the store's idempotent ingest keeps one copy.
//!
//! On the node, batches go through a bounded disk [`Spool`] drained in order by a
//! [`Forwarder`]: when the backplane is unreachable they wait on disk, and when the
//! spool is full new batches are dropped and counted, never silently.
//!
//! The other direction, central asking one node (recorder queries, response commands),
//! is request/reply behind [`rpc::RequestPlane`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

mod batch;
pub mod flows;
pub mod rpc;
mod spool;

pub use batch::{BatchError, BusRecord, NodeBatch};
pub use spool::{Forwarder, Spool, SpoolConfig, SpoolError, SpoolStats, SpooledMessage};

/// Why a backplane operation failed. Publishers retry on every kind.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("backplane unreachable: {0}")]
    Unavailable(String),
    #[error("publish not acknowledged: {0}")]
    Publish(String),
    #[error("consumer: {0}")]
    Consume(String),
    #[error("acknowledge: {0}")]
    Ack(String),
    #[error("the in-process bus has one consumer, and it is taken")]
    ConsumerTaken,
    #[error("the backplane is closed")]
    Closed,
}

/// One message a node publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// Unique per batch and stable across resends: the backplane's dedup key.
    pub id: String,
    /// The publishing node (NATS subjects are per node).
    pub node: String,
    pub payload: Bytes,
}

/// A message handed to a consumer; [`Delivery::ack`] it once it is stored.
pub struct Delivery {
    pub id: String,
    pub node: String,
    pub payload: Bytes,
    acker: Box<dyn Acker>,
}

impl Delivery {
    pub fn new(id: String, node: String, payload: Bytes, acker: Box<dyn Acker>) -> Self {
        Self {
            id,
            node,
            payload,
            acker,
        }
    }

    /// Tells the backplane the message is safely stored; unacked messages come again.
    pub async fn ack(self) -> Result<(), BusError> {
        self.acker.ack().await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("node", &self.node)
            .field("bytes", &self.payload.len())
            .finish()
    }
}

/// How a delivery is acknowledged (each backplane has its own).
#[async_trait]
pub trait Acker: Send {
    async fn ack(self: Box<Self>) -> Result<(), BusError>;
}

/// Nothing to acknowledge (the in-process bus).
pub struct NoAck;

#[async_trait]
impl Acker for NoAck {
    async fn ack(self: Box<Self>) -> Result<(), BusError> {
        Ok(())
    }
}

/// Messages from the backplane, in the order they were published per node.
#[async_trait]
pub trait Consumer: Send {
    /// The next message; `Ok(None)` once the backplane is closed for good.
    async fn next(&mut self) -> Result<Option<Delivery>, BusError>;

    /// Messages the backplane discarded (by its bounds) before this consumer read
    /// them, since it was opened. The in-process bus loses none: its publishers wait.
    fn lost_messages(&self) -> u64 {
        0
    }
}

/// Where nodes publish and central consumes.
#[async_trait]
pub trait Backplane: Send + Sync + 'static {
    /// `in-process` or `nats`.
    fn kind(&self) -> &'static str;

    /// Publishes one message and returns once the backplane holds it (for JetStream:
    /// stored and acknowledged). An error means it may or may not be held: publish it
    /// again with the same id.
    async fn publish(&self, msg: OutMessage) -> Result<(), BusError>;

    /// Opens, or resumes where it was acknowledged, the durable consumer `name`.
    async fn consumer(&self, name: &str) -> Result<Box<dyn Consumer>, BusError>;
}

/// The bus of a single process (`rampart up`): a bounded tokio channel. A publisher
/// waits when central lags (the node's spool absorbs that), and there is one consumer;
/// dropping it hands the channel back, so a new consumer goes on where it stopped.
pub struct InProcessBus {
    tx: tokio::sync::mpsc::Sender<OutMessage>,
    rx: Arc<Mutex<Option<tokio::sync::mpsc::Receiver<OutMessage>>>>,
}

impl InProcessBus {
    /// A bus holding up to `capacity` messages in flight.
    pub fn new(capacity: usize) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        Self {
            tx,
            rx: Arc::new(Mutex::new(Some(rx))),
        }
    }
}

struct InProcessConsumer {
    rx: Option<tokio::sync::mpsc::Receiver<OutMessage>>,
    slot: Arc<Mutex<Option<tokio::sync::mpsc::Receiver<OutMessage>>>>,
}

impl Drop for InProcessConsumer {
    fn drop(&mut self) {
        if let Some(rx) = self.rx.take() {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
        }
    }
}

#[async_trait]
impl Consumer for InProcessConsumer {
    async fn next(&mut self) -> Result<Option<Delivery>, BusError> {
        let Some(rx) = self.rx.as_mut() else {
            return Ok(None);
        };
        Ok(rx
            .recv()
            .await
            .map(|m| Delivery::new(m.id, m.node, m.payload, Box::new(NoAck))))
    }
}

#[async_trait]
impl Backplane for InProcessBus {
    fn kind(&self) -> &'static str {
        "in-process"
    }

    async fn publish(&self, msg: OutMessage) -> Result<(), BusError> {
        self.tx.send(msg).await.map_err(|_| BusError::Closed)
    }

    async fn consumer(&self, _name: &str) -> Result<Box<dyn Consumer>, BusError> {
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .ok_or(BusError::ConsumerTaken)?;
        Ok(Box::new(InProcessConsumer {
            rx: Some(rx),
            slot: self.rx.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(i: u32) -> OutMessage {
        OutMessage {
            id: format!("m{i}"),
            node: "n".into(),
            payload: Bytes::from(i.to_string()),
        }
    }

    #[tokio::test]
    async fn in_process_delivers_in_order_and_a_new_consumer_resumes() {
        let bus = InProcessBus::new(16);
        for i in 0..6 {
            bus.publish(msg(i)).await.unwrap();
        }
        let mut c = bus.consumer("central").await.unwrap();
        assert!(matches!(
            bus.consumer("central").await,
            Err(BusError::ConsumerTaken)
        ));
        for i in 0..3 {
            let d = c.next().await.unwrap().unwrap();
            assert_eq!(d.id, format!("m{i}"));
            d.ack().await.unwrap();
        }
        drop(c);
        let mut c = bus.consumer("central").await.unwrap();
        let d = c.next().await.unwrap().unwrap();
        assert_eq!(d.id, "m3");
    }
}
