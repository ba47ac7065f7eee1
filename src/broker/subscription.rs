//! The receiving side of a topic, and the ending rule of SPEC §5.3.
//!
//! A `sub` without `-k` ends once the topic has had a sender since it
//! joined and the senders are all gone — but only after everything they
//! sent was written. Senders enqueue before they leave, so once the counts
//! say "no senders", draining what is already queued is exactly "everything
//! they sent". `joins` catches a sender that came and went between two looks
//! at the counts.
//!
//! Calling `next` again means the previous chunk was written. So a
//! round-robin line handed out stays "in hand" until then: a worker that
//! dies before writing it (its client gone) gives it back, with every line
//! still queued for it, to another receiver of the topic (SPEC §7).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::link::{Item, SenderCounts, TopicPort, dispatch_line};

pub struct Subscription {
    /// Keeps this receiver on its topic (or pattern) until dropped.
    _guard: Arc<dyn Send + Sync>,
    /// Our member id, so re-dispatched lines skip us.
    member: u64,
    rx: mpsc::Receiver<Item>,
    senders: watch::Receiver<SenderCounts>,
    /// Sender joins seen at join time; a later value means a sender came.
    joined_at: u64,
    /// Vanished senders counted at join time; a later value means one of
    /// this receiver's senders left before the end of its data.
    vanished_at_join: u64,
    /// A sender was present at some point since this receiver joined.
    had_sender: bool,
    /// False for `sub -k` and pipes, which never end because senders left.
    ends_with_senders: bool,
    /// Senders are gone: hand out what is queued, then end.
    draining: bool,
    skipped: Arc<AtomicU64>,
    /// The round-robin line handed out by the last `next`, not yet known
    /// to be written.
    in_hand: Option<(Bytes, Weak<dyn TopicPort>)>,
    /// Where re-dispatching orphaned lines runs, so shutdown can wait for it.
    tasks: TaskTracker,
    /// Cancelled when a list change took this receiver off its topic.
    revoked: CancellationToken,
    /// Bytes handed out so far.
    pub received: u64,
}

/// How a subscription is set up; see `Subscription::new`.
pub(crate) struct SubscriptionParts {
    pub guard: Arc<dyn Send + Sync>,
    pub member: u64,
    pub rx: mpsc::Receiver<Item>,
    pub senders: watch::Receiver<SenderCounts>,
    pub at_join: SenderCounts,
    pub ends_with_senders: bool,
    pub skipped: Arc<AtomicU64>,
    pub tasks: TaskTracker,
    pub revoked: CancellationToken,
}

impl Subscription {
    pub(crate) fn new(p: SubscriptionParts) -> Self {
        Subscription {
            _guard: p.guard,
            member: p.member,
            rx: p.rx,
            senders: p.senders,
            joined_at: p.at_join.joins,
            vanished_at_join: p.at_join.vanished,
            had_sender: p.at_join.senders > 0,
            ends_with_senders: p.ends_with_senders,
            draining: false,
            skipped: p.skipped,
            in_hand: None,
            tasks: p.tasks,
            revoked: p.revoked,
            received: 0,
        }
    }

    /// A sender left before the end of its data while this receiver was
    /// on the topic: what it received is not the whole of it (SPEC §5.3).
    pub fn sender_vanished(&self) -> bool {
        self.senders.borrow().vanished > self.vanished_at_join
    }

    /// An access-list change took this receiver off its topic (SPEC §6):
    /// `next` returned `None`, and the front end says `access denied`.
    pub fn revoked(&self) -> bool {
        self.revoked.is_cancelled()
    }

    /// Bytes a lossy receiver had to skip (SPEC §5.4).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// The next chunk for this receiver, or `None` when it is over.
    ///
    /// Calling `next` again means the previous chunk was written, so this is
    /// where a sender's flush marker gets acknowledged. Cancel-safe.
    pub async fn next(&mut self) -> Option<Bytes> {
        self.in_hand = None;
        loop {
            // Once revoked, not one more byte: what is queued is dropped.
            if self.revoked.is_cancelled() {
                return None;
            }
            if self.draining {
                match self.rx.try_recv() {
                    Ok(item) => match self.take(item) {
                        Some(data) => return Some(data),
                        None => continue,
                    },
                    Err(_) => return None,
                }
            }
            tokio::select! {
                biased;
                () = self.revoked.cancelled() => return None,
                item = self.rx.recv() => {
                    // `None` cannot happen while the topic holds our slot,
                    // but if it does the stream is simply over.
                    let item = item?;
                    if let Some(data) = self.take(item) {
                        return Some(data);
                    }
                }
                changed = self.senders.changed(), if self.ends_with_senders => {
                    if changed.is_err() {
                        self.draining = true;
                        continue;
                    }
                    let counts = *self.senders.borrow_and_update();
                    self.had_sender |= counts.senders > 0 || counts.joins > self.joined_at;
                    if self.had_sender && counts.senders == 0 {
                        self.draining = true;
                    }
                }
            }
        }
    }

    fn take(&mut self, item: Item) -> Option<Bytes> {
        match item {
            Item::Data(data) => {
                self.received += data.len() as u64;
                Some(data)
            }
            Item::Line(data, port) => {
                self.received += data.len() as u64;
                self.in_hand = Some((data.clone(), port));
                Some(data)
            }
            Item::Flush(ack) => {
                let _ = ack.send(());
                None
            }
        }
    }
}

impl Drop for Subscription {
    /// Round-robin lines never written — the one in hand and those still
    /// queued — go to another receiver of their topic, so a worker leaving
    /// loses no job.
    fn drop(&mut self) {
        let mut orphans: Vec<_> = self.in_hand.take().into_iter().collect();
        self.rx.close();
        while let Ok(item) = self.rx.try_recv() {
            match item {
                Item::Line(line, port) => orphans.push((line, port)),
                Item::Flush(ack) => {
                    let _ = ack.send(());
                }
                Item::Data(_) => {}
            }
        }
        if orphans.is_empty() {
            return;
        }
        let me = self.member;
        // Held now, while our registration still keeps the topic: one that
        // ends with us can still hand its lines to another node.
        let orphans: Vec<(Bytes, Arc<dyn TopicPort>)> = orphans
            .into_iter()
            .filter_map(|(line, port)| Some((line, port.upgrade()?)))
            .collect();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            self.tasks.spawn_on(
                async move {
                    for (line, port) in orphans {
                        if !dispatch_line(&port, &line, &[me]).await {
                            port.orphan(line);
                        }
                    }
                },
                &rt,
            );
        }
    }
}
