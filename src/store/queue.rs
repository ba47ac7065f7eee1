//! Queued messages on disk (SPEC §8, §10): the index rows in redb.
//!
//! A message's body is written to its own file first (`bodies`), then the
//! message is linked into the queue by one fsynced transaction. Only that
//! link acknowledges the message, so a crash mid-store leaves a body file
//! nobody links to; `Store::open` removes it. Removing a message removes
//! its row first, then its file: a crash in between leaves an orphan file,
//! never a row without a body.

use std::time::{SystemTime, UNIX_EPOCH};

use redb::ReadableTable;

use super::bodies::file_name;
use super::{DAMAGED, MESSAGES, Store, StoreError};

/// A linked message as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Position in the global queue order (later links get larger numbers).
    pub seq: u64,
    /// Full topic name.
    pub topic: String,
    /// Who queued it (limits are per user).
    pub user: String,
    pub size: u64,
    /// When it was acknowledged, in Unix milliseconds (for retention).
    pub created_ms: u64,
    /// Names its body file.
    pub data_id: u64,
    pub chunks: u32,
}

/// A message set aside because its body was damaged, kept for an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedMessage {
    pub msg: StoredMessage,
    /// When it was set aside, in Unix milliseconds.
    pub set_aside_ms: u64,
    /// What was wrong with it.
    pub reason: String,
}

pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

type Row<'a> = (&'a str, &'a str, u64, u64, u64, u32);

fn message(seq: u64, (topic, user, size, created_ms, data_id, chunks): Row<'_>) -> StoredMessage {
    StoredMessage {
        seq,
        topic: topic.to_string(),
        user: user.to_string(),
        size,
        created_ms,
        data_id,
        chunks,
    }
}

fn row(m: &StoredMessage) -> Row<'_> {
    (
        m.topic.as_str(),
        m.user.as_str(),
        m.size,
        m.created_ms,
        m.data_id,
        m.chunks,
    )
}

impl Store {
    /// Every linked message, oldest first.
    pub fn load_messages(&self) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(MESSAGES)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (seq, meta) = entry?;
                out.push(message(seq.value(), meta.value()));
            }
            Ok(out)
        })
    }

    /// Every message set aside as damaged, oldest first.
    pub fn damaged(&self) -> Result<Vec<DamagedMessage>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(DAMAGED)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (seq, meta) = entry?;
                let (topic, user, size, created_ms, data_id, chunks, set_aside_ms, reason) =
                    meta.value();
                out.push(DamagedMessage {
                    msg: message(
                        seq.value(),
                        (topic, user, size, created_ms, data_id, chunks),
                    ),
                    set_aside_ms,
                    reason: reason.to_string(),
                });
            }
            Ok(out)
        })
    }

    /// Links a fully written (and fsynced) body into the queue, durably:
    /// once this returns the message survives any crash.
    pub fn link(&self, m: &StoredMessage) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(MESSAGES)?.insert(m.seq, row(m))?;
            Ok(())
        })
    }

    /// Removes a linked message, then its body.
    pub fn remove_message(&self, seq: u64, data_id: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(MESSAGES)?.remove(seq)?;
            Ok(())
        })?;
        self.drop_body_logged(data_id);
        Ok(())
    }

    /// Drops the body of a message that will never be linked (or was just
    /// removed). A failure here only leaves an orphan, which the next start
    /// removes.
    pub fn drop_data(&self, data_id: u64) {
        self.drop_body_logged(data_id);
    }

    fn drop_body_logged(&self, data_id: u64) {
        if let Err(e) = self.drop_body(data_id) {
            tracing::warn!(error = %e, data_id, "cannot remove a message body; the next start will");
        }
    }

    /// Moves a linked message out of the queue for good, kept for an admin:
    /// its row to the damaged table, its body to `damaged/SEQ.msg`.
    /// Returns where the body now is.
    pub fn set_aside(
        &self,
        m: &StoredMessage,
        reason: &str,
    ) -> Result<std::path::PathBuf, StoreError> {
        self.write(|txn| {
            txn.open_table(MESSAGES)?.remove(m.seq)?;
            let (topic, user, size, created, data_id, chunks) = row(m);
            let kept = (
                topic,
                user,
                size,
                created,
                data_id,
                chunks,
                unix_ms(),
                reason,
            );
            txn.open_table(DAMAGED)?.insert(m.seq, kept)?;
            Ok(())
        })?;
        let from = self.inner.queue_dir.join(file_name(m.data_id));
        let to = self.inner.damaged_dir.join(file_name(m.seq));
        // Should the move fail, the next start moves it (the row says so).
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(error = %e, from = %from.display(), "cannot move a damaged body aside");
                Ok(from)
            }
            _ => Ok(to),
        }
    }
}
