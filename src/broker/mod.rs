//! The topic broker: moves `Bytes` from senders to receivers.
//!
//! It knows nothing of SSH or HTTP — both front ends (and, later, a
//! multi-node backend) talk to it through `join`, `Publisher` and
//! `Subscription` only. It also owns the rules that must hold whatever the
//! front end: access lists are checked and set atomically with joining, a
//! topic with no members disappears, and private access lists outlive the
//! sessions that set them.

mod claim;
mod framer;
mod listing;
mod patterns;
mod publisher;
mod queue;
mod queued;
mod reader;
pub mod stats;
mod subscription;
mod topic;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use crate::identity::Identity;
use crate::store::{Store, StoreError};
use crate::topic::{AccessList, Namespace, TopicRef, Who, may_set_access, may_use};

pub use claim::Claim;
pub use framer::{Framer, LineSplitter, MAX_HELD, MAX_LINE};
pub use listing::TopicListing;
pub use publisher::{ByteSource, PubStage, Publisher, PumpError, PumpOptions, StageSink};
pub use queue::{CHUNK_BYTES, QueueError, QueueLimits};
pub use queued::JoinMode;
pub use reader::{ReadError, Reader};
pub use subscription::Subscription;
pub use topic::{Counts, Role};

use patterns::PatternEntry;
use topic::{MemberInfo, Slot, Topic, TopicInner};

/// Chunks a receiver may have queued before lossless senders wait. With
/// 32 KiB chunks this bounds a receiver to 256 KiB plus its SSH window.
pub const RECEIVER_QUEUE_CHUNKS: usize = 8;

/// Limits the broker enforces.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Most live topics at once (SPEC §9).
    pub max_topics: usize,
    /// Limits on queued messages (SPEC §8).
    pub queue: QueueLimits,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            max_topics: 10_000,
            queue: QueueLimits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("access denied")]
    AccessDenied,
    #[error("too many topics on this server ({0}); try again later")]
    TooManyTopics(usize),
    #[error("only sub takes a pattern")]
    PatternNeedsSub,
    /// The access list could not be stored; it was not changed.
    #[error("{0}")]
    Store(String),
}

#[derive(Debug, Default)]
struct State {
    topics: HashMap<String, Arc<Topic>>,
    /// Private topics' access lists, by full name. They belong to the topic,
    /// not to a session (SPEC §6), so they live here, not in `Topic`.
    acls: HashMap<String, AccessList>,
    /// Pattern subs by member id; attached to matching topics as they appear.
    patterns: HashMap<u64, PatternEntry>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    next_member: AtomicU64,
    config: BrokerConfig,
    /// Where private access lists are written through (none: memory only).
    store: Option<Store>,
    /// Queued messages (none without a store).
    queue: Option<Arc<queue::Queue>>,
}

/// Cheap to clone; every clone is the same broker.
#[derive(Debug, Clone)]
pub struct Broker {
    shared: Arc<Shared>,
}

/// A client's place on a topic. Dropping it (through its publisher and
/// subscription) takes the client off the topic.
pub struct Membership {
    pub publisher: Option<Publisher>,
    pub subscription: Option<Subscription>,
    /// The topic has an access list: others reach it by its full name.
    pub shared: bool,
}

/// What a client asks for when it joins.
#[derive(Debug, Clone)]
pub struct JoinRequest<'a> {
    pub topic: &'a TopicRef,
    pub who: &'a Identity,
    /// `USER@IP:PORT#N` for `ls`.
    pub label: &'a str,
    pub role: Role,
    /// `-a`: `Some(empty)` clears the list.
    pub access: Option<&'a AccessList>,
}

/// Removes its member from the topic when the last handle to it drops.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    topic: Arc<Topic>,
    pub id: u64,
    /// A sender's input reached its end and was delivered; a sender that
    /// leaves without this set vanished (SPEC §5.3).
    pub finished: std::sync::atomic::AtomicBool,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let vanished = !self.finished.load(std::sync::atomic::Ordering::Acquire);
        let mut state = lock(&self.shared.state);
        if self.topic.remove(self.id, vanished) {
            let name = &self.topic.name.full;
            if state
                .topics
                .get(name)
                .is_some_and(|t| Arc::ptr_eq(t, &self.topic))
            {
                state.topics.remove(name);
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the maps are still consistent
    // because every critical section leaves them whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) fn who(identity: &Identity) -> Who<'_> {
    Who {
        name: &identity.name,
        fingerprint: &identity.fingerprint,
        admin: identity.admin,
    }
}

impl Broker {
    /// A broker that keeps everything in memory: no queued messages, and
    /// access lists end with the process.
    pub fn new(config: BrokerConfig) -> Self {
        Broker::build(config, None, None, HashMap::new())
    }

    /// A broker backed by the durable store: access lists are loaded from
    /// it and written through, and queued messages are available.
    pub fn with_store(config: BrokerConfig, store: Store) -> Result<Self, StoreError> {
        let acls = store.load_acls()?;
        let queue = queue::Queue::open(store.clone(), config.queue)?;
        Ok(Broker::build(
            config,
            Some(store),
            Some(Arc::new(queue)),
            acls,
        ))
    }

    fn build(
        config: BrokerConfig,
        store: Option<Store>,
        queue: Option<Arc<queue::Queue>>,
        acls: HashMap<String, AccessList>,
    ) -> Self {
        Broker {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    acls,
                    ..State::default()
                }),
                next_member: AtomicU64::new(1),
                config,
                store,
                queue,
            }),
        }
    }

    /// Puts a client on a topic after checking (and, with `-a`, setting) its
    /// access list, all under one lock so no join slips between check and set.
    pub fn join(&self, req: JoinRequest<'_>) -> Result<Membership, BrokerError> {
        // `Join` always yields a membership.
        self.join_with(req, JoinMode::Join)?
            .ok_or(BrokerError::PatternNeedsSub)
    }

    /// `join` with a choice of what to do once access is settled: join,
    /// only check (a sub about to drain the queue), or join only if the
    /// topic has receivers (`pub -q`). `None`: access granted, not joined.
    pub fn join_with(
        &self,
        req: JoinRequest<'_>,
        mode: JoinMode,
    ) -> Result<Option<Membership>, BrokerError> {
        let who = who(req.who);
        let mut state = lock(&self.shared.state);
        let existing = state.topics.get(&req.topic.full).cloned();
        let existing_is_new = existing.is_none();
        let topic = match existing {
            Some(t) => t,
            None => {
                if state.topics.len() >= self.shared.config.max_topics {
                    return Err(BrokerError::TooManyTopics(self.shared.config.max_topics));
                }
                Arc::new(Topic::new(req.topic.clone()))
            }
        };
        let mut inner = topic.lock();
        let is_public = req.topic.namespace == Namespace::Public;
        if let Some(list) = req.access {
            let (has_acl, owner) = match (is_public, &inner.public_acl) {
                (true, Some((_, owner))) => (true, Some(owner.as_str())),
                (true, None) => (false, None),
                (false, _) => (state.acls.contains_key(&req.topic.full), None),
            };
            if !may_set_access(req.topic, has_acl, owner, &who) {
                return Err(BrokerError::AccessDenied);
            }
            match (is_public, list.0.is_empty()) {
                (true, true) => inner.public_acl = None,
                (true, false) => inner.public_acl = Some((list.clone(), req.who.name.clone())),
                (false, _) => {
                    self.persist_acl(&req.topic.full, list)?;
                    if list.0.is_empty() {
                        state.acls.remove(&req.topic.full);
                    } else {
                        state.acls.insert(req.topic.full.clone(), list.clone());
                    }
                }
            }
        }
        let (acl, owner) = acl_of(&state.acls, &topic, &inner);
        if !may_use(req.topic, acl, owner, &who) {
            return Err(BrokerError::AccessDenied);
        }
        let receivers = topic.counts.borrow().receivers;
        match mode {
            JoinMode::Join => {}
            JoinMode::Check => return Ok(None),
            JoinMode::PubOrQueue if receivers == 0 => return Ok(None),
            JoinMode::PubOrQueue => {}
        }
        let shared = acl.is_some();
        if existing_is_new || req.access.is_some() {
            let (acl, owner) = (acl.cloned(), owner.map(str::to_string));
            patterns::sync_topic(
                &state.patterns,
                &topic,
                &mut inner,
                acl.as_ref(),
                owner.as_deref(),
            );
        }

        let id = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        let info = MemberInfo {
            role: req.role,
            label: req.label.to_string(),
            user: req.who.name.clone(),
            via_pattern: false,
        };
        let (slot, rx) = match req.role {
            Role::Sub { lossy, .. } => new_slot(id, lossy),
            Role::Pipe { .. } => new_slot(id, false),
            Role::Pub => (None, None),
        };
        let skipped = slot.as_ref().map(|s| Arc::clone(&s.skipped));
        let joined_counts = *topic.counts.borrow();
        topic.add(&mut inner, id, info, slot);
        // Subscribe while still holding the lock, so no sender can come and
        // go unseen between the join and the subscription.
        let counts_rx = topic.counts.subscribe();
        drop(inner);
        state
            .topics
            .entry(req.topic.full.clone())
            .or_insert_with(|| Arc::clone(&topic));
        drop(state);

        let registration = Arc::new(Registration {
            shared: Arc::clone(&self.shared),
            topic: Arc::clone(&topic),
            id,
            finished: Default::default(),
        });
        let publisher = req.role.sends().then(|| {
            let replay = matches!(req.role, Role::Pipe { replay: true });
            Publisher::new(Arc::clone(&registration), Arc::clone(&topic), replay)
        });
        let subscription = rx.map(|rx| {
            let ends_with_senders = matches!(
                req.role,
                Role::Sub {
                    keep_alive: false,
                    ..
                }
            );
            Subscription::new(
                Arc::clone(&registration) as Arc<dyn Send + Sync>,
                id,
                rx,
                counts_rx,
                joined_counts,
                ends_with_senders,
                skipped.unwrap_or_default(),
            )
        });
        Ok(Some(Membership {
            publisher,
            subscription,
            shared,
        }))
    }

    /// Topics `viewer` may see (SPEC §4.4), sorted by full name.
    pub fn list(&self, viewer: &Identity) -> Vec<TopicListing> {
        let state = lock(&self.shared.state);
        let queued = self
            .shared
            .queue
            .as_ref()
            .map(|q| q.totals())
            .unwrap_or_default();
        listing::visible(&state, &queued, &who(viewer))
    }

    /// The live counts of a topic by full name (`None`: no such live topic).
    /// Lets tests and metrics wait on a condition instead of sleeping.
    pub fn counts(&self, full: &str) -> Option<Counts> {
        let state = lock(&self.shared.state);
        state.topics.get(full).map(|t| *t.counts.borrow())
    }

    /// Pubs waiting for a receiver on a topic (0 when there is no such topic).
    pub fn waiting_pubs(&self, full: &str) -> usize {
        let state = lock(&self.shared.state);
        state.topics.get(full).map_or(0, |t| t.lock().waiting_pubs)
    }

    /// How many live topics there are (for logs and limits).
    pub fn topic_count(&self) -> usize {
        lock(&self.shared.state).topics.len()
    }
}

/// A topic's access list and, for a public one, the user who set it.
fn acl_of<'a>(
    acls: &'a HashMap<String, AccessList>,
    topic: &Topic,
    inner: &'a TopicInner,
) -> (Option<&'a AccessList>, Option<&'a str>) {
    match (&topic.name.namespace, &inner.public_acl) {
        (Namespace::Public, Some((list, owner))) => (Some(list), Some(owner.as_str())),
        (Namespace::Public, None) => (None, None),
        (Namespace::User(_), _) => (acls.get(&topic.name.full), None),
    }
}

fn new_slot(id: u64, lossy: bool) -> (Option<Slot>, Option<mpsc::Receiver<topic::Item>>) {
    let (tx, rx) = mpsc::channel(RECEIVER_QUEUE_CHUNKS);
    let slot = Slot {
        member: id,
        tx,
        lossy,
        skipped: Arc::default(),
    };
    (Some(slot), Some(rx))
}
