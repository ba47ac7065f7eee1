//! The in-memory backend: live topics of one process.
//!
//! No lock here is held across the whole server. Topics live in shards, each
//! behind its own short lock, and each topic has its own. Lock order, always:
//! `patterns` → a shard → a topic → `acls` or `held`; the topic count is a
//! leaf lock too, taken with nothing inside it. A join locks one shard and
//! one topic; `ls` and pattern subs copy a shard's topics out and then visit
//! them one by one, so neither stalls joins; persisting an access list
//! (private, or public and held for queued messages) happens under no lock
//! but `acl_writes`, which only other list changes wait on.
//!
//! A list change re-decides, under the topic's lock, every client already
//! on the topic (`Topic::revoke_disallowed`), so it applies at once.

mod adopt;
mod held;
mod listing;
mod lists;
mod patterns;
mod topic;

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, Weak};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::link::{Counts, Item, Registration, Role, SenderCounts, Slot, TopicPort};
use super::peers::{Departure, Peers, SharedPeers, View, ViewKey};
use super::stores::AclStore;
use super::topics::{Maker, TopicCount, TopicLimits};
use super::{BrokerError, QueuedTotals, TopicListing, who};
use crate::identity::Identity;
use crate::topic::{AccessList, Namespace, TopicRef, may_set_access, may_use};

pub(crate) use listing::RemoteViews;
pub(crate) use patterns::PatternEntry;
use topic::MemberInfo;
pub(crate) use topic::{Topic, TopicInner};

const SHARDS: usize = 64;

/// What a join does once access is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinMode {
    Join,
    /// Only check access (and set a public `-a` on a live topic): a sub
    /// about to drain the queue.
    Check,
    /// Join only if the topic has receivers; otherwise the caller queues.
    IfReceivers,
}

/// A join as the backend sees it.
pub(crate) struct JoinSpec<'a> {
    pub topic: &'a TopicRef,
    pub who: &'a Identity,
    pub label: &'a str,
    pub role: Role,
    /// `-a` on a public topic (a private one's list is set beforehand).
    pub public_access: Option<&'a AccessList>,
    pub mode: JoinMode,
    pub receiver_chunks: usize,
}

/// What a successful join hands to the delivery rules.
pub(crate) struct Joined {
    pub registration: Arc<Registration>,
    /// The receiver's queue (subs and pipes).
    pub rx: Option<mpsc::Receiver<Item>>,
    pub skipped: Arc<AtomicU64>,
    pub senders_at_join: SenderCounts,
    pub senders: watch::Receiver<SenderCounts>,
    /// The topic has an access list: others reach it by its full name.
    pub shared: bool,
}

pub(crate) enum JoinOutcome {
    Joined(Joined),
    /// Access granted, not joined (`Check`, or `IfReceivers` with none).
    Granted {
        shared: bool,
    },
}

type Shard = Mutex<HashMap<String, Arc<Topic>>>;

#[derive(Debug)]
pub(crate) struct Memory {
    shards: Vec<Shard>,
    /// Live topics, per maker and in all (a leaf lock).
    topic_count: TopicCount,
    /// Private topics' access lists, by full name. They belong to the topic,
    /// not to a session (SPEC §6), so they live here, not in `Topic`.
    acls: Mutex<HashMap<String, AccessList>>,
    /// Public lists held for queued messages (`held`), by full name.
    held: Mutex<HashMap<String, held::Held>>,
    /// Serialises private list changes (check, persist, apply), so two
    /// changes reach the store in the order they take effect.
    acl_writes: tokio::sync::Mutex<()>,
    acl_store: Option<Arc<dyn AclStore>>,
    /// Pattern subs by member id; attached to matching topics as they appear.
    patterns: RwLock<HashMap<u64, Arc<PatternEntry>>>,
    next_member: AtomicU64,
    /// Bytes any lossy receiver skipped, ever (metrics).
    skipped_total: Arc<AtomicU64>,
    /// Other nodes (SPEC §14), set once before the first join. Weak: the
    /// node's link to the others (`nats::Core`) keeps this backend, so a
    /// strong pointer back would keep both for ever once the broker is
    /// dropped (an in-process restart would find its store still open).
    peers: OnceLock<Weak<dyn Peers>>,
    me: Weak<Memory>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the maps are still consistent
    // because every critical section leaves them whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Memory {
    pub fn new(
        limits: TopicLimits,
        acl_store: Option<Arc<dyn AclStore>>,
        mut acls: HashMap<String, AccessList>,
    ) -> Arc<Memory> {
        let held = held::split_held(&mut acls);
        Arc::new_cyclic(|me| Memory {
            held: Mutex::new(held),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            topic_count: TopicCount::new(limits),
            acls: Mutex::new(acls),
            acl_writes: tokio::sync::Mutex::new(()),
            acl_store,
            patterns: RwLock::default(),
            next_member: AtomicU64::new(1),
            skipped_total: Arc::default(),
            peers: OnceLock::new(),
            me: me.clone(),
        })
    }

    fn shard(&self, full: &str) -> &Shard {
        let mut h = DefaultHasher::new();
        full.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    fn patterns_read(&self) -> RwLockReadGuard<'_, HashMap<u64, Arc<PatternEntry>>> {
        self.patterns.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Connects this backend to other nodes; only the first call counts.
    /// The other nodes, with `--broker nats://…`.
    pub(crate) fn peers(&self) -> Option<SharedPeers> {
        self.peers.get().and_then(Weak::upgrade)
    }

    pub fn set_peers(&self, peers: &SharedPeers) {
        let _ = self.peers.set(Arc::downgrade(peers));
    }

    /// Applies another node's view of a topic to the topic here, if it is
    /// live here (one that starts later asks `Peers::views`).
    /// A topic not live here that a local pattern matches is adopted
    /// (`adopt`); one that only its patterns and that view kept ends. A
    /// newer public list in the view re-decides the clients here, as a
    /// change made here would.
    pub fn apply_remote(&self, full: &str, key: ViewKey, view: Option<View>, departure: Departure) {
        // Lock order: patterns first (read, and only public topics' views
        // can change what pattern subs may see).
        let public = view.as_ref().is_some_and(|v| v.public.is_some());
        let patterns = public.then(|| self.patterns_read());
        let live = lock(self.shard(full)).get(full).cloned();
        let Some(t) = live else {
            drop(patterns);
            if view.is_some_and(|v| v.senders > 0) {
                self.adopt(full);
            }
            return;
        };
        {
            let mut inner = t.lock();
            if inner.dead {
                return;
            }
            if t.apply_remote(&mut inner, key, view, departure) {
                let (acl, owner) = self.acl_of(&t, &inner);
                t.revoke_disallowed(&mut inner, acl.as_ref(), owner.as_deref());
                if let Some(p) = &patterns {
                    patterns::sync_topic(p, &t, &mut inner, acl.as_ref(), owner.as_deref());
                }
            }
        }
        drop(patterns);
        self.end_if_unused(&t);
    }

    /// Every live topic and its epoch (to tell other nodes all again).
    pub fn topic_epochs(&self) -> Vec<(String, u64)> {
        self.all_topics()
            .iter()
            .map(|t| (t.name.full.clone(), t.epoch))
            .collect()
    }

    /// This node's view of a live topic of that epoch (for other nodes).
    pub fn view(&self, full: &str, epoch: u64) -> Option<View> {
        let t = lock(self.shard(full)).get(full).cloned()?;
        let inner = t.lock();
        (t.epoch == epoch && !inner.dead).then(|| t.view(&inner))
    }

    /// The receivers on this node of a live topic, and where round-robin
    /// goes on: data from another node is delivered here.
    pub fn local_port(&self, full: &str) -> Option<Arc<Topic>> {
        lock(self.shard(full)).get(full).cloned()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_member.fetch_add(1, Ordering::Relaxed)
    }

    /// Every live topic, copied out shard by shard (no lock held after).
    fn all_topics(&self) -> Vec<Arc<Topic>> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.extend(lock(shard).values().cloned());
        }
        out
    }

    /// A topic's access list and, for a public one, the user who set it.
    fn acl_of(&self, topic: &Topic, inner: &TopicInner) -> (Option<AccessList>, Option<String>) {
        match (&topic.name.namespace, &inner.public_acl) {
            (Namespace::Public, Some((list, owner))) => (Some(list.clone()), Some(owner.clone())),
            (Namespace::Public, None) => match self.held_of(&topic.name.full) {
                Some((list, owner)) => (Some(list), Some(owner)),
                None => (None, None),
            },
            (Namespace::User(_), _) => (lock(&self.acls).get(&topic.name.full).cloned(), None),
        }
    }

    /// Joins (or, by `mode`, only checks) a topic by name.
    pub fn join(&self, spec: &JoinSpec<'_>) -> Result<JoinOutcome, BrokerError> {
        // A public `-a` re-decides the topic's pattern attachments, and the
        // lock order puts `patterns` first.
        let changes_list =
            spec.public_access.is_some() && spec.topic.namespace == Namespace::Public;
        loop {
            {
                let patterns = changes_list.then(|| self.patterns_read());
                let shard = lock(self.shard(&spec.topic.full));
                if let Some(t) = shard.get(&spec.topic.full) {
                    let t = Arc::clone(t);
                    let mut inner = t.lock();
                    return self.join_locked(spec, &t, &mut inner, patterns.as_deref(), false);
                }
            }
            let patterns = self.patterns_read();
            let mut shard = lock(self.shard(&spec.topic.full));
            if shard.contains_key(&spec.topic.full) {
                continue; // created meanwhile: join that one
            }
            let maker = Maker::of(spec.who);
            let t = Arc::new(Topic::new(
                spec.topic.clone(),
                self.me.clone(),
                maker.clone(),
                self.peers(),
            ));
            let mut inner = t.lock();
            if spec.mode != JoinMode::Join {
                // Decide without keeping the topic (nobody is on it).
                return self.join_locked(spec, &t, &mut inner, None, false);
            }
            self.topic_count.take(&maker)?;
            let outcome = self.join_locked(spec, &t, &mut inner, Some(&patterns), true);
            match &outcome {
                Ok(_) => {
                    shard.insert(spec.topic.full.clone(), Arc::clone(&t));
                }
                Err(_) => self.topic_count.release(&maker),
            }
            return outcome;
        }
    }

    /// The access rules and the join itself, under the topic's lock.
    /// `patterns` is given for a topic being created: its pattern subs are
    /// attached before anyone can see it.
    fn join_locked(
        &self,
        spec: &JoinSpec<'_>,
        t: &Arc<Topic>,
        inner: &mut TopicInner,
        patterns: Option<&HashMap<u64, Arc<PatternEntry>>>,
        new_topic: bool,
    ) -> Result<JoinOutcome, BrokerError> {
        let who_is = who(spec.who);
        let mut list_changed = false;
        if let (Some(list), Namespace::Public) = (spec.public_access, &spec.topic.namespace) {
            // A held list (queued messages) counts as the topic's.
            let (current, owner) = self.acl_of(t, inner);
            if !may_set_access(spec.topic, current.is_some(), owner.as_deref(), &who_is) {
                return Err(BrokerError::AccessDenied);
            }
            let acl = (!list.0.is_empty()).then(|| (list.clone(), spec.who.name.clone()));
            t.set_public(inner, acl);
            self.update_held(&spec.topic.full, inner.public_acl.clone());
            list_changed = true;
        }
        let (acl, owner) = self.acl_of(t, inner);
        if !may_use(spec.topic, acl.as_ref(), owner.as_deref(), &who_is) {
            return Err(BrokerError::AccessDenied);
        }
        if list_changed {
            t.revoke_disallowed(inner, acl.as_ref(), owner.as_deref());
        }
        let shared = acl.is_some();
        let receivers = t.counts().receivers;
        match spec.mode {
            JoinMode::Join => {}
            JoinMode::Check => return Ok(JoinOutcome::Granted { shared }),
            JoinMode::IfReceivers if receivers == 0 => return Ok(JoinOutcome::Granted { shared }),
            JoinMode::IfReceivers => {}
        }
        if let Some(p) = patterns.filter(|_| new_topic || list_changed) {
            patterns::sync_topic(p, t, inner, acl.as_ref(), owner.as_deref());
        }
        let id = self.next_id();
        let info = MemberInfo {
            role: spec.role,
            label: spec.label.to_string(),
            who: spec.who.clone(),
            revoked: CancellationToken::new(),
            via_pattern: None,
        };
        let revoked = info.revoked.clone();
        let (slot, rx) = match spec.role {
            Role::Sub { lossy, .. } => {
                let (s, rx) = Slot::new(id, lossy, spec.receiver_chunks, &self.skipped_total);
                (Some(s), Some(rx))
            }
            Role::Pipe { .. } => {
                let (s, rx) = Slot::new(id, false, spec.receiver_chunks, &self.skipped_total);
                (Some(s), Some(rx))
            }
            Role::Pub => (None, None),
        };
        let skipped = slot
            .as_ref()
            .map(|s| Arc::clone(&s.skipped))
            .unwrap_or_default();
        // Read before adding ourselves, and subscribed under the lock, so no
        // sender can come and go unseen between the join and the watch.
        let (senders_at_join, senders) = t.sender_counts();
        t.add(inner, id, info, slot);
        let port: Arc<dyn TopicPort> = Arc::clone(t) as Arc<dyn TopicPort>;
        Ok(JoinOutcome::Joined(Joined {
            registration: Registration::new(port, id, revoked),
            rx,
            skipped,
            senders_at_join,
            senders,
            shared,
        }))
    }

    /// Takes a member off `t`; the last direct member takes the topic out
    /// of the registry, under the shard's lock so no join slips in between.
    fn leave(&self, t: &Topic, member: u64, vanished: bool) {
        let mut shard = lock(self.shard(&t.name.full));
        let mut inner = t.lock();
        t.remove_locked(&mut inner, member, vanished);
        if inner.dead || !Topic::is_empty(&inner) {
            return;
        }
        self.end_locked(&mut shard, t, &mut inner);
    }

    /// Ends a topic nothing keeps: out of the registry, its forwarders
    /// stopped, its last view told to the other nodes.
    fn end_locked(
        &self,
        shard: &mut HashMap<String, Arc<Topic>>,
        t: &Topic,
        inner: &mut TopicInner,
    ) {
        inner.dead = true;
        // Gone with its last client here; other nodes keep theirs.
        inner.public_acl = None;
        inner.public_stamp = 0;
        t.unlink_all(inner);
        if let Some(p) = self.peers() {
            p.ended(t.view(inner), t.epoch);
        }
        let ours = shard
            .get(&t.name.full)
            .is_some_and(|s| std::ptr::eq(Arc::as_ptr(s), t));
        if ours {
            shard.remove(&t.name.full);
            self.topic_count.release(&t.maker);
        }
    }

    pub fn counts(&self, full: &str) -> Option<Counts> {
        lock(self.shard(full)).get(full).map(|t| t.counts())
    }

    pub fn waiting_pubs(&self, full: &str) -> usize {
        let t = lock(self.shard(full)).get(full).cloned();
        t.map_or(0, |t| t.lock().waiting_pubs)
    }

    /// (live topics, receiving clients, skipped bytes ever), for metrics.
    pub fn stats(&self) -> (usize, usize, u64) {
        let mut receivers = self.patterns_read().len();
        for t in self.all_topics() {
            let inner = t.lock();
            receivers += inner
                .members
                .values()
                .filter(|m| m.role.receives() && m.via_pattern.is_none())
                .count();
        }
        (
            self.topic_count(),
            receivers,
            self.skipped_total.load(Ordering::Relaxed),
        )
    }

    pub fn topic_count(&self) -> usize {
        self.topic_count.total()
    }

    /// Topics `viewer` may see (SPEC §4.4), sorted by full name.
    pub fn list(
        &self,
        viewer: &Identity,
        queued: &QueuedTotals,
        remote: &RemoteViews,
    ) -> Vec<TopicListing> {
        let topics = self.all_topics();
        let acls = lock(&self.acls).clone();
        let patterns: Vec<Arc<PatternEntry>> = self.patterns_read().values().cloned().collect();
        listing::visible(&topics, &acls, &patterns, queued, remote, &who(viewer))
    }
}
