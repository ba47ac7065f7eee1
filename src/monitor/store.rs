//! What monitors need from durable storage, as a small trait a second
//! backend (NATS KV, say) can implement instead of the embedded store; and
//! a memory-only one for a server without a store.
//!
//! Calls block (file I/O, fsync); the service runs them on the blocking
//! pool, never under its lock.
//!
//! A store several nodes share (`monitor/shared.rs`) must also say when a
//! write lost to another node's: every write names the revision it was
//! based on, and a shared store refuses it if the monitor moved on since.
//! That refusal is what lets exactly one node publish each alert. A store
//! of one node never refuses and always reports revision 0.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use super::service::PING_WRITE_EVERY;
use super::time::Millis;
use crate::store::{HealthChange, MonitorRecord, Store, StoreError, monitor_id};

/// What became of a write based on some revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the monitor is now at this revision (0 on one node).
    Done(u64),
    /// Another node changed the monitor since that revision, so nothing
    /// was written: what it holds now (`None`: deleted) and its revision.
    Lost {
        current: Option<MonitorRecord>,
        revision: u64,
    },
}

/// Monitors and their bounded history (SPEC §13), kept across restarts.
pub trait MonitorStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every stored monitor.
    fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError>;
    /// Writes a record and, with it, a change; keeps the newest `keep`
    /// changes of that monitor. Durable on return. `base` is the revision
    /// the caller's record was made from (0: a new monitor); a shared
    /// store writes nothing if the stored one is at another (`Put::Lost`).
    fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
        base: u64,
    ) -> Result<Put, StoreError>;
    /// Removes a monitor and its history. Durable on return.
    fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError>;
    /// A monitor's changes, oldest first.
    fn monitor_changes(&self, owner: &str, topic: &str) -> Result<Vec<HealthChange>, StoreError>;
    /// The revision of monitor `id` as last loaded or written here (0 on
    /// one node): the `base` of the first write after `load_monitors`.
    fn revision(&self, _id: &str) -> u64 {
        0
    }
    /// How often a ping that changes nothing is written. Other nodes only
    /// know of the written ones, so a shared store asks for it more often.
    fn ping_write_every(&self) -> Millis {
        PING_WRITE_EVERY
    }
}

impl MonitorStore for Store {
    fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        Store::load_monitors(self)
    }

    fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
        _base: u64,
    ) -> Result<Put, StoreError> {
        Store::put_monitor(self, record, change, keep).map(|()| Put::Done(0))
    }

    fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError> {
        Store::delete_monitor(self, owner, topic)
    }

    fn monitor_changes(&self, owner: &str, topic: &str) -> Result<Vec<HealthChange>, StoreError> {
        Store::monitor_changes(self, owner, topic)
    }
}

/// Each monitor's record and its changes by sequence number, by id.
type Rows = HashMap<String, (MonitorRecord, BTreeMap<u64, HealthChange>)>;

/// Monitors that end with the process (a server without a store).
#[derive(Debug, Default)]
pub struct MemoryMonitors {
    rows: Mutex<Rows>,
}

impl MemoryMonitors {
    fn rows(&self) -> std::sync::MutexGuard<'_, Rows> {
        // A panic elsewhere leaves whole values behind: keep going.
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MonitorStore for MemoryMonitors {
    fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        Ok(self.rows().values().map(|(r, _)| r.clone()).collect())
    }

    fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
        _base: u64,
    ) -> Result<Put, StoreError> {
        let mut rows = self.rows();
        let row = rows
            .entry(record.id())
            .or_insert_with(|| (record.clone(), BTreeMap::new()));
        row.0 = record.clone();
        if let Some(c) = change {
            row.1.insert(c.seq, c.clone());
        }
        let cut = record.next_seq.saturating_sub(keep);
        row.1.retain(|seq, _| *seq >= cut);
        Ok(Put::Done(0))
    }

    fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError> {
        self.rows().remove(&monitor_id(owner, topic));
        Ok(())
    }

    fn monitor_changes(&self, owner: &str, topic: &str) -> Result<Vec<HealthChange>, StoreError> {
        Ok(self
            .rows()
            .get(&monitor_id(owner, topic))
            .map(|(_, c)| c.values().cloned().collect())
            .unwrap_or_default())
    }
}
