//! One live topic: its members, its receivers' queues, and the counts that
//! waiting clients watch.
//!
//! Everything about a topic sits behind one short-held lock, so membership,
//! the public access list and the receiver snapshot never disagree. Senders
//! do not hold the lock while they deliver: they take an `Arc` snapshot of
//! the receivers (rebuilt only when membership changes) and await each
//! receiver's queue outside it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::topic::{AccessList, TopicRef};

/// What travels through a receiver's queue.
#[derive(Debug)]
pub(crate) enum Item {
    Data(Bytes),
    /// A round-robin line: if its receiver leaves before writing it, the
    /// line goes to another receiver of the same topic instead of being lost.
    Line(Bytes, std::sync::Weak<Topic>),
    /// Acknowledged once every item before it was handed to the client, so a
    /// pub can say `msg sent!` only when that is true.
    Flush(oneshot::Sender<()>),
}

/// The numbers waiting clients react to, published through a `watch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Senders (pubs and pipes) now on the topic.
    pub senders: usize,
    /// Senders that ever joined: lets a sub notice a sender that came and
    /// went between two looks (SPEC §5.3).
    pub sender_joins: u64,
    /// Receivers (subs and pipes) now on the topic.
    pub receivers: usize,
    /// Senders that ever left before the end of their input (killed,
    /// vanished, timed out): a sub that saw one go ends with an error
    /// instead of passing truncated data off as whole (SPEC §5.3).
    pub sender_vanished: u64,
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
}

impl Slot {
    /// Delivers one chunk, waiting for room unless the receiver is lossy.
    /// Returns false when the receiver has already left.
    pub async fn deliver(&self, chunk: &Bytes) -> bool {
        self.deliver_item(Item::Data(chunk.clone()), chunk.len())
            .await
    }

    /// Delivers one round-robin line (re-dispatched if this receiver leaves
    /// before writing it).
    pub async fn deliver_line(&self, line: &Bytes, topic: &Arc<Topic>) -> bool {
        let item = Item::Line(line.clone(), Arc::downgrade(topic));
        self.deliver_item(item, line.len()).await
    }

    async fn deliver_item(&self, item: Item, len: usize) -> bool {
        if self.lossy {
            match self.tx.try_send(item) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Skipping is this receiver's choice; it still counts as reached.
                    self.skipped.fetch_add(len as u64, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        } else {
            self.tx.send(item).await.is_ok()
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MemberInfo {
    pub role: Role,
    /// `USER@IP:PORT#N`, as `ls` prints it.
    pub label: String,
    pub user: String,
    /// Attached through a pattern sub: a receiver here, but it neither keeps
    /// the topic alive nor shows in the topic's own `ls` entry.
    pub via_pattern: bool,
}

#[derive(Debug, Default)]
pub(crate) struct TopicInner {
    pub members: BTreeMap<u64, MemberInfo>,
    /// Rebuilt on every membership change; senders clone the `Arc`.
    pub receivers: Arc<Vec<Slot>>,
    /// A public topic's list and the user who set it (SPEC §6): dropped with the topic.
    pub public_acl: Option<(AccessList, String)>,
    pub waiting_pubs: usize,
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub name: TopicRef,
    inner: Mutex<TopicInner>,
    pub counts: watch::Sender<Counts>,
    /// Where round-robin dispatch continues; shared by the topic's senders
    /// so two round-robin senders still spread work evenly.
    pub cursor: AtomicUsize,
}

impl Topic {
    pub fn new(name: TopicRef) -> Self {
        Topic {
            name,
            inner: Mutex::new(TopicInner::default()),
            counts: watch::Sender::new(Counts::default()),
            cursor: AtomicUsize::new(0),
        }
    }

    /// Hands a line to exactly one receiver, rotating over those connected
    /// now and skipping `exclude`; tries the next one if a receiver just
    /// left. False when nobody took it.
    pub async fn dispatch_line(self: &Arc<Self>, line: &Bytes, exclude: &[u64]) -> bool {
        let slots = self.receivers();
        let candidates: Vec<&Slot> = slots
            .iter()
            .filter(|s| !exclude.contains(&s.member))
            .collect();
        let n = candidates.len();
        if n == 0 {
            return false;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        for k in 0..n {
            if candidates[(start + k) % n].deliver_line(line, self).await {
                return true;
            }
        }
        false
    }

    /// Locks the topic. A poisoned lock only means another task panicked
    /// while holding it; the data is plain bookkeeping, still usable.
    pub fn lock(&self) -> MutexGuard<'_, TopicInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn receivers(&self) -> Arc<Vec<Slot>> {
        Arc::clone(&self.lock().receivers)
    }

    pub fn add(&self, inner: &mut TopicInner, id: u64, info: MemberInfo, slot: Option<Slot>) {
        let role = info.role;
        inner.members.insert(id, info);
        if let Some(slot) = slot {
            let mut slots: Vec<Slot> = inner.receivers.iter().map(Slot::clone_handle).collect();
            slots.push(slot);
            inner.receivers = Arc::new(slots);
        }
        self.counts.send_modify(|c| {
            if role.sends() {
                c.senders += 1;
                c.sender_joins += 1;
            }
            if role.receives() {
                c.receivers += 1;
            }
        });
    }

    /// Removes a member; returns true when no direct member is left (pattern
    /// attachments alone do not keep a topic).
    /// `vanished`: a sender left before the end of its input.
    pub fn remove(&self, id: u64, vanished: bool) -> bool {
        let mut inner = self.lock();
        self.remove_locked(&mut inner, id, vanished);
        let empty = inner.members.values().all(|m| m.via_pattern);
        if empty {
            inner.public_acl = None;
        }
        empty
    }

    pub fn remove_locked(&self, inner: &mut TopicInner, id: u64, vanished: bool) {
        let Some(info) = inner.members.remove(&id) else {
            return;
        };
        if info.role.receives() {
            let slots = inner
                .receivers
                .iter()
                .filter(|s| s.member != id)
                .map(Slot::clone_handle)
                .collect();
            inner.receivers = Arc::new(slots);
        }
        self.counts.send_modify(|c| {
            if info.role.sends() {
                c.senders = c.senders.saturating_sub(1);
                if vanished {
                    c.sender_vanished += 1;
                }
            }
            if info.role.receives() {
                c.receivers = c.receivers.saturating_sub(1);
            }
        });
    }
}

impl Slot {
    pub fn clone_handle(&self) -> Slot {
        Slot {
            member: self.member,
            tx: self.tx.clone(),
            lossy: self.lossy,
            skipped: Arc::clone(&self.skipped),
        }
    }
}
