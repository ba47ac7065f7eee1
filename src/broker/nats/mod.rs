//! The several-nodes backend (SPEC §14): each node keeps its clients in
//! the in-memory backend and reaches the others through NATS.
//!
//! What crosses nodes, and how (design/cluster.md, option A):
//! - who is on which topic: a view per (topic, node) in the JetStream KV
//!   bucket `sp_presence`, watched by every node (`presence`);
//! - whether a node is alive: heartbeats in `sp_nodes`;
//! - live bytes: core NATS, one numbered stream per (topic, sending node,
//!   receiving node) with a credit window (`forward`, `bridge`), so a slow
//!   receiver on one node paces a sender on another and a frame lost in a
//!   NATS failover is sent again;
//! - pattern subs: a node adopts a topic others send on that a local
//!   pattern matches (`memory::adopt`), so its view shows the receiver;
//! - round-robin: the sending node picks one worker, a link counting as
//!   that node's workers; a line caught between nodes when a worker leaves
//!   is placed again (`loose`), never copied;
//! - private topics' access lists: the KV bucket `sp_acl`, loaded before
//!   the first client and watched (`acls`); a public topic's list travels
//!   in the views. (HTTP tokens and monitors use `shared_bucket`:
//!   `tokens/shared.rs`, `monitor/shared.rs`.)
//! - queued messages: each node's stay in its store; the KV bucket
//!   `sp_queued` says where they wait, and a sub on another node borrows
//!   the oldest (`queued`, `lending`).
//!
//! The window is per link, not per publisher as the design note has it:
//! every sender on the topic already shares the link's slot queue, in
//! order, as they share a local receiver's, so one window per link paces
//! them all and keeps their lines whole.

pub(super) mod acls;
mod bridge;
pub(super) mod follow;
mod forward;
mod lending;
mod loose;
pub(super) mod names;
mod presence;
mod queued;
mod window;
mod wire;

pub use presence::NODE_TTL;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use futures_util::future::BoxFuture;

use super::borrow::Borrowed;
use super::link::Slot;
use super::memory::{Memory, RemoteViews};
use super::peers::{Departure, Link, Peers, View, ViewKey};
use super::queue::{Elsewhere, Queue, QueueError};
use super::quota::Usage;
use super::{QueuedTotals, RECEIVER_QUEUE_CHUNKS};
use crate::topic::TopicRef;
use presence::Liveness;
use wire::Credit;

const PRESENCE_BUCKET: &str = "sp_presence";
const NODES_BUCKET: &str = "sp_nodes";
const QUEUED_BUCKET: &str = "sp_queued";

/// How to reach NATS (`--broker nats://…` and the `--nats-*` options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsOptions {
    /// `nats://host:port` (or `tls://…`) of one or more servers.
    pub urls: Vec<String>,
    /// A `.creds` file (JWT and NKey seed), as `nats` CLI users have.
    pub creds: Option<PathBuf>,
    /// CA certificates to trust for TLS, PEM.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and its key, PEM, for mutual TLS.
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// Replicas of the KV buckets (at most the cluster's size).
    pub replicas: usize,
}

/// What a node's own view of a topic still needs: written again, or a last
/// time and withdrawn.
#[derive(Debug)]
pub(super) enum Pending {
    Live,
    Ended(View),
}

#[derive(Debug, Default)]
struct Remote {
    /// Views by full topic name.
    by_topic: HashMap<String, BTreeMap<ViewKey, View>>,
    /// Topic and view of each KV key.
    by_key: HashMap<String, (String, ViewKey)>,
    /// Last views still in the bucket (`View::ended`) and their nodes, so
    /// a gone node's are deleted with the rest of its keys.
    lingering: HashMap<String, String>,
    liveness: Liveness,
}

#[derive(Debug)]
pub(crate) struct Core {
    pub node: String,
    pub client: async_nats::Client,
    /// For buckets other parts of the server keep (`shared_bucket`).
    js: jetstream::Context,
    replicas: usize,
    pub memory: Arc<Memory>,
    presence: kv::Store,
    nodes: kv::Store,
    /// Per topic and node, what waits in its queue (`queued`).
    queued: kv::Store,
    /// Buckets besides our own that a follower writes probes in (access
    /// lists, `shared_bucket`s): a gone node's probe is deleted from each.
    probed: Mutex<Vec<kv::Store>>,
    /// This node's queue (none without a store).
    queue: Option<Arc<Queue>>,
    /// Other nodes' queue summaries.
    held: Mutex<queued::Held>,
    /// This node's messages lent to other nodes' subs.
    lent: lending::Lent,
    /// When our own heartbeat last came back through the nodes watch.
    self_heard: Mutex<Option<Instant>>,
    remote: Mutex<Remote>,
    dirty: Mutex<HashMap<(String, u64), Pending>>,
    dirty_notify: Notify,
    credits: Mutex<HashMap<u64, watch::Sender<Credit>>>,
    streams: bridge::Streams,
    next_stream: AtomicU64,
    stop: CancellationToken,
    me: Weak<Core>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain bookkeeping: still whole after a panic elsewhere.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach NATS at {urls}: {reason}")]
    Unreachable { urls: String, reason: String },
    #[error(
        "NATS at {urls} has no JetStream (sshpipe needs nats-server >= 2.11 with -js): {reason}"
    )]
    NoJetStream { urls: String, reason: String },
    #[error(
        "NATS at {urls} refused this node's login (authorization violation): check the URL's user and password, --nats-creds or the client certificate"
    )]
    Refused { urls: String },
    /// A `--nats-creds`, `--nats-ca`, `--nats-cert` or `--nats-key` file.
    #[error("cannot read {path}: {reason}")]
    File { path: String, reason: String },
}

/// A connection to NATS with JetStream, before this node's tasks start:
/// the buckets the broker is built with are opened from it first.
#[derive(Debug)]
pub(crate) struct Dialed {
    node: String,
    urls: String,
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
}

/// The `user` and `pw` of a `scheme://user:pw@host:port` URL.
fn url_login(url: &str) -> Option<(String, String)> {
    let (_, rest) = url.split_once("://")?;
    let (login, _) = rest.rsplit_once('@')?;
    let (user, pw) = login.split_once(':')?;
    Some((user.to_string(), pw.to_string()))
}

/// Connects to NATS as `opts` say.
pub(crate) async fn dial(opts: &NatsOptions) -> Result<Dialed, ConnectError> {
    // Shown in errors and logs: never the password of a `user:pw@` URL.
    let urls = crate::config::BrokerUrl::Nats(opts.urls.clone()).to_string();
    let node = names::new_node_id();
    let mut co = async_nats::ConnectOptions::new()
        .name(format!("sshpipe {node}"))
        .ping_interval(Duration::from_secs(2))
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|n| Duration::from_millis(100 * (n as u64).min(10)));
    // async-nats does not log in with a URL's own `user:pw@`: pass it on.
    if let Some((user, pw)) = opts.urls.iter().find_map(|u| url_login(u)) {
        co = co.user_and_password(user, pw);
    }
    if let Some(path) = &opts.creds {
        co = co
            .credentials_file(path)
            .await
            .map_err(|e| ConnectError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
    }
    // async-nats names no file when one is missing ("TLS error: No such
    // file or directory"): each is read once here to say which.
    let tls_files = opts
        .tls_ca
        .iter()
        .chain(opts.tls_cert.iter().flat_map(|(c, k)| [c, k]));
    for path in tls_files {
        if let Err(e) = tokio::fs::read(path).await {
            return Err(ConnectError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    }
    if let Some(ca) = &opts.tls_ca {
        co = co.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let Some((cert, key)) = &opts.tls_cert {
        co = co.add_client_certificate(cert.clone(), key.clone());
    }
    let client = co
        .connect(opts.urls.as_slice())
        .await
        .map_err(|e| match e.kind() {
            async_nats::ConnectErrorKind::AuthorizationViolation => {
                ConnectError::Refused { urls: urls.clone() }
            }
            _ => ConnectError::Unreachable {
                urls: urls.clone(),
                reason: e.to_string(),
            },
        })?;
    let js = jetstream::new(client.clone());
    Ok(Dialed {
        node,
        urls,
        client,
        js,
        replicas: opts.replicas,
    })
}

impl Dialed {
    /// This node's id in the cluster.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The bucket `name` (file storage, the configured replicas), made if
    /// it is missing.
    pub async fn bucket(&self, name: &str) -> Result<kv::Store, ConnectError> {
        bucket(&self.client, &self.js, name, None, self.replicas)
            .await
            .map_err(|e| ConnectError::NoJetStream {
                urls: self.urls.clone(),
                reason: e.to_string(),
            })
    }
}

impl Core {
    /// Makes this node's buckets if they are missing, and starts its
    /// tasks; they end with `stop`.
    pub async fn start(
        dialed: Dialed,
        memory: Arc<Memory>,
        queue: Option<Arc<Queue>>,
        stop: CancellationToken,
    ) -> Result<Arc<Core>, ConnectError> {
        let Dialed {
            node,
            urls,
            client,
            js,
            replicas,
        } = dialed;
        let unreachable = |e: &dyn std::fmt::Display| ConnectError::Unreachable {
            urls: urls.clone(),
            reason: e.to_string(),
        };
        let no_js = |e: &dyn std::fmt::Display| ConnectError::NoJetStream {
            urls: urls.clone(),
            reason: e.to_string(),
        };
        let presence = bucket(&client, &js, PRESENCE_BUCKET, None, replicas)
            .await
            .map_err(|e| no_js(&e))?;
        let nodes = bucket(
            &client,
            &js,
            NODES_BUCKET,
            Some(presence::NODE_TTL * 2),
            replicas,
        )
        .await
        .map_err(|e| no_js(&e))?;
        let queued = bucket(&client, &js, QUEUED_BUCKET, None, replicas)
            .await
            .map_err(|e| no_js(&e))?;
        let lend_requests = client
            .subscribe(names::lend_subject(&node))
            .await
            .map_err(|e| unreachable(&e))?;
        let data = client
            .subscribe(names::data_subject(&node))
            .await
            .map_err(|e| unreachable(&e))?;
        let credits = client
            .subscribe(names::credit_subject(&node))
            .await
            .map_err(|e| unreachable(&e))?;
        // Interest is in place before anyone can learn of this node.
        client.flush().await.map_err(|e| unreachable(&e))?;
        let core = Arc::new_cyclic(|me| Core {
            node,
            client,
            js,
            replicas,
            memory: Arc::clone(&memory),
            presence,
            nodes,
            queued,
            probed: Mutex::default(),
            queue: queue.clone(),
            held: Mutex::default(),
            lent: lending::Lent::default(),
            self_heard: Mutex::default(),
            remote: Mutex::default(),
            dirty: Mutex::default(),
            dirty_notify: Notify::new(),
            credits: Mutex::default(),
            streams: bridge::Streams::default(),
            next_stream: AtomicU64::new(1),
            stop,
            me: me.clone(),
        });
        memory.set_peers(&(Arc::clone(&core) as Arc<dyn Peers>));
        core.spawn(bridge::run(Arc::clone(&core), data));
        core.spawn(read_credits(Arc::clone(&core), credits));
        core.spawn(presence::write_views(Arc::clone(&core)));
        core.spawn(presence::watch_views(Arc::clone(&core)));
        core.spawn(presence::watch_nodes(Arc::clone(&core)));
        core.spawn(presence::heartbeat(Arc::clone(&core)));
        core.spawn(lending::serve(Arc::clone(&core), lend_requests));
        core.spawn(queued::watch(Arc::clone(&core)));
        if let Some(queue) = queue {
            // Quotas count what the user has queued on the live nodes too.
            // Weak: the queue must not keep a stopped node alive.
            let weak = Arc::downgrade(&core);
            queue.set_elsewhere(Elsewhere(Box::new(move |user| {
                weak.upgrade().map_or_else(Usage::default, |core| {
                    let remote = lock(&core.remote);
                    let held = lock(&core.held);
                    held.usage(user, |n| remote.liveness.alive(n))
                })
            })));
            core.spawn(queued::publish(Arc::clone(&core), queue));
        }
        tracing::info!(node = %core.node, urls, "joined the cluster");
        Ok(core)
    }

    /// Runs `work`, one of this node's own tasks, until it ends or the node
    /// stops, whichever is first: at the stop it is dropped with the
    /// `Arc<Core>` it holds, so a stopped node is freed (its store let go)
    /// instead of kept alive by tasks waiting on subscriptions it owns.
    pub(super) fn spawn(&self, work: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = work => {}
            }
        });
    }

    /// NATS is reachable now (new commands fail with `broker unavailable`
    /// while it is not).
    pub fn available(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A bucket of the cluster's, made if missing (file storage, the
    /// configured replicas): for state the rest of the server shares
    /// between nodes.
    pub async fn shared_bucket(&self, name: &str) -> Result<kv::Store, async_nats::Error> {
        let kv = bucket(&self.client, &self.js, name, None, self.replicas).await?;
        self.probed_in(kv.clone());
        Ok(kv)
    }

    /// `kv` is followed here (so also by other nodes): a gone node's probe
    /// in it is deleted when the node is reaped.
    pub fn probed_in(&self, kv: kv::Store) {
        let mut probed = lock(&self.probed);
        if !probed.iter().any(|b| b.name == kv.name) {
            probed.push(kv);
        }
    }

    /// Other nodes' views, for `ls`.
    pub fn remote_views(&self) -> RemoteViews {
        let remote = lock(&self.remote);
        remote
            .by_topic
            .iter()
            .map(|(t, views)| (t.clone(), views.values().cloned().collect()))
            .collect()
    }

    fn take_dirty(&self) -> Vec<((String, u64), Pending)> {
        lock(&self.dirty).drain().collect()
    }

    fn put_back_dirty(&self, failed: Vec<((String, u64), Pending)>) {
        let mut dirty = lock(&self.dirty);
        for (k, p) in failed {
            // A newer entry (an `Ended` after a `Live`) wins.
            dirty.entry(k).or_insert(p);
        }
    }

    fn mark(&self, topic: &str, epoch: u64) {
        lock(&self.dirty)
            .entry((topic.to_string(), epoch))
            .or_insert(Pending::Live);
        self.dirty_notify.notify_one();
    }

    fn rewrite_all(&self) {
        for (topic, epoch) in self.memory.topic_epochs() {
            self.mark(&topic, epoch);
        }
    }

    fn rewrite_own(&self, _key: &str) {
        // Keys are not decoded back into names; this is rare (a node that
        // thought us gone), so write every live view again.
        self.rewrite_all();
    }

    fn heard_from(&self, node: &str) {
        if node == self.node {
            *lock(&self.self_heard) = Some(Instant::now());
        } else if names::is_node_id(node) {
            lock(&self.remote).liveness.heard(node, Instant::now());
        }
    }

    /// When this node's own heartbeat last came back through the watch.
    fn self_heard(&self) -> Option<Instant> {
        *lock(&self.self_heard)
    }

    fn grace_all(&self) {
        lock(&self.remote).liveness.grace_all(Instant::now());
    }

    fn remote_put(&self, kv_key: String, key: ViewKey, view: View) {
        let topic = view.topic.clone();
        {
            let mut r = lock(&self.remote);
            r.liveness.heard(&key.node, Instant::now());
            r.by_key.insert(kv_key, (topic.clone(), key.clone()));
            r.by_topic
                .entry(topic.clone())
                .or_default()
                .insert(key.clone(), view.clone());
        }
        self.memory
            .apply_remote(&topic, key, Some(view), Departure::Ended);
    }

    /// A topic's last view on another node: as its last put and its
    /// removal, seen at once — also by a node that missed the topic's
    /// whole life there (its watch was down), but not for a node gone (a
    /// dead node's leftovers must not end anything here).
    fn remote_ended(&self, kv_key: String, key: ViewKey, view: View) {
        let node = key.node.clone();
        let apply = {
            let r = lock(&self.remote);
            r.by_key.contains_key(&kv_key) || r.liveness.alive(&node)
        };
        if apply {
            self.remote_put(kv_key.clone(), key, view);
            self.remote_remove(&kv_key, Departure::Ended);
        }
        lock(&self.remote).lingering.insert(kv_key, node);
    }

    /// A last view was deleted after its while.
    fn remote_deleted(&self, kv_key: &str) {
        self.remote_remove(kv_key, Departure::Ended);
        lock(&self.remote).lingering.remove(kv_key);
    }

    fn remote_remove(&self, kv_key: &str, departure: Departure) {
        let removed = {
            let mut r = lock(&self.remote);
            let Some((topic, key)) = r.by_key.remove(kv_key) else {
                return;
            };
            if let Some(views) = r.by_topic.get_mut(&topic) {
                views.remove(&key);
                if views.is_empty() {
                    r.by_topic.remove(&topic);
                }
            }
            (topic, key)
        };
        self.memory
            .apply_remote(&removed.0, removed.1, None, departure);
    }

    fn expired_nodes(&self, ttl: Duration) -> Vec<String> {
        lock(&self.remote).liveness.expire(Instant::now(), ttl)
    }

    /// Drops a gone node's clients from every topic; returns its KV keys.
    fn reap(&self, node: &str) -> Vec<String> {
        let keys: Vec<String> = lock(&self.remote)
            .by_key
            .iter()
            .filter(|(_, (_, k))| k.node == node)
            .map(|(kv, _)| kv.clone())
            .collect();
        for k in &keys {
            self.remote_remove(k, Departure::NodeLost);
        }
        let mut keys = keys;
        lock(&self.remote).lingering.retain(|k, n| {
            if n == node {
                keys.push(k.clone());
            }
            n != node
        });
        self.streams.drop_node(node);
        self.lent.drop_borrower(node);
        let queued_keys = lock(&self.held).drop_node(node);
        let queued = self.queued.clone();
        let mut probed = vec![queued.clone(), self.presence.clone(), self.nodes.clone()];
        probed.extend(lock(&self.probed).iter().cloned());
        let probe = follow::probe_key(node);
        tokio::spawn(async move {
            for k in queued_keys {
                let _ = queued.delete(&k).await;
            }
            for kv in probed {
                let _ = kv.delete(&probe).await;
            }
        });
        keys
    }

    /// Some other node with receivers on `topic`, for a loose line.
    fn node_with_receivers(&self, topic: &str) -> Option<String> {
        let remote = lock(&self.remote);
        let views = remote.by_topic.get(topic)?;
        views
            .iter()
            .find(|(_, v)| v.receivers > 0)
            .map(|(k, _)| k.node.clone())
    }

    fn forget_stream(&self, stream: u64) {
        lock(&self.credits).remove(&stream);
    }
}

/// How long a starting node waits for JetStream to answer: a cluster
/// started at the same moment (`docker compose up`) elects its meta leader
/// in a few seconds, and until then every request has "no responders".
pub(super) const JETSTREAM_WAIT: Duration = Duration::from_secs(30);

/// The bucket `name`, made if it is missing; retried while JetStream is
/// not answering yet, for at most `JETSTREAM_WAIT`.
async fn bucket(
    client: &async_nats::Client,
    js: &jetstream::Context,
    name: &str,
    max_age: Option<Duration>,
    replicas: usize,
) -> Result<kv::Store, async_nats::Error> {
    let start = tokio::time::Instant::now();
    let mut warned = false;
    loop {
        match open_bucket(client, js, name, max_age, replicas).await {
            Ok(store) => return Ok(store),
            Err(e) if start.elapsed() < JETSTREAM_WAIT => {
                if !warned {
                    tracing::warn!(error = %e, bucket = name, "JetStream is not answering yet; retrying");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn open_bucket(
    client: &async_nats::Client,
    js: &jetstream::Context,
    name: &str,
    max_age: Option<Duration>,
    replicas: usize,
) -> Result<kv::Store, async_nats::Error> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    // One nats-server for a try-out is not a cluster: one replica rather
    // than none at all. In a cluster, replicas stay as asked, so a request
    // that failed only because JetStream was still electing is retried
    // rather than settled with a single copy.
    let replicas = match client.server_info().cluster {
        Some(_) => replicas.max(1),
        None => {
            if replicas > 1 {
                tracing::warn!(bucket = name, "one NATS server, not a cluster: 1 replica");
            }
            1
        }
    };
    let config = kv::Config {
        bucket: name.to_string(),
        history: 1,
        max_age: max_age.unwrap_or_default(),
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    };
    Ok(js.create_key_value(config).await?)
}

/// Hands credits for this node's forwarders to them.
async fn read_credits(core: Arc<Core>, mut sub: async_nats::Subscriber) {
    use futures_util::StreamExt;
    while let Some(msg) = sub.next().await {
        let Some(c) = Credit::decode(msg.payload) else {
            continue;
        };
        if let Some(tx) = lock(&core.credits).get(&c.stream) {
            tx.send_modify(|cur| {
                cur.processed = cur.processed.max(c.processed);
                cur.received = cur.received.max(c.received);
                cur.resend = c.resend;
            });
        }
    }
}

impl Peers for Core {
    fn changed(&self, topic: &str, epoch: u64) {
        self.mark(topic, epoch);
    }

    fn ended(&self, last: View, epoch: u64) {
        lock(&self.dirty).insert((last.topic.clone(), epoch), Pending::Ended(last));
        self.dirty_notify.notify_one();
    }

    fn views(&self, topic: &str) -> Vec<(ViewKey, View)> {
        lock(&self.remote)
            .by_topic
            .get(topic)
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    fn orphan(&self, topic: &str, line: bytes::Bytes) {
        if let Some(core) = self.me.upgrade() {
            let topic = topic.to_string();
            tokio::spawn(async move { loose::place(&core, &topic, line, 0).await });
        }
    }

    fn topics_with_senders(&self) -> Vec<String> {
        lock(&self.remote)
            .by_topic
            .iter()
            .filter(|(_, views)| views.values().any(|v| v.senders > 0))
            .map(|(t, _)| t.clone())
            .collect()
    }

    fn link(&self, topic: &TopicRef, node: &str, member: u64) -> Link {
        let (slot, rx) = Slot::new(member, false, RECEIVER_QUEUE_CHUNKS, &Arc::default());
        let stop = CancellationToken::new();
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let (tx, credits) = watch::channel(Credit {
            stream,
            ..Credit::default()
        });
        lock(&self.credits).insert(stream, tx);
        if let Some(core) = self.me.upgrade() {
            let f = forward::Forwarder {
                core,
                to: node.to_string(),
                topic: topic.full.clone(),
                stream,
                rx,
                credits,
                stop: stop.clone(),
            };
            tokio::spawn(f.run());
        }
        Link {
            slot,
            _stop: stop.drop_guard(),
        }
    }

    fn queued_elsewhere(&self, topic: &str) -> Option<(String, u64)> {
        let remote = lock(&self.remote);
        let held = lock(&self.held);
        held.oldest(topic, |n| remote.liveness.alive(n))
    }

    fn borrow(
        &self,
        topic: &str,
        node: &str,
        who: &crate::identity::Identity,
    ) -> BoxFuture<'static, Result<Option<Borrowed>, QueueError>> {
        let lender = lending::NatsLender {
            client: self.client.clone(),
        };
        let ask = lending::Ask::Claim {
            topic: topic.to_string(),
            from: self.node.clone(),
            user: who.name.clone(),
            fingerprint: who.fingerprint.clone(),
            admin: who.admin,
        };
        Box::pin(lender.borrow(ask, node.to_string()))
    }

    fn queued_totals(&self) -> QueuedTotals {
        let remote = lock(&self.remote);
        let held = lock(&self.held);
        held.totals(|n| remote.liveness.alive(n))
    }
}

#[cfg(test)]
mod tests {
    use super::url_login;

    #[test]
    fn a_urls_login_is_found_and_only_there() {
        let login = |u: &str| url_login(u).map(|(a, b)| format!("{a}/{b}"));
        assert_eq!(
            login("nats://sshpipe:s3cret@127.0.0.1:4222").as_deref(),
            Some("sshpipe/s3cret")
        );
        assert_eq!(login("tls://u:p@w@h:4443").as_deref(), Some("u/p@w"));
        assert_eq!(login("nats://h1:4222"), None);
        assert_eq!(login("nats://token@h1:4222"), None);
        assert_eq!(login("h1:4222"), None);
    }
}
