//! Who is where, across nodes: each node publishes a view per live topic
//! into a JetStream KV bucket, watches everyone else's, and heart-beats
//! into a second bucket so that a node that dies (kill -9, lost host) is
//! noticed and its clients dropped from every topic (SPEC §14).
//!
//! Views are written by one task per node, latest state only, so a burst
//! of joins costs a few writes, not one each. A node is reaped only by
//! nodes whose own heartbeats are getting through: one cut off from NATS
//! must not declare everyone else dead.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{Entry, Operation};
use tokio::time::Instant;

use super::follow::follow;
use super::names::{parse_view_key, view_key};
use super::{Core, Pending};
use crate::broker::peers::{View, ViewKey};

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node not heard from for this long is gone.
pub const NODE_TTL: Duration = Duration::from_secs(5);
/// A failed write is tried again after this long.
const RETRY: Duration = Duration::from_millis(250);
/// How long a topic's last view stays before it is deleted (`View::ended`):
/// longer than a watch takes to notice it is stale and start over.
const ENDED_LINGER: Duration = Duration::from_secs(30);

/// Writes this node's views as they change.
pub(super) async fn write_views(core: Arc<Core>) {
    loop {
        tokio::select! {
            () = core.dirty_notify.notified() => {}
            () = core.stop.cancelled() => return,
        }
        let batch: Vec<((String, u64), Pending)> = core.take_dirty();
        let mut failed = Vec::new();
        for ((topic, epoch), pending) in batch {
            let key = view_key(&topic, &core.node, epoch);
            let ok = match &pending {
                Pending::Live => match core.memory.view(&topic, epoch) {
                    Some(view) => put(&core, &key, &view).await,
                    // Ended meanwhile: its `Ended` entry follows.
                    None => true,
                },
                Pending::Ended(last) => {
                    let last = View {
                        ended: true,
                        ..last.clone()
                    };
                    let ok = put(&core, &key, &last).await;
                    if ok {
                        let (store, key) = (core.presence.clone(), key.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(ENDED_LINGER).await;
                            let _ = store.delete(&key).await;
                        });
                    }
                    ok
                }
            };
            if !ok {
                failed.push(((topic, epoch), pending));
            }
        }
        if !failed.is_empty() {
            core.put_back_dirty(failed);
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                () = core.stop.cancelled() => return,
            }
            core.dirty_notify.notify_one();
        }
    }
}

async fn put(core: &Core, key: &str, view: &View) -> bool {
    let Ok(json) = serde_json::to_vec(view) else {
        return true;
    };
    core.presence.put(key, json.into()).await.is_ok()
}

/// Follows every node's views (`follow`).
pub(super) async fn watch_views(core: Arc<Core>) {
    let (bucket, stop) = (core.presence.clone(), core.stop.clone());
    follow(bucket, &core.node, "presence", stop, |e| {
        apply_entry(&core, e);
        std::future::ready(())
    })
    .await;
}

fn apply_entry(core: &Core, e: Entry) {
    let Some((node, epoch)) = parse_view_key(&e.key) else {
        return;
    };
    let key = ViewKey {
        node: node.to_string(),
        epoch,
    };
    if key.node == core.node {
        // Our own view deleted by someone who thought us gone: write it
        // again while the topic lives here.
        if e.operation != Operation::Put {
            core.rewrite_own(&e.key);
        }
        return;
    }
    match e.operation {
        Operation::Put => {
            let Ok(view) = serde_json::from_slice::<View>(&e.value) else {
                return;
            };
            if view.ended {
                core.remote_ended(e.key.clone(), key, view);
            } else {
                core.remote_put(e.key.clone(), key, view);
            }
        }
        Operation::Delete | Operation::Purge => core.remote_deleted(&e.key),
    }
}

/// Says this node is alive, and reaps nodes that stopped saying so.
pub(super) async fn heartbeat(core: Arc<Core>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ok: Option<Instant> = None;
    let mut was_healthy = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = core.stop.cancelled() => return,
        }
        let beat =
            tokio::time::timeout(HEARTBEAT, core.nodes.put(&core.node, bytes::Bytes::new())).await;
        if matches!(beat, Ok(Ok(_))) {
            if last_ok.is_none_or(|t| t.elapsed() > NODE_TTL) {
                // Back after an outage: every view again, in case a node
                // reaped ours meanwhile.
                core.rewrite_all();
            }
            last_ok = Some(Instant::now());
        }
        // Our own beat must also have come back through the watch: a
        // watch that stalls (its stream electing a leader after a NATS
        // server died) hears nobody, and must not make us reap everybody.
        let heard_self = core
            .self_heard()
            .is_some_and(|t| t.elapsed() < HEARTBEAT * 3);
        let healthy = heard_self && last_ok.is_some_and(|t| t.elapsed() < HEARTBEAT * 2);
        if healthy && !was_healthy {
            // What we missed meanwhile is no one's silence: a full TTL
            // from now for everyone.
            core.grace_all();
        }
        was_healthy = healthy;
        if healthy {
            for node in core.expired_nodes(NODE_TTL) {
                tracing::info!(node, "a node stopped answering; its clients are dropped");
                let keys = core.reap(&node);
                let c = Arc::clone(&core);
                tokio::spawn(async move {
                    for k in keys {
                        let _ = c.presence.delete(&k).await;
                    }
                    let _ = c.nodes.delete(&node).await;
                });
            }
        }
    }
}

/// Follows every node's heartbeats, ours included (`heartbeat` reaps
/// only while ours come back).
pub(super) async fn watch_nodes(core: Arc<Core>) {
    let (bucket, stop) = (core.nodes.clone(), core.stop.clone());
    follow(bucket, &core.node, "nodes", stop, |e| {
        if e.operation == Operation::Put {
            core.heard_from(&e.key);
        }
        std::future::ready(())
    })
    .await;
}

/// Node liveness as this node sees it: when each was last heard from.
#[derive(Debug, Default)]
pub(super) struct Liveness {
    seen: HashMap<String, Instant>,
}

impl Liveness {
    pub fn heard(&mut self, node: &str, at: Instant) {
        self.seen.insert(node.to_string(), at);
    }

    /// Every node known counts as heard from at `now`.
    pub fn grace_all(&mut self, now: Instant) {
        for t in self.seen.values_mut() {
            *t = now;
        }
    }

    /// Whether `node` was heard from and not yet found gone.
    pub fn alive(&self, node: &str) -> bool {
        self.seen.contains_key(node)
    }

    /// Nodes silent for longer than `ttl` at `now`; forgotten here.
    pub fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .seen
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) > ttl)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &gone {
            self.seen.remove(n);
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_expire_only_after_their_ttl() {
        let t0 = Instant::now();
        let ttl = Duration::from_secs(5);
        let mut l = Liveness::default();
        l.heard("a", t0);
        l.heard("b", t0 + Duration::from_secs(3));
        assert!(l.expire(t0 + Duration::from_secs(5), ttl).is_empty());
        assert_eq!(l.expire(t0 + Duration::from_secs(6), ttl), vec!["a"]);
        l.heard("b", t0 + Duration::from_secs(7));
        assert!(l.expire(t0 + Duration::from_secs(9), ttl).is_empty());
        assert_eq!(l.expire(t0 + Duration::from_secs(13), ttl), vec!["b"]);
        assert!(l.expire(t0 + Duration::from_secs(60), ttl).is_empty());
    }
}
