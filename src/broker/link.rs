//! What the delivery rules need from a live topic, whatever backend keeps it.
//!
//! The rules themselves (waits, framing, endings, pacing, flushes,
//! round-robin) live above this line in `publisher`, `subscription` and
//! `reader`; a backend only keeps membership and hands out receiver slots.
//! A slot is a bounded queue to one receiver (or, for a remote backend, to a
//! forwarder with its own credit), so "pace on the slowest receiver" means
//! the same thing on every backend: await each slot's room.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// What travels through a receiver's queue.
#[derive(Debug)]
pub(crate) enum Item {
    Data(Bytes),
    /// A round-robin line: if its receiver leaves before writing it, the
    /// line goes to another receiver of the same topic instead of being lost.
    Line(Bytes, Weak<dyn TopicPort>),
    /// Acknowledged once every item before it was handed to the client, so a
    /// pub can say `msg sent!` only when that is true.
    Flush(oneshot::Sender<()>),
}

/// A topic's numbers, for tests, metrics and `ls`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Senders (pubs and pipes) now on the topic.
    pub senders: usize,
    /// Senders that ever joined: lets a sub notice a sender that came and
    /// went between two looks (SPEC §5.3).
    pub sender_joins: u64,
    /// Receivers (subs, pipes, pattern subs) now on the topic.
    pub receivers: usize,
    /// Senders that ever left before the end of their input (killed,
    /// vanished, timed out): a sub that saw one go ends with an error
    /// instead of passing truncated data off as whole (SPEC §5.3).
    pub sender_vanished: u64,
}

/// What receivers watch. Receivers joining do not change it, so 10,000 subs
/// joining one topic wake nobody but the pubs waiting for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SenderCounts {
    pub senders: usize,
    pub joins: u64,
    pub vanished: u64,
}

/// The role a client plays on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Pub,
    Sub { keep_alive: bool, lossy: bool },
    Pipe { replay: bool },
}

impl Role {
    pub fn sends(self) -> bool {
        matches!(self, Role::Pub | Role::Pipe { .. })
    }
    pub fn receives(self) -> bool {
        matches!(self, Role::Sub { .. } | Role::Pipe { .. })
    }
}

/// A receiver as senders see it.
#[derive(Debug)]
pub(crate) struct Slot {
    pub member: u64,
    pub tx: mpsc::Sender<Item>,
    /// Lossy receivers never make a sender wait; what does not fit is counted.
    pub lossy: bool,
    pub skipped: Arc<AtomicU64>,
    /// The backend's count of every byte any lossy receiver skipped.
    pub skipped_total: Arc<AtomicU64>,
    /// How many receivers the slot stands for in round-robin: 1, or for a
    /// link to another node that node's receivers, so the rotation is per
    /// worker wherever the workers are.
    pub share: Arc<AtomicUsize>,
}

impl Slot {
    /// A new receiver queue of `chunks` items and its slot.
    pub fn new(
        member: u64,
        lossy: bool,
        chunks: usize,
        skipped_total: &Arc<AtomicU64>,
    ) -> (Slot, mpsc::Receiver<Item>) {
        let (tx, rx) = mpsc::channel(chunks);
        let slot = Slot {
            member,
            tx,
            lossy,
            skipped: Arc::default(),
            skipped_total: Arc::clone(skipped_total),
            share: Arc::new(AtomicUsize::new(1)),
        };
        (slot, rx)
    }

    pub fn clone_handle(&self) -> Slot {
        Slot {
            member: self.member,
            tx: self.tx.clone(),
            lossy: self.lossy,
            skipped: Arc::clone(&self.skipped),
            skipped_total: Arc::clone(&self.skipped_total),
            share: Arc::clone(&self.share),
        }
    }

    /// Delivers one chunk, waiting for room unless the receiver is lossy.
    /// Returns false when the receiver has already left.
    pub async fn deliver(&self, chunk: &Bytes) -> bool {
        self.deliver_item(Item::Data(chunk.clone()), chunk.len())
            .await
    }

    async fn deliver_item(&self, item: Item, len: usize) -> bool {
        if self.lossy {
            match self.tx.try_send(item) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Skipping is this receiver's choice; it still counts as reached.
                    self.skipped.fetch_add(len as u64, Ordering::Relaxed);
                    self.skipped_total.fetch_add(len as u64, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        } else {
            self.tx.send(item).await.is_ok()
        }
    }
}

/// A live topic as the delivery rules see it. Every method is short and
/// synchronous: the waiting happens on the watches and slots it hands out.
pub(crate) trait TopicPort: Send + Sync + std::fmt::Debug + 'static {
    /// Senders on the topic, for receivers' ending rule and line framing.
    fn senders(&self) -> watch::Receiver<SenderCounts>;
    /// Receivers on the topic, for blocking pubs.
    fn receiver_count(&self) -> watch::Receiver<usize>;
    /// The receivers connected now.
    fn receivers(&self) -> Arc<[Slot]>;
    /// Where round-robin dispatch continues, shared by the topic's senders
    /// so that two round-robin senders still spread work evenly.
    fn cursor(&self) -> &AtomicUsize;
    /// A pub starts (`+1`) or stops (`-1`) waiting for a receiver (`ls`).
    fn waiting(&self, delta: isize);
    /// Takes a member off the topic; `vanished`: a sender left before the
    /// end of its input.
    fn leave(&self, member: u64, vanished: bool);
    /// A round-robin line given back that no receiver here took: a
    /// backend with other nodes places it there; otherwise it is lost.
    fn orphan(&self, line: Bytes) {
        tracing::warn!(
            bytes = line.len(),
            "round-robin line lost: no receiver left"
        );
    }
}

/// Hands a line to exactly one receiver, rotating over those connected
/// now and skipping `exclude`; tries the next one if a receiver just
/// left. False when nobody took it.
pub(crate) async fn dispatch_line(
    port: &Arc<dyn TopicPort>,
    line: &Bytes,
    exclude: &[u64],
) -> bool {
    dispatch_line_to(port, &port.receivers(), line, exclude).await
}

/// The same over a chosen set of the topic's slots (a node delivering
/// what another node sent goes only to its own receivers).
pub(crate) async fn dispatch_line_to(
    port: &Arc<dyn TopicPort>,
    slots: &[Slot],
    line: &Bytes,
    exclude: &[u64],
) -> bool {
    let mut candidates: Vec<&Slot> = Vec::with_capacity(slots.len());
    for s in slots.iter().filter(|s| !exclude.contains(&s.member)) {
        for _ in 0..s.share.load(Ordering::Relaxed).max(1) {
            candidates.push(s);
        }
    }
    let n = candidates.len();
    if n == 0 {
        return false;
    }
    let start = port.cursor().fetch_add(1, Ordering::Relaxed) % n;
    for k in 0..n {
        let item = Item::Line(line.clone(), Arc::downgrade(port));
        if candidates[(start + k) % n]
            .deliver_item(item, line.len())
            .await
        {
            return true;
        }
    }
    false
}

/// Waits until every lossless slot but `skip`'s has handed on what it was
/// given (a receiver that left settles it too).
pub(crate) async fn flush_slots(slots: &[Slot], skip: Option<u64>) {
    let mut acks = Vec::new();
    for slot in slots {
        if slot.lossy || Some(slot.member) == skip {
            continue;
        }
        let (tx, rx) = oneshot::channel();
        if slot.tx.send(Item::Flush(tx)).await.is_ok() {
            acks.push(rx);
        }
    }
    for ack in acks {
        let _ = ack.await;
    }
}

/// A client's place on a topic: dropping the last handle to it (publisher,
/// subscription) takes the client off.
#[derive(Debug)]
pub(crate) struct Registration {
    pub port: Arc<dyn TopicPort>,
    pub id: u64,
    /// A sender's input reached its end and was delivered; a sender that
    /// leaves without this set vanished (SPEC §5.3).
    pub finished: AtomicBool,
    /// Cancelled by the backend when an access-list change took this client
    /// off the topic (SPEC §6): its handles end with `access denied`.
    pub revoked: CancellationToken,
}

impl Registration {
    pub fn new(port: Arc<dyn TopicPort>, id: u64, revoked: CancellationToken) -> Arc<Self> {
        Arc::new(Registration {
            port,
            id,
            finished: AtomicBool::new(false),
            revoked,
        })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let vanished = !self.finished.load(Ordering::Acquire);
        self.port.leave(self.id, vanished);
    }
}
