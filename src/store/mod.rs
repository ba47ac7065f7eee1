//! The embedded durable store (SPEC §10) in the data dir:
//!
//! - `sshpipe.redb`: access lists, HTTP token hashes, the index of queued
//!   messages (topic, owner, size, where the body is), the messages set
//!   aside as damaged, and health monitors with their bounded history
//!   (`monitors`);
//! - `queue/N.msg`: one file per queued message body, in chunks that each
//!   carry a CRC-32 (see `bodies`);
//! - `damaged/N.msg`: bodies of messages set aside, kept for an admin.
//!
//! redb keeps the small things because it is a single file with real
//! transactions and fsync on commit: a crash only ever loses a commit that
//! was not yet acknowledged. Bodies live beside it because redb grows its
//! file by doubling up to 4 GiB regions and rounds a 256 KiB value up to a
//! 512 KiB page run, so with 256 MiB queued its file was 539 MB and grew to
//! 1.08 GB as messages were drained; a body file takes its own size and is
//! gone the moment its message is delivered (SPEC §8's bound, and the space
//! a full disk gets back).
//!
//! Failures: a file that cannot be opened is a start-up error naming it and
//! the cause (`open`), never a panic (`unwind`) and never a silent reset. At
//! run time an I/O error fails only the operation it hits; the store closes
//! redb (which refuses all work after one I/O error), reports itself
//! unavailable, and reopens as soon as it can (`health`).
//!
//! Every call here blocks (file I/O, fsync); async code goes through
//! `tokio::task::spawn_blocking`.

mod acls;
mod bodies;
mod health;
mod migrate;
mod monitors;
mod open;
mod queue;
mod sweep;
mod tokens;
mod unwind;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use redb::{Database, ReadableDatabase, TableDefinition};

pub use bodies::{Body, BodyWriter, Damage, MAX_CHUNK_BYTES};
pub use health::StoreHealth;
pub use monitors::{HealthChange, MonitorRecord, monitor_id};
pub use open::OpenCause;
pub use queue::{DamagedMessage, StoredMessage};

/// redb's page cache. Its default (1 GiB) is far more than the index needs.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The store's file name inside the data dir.
pub const FILE_NAME: &str = "sshpipe.redb";
/// Bodies of queued messages, one file each.
pub const QUEUE_DIR: &str = "queue";
/// Bodies of messages set aside as damaged.
pub const DAMAGED_DIR: &str = "damaged";

/// Private topics' access lists: full topic name → entries, one per line.
pub(crate) const ACLS: TableDefinition<&str, &str> = TableDefinition::new("acls");
/// HTTP tokens: SHA-256 of the secret (hex) → record as JSON (`crate::tokens`).
pub(crate) const TOKENS: TableDefinition<&str, &str> = TableDefinition::new("tokens");
/// Linked (acknowledged) messages by queue sequence number:
/// (topic, user, size, created unix ms, data id, chunk count).
pub(crate) const MESSAGES: TableDefinition<u64, (&str, &str, u64, u64, u64, u32)> =
    TableDefinition::new("messages");
/// A damaged table row: a message row, then when it was set aside (unix
/// ms) and what was wrong.
type DamagedRow = (
    &'static str,
    &'static str,
    u64,
    u64,
    u64,
    u32,
    u64,
    &'static str,
);
/// Messages set aside because their body failed its checksum, by sequence
/// number.
pub(crate) const DAMAGED: TableDefinition<u64, DamagedRow> = TableDefinition::new("damaged");
/// Store-wide facts: `format` (the layout version), `probe` (last health probe).
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Format 1 kept message bodies in redb, in this table; `open` moves them out.
pub(crate) const OLD_CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// At start-up: the store cannot be used. Names the file and the cause.
    #[error("cannot open the store {}: {cause}", path.display())]
    Open { path: PathBuf, cause: OpenCause },
    /// The file system is full (or a quota is reached).
    #[error("server storage is full")]
    Full,
    /// An I/O error (or a damaged page) hit this operation; the store is
    /// being reopened. Users see this line, so it names no server path.
    #[error("the server's store failed ({0})")]
    Failed(String),
}

/// Cheap to clone; every clone is the same store.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: PathBuf,
    queue_dir: PathBuf,
    damaged_dir: PathBuf,
    /// `None` after a failure closed it, until it is reopened.
    db: RwLock<Option<Arc<Database>>>,
    /// One reopen at a time.
    reopening: Mutex<()>,
    health: health::Health,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; the guarded values are
    // replaced whole, never left half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Store {
    /// Opens (or creates) the store in `data_dir`, makes sure the tables
    /// exist, moves a format-1 store's bodies out of redb, and removes the
    /// bodies no message links to: the remains of a pub cut off mid-store,
    /// which was never acknowledged.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let file = data_dir.join(FILE_NAME);
        let queue_dir = data_dir.join(QUEUE_DIR);
        let damaged_dir = data_dir.join(DAMAGED_DIR);
        let mut db = open::open_or_create(&file)?;
        open::prepare(&mut db, &file, &queue_dir, &damaged_dir)?;
        Ok(Store {
            inner: Arc::new(Inner {
                file,
                queue_dir,
                damaged_dir,
                db: RwLock::new(Some(Arc::new(db))),
                reopening: Mutex::new(()),
                health: health::Health::new(),
            }),
        })
    }

    /// The share of the data dir's file system that is free to
    /// unprivileged users, in percent (`None` if it cannot be read).
    pub fn free_percent(&self) -> Option<f64> {
        let st = nix::sys::statvfs::statvfs(self.path()).ok()?;
        let total = st.blocks() as f64;
        (total > 0.0).then(|| st.blocks_available() as f64 * 100.0 / total)
    }

    pub fn path(&self) -> &Path {
        &self.inner.file
    }

    /// The open database, reopening it first if a failure closed it.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        let current = self
            .inner
            .db
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match current {
            Some(db) => Ok(db),
            None => self.reopen(),
        }
    }

    fn reopen(&self) -> Result<Arc<Database>, StoreError> {
        let _one = lock(&self.inner.reopening);
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if let Some(db) = slot.as_ref() {
            return Ok(Arc::clone(db));
        }
        // Opening again is what redb asks for after an I/O error; it runs
        // redb's repair and the integrity check, like a start.
        let db = open::open_existing(&self.inner.file).map_err(|e| match e {
            StoreError::Open {
                cause: OpenCause::Io(e),
                ..
            } => classify_io(&e),
            // Our own handle, still held by work in flight: soon gone.
            StoreError::Open {
                cause: OpenCause::InUse,
                ..
            } => StoreError::Failed("it is being reopened after an error".into()),
            StoreError::Open { cause, .. } => StoreError::Failed(cause.to_string()),
            other => other,
        })?;
        let db = Arc::new(db);
        *slot = Some(Arc::clone(&db));
        tracing::debug!(file = %self.inner.file.display(), "store reopened");
        Ok(db)
    }

    /// Closes `db` (if it is still the open one) after it failed: redb
    /// answers every later call with "Previous I/O error occurred" until it
    /// is opened again. Work in flight keeps its own handle until it ends.
    fn close_failed(&self, db: &Arc<Database>) {
        let mut slot = self.inner.db.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|cur| Arc::ptr_eq(cur, db)) {
            *slot = None;
        }
    }

    /// Runs `f` in a write transaction committed with fsync and two-phase
    /// commit: a damaged newest commit is then an error at open, never a
    /// silent step back to the commit before it.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let db = self.db()?;
        let out = unwind::catch(|| -> Result<T, redb::Error> {
            let mut txn = db.begin_write()?;
            txn.set_two_phase_commit(true);
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        });
        self.settle(&db, out, "writing")
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let db = self.db()?;
        let out = unwind::catch(|| -> Result<T, redb::Error> {
            let txn = db.begin_read()?;
            f(&txn)
        });
        self.settle(&db, out, "reading")
    }

    fn settle<T>(
        &self,
        db: &Arc<Database>,
        out: Result<Result<T, redb::Error>, String>,
        doing: &str,
    ) -> Result<T, StoreError> {
        let cause = match out {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(e)) => e,
            Err(panic) => redb::Error::Corrupted(format!("redb could not go on: {panic}")),
        };
        self.close_failed(db);
        let err = match &cause {
            redb::Error::Io(io) => classify_io(io),
            other => StoreError::Failed(other.to_string()),
        };
        self.failed(&err, &cause.to_string(), doing, &self.inner.file);
        Err(err)
    }

    /// A body file could not be written: that operation fails, the store is
    /// unavailable until a probe succeeds.
    fn body_failed(&self, e: &io::Error, doing: &str, path: &Path) -> StoreError {
        let err = classify_io(e);
        self.failed(&err, &e.to_string(), doing, path);
        err
    }
}

/// Disk full and quota exceeded are one thing to a user: no room.
fn classify_io(e: &io::Error) -> StoreError {
    match e.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => StoreError::Full,
        _ => StoreError::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
