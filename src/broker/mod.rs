//! The topic broker: moves `Bytes` from senders to receivers.
//!
//! Front ends (`ssh/`, `http/`, through `front/`) ask for intents — open a
//! pub, a sub, a pipe; list; read or set an access list — and get handles
//! that carry the delivery rules of SPEC §5 and §8. They never see
//! memberships or the queue protocol, and the broker knows nothing of SSH
//! or HTTP.
//!
//! Below the intents sits a backend, chosen at start-up, that keeps live
//! topics: who is on them and where their receivers' queues are
//! (`link::TopicPort`). Everything a second backend must not get wrong is
//! above it, written once: the waits, framing and line hold, pacing and
//! flushes (`publisher`), the ending and vanished-sender rules and
//! round-robin redispatch (`subscription`), queued messages first, then live
//! data (`reader`). Durable state reaches the store through `stores`.

mod borrow;
mod claim;
mod framer;
mod link;
mod memory;
mod nats;
mod peers;
mod publisher;
mod queue;
mod quota;
mod reader;
pub(crate) mod stats;
mod stores;
mod subscription;
mod topics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::identity::Identity;
use crate::store::{Store, StoreError};
use crate::topic::{AccessList, Namespace, TopicRef, Who, is_pattern};

pub use claim::Claim;
pub use framer::{Framer, LineSplitter, MAX_HELD, MAX_LINE};
pub use link::{Counts, Role};
pub use publisher::{ByteSource, PubStage, Publisher, PumpError, PumpOptions, StageSink};
pub use queue::{CHUNK_BYTES, QueueError, QueueLimits};
pub use reader::{Delivery, Piece, ReadError, Reader, Tidy};
pub use stores::{AclStore, BodySink, BodySource, MessageStore};
pub use subscription::Subscription;

use memory::{JoinMode, JoinOutcome, JoinSpec, Joined, Memory};
use subscription::SubscriptionParts;
pub(crate) use topics::TopicLimits;

/// Chunks a receiver may have queued before lossless senders wait. With
/// 32 KiB chunks this bounds a receiver to 256 KiB plus its SSH window.
pub const RECEIVER_QUEUE_CHUNKS: usize = 8;

/// How often expired messages are looked for.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

pub use nats::follow::{
    at_start as kv_at_start, follow as follow_bucket, heard as kv_heard, is_probe as kv_is_probe,
    lost_race as kv_lost_race,
};
pub use nats::names::token as kv_token;
pub use nats::{ConnectError, NODE_TTL as NATS_NODE_TTL, NatsOptions};

/// Which backend keeps the live topics (`--broker`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BackendKind {
    /// This process's memory: one node.
    #[default]
    Memory,
    /// Several nodes sharing topics through NATS (SPEC §14).
    Nats(NatsOptions),
}

/// Limits the broker enforces. Its `Default` is the command line's
/// defaults (in `config`), so they are written in one place.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub backend: BackendKind,
    /// Most live topics at once (SPEC §9).
    pub max_topics: usize,
    /// Most live topics one user made (SPEC §9); anonymous keys get
    /// `1/queue.anonymous_divisor` of it, and all of them together half of
    /// `max_topics`, so free keys cannot lock registered users out.
    pub max_topics_per_user: usize,
    /// Limits on queued messages (SPEC §8).
    pub queue: QueueLimits,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("access denied")]
    AccessDenied,
    #[error("too many topics on this server ({0}); try again later")]
    TooManyTopics(usize),
    /// The user made as many live topics as one user may (SPEC §9).
    #[error("too many topics for {user} (limit {max})")]
    TooManyUserTopics { user: String, max: usize },
    /// The access list could not be stored; it was not changed.
    #[error("{0}")]
    Store(String),
    /// `access -p t LIST` on a public topic nobody is on: its list would
    /// end at once with the topic (SPEC §6).
    #[error("{0}: no client is on it, and a public topic keeps a list only while in use")]
    NotLive(String),
    /// NATS cannot be reached now (SPEC §14).
    #[error("broker unavailable")]
    Unavailable,
}

/// One topic as `ls` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub topic: TopicRef,
    pub access: Option<AccessList>,
    pub pubs: Vec<String>,
    pub subs: Vec<String>,
    pub pipes: Vec<String>,
    pub waiting_pubs: usize,
    /// Queued messages (SPEC §8) and their bytes.
    pub queued: usize,
    pub queued_bytes: u64,
}

/// Queued (messages, bytes, users who queued them) per full topic name.
pub(crate) type QueuedTotals = HashMap<String, (usize, u64, Vec<String>)>;

/// Who is asking, and how `ls` shows them (`USER@IP:PORT#N`).
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub identity: &'a Identity,
    pub label: &'a str,
}

/// What a front end asks for. `access`: `-a`, where `Some(empty)` clears.
#[derive(Debug, Clone, Copy)]
pub struct Open<'a> {
    pub topic: &'a TopicRef,
    pub client: Client<'a>,
    pub access: Option<&'a AccessList>,
}

/// A handle and whether its topic has an access list (others then reach
/// it by its full name, which the hint line shows).
pub struct Opened<T> {
    pub end: T,
    pub shared: bool,
}

/// Where a `pub` goes.
pub enum PubEnd {
    Live(Publisher),
    /// `pub -q` with no receiver: the input is stored as one message.
    Queued(QueuedPub),
}

/// Both ends of a `pipe`.
pub struct Pipe {
    pub publisher: Publisher,
    pub subscription: Subscription,
}

/// A `pub -q` about to store its input.
pub struct QueuedPub {
    broker: Broker,
    queue: Option<Arc<queue::Queue>>,
    topic: String,
    /// Whose quota the message counts against (SPEC §8).
    charge: quota::Charge,
}

impl QueuedPub {
    /// Reads `source` to its end and stores it as one message; returns how
    /// many messages then wait on the topic, on every node (those queued
    /// on other nodes as far as their last announcement says, as `ls`
    /// counts them).
    pub async fn store(self, source: &mut impl ByteSource) -> Result<usize, QueueError> {
        let queue = self.queue.ok_or(QueueError::NoStore)?;
        let stored = queue.enqueue(&self.topic, self.charge, source).await;
        if stored.is_err() {
            // A public list held for this message alone goes with it.
            self.broker.settle_held(Some(&self.topic)).await;
        }
        let here = stored?;
        let elsewhere = self
            .broker
            .memory()
            .peers()
            .and_then(|p| p.queued_totals().remove(&self.topic))
            .map_or(0, |(n, _, _)| n);
        Ok(here + elsewhere)
    }
}

#[derive(Debug)]
enum Backend {
    Memory(Arc<Memory>),
    /// The same memory, linked to other nodes.
    Nats(Arc<Memory>, Arc<nats::Core>),
}

#[derive(Debug)]
struct Inner {
    backend: Backend,
    /// Queued messages (none without a store).
    queue: Option<Arc<queue::Queue>>,
    /// Work that outlives the handle that started it (re-dispatching a
    /// dead worker's lines), so shutdown can wait for it.
    tasks: TaskTracker,
}

/// Cheap to clone; every clone is the same broker.
#[derive(Debug, Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

pub(crate) fn who(identity: &Identity) -> Who<'_> {
    Who {
        name: &identity.name,
        fingerprint: &identity.fingerprint,
        admin: identity.admin,
    }
}

/// A join deferred until the queue has been drained (owned, since the
/// reader keeps it).
#[derive(Debug, Clone)]
struct Deferred {
    topic: TopicRef,
    who: Identity,
    label: String,
    role: Role,
    public_access: Option<AccessList>,
}

impl Broker {
    /// A broker on the embedded backend (`connect` is the way onto NATS).
    /// With a store, access lists are loaded from it and written through,
    /// and queued messages are available; without one, both end with the
    /// process.
    pub fn open(config: BrokerConfig, store: Option<Store>) -> Result<Self, StoreError> {
        let lists = match &store {
            Some(store) => {
                let acls = AclStore::load_acls(store)?;
                Some((Arc::new(store.clone()) as Arc<dyn AclStore>, acls))
            }
            None => None,
        };
        Self::open_with(config, store, lists)
    }

    /// `open` with the access lists kept in `lists` (the store they are
    /// written to, and what it holds now) rather than in `store`.
    fn open_with(
        config: BrokerConfig,
        store: Option<Store>,
        lists: Option<(Arc<dyn AclStore>, HashMap<String, AccessList>)>,
    ) -> Result<Self, StoreError> {
        let queue = match store {
            Some(store) => {
                let messages: Arc<dyn MessageStore> = Arc::new(store);
                Some(Arc::new(queue::Queue::open(messages, config.queue)?))
            }
            None => None,
        };
        let (acl_store, acls) = match lists {
            Some((s, acls)) => (Some(s), acls),
            None => (None, HashMap::new()),
        };
        let backend = Backend::Memory(Memory::new(
            TopicLimits::from_config(&config),
            acl_store,
            acls,
        ));
        Ok(Broker {
            inner: Arc::new(Inner {
                backend,
                queue,
                tasks: TaskTracker::new(),
            }),
        })
    }

    /// A broker on NATS (SPEC §14), or on memory like `open`: connects,
    /// and runs the node's cluster tasks until `stop`. On NATS, private
    /// access lists are the cluster's (`nats/acls.rs`), loaded before the
    /// first client and watched for other nodes' changes.
    pub async fn connect(
        config: BrokerConfig,
        store: Option<Store>,
        stop: CancellationToken,
    ) -> anyhow::Result<Self> {
        let opts = match &config.backend {
            BackendKind::Memory => return Ok(Self::open(config, store)?),
            BackendKind::Nats(opts) => opts.clone(),
        };
        let memory_config = BrokerConfig {
            backend: BackendKind::Memory,
            ..config
        };
        let dialed = nats::dial(&opts).await?;
        let local = store.clone().map(|s| Arc::new(s) as Arc<dyn AclStore>);
        let acl_kv = dialed.bucket(nats::acls::ACL_BUCKET).await?;
        let (kv_acls, acls) = nats::acls::KvAcls::open(acl_kv, local).await?;
        let lists = Some((Arc::clone(&kv_acls) as Arc<dyn AclStore>, acls));
        let broker = Self::open_with(memory_config, store, lists)?;
        let Ok(inner) = Arc::try_unwrap(broker.inner) else {
            anyhow::bail!("a new broker is shared before it starts");
        };
        let memory = match &inner.backend {
            Backend::Memory(m) | Backend::Nats(m, _) => Arc::clone(m),
        };
        let acl_kv = kv_acls.bucket();
        tokio::spawn(nats::acls::watch(
            kv_acls,
            Arc::clone(&memory),
            dialed.node().to_string(),
            stop.clone(),
        ));
        let core =
            nats::Core::start(dialed, Arc::clone(&memory), inner.queue.clone(), stop).await?;
        core.probed_in(acl_kv);
        Ok(Broker {
            inner: Arc::new(Inner {
                backend: Backend::Nats(memory, core),
                queue: inner.queue,
                tasks: inner.tasks,
            }),
        })
    }

    /// This node's id among the nodes sharing NATS (`None` on the memory
    /// backend).
    pub fn node_id(&self) -> Option<&str> {
        match &self.inner.backend {
            Backend::Memory(_) => None,
            Backend::Nats(_, core) => Some(&core.node),
        }
    }

    /// A KV bucket every node shares (`None` on the memory backend), made
    /// if missing: for state other parts of the server keep cluster-wide,
    /// such as HTTP tokens (SPEC §14).
    pub async fn shared_bucket(
        &self,
        name: &str,
    ) -> Option<Result<async_nats::jetstream::kv::Store, async_nats::Error>> {
        match &self.inner.backend {
            Backend::Memory(_) => None,
            Backend::Nats(_, core) => Some(core.shared_bucket(name).await),
        }
    }

    fn memory(&self) -> &Arc<Memory> {
        match &self.inner.backend {
            Backend::Memory(m) | Backend::Nats(m, _) => m,
        }
    }

    /// Whether the broker can take new commands now (`/healthz`).
    pub fn available(&self) -> bool {
        match &self.inner.backend {
            Backend::Memory(_) => true,
            Backend::Nats(_, core) => core.available(),
        }
    }

    /// New commands fail at once while NATS is out of reach.
    fn check_available(&self) -> Result<(), BrokerError> {
        match self.available() {
            true => Ok(()),
            false => Err(BrokerError::Unavailable),
        }
    }

    /// A private topic's `-a` is stored before anything else happens (a
    /// public one's is set with the join: it lives only while someone is on
    /// the topic). Returns the list to set with the join.
    async fn settle_access<'a>(
        &self,
        req: &Open<'a>,
    ) -> Result<Option<&'a AccessList>, BrokerError> {
        match (req.access, &req.topic.namespace) {
            (Some(list), Namespace::User(_)) => {
                self.memory()
                    .set_private_access(req.topic, req.client.identity, list)
                    .await?;
                Ok(None)
            }
            (list, _) => Ok(list),
        }
    }

    fn join(&self, spec: &JoinSpec<'_>) -> Result<JoinOutcome, BrokerError> {
        self.memory().join(spec)
    }

    fn spec<'a>(
        req: &Open<'a>,
        role: Role,
        public_access: Option<&'a AccessList>,
        mode: JoinMode,
    ) -> JoinSpec<'a> {
        JoinSpec {
            topic: req.topic,
            who: req.client.identity,
            label: req.client.label,
            role,
            public_access,
            mode,
            receiver_chunks: RECEIVER_QUEUE_CHUNKS,
        }
    }

    fn subscription(&self, joined: Joined, ends_with_senders: bool) -> Option<Subscription> {
        let rx = joined.rx?;
        let revoked = joined.registration.revoked.clone();
        Some(Subscription::new(SubscriptionParts {
            member: joined.registration.id,
            guard: joined.registration,
            rx,
            senders: joined.senders,
            at_join: joined.senders_at_join,
            ends_with_senders,
            skipped: joined.skipped,
            tasks: self.inner.tasks.clone(),
            revoked,
        }))
    }

    /// `pub`: live on the topic, or — with `queue` (`pub -q`) and no
    /// receiver — a message to store. The choice is made under the topic's
    /// lock, so a `pub -q` either delivers live or queues, never both or
    /// neither.
    pub async fn open_pub(
        &self,
        req: Open<'_>,
        queue: bool,
    ) -> Result<Opened<PubEnd>, BrokerError> {
        self.check_available()?;
        let public_access = self.settle_access(&req).await?;
        let mode = if queue {
            JoinMode::IfReceivers
        } else {
            JoinMode::Join
        };
        match self.join(&Self::spec(&req, Role::Pub, public_access, mode))? {
            JoinOutcome::Joined(j) => Ok(Opened {
                shared: j.shared,
                end: PubEnd::Live(Publisher::new(j.registration, false)),
            }),
            JoinOutcome::Granted { shared } => {
                // A public `-a` outlives this pub with its message (SPEC §6).
                if let (Some(list), Namespace::Public) = (public_access, &req.topic.namespace) {
                    let me = &req.client.identity.name;
                    self.memory().hold_public(req.topic, list, me).await?;
                }
                Ok(Opened {
                    shared: shared || public_access.is_some_and(|l| !l.is_empty()),
                    end: PubEnd::Queued(QueuedPub {
                        broker: self.clone(),
                        queue: self.inner.queue.clone(),
                        topic: req.topic.full.clone(),
                        charge: quota::Charge::for_topic(req.topic, req.client.identity),
                    }),
                })
            }
        }
    }

    /// `sub` by name (queued messages first, then live data) or by pattern
    /// (live data of every matching topic it may use, now and later).
    pub async fn open_sub(
        &self,
        req: Open<'_>,
        keep_alive: bool,
        lossy: bool,
    ) -> Result<Opened<Reader>, BrokerError> {
        self.check_available()?;
        let role = Role::Sub { keep_alive, lossy };
        if is_pattern(&req.topic.local) {
            let joined = self.memory().join_pattern(
                req.topic,
                req.client.identity,
                req.client.label,
                lossy,
                RECEIVER_QUEUE_CHUNKS,
            );
            let Some(sub) = self.subscription(joined, false) else {
                return Err(BrokerError::Store("a pattern sub without a queue".into()));
            };
            return Ok(Opened {
                end: Reader::live(sub),
                shared: false,
            });
        }
        let public_access = self.settle_access(&req).await?;
        // Watch before the first look at the queue, so a message linked in
        // between is never missed.
        let changes = self.queue_changes();
        let shared = match self.join(&Self::spec(&req, role, public_access, JoinMode::Check))? {
            JoinOutcome::Granted { shared } => shared,
            JoinOutcome::Joined(_) => false,
        };
        let deferred = Deferred {
            topic: req.topic.clone(),
            who: req.client.identity.clone(),
            label: req.client.label.to_string(),
            role,
            // Given again: a new public topic keeps its list only once
            // someone is on it.
            public_access: public_access.cloned(),
        };
        let mut reader = Reader::queued(self.clone(), deferred, keep_alive, changes);
        reader.drain().await?;
        Ok(Opened {
            end: reader,
            shared,
        })
    }

    /// May a deferred sub still read its topic's queue (the list may have
    /// changed since it opened)?
    fn may_read(&self, d: &Deferred) -> Result<(), BrokerError> {
        let spec = JoinSpec {
            topic: &d.topic,
            who: &d.who,
            label: &d.label,
            role: d.role,
            public_access: None,
            mode: JoinMode::Check,
            receiver_chunks: RECEIVER_QUEUE_CHUNKS,
        };
        self.join(&spec).map(|_| ())
    }

    /// Joins a deferred sub as a live receiver.
    fn join_deferred(&self, d: &Deferred) -> Result<Option<Subscription>, BrokerError> {
        let spec = JoinSpec {
            topic: &d.topic,
            who: &d.who,
            label: &d.label,
            role: d.role,
            public_access: d.public_access.as_ref(),
            mode: JoinMode::Join,
            receiver_chunks: RECEIVER_QUEUE_CHUNKS,
        };
        let ends = matches!(
            d.role,
            Role::Sub {
                keep_alive: false,
                ..
            }
        );
        match self.join(&spec)? {
            JoinOutcome::Joined(j) => Ok(self.subscription(j, ends)),
            JoinOutcome::Granted { .. } => Ok(None),
        }
    }

    /// `pipe`: a sender and a receiver on the same topic, together.
    pub async fn open_pipe(
        &self,
        req: Open<'_>,
        replay: bool,
    ) -> Result<Opened<Pipe>, BrokerError> {
        self.check_available()?;
        let public_access = self.settle_access(&req).await?;
        let role = Role::Pipe { replay };
        let JoinOutcome::Joined(j) =
            self.join(&Self::spec(&req, role, public_access, JoinMode::Join))?
        else {
            return Err(BrokerError::Store("a pipe was not joined".into()));
        };
        let shared = j.shared;
        let registration = Arc::clone(&j.registration);
        let Some(subscription) = self.subscription(j, false) else {
            return Err(BrokerError::Store("a pipe without a queue".into()));
        };
        Ok(Opened {
            end: Pipe {
                publisher: Publisher::new(registration, replay),
                subscription,
            },
            shared,
        })
    }

    /// Topics `viewer` may see (SPEC §4.4), sorted by full name.
    pub async fn list(&self, viewer: &Identity) -> Vec<TopicListing> {
        let mut queued = self
            .inner
            .queue
            .as_ref()
            .map(|q| q.totals())
            .unwrap_or_default();
        if let Some(peers) = self.memory().peers() {
            for (topic, (n, bytes, users)) in peers.queued_totals() {
                let t = queued.entry(topic).or_default();
                t.0 += n;
                t.1 += bytes;
                for u in users {
                    if !t.2.contains(&u) {
                        t.2.push(u);
                    }
                }
            }
        }
        let remote = match &self.inner.backend {
            Backend::Memory(_) => memory::RemoteViews::new(),
            Backend::Nats(_, core) => core.remote_views(),
        };
        self.memory().list(viewer, &queued, &remote)
    }

    /// A topic's access list, for its owner (`access TOPIC`, SPEC §6):
    /// whoever may change the list may read it.
    pub async fn access(
        &self,
        topic: &TopicRef,
        who_is: &Identity,
    ) -> Result<Option<AccessList>, BrokerError> {
        let (list, owner) = self.memory().access_list(topic);
        let w = who(who_is);
        if !crate::topic::may_set_access(topic, list.is_some(), owner.as_deref(), &w) {
            return Err(BrokerError::AccessDenied);
        }
        Ok(list)
    }

    /// Sets (an empty list clears) a topic's access list: a private one
    /// durably before it takes effect, a public one on the live topic.
    /// Either way clients no longer allowed are taken off at once.
    pub async fn set_access(
        &self,
        topic: &TopicRef,
        who_is: &Identity,
        list: &AccessList,
    ) -> Result<(), BrokerError> {
        match topic.namespace {
            Namespace::User(_) => self.memory().set_private_access(topic, who_is, list).await,
            Namespace::Public => self.memory().set_public_access(topic, who_is, list).await,
        }
    }

    /// The live counts of a topic by full name (`None`: no such live topic).
    /// Lets tests and metrics wait on a condition instead of sleeping.
    pub fn counts(&self, full: &str) -> Option<Counts> {
        self.memory().counts(full)
    }

    /// Pubs waiting for a receiver on a topic (0 when there is no such topic).
    pub fn waiting_pubs(&self, full: &str) -> usize {
        self.memory().waiting_pubs(full)
    }

    /// How many live topics there are (metrics).
    pub fn topic_count(&self) -> usize {
        self.memory().topic_count()
    }

    /// Queued messages and bytes on a topic (for tests and `ls`).
    pub fn queued(&self, topic: &str) -> (usize, u64) {
        self.inner
            .queue
            .as_ref()
            .and_then(|q| q.totals().remove(topic))
            .map_or((0, 0), |(n, b, _)| (n, b))
    }

    /// Queued messages of a topic being read right now (for tests).
    pub fn claimed(&self, topic: &str) -> usize {
        self.inner.queue.as_ref().map_or(0, |q| q.claimed(topic))
    }

    /// The oldest queued message of `topic` no other receiver is reading.
    /// Front ends read through `open_sub`; public only for tests that
    /// drain a queue without reading every byte.
    #[doc(hidden)]
    pub fn claim(&self, topic: &str) -> Option<Claim> {
        self.inner.queue.as_ref()?.claim(topic)
    }

    /// Changes whenever a queued message becomes available to claim.
    fn queue_changes(&self) -> watch::Receiver<u64> {
        match &self.inner.queue {
            Some(q) => q.changes(),
            // Never changes: the sender is dropped at once.
            None => watch::channel(0).1,
        }
    }

    /// Lets go of public lists held for queued messages that are all gone
    /// (of `only`, or of every topic).
    async fn settle_held(&self, only: Option<&str>) {
        let Some(queue) = &self.inner.queue else {
            return;
        };
        self.memory()
            .release_held(only, |name| queue.has_messages(name))
            .await;
    }

    /// Work started by handles that are gone (see `Inner::tasks`).
    pub fn tasks(&self) -> &TaskTracker {
        &self.inner.tasks
    }

    /// Removes expired messages now and every minute until `stop`.
    pub async fn expire_until(&self, stop: CancellationToken) {
        let Some(queue) = self.inner.queue.clone() else {
            return;
        };
        let mut every = tokio::time::interval(EXPIRY_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stop.cancelled() => return,
            }
            let removed = queue.expire().await;
            if removed > 0 {
                tracing::info!(removed, "expired queued messages");
                self.settle_held(None).await;
            }
        }
    }
}
