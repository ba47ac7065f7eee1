//! One live topic of the in-memory backend: its members, its receivers'
//! slots, and the watches that waiting clients react to.
//!
//! Everything about a topic sits behind one short-held lock, so membership,
//! the public access list and the receiver snapshot never disagree. A join
//! costs the same however many receivers there are: the snapshot senders
//! deliver from is only marked stale, and rebuilt by the next sender that
//! asks — work proportional to the delivery it precedes.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Memory;
use crate::broker::link::{Counts, Role, SenderCounts, Slot, TopicPort};
use crate::broker::topics::Maker;
use crate::broker::who;
use crate::identity::Identity;
use crate::topic::{AccessList, TopicRef, may_use};

#[derive(Debug, Clone)]
pub(crate) struct MemberInfo {
    pub role: Role,
    /// `USER@IP:PORT#N`, as `ls` prints it.
    pub label: String,
    /// Who the client is: a list change re-decides each member (SPEC §6).
    pub who: Identity,
    /// Cancelled when a list change takes the client off (its handles, or
    /// for a pattern attachment the whole pattern sub, end `access denied`).
    pub revoked: CancellationToken,
    /// Attached through a pattern sub: a receiver here, but it neither keeps
    /// the topic alive nor shows in the topic's own `ls` entry.
    pub via_pattern: bool,
}

#[derive(Debug, Default)]
pub(crate) struct TopicInner {
    pub members: BTreeMap<u64, MemberInfo>,
    slots: BTreeMap<u64, Slot>,
    /// What senders deliver to; `None` after a membership change.
    snapshot: Option<Arc<[Slot]>>,
    /// A public topic's list and the user who set it (SPEC §6): dropped with the topic.
    pub public_acl: Option<(AccessList, String)>,
    pub waiting_pubs: usize,
    /// Taken out of the registry: whoever still holds it must not join it.
    pub dead: bool,
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub name: TopicRef,
    inner: Mutex<TopicInner>,
    senders: watch::Sender<SenderCounts>,
    receivers: watch::Sender<usize>,
    cursor: AtomicUsize,
    registry: Weak<Memory>,
    /// Whose topic count this topic is in (SPEC §9).
    pub maker: Maker,
}

impl Topic {
    pub fn new(name: TopicRef, registry: Weak<Memory>, maker: Maker) -> Self {
        Topic {
            name,
            inner: Mutex::new(TopicInner::default()),
            senders: watch::Sender::new(SenderCounts::default()),
            receivers: watch::Sender::new(0),
            cursor: AtomicUsize::new(0),
            registry,
            maker,
        }
    }

    /// Locks the topic. A poisoned lock only means another task panicked
    /// while holding it; the data is plain bookkeeping, still usable.
    pub fn lock(&self) -> MutexGuard<'_, TopicInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn counts(&self) -> Counts {
        let s = *self.senders.borrow();
        Counts {
            senders: s.senders,
            sender_joins: s.joins,
            receivers: *self.receivers.borrow(),
            sender_vanished: s.vanished,
        }
    }

    pub fn sender_counts(&self) -> (SenderCounts, watch::Receiver<SenderCounts>) {
        (*self.senders.borrow(), self.senders.subscribe())
    }

    pub fn add(&self, inner: &mut TopicInner, id: u64, info: MemberInfo, slot: Option<Slot>) {
        let role = info.role;
        if inner.members.insert(id, info).is_some() {
            return;
        }
        if let Some(slot) = slot {
            inner.slots.insert(id, slot);
            inner.snapshot = None;
        }
        if role.sends() {
            self.senders.send_modify(|c| {
                c.senders += 1;
                c.joins += 1;
            });
        }
        if role.receives() {
            self.receivers.send_modify(|n| *n += 1);
        }
    }

    pub fn remove_locked(&self, inner: &mut TopicInner, id: u64, vanished: bool) {
        let Some(info) = inner.members.remove(&id) else {
            return;
        };
        if inner.slots.remove(&id).is_some() {
            inner.snapshot = None;
        }
        if info.role.sends() {
            self.senders.send_modify(|c| {
                c.senders = c.senders.saturating_sub(1);
                if vanished {
                    c.vanished += 1;
                }
            });
        }
        if info.role.receives() {
            self.receivers.send_modify(|n| *n = n.saturating_sub(1));
        }
    }

    /// Takes off every member the topic's current list no longer allows
    /// and tells each one why (SPEC §6: a change applies at once). A
    /// sender taken off counts as vanished: its receivers did not get all
    /// of its data. A pattern attachment ends its whole pattern sub, as
    /// SPEC §6 names pattern subs among the clients removed.
    pub fn revoke_disallowed(
        &self,
        inner: &mut TopicInner,
        acl: Option<&AccessList>,
        owner: Option<&str>,
    ) {
        let gone: Vec<u64> = inner
            .members
            .iter()
            .filter(|(_, m)| !may_use(&self.name, acl, owner, &who(&m.who)))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            if let Some(m) = inner.members.get(&id) {
                m.revoked.cancel();
            }
            self.remove_locked(inner, id, true);
        }
    }

    /// True when no direct member is left (pattern attachments alone do not
    /// keep a topic).
    pub fn is_empty(inner: &TopicInner) -> bool {
        inner.members.values().all(|m| m.via_pattern)
    }
}

impl TopicPort for Topic {
    fn senders(&self) -> watch::Receiver<SenderCounts> {
        self.senders.subscribe()
    }

    fn receiver_count(&self) -> watch::Receiver<usize> {
        self.receivers.subscribe()
    }

    fn receivers(&self) -> Arc<[Slot]> {
        let mut inner = self.lock();
        if let Some(s) = &inner.snapshot {
            return Arc::clone(s);
        }
        let fresh: Arc<[Slot]> = inner.slots.values().map(Slot::clone_handle).collect();
        inner.snapshot = Some(Arc::clone(&fresh));
        fresh
    }

    fn cursor(&self) -> &AtomicUsize {
        &self.cursor
    }

    fn waiting(&self, delta: isize) {
        let mut inner = self.lock();
        inner.waiting_pubs = inner.waiting_pubs.saturating_add_signed(delta);
    }

    fn leave(&self, member: u64, vanished: bool) {
        match self.registry.upgrade() {
            Some(registry) => registry.leave(self, member, vanished),
            None => self.remove_locked(&mut self.lock(), member, vanished),
        }
    }
}
