//! Queued messages on disk (SPEC §8, §10).
//!
//! A message is written as chunks under a fresh *data id* in several
//! transactions, then linked into the queue by one final fsynced
//! transaction. Only that link acknowledges the message, so a crash
//! mid-store leaves chunks nobody links to; `Store::open` removes them.
//! Chunk transactions skip the fsync: the link's fsync makes them durable
//! too, and without a link they do not matter.

use std::collections::HashSet;

use redb::ReadableTable;

use super::{CHUNKS, MESSAGES, Store, StoreError};

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
    /// Key of its chunks.
    pub data_id: u64,
    pub chunks: u32,
}

impl Store {
    /// Every linked message, oldest first.
    pub fn load_messages(&self) -> Result<Vec<StoredMessage>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(MESSAGES)?;
            let mut out = Vec::new();
            for row in table.iter()? {
                let (seq, meta) = row?;
                let (topic, user, size, created_ms, data_id, chunks) = meta.value();
                out.push(StoredMessage {
                    seq: seq.value(),
                    topic: topic.to_string(),
                    user: user.to_string(),
                    size,
                    created_ms,
                    data_id,
                    chunks,
                });
            }
            Ok(out)
        })
    }

    /// Writes one chunk of a message not yet linked.
    pub fn put_chunk(&self, data_id: u64, index: u32, bytes: &[u8]) -> Result<(), StoreError> {
        self.write_with(redb::Durability::None, |txn| {
            txn.open_table(CHUNKS)?.insert((data_id, index), bytes)?;
            Ok(())
        })
    }

    /// Links a fully written message into the queue, durably: once this
    /// returns the message survives any crash.
    pub fn link(&self, m: &StoredMessage) -> Result<(), StoreError> {
        self.write(|txn| {
            let meta = (
                m.topic.as_str(),
                m.user.as_str(),
                m.size,
                m.created_ms,
                m.data_id,
                m.chunks,
            );
            txn.open_table(MESSAGES)?.insert(m.seq, meta)?;
            Ok(())
        })
    }

    /// One chunk of a message's body (`None`: no such chunk).
    pub fn chunk(&self, data_id: u64, index: u32) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(CHUNKS)?;
            Ok(table.get((data_id, index))?.map(|v| v.value().to_vec()))
        })
    }

    /// Drops the chunks of a message that will never be linked.
    pub fn drop_data(&self, data_id: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(CHUNKS)?;
            remove_chunks(&mut table, data_id)
        })
    }

    /// Removes a linked message and its body in one transaction.
    pub fn remove_message(&self, seq: u64, data_id: u64) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(MESSAGES)?.remove(seq)?;
            let mut table = txn.open_table(CHUNKS)?;
            remove_chunks(&mut table, data_id)
        })
    }

    /// Removes chunks no linked message refers to; returns how many.
    pub(super) fn remove_orphans(&self) -> Result<usize, StoreError> {
        self.write(|txn| {
            let linked: HashSet<u64> = {
                let table = txn.open_table(MESSAGES)?;
                let mut ids = HashSet::new();
                for row in table.iter()? {
                    ids.insert(row?.1.value().4);
                }
                ids
            };
            let mut table = txn.open_table(CHUNKS)?;
            let mut removed = 0;
            table.retain(|(data_id, _), _| {
                let keep = linked.contains(&data_id);
                if !keep {
                    removed += 1;
                }
                keep
            })?;
            Ok(removed)
        })
    }
}

fn remove_chunks(
    table: &mut redb::Table<'_, (u64, u32), &[u8]>,
    data_id: u64,
) -> Result<(), redb::Error> {
    table.retain_in((data_id, 0)..=(data_id, u32::MAX), |_, _| false)?;
    Ok(())
}
