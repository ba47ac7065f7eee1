//! The receiving half of links: frames other nodes address to this node,
//! put back in order per stream and handed to this node's receivers.
//!
//! One task reads the node's data subject and admits each stream's frames
//! strictly in sequence (a gap or a repeat asks the sender to fill in);
//! one task per stream delivers them, waiting on the local receivers'
//! queues like a local sender, and credits the sender as it goes. A slow
//! receiver therefore holds back only its own stream's credit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::forward::WINDOW;
use super::names::credit_subject;
use super::wire::{Credit, Frame, Kind};
use super::{Core, loose};
use crate::broker::link::flush_slots;
use crate::broker::memory::Topic;

/// Repeated resend requests for one stream are at least this far apart.
const NAK_EVERY: Duration = Duration::from_millis(20);
/// A stream nothing arrived on for this long is forgotten (its sender
/// ends streams with an `End` frame, but that one can be lost too).
const STREAM_IDLE: Duration = Duration::from_secs(120);

#[derive(Debug)]
struct Inbound {
    /// The next sequence number this stream may admit.
    expected: u64,
    tx: mpsc::Sender<Frame>,
    /// The last sequence handed to this node's receivers (by `deliver`).
    processed: Arc<AtomicU64>,
    last_nak: Option<Instant>,
    last_seen: Instant,
}

/// Streams arriving at this node, by (sending node, stream).
#[derive(Debug, Default)]
pub(super) struct Streams {
    map: Mutex<HashMap<(String, u64), Inbound>>,
}

impl Streams {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u64), Inbound>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every stream from `node` (it is gone).
    pub fn drop_node(&self, node: &str) {
        self.lock().retain(|(from, _), _| from != node);
    }
}

/// Reads this node's data subject until the subscription ends.
pub(super) async fn run(core: Arc<Core>, mut sub: async_nats::Subscriber) {
    let mut sweep = tokio::time::interval(STREAM_IDLE / 4);
    loop {
        tokio::select! {
            msg = sub.next() => {
                let Some(msg) = msg else {
                    tracing::warn!("the data subscription ended; no more frames reach this node");
                    return;
                };
                match Frame::decode(msg.payload) {
                    Some(f) if f.kind == Kind::Loose => {
                        let core = Arc::clone(&core);
                        tokio::spawn(async move {
                            loose::place(&core, &f.topic, f.body, f.seq).await;
                        });
                    }
                    Some(frame) => admit(&core, frame).await,
                    None => {}
                }
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                core.streams.lock().retain(|_, s| now - s.last_seen < STREAM_IDLE);
            }
        }
    }
}

async fn admit(core: &Arc<Core>, frame: Frame) {
    let (from, stream) = (frame.from.clone(), frame.stream);
    if let Some((received, processed)) = decide(core, frame) {
        nak(core, &from, stream, received, processed).await;
    }
}

/// Admits a frame if it is the next of its stream; otherwise says how far
/// the stream got, received and processed (`Some`: ask the sender for what
/// follows). A repeat means the sender did not hear our credits (lost in
/// a failover), so the answer carries the processed count too: without
/// it a sender whose window is full would wait for ever.
fn decide(core: &Arc<Core>, frame: Frame) -> Option<(u64, u64)> {
    let key = (frame.from.clone(), frame.stream);
    let mut map = core.streams.lock();
    if !map.contains_key(&key) {
        if frame.seq != 1 {
            // Its start was lost: ask for everything again.
            return Some((0, 0));
        }
        // Room for a whole window and its repeats: the sender never has
        // more than WINDOW frames out.
        let (tx, rx) = mpsc::channel(WINDOW as usize * 2);
        let processed = Arc::new(AtomicU64::new(0));
        core.spawn(deliver(
            Arc::clone(core),
            frame.from.clone(),
            frame.stream,
            frame.topic.clone(),
            rx,
            Arc::clone(&processed),
        ));
        map.insert(
            key.clone(),
            Inbound {
                expected: 1,
                tx,
                processed,
                last_nak: None,
                last_seen: Instant::now(),
            },
        );
    }
    let s = map.get_mut(&key)?;
    s.last_seen = Instant::now();
    if frame.seq == s.expected {
        match s.tx.try_send(frame) {
            Ok(()) => s.expected += 1,
            // Dropped, not admitted: the sender sends it again.
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(
                    stream = key.1,
                    seq = s.expected,
                    "stream queue full; frame dropped"
                );
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                map.remove(&key);
            }
        }
        return None;
    }
    // A repeat (the sender did not hear from us) or a gap (a frame was
    // lost): either way, say how far this stream got.
    let now = Instant::now();
    if s.last_nak.is_some_and(|t| now - t < NAK_EVERY) {
        return None;
    }
    s.last_nak = Some(now);
    tracing::debug!(
        stream = key.1,
        seq = frame.seq,
        expected = s.expected,
        "out of order; asking again"
    );
    Some((s.expected - 1, s.processed.load(Ordering::Acquire)))
}

async fn nak(core: &Core, to: &str, stream: u64, received: u64, processed: u64) {
    let credit = Credit {
        stream,
        processed,
        received,
        resend: true,
    };
    let _ = core
        .client
        .publish(credit_subject(to), credit.encode())
        .await;
}

/// Delivers one stream's frames, in order, to this node's receivers.
async fn deliver(
    core: Arc<Core>,
    from: String,
    stream: u64,
    topic: String,
    mut rx: mpsc::Receiver<Frame>,
    processed: Arc<AtomicU64>,
) {
    let subject = credit_subject(&from);
    let mut port: Option<Arc<Topic>> = None;
    let mut credited = 0;
    while let Some(frame) = rx.recv().await {
        if port.as_ref().is_none_or(|t| t.lock().dead) {
            port = core.memory.local_port(&topic);
        }
        let kind = frame.kind;
        match (kind, &port) {
            (Kind::Data, Some(t)) => {
                for slot in t.local_receivers().iter() {
                    slot.deliver(&frame.body).await;
                }
            }
            // Here, else wherever a receiver is left (`loose`).
            (Kind::Line, _) => loose::place(&core, &topic, frame.body, 0).await,
            (Kind::Flush, Some(t)) => flush_slots(&t.local_receivers(), None).await,
            (Kind::End | Kind::Loose, _) => {}
            // Nobody here any more: the sender learns it from our view.
            (_, None) => {}
        }
        let seq = frame.seq;
        processed.store(seq, Ordering::Release);
        if kind == Kind::End || kind == Kind::Flush || rx.is_empty() || seq - credited >= WINDOW / 4
        {
            let credit = Credit {
                stream,
                processed: seq,
                received: 0,
                resend: false,
            };
            let _ = core.client.publish(subject.clone(), credit.encode()).await;
            credited = seq;
        }
        if kind == Kind::End {
            break;
        }
    }
    core.streams.lock().remove(&(from, stream));
}
