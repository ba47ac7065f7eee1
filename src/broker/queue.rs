//! Queued messages (SPEC §8): the in-memory index over the durable store,
//! with the limits and the claims that give each message to exactly one
//! receiver.
//!
//! The store holds what must survive a crash (the messages); this index
//! holds what must not: which receiver is reading which message. After a
//! restart nothing is claimed, so a message whose reader died is simply
//! served again. A message leaves the store only once its client has it
//! whole (the front end confirms that; see `reader::Delivery`); a reader
//! that goes away earlier drops its `Claim`, which puts the message back
//! where it was — at the head of its topic's queue.
//!
//! Store failures (SPEC §10) fail the one operation they hit: a full disk
//! is `queue full: server storage is full`, any other I/O error `cannot
//! store the message: …`. A message that was delivered but whose removal
//! failed stays hidden (never served twice) and is removed once the store
//! works again. A damaged message (`claim`) is set aside, never delivered.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use tokio::sync::watch;

use super::quota::{Charge, Ledger, Reservation, Usage, server_full};
use super::stores::{BodySink, MessageStore};
use super::{Broker, ByteSource};
use crate::store::{StoreError, StoreHealth, StoredMessage};

/// Bytes per stored chunk: a large message moves through the server this
/// much at a time, never whole.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// SPEC §8's limits (configurable; `Default` is the command line's, in
/// `config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    pub max_message: u64,
    pub max_user_bytes: u64,
    pub max_user_messages: usize,
    pub retention: Duration,
    /// All queued messages together (`--max-store-bytes`).
    pub max_store_bytes: u64,
    /// Store nothing while the data dir's file system has less than this
    /// share free, in percent (`--min-free-disk`).
    pub min_free_percent: u8,
    /// Anonymous keys get 1/N of each per-user limit.
    pub anonymous_divisor: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Over a limit; the text says which, with the numbers.
    #[error("queue full: {0}")]
    Full(String),
    #[error("queued messages are not available on this server")]
    NoStore,
    /// Another node holds the topic's queued messages under a list that
    /// does not allow this reader.
    #[error("access denied")]
    Denied,
    /// The message's body failed its checksum; it was moved out of the
    /// queue for an admin and is never served.
    #[error("queued message {seq} is damaged; it was set aside")]
    Damaged { seq: u64 },
    /// Storing failed for another reason than space (an I/O error).
    #[error("cannot store the message: {0}")]
    NotStored(StoreError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error("store task failed: {0}")]
    Task(String),
    /// Another node held the message and failed to hand it over.
    #[error("from the node holding it: {0}")]
    Lender(String),
}

impl QueueError {
    /// The line a reader prints when reading a queued message failed: a
    /// damaged message's own line (SPEC §10), otherwise prefixed.
    pub fn reading(&self) -> String {
        match self {
            QueueError::Damaged { .. } => self.to_string(),
            other => format!("cannot read a queued message: {other}"),
        }
    }

    /// What a failed store operation means to a `pub -q`.
    fn storing(e: StoreError) -> QueueError {
        match e {
            StoreError::Full => QueueError::Full("server storage is full".into()),
            other => QueueError::NotStored(other),
        }
    }
}

#[derive(Debug)]
pub(super) struct Entry {
    pub msg: StoredMessage,
    pub claimed: bool,
    /// Written whole to its reader, but its removal failed: never served
    /// again, removed once the store works.
    pub delivered: bool,
}

#[derive(Debug, Default)]
pub(super) struct Index {
    /// Per full topic name, messages by sequence number (oldest first).
    pub topics: HashMap<String, BTreeMap<u64, Entry>>,
    /// Per user and in all, including messages being stored right now.
    pub(super) ledger: Ledger,
    next_seq: u64,
    next_data: u64,
}

/// The queue: store plus index. Shared by the broker's clones.
#[derive(Debug)]
pub(crate) struct Queue {
    pub(super) store: Arc<dyn MessageStore>,
    pub(super) limits: QueueLimits,
    index: Mutex<Index>,
    /// Bumped whenever a message becomes available (linked or released), so
    /// waiting receivers look again instead of polling.
    changed: watch::Sender<u64>,
    /// Bumped on every change to what waits (claims and removals too), for
    /// what reports the queue elsewhere (`nats::queued`).
    edited: watch::Sender<u64>,
    /// What a user has queued on other nodes, when this node is one of a
    /// cluster (set once by `nats`), so quotas hold for the whole cluster.
    elsewhere: OnceLock<Elsewhere>,
}

/// A user's queued usage on the other nodes of a cluster.
pub(crate) struct Elsewhere(pub Box<dyn Fn(&str) -> Usage + Send + Sync>);

impl std::fmt::Debug for Elsewhere {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Elsewhere")
    }
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs blocking store work off the async threads.
pub(super) async fn unblock<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, QueueError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| QueueError::Task(e.to_string()))
}

pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, QueueError> {
    unblock(f).await?.map_err(QueueError::from)
}

impl Queue {
    /// Loads the index from the store.
    pub fn open(store: Arc<dyn MessageStore>, limits: QueueLimits) -> Result<Queue, StoreError> {
        let mut index = Index::default();
        // Sequence numbers name damaged messages too: never reuse one.
        for d in store.damaged()? {
            index.next_seq = index.next_seq.max(d.msg.seq + 1);
        }
        for msg in store.load_messages()? {
            index.next_seq = index.next_seq.max(msg.seq + 1);
            index.next_data = index.next_data.max(msg.data_id + 1);
            index.ledger.add_stored(&msg.user, msg.size);
            let entry = Entry {
                msg,
                claimed: false,
                delivered: false,
            };
            index
                .topics
                .entry(entry.msg.topic.clone())
                .or_default()
                .insert(entry.msg.seq, entry);
        }
        Ok(Queue {
            store,
            limits,
            index: Mutex::new(index),
            changed: watch::Sender::new(0),
            edited: watch::Sender::new(0),
            elsewhere: OnceLock::new(),
        })
    }

    /// Counts `f(user)` — what the user has queued on other nodes — in
    /// every quota check from now on. Set once; a second call is ignored.
    pub fn set_elsewhere(&self, f: Elsewhere) {
        let _ = self.elsewhere.set(f);
    }

    /// What `user` has queued on other nodes. Never called under the
    /// index lock: `f` takes the cluster's own locks.
    pub(super) fn elsewhere(&self, user: &str) -> Usage {
        self.elsewhere
            .get()
            .map_or_else(Usage::default, |f| (f.0)(user))
    }

    /// Per topic, who is charged for how many messages and bytes there
    /// (every message still in the index, as the ledger counts them).
    pub fn charged(&self) -> HashMap<String, Vec<(String, Usage)>> {
        let index = self.lock();
        index
            .topics
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(name, q)| {
                let mut by_user: HashMap<String, Usage> = HashMap::new();
                for e in q.values() {
                    let u = by_user.entry(e.msg.user.clone()).or_default();
                    u.bytes += e.msg.size;
                    u.messages += 1;
                }
                (name.clone(), by_user.into_iter().collect())
            })
            .collect()
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Index> {
        // A poisoned lock only means a panic elsewhere; the index is plain
        // bookkeeping that every critical section leaves whole.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    pub(super) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        self.edited();
    }

    /// Changes whenever what waits changes in any way.
    pub fn edits(&self) -> watch::Receiver<u64> {
        self.edited.subscribe()
    }

    pub(super) fn edited(&self) {
        self.edited.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// (messages, bytes) queued per topic.
    pub fn totals(&self) -> HashMap<String, (usize, u64, Vec<String>)> {
        let index = self.lock();
        index
            .topics
            .iter()
            .filter_map(|(name, q)| {
                let waiting: Vec<&Entry> = q.values().filter(|e| !e.delivered).collect();
                let bytes = waiting.iter().map(|e| e.msg.size).sum();
                let mut users: Vec<String> = waiting.iter().map(|e| e.msg.user.clone()).collect();
                users.dedup();
                (!waiting.is_empty()).then(|| (name.clone(), (waiting.len(), bytes, users)))
            })
            .collect()
    }

    /// Reads `source` to its end and stores it as one message at the end of
    /// `topic`'s queue. Returns how many messages then wait on the topic.
    /// On any error nothing is left behind.
    pub async fn enqueue(
        self: &Arc<Self>,
        topic: &str,
        charge: Charge,
        source: &mut impl ByteSource,
    ) -> Result<usize, QueueError> {
        self.check_free_disk().await?;
        let mut reserved = Reservation::new(self, charge)?;
        let data_id = {
            let mut index = self.lock();
            index.next_data += 1;
            index.next_data - 1
        };
        let written = self.write_body(data_id, &mut reserved, source).await;
        let (size, chunks) = match written {
            Ok(w) => w,
            Err(e) => {
                self.discard(data_id).await;
                return Err(e);
            }
        };
        // Linking runs as its own task: once it starts, a client leaving
        // (which drops this future) cannot leave a message linked in the
        // store but missing from the index.
        let (queue, topic) = (Arc::clone(self), topic.to_string());
        let task = tokio::spawn(async move {
            let linked = queue.link(&topic, reserved, data_id, size, chunks).await;
            if linked.is_err() {
                queue.discard(data_id).await;
            }
            linked
        });
        task.await.map_err(|e| QueueError::Task(e.to_string()))?
    }

    /// Streams the input into chunks of its body file; returns (size,
    /// chunk count) once the body is durable.
    async fn write_body(
        &self,
        data_id: u64,
        reserved: &mut Reservation,
        source: &mut impl ByteSource,
    ) -> Result<(u64, u32), QueueError> {
        let store = self.store.clone();
        let mut writer: Box<dyn BodySink> = blocking(move || store.create_body(data_id))
            .await
            .map_err(Self::store_failure)?;
        let mut buf = BytesMut::new();
        loop {
            let next = source.next_chunk().await?;
            let end = next.is_none();
            if let Some(data) = next {
                reserved.grow(data.len() as u64)?;
                buf.extend_from_slice(&data);
            }
            while buf.len() >= CHUNK_BYTES || (end && !buf.is_empty()) {
                let take = buf.len().min(CHUNK_BYTES);
                let part = buf.split_to(take).freeze();
                // The writer travels to the blocking thread and back; if
                // this future is dropped meanwhile, it is dropped there and
                // removes the unfinished file.
                writer = blocking(move || writer.write_chunk(&part).map(|()| writer))
                    .await
                    .map_err(Self::store_failure)?;
            }
            if end {
                return blocking(move || writer.finish())
                    .await
                    .map_err(Self::store_failure);
            }
        }
    }

    /// A store error while storing, as the pub sees it.
    fn store_failure(e: QueueError) -> QueueError {
        match e {
            QueueError::Store(e) => QueueError::storing(e),
            other => other,
        }
    }

    /// Links the message durably and makes it visible. Its room was
    /// reserved as it was read, so no limit needs checking again here; a
    /// failed link gives the room back (the reservation drops).
    async fn link(
        &self,
        topic: &str,
        reserved: Reservation,
        data_id: u64,
        size: u64,
        chunks: u32,
    ) -> Result<usize, QueueError> {
        let msg = {
            let mut index = self.lock();
            index.next_seq += 1;
            StoredMessage {
                seq: index.next_seq - 1,
                topic: topic.to_string(),
                user: reserved.charge.user.clone(),
                size,
                created_ms: now_ms(),
                data_id,
                chunks,
            }
        };
        let store = self.store.clone();
        let linked = msg.clone();
        if let Err(e) = blocking(move || store.link(&linked)).await {
            return Err(Self::store_failure(e));
        }
        reserved.stored();
        let waiting = {
            let mut index = self.lock();
            let q = index.topics.entry(topic.to_string()).or_default();
            q.insert(
                msg.seq,
                Entry {
                    msg,
                    claimed: false,
                    delivered: false,
                },
            );
            q.len()
        };
        self.notify();
        Ok(waiting)
    }

    /// Does `topic` still have queued messages?
    pub fn has_messages(&self, topic: &str) -> bool {
        self.lock().topics.contains_key(topic)
    }

    /// A stored message is gone: its room goes back to its owner's quota.
    pub(super) fn unreserve(&self, user: &str, size: u64) {
        self.lock().ledger.release(user, size, 1);
    }

    /// `--min-free-disk`: refuses to store while the data dir's file system
    /// has less than that share free.
    async fn check_free_disk(&self) -> Result<(), QueueError> {
        let min = self.limits.min_free_percent;
        if min == 0 {
            return Ok(());
        }
        let store = self.store.clone();
        match unblock(move || store.free_percent()).await? {
            Some(free) if free < f64::from(min) => Err(server_full()),
            // Unknown (statvfs failed): the store's own disk-full handling
            // still applies.
            _ => Ok(()),
        }
    }

    /// Drops the body of a message that will not be linked. A failure
    /// here only leaves an orphan, which the next start removes.
    async fn discard(&self, data_id: u64) {
        let store = self.store.clone();
        if let Err(e) = unblock(move || store.drop_data(data_id)).await {
            tracing::warn!(error = %e, "could not drop an unfinished message");
        }
    }
}

impl Broker {
    /// The store's health (`None`: no store, everything in memory).
    pub fn store_health(&self) -> Option<StoreHealth> {
        self.inner.queue.as_ref().map(|q| q.store.health())
    }

    /// For `GET /healthz`: false while the store cannot store (SPEC §10).
    pub fn store_healthy(&self) -> bool {
        self.inner
            .queue
            .as_ref()
            .is_none_or(|q| q.store.health().available)
    }
}
