//! Where queued messages wait, across nodes (SPEC §8, §14).
//!
//! A message queued through a node stays in that node's store — checked,
//! limited and removed by the queue as on a single node — and is lent to a
//! sub on another node when it is the oldest (`lending`). What the others
//! need in order to ask is small: per topic, how many wait there and since
//! when the oldest unread one. Each node publishes that in the KV bucket
//! `sp_queued` (key `<topic token>.<node>`) and watches everyone else's.
//!
//! Departure from design/cluster.md, which puts queued messages in a
//! JetStream work queue with bodies in the Object Store: the store already
//! gives what SPEC §8 and §10 ask (kill -9 safety, a checksum per chunk,
//! disk-full handling, quotas, a file that stays small), and a message
//! still goes to exactly one receiver because only its node hands it out.
//! The cost: while a node is down, the messages queued through it wait
//! for it (they are not lost). Quotas hold for the whole cluster through
//! the same summaries (`charged`: who is charged how much here), so they
//! are exact on each node but only as current as the last summary from
//! the others: two nodes storing for one user in the same instant can
//! each pass a check that only one of them fits, once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{Entry, Operation};
use serde::{Deserialize, Serialize};

use super::follow::follow;
use super::names::token;
use super::{Core, lock};
use crate::broker::queue::Queue;
use crate::broker::quota::Usage;

/// How often a node publishes its queue again without a change (what
/// failed to publish is retried sooner, after `RETRY`).
const REFRESH: Duration = Duration::from_secs(5);
const RETRY: Duration = Duration::from_millis(250);

/// One node's queue of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub topic: String,
    pub count: usize,
    pub bytes: u64,
    /// Who queued them (public topics show to those, SPEC §6).
    pub users: Vec<String>,
    /// When the oldest message nobody reads yet was queued (ms since the
    /// epoch); `None` while every one is being read.
    pub oldest_ms: Option<u64>,
    /// Whose quota they count against, and how much (SPEC §8): one quota
    /// for the whole cluster. Absent from an older node's summaries.
    #[serde(default)]
    pub charged: Vec<(String, u64, usize)>,
}

pub fn key(topic: &str, node: &str) -> String {
    format!("{}.{node}", token(topic))
}

/// The node of a key (the last token).
fn node_of(key: &str) -> Option<&str> {
    key.rsplit_once('.').map(|(_, node)| node)
}

fn summaries(queue: &Queue) -> HashMap<String, Summary> {
    let mut charged = queue.charged();
    queue
        .totals()
        .into_iter()
        .map(|(topic, (count, bytes, users))| {
            let oldest_ms = queue.oldest_unclaimed(&topic);
            let charged = charged
                .remove(&topic)
                .unwrap_or_default()
                .into_iter()
                .map(|(user, u)| (user, u.bytes, u.messages))
                .collect();
            let s = Summary {
                topic: topic.clone(),
                count,
                bytes,
                users,
                oldest_ms,
                charged,
            };
            (topic, s)
        })
        .collect()
}

/// Publishes this node's queue as it changes.
pub(super) async fn publish(core: Arc<Core>, queue: Arc<Queue>) {
    let mut changes = queue.edits();
    let mut published: HashMap<String, Summary> = HashMap::new();
    loop {
        let now = summaries(&queue);
        for (topic, s) in &now {
            if published.get(topic) == Some(s) {
                continue;
            }
            let Ok(json) = serde_json::to_vec(s) else {
                continue;
            };
            match core.queued.put(key(topic, &core.node), json.into()).await {
                Ok(_) => {
                    published.insert(topic.clone(), s.clone());
                }
                // Tried again next round: `published` still differs.
                Err(e) => tracing::debug!(error = %e, "cannot publish a queue summary"),
            }
        }
        let gone: Vec<String> = published
            .keys()
            .filter(|t| !now.contains_key(*t))
            .cloned()
            .collect();
        for topic in gone {
            if core.queued.delete(key(&topic, &core.node)).await.is_ok() {
                published.remove(&topic);
            }
        }
        let wait = match published == now {
            true => REFRESH,
            false => RETRY,
        };
        tokio::select! {
            _ = changes.changed() => {}
            () = tokio::time::sleep(wait) => {}
            () = core.stop.cancelled() => return,
        }
    }
}

/// Follows every other node's queue summaries (`follow`).
pub(super) async fn watch(core: Arc<Core>) {
    let (bucket, stop) = (core.queued.clone(), core.stop.clone());
    follow(bucket, &core.node, "queued", stop, |e| {
        apply(&core, e);
        std::future::ready(())
    })
    .await;
}

fn apply(core: &Core, e: Entry) {
    let Some(node) = node_of(&e.key) else {
        return;
    };
    if node == core.node {
        return;
    }
    let mut held = lock(&core.held);
    match e.operation {
        Operation::Put => {
            let Ok(s) = serde_json::from_slice::<Summary>(&e.value) else {
                return;
            };
            held.by_key.insert(e.key.clone(), (node.to_string(), s));
        }
        Operation::Delete | Operation::Purge => {
            held.by_key.remove(&e.key);
        }
    }
}

/// Other nodes' queue summaries, by KV key.
#[derive(Debug, Default)]
pub(super) struct Held {
    by_key: HashMap<String, (String, Summary)>,
}

impl Held {
    /// The live node (`alive`) whose unread message of `topic` is oldest.
    pub fn oldest(&self, topic: &str, alive: impl Fn(&str) -> bool) -> Option<(String, u64)> {
        self.by_key
            .values()
            .filter(|(node, s)| s.topic == topic && alive(node))
            .filter_map(|(node, s)| s.oldest_ms.map(|at| (node.clone(), at)))
            .min_by_key(|(_, at)| *at)
    }

    /// Summed per topic over the live nodes.
    pub fn totals(&self, alive: impl Fn(&str) -> bool) -> crate::broker::QueuedTotals {
        let mut out: crate::broker::QueuedTotals = HashMap::new();
        for (node, s) in self.by_key.values() {
            if !alive(node) {
                continue;
            }
            let t = out.entry(s.topic.clone()).or_default();
            t.0 += s.count;
            t.1 += s.bytes;
            for u in &s.users {
                if !t.2.contains(u) {
                    t.2.push(u.clone());
                }
            }
        }
        out
    }

    /// What `user` has queued on the live nodes, for their quota.
    pub fn usage(&self, user: &str, alive: impl Fn(&str) -> bool) -> Usage {
        let mut total = Usage::default();
        for (node, s) in self.by_key.values() {
            if !alive(node) {
                continue;
            }
            for (_, bytes, messages) in s.charged.iter().filter(|(u, _, _)| u == user) {
                total.bytes += bytes;
                total.messages += messages;
            }
        }
        total
    }

    /// A gone node's keys, dropped here; the caller deletes them in KV.
    pub fn drop_node(&mut self, node: &str) -> Vec<String> {
        let keys: Vec<String> = self
            .by_key
            .iter()
            .filter(|(_, (n, _))| n == node)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            self.by_key.remove(k);
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(topic: &str, count: usize, oldest_ms: Option<u64>) -> Summary {
        Summary {
            topic: topic.into(),
            count,
            bytes: count as u64 * 10,
            users: vec!["u".into()],
            oldest_ms,
            charged: vec![("u".into(), count as u64 * 10, count)],
        }
    }

    #[test]
    fn the_oldest_unread_message_of_a_live_node_wins() {
        let mut h = Held::default();
        h.by_key
            .insert(key("a/t", "n1"), ("n1".into(), summary("a/t", 2, Some(50))));
        h.by_key
            .insert(key("a/t", "n2"), ("n2".into(), summary("a/t", 1, Some(40))));
        h.by_key
            .insert(key("a/t", "n3"), ("n3".into(), summary("a/t", 1, None)));
        h.by_key
            .insert(key("a/u", "n4"), ("n4".into(), summary("a/u", 1, Some(1))));
        assert_eq!(h.oldest("a/t", |_| true), Some(("n2".into(), 40)));
        assert_eq!(h.oldest("a/t", |n| n != "n2"), Some(("n1".into(), 50)));
        assert_eq!(h.oldest("a/x", |_| true), None);
        let totals = h.totals(|n| n != "n1");
        assert_eq!(totals["a/t"].0, 2);
        assert_eq!(totals["a/t"].1, 20);
        assert_eq!(
            h.usage("u", |n| n != "n1"),
            Usage {
                bytes: 30,
                messages: 3
            }
        );
        assert_eq!(h.usage("v", |_| true), Usage::default());
        assert_eq!(h.drop_node("n1"), vec![key("a/t", "n1")]);
        assert_eq!(h.oldest("a/t", |n| n != "n2"), None);
    }

    #[test]
    fn keys_end_with_their_node() {
        assert_eq!(node_of(&key("alice/files", "00ab")), Some("00ab"));
        assert_eq!(key("a.b/c", "n"), "a=2Eb=2Fc.n");
    }
}
