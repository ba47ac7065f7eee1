//! Claims on queued messages: which receiver is reading which message,
//! and retention. Kept in memory only — after a restart nothing is
//! claimed, so a message whose reader died mid-way is simply served again
//! (SPEC §8: it stays at the head of its queue).

use std::sync::Arc;

use bytes::Bytes;

use super::queue::{Queue, QueueError, blocking, now_ms};
use crate::store::StoredMessage;

impl Queue {
    /// Messages of `topic` some receiver is reading now.
    pub fn claimed(&self, topic: &str) -> usize {
        let index = self.lock();
        index
            .topics
            .get(topic)
            .map_or(0, |q| q.values().filter(|e| e.claimed).count())
    }

    /// Takes the oldest message of `topic` nobody else is reading.
    pub fn claim(self: &Arc<Self>, topic: &str) -> Option<Claim> {
        let mut index = self.lock();
        let entry = index
            .topics
            .get_mut(topic)?
            .values_mut()
            .find(|e| !e.claimed)?;
        entry.claimed = true;
        Some(Claim {
            queue: Arc::clone(self),
            msg: entry.msg.clone(),
            next: 0,
            done: false,
        })
    }

    /// Forgets a message (after it was delivered or expired).
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
                    tracing::warn!(error = %e, topic = %msg.topic, "could not expire a message");
                    self.release(&msg);
                }
            }
        }
        removed
    }
}

/// One receiver's hold on one queued message. Dropped before `finish`, it
/// puts the message back at the head of its queue.
#[derive(Debug)]
pub struct Claim {
    queue: Arc<Queue>,
    msg: StoredMessage,
    next: u32,
    done: bool,
}

impl Claim {
    pub fn size(&self) -> u64 {
        self.msg.size
    }

    /// The next chunk of the body, read from the store (`None`: all read).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueueError> {
        if self.next >= self.msg.chunks {
            return Ok(None);
        }
        let (store, data_id, index) = (self.queue.store.clone(), self.msg.data_id, self.next);
        let chunk = blocking(move || store.chunk(data_id, index)).await?;
        let Some(chunk) = chunk else {
            return Err(QueueError::Task(format!(
                "chunk {index} of a queued message on {} is missing",
                self.msg.topic
            )));
        };
        self.next += 1;
        Ok(Some(Bytes::from(chunk)))
    }

    /// The body was written whole: remove the message for good.
    /// Runs as its own task, so a client leaving at this very moment
    /// cannot leave the store and the index disagreeing.
    pub async fn finish(mut self) -> Result<(), QueueError> {
        self.done = true;
        let (queue, msg) = (Arc::clone(&self.queue), self.msg.clone());
        let task = tokio::spawn(async move {
            let store = queue.store.clone();
            let (seq, data_id) = (msg.seq, msg.data_id);
            let removed = blocking(move || store.remove_message(seq, data_id)).await;
            match &removed {
                Ok(()) => queue.forget(&msg),
                Err(_) => queue.release(&msg),
            }
            removed
        });
        task.await.map_err(|e| QueueError::Task(e.to_string()))?
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.done {
            self.queue.release(&self.msg);
        }
    }
}
