//! Format 1 kept message bodies inside redb (`chunks` table, no
//! checksums). Opening such a store moves every body into its own
//! checksummed file, drops the old table and compacts the file, so an
//! upgrade keeps every queued message. Bodies are fsynced before the old
//! table goes: a crash midway starts the move again from the old table.

use std::io;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::bodies::FileBody;
use super::open::{FORMAT, io_cause, open_err};
use super::{MESSAGES, META, OLD_CHUNKS, OpenCause, StoreError, unwind};

/// Moves a format-1 store's bodies (chunks in redb) into body files, then
/// drops the old table and compacts the file. Bodies are fsynced before the
/// old table goes, so a crash midway just starts the move again.
pub(super) fn migrate(db: &mut Database, file: &Path, queue_dir: &Path) -> Result<(), StoreError> {
    let moved = unwind::catch(|| move_old_bodies(db, queue_dir))
        .map_err(|p| open_err(file, OpenCause::Damaged(p)))?;
    let moved = match moved {
        Ok(n) => n,
        Err(Moving::Db(e)) => return Err(open_err(file, OpenCause::Damaged(e.to_string()))),
        Err(Moving::Io(e)) => return Err(open_err(queue_dir, io_cause(queue_dir, e))),
    };
    let compacted = unwind::catch(|| db.compact());
    tracing::info!(
        messages = moved,
        compacted = matches!(compacted, Ok(Ok(true))),
        "moved queued message bodies out of the store file into checksummed files"
    );
    Ok(())
}

enum Moving {
    Db(redb::Error),
    Io(io::Error),
}

fn db_err(e: impl Into<redb::Error>) -> Moving {
    Moving::Db(e.into())
}

fn move_old_bodies(db: &Database, queue_dir: &Path) -> Result<usize, Moving> {
    let mut moved = 0;
    {
        let txn = db.begin_read().map_err(db_err)?;
        let messages = txn.open_table(MESSAGES).map_err(db_err)?;
        let chunks = txn.open_table(OLD_CHUNKS).map_err(db_err)?;
        for entry in messages.iter().map_err(db_err)? {
            let (seq, meta) = entry.map_err(db_err)?;
            let (_, _, _, _, data_id, count) = meta.value();
            let mut body = FileBody::create(queue_dir, data_id, true).map_err(Moving::Io)?;
            for index in 0..count {
                let Some(chunk) = chunks.get((data_id, index)).map_err(db_err)? else {
                    // The body file comes out short; its first reader finds
                    // it damaged and it is set aside, not served wrong.
                    tracing::warn!(seq = seq.value(), index, "a queued message lacks a chunk");
                    break;
                };
                body.write_chunk(chunk.value()).map_err(Moving::Io)?;
            }
            body.finish().map_err(Moving::Io)?;
            moved += 1;
        }
    }
    let mut txn = db.begin_write().map_err(db_err)?;
    txn.set_two_phase_commit(true);
    txn.delete_table(OLD_CHUNKS).map_err(db_err)?;
    txn.open_table(META)
        .map_err(db_err)?
        .insert("format", FORMAT)
        .map_err(db_err)?;
    txn.commit().map_err(db_err)?;
    Ok(moved)
}
