//! Reading and changing access lists (SPEC §6): a private topic's list is
//! checked, stored, then applied; a public one lives on the topic (or is
//! held for its queued messages). Either way the clients already on the
//! topic are re-decided at once, under its lock.

use super::{Memory, lock, patterns};
use crate::broker::{BrokerError, who};
use crate::identity::Identity;
use crate::topic::{AccessList, Namespace, TopicRef, may_set_access};

impl Memory {
    pub fn has_access_list(&self, full: &str) -> bool {
        lock(&self.acls).contains_key(full)
    }

    /// A topic's list and, for a public one, who set it.
    pub fn access_list(&self, topic: &TopicRef) -> (Option<AccessList>, Option<String>) {
        match topic.namespace {
            Namespace::User(_) => (lock(&self.acls).get(&topic.full).cloned(), None),
            Namespace::Public => {
                let live = lock(self.shard(&topic.full)).get(&topic.full).cloned();
                match live {
                    Some(t) => self.acl_of(&t, &t.lock()),
                    None => match self.held_of(&topic.full) {
                        Some((list, owner)) => (Some(list), Some(owner)),
                        None => (None, None),
                    },
                }
            }
        }
    }

    /// Sets (or, with an empty list, clears) a private topic's list:
    /// checked, written to the store, then applied — and re-applied to the
    /// pattern subs of the live topic. Joins never wait for the disk.
    pub async fn set_private_access(
        &self,
        topic: &TopicRef,
        who_is: &Identity,
        list: &AccessList,
    ) -> Result<(), BrokerError> {
        let _writing = self.acl_writes.lock().await;
        let has = self.has_access_list(&topic.full);
        if !may_set_access(topic, has, None, &who(who_is)) {
            return Err(BrokerError::AccessDenied);
        }
        if let Some(store) = self.acl_store.clone() {
            let (name, stored) = (topic.full.clone(), list.clone());
            let put = tokio::task::spawn_blocking(move || store.put_acl(&name, Some(&stored)));
            let failed = match put.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = failed {
                // The store logs and counts a write failure once per
                // episode (store/health.rs); the client is told here.
                tracing::debug!(error = %e, topic = %topic.full, "could not store an access list");
                return Err(BrokerError::Store(format!(
                    "cannot store the access list: {e}"
                )));
            }
        }
        self.apply_private_locked(&topic.full, list);
        Ok(())
    }

    /// Holds off every other private list change: another node's change
    /// (SPEC §14) is checked for staleness and applied under it, so it can
    /// never land between this node's write and its apply.
    pub async fn lock_acl_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.acl_writes.lock().await
    }

    /// Applies a private list that is already stored (here or by another
    /// node): the map, then every client on the live topic and its pattern
    /// subs re-decided. The caller holds `lock_acl_writes`.
    pub fn apply_private_access(
        &self,
        _writing: &tokio::sync::MutexGuard<'_, ()>,
        full: &str,
        list: &AccessList,
    ) {
        self.apply_private_locked(full, list);
    }

    fn apply_private_locked(&self, full: &str, list: &AccessList) {
        {
            let mut acls = lock(&self.acls);
            if list.0.is_empty() {
                acls.remove(full);
            } else {
                acls.insert(full.to_string(), list.clone());
            }
        }
        let patterns = self.patterns_read();
        let live = lock(self.shard(full)).get(full).cloned();
        if let Some(t) = live {
            let mut inner = t.lock();
            let acl = (!list.0.is_empty()).then_some(list);
            t.revoke_disallowed(&mut inner, acl, None);
            patterns::sync_topic(&patterns, &t, &mut inner, acl, None);
        }
    }

    /// Sets (or clears) a public topic's list (`access -p`): only its
    /// owner, or — while it has none — a client on it, who then owns it
    /// (SPEC §6). A topic nobody is on has a list only if one is held for
    /// its queued messages; its owner may change that one.
    pub async fn set_public_access(
        &self,
        topic: &TopicRef,
        who_is: &Identity,
        list: &AccessList,
    ) -> Result<(), BrokerError> {
        if let Some(done) = self.set_live_public_access(topic, who_is, list) {
            return done;
        }
        let Some((_, owner)) = self.held_of(&topic.full) else {
            return Err(BrokerError::NotLive(topic.full.clone()));
        };
        if !may_set_access(topic, true, Some(&owner), &who(who_is)) {
            return Err(BrokerError::AccessDenied);
        }
        self.hold_public(topic, list, &owner).await
    }

    /// `None`: the topic is not live.
    fn set_live_public_access(
        &self,
        topic: &TopicRef,
        who_is: &Identity,
        list: &AccessList,
    ) -> Option<Result<(), BrokerError>> {
        let patterns = self.patterns_read();
        let t = lock(self.shard(&topic.full)).get(&topic.full).cloned()?;
        let mut inner = t.lock();
        if inner.dead {
            return None;
        }
        let (current, owner) = self.acl_of(&t, &inner);
        let has = current.is_some();
        // With no list yet, only a client on the topic may claim it (SPEC
        // §6: "set by a client that joins it"), not any passer-by.
        let on_it = who_is.admin
            || inner
                .members
                .values()
                .any(|m| m.via_pattern.is_none() && m.who.name == who_is.name);
        if !may_set_access(topic, has, owner.as_deref(), &who(who_is)) || (!has && !on_it) {
            return Some(Err(BrokerError::AccessDenied));
        }
        // The owner stays the owner; a first list makes its setter one.
        let owner = owner.unwrap_or_else(|| who_is.name.clone());
        t.set_public(
            &mut inner,
            (!list.0.is_empty()).then(|| (list.clone(), owner)),
        );
        self.update_held(&topic.full, inner.public_acl.clone());
        let (acl, owner) = self.acl_of(&t, &inner);
        t.revoke_disallowed(&mut inner, acl.as_ref(), owner.as_deref());
        patterns::sync_topic(&patterns, &t, &mut inner, acl.as_ref(), owner.as_deref());
        Some(Ok(()))
    }
}
