//! What a `sub` reads, whatever its front end: the topic's queued messages
//! first (SPEC §8), then live data, and any message queued meanwhile.
//!
//! These are delivery rules, so they live here and not in `ssh/` or
//! `http/`: `ssh host sub files` and `curl …/topic/files` behave alike.
//! A reader looks at the queue before it joins the topic as a receiver: a
//! `sub` without `-k` takes one queued message and leaves, and were it
//! already a receiver, a `pub -q` arriving meanwhile would hand it live data
//! it never reads instead of queueing. Calling `next` again means the
//! previous chunk was written, which is when a finished message is removed
//! for good; a reader dropped mid-message puts the message back at the head.

use bytes::Bytes;
use tokio::sync::watch;

use super::claim::Claim;
use super::queue::QueueError;
use super::queued::JoinMode;
use super::{Broker, BrokerError, JoinRequest, Role, Subscription};
use crate::identity::Identity;
use crate::topic::{AccessList, TopicRef};

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

/// Where a reader is.
enum Stage {
    /// Look for a queued message; none left: join and go live.
    Drain,
    /// Writing one claimed message, chunk by chunk.
    Message(Claim),
    /// Live data from the topic, watching for newly queued messages.
    Live,
    Done,
}

/// A join deferred until the queue has been drained.
struct Deferred {
    topic: TopicRef,
    who: Identity,
    label: String,
    role: Role,
    access: Option<AccessList>,
}

pub struct Reader {
    broker: Broker,
    /// Full topic name, for the queue (`None` for a pattern sub).
    topic: Option<String>,
    keep_alive: bool,
    /// Bumped whenever a queued message becomes claimable.
    changes: watch::Receiver<u64>,
    stage: Stage,
    deferred: Option<Deferred>,
    sub: Option<Subscription>,
}

impl Broker {
    /// Starts a `sub` on a topic: checks access (setting `-a`) now, reads
    /// queued messages, then joins as a receiver for live data.
    pub fn reader(&self, req: JoinRequest<'_>, keep_alive: bool) -> Result<Reader, BrokerError> {
        // Watch before the first look at the queue, so a message linked in
        // between is never missed.
        let changes = self.queue_changes();
        self.join_with(req.clone(), JoinMode::Check)?;
        Ok(Reader {
            broker: self.clone(),
            topic: Some(req.topic.full.clone()),
            keep_alive,
            changes,
            stage: Stage::Drain,
            deferred: Some(Deferred {
                topic: req.topic.clone(),
                who: req.who.clone(),
                label: req.label.to_string(),
                role: req.role,
                access: req.access.cloned(),
            }),
            sub: None,
        })
    }
}

impl Reader {
    /// A reader of live data only (pattern subs have no queue).
    pub fn live(broker: &Broker, sub: Subscription) -> Reader {
        Reader {
            broker: broker.clone(),
            topic: None,
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

    /// The next chunk to write, or `None` when this sub is over.
    /// Cancel-safe: a cancelled call loses nothing.
    pub async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
        loop {
            match &mut self.stage {
                Stage::Done => return Ok(None),
                Stage::Drain => {
                    let claim = self.topic.as_deref().and_then(|t| self.broker.claim(t));
                    match claim {
                        Some(claim) => self.stage = Stage::Message(claim),
                        None => {
                            self.join_live()?;
                            self.stage = Stage::Live;
                        }
                    }
                }
                Stage::Message(claim) => {
                    if let Some(chunk) = claim.next_chunk().await? {
                        return Ok(Some(chunk));
                    }
                    let Stage::Message(claim) = std::mem::replace(&mut self.stage, Stage::Drain)
                    else {
                        continue;
                    };
                    if let Err(e) = claim.finish().await {
                        // Written but not removed: it may be served again.
                        tracing::error!(error = %e, "cannot remove a delivered queued message");
                    }
                    // Without -k a sub takes one message and ends (SPEC §8).
                    if !self.keep_alive {
                        self.stage = Stage::Done;
                    }
                }
                Stage::Live => {
                    let Some(sub) = self.sub.as_mut() else {
                        self.stage = Stage::Done;
                        continue;
                    };
                    let queue_open = self.topic.is_some();
                    tokio::select! {
                        next = sub.next() => match next {
                            Some(chunk) => return Ok(Some(chunk)),
                            None => {
                                self.stage = Stage::Done;
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

    /// Joins the topic as a receiver, once the queue is drained.
    fn join_live(&mut self) -> Result<(), BrokerError> {
        let Some(d) = self.deferred.take() else {
            return Ok(());
        };
        let membership = self.broker.join(JoinRequest {
            topic: &d.topic,
            who: &d.who,
            label: &d.label,
            role: d.role,
            access: d.access.as_ref(),
        })?;
        self.sub = membership.subscription;
        Ok(())
    }
}
