//! Private topics' access lists (SPEC §6). They belong to the topic, not to
//! a session, and survive restarts, so the broker writes every change
//! through to here and loads them all at start. Public topics' lists end
//! with the topic's last client and are not stored — except one given with
//! `pub -q`, kept (owner first) while its queued messages wait (see
//! `broker/memory/held.rs`).

use std::collections::HashMap;

use redb::{ReadableTable, ReadableTableMetadata};

use super::{ACLS, Store, StoreError};
use crate::topic::AccessList;

impl Store {
    /// Every stored access list, by full topic name.
    pub fn load_acls(&self) -> Result<HashMap<String, AccessList>, StoreError> {
        self.read(|txn| {
            let table = txn.open_table(ACLS)?;
            let mut out = HashMap::with_capacity(table.len()? as usize);
            for row in table.iter()? {
                let (topic, entries) = row?;
                let list = entries.value().lines().map(str::to_string).collect();
                out.insert(topic.value().to_string(), AccessList(list));
            }
            Ok(out)
        })
    }

    /// Sets (or, with `None` or an empty list, removes) a topic's list,
    /// durably before returning.
    pub fn put_acl(&self, topic: &str, list: Option<&AccessList>) -> Result<(), StoreError> {
        self.write(|txn| {
            let mut table = txn.open_table(ACLS)?;
            match list {
                Some(list) if !list.0.is_empty() => {
                    table.insert(topic, list.0.join("\n").as_str())?;
                }
                _ => {
                    table.remove(topic)?;
                }
            }
            Ok(())
        })
    }
}
