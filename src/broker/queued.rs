//! The broker's queued-message API (SPEC §8) and the write-through of
//! access lists to the store (SPEC §6, §10).
//!
//! Front ends ask `join_with(.., JoinMode::PubOrQueue)`: the access check
//! and the "are there receivers?" decision happen under the same lock as
//! every join, so a `pub -q` either delivers live or queues — never both,
//! never neither.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::claim::Claim;
use super::queue::QueueError;
use super::{Broker, BrokerError, ByteSource};
use crate::topic::AccessList;

/// What `join_with` does once access is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinMode {
    /// Join the topic.
    Join,
    /// Only check access (and set `-a`): a sub about to drain the queue.
    Check,
    /// Join if the topic has receivers; otherwise do not (the caller queues).
    PubOrQueue,
}

/// How often expired messages are looked for.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);

impl Broker {
    /// Writes a private topic's new list to the store before it takes
    /// effect, so an acknowledged `-a` survives a restart.
    pub(super) fn persist_acl(&self, topic: &str, list: &AccessList) -> Result<(), BrokerError> {
        let Some(store) = &self.shared.store else {
            return Ok(());
        };
        store.put_acl(topic, Some(list)).map_err(|e| {
            tracing::error!(error = %e, topic, "could not store an access list");
            BrokerError::Store(format!("cannot store the access list: {e}"))
        })
    }

    /// Has this private topic an access list (so others type its full name)?
    pub fn has_access_list(&self, full: &str) -> bool {
        super::lock(&self.shared.state).acls.contains_key(full)
    }

    fn queue(&self) -> Result<&Arc<super::queue::Queue>, QueueError> {
        self.shared.queue.as_ref().ok_or(QueueError::NoStore)
    }

    /// Stores `source` as one message at the end of `topic`'s queue
    /// (the caller checked access). Returns how many messages now wait.
    pub async fn enqueue(
        &self,
        topic: &str,
        user: &str,
        source: &mut impl ByteSource,
    ) -> Result<usize, QueueError> {
        self.queue()?.enqueue(topic, user, source).await
    }

    /// The oldest queued message of `topic` no other receiver is reading.
    pub fn claim(&self, topic: &str) -> Option<Claim> {
        self.shared.queue.as_ref()?.claim(topic)
    }

    /// Changes whenever a queued message becomes available to claim.
    pub fn queue_changes(&self) -> watch::Receiver<u64> {
        match &self.shared.queue {
            Some(q) => q.changes(),
            // Never changes: the sender is dropped at once.
            None => watch::channel(0).1,
        }
    }

    /// Queued messages and bytes on a topic (for tests and `ls`).
    pub fn queued(&self, topic: &str) -> (usize, u64) {
        self.shared
            .queue
            .as_ref()
            .and_then(|q| q.totals().remove(topic))
            .map_or((0, 0), |(n, b, _)| (n, b))
    }

    /// Queued messages of a topic being read right now (for tests).
    pub fn claimed(&self, topic: &str) -> usize {
        self.shared.queue.as_ref().map_or(0, |q| q.claimed(topic))
    }

    /// Removes expired messages now and every minute until `stop`.
    pub async fn expire_until(&self, stop: CancellationToken) {
        let Some(queue) = self.shared.queue.clone() else {
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
            }
        }
    }
}
