//! The broker as a whole in a few numbers, for `/metrics` (SPEC §12).
//!
//! Computed when asked (a scrape, every few seconds at most) from what the
//! broker keeps anyway, so delivery pays nothing for them. The one walk
//! under the broker's lock copies the topic handles out; each topic is then
//! looked at under its own lock, one at a time, so a scrape of 10,000
//! topics holds up a join for about as long as cloning 10,000 `Arc`s.

use std::sync::Arc;

use super::{Broker, lock};

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
    /// For each lossy receiver on a topic now: its member id and the bytes
    /// it skipped so far (SPEC §5.4). Counts of receivers that left are gone
    /// with them; the caller keeps the running total.
    pub lossy_skipped: Vec<(u64, u64)>,
}

impl Broker {
    /// The numbers of [`BrokerStats`], as of now.
    pub fn stats(&self) -> BrokerStats {
        let mut stats = BrokerStats::default();
        let topics: Vec<Arc<super::Topic>> = {
            let state = lock(&self.shared.state);
            stats.topics = state.topics.len();
            stats.receivers = state.patterns.len();
            for (id, entry) in &state.patterns {
                if entry.slot.lossy {
                    stats.lossy_skipped.push((*id, skipped(&entry.slot)));
                }
            }
            state.topics.values().cloned().collect()
        };
        for topic in topics {
            let inner = topic.lock();
            let direct = |id: &u64| inner.members.get(id).is_some_and(|m| !m.via_pattern);
            stats.receivers += inner
                .members
                .values()
                .filter(|m| m.role.receives() && !m.via_pattern)
                .count();
            for slot in inner.receivers.iter() {
                if slot.lossy && direct(&slot.member) {
                    stats.lossy_skipped.push((slot.member, skipped(slot)));
                }
            }
        }
        if let Some(queue) = &self.shared.queue {
            let index = queue.lock();
            for messages in index.topics.values() {
                stats.queued_messages += messages.len();
                stats.queued_bytes += messages.values().map(|e| e.msg.size).sum::<u64>();
            }
        }
        stats
    }
}

fn skipped(slot: &super::Slot) -> u64 {
    slot.skipped.load(std::sync::atomic::Ordering::Relaxed)
}
