//! Opening the store: every way a file can be unusable becomes one line
//! naming the file and the cause (SPEC §10), decided before redb sees the
//! file where we can (missing, empty, not a file, not readable and
//! writable, no redb header), and from redb's error or caught panic after.
//!
//! A new store is made under a temporary name and renamed into place once
//! it is complete and fsynced, so an empty `sshpipe.redb` is never ours:
//! it is refused, not silently started afresh. Every open (at start and
//! after a failure) runs redb's integrity check, which verifies every
//! page's checksum; the file holds only the index, so this is quick.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use redb::{Database, DatabaseError, ReadableDatabase, ReadableTable, TableHandle};

use super::bodies::sync_dir;
use super::{ACLS, CACHE_BYTES, DAMAGED, MESSAGES, META, OLD_CHUNKS, StoreError, unwind};

/// The layout this build writes: 2 = bodies in files with checksums.
pub(super) const FORMAT: u64 = 2;
/// redb's file signature.
const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];

/// Why the store cannot be opened.
#[derive(Debug)]
pub enum OpenCause {
    /// Only a permission problem: nothing is wrong with the data.
    PermissionDenied {
        owner: u32,
        mode: u32,
    },
    ReadOnlyFileSystem,
    Empty,
    NotAFile,
    NotAStore,
    Damaged(String),
    InUse,
    NewerFormat(u64),
    Io(io::Error),
}

const ASIDE: &str = "restore it from a backup, or move it aside to start with an empty store \
                     (its queued messages and access lists are then not served)";

impl fmt::Display for OpenCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenCause::PermissionDenied { owner, mode } => write!(
                f,
                "permission denied: sshpipe must be able to read and write it \
                 (it belongs to uid {owner}, mode {:04o})",
                mode & 0o7777
            ),
            OpenCause::ReadOnlyFileSystem => f.write_str("the file system is read-only"),
            OpenCause::Empty => f.write_str(
                "the file is empty (0 bytes); sshpipe never leaves an empty store behind, \
                 so something else emptied it. If that is expected, remove it to start \
                 with an empty store",
            ),
            OpenCause::NotAFile => f.write_str("it is not a regular file"),
            OpenCause::NotAStore => {
                write!(f, "it is not an sshpipe store (no redb header); {ASIDE}")
            }
            OpenCause::Damaged(what) => write!(f, "it is damaged ({what}); {ASIDE}"),
            OpenCause::InUse => {
                f.write_str("another sshpipe is using it (one server per data dir)")
            }
            OpenCause::NewerFormat(v) => write!(
                f,
                "it was written by a newer sshpipe (store format {v}; this one reads up to {FORMAT})"
            ),
            OpenCause::Io(e) => write!(f, "{e}"),
        }
    }
}

pub(super) fn open_err(path: &Path, cause: OpenCause) -> StoreError {
    StoreError::Open {
        path: path.to_path_buf(),
        cause,
    }
}

/// An I/O error about `path`, with permission problems said as such.
pub(super) fn io_cause(path: &Path, e: io::Error) -> OpenCause {
    match e.kind() {
        io::ErrorKind::PermissionDenied => {
            let (owner, mode) = fs::metadata(path).map_or((0, 0), |m| (m.uid(), m.mode()));
            OpenCause::PermissionDenied { owner, mode }
        }
        io::ErrorKind::ReadOnlyFilesystem => OpenCause::ReadOnlyFileSystem,
        _ => OpenCause::Io(e),
    }
}

/// Opens the store file, creating a new store if there is none.
pub(super) fn open_or_create(file: &Path) -> Result<Database, StoreError> {
    match fs::symlink_metadata(file) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => create_fresh(file)?,
        Err(e) => return Err(open_err(file, io_cause(file, e))),
        Ok(_) => {}
    }
    open_existing(file)
}

/// Opens an existing store file (at start, and again after a failure).
pub(super) fn open_existing(file: &Path) -> Result<Database, StoreError> {
    precheck(file).map_err(|cause| open_err(file, cause))?;
    let opened = unwind::catch(|| -> Result<(Database, bool), DatabaseError> {
        let mut db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .open(file)?;
        let clean = db.check_integrity()?;
        Ok((db, clean))
    });
    match opened {
        Ok(Ok((db, clean))) => {
            if !clean {
                tracing::warn!(file = %file.display(), "the store failed redb's integrity check and was repaired");
            }
            Ok(db)
        }
        Ok(Err(e)) => Err(open_err(file, database_cause(file, e))),
        Err(panic) => {
            // redb's one assertion about length: say it in words too.
            let what = if panic.contains("raw_file_len") {
                "it is shorter than its header says, so it was cut short"
            } else {
                "redb could not read it"
            };
            Err(open_err(
                file,
                OpenCause::Damaged(format!("{what}: {panic}")),
            ))
        }
    }
}

/// What can be told without redb: a regular, non-empty file this process
/// may read and write, starting with redb's signature.
fn precheck(file: &Path) -> Result<(), OpenCause> {
    let meta = fs::metadata(file).map_err(|e| io_cause(file, e))?;
    if !meta.is_file() {
        return Err(OpenCause::NotAFile);
    }
    if meta.len() == 0 {
        return Err(OpenCause::Empty);
    }
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .map_err(|e| io_cause(file, e))?;
    let mut magic = [0u8; MAGIC.len()];
    match f.read_exact(&mut magic) {
        Ok(()) if magic == MAGIC => Ok(()),
        Ok(()) => Err(OpenCause::NotAStore),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(OpenCause::NotAStore),
        Err(e) => Err(io_cause(file, e)),
    }
}

fn database_cause(file: &Path, e: DatabaseError) -> OpenCause {
    match e {
        DatabaseError::DatabaseAlreadyOpen => OpenCause::InUse,
        DatabaseError::Storage(redb::StorageError::Io(e)) => match io_cause(file, e) {
            OpenCause::Io(e) if e.kind() == io::ErrorKind::InvalidData => OpenCause::NotAStore,
            OpenCause::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                OpenCause::Damaged(format!("it ends early, truncated? ({e})"))
            }
            other => other,
        },
        DatabaseError::Storage(redb::StorageError::Corrupted(what)) => OpenCause::Damaged(what),
        other => OpenCause::Damaged(other.to_string()),
    }
}

/// Makes a new, empty store under a temporary name and renames it into
/// place once complete and durable.
fn create_fresh(file: &Path) -> Result<(), StoreError> {
    let tmp = file.with_extension("redb.new");
    let fail = |e: io::Error| open_err(file, io_cause(file, e));
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(fail(e)),
        _ => {}
    }
    let made = unwind::catch(|| -> Result<(), redb::Error> {
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&tmp)?;
        let mut txn = db.begin_write()?;
        txn.set_two_phase_commit(true);
        create_tables(&txn)?;
        txn.open_table(META)?.insert("format", FORMAT)?;
        txn.commit()?;
        Ok(())
    });
    match made {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let _ = fs::remove_file(&tmp);
            return Err(match e {
                redb::Error::Io(e) => fail(e),
                other => open_err(file, OpenCause::Damaged(other.to_string())),
            });
        }
        Err(panic) => return Err(open_err(file, OpenCause::Damaged(panic))),
    }
    // It holds every user's queued data: readable by the server only.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600)).map_err(fail)?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(fail)?;
    fs::rename(&tmp, file).map_err(fail)?;
    if let Some(dir) = file.parent() {
        sync_dir(dir).map_err(fail)?;
    }
    Ok(())
}

fn create_tables(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(ACLS)?;
    txn.open_table(MESSAGES)?;
    txn.open_table(DAMAGED)?;
    txn.open_table(META)?;
    Ok(())
}

/// Everything after redb opened the file, at start: tables, format,
/// directories, moving format-1 bodies out, and removing orphan bodies.
pub(super) fn prepare(
    db: &mut Database,
    file: &Path,
    queue_dir: &Path,
    damaged_dir: &Path,
) -> Result<(), StoreError> {
    // Only tighten: a mode an admin chose narrower is left alone.
    let meta = fs::metadata(file).map_err(|e| open_err(file, io_cause(file, e)))?;
    if meta.mode() & 0o077 != 0 {
        fs::set_permissions(file, fs::Permissions::from_mode(0o600))
            .map_err(|e| open_err(file, io_cause(file, e)))?;
    }
    ensure_dir(queue_dir)?;
    ensure_dir(damaged_dir)?;
    let redb_err = |e: redb::Error| open_err(file, OpenCause::Damaged(e.to_string()));
    let old = unwind::catch(|| tables_and_format(db))
        .map_err(|p| open_err(file, OpenCause::Damaged(p)))?
        .map_err(redb_err)?;
    match old {
        Format::Current => {}
        Format::Newer(v) => return Err(open_err(file, OpenCause::NewerFormat(v))),
        Format::Old => super::migrate::migrate(db, file, queue_dir)?,
    }
    super::sweep::sweep(db, file, queue_dir, damaged_dir)
}

fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(open_err(
            dir,
            OpenCause::Io(io::Error::other("not a directory")),
        )),
        Err(e) => Err(open_err(dir, io_cause(dir, e))),
    }
}

enum Format {
    Current,
    Old,
    Newer(u64),
}

fn tables_and_format(db: &Database) -> Result<Format, redb::Error> {
    let has_old = db
        .begin_read()?
        .list_tables()?
        .any(|t| t.name() == OLD_CHUNKS.name());
    let mut txn = db.begin_write()?;
    txn.set_two_phase_commit(true);
    create_tables(&txn)?;
    let format = txn.open_table(META)?.get("format")?.map(|v| v.value());
    let found = match format {
        Some(v) if v > FORMAT => Format::Newer(v),
        _ if has_old => Format::Old,
        Some(_) => Format::Current,
        None => {
            txn.open_table(META)?.insert("format", FORMAT)?;
            Format::Current
        }
    };
    txn.commit()?;
    Ok(found)
}
