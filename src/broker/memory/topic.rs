//! One live topic of the in-memory backend: its members, its receivers'
//! slots, and the watches that waiting clients react to.
//!
//! Everything about a topic sits behind one short-held lock, so membership,
//! the public access list and the receiver snapshot never disagree. A join
//! costs the same however many receivers there are: the snapshot senders
//! deliver from is only marked stale, and rebuilt by the next sender that
//! asks — work proportional to the delivery it precedes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Memory;
use crate::broker::link::{Counts, Role, SenderCounts, Slot, TopicPort};
use crate::broker::peers::{Departure, Link, Member, PublicList, SharedPeers, View, ViewKey};
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
    /// Attached through a pattern sub (its full pattern name): a receiver
    /// here, but it neither keeps the topic alive nor shows in the topic's
    /// own `ls` entry.
    pub via_pattern: Option<String>,
}

/// This node's own senders and receivers on a topic.
#[derive(Debug, Default, Clone, Copy)]
struct Local {
    senders: usize,
    joins: u64,
    vanished: u64,
    receivers: usize,
}

#[derive(Debug, Default)]
pub(crate) struct TopicInner {
    pub members: BTreeMap<u64, MemberInfo>,
    slots: BTreeMap<u64, Slot>,
    /// What senders deliver to; `None` after a membership change.
    snapshot: Option<Arc<[Slot]>>,
    /// The same without the slots towards other nodes: what data that
    /// came from another node is delivered to.
    local_snapshot: Option<Arc<[Slot]>>,
    local: Local,
    /// Other nodes' views of this topic (SPEC §14; empty on one node).
    pub remote: BTreeMap<ViewKey, View>,
    /// Joins and vanished senders of views that are gone, so the sums
    /// receivers watch never go backwards.
    remote_gone: (u64, u64),
    /// A slot per node with receivers here, by node.
    links: BTreeMap<String, (u64, Link)>,
    /// A public topic's list and the user who set it (SPEC §6): dropped with the topic.
    pub public_acl: Option<(AccessList, String)>,
    /// When `public_acl` was last set or cleared, here or on the node it
    /// was taken from (`PublicList::stamp`; 0: never).
    pub public_stamp: u64,
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
    /// This life of the topic on this node, as other nodes tell it apart.
    pub epoch: u64,
    /// Other nodes, when there are any.
    peers: Option<SharedPeers>,
}

impl Topic {
    pub fn new(
        name: TopicRef,
        registry: Weak<Memory>,
        maker: Maker,
        peers: Option<SharedPeers>,
    ) -> Self {
        let topic = Topic {
            name,
            inner: Mutex::new(TopicInner::default()),
            senders: watch::Sender::new(SenderCounts::default()),
            receivers: watch::Sender::new(0),
            cursor: AtomicUsize::new(0),
            registry,
            maker,
            epoch: rand::random::<u64>() >> 1,
            peers,
        };
        if let Some(p) = &topic.peers {
            let views = p.views(&topic.name.full);
            let mut inner = topic.lock();
            for (key, view) in views {
                inner.remote.insert(key, view);
            }
            topic.adopt_public(&mut inner);
            topic.sync_links(&mut inner);
            topic.publish(&inner);
        }
        topic
    }

    /// Sets the watches from local members plus other nodes' views; wakes
    /// watchers only when a number changed.
    fn publish(&self, inner: &TopicInner) {
        let (gone_joins, gone_vanished) = inner.remote_gone;
        let mut counts = SenderCounts {
            senders: inner.local.senders,
            joins: inner.local.joins + gone_joins,
            vanished: inner.local.vanished + gone_vanished,
        };
        let mut receivers = inner.local.receivers;
        for v in inner.remote.values() {
            counts.senders += v.senders;
            counts.joins += v.joins;
            counts.vanished += v.vanished;
            receivers += v.receivers;
        }
        self.senders.send_if_modified(|c| {
            let changed = *c != counts;
            *c = counts;
            changed
        });
        self.receivers.send_if_modified(|n| {
            let changed = *n != receivers;
            *n = receivers;
            changed
        });
    }

    /// Tells other nodes this topic's membership changed.
    fn tell_peers(&self) {
        if let Some(p) = &self.peers {
            p.changed(&self.name.full, self.epoch);
        }
    }

    /// One slot per node that has receivers here, and none for the rest.
    fn sync_links(&self, inner: &mut TopicInner) {
        let Some(peers) = &self.peers else {
            return;
        };
        let mut wanted: BTreeMap<&str, usize> = BTreeMap::new();
        for (key, view) in &inner.remote {
            *wanted.entry(key.node.as_str()).or_default() += view.receivers;
        }
        let stale: Vec<String> = inner
            .links
            .keys()
            .filter(|node| wanted.get(node.as_str()).is_none_or(|n| *n == 0))
            .cloned()
            .collect();
        for node in stale {
            if let Some((member, _link)) = inner.links.remove(&node) {
                inner.slots.remove(&member);
                inner.snapshot = None;
            }
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(node, n)| **n > 0 && !inner.links.contains_key(**node))
            .map(|(node, _)| node.to_string())
            .collect();
        for node in missing {
            let member = self.registry.upgrade().map_or(0, |m| m.next_id());
            let link = peers.link(&self.name, &node, member);
            inner.slots.insert(member, link.slot.clone_handle());
            inner.links.insert(node, (member, link));
            inner.snapshot = None;
        }
        for (node, (_, link)) in &inner.links {
            let n = wanted.get(node.as_str()).copied().unwrap_or(1);
            link.slot.share.store(n.max(1), Ordering::Relaxed);
        }
    }

    /// Sets this node's public list (`None`: cleared), newer than any it
    /// knows, and tells the other nodes.
    pub fn set_public(&self, inner: &mut TopicInner, acl: Option<(AccessList, String)>) {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let now = ms << 8 | u64::from(rand::random::<u8>());
        inner.public_stamp = now.max(inner.public_stamp + 1);
        inner.public_acl = acl;
        self.tell_peers();
    }

    /// Takes another node's public list if it is newer than this node's;
    /// true if it did (its clients are then to be re-decided).
    fn adopt_public(&self, inner: &mut TopicInner) -> bool {
        if self.name.namespace != crate::topic::Namespace::Public {
            return false;
        }
        let newest = inner
            .remote
            .values()
            .filter_map(|v| v.public.as_ref())
            .max_by_key(|p| p.stamp)
            .filter(|p| p.stamp > inner.public_stamp)
            .cloned();
        let Some(p) = newest else {
            return false;
        };
        inner.public_stamp = p.stamp;
        inner.public_acl = (!p.list.is_empty()).then_some((AccessList(p.list), p.owner));
        true
    }

    /// Applies another node's view (`None`: it left, and how). True when
    /// it brought a newer public list, which this node now holds too (and
    /// says so, so the list outlives the node that set it).
    pub fn apply_remote(
        &self,
        inner: &mut TopicInner,
        key: ViewKey,
        view: Option<View>,
        departure: Departure,
    ) -> bool {
        match view {
            Some(v) => {
                inner.remote.insert(key, v);
            }
            None => {
                if let Some(old) = inner.remote.remove(&key) {
                    inner.remote_gone.0 += old.joins;
                    inner.remote_gone.1 += old.vanished;
                    if departure == Departure::NodeLost {
                        inner.remote_gone.1 += old.senders as u64;
                    }
                }
            }
        }
        self.sync_links(inner);
        self.publish(inner);
        let adopted = self.adopt_public(inner);
        if adopted {
            self.tell_peers();
        }
        adopted
    }

    /// This node's view of the topic, as other nodes are told it.
    pub fn view(&self, inner: &TopicInner) -> View {
        let mut view = View {
            topic: self.name.full.clone(),
            senders: inner.local.senders,
            joins: inner.local.joins,
            vanished: inner.local.vanished,
            receivers: inner.local.receivers,
            waiting: inner.waiting_pubs,
            public: (inner.public_stamp > 0).then(|| {
                let (list, owner) = inner.public_acl.clone().unwrap_or_default();
                PublicList {
                    list: list.0,
                    owner,
                    stamp: inner.public_stamp,
                }
            }),
            ..View::default()
        };
        // Pattern subs too, marked with their pattern: another node lists
        // them under it, as this one does (SPEC §4.4).
        for m in inner.members.values() {
            let role = match m.role {
                Role::Pub => 'p',
                Role::Sub { .. } => 's',
                Role::Pipe { .. } => 'i',
            };
            view.members.push(Member {
                role,
                user: m.who.name.clone(),
                label: m.label.clone(),
                pattern: m.via_pattern.clone(),
            });
        }
        view
    }

    /// The receivers on this node only (data from another node goes there).
    pub fn local_receivers(&self) -> Arc<[Slot]> {
        let mut inner = self.lock();
        if let Some(s) = &inner.local_snapshot {
            return Arc::clone(s);
        }
        let links: Vec<u64> = inner.links.values().map(|(m, _)| *m).collect();
        let fresh: Arc<[Slot]> = inner
            .slots
            .values()
            .filter(|s| !links.contains(&s.member))
            .map(Slot::clone_handle)
            .collect();
        inner.local_snapshot = Some(Arc::clone(&fresh));
        fresh
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
            inner.local_snapshot = None;
        }
        if role.sends() {
            inner.local.senders += 1;
            inner.local.joins += 1;
        }
        if role.receives() {
            inner.local.receivers += 1;
        }
        self.publish(inner);
        self.tell_peers();
    }

    pub fn remove_locked(&self, inner: &mut TopicInner, id: u64, vanished: bool) {
        let Some(info) = inner.members.remove(&id) else {
            return;
        };
        if inner.slots.remove(&id).is_some() {
            inner.snapshot = None;
            inner.local_snapshot = None;
        }
        if info.role.sends() {
            inner.local.senders = inner.local.senders.saturating_sub(1);
            if vanished {
                inner.local.vanished += 1;
            }
        }
        if info.role.receives() {
            inner.local.receivers = inner.local.receivers.saturating_sub(1);
        }
        self.publish(inner);
        self.tell_peers();
    }

    /// Drops what ties the topic to other nodes once it is out of the
    /// registry: its forwarders stop.
    pub fn unlink_all(&self, inner: &mut TopicInner) {
        let members: Vec<u64> = inner.links.values().map(|(m, _)| *m).collect();
        for m in members {
            inner.slots.remove(&m);
        }
        inner.links.clear();
        inner.snapshot = None;
        inner.local_snapshot = None;
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

    /// True when nothing keeps the topic: no direct member is left, and it
    /// is not a topic other nodes send on that pattern subs here receive
    /// from (`adopt`). Pattern attachments alone, or views alone, never
    /// keep a topic: two nodes' patterns cannot keep each other's alive.
    pub fn is_empty(inner: &TopicInner) -> bool {
        let mut patterns = false;
        for m in inner.members.values() {
            if m.via_pattern.is_none() {
                return false;
            }
            patterns = true;
        }
        !(patterns && inner.remote.values().any(|v| v.senders > 0))
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
        self.tell_peers();
    }

    fn orphan(&self, line: bytes::Bytes) {
        match &self.peers {
            Some(p) => p.orphan(&self.name.full, line),
            None => tracing::warn!(
                bytes = line.len(),
                "round-robin line lost: no receiver left"
            ),
        }
    }

    fn leave(&self, member: u64, vanished: bool) {
        match self.registry.upgrade() {
            Some(registry) => registry.leave(self, member, vanished),
            None => self.remove_locked(&mut self.lock(), member, vanished),
        }
    }
}
