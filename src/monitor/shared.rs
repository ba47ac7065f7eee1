//! Monitors every node shares (SPEC §13, §14): with `--broker nats://…` a
//! monitor made on one node is known on all, a ping on any node counts,
//! and each change of health is published once for the whole cluster.
//!
//! So monitors live in the KV bucket `sp_monitors`, one key per monitor
//! holding its record and its bounded history together: a change and the
//! record that counts it are one write, as in the embedded store. Every
//! write is a compare-and-set on the revision the node's state was made
//! from; when two nodes' timers see the same window end, only one write
//! wins, and only the winner publishes the alert (the loser adopts the
//! winner's state: `service/remote.rs`). Every node loads the bucket at
//! start and watches it, so `status`, `uptime` and `rss` answer the same
//! everywhere, and a timer on any node can notice a missed window.
//!
//! Other nodes know only the pings that were written, so a ping that
//! changes nothing is written at most every [`SHARED_PING_WRITE_EVERY`]
//! (rather than every 15 s): another node may see a window end up to that
//! much early. Long streams ping at most every 15 s anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream::kv::{self, CreateErrorKind, Entry, Operation, UpdateErrorKind};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::store::{MonitorStore, Put};
use super::time::Millis;
use super::{Monitors, PING_WRITE_EVERY};
use crate::broker::follow_bucket;
use crate::broker::{kv_at_start, kv_heard, kv_is_probe, kv_lost_race as lost_race, kv_token};
use crate::store::{HealthChange, MonitorRecord, StoreError, monitor_id};

pub const MONITORS_BUCKET: &str = "sp_monitors";
/// How often a ping that changes nothing is written to the bucket.
pub const SHARED_PING_WRITE_EVERY: Millis = 1000;
const _: () = assert!(SHARED_PING_WRITE_EVERY <= PING_WRITE_EVERY);

/// One monitor's value: its record and its changes, oldest first.
#[derive(Debug, Serialize, Deserialize)]
struct Doc {
    record: MonitorRecord,
    changes: Vec<HealthChange>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Newest revision per key, written here or seen.
    revision: HashMap<String, u64>,
    /// The monitor id of each key, for a deleted one.
    id: HashMap<String, String>,
}

#[derive(Debug)]
pub struct KvMonitors {
    kv: kv::Store,
    /// Where the blocking calls of `MonitorStore` run their requests.
    rt: tokio::runtime::Handle,
    seen: Mutex<Seen>,
}

/// `m.` and the monitor id as one KV key token (`kv_token`).
fn key(id: &str) -> String {
    format!("m.{}", kv_token(id))
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("NATS: {e}"))
}

/// The monitor in `entry`, if it is a stored one of ours.
fn doc_of(entry: &Entry) -> Option<Doc> {
    if entry.operation != Operation::Put {
        return None;
    }
    let doc: Doc = serde_json::from_slice(&entry.value).ok()?;
    (key(&doc.record.id()) == entry.key).then_some(doc)
}

impl KvMonitors {
    /// The bucket's monitors, ready for `Monitors::new`.
    pub async fn open(kv: kv::Store) -> Result<(Arc<KvMonitors>, Vec<MonitorRecord>), StoreError> {
        let me = Arc::new(KvMonitors {
            kv,
            rt: tokio::runtime::Handle::current(),
            seen: Mutex::default(),
        });
        let records = kv_at_start("monitors", || me.load()).await?;
        Ok((me, records))
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        // Plain bookkeeping, still whole after a panic elsewhere.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, k: &str, revision: u64, id: &str) {
        let mut seen = self.seen();
        let last = seen.revision.entry(k.to_string()).or_insert(0);
        *last = (*last).max(revision);
        seen.id.insert(k.to_string(), id.to_string());
    }

    /// Whether `revision` of `k` is newer than any seen; it is then seen.
    fn fresh(&self, k: &str, revision: u64) -> bool {
        let mut seen = self.seen();
        let last = seen.revision.entry(k.to_string()).or_insert(0);
        let fresh = revision > *last;
        *last = (*last).max(revision);
        fresh
    }

    async fn load(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        let mut out = Vec::new();
        let mut keys = self.kv.keys().await.map_err(failed)?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(failed)?;
            if kv_is_probe(&k) {
                continue;
            }
            let Some(entry) = self.kv.entry(k).await.map_err(failed)? else {
                continue;
            };
            if let Some(doc) = doc_of(&entry) {
                self.note(&entry.key, entry.revision, &doc.record.id());
                out.push(doc.record);
            }
        }
        Ok(out)
    }

    /// What `k` holds now, as `Put::Lost` reports it.
    async fn lost(&self, k: &str) -> Result<Put, StoreError> {
        let entry = self.kv.entry(k).await.map_err(failed)?;
        let revision = entry.as_ref().map_or(0, |e| e.revision);
        let current = entry.as_ref().and_then(doc_of).map(|d| d.record);
        if let Some(rec) = &current {
            self.note(k, revision, &rec.id());
        }
        Ok(Put::Lost { current, revision })
    }

    async fn put(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
        base: u64,
    ) -> Result<Put, StoreError> {
        let id = record.id();
        let k = key(&id);
        let entry = self.kv.entry(k.as_str()).await.map_err(failed)?;
        let stored = entry.as_ref().and_then(doc_of);
        // A deleted key counts as no monitor: revision 0.
        let at = match (&entry, &stored) {
            (Some(e), Some(_)) => e.revision,
            _ => 0,
        };
        if at != base {
            return self.lost(&k).await;
        }
        let mut changes = stored.map(|d| d.changes).unwrap_or_default();
        if let Some(c) = change {
            changes.retain(|x| x.seq != c.seq);
            changes.push(c.clone());
        }
        let cut = record.next_seq.saturating_sub(keep);
        changes.retain(|c| c.seq >= cut);
        let doc = Doc {
            record: record.clone(),
            changes,
        };
        let json: bytes::Bytes = serde_json::to_vec(&doc).map_err(failed)?.into();
        let written = match &entry {
            Some(e) => match kv_heard(|| self.kv.update(&k, json.clone(), e.revision)).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(None),
                Err(e) if lost_race(&e) => Err(None),
                Err(e) => Err(Some(failed(e))),
            },
            None => match kv_heard(|| self.kv.create(&k, json.clone())).await {
                Ok(revision) => Ok(revision),
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err(None),
                Err(e) if lost_race(&e) => Err(None),
                Err(e) => Err(Some(failed(e))),
            },
        };
        match written {
            Ok(revision) => {
                self.note(&k, revision, &id);
                Ok(Put::Done(revision))
            }
            // Another node wrote in between. (What `lost` reads may be a
            // replica's older copy: then nothing is adopted, and the watch
            // brings the winner's state.)
            Err(None) => self.lost(&k).await,
            Err(Some(e)) => Err(e),
        }
    }

    async fn changes(&self, id: &str) -> Result<Vec<HealthChange>, StoreError> {
        let entry = self.kv.entry(key(id)).await.map_err(failed)?;
        Ok(entry
            .as_ref()
            .and_then(doc_of)
            .map(|d| d.changes)
            .unwrap_or_default())
    }
}

impl MonitorStore for KvMonitors {
    /// Blocks on NATS: call it from the blocking pool, as the service does.
    fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        self.rt.block_on(self.load())
    }

    fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
        base: u64,
    ) -> Result<Put, StoreError> {
        self.rt.block_on(self.put(record, change, keep, base))
    }

    fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError> {
        let id = monitor_id(owner, topic);
        self.rt
            .block_on(kv_heard(|| self.kv.delete(key(&id))))
            .map_err(failed)
    }

    fn monitor_changes(&self, owner: &str, topic: &str) -> Result<Vec<HealthChange>, StoreError> {
        self.rt.block_on(self.changes(&monitor_id(owner, topic)))
    }

    fn revision(&self, id: &str) -> u64 {
        self.seen().revision.get(&key(id)).copied().unwrap_or(0)
    }

    fn ping_write_every(&self) -> Millis {
        SHARED_PING_WRITE_EVERY
    }
}

/// Applies other nodes' monitor changes as they come (`follow_bucket`;
/// the history it replays on a new watch is skipped by revision).
pub async fn watch(
    store: Arc<KvMonitors>,
    monitors: Monitors,
    node: String,
    stop: CancellationToken,
) {
    let bucket = store.kv.clone();
    follow_bucket(bucket, &node, "monitors", stop, |e| {
        apply(&store, &monitors, e);
        std::future::ready(())
    })
    .await;
}

fn apply(store: &KvMonitors, monitors: &Monitors, entry: Entry) {
    let (id, current) = match entry.operation {
        Operation::Put => match doc_of(&entry) {
            Some(doc) => (doc.record.id(), Some(doc.record)),
            None => return,
        },
        Operation::Delete | Operation::Purge => match store.seen().id.get(&entry.key).cloned() {
            Some(id) => (id, None),
            None => return,
        },
    };
    if !store.fresh(&entry.key, entry.revision) {
        return;
    }
    store.seen().id.insert(entry.key.clone(), id.clone());
    tracing::debug!(monitor = %id.replace('\n', " "), "monitor changed on another node");
    monitors.apply_stored(&id, current, entry.revision);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_and_distinct() {
        assert_eq!(key(&monitor_id("alice", "alice/t")), "m.alice=0Aalice=2Ft");
        assert_ne!(
            key(&monitor_id("alice", "alice/a.b")),
            key(&monitor_id("alice", "alice/a/b"))
        );
    }
}
