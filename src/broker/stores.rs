//! What the broker needs from durable storage, as small traits a second
//! backend can implement instead of the embedded store (private access
//! lists on NATS: `nats/acls.rs`).
//!
//! Calls block (file I/O, fsync, a NATS round trip); the broker runs them
//! on the blocking pool, never under a lock joins take.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use crate::store::{
    Body, BodyWriter, Damage, DamagedMessage, Store, StoreError, StoreHealth, StoredMessage,
};
use crate::topic::AccessList;

/// Private topics' access lists (SPEC §6): set by their owners, kept across
/// restarts.
pub trait AclStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every stored list, by full topic name.
    fn load_acls(&self) -> Result<HashMap<String, AccessList>, StoreError>;
    /// Stores a topic's list durably (an empty list or `None` removes it)
    /// before returning.
    fn put_acl(&self, topic: &str, list: Option<&AccessList>) -> Result<(), StoreError>;
}

impl AclStore for Store {
    fn load_acls(&self) -> Result<HashMap<String, AccessList>, StoreError> {
        Store::load_acls(self)
    }

    fn put_acl(&self, topic: &str, list: Option<&AccessList>) -> Result<(), StoreError> {
        Store::put_acl(self, topic, list)
    }
}

/// Queued messages (SPEC §8, §10): an index of rows plus one body per
/// message, written in chunks and checked chunk by chunk when read. The
/// broker's `Queue` keeps the in-memory index, the limits and the claims;
/// this is only what has to outlive the process.
pub trait MessageStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every linked (acknowledged) message, oldest first.
    fn load_messages(&self) -> Result<Vec<StoredMessage>, StoreError>;
    /// Messages set aside as damaged (their sequence numbers stay taken).
    fn damaged(&self) -> Result<Vec<DamagedMessage>, StoreError>;
    /// Starts a body; nothing is visible until `link`.
    fn create_body(&self, data_id: u64) -> Result<Box<dyn BodySink>, StoreError>;
    /// Makes a fully written body a queued message, durably.
    fn link(&self, msg: &StoredMessage) -> Result<(), StoreError>;
    /// Throws away a body that was never linked.
    fn drop_data(&self, data_id: u64);
    /// Opens a linked message's body for reading.
    fn open_body(&self, msg: &StoredMessage) -> Result<Arc<dyn BodySource>, Damage>;
    /// Removes a delivered message, durably.
    fn remove_message(&self, seq: u64, data_id: u64) -> Result<(), StoreError>;
    /// A delivered message whose row could not be removed: make sure it is
    /// never served again.
    fn mark_delivered(&self, data_id: u64) -> std::io::Result<()>;
    /// Moves a damaged message out of the queue, kept for an admin.
    fn set_aside(&self, msg: &StoredMessage, reason: &str) -> Result<PathBuf, StoreError>;
    /// The share of the storage's space that is free to use, in percent
    /// (`None` if it cannot be told), for `--min-free-disk`.
    fn free_percent(&self) -> Option<f64>;
    /// Whether writes work right now.
    fn health(&self) -> StoreHealth;
    /// Changes to `health().available`.
    fn health_changes(&self) -> watch::Receiver<bool>;
}

/// A body being written.
pub trait BodySink: Send + std::fmt::Debug {
    fn write_chunk(&mut self, payload: &[u8]) -> Result<(), StoreError>;
    /// Makes the body durable; returns its size and chunk count.
    fn finish(self: Box<Self>) -> Result<(u64, u32), StoreError>;
}

/// A stored body, read a chunk at a time.
pub trait BodySource: Send + Sync + std::fmt::Debug {
    /// Checks what can be checked before the first byte is sent.
    fn verify(&self) -> Result<(), Damage>;
    /// Chunk `index` from `offset` on: its bytes and where the next begins.
    fn read_chunk(&self, index: u32, offset: u64) -> Result<(Vec<u8>, u64), Damage>;
}

impl MessageStore for Store {
    fn load_messages(&self) -> Result<Vec<StoredMessage>, StoreError> {
        Store::load_messages(self)
    }
    fn damaged(&self) -> Result<Vec<DamagedMessage>, StoreError> {
        Store::damaged(self)
    }
    fn create_body(&self, data_id: u64) -> Result<Box<dyn BodySink>, StoreError> {
        Ok(Box::new(Store::create_body(self, data_id)?))
    }
    fn link(&self, msg: &StoredMessage) -> Result<(), StoreError> {
        Store::link(self, msg)
    }
    fn drop_data(&self, data_id: u64) {
        Store::drop_data(self, data_id)
    }
    fn open_body(&self, msg: &StoredMessage) -> Result<Arc<dyn BodySource>, Damage> {
        Ok(Arc::new(Store::open_body(self, msg)?))
    }
    fn remove_message(&self, seq: u64, data_id: u64) -> Result<(), StoreError> {
        Store::remove_message(self, seq, data_id)
    }
    fn mark_delivered(&self, data_id: u64) -> std::io::Result<()> {
        Store::mark_delivered(self, data_id)
    }
    fn set_aside(&self, msg: &StoredMessage, reason: &str) -> Result<PathBuf, StoreError> {
        Store::set_aside(self, msg, reason)
    }
    fn free_percent(&self) -> Option<f64> {
        Store::free_percent(self)
    }
    fn health(&self) -> StoreHealth {
        Store::health(self)
    }
    fn health_changes(&self) -> watch::Receiver<bool> {
        Store::health_changes(self)
    }
}

impl BodySink for BodyWriter {
    fn write_chunk(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        BodyWriter::write_chunk(self, payload)
    }
    fn finish(self: Box<Self>) -> Result<(u64, u32), StoreError> {
        BodyWriter::finish(*self)
    }
}

impl BodySource for Body {
    fn verify(&self) -> Result<(), Damage> {
        Body::verify(self)
    }
    fn read_chunk(&self, index: u32, offset: u64) -> Result<(Vec<u8>, u64), Damage> {
        Body::read_chunk(self, index, offset)
    }
}
