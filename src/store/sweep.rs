//! Start-up clean-up of the queue directory against the index: bodies no
//! message links to are the remains of pubs cut off before they were
//! acknowledged, and go; damaged bodies whose move was cut off by a crash
//! are moved; tombstones (`N.delivered`, see `bodies`) remove their
//! message's row, since it was delivered. Runs before the queue is loaded,
//! so nothing here is ever served.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::bodies::{QueueFile, file_name, queue_file, tombstone_name};
use super::open::{io_cause, open_err};
use super::{DAMAGED, MESSAGES, OpenCause, StoreError, unwind};

/// Data id → sequence number.
type Owners = HashMap<u64, u64>;

pub(super) fn sweep(
    db: &Database,
    file: &Path,
    queue_dir: &Path,
    damaged_dir: &Path,
) -> Result<(), StoreError> {
    let redb_err = |e: redb::Error| open_err(file, OpenCause::Damaged(e.to_string()));
    let (linked, damaged) = unwind::catch(|| body_owners(db))
        .map_err(|p| open_err(file, OpenCause::Damaged(p)))?
        .map_err(redb_err)?;
    let delivered = remove_orphans(queue_dir, damaged_dir, &linked, &damaged)?;
    let seqs: Vec<u64> = delivered
        .iter()
        .filter_map(|id| linked.get(id).copied())
        .collect();
    unwind::catch(|| remove_rows(db, &seqs))
        .map_err(|p| open_err(file, OpenCause::Damaged(p)))?
        .map_err(redb_err)?;
    for data_id in delivered {
        let path = queue_dir.join(tombstone_name(data_id));
        fs::remove_file(&path).map_err(|e| open_err(&path, io_cause(&path, e)))?;
    }
    if !seqs.is_empty() {
        tracing::info!(
            messages = seqs.len(),
            "removed messages delivered before a crash"
        );
    }
    Ok(())
}

/// Removes the rows of messages whose tombstones say they were delivered.
fn remove_rows(db: &Database, seqs: &[u64]) -> Result<(), redb::Error> {
    if seqs.is_empty() {
        return Ok(());
    }
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    {
        let mut table = txn.open_table(MESSAGES)?;
        for seq in seqs {
            table.remove(seq)?;
        }
    }
    txn.commit()?;
    Ok(())
}

/// Data ids of linked messages and of damaged ones, each → its sequence.
fn body_owners(db: &Database) -> Result<(Owners, Owners), redb::Error> {
    let txn = db.begin_read()?;
    let mut linked = HashMap::new();
    for entry in txn.open_table(MESSAGES)?.iter()? {
        let (seq, meta) = entry?;
        linked.insert(meta.value().4, seq.value());
    }
    let mut damaged = HashMap::new();
    for entry in txn.open_table(DAMAGED)?.iter()? {
        let (seq, meta) = entry?;
        damaged.insert(meta.value().4, seq.value());
    }
    Ok((linked, damaged))
}

/// Removes bodies no message links to (pubs cut off before they were
/// acknowledged), finishes moves of damaged bodies cut off by a crash, and
/// returns the data ids of tombstones (delivered messages).
fn remove_orphans(
    queue_dir: &Path,
    damaged_dir: &Path,
    linked: &Owners,
    damaged: &Owners,
) -> Result<Vec<u64>, StoreError> {
    let entries =
        fs::read_dir(queue_dir).map_err(|e| open_err(queue_dir, io_cause(queue_dir, e)))?;
    let (mut removed, mut delivered) = (0, Vec::new());
    for entry in entries {
        let entry = entry.map_err(|e| open_err(queue_dir, io_cause(queue_dir, e)))?;
        let name = entry.file_name();
        let data_id = match name.to_str().and_then(queue_file) {
            Some(QueueFile::Body(id)) => id,
            Some(QueueFile::Tombstone(id)) => {
                delivered.push(id);
                continue;
            }
            None => continue,
        };
        let path = entry.path();
        let done = if linked.contains_key(&data_id) {
            Ok(())
        } else if let Some(seq) = damaged.get(&data_id) {
            fs::rename(&path, damaged_dir.join(file_name(*seq)))
        } else {
            removed += 1;
            fs::remove_file(&path)
        };
        done.map_err(|e| open_err(&path, io_cause(&path, e)))?;
    }
    if removed > 0 {
        tracing::info!(
            bodies = removed,
            "removed bodies of unacknowledged messages"
        );
    }
    Ok(delivered)
}
