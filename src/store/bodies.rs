//! Message bodies: one file per queued message, `queue/DATA_ID.msg`, made
//! of frames `[payload length: u32 LE][CRC-32: u32 LE][payload]`.
//!
//! The CRC covers the data id and the chunk index as well as the payload,
//! so a chunk that moved (to another offset or another file) fails just as
//! a flipped bit does; a damaged length field makes the next frame fail.
//! The file's length is known from the index (size + 8 bytes per chunk),
//! so a truncated or extended file is damaged too.
//!
//! A body is written without fsync, then fsynced once with its directory
//! before the message is linked (the link is what acknowledges it). A
//! writer dropped before it finished removes its file: that pub was never
//! acknowledged, and on a full disk its space is what others need.
//!
//! A delivered message whose row cannot be removed (on a full disk redb may
//! need a free page even to delete) leaves a *tombstone*: its body renamed
//! to `N.delivered` and emptied. That frees the space at once and says, to
//! the next start, "remove this row": it is never served twice.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::{Store, StoreError, StoredMessage};

/// Bytes of a frame header.
pub(super) const FRAME_BYTES: u64 = 8;
/// The largest payload a frame may claim: a damaged length field is
/// refused before anything that large is read.
pub const MAX_CHUNK_BYTES: usize = 1 << 20;

pub(super) fn file_name(data_id: u64) -> String {
    format!("{data_id}.msg")
}

pub(super) fn tombstone_name(data_id: u64) -> String {
    format!("{data_id}.delivered")
}

/// What a file in the queue directory is.
pub(super) enum QueueFile {
    Body(u64),
    Tombstone(u64),
}

pub(super) fn queue_file(name: &str) -> Option<QueueFile> {
    if let Some(id) = name.strip_suffix(".msg") {
        return id.parse().ok().map(QueueFile::Body);
    }
    name.strip_suffix(".delivered")?
        .parse()
        .ok()
        .map(QueueFile::Tombstone)
}

fn checksum(data_id: u64, index: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&data_id.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Fsyncs a directory, so a file created (or renamed) in it stays.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// A body being written, without knowing about the store (start-up uses
/// it too). Removes its file when dropped unfinished.
#[derive(Debug)]
pub(super) struct FileBody {
    file: File,
    path: PathBuf,
    dir: PathBuf,
    data_id: u64,
    chunks: u32,
    size: u64,
    finished: bool,
}

impl FileBody {
    /// `replace`: an existing file is overwritten (moving a format-1
    /// store's bodies again after a crash); otherwise it must not exist.
    pub(super) fn create(dir: &Path, data_id: u64, replace: bool) -> io::Result<FileBody> {
        let path = dir.join(file_name(data_id));
        let mut open = OpenOptions::new();
        open.write(true).mode(0o600);
        if replace {
            open.create(true).truncate(true);
        } else {
            open.create_new(true);
        }
        Ok(FileBody {
            file: open.open(&path)?,
            path,
            dir: dir.to_path_buf(),
            data_id,
            chunks: 0,
            size: 0,
            finished: false,
        })
    }

    pub(super) fn write_chunk(&mut self, payload: &[u8]) -> io::Result<()> {
        if payload.len() > MAX_CHUNK_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a chunk of {} bytes is over the limit", payload.len()),
            ));
        }
        let mut header = [0u8; FRAME_BYTES as usize];
        // Fits: checked against MAX_CHUNK_BYTES just above.
        header[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        header[4..].copy_from_slice(&checksum(self.data_id, self.chunks, payload).to_le_bytes());
        self.file.write_all(&header)?;
        self.file.write_all(payload)?;
        self.chunks += 1;
        self.size += payload.len() as u64;
        Ok(())
    }

    /// Makes the body durable; returns (size, chunk count).
    pub(super) fn finish(mut self) -> io::Result<(u64, u32)> {
        self.file.sync_data()?;
        sync_dir(&self.dir)?;
        self.finished = true;
        Ok((self.size, self.chunks))
    }
}

impl Drop for FileBody {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// A body being written by a `pub -q`. A failure to write is a store
/// failure (disk full, I/O error): it starts an unavailability episode.
#[derive(Debug)]
pub struct BodyWriter {
    body: FileBody,
    store: Store,
}

impl BodyWriter {
    pub fn write_chunk(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        self.body.write_chunk(payload).map_err(|e| {
            self.store
                .body_failed(&e, "writing a message", &self.body.path)
        })
    }

    /// Makes the body durable before it is linked; returns (size, chunks).
    pub fn finish(self) -> Result<(u64, u32), StoreError> {
        let BodyWriter { body, store } = self;
        let path = body.path.clone();
        body.finish()
            .map_err(|e| store.body_failed(&e, "writing a message", &path))
    }
}

/// Why a body cannot be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The chunk that failed (`None`: the file as a whole).
    pub chunk: Option<u32>,
    pub what: String,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chunk {
            Some(i) => write!(f, "chunk {i}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

fn damage(chunk: Option<u32>, what: impl Into<String>) -> Damage {
    Damage {
        chunk,
        what: what.into(),
    }
}

/// A linked message's body, open for reading (positioned reads, so clones
/// behind an `Arc` never share a cursor).
#[derive(Debug)]
pub struct Body {
    file: File,
    data_id: u64,
    chunks: u32,
    size: u64,
    len: u64,
}

impl Store {
    /// Starts the body of a new message.
    pub fn create_body(&self, data_id: u64) -> Result<BodyWriter, StoreError> {
        match FileBody::create(&self.inner.queue_dir, data_id, false) {
            Ok(body) => Ok(BodyWriter {
                body,
                store: self.clone(),
            }),
            Err(e) => {
                let path = self.inner.queue_dir.join(file_name(data_id));
                Err(self.body_failed(&e, "starting a message", &path))
            }
        }
    }

    /// Removes a body (of a message removed, or never linked) and its
    /// tombstone, if any. Frees space, so an unavailable store probes.
    pub fn drop_body(&self, data_id: u64) -> io::Result<()> {
        let dir = &self.inner.queue_dir;
        for path in [
            dir.join(file_name(data_id)),
            dir.join(tombstone_name(data_id)),
        ] {
            match std::fs::remove_file(&path) {
                Ok(()) => self.space_freed(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A message was delivered but its row could not be removed: turn its
    /// body into an empty tombstone, freeing the space and making sure no
    /// start after this serves it again.
    pub fn mark_delivered(&self, data_id: u64) -> io::Result<()> {
        let dir = &self.inner.queue_dir;
        let tombstone = dir.join(tombstone_name(data_id));
        std::fs::rename(dir.join(file_name(data_id)), &tombstone)?;
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&tombstone)?;
        sync_dir(dir)?;
        self.space_freed();
        Ok(())
    }

    /// Opens a linked message's body and checks its length.
    pub fn open_body(&self, msg: &StoredMessage) -> Result<Body, Damage> {
        let path = self.inner.queue_dir.join(file_name(msg.data_id));
        let file = File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => damage(None, "its body file is missing"),
            _ => damage(None, format!("its body file cannot be read: {e}")),
        })?;
        let len = file
            .metadata()
            .map_err(|e| damage(None, format!("its body file cannot be read: {e}")))?
            .len();
        let want = msg.size + FRAME_BYTES * u64::from(msg.chunks);
        if len != want {
            return Err(damage(
                None,
                format!("its body file is {len} bytes long, not {want}"),
            ));
        }
        Ok(Body {
            file,
            data_id: msg.data_id,
            chunks: msg.chunks,
            size: msg.size,
            len,
        })
    }
}

impl Body {
    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    /// Checks every chunk; nothing is kept in memory but one chunk.
    pub fn verify(&self) -> Result<(), Damage> {
        let mut buf = Vec::new();
        let (mut offset, mut size) = (0u64, 0u64);
        for index in 0..self.chunks {
            offset = self.read_into(index, offset, &mut buf)?;
            size += buf.len() as u64;
        }
        if offset != self.len || size != self.size {
            return Err(damage(
                None,
                format!(
                    "its chunks hold {size} bytes in {offset} of {} file bytes, not {}",
                    self.len, self.size
                ),
            ));
        }
        Ok(())
    }

    /// Chunk `index`, whose frame starts at `offset`; returns it and the
    /// offset of the next frame.
    pub fn read_chunk(&self, index: u32, offset: u64) -> Result<(Vec<u8>, u64), Damage> {
        let mut buf = Vec::new();
        let next = self.read_into(index, offset, &mut buf)?;
        Ok((buf, next))
    }

    fn read_into(&self, index: u32, offset: u64, buf: &mut Vec<u8>) -> Result<u64, Damage> {
        let at = Some(index);
        let unreadable = |e: io::Error| damage(at, format!("cannot be read: {e}"));
        let mut header = [0u8; FRAME_BYTES as usize];
        if offset + FRAME_BYTES > self.len {
            return Err(damage(at, "the file ends before it"));
        }
        self.file
            .read_exact_at(&mut header, offset)
            .map_err(unreadable)?;
        let [l0, l1, l2, l3, c0, c1, c2, c3] = header;
        let len = u32::from_le_bytes([l0, l1, l2, l3]) as usize;
        let crc = u32::from_le_bytes([c0, c1, c2, c3]);
        let start = offset + FRAME_BYTES;
        if len > MAX_CHUNK_BYTES || start + len as u64 > self.len {
            return Err(damage(at, format!("its length field ({len}) is wrong")));
        }
        buf.resize(len, 0);
        self.file.read_exact_at(buf, start).map_err(unreadable)?;
        if checksum(self.data_id, index, buf) != crc {
            return Err(damage(at, "checksum mismatch"));
        }
        Ok(start + len as u64)
    }
}
