//! What the broker needs from durable storage, as small traits a second
//! backend (NATS KV, say) can implement instead of the embedded store.
//!
//! Calls block (file I/O, fsync); the broker runs them on the blocking pool,
//! never under a lock joins take.

use std::collections::HashMap;

use crate::store::{Store, StoreError};
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
