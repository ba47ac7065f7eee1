//! Private topics' access lists shared by every node (SPEC §6, §14).
//!
//! A list set on one node must be enforced on all, so with NATS the lists
//! live in the JetStream KV bucket `sp_acl` (file storage, replicated like
//! the other buckets) instead of each node's own store: a write is
//! acknowledged by the bucket before the client hears it worked, every
//! node loads the bucket at start and watches it, and a change seen in the
//! watch is applied as the node's own are — the map, then every client on
//! the topic re-decided (`Memory::apply_private_access`).
//!
//! A node's own write comes back through the watch too. Revisions keep
//! the two paths in order: each key's newest revision, written or seen, is
//! remembered, and the watch applies an entry only if it is newer, under
//! the same lock a local change holds from its write to its apply. So an
//! older echo can never undo a newer change.
//!
//! Public lists held for queued messages (`memory/held.rs`) stay in the
//! node's own store: the messages they guard are queued there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::kv::{self, Entry, Operation};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::follow::{follow, heard};
use super::{lock, names};
use crate::broker::memory::Memory;
use crate::broker::stores::AclStore;
use crate::store::StoreError;
use crate::topic::AccessList;

pub const ACL_BUCKET: &str = "sp_acl";

/// One key's value. Keys only carry an encoding of the name, so the name
/// is in the value; an empty list is a cleared one (a put, not a delete,
/// so that it has a revision like any other change).
#[derive(Debug, Serialize, Deserialize)]
struct Doc {
    topic: String,
    list: Vec<String>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Newest revision per key.
    revision: HashMap<String, u64>,
    /// The topic of each key, for a key deleted by hand (`nats kv del`).
    topic: HashMap<String, String>,
}

#[derive(Debug)]
pub struct KvAcls {
    kv: kv::Store,
    /// Where the blocking calls of `AclStore` run their requests.
    rt: tokio::runtime::Handle,
    /// The node's own store, for held public lists.
    local: Option<Arc<dyn AclStore>>,
    seen: Mutex<Seen>,
}

fn key(topic: &str) -> String {
    format!("a.{}", names::token(topic))
}

fn held(topic: &str) -> bool {
    topic.starts_with("public/")
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("NATS: {e}"))
}

impl KvAcls {
    /// The bucket's lists (and the held ones of the local store), ready
    /// for `Memory::new`.
    pub async fn open(
        kv: kv::Store,
        local: Option<Arc<dyn AclStore>>,
    ) -> Result<(Arc<KvAcls>, HashMap<String, AccessList>), StoreError> {
        let mut acls = match &local {
            Some(store) => {
                let store = Arc::clone(store);
                tokio::task::spawn_blocking(move || store.load_acls())
                    .await
                    .map_err(failed)??
            }
            None => HashMap::new(),
        };
        // Private lists of the time before NATS are not the cluster's.
        acls.retain(|topic, _| held(topic));
        let me = Arc::new(KvAcls {
            kv,
            rt: tokio::runtime::Handle::current(),
            local,
            seen: Mutex::default(),
        });
        acls.extend(super::follow::at_start("access lists", || me.load_private()).await?);
        Ok((me, acls))
    }

    /// The bucket the lists live in.
    pub fn bucket(&self) -> kv::Store {
        self.kv.clone()
    }

    async fn load_private(&self) -> Result<HashMap<String, AccessList>, StoreError> {
        let mut out = HashMap::new();
        let mut keys = self.kv.keys().await.map_err(failed)?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(failed)?;
            if super::follow::is_probe(&k) {
                continue;
            }
            let Some(entry) = self.kv.entry(k.clone()).await.map_err(failed)? else {
                continue;
            };
            if entry.operation != Operation::Put {
                continue;
            }
            let Some(doc) = self.note(&entry) else {
                continue;
            };
            if !doc.list.is_empty() {
                out.insert(doc.topic, AccessList(doc.list));
            }
        }
        Ok(out)
    }

    /// Records `entry` as seen and returns its list, if it is a list of
    /// ours newer than any seen for its key.
    fn note(&self, entry: &Entry) -> Option<Doc> {
        let doc: Doc = serde_json::from_slice(&entry.value).ok()?;
        if held(&doc.topic) || key(&doc.topic) != entry.key {
            return None;
        }
        let mut seen = lock(&self.seen);
        let last = seen.revision.entry(entry.key.clone()).or_insert(0);
        if entry.revision <= *last {
            return None;
        }
        *last = entry.revision;
        seen.topic.insert(entry.key.clone(), doc.topic.clone());
        Some(doc)
    }

    /// A key deleted or purged by hand: the topic has no list any more.
    fn note_removed(&self, entry: &Entry) -> Option<String> {
        let mut seen = lock(&self.seen);
        let last = seen.revision.entry(entry.key.clone()).or_insert(0);
        if entry.revision <= *last {
            return None;
        }
        *last = entry.revision;
        seen.topic.get(&entry.key).cloned()
    }
}

impl AclStore for KvAcls {
    /// Blocks on NATS: call it from the blocking pool, as the broker does.
    fn load_acls(&self) -> Result<HashMap<String, AccessList>, StoreError> {
        let mut out = match &self.local {
            Some(store) => store.load_acls()?,
            None => HashMap::new(),
        };
        out.retain(|topic, _| held(topic));
        out.extend(self.rt.block_on(self.load_private())?);
        Ok(out)
    }

    /// Returns once the bucket acknowledged the write (its replicas have
    /// it), or fails; the caller holds the broker's list-writing lock.
    fn put_acl(&self, topic: &str, list: Option<&AccessList>) -> Result<(), StoreError> {
        if held(topic) {
            return match &self.local {
                Some(store) => store.put_acl(topic, list),
                None => Ok(()),
            };
        }
        let doc = Doc {
            topic: topic.to_string(),
            list: list.map(|l| l.0.clone()).unwrap_or_default(),
        };
        let json: bytes::Bytes = serde_json::to_vec(&doc).map_err(failed)?.into();
        let k = key(topic);
        let revision = self
            .rt
            .block_on(heard(|| self.kv.put(&k, json.clone())))
            .map_err(failed)?;
        let mut seen = lock(&self.seen);
        let last = seen.revision.entry(k.clone()).or_insert(0);
        *last = (*last).max(revision);
        seen.topic.insert(k, topic.to_string());
        Ok(())
    }
}

/// Applies other nodes' changes as they come (`follow`; the history it
/// replays on a new watch is skipped by revision).
pub async fn watch(acls: Arc<KvAcls>, memory: Arc<Memory>, node: String, stop: CancellationToken) {
    let bucket = acls.kv.clone();
    follow(bucket, &node, "access lists", stop, |e| {
        let (acls, memory) = (Arc::clone(&acls), Arc::clone(&memory));
        async move { apply(&acls, &memory, e).await }
    })
    .await;
}

async fn apply(acls: &KvAcls, memory: &Memory, entry: Entry) {
    // Decided and applied under the lock a local change holds from its
    // write to its apply, so the two never interleave.
    let writing = memory.lock_acl_writes().await;
    let (topic, list) = match entry.operation {
        Operation::Put => match acls.note(&entry) {
            Some(doc) => (doc.topic, AccessList(doc.list)),
            None => return,
        },
        Operation::Delete | Operation::Purge => match acls.note_removed(&entry) {
            Some(topic) => (topic, AccessList(Vec::new())),
            None => return,
        },
    };
    tracing::debug!(topic = %topic, "access list changed on another node");
    memory.apply_private_access(&writing, &topic, &list);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_distinct() {
        let a = key("alice/logs");
        assert_eq!(a, "a.alice=2Flogs");
        assert_ne!(key("alice/a.b"), key("alice/a/b"));
        assert!(held("public/x") && !held("alice/public/x"));
    }
}
