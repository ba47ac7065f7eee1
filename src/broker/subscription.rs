//! The receiving side of a topic, and the ending rule of SPEC §5.3.
//!
//! A `sub` without `-k` ends once the topic has had a sender since it
//! joined and the senders are all gone — but only after everything they
//! sent was written. Senders enqueue before they leave, so once the counts
//! say "no senders", draining what is already queued is exactly "everything
//! they sent". `sender_joins` catches a sender that came and went between two
//! looks at the counts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::topic::{Counts, Item, Topic};

pub struct Subscription {
    /// Keeps this receiver on its topic (or pattern) until dropped.
    _guard: Arc<dyn Send + Sync>,
    /// Our member id, so re-dispatched lines skip us.
    member: u64,
    rx: mpsc::Receiver<Item>,
    counts: watch::Receiver<Counts>,
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
    /// Bytes handed out so far.
    pub received: u64,
}

impl Subscription {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        guard: Arc<dyn Send + Sync>,
        member: u64,
        rx: mpsc::Receiver<Item>,
        counts: watch::Receiver<Counts>,
        at_join: Counts,
        ends_with_senders: bool,
        skipped: Arc<AtomicU64>,
    ) -> Self {
        Subscription {
            _guard: guard,
            member,
            rx,
            counts,
            joined_at: at_join.sender_joins,
            vanished_at_join: at_join.sender_vanished,
            had_sender: at_join.senders > 0,
            ends_with_senders,
            draining: false,
            skipped,
            received: 0,
        }
    }

    /// A sender left before the end of its data while this receiver was
    /// on the topic: what it received is not the whole of it (SPEC §5.3).
    pub fn sender_vanished(&self) -> bool {
        self.counts.borrow().sender_vanished > self.vanished_at_join
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
        loop {
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
                item = self.rx.recv() => {
                    // `None` cannot happen while the topic holds our slot,
                    // but if it does the stream is simply over.
                    let item = item?;
                    if let Some(data) = self.take(item) {
                        return Some(data);
                    }
                }
                changed = self.counts.changed(), if self.ends_with_senders => {
                    if changed.is_err() {
                        self.draining = true;
                        continue;
                    }
                    let counts = *self.counts.borrow_and_update();
                    self.had_sender |= counts.senders > 0 || counts.sender_joins > self.joined_at;
                    if self.had_sender && counts.senders == 0 {
                        self.draining = true;
                    }
                }
            }
        }
    }

    fn take(&mut self, item: Item) -> Option<Bytes> {
        match item {
            Item::Data(data) | Item::Line(data, _) => {
                self.received += data.len() as u64;
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
    /// Round-robin lines still queued here were never written: give them to
    /// another receiver of their topic, so a worker leaving loses no job.
    fn drop(&mut self) {
        let mut orphans = Vec::new();
        while let Ok(item) = self.rx.try_recv() {
            if let Item::Line(line, topic) = item {
                orphans.push((line, topic));
            }
        }
        if orphans.is_empty() {
            return;
        }
        let me = self.member;
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for (line, topic) in orphans {
                    if let Some(topic) = topic.upgrade() {
                        Topic::dispatch_line(&topic, &line, &[me]).await;
                    }
                }
            });
        }
    }
}
