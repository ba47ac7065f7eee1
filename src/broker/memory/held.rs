//! Public lists kept for queued messages (SPEC §6, §8).
//!
//! A public topic's list normally ends with the topic's last client. But
//! `pub -q -p -a LIST` leaves a message behind with nobody on the topic,
//! and the list must still guard it — until it is read, after a restart
//! too. So such a list is *held*: kept here and in the store while the
//! topic has queued messages, and let go once it has none and nobody is on
//! it. A held list counts as the topic's list for every access decision.
//!
//! In the store a held list sits beside the private lists under its full
//! name (`public/…`), its owner (the user who set it) as the first entry.

use std::collections::HashMap;

use super::{Memory, lock};
use crate::broker::BrokerError;
use crate::topic::{AccessList, TopicRef};

/// A held list and the user who set it.
pub(crate) type Held = (AccessList, String);

/// Takes the held public lists out of what the store loaded.
pub(super) fn split_held(acls: &mut HashMap<String, AccessList>) -> HashMap<String, Held> {
    let public: Vec<String> = acls
        .keys()
        .filter(|k| k.starts_with("public/"))
        .cloned()
        .collect();
    let mut held = HashMap::new();
    for name in public {
        let Some(AccessList(mut entries)) = acls.remove(&name) else {
            continue;
        };
        if entries.len() < 2 {
            continue; // no owner, or no entry: nothing to hold
        }
        let owner = entries.remove(0);
        held.insert(name, (AccessList(entries), owner));
    }
    held
}

fn stored_form((list, owner): &Held) -> AccessList {
    let mut entries = vec![owner.clone()];
    entries.extend(list.0.iter().cloned());
    AccessList(entries)
}

impl Memory {
    pub(super) fn held_of(&self, full: &str) -> Option<Held> {
        lock(&self.held).get(full).cloned()
    }

    /// Writes a held list (`None`: removes it) to the store.
    async fn persist_held(&self, full: &str, held: Option<&Held>) -> Result<(), BrokerError> {
        let Some(store) = self.acl_store.clone() else {
            return Ok(());
        };
        let (name, stored) = (full.to_string(), held.map(stored_form));
        let put = tokio::task::spawn_blocking(move || store.put_acl(&name, stored.as_ref())).await;
        match put {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(BrokerError::Store(format!(
                "cannot store the access list: {e}"
            ))),
            Err(e) => Err(BrokerError::Store(format!(
                "cannot store the access list: {e}"
            ))),
        }
    }

    /// `pub -q -p -a LIST` is about to queue: the list is held, durably,
    /// before the message can be stored (an empty list lets go of one).
    /// The caller's join already checked that `owner` may set it.
    pub async fn hold_public(
        &self,
        topic: &TopicRef,
        list: &AccessList,
        owner: &str,
    ) -> Result<(), BrokerError> {
        let _writing = self.acl_writes.lock().await;
        let held = (!list.is_empty()).then(|| (list.clone(), owner.to_string()));
        self.persist_held(&topic.full, held.as_ref()).await?;
        let mut map = lock(&self.held);
        match held {
            Some(h) => map.insert(topic.full.clone(), h),
            None => map.remove(&topic.full),
        };
        Ok(())
    }

    /// The owner changed a held list on the live topic (under its lock, so
    /// the store write runs on its own; a failure is logged, and the new
    /// list still applies in memory).
    pub(super) fn update_held(&self, full: &str, new: Option<Held>) {
        {
            let mut map = lock(&self.held);
            if !map.contains_key(full) {
                return;
            }
            match &new {
                Some(h) => map.insert(full.to_string(), h.clone()),
                None => map.remove(full),
            };
        }
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let full = full.to_string();
        tokio::spawn(async move {
            let _writing = me.acl_writes.lock().await;
            if let Err(e) = me.persist_held(&full, new.as_ref()).await {
                tracing::error!(error = %e, topic = %full, "could not store a held access list");
            }
        });
    }

    /// Lets go of the held lists of `only` (or of every topic) whose
    /// topics `still_queued` says have no messages left and nobody on them.
    pub async fn release_held(&self, only: Option<&str>, still_queued: impl Fn(&str) -> bool) {
        let names: Vec<String> = {
            let map = lock(&self.held);
            match only {
                Some(n) => map
                    .contains_key(n)
                    .then(|| n.to_string())
                    .into_iter()
                    .collect(),
                None => map.keys().cloned().collect(),
            }
        };
        for name in names {
            if still_queued(&name) || self.counts(&name).is_some() {
                continue;
            }
            let _writing = self.acl_writes.lock().await;
            if let Err(e) = self.persist_held(&name, None).await {
                tracing::error!(error = %e, topic = %name, "could not drop a held access list");
                continue;
            }
            lock(&self.held).remove(&name);
        }
    }
}
