//! Claims on queued messages: which receiver is reading which message,
//! and retention. Kept in memory only — after a restart nothing is
//! claimed, so a message whose reader died mid-way is simply served again
//! (SPEC §8: it stays at the head of its queue).
//!
//! Integrity (SPEC §10): before the first byte of a message goes out, its
//! whole body is read once and every chunk's checksum checked, so a damaged
//! message is never delivered, not even its good first part. Each chunk is
//! checked again as it is sent (the disk may fail in between). A damaged
//! message leaves the queue at once — set aside in the store for an admin,
//! logged once — and its reader gets `queued message N is damaged; it was
//! set aside`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::queue::{Queue, QueueError, blocking, now_ms, unblock};
use super::stores::BodySource;
use crate::store::{Damage, StoredMessage};

/// How long a pending removal waits before trying again when the store
/// gives no sign of a change.
const REMOVAL_RETRY: Duration = Duration::from_secs(5);

impl Queue {
    /// Messages of `topic` some receiver is reading now.
    pub fn claimed(&self, topic: &str) -> usize {
        let index = self.lock();
        index.topics.get(topic).map_or(0, |q| {
            q.values().filter(|e| e.claimed && !e.delivered).count()
        })
    }

    /// When the oldest message of `topic` nobody is reading was queued.
    pub fn oldest_unclaimed(&self, topic: &str) -> Option<u64> {
        let index = self.lock();
        let entry = index.topics.get(topic)?.values().find(|e| !e.claimed)?;
        Some(entry.msg.created_ms)
    }

    /// Takes the oldest message of `topic` nobody else is reading.
    pub fn claim(self: &Arc<Self>, topic: &str) -> Option<Claim> {
        let msg = {
            let mut index = self.lock();
            let entry = index
                .topics
                .get_mut(topic)?
                .values_mut()
                .find(|e| !e.claimed)?;
            entry.claimed = true;
            entry.msg.clone()
        };
        self.edited();
        Some(Claim {
            queue: Arc::clone(self),
            msg,
            body: None,
            next: 0,
            offset: 0,
            done: false,
        })
    }

    /// Forgets a message (after it was delivered, expired or set aside).
    fn forget(&self, msg: &StoredMessage) {
        let mut index = self.lock();
        if let Some(q) = index.topics.get_mut(&msg.topic) {
            q.remove(&msg.seq);
            if q.is_empty() {
                index.topics.remove(&msg.topic);
            }
        }
        drop(index);
        self.unreserve(&msg.user, msg.size);
        self.edited();
    }

    fn release(&self, msg: &StoredMessage) {
        let mut index = self.lock();
        if let Some(e) = index
            .topics
            .get_mut(&msg.topic)
            .and_then(|q| q.get_mut(&msg.seq))
        {
            e.claimed = false;
        }
        drop(index);
        self.notify();
    }

    /// Removes unclaimed messages older than the retention; returns how many.
    pub async fn expire(&self) -> usize {
        let cutoff = now_ms().saturating_sub(self.limits.retention.as_millis() as u64);
        let old: Vec<StoredMessage> = {
            let mut index = self.lock();
            let mut old = Vec::new();
            for q in index.topics.values_mut() {
                for e in q.values_mut() {
                    if !e.claimed && e.msg.created_ms < cutoff {
                        e.claimed = true;
                        old.push(e.msg.clone());
                    }
                }
            }
            old
        };
        let mut removed = 0;
        for msg in old {
            let store = self.store.clone();
            let (seq, data_id) = (msg.seq, msg.data_id);
            match blocking(move || store.remove_message(seq, data_id)).await {
                Ok(()) => {
                    self.forget(&msg);
                    removed += 1;
                }
                Err(e) => {
                    // The store logs its own failure once; this is routine.
                    tracing::debug!(error = %e, topic = %msg.topic, "could not expire a message");
                    self.release(&msg);
                }
            }
        }
        removed
    }

    /// A message written whole whose removal failed: hide it for good and
    /// remove it once the store works again, so it is never served twice.
    fn remove_later(self: &Arc<Self>, msg: StoredMessage) {
        {
            let mut index = self.lock();
            if let Some(e) = index
                .topics
                .get_mut(&msg.topic)
                .and_then(|q| q.get_mut(&msg.seq))
            {
                e.delivered = true;
            }
        }
        tracing::warn!(
            seq = msg.seq,
            topic = %msg.topic,
            "a delivered queued message could not be removed yet; it is hidden and removed when the store works again"
        );
        let queue = Arc::clone(self);
        tokio::spawn(async move {
            let mut health = queue.store.health_changes();
            loop {
                // Wait for the store to be available (or a while).
                let _ = tokio::time::timeout(REMOVAL_RETRY, health.wait_for(|up| *up)).await;
                let store = queue.store.clone();
                let (seq, data_id) = (msg.seq, msg.data_id);
                if blocking(move || store.remove_message(seq, data_id))
                    .await
                    .is_ok()
                {
                    queue.forget(&msg);
                    return;
                }
                let _ = tokio::time::timeout(REMOVAL_RETRY, health.changed()).await;
            }
        });
    }

    /// Takes a damaged message out of the queue for good and records it
    /// for an admin. Logged here, once: no reader sees it again. Runs as
    /// its own task, so a reader leaving meanwhile cannot cut it short.
    fn set_aside(
        self: &Arc<Self>,
        msg: StoredMessage,
        damage: Damage,
    ) -> tokio::task::JoinHandle<()> {
        self.forget(&msg);
        let queue = Arc::clone(self);
        tokio::spawn(async move { queue.record_damage(&msg, &damage).await })
    }

    async fn record_damage(&self, msg: &StoredMessage, damage: &Damage) {
        let (store, kept, reason) = (self.store.clone(), msg.clone(), damage.to_string());
        let moved = blocking(move || store.set_aside(&kept, &reason)).await;
        match moved {
            Ok(path) => tracing::error!(
                seq = msg.seq,
                topic = %msg.topic,
                user = %msg.user,
                size = msg.size,
                damage = %damage,
                kept = %path.display(),
                "queued message damaged: set aside, never delivered"
            ),
            Err(e) => tracing::error!(
                seq = msg.seq,
                topic = %msg.topic,
                user = %msg.user,
                damage = %damage,
                error = %e,
                "queued message damaged: out of the queue until a restart finds it again (could not record it as set aside)"
            ),
        }
    }
}

/// One receiver's hold on one queued message. Dropped before `finish`, it
/// puts the message back at the head of its queue.
#[derive(Debug)]
pub struct Claim {
    queue: Arc<Queue>,
    msg: StoredMessage,
    /// Opened and verified on the first `next_chunk`.
    body: Option<Arc<dyn BodySource>>,
    next: u32,
    /// Where chunk `next`'s frame starts in the body file.
    offset: u64,
    done: bool,
}

impl Claim {
    pub fn size(&self) -> u64 {
        self.msg.size
    }

    /// The next chunk of the body, checked (`None`: all read). The first
    /// call checks the whole body before anything is handed out.
    /// Cancel-safe: a cancelled call leaves the claim where it was.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueueError> {
        let body = match &self.body {
            Some(body) => Arc::clone(body),
            None => {
                let (store, msg) = (self.queue.store.clone(), self.msg.clone());
                let opened = unblock(move || {
                    let body = store.open_body(&msg)?;
                    body.verify().map(|()| body)
                })
                .await?;
                let body = self.checked(opened).await?;
                self.body = Some(Arc::clone(&body));
                body
            }
        };
        if self.next >= self.msg.chunks {
            return Ok(None);
        }
        let (index, offset) = (self.next, self.offset);
        let read = unblock(move || body.read_chunk(index, offset)).await?;
        let (chunk, next_offset) = self.checked(read).await?;
        self.next += 1;
        self.offset = next_offset;
        Ok(Some(Bytes::from(chunk)))
    }

    /// Passes a good read through; a damaged one sets the message aside.
    async fn checked<T>(&mut self, read: Result<T, Damage>) -> Result<T, QueueError> {
        match read {
            Ok(v) => Ok(v),
            Err(damage) => {
                self.done = true;
                // Awaited so the line is logged before the reader reports;
                // a failed task has logged nothing more to wait for.
                let _ = self.queue.set_aside(self.msg.clone(), damage).await;
                Err(QueueError::Damaged { seq: self.msg.seq })
            }
        }
    }

    /// The client has the whole body (the front end said so, through
    /// `reader::Delivery`): remove the message for good. Runs as its own
    /// task, so a client leaving at this very moment cannot leave the store
    /// and the index disagreeing.
    pub async fn finish(mut self) -> Result<(), QueueError> {
        self.done = true;
        let (queue, msg) = (Arc::clone(&self.queue), self.msg.clone());
        let task = tokio::spawn(async move {
            let store = queue.store.clone();
            let (seq, data_id) = (msg.seq, msg.data_id);
            match blocking(move || store.remove_message(seq, data_id)).await {
                Ok(()) => queue.forget(&msg),
                Err(_) => {
                    let store = queue.store.clone();
                    match unblock(move || store.mark_delivered(data_id)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            tracing::error!(error = %e, seq, "cannot mark a delivered message; a restart before the store works again would serve it again")
                        }
                        Err(e) => {
                            tracing::error!(error = %e, seq, "cannot mark a delivered message")
                        }
                    }
                    queue.remove_later(msg);
                }
            }
        });
        task.await.map_err(|e| QueueError::Task(e.to_string()))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.done {
            self.queue.release(&self.msg);
        }
    }
}
