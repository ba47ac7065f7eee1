//! The broker as a whole in a few numbers, for `/metrics` (SPEC §12).
//!
//! Computed when asked (a scrape, every few seconds at most) from what the
//! broker keeps anyway, so delivery pays nothing for them but one relaxed
//! counter for skipped bytes. Topics are visited one at a time under their
//! own lock: a scrape never holds up joins.

use super::Broker;

/// What `Broker::stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrokerStats {
    /// Live topics.
    pub topics: usize,
    /// Receiving clients (subs and pipes); a pattern sub is one receiver
    /// however many topics it is attached to.
    pub receivers: usize,
    /// Queued messages (SPEC §8) waiting on all topics, and their bytes.
    pub queued_messages: usize,
    pub queued_bytes: u64,
    /// Bytes lossy receivers skipped since the start (SPEC §5.4).
    pub skipped_bytes: u64,
}

impl Broker {
    /// The numbers of [`BrokerStats`], as of now.
    pub fn stats(&self) -> BrokerStats {
        let (topics, receivers, skipped_bytes) = self.memory().stats();
        let mut stats = BrokerStats {
            topics,
            receivers,
            skipped_bytes,
            ..BrokerStats::default()
        };
        if let Some(queue) = &self.inner.queue {
            for (messages, bytes, _) in queue.totals().values() {
                stats.queued_messages += messages;
                stats.queued_bytes += bytes;
            }
        }
        stats
    }
}
