//! What monitors need from durable storage, as a small trait a second
//! backend (NATS KV, say) can implement instead of the embedded store; and
//! a memory-only one for a server without a store.
//!
//! Calls block (file I/O, fsync); the service runs them on the blocking
//! pool, never under its lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::store::{HealthChange, MonitorRecord, Store, StoreError, monitor_id};

/// Monitors and their bounded history (SPEC §13), kept across restarts.
pub trait MonitorStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every stored monitor.
    fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError>;
    /// Writes a record and, with it, a change; keeps the newest `keep`
    /// changes of that monitor. Durable on return.
    fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        keep: u64,
    ) -> Result<(), StoreError>;
    /// Removes a monitor and its history. Durable on return.
    fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError>;
    /// A monitor's changes, oldest first.
    fn monitor_changes(&self, owner: &str, topic: &str) -> Result<Vec<HealthChange>, StoreError>;
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
    ) -> Result<(), StoreError> {
        Store::put_monitor(self, record, change, keep)
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
    ) -> Result<(), StoreError> {
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
        Ok(())
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
