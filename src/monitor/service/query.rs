//! What owners ask of their monitors: `status` rows, `uptime` over a
//! range, the feed's items, and the counts `/metrics` shows.

use std::sync::Arc;

use super::{MonitorError, Monitors, lock, typed_name};
use crate::monitor::health::evaluate;
use crate::monitor::render::{FeedItem, StatusRow, guid};
use crate::monitor::time::Millis;
use crate::monitor::uptime::{Uptime, uptime};
use crate::store::{HealthChange, StoreError, monitor_id};
use crate::topic::TopicRef;

use super::FEED_ITEMS;

impl Monitors {
    /// `status`: the caller's monitors, by name.
    pub fn status(&self, owner: &str) -> Vec<StatusRow> {
        let now = self.now();
        let st = lock(&self.inner.state);
        let mut rows: Vec<StatusRow> = st
            .by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|topic| st.by_id.get(&monitor_id(owner, topic)))
            .map(|e| {
                let v = evaluate(e.rec.window_ms, e.last_ping, now);
                StatusRow {
                    name: typed_name(owner, &e.rec.topic),
                    healthy: v.healthy,
                    window_ms: e.rec.window_ms,
                    last_ping: e.last_ping,
                    window_end: v.window_end,
                    reason: v.reason,
                }
            })
            .collect();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        rows
    }

    /// `uptime`: how `owner`'s monitor on `topic` did over `[from, to)`.
    pub async fn uptime(
        &self,
        owner: &str,
        topic: &TopicRef,
        from: Millis,
        to: Millis,
    ) -> Result<Uptime, MonitorError> {
        if !lock(&self.inner.state)
            .by_id
            .contains_key(&monitor_id(owner, &topic.full))
        {
            return Err(MonitorError::NotFound(typed_name(owner, &topic.full)));
        }
        let changes = self.changes(owner, &topic.full).await?;
        let points: Vec<(Millis, bool)> = changes.iter().map(|c| (c.at_ms, c.healthy)).collect();
        Ok(uptime(&points, from, to, self.now()))
    }

    async fn changes(&self, owner: &str, full: &str) -> Result<Vec<HealthChange>, MonitorError> {
        let store = Arc::clone(&self.inner.store);
        let (owner, full) = (owner.to_string(), full.to_string());
        tokio::task::spawn_blocking(move || store.monitor_changes(&owner, &full))
            .await
            .map_err(|e| MonitorError::Store(StoreError::Failed(e.to_string())))?
            .map_err(MonitorError::Store)
    }

    /// The items of `owner`'s feed: their monitors' changes, newest first.
    pub async fn feed_items(&self, owner: &str) -> Result<Vec<FeedItem>, MonitorError> {
        let mine: Vec<(String, Millis)> = {
            let st = lock(&self.inner.state);
            st.by_owner
                .get(owner)
                .into_iter()
                .flatten()
                .filter_map(|t| st.by_id.get(&monitor_id(owner, t)))
                .map(|e| (e.rec.topic.clone(), e.rec.created_ms))
                .collect()
        };
        let mut items = Vec::new();
        for (topic, created) in mine {
            for c in self.changes(owner, &topic).await? {
                items.push(FeedItem {
                    name: typed_name(owner, &topic),
                    healthy: c.healthy,
                    reason: c.reason,
                    at: c.at_ms,
                    guid: guid(owner, &topic, created, c.seq),
                });
            }
        }
        items.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| b.guid.cmp(&a.guid)));
        items.truncate(FEED_ITEMS);
        Ok(items)
    }

    /// Monitors by health now: (healthy, unhealthy), for `/metrics`.
    pub fn counts(&self) -> (usize, usize) {
        let now = self.now();
        let st = lock(&self.inner.state);
        let healthy = st
            .by_id
            .values()
            .filter(|e| evaluate(e.rec.window_ms, e.last_ping, now).healthy)
            .count();
        (healthy, st.by_id.len() - healthy)
    }
}
