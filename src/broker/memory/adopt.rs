//! Topics a node keeps only for its pattern subs (SPEC §7 across nodes,
//! design/cluster.md §2.3).
//!
//! A pattern sub attaches to the matching topics *of its node*. A topic
//! whose senders are all on other nodes has no life here, so nothing would
//! attach the pattern and no sender would ever learn of it. So when a view
//! from another node shows senders on a topic a local pattern matches, the
//! node *adopts* the topic: it starts it here with the patterns attached.
//! Their attachments count as receivers in this node's view, so the
//! sending node links to us, paces on us and lets a blocking pub go, as
//! for a `sub` by name. An adopted topic lives while some pattern is on it
//! and some other node still has senders there; pattern attachments and
//! views alone never keep each other alive.

use std::sync::Arc;

use super::topic::Topic;
use super::{Memory, lock, patterns};
use crate::broker::topics::Maker;
use crate::topic::{Namespace, TopicRef, pattern_matches};

/// The `TopicRef` of a topic known only by its full name (from a view).
fn topic_ref(full: &str) -> Option<TopicRef> {
    let (first, local) = full.split_once('/')?;
    let namespace = match first {
        "public" => Namespace::Public,
        user => Namespace::User(user.to_string()),
    };
    Some(TopicRef {
        full: full.to_string(),
        namespace,
        local: local.to_string(),
    })
}

impl Memory {
    /// Starts `full` here if a local pattern may receive from it and it is
    /// not live here yet.
    pub(super) fn adopt(&self, full: &str) {
        let Some(name) = topic_ref(full) else {
            return;
        };
        let patterns = self.patterns_read();
        let Some(first) = patterns.values().find(|e| {
            e.pattern.namespace == name.namespace && pattern_matches(&e.pattern.local, &name.local)
        }) else {
            return;
        };
        let maker = Maker::of(&first.who);
        let mut shard = lock(self.shard(full));
        if shard.contains_key(full) {
            return;
        }
        if self.topic_count.take(&maker).is_err() {
            tracing::warn!(
                topic = full,
                "topic limit reached: a pattern sub misses a topic"
            );
            return;
        }
        let t = Arc::new(Topic::new(
            name,
            self.me.clone(),
            maker.clone(),
            self.peers(),
        ));
        let mut inner = t.lock();
        let (acl, owner) = self.acl_of(&t, &inner);
        patterns::sync_topic(&patterns, &t, &mut inner, acl.as_ref(), owner.as_deref());
        if Topic::is_empty(&inner) {
            // No pattern here may use it (its access list).
            inner.dead = true;
            t.unlink_all(&mut inner);
            self.topic_count.release(&maker);
            return;
        }
        drop(inner);
        shard.insert(full.to_string(), t);
    }

    /// Adopts every topic other nodes send on that a pattern just joined
    /// here may match.
    pub(super) fn adopt_remote_topics(&self, pattern: &TopicRef) {
        let Some(peers) = self.peers() else {
            return;
        };
        for full in peers.topics_with_senders() {
            let matches = topic_ref(&full).is_some_and(|t| {
                t.namespace == pattern.namespace && pattern_matches(&pattern.local, &t.local)
            });
            if matches {
                self.adopt(&full);
            }
        }
    }

    /// Ends `t` if nothing keeps it any more (an adopted topic whose
    /// remote senders or patterns are gone), under the shard's lock so no
    /// join slips in between.
    pub(super) fn end_if_unused(&self, t: &Topic) {
        let mut shard = lock(self.shard(&t.name.full));
        let mut inner = t.lock();
        if !inner.dead && Topic::is_empty(&inner) {
            self.end_locked(&mut shard, t, &mut inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_names_give_their_namespace_back() {
        let t = topic_ref("public/logs-a").unwrap_or_else(|| unreachable!());
        assert_eq!(
            (t.namespace, t.local.as_str()),
            (Namespace::Public, "logs-a")
        );
        let t = topic_ref("alice/svc/x").unwrap_or_else(|| unreachable!());
        assert_eq!(
            (t.namespace, t.local.as_str()),
            (Namespace::User("alice".into()), "svc/x")
        );
        assert!(topic_ref("nameless").is_none());
    }
}
