//! Tokens every node shares (SPEC §11.1, §14): with `--broker nats://…` a
//! token made on one node must let a request in on any other, and `token
//! rm` must shut it out everywhere at once.
//!
//! So the records (hashes only, as the embedded store keeps them) live in
//! the KV bucket `sp_tokens`, one key per user holding all of that user's
//! tokens. One key per user makes the per-user bound hold for the whole
//! cluster: a change is a compare-and-set on the user's key, refused when
//! the bound is reached, so two nodes cannot both take the last slot.
//! Every node loads the bucket at start and watches it, applying each
//! user's set as it changes (`Tokens::apply_stored`: new tokens taken in,
//! removed ones revoked and their streams closed). Revisions, checked
//! under `Tokens`' write lock, keep a node's own echo from undoing a newer
//! change.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use async_nats::jetstream::kv::{self, CreateErrorKind, Entry, Operation, UpdateErrorKind};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{TokenStore, Tokens};
use crate::broker::{follow_bucket, kv_at_start, kv_heard, kv_is_probe, kv_lost_race, kv_token};
use crate::store::StoreError;

pub const TOKENS_BUCKET: &str = "sp_tokens";
/// Compare-and-set rounds lost to other nodes before giving up.
const MAX_ROUNDS: usize = 16;

/// One user's tokens: hash → record as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Doc {
    user: String,
    tokens: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Seen {
    /// Newest revision per key, written here or seen in the watch.
    revision: HashMap<String, u64>,
    /// The user of each key, for a key deleted by hand.
    user: HashMap<String, String>,
}

#[derive(Debug)]
pub struct KvTokens {
    kv: kv::Store,
    /// Where the blocking calls of `TokenStore` run their requests.
    rt: tokio::runtime::Handle,
    seen: Mutex<Seen>,
}

/// `u.` and the user as one KV key token (`kv_token`).
fn key(user: &str) -> String {
    format!("u.{}", kv_token(user))
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Failed(format!("NATS: {e}"))
}

impl KvTokens {
    /// The bucket's tokens, ready for `Tokens::with_rows`.
    pub async fn open(kv: kv::Store) -> Result<(Arc<KvTokens>, Vec<(String, String)>), StoreError> {
        let me = Arc::new(KvTokens {
            kv,
            rt: tokio::runtime::Handle::current(),
            seen: Mutex::default(),
        });
        let rows = kv_at_start("tokens", || me.load()).await?;
        Ok((me, rows))
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        // Plain bookkeeping, still whole after a panic elsewhere.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn load(&self) -> Result<Vec<(String, String)>, StoreError> {
        let mut rows = Vec::new();
        let mut keys = self.kv.keys().await.map_err(failed)?;
        while let Some(k) = keys.next().await {
            let k = k.map_err(failed)?;
            if kv_is_probe(&k) {
                continue;
            }
            let Some(entry) = self.kv.entry(k).await.map_err(failed)? else {
                continue;
            };
            if entry.operation != Operation::Put {
                continue;
            }
            if let Some(doc) = self.doc_of(&entry) {
                self.note(&entry.key, entry.revision, &doc.user);
                rows.extend(doc.tokens);
            }
        }
        Ok(rows)
    }

    /// The user's document in `entry`, if it is one of ours.
    fn doc_of(&self, entry: &Entry) -> Option<Doc> {
        let doc: Doc = serde_json::from_slice(&entry.value).ok()?;
        (key(&doc.user) == entry.key).then_some(doc)
    }

    fn note(&self, k: &str, revision: u64, user: &str) {
        let mut seen = self.seen();
        let last = seen.revision.entry(k.to_string()).or_insert(0);
        *last = (*last).max(revision);
        seen.user.insert(k.to_string(), user.to_string());
    }

    /// Whether `revision` of `k` is newer than any seen; it is then seen.
    fn fresh(&self, k: &str, revision: u64) -> bool {
        let mut seen = self.seen();
        let last = seen.revision.entry(k.to_string()).or_insert(0);
        let fresh = revision > *last;
        *last = (*last).max(revision);
        fresh
    }

    /// Changes `user`'s document with `change` (which may refuse: `false`)
    /// by compare-and-set, again if another node changed it meanwhile.
    async fn change(
        &self,
        user: &str,
        change: impl Fn(&mut Doc) -> bool,
    ) -> Result<bool, StoreError> {
        let k = key(user);
        for _ in 0..MAX_ROUNDS {
            let entry = self.kv.entry(k.clone()).await.map_err(failed)?;
            let mut doc = entry
                .as_ref()
                .filter(|e| e.operation == Operation::Put)
                .and_then(|e| self.doc_of(e))
                .unwrap_or_else(|| Doc {
                    user: user.to_string(),
                    tokens: BTreeMap::new(),
                });
            if !change(&mut doc) {
                return Ok(false);
            }
            let json: bytes::Bytes = serde_json::to_vec(&doc).map_err(failed)?.into();
            let written = match &entry {
                Some(e) => match kv_heard(|| self.kv.update(&k, json.clone(), e.revision)).await {
                    Ok(revision) => Ok(revision),
                    Err(e)
                        if e.kind() == UpdateErrorKind::WrongLastRevision || kv_lost_race(&e) =>
                    {
                        Err(None)
                    }
                    Err(e) => Err(Some(failed(e))),
                },
                None => match kv_heard(|| self.kv.create(&k, json.clone())).await {
                    Ok(revision) => Ok(revision),
                    Err(e) if e.kind() == CreateErrorKind::AlreadyExists => Err(None),
                    Err(e) => Err(Some(failed(e))),
                },
            };
            match written {
                Ok(revision) => {
                    self.note(&k, revision, user);
                    return Ok(true);
                }
                // Another node changed it meanwhile: read it again.
                Err(None) => continue,
                Err(Some(e)) => return Err(e),
            }
        }
        Err(StoreError::Failed(
            "NATS: too many concurrent token changes; try again".into(),
        ))
    }
}

impl TokenStore for KvTokens {
    /// Blocks on NATS: call it from the blocking pool, as `Tokens` does.
    fn load_tokens(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.rt.block_on(self.load())
    }

    fn put_token(
        &self,
        hash: &str,
        json: &str,
        user: &str,
        limit: usize,
    ) -> Result<bool, StoreError> {
        self.rt.block_on(self.change(user, |doc| {
            if doc.tokens.len() >= limit && !doc.tokens.contains_key(hash) {
                return false;
            }
            doc.tokens.insert(hash.to_string(), json.to_string());
            true
        }))
    }

    fn remove_token(&self, hash: &str, user: &str) -> Result<(), StoreError> {
        self.rt
            .block_on(self.change(user, |doc| {
                doc.tokens.remove(hash);
                true
            }))
            .map(|_| ())
    }
}

/// Applies other nodes' token changes as they come (`follow_bucket`; the
/// history it replays on a new watch is skipped by revision).
pub async fn watch(
    store: Arc<KvTokens>,
    tokens: Arc<Tokens>,
    node: String,
    stop: CancellationToken,
) {
    let bucket = store.kv.clone();
    follow_bucket(bucket, &node, "tokens", stop, |e| {
        let (store, tokens) = (Arc::clone(&store), Arc::clone(&tokens));
        async move { apply(&store, &tokens, e).await }
    })
    .await;
}

async fn apply(store: &KvTokens, tokens: &Tokens, entry: Entry) {
    let (user, rows) = match entry.operation {
        Operation::Put => match store.doc_of(&entry) {
            Some(doc) => (doc.user, doc.tokens.into_iter().collect()),
            None => return,
        },
        // Deleted by hand (`nats kv del`): that user has none left.
        Operation::Delete | Operation::Purge => match store.seen().user.get(&entry.key).cloned() {
            Some(user) => (user, Vec::new()),
            None => return,
        },
    };
    let (k, revision) = (entry.key.clone(), entry.revision);
    tokens
        .apply_stored(&user, rows, || store.fresh(&k, revision))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_valid_kv_keys() {
        assert_eq!(key("alice"), "u.alice");
        assert_eq!(key("fp-ab12"), "u.fp-ab12");
        assert_eq!(key("a.b"), "u.a=2Eb");
        assert_ne!(key("a.b"), key("a=2Eb"));
    }
}
