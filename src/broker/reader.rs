//! What a `sub` reads, whatever its front end: the topic's queued messages
//! first (SPEC §8), then live data, and any message queued meanwhile.
//!
//! These are delivery rules, so they live here and not in `ssh/` or
//! `http/`: `ssh host sub files` and `curl …/topic/files` behave alike.
//! A reader looks at the queue before it joins the topic as a receiver: a
//! `sub` without `-k` takes one queued message and leaves, and were it
//! already a receiver, a `pub -q` arriving meanwhile would hand it live data
//! it never reads instead of queueing.
//!
//! A queued message handed out whole is not removed here: only the front
//! end knows when its client has it (an SSH client acknowledges what it
//! wrote out; a handed-over chunk may still be a window away from it). So
//! the reader hands back a `Delivery`, which the front end confirms once
//! the client has the message, and which, dropped instead, puts the
//! message back at the head of its queue — as a reader dropped mid-message
//! does.

use bytes::Bytes;
use tokio::sync::watch;

use super::borrow::Borrowed;
use super::claim::Claim;
use super::queue::QueueError;
use super::{Broker, BrokerError, Deferred, Subscription};
use crate::identity::Identity;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Join(#[from] BrokerError),
    #[error("{}", .0.reading())]
    Queue(#[from] QueueError),
    /// The topic's senders are gone and one of them left before the end
    /// of its data (SPEC §5.3).
    #[error("sender disconnected before the end of its data")]
    SenderVanished,
}

/// What a reader hands out.
#[derive(Debug)]
pub enum Piece {
    /// Bytes to write to the client.
    Data(Bytes),
    /// The queued message whose bytes came just before was handed out
    /// whole. It is still in the store, claimed by this `Delivery`.
    Written(Delivery),
}

/// A queued message handed out whole but still in the store. `confirm`
/// removes it for good; dropping it puts it back at the head of its queue,
/// where the next claim takes it again — this reader's too, so a front end
/// that drops one drops its reader with it.
#[derive(Debug)]
pub struct Delivery {
    claim: Held,
    broker: Broker,
    topic: String,
}

/// A queued message being read: from this node's queue, or borrowed from
/// another node's (`borrow`). Either way dropped unfinished, it goes back
/// to the head of its queue.
#[derive(Debug)]
pub enum Held {
    Local(Claim),
    Remote(Borrowed),
}

impl Held {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueueError> {
        match self {
            Held::Local(c) => c.next_chunk().await,
            Held::Remote(b) => b.next_chunk().await,
        }
    }

    async fn finish(self) -> Result<(), QueueError> {
        match self {
            Held::Local(c) => c.finish().await,
            Held::Remote(b) => b.finish().await,
        }
    }
}

impl Delivery {
    /// The client has the message: remove it for good. The removal runs as
    /// its own task (`Claim::finish`), started before the first await, so
    /// a caller cancelled meanwhile cannot leave the store and the index
    /// disagreeing. This returns as soon as the store has it: an SSH
    /// front end sends the exit status next, and every step in between
    /// widens the moment a `kill -9` would cost a message (`Out::finish`);
    /// what only tidies up comes after, in `Tidy`.
    pub async fn confirm(self) -> Tidy {
        let Delivery {
            claim,
            broker,
            topic,
        } = self;
        if let Err(e) = claim.finish().await {
            // Delivered but not removed: it may be served again.
            tracing::error!(error = %e, "cannot remove a delivered queued message");
        }
        Tidy { broker, topic }
    }
}

/// What follows a delivery: the last message of a topic nobody is on takes
/// its held public list with it. Awaited, so once a sub is over its topic
/// is free again (SPEC §6).
#[must_use = "the held list goes only when this runs"]
pub struct Tidy {
    broker: Broker,
    topic: String,
}

impl Tidy {
    pub async fn run(self) {
        self.broker.settle_held(Some(&self.topic)).await;
    }
}

/// Where a reader is.
enum Stage {
    /// Look for a queued message; none left: join and go live.
    Drain,
    /// Writing one claimed message, chunk by chunk.
    Message(Held),
    /// Live data from the topic, watching for newly queued messages.
    Live,
    Done,
}

pub struct Reader {
    /// For the queue and the deferred join (`None`: a live-only reader).
    broker: Option<Broker>,
    /// Full topic name, for the queue (`None` for a pattern sub).
    topic: Option<String>,
    /// Who reads, for a node that lends a queued message (it checks the
    /// lists it holds itself).
    who: Option<Identity>,
    keep_alive: bool,
    /// Bumped whenever a queued message becomes claimable.
    changes: watch::Receiver<u64>,
    stage: Stage,
    deferred: Option<Deferred>,
    sub: Option<Subscription>,
}

impl Reader {
    /// A sub by name: access was checked; queued messages come first.
    pub(super) fn queued(
        broker: Broker,
        deferred: Deferred,
        keep_alive: bool,
        changes: watch::Receiver<u64>,
    ) -> Reader {
        Reader {
            topic: Some(deferred.topic.full.clone()),
            who: Some(deferred.who.clone()),
            broker: Some(broker),
            keep_alive,
            changes,
            stage: Stage::Drain,
            deferred: Some(deferred),
            sub: None,
        }
    }

    /// A reader of live data only (pattern subs have no queue).
    pub(super) fn live(sub: Subscription) -> Reader {
        Reader {
            broker: None,
            topic: None,
            who: None,
            keep_alive: true,
            changes: watch::channel(0).1,
            stage: Stage::Live,
            deferred: None,
            sub: Some(sub),
        }
    }

    /// Bytes a lossy receiver skipped (SPEC §5.4).
    pub fn skipped(&self) -> u64 {
        self.sub.as_ref().map_or(0, Subscription::skipped)
    }

    /// The next chunk to write, or `None` when this sub is over. A queued
    /// message is removed when this is called after its last chunk: for a
    /// writer whose write finishing means its client has the bytes.
    /// Cancel-safe: a cancelled call loses nothing.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            match self.next_piece().await? {
                Some(Piece::Data(chunk)) => return Ok(Some(chunk)),
                Some(Piece::Written(delivery)) => delivery.confirm().await.run().await,
                None => return Ok(None),
            }
        }
    }

    /// The next piece to write, or `None` when this sub is over: chunks,
    /// and after a queued message's last chunk its `Delivery`, which the
    /// front end confirms once its client has the message.
    /// Cancel-safe: a cancelled call loses nothing.
    pub async fn next_piece(&mut self) -> Result<Option<Piece>, ReadError> {
        loop {
            match &mut self.stage {
                Stage::Done => return Ok(None),
                Stage::Drain => self.drain().await?,
                Stage::Message(claim) => {
                    if let Some(chunk) = claim.next_chunk().await? {
                        // A list change mid-message stops it too (checked
                        // before each chunk is handed out, so a message
                        // written whole is never held back); the message
                        // goes back to the head of the queue with the claim.
                        if let (Some(b), Some(d)) = (&self.broker, &self.deferred) {
                            b.may_read(d)?;
                        }
                        if self.sub.as_ref().is_some_and(Subscription::revoked) {
                            return Err(BrokerError::AccessDenied.into());
                        }
                        return Ok(Some(Piece::Data(chunk)));
                    }
                    // Without -k a sub takes one message and ends (SPEC §8).
                    let after = if self.keep_alive {
                        Stage::Drain
                    } else {
                        Stage::Done
                    };
                    let Stage::Message(claim) = std::mem::replace(&mut self.stage, after) else {
                        continue;
                    };
                    // A claim comes only from a reader with a queue.
                    let (Some(broker), Some(topic)) = (&self.broker, &self.topic) else {
                        continue;
                    };
                    return Ok(Some(Piece::Written(Delivery {
                        claim,
                        broker: broker.clone(),
                        topic: topic.clone(),
                    })));
                }
                Stage::Live => {
                    let Some(sub) = self.sub.as_mut() else {
                        self.stage = Stage::Done;
                        continue;
                    };
                    let queue_open = self.topic.is_some();
                    tokio::select! {
                        next = sub.next() => match next {
                            Some(chunk) => return Ok(Some(Piece::Data(chunk))),
                            None => {
                                self.stage = Stage::Done;
                                if sub.revoked() {
                                    return Err(ReadError::Join(BrokerError::AccessDenied));
                                }
                                if sub.sender_vanished() {
                                    return Err(ReadError::SenderVanished);
                                }
                            }
                        },
                        changed = self.changes.changed(), if queue_open => match changed {
                            Ok(()) => self.stage = Stage::Drain,
                            // No store: nothing will ever be queued.
                            Err(_) => self.topic = None,
                        },
                    }
                }
            }
        }
    }

    /// Takes the next queued message — the oldest, on this node or another
    /// — or, none left, joins the topic live. Done once as soon as the sub
    /// opens, so a sub with nothing queued is a receiver from the start.
    /// Cancelled while borrowing, a message lent meanwhile comes back to
    /// its queue once its loan lapses.
    pub(super) async fn drain(&mut self) -> Result<(), BrokerError> {
        // A queued message goes only to a client the list allows now, not
        // when the sub opened (SPEC §6): look again before each claim.
        if let (Some(b), Some(d)) = (&self.broker, &self.deferred) {
            b.may_read(d)?;
        }
        if self.sub.as_ref().is_some_and(Subscription::revoked) {
            return Err(BrokerError::AccessDenied);
        }
        let claim = match (&self.broker, self.topic.as_deref(), &self.who) {
            (Some(b), Some(t), Some(who)) => b.claim_oldest(t, who).await?,
            _ => None,
        };
        match claim {
            Some(claim) => self.stage = Stage::Message(claim),
            None => {
                self.join_live()?;
                self.stage = Stage::Live;
            }
        }
        Ok(())
    }

    /// Joins the topic as a receiver, once the queue is drained.
    fn join_live(&mut self) -> Result<(), BrokerError> {
        let (Some(d), Some(broker)) = (self.deferred.take(), &self.broker) else {
            return Ok(());
        };
        self.sub = broker.join_deferred(&d)?;
        Ok(())
    }
}
