//! The embedded durable store (SPEC §10): one redb file, `sshpipe.redb`, in
//! the data dir, holding private access lists and queued messages.
//!
//! redb was chosen because it is a single file with real transactions and
//! fsync on commit: a crash can only ever lose a commit that was not yet
//! acknowledged, which is exactly the promise SPEC §10 makes to clients.
//! Every call here blocks (file I/O, fsync); async code goes through
//! `tokio::task::spawn_blocking`. A file that cannot be opened or read is an
//! error naming the file — never a silent reset that would lose messages.

mod acls;
mod queue;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, TableDefinition};

pub use queue::StoredMessage;

/// redb's page cache. Its default (1 GiB) kept every page of a large queued
/// message in memory while storing and reading it; a message streams through
/// the store chunk by chunk, so a small cache is all it needs (SPEC §8).
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// The store's file name inside the data dir.
pub const FILE_NAME: &str = "sshpipe.redb";

/// Private topics' access lists: full topic name → entries, one per line.
pub(crate) const ACLS: TableDefinition<&str, &str> = TableDefinition::new("acls");
/// Linked (acknowledged) messages by queue sequence number:
/// (topic, user, size, created unix ms, data id, chunk count).
pub(crate) const MESSAGES: TableDefinition<u64, (&str, &str, u64, u64, u64, u32)> =
    TableDefinition::new("messages");
/// Message bodies in chunks: (data id, chunk index) → bytes.
pub(crate) const CHUNKS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("chunks");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is part of the message, not a `source`: callers print one
    // line, and redb's own chain repeats itself.
    #[error("cannot open the store {}: {cause}{}", path.display(), open_hint(cause))]
    Open {
        path: PathBuf,
        cause: redb::DatabaseError,
    },
    #[error("store {}: {cause}", path.display())]
    Io { path: PathBuf, cause: redb::Error },
}

/// What to do about a store that does not open.
fn open_hint(cause: &redb::DatabaseError) -> &'static str {
    match cause {
        redb::DatabaseError::DatabaseAlreadyOpen => " (is another sshpipe using this data dir?)",
        _ => " (damaged or not an sshpipe store; move it aside to start with an empty one)",
    }
}

/// Cheap to clone; every clone is the same open file.
#[derive(Debug, Clone)]
pub struct Store {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

impl Store {
    /// Opens (or creates) `sshpipe.redb` in `data_dir`, makes sure the
    /// tables exist, and removes message chunks no message links to: the
    /// remains of a pub cut off mid-store, which was never acknowledged.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join(FILE_NAME);
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|cause| StoreError::Open {
                path: path.clone(),
                cause,
            })?;
        // It holds every user's queued data: readable by the server only,
        // like the host key.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            StoreError::Open {
                path: path.clone(),
                cause: redb::DatabaseError::Storage(redb::StorageError::Io(e)),
            }
        })?;
        let store = Store {
            db: Arc::new(db),
            path: Arc::new(path),
        };
        store.init()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(ACLS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(CHUNKS)?;
            Ok(())
        })?;
        let removed = self.remove_orphans()?;
        if removed > 0 {
            tracing::info!(
                chunks = removed,
                "removed chunks of unacknowledged messages"
            );
        }
        Ok(())
    }

    /// Runs `f` in a write transaction committed with fsync.
    pub(crate) fn write<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        self.write_with(redb::Durability::Immediate, f)
    }

    pub(crate) fn write_with<T>(
        &self,
        durability: redb::Durability,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let run = || -> Result<T, redb::Error> {
            let mut txn = self.db.begin_write()?;
            txn.set_durability(durability)?;
            let out = f(&txn)?;
            txn.commit()?;
            Ok(out)
        };
        run().map_err(|source| self.err(source))
    }

    /// Runs `f` in a read transaction.
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, redb::Error>,
    ) -> Result<T, StoreError> {
        let run = || -> Result<T, redb::Error> {
            let txn = self.db.begin_read()?;
            f(&txn)
        };
        run().map_err(|source| self.err(source))
    }

    fn err(&self, source: redb::Error) -> StoreError {
        StoreError::Io {
            path: self.path.to_path_buf(),
            cause: source,
        }
    }
}

#[cfg(test)]
mod tests;
