//! Health monitors and their history (SPEC §13), kept so they survive
//! restarts.
//!
//! Two tables, both keyed by the monitor's id (`OWNER\nTOPIC`: one user's
//! monitor on one full topic name): `monitors` holds each monitor's record,
//! `monitor_changes` its health changes by sequence number. Values are JSON
//! so a field can be added without a format change. A change and the record
//! that counts it are written in one transaction, and the oldest changes
//! beyond the bound go in the same one, so the history never outgrows it.
//!
//! The tables are created on first write; a store written before monitors
//! existed simply has none.

use redb::{ReadableTable, TableDefinition, TableError};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

/// Monitor records by id.
const MONITORS: TableDefinition<&str, &str> = TableDefinition::new("monitors");
/// Health changes by (monitor id, sequence number).
const CHANGES: TableDefinition<(&str, u64), &str> = TableDefinition::new("monitor_changes");

/// One monitor as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRecord {
    /// The user who made it; alerts go to their `monitor-alerts`.
    pub owner: String,
    /// The owner's key, so an alert can be published as them.
    pub fingerprint: String,
    pub anonymous: bool,
    /// The full topic name (`alice/backup`, `public/cron`).
    pub topic: String,
    pub window_ms: u64,
    pub created_ms: u64,
    /// The newest ping written here (pings between writes are kept in
    /// memory only; see `monitor::service`).
    pub last_ping_ms: Option<u64>,
    pub healthy: bool,
    pub reason: String,
    /// The sequence number the next change gets.
    pub next_seq: u64,
}

impl MonitorRecord {
    /// The key of both tables.
    pub fn id(&self) -> String {
        monitor_id(&self.owner, &self.topic)
    }
}

/// `OWNER\nTOPIC`: no user or topic name holds a newline.
pub fn monitor_id(owner: &str, topic: &str) -> String {
    format!("{owner}\n{topic}")
}

/// One change of a monitor's health, as `uptime` and `rss` read them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthChange {
    pub seq: u64,
    /// When the health changed (unix ms): for a missed window, the end of
    /// the window, not the moment the server noticed.
    pub at_ms: u64,
    pub healthy: bool,
    pub reason: String,
}

fn to_json<T: Serialize>(v: &T) -> Result<String, redb::Error> {
    serde_json::to_string(v).map_err(|e| redb::Error::Corrupted(e.to_string()))
}

fn from_json<T: for<'de> Deserialize<'de>>(s: &str) -> Result<T, redb::Error> {
    serde_json::from_str(s).map_err(|e| redb::Error::Corrupted(format!("a monitor row: {e}")))
}

impl Store {
    /// Every stored monitor.
    pub fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        self.read(|txn| {
            let table = match txn.open_table(MONITORS) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                out.push(from_json(value.value())?);
            }
            Ok(out)
        })
    }

    /// Writes a monitor's record and, with it, a change; keeps at most
    /// `keep` changes of that monitor (the newest). Durable on return.
    pub fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
    ) -> Result<(), StoreError> {
        let id = record.id();
        self.write(|txn| {
            txn.open_table(MONITORS)?
                .insert(id.as_str(), to_json(record)?.as_str())?;
            let mut changes = txn.open_table(CHANGES)?;
            if let Some(c) = change {
                changes.insert((id.as_str(), c.seq), to_json(c)?.as_str())?;
            }
            let cut = record.next_seq.saturating_sub(keep);
            if cut > 0 {
                changes.retain_in((id.as_str(), 0)..(id.as_str(), cut), |_, _| false)?;
            }
            Ok(())
        })
    }

    /// Removes a monitor and its history. Durable on return.
    pub fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError> {
        let id = monitor_id(owner, topic);
        self.write(|txn| {
            txn.open_table(MONITORS)?.remove(id.as_str())?;
            txn.open_table(CHANGES)?
                .retain_in((id.as_str(), 0)..=(id.as_str(), u64::MAX), |_, _| false)?;
            Ok(())
        })
    }

    /// A monitor's stored changes, oldest first.
    pub fn monitor_changes(
        &self,
        owner: &str,
        topic: &str,
    ) -> Result<Vec<HealthChange>, StoreError> {
        let id = monitor_id(owner, topic);
        self.read(|txn| {
            let table = match txn.open_table(CHANGES) {
                Ok(t) => t,
                Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
                Err(e) => return Err(e.into()),
            };
            let mut out = Vec::new();
            for row in table.range((id.as_str(), 0)..=(id.as_str(), u64::MAX))? {
                let (_, value) = row?;
                out.push(from_json(value.value())?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn record(owner: &str, topic: &str, next_seq: u64) -> MonitorRecord {
        MonitorRecord {
            owner: owner.into(),
            fingerprint: "SHA256:x".into(),
            anonymous: false,
            topic: topic.into(),
            window_ms: 1000,
            created_ms: 5,
            last_ping_ms: None,
            healthy: false,
            reason: "no ping yet".into(),
            next_seq,
        }
    }

    fn change(seq: u64) -> HealthChange {
        HealthChange {
            seq,
            at_ms: seq * 10,
            healthy: seq % 2 == 1,
            reason: format!("r{seq}"),
        }
    }

    #[test]
    fn monitors_and_bounded_history_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            assert_eq!(store.load_monitors().unwrap(), vec![]);
            assert_eq!(store.monitor_changes("alice", "alice/t").unwrap(), vec![]);
            for seq in 0..7 {
                store
                    .put_monitor(&record("alice", "alice/t", seq + 1), Some(&change(seq)), 3)
                    .unwrap();
            }
            store
                .put_monitor(&record("bob", "public/t", 1), Some(&change(0)), 3)
                .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let mut all = store.load_monitors().unwrap();
        all.sort_by(|a, b| a.owner.cmp(&b.owner));
        assert_eq!(
            all,
            vec![record("alice", "alice/t", 7), record("bob", "public/t", 1)]
        );
        let kept = store.monitor_changes("alice", "alice/t").unwrap();
        assert_eq!(kept, vec![change(4), change(5), change(6)]);
        store.delete_monitor("alice", "alice/t").unwrap();
        assert_eq!(store.monitor_changes("alice", "alice/t").unwrap(), vec![]);
        assert_eq!(
            store.monitor_changes("bob", "public/t").unwrap(),
            vec![change(0)]
        );
        assert_eq!(store.load_monitors().unwrap().len(), 1);
    }
}
