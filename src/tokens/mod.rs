//! HTTP access tokens (SPEC §11.1): `ssh host token create|ls|rm`, and who
//! an HTTP request with `Authorization: Bearer sp_…` (or `?token=`) is.
//!
//! Tokens live in memory, keyed by the SHA-256 of their secret, and are
//! written through to a [`TokenStore`] (the embedded store, or with
//! `--broker nats://…` a KV bucket every node shares and watches:
//! `shared`), so they survive restarts and work on every node. Each live
//! token carries a cancellation token, a child of the server's shutdown:
//! every HTTP stream opened with it watches that, so `token rm` closes
//! them at once. Lookups take one short lock and do no I/O.
//!
//! Bounds: [`MAX_TOKENS_PER_USER`] per user, [`MAX_TOKENS_PER_ANONYMOUS`]
//! per anonymous key (keys are free to make), [`MAX_TOKENS`] on the whole
//! server; names of at most 64 bytes, at most 16 scope patterns each.

mod record;
pub mod secret;
pub mod shared;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

pub use record::{MAX_NAME_LEN, MAX_SCOPE_PATTERNS, TokenRecord, format_time, valid_name};

use crate::identity::Identity;
use crate::store::StoreError;

/// Most tokens one user may hold at once (expired ones are dropped first).
pub const MAX_TOKENS_PER_USER: usize = 50;
/// The same for an anonymous key user (`fp-…`).
pub const MAX_TOKENS_PER_ANONYMOUS: usize = 5;
/// Most tokens on the server, whoever holds them.
pub const MAX_TOKENS: usize = 100_000;

/// Where tokens are kept durably: `hash → record as JSON`. Calls block.
pub trait TokenStore: Send + Sync + std::fmt::Debug + 'static {
    fn load_tokens(&self) -> Result<Vec<(String, String)>, StoreError>;
    /// Stores `user`'s token, unless the store already holds `limit` of
    /// theirs: then `Ok(false)`. A store several nodes share is where the
    /// per-user bound can hold for all of them; the embedded one leaves it
    /// to `Tokens`' own check and says `true`.
    fn put_token(
        &self,
        hash: &str,
        json: &str,
        user: &str,
        limit: usize,
    ) -> Result<bool, StoreError>;
    fn remove_token(&self, hash: &str, user: &str) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("too many tokens for {0} (limit {1}); remove one with token rm ID")]
    TooMany(String, usize),
    #[error("too many tokens on this server ({MAX_TOKENS}); try again later")]
    ServerFull,
    #[error("no token with id {0}")]
    NotFound(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Why a presented token is refused (HTTP 401).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// What `token create` asks for, already checked.
#[derive(Debug, Clone, Default)]
pub struct NewToken {
    pub name: Option<String>,
    /// Full-name patterns.
    pub scope: Vec<String>,
    pub read_only: bool,
    pub expires: Option<Duration>,
}

/// A token in `token ls`.
#[derive(Debug, Clone)]
pub struct Listed {
    pub record: TokenRecord,
    /// Unix ms of the last request that used it (since this start).
    pub last_used_ms: Option<u64>,
}

/// An accepted token: who the request is, and a token cancelled when the
/// token is revoked or the server shuts down.
#[derive(Debug, Clone)]
pub struct Grant {
    pub record: TokenRecord,
    pub ended: CancellationToken,
}

#[derive(Debug)]
struct Live {
    record: TokenRecord,
    revoked: CancellationToken,
    last_used_ms: Arc<AtomicU64>,
}

#[derive(Debug)]
pub struct Tokens {
    store: Option<Arc<dyn TokenStore>>,
    /// Parent of every token's cancellation: the server's shutdown.
    shutdown: CancellationToken,
    live: Mutex<HashMap<String, Live>>,
    /// Held by a change from its store write to its apply, and by a change
    /// another node made (`apply_stored`) while it is checked and applied,
    /// so an older echo never undoes a newer change.
    writes: tokio::sync::Mutex<()>,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Tokens {
    /// Tokens kept only in memory (no store).
    pub fn in_memory(shutdown: CancellationToken) -> Tokens {
        Tokens {
            store: None,
            shutdown,
            live: Mutex::new(HashMap::new()),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Every stored token; a row that does not parse is skipped with a
    /// warning (it can only be used again by recreating it).
    pub fn open(
        store: Arc<dyn TokenStore>,
        shutdown: CancellationToken,
    ) -> Result<Tokens, StoreError> {
        let rows = store.load_tokens()?;
        Ok(Tokens::with_rows(store, rows, shutdown))
    }

    /// `open` with the rows already loaded (a store that is read
    /// asynchronously, as `shared` is).
    pub fn with_rows(
        store: Arc<dyn TokenStore>,
        rows: Vec<(String, String)>,
        shutdown: CancellationToken,
    ) -> Tokens {
        let mut live = HashMap::new();
        for (hash, record) in parse_rows(rows) {
            live.insert(hash, Live::new(record, &shutdown));
        }
        Tokens {
            store: Some(store),
            shutdown,
            live: Mutex::new(live),
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// Another node changed `user`'s tokens: `rows` are all of theirs now.
    /// New ones are taken in, missing ones revoked (their streams closed),
    /// if `fresh` (asked under the write lock) says the change is newer
    /// than any this node made or saw.
    pub async fn apply_stored(
        &self,
        user: &str,
        rows: Vec<(String, String)>,
        fresh: impl FnOnce() -> bool,
    ) {
        let _writing = self.writes.lock().await;
        if !fresh() {
            return;
        }
        let rows: HashMap<String, TokenRecord> =
            parse_rows(rows).filter(|(_, r)| r.user == user).collect();
        let mut live = self.lock();
        let gone: Vec<String> = live
            .iter()
            .filter(|(h, l)| l.record.user == user && !rows.contains_key(*h))
            .map(|(h, _)| h.clone())
            .collect();
        for hash in gone {
            if let Some(l) = live.remove(&hash) {
                l.revoked.cancel();
            }
        }
        for (hash, record) in rows {
            live.entry(hash)
                .or_insert_with(|| Live::new(record, &self.shutdown));
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Live>> {
        // Poisoning only means a panic elsewhere; entries are replaced whole.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes a token for `owner`; returns the secret (shown once) and the record.
    pub async fn create(
        &self,
        owner: &Identity,
        spec: NewToken,
    ) -> Result<(String, TokenRecord), TokenError> {
        let now = now_ms();
        let _writing = self.writes.lock().await;
        self.drop_expired(&owner.name, now).await?;
        let limit = match owner.anonymous {
            true => MAX_TOKENS_PER_ANONYMOUS,
            false => MAX_TOKENS_PER_USER,
        };
        self.has_room(&owner.name, limit)?;
        let id = secret::new_id();
        let record = TokenRecord {
            name: spec.name.unwrap_or_else(|| id.clone()),
            id,
            user: owner.name.clone(),
            fingerprint: owner.fingerprint.clone(),
            scope: spec.scope,
            read_only: spec.read_only,
            created_ms: now,
            expires_ms: spec
                .expires
                .map(|d| now.saturating_add(d.as_millis() as u64)),
        };
        let token = secret::generate();
        let hash = secret::hash(&token);
        let json = serde_json::to_string(&record)
            .map_err(|e| StoreError::Failed(format!("encoding a token: {e}")))?;
        let user = owner.name.clone();
        let stored = self
            .blocking(true, move |s| s.put_token(&hash, &json, &user, limit))
            .await?;
        if !stored {
            return Err(TokenError::TooMany(owner.name.clone(), limit));
        }
        // Checked again under the lock: two creates at once may not both
        // take the last slot. The loser's row is removed again.
        let hash = secret::hash(&token);
        let room = {
            let mut live = self.lock();
            let room = room_in(&live, &owner.name, limit);
            if room.is_ok() {
                live.insert(hash.clone(), Live::new(record.clone(), &self.shutdown));
            }
            room
        };
        if let Err(e) = room {
            let user = owner.name.clone();
            self.blocking((), move |s| s.remove_token(&hash, &user))
                .await?;
            return Err(e);
        }
        Ok((token, record))
    }

    fn has_room(&self, user: &str, limit: usize) -> Result<(), TokenError> {
        room_in(&self.lock(), user, limit)
    }

    async fn drop_expired(&self, user: &str, now: u64) -> Result<(), StoreError> {
        let gone: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, l)| l.record.user == user && l.record.expired(now))
            .map(|(h, _)| h.clone())
            .collect();
        for hash in gone {
            let (h, u) = (hash.clone(), user.to_string());
            self.blocking((), move |s| s.remove_token(&h, &u)).await?;
            if let Some(l) = self.lock().remove(&hash) {
                l.revoked.cancel();
            }
        }
        Ok(())
    }

    /// `user`'s tokens (every user's with `None`), by creation time.
    pub fn list(&self, user: Option<&str>) -> Vec<Listed> {
        let mut out: Vec<Listed> = self
            .lock()
            .values()
            .filter(|l| user.is_none_or(|u| l.record.user == u))
            .map(|l| Listed {
                record: l.record.clone(),
                last_used_ms: Some(l.last_used_ms.load(Ordering::Relaxed)).filter(|&t| t > 0),
            })
            .collect();
        out.sort_by(|a, b| {
            (a.record.created_ms, &a.record.id).cmp(&(b.record.created_ms, &b.record.id))
        });
        out
    }

    /// Revokes the token `id`: gone from the store, refused from now on,
    /// and every stream using it is closed. Only its user or an admin may;
    /// to anyone else it does not exist.
    pub async fn remove(&self, actor: &Identity, id: &str) -> Result<TokenRecord, TokenError> {
        let _writing = self.writes.lock().await;
        let found = self
            .lock()
            .iter()
            .find(|(_, l)| l.record.id == id && (actor.admin || l.record.user == actor.name))
            .map(|(h, l)| (h.clone(), l.record.clone()));
        let Some((hash, record)) = found else {
            return Err(TokenError::NotFound(id.to_string()));
        };
        let (h, u) = (hash.clone(), record.user.clone());
        self.blocking((), move |s| s.remove_token(&h, &u)).await?;
        if let Some(l) = self.lock().remove(&hash) {
            l.revoked.cancel();
        }
        Ok(record)
    }

    /// Who a presented secret is.
    pub fn authenticate(&self, presented: &str) -> Result<Grant, Refused> {
        if !secret::looks_like_token(presented) {
            return Err(Refused::Invalid);
        }
        let hash = secret::hash(presented);
        let live = self.lock();
        let l = live.get(&hash).ok_or(Refused::Invalid)?;
        let now = now_ms();
        if l.record.expired(now) {
            return Err(Refused::Expired);
        }
        l.last_used_ms.store(now, Ordering::Relaxed);
        Ok(Grant {
            record: l.record.clone(),
            ended: l.revoked.clone(),
        })
    }

    /// Runs `f` on the store in the blocking pool; `none` without a store.
    async fn blocking<T: Send + 'static>(
        &self,
        none: T,
        f: impl FnOnce(&dyn TokenStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let Some(store) = self.store.clone() else {
            return Ok(none);
        };
        tokio::task::spawn_blocking(move || f(store.as_ref()))
            .await
            .map_err(|e| StoreError::Failed(format!("store task failed: {e}")))?
    }
}

/// Stored rows that parse; one that does not is skipped with a warning
/// (it can only be used again by recreating it).
fn parse_rows(rows: Vec<(String, String)>) -> impl Iterator<Item = (String, TokenRecord)> {
    rows.into_iter()
        .filter_map(|(hash, json)| match serde_json::from_str(&json) {
            Ok(record) => Some((hash, record)),
            Err(e) => {
                tracing::warn!(error = %e, "a stored token does not parse; skipped");
                None
            }
        })
}

/// Room for one more token of `user` (at most `limit`), and on the server.
fn room_in(live: &HashMap<String, Live>, user: &str, limit: usize) -> Result<(), TokenError> {
    if live.len() >= MAX_TOKENS {
        return Err(TokenError::ServerFull);
    }
    if live.values().filter(|l| l.record.user == user).count() >= limit {
        return Err(TokenError::TooMany(user.to_string(), limit));
    }
    Ok(())
}

impl Live {
    /// An expiring token ends its streams at expiry as `token rm` would:
    /// one sleeping task per such token, gone at expiry or revocation.
    fn new(record: TokenRecord, shutdown: &CancellationToken) -> Live {
        let revoked = shutdown.child_token();
        if let (Some(expires), Ok(rt)) = (record.expires_ms, tokio::runtime::Handle::try_current())
        {
            let left = Duration::from_millis(expires.saturating_sub(now_ms()));
            let end = revoked.clone();
            rt.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(left) => end.cancel(),
                    () = end.cancelled() => {}
                }
            });
        }
        Live {
            record,
            revoked,
            last_used_ms: Arc::new(AtomicU64::new(0)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    fn alice(admin: bool) -> Identity {
        Identity {
            name: if admin { "root".into() } else { "alice".into() },
            fingerprint: "SHA256:a".into(),
            admin,
            anonymous: false,
        }
    }

    #[tokio::test]
    async fn create_authenticate_revoke() {
        let tokens = Tokens::in_memory(CancellationToken::new());
        let (secret, rec) = tokens
            .create(&alice(false), NewToken::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let grant = tokens
            .authenticate(&secret)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(grant.record.user, "alice");
        assert_eq!(
            tokens.authenticate("sp_nope").map(|_| ()),
            Err(Refused::Invalid)
        );
        assert!(tokens.list(Some("alice"))[0].last_used_ms.is_some());
        let bob = Identity {
            name: "bob".into(),
            ..alice(false)
        };
        assert!(matches!(
            tokens.remove(&bob, &rec.id).await,
            Err(TokenError::NotFound(_))
        ));
        assert!(tokens.remove(&alice(true), &rec.id).await.is_ok());
        assert!(grant.ended.is_cancelled());
        assert!(tokens.authenticate(&secret).is_err());
    }

    /// Another node's view of a user's tokens: new ones are taken in, a
    /// missing one is revoked, and a change `fresh` calls stale is not
    /// applied at all.
    #[tokio::test]
    async fn stored_changes_from_other_nodes_apply_when_fresh() {
        let tokens = Tokens::in_memory(CancellationToken::new());
        let (mine, _) = tokens
            .create(&alice(false), NewToken::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let grant = tokens.authenticate(&mine).unwrap_or_else(|e| panic!("{e}"));
        let other = secret::generate();
        let record = TokenRecord {
            id: "other".into(),
            name: "other".into(),
            ..grant.record.clone()
        };
        let json = serde_json::to_string(&record).unwrap_or_else(|e| panic!("{e}"));
        let rows = vec![(secret::hash(&other), json)];
        tokens.apply_stored("alice", rows.clone(), || false).await;
        assert!(tokens.authenticate(&other).is_err(), "stale change applied");
        assert!(!grant.ended.is_cancelled());
        tokens.apply_stored("alice", rows, || true).await;
        assert!(tokens.authenticate(&other).is_ok());
        assert!(
            grant.ended.is_cancelled(),
            "a token gone elsewhere is revoked"
        );
        assert!(tokens.authenticate(&mine).is_err());
        // Rows of another user under alice's key are not taken in.
        let bob = TokenRecord {
            user: "bob".into(),
            ..record
        };
        let json = serde_json::to_string(&bob).unwrap_or_else(|e| panic!("{e}"));
        let spoof = secret::generate();
        tokens
            .apply_stored("alice", vec![(secret::hash(&spoof), json)], || true)
            .await;
        assert!(tokens.authenticate(&spoof).is_err());
        assert!(tokens.authenticate(&other).is_err(), "alice has none now");
    }

    #[tokio::test]
    async fn bounded_per_user_and_expiry_refused() {
        let tokens = Tokens::in_memory(CancellationToken::new());
        for _ in 0..MAX_TOKENS_PER_USER {
            assert!(
                tokens
                    .create(&alice(false), NewToken::default())
                    .await
                    .is_ok()
            );
        }
        assert!(matches!(
            tokens.create(&alice(false), NewToken::default()).await,
            Err(TokenError::TooMany(_, MAX_TOKENS_PER_USER))
        ));
        let spec = NewToken {
            expires: Some(Duration::ZERO),
            ..NewToken::default()
        };
        let (secret, _) = tokens
            .create(&alice(true), spec)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            tokens.authenticate(&secret).map(|_| ()),
            Err(Refused::Expired)
        );
    }
}
