//! Two nodes' monitors on one shared store (a fake with the revisions and
//! compare-and-set of the NATS bucket, no watch): both see the same ping
//! and the same window end, both try to write the change, and only the
//! one whose write wins publishes its alert. The loser adopts the winner's
//! state, so the history has each change once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::broker::{Broker, BrokerConfig};
use crate::identity::Identity;
use crate::store::{HealthChange, MonitorRecord, Store, StoreError, monitor_id};
use crate::topic::{Namespace, TopicRef};

const T0: u64 = 1_796_185_462_000;

/// A monitor's record, changes and revision, by id.
type Rows = HashMap<String, (MonitorRecord, Vec<HealthChange>, u64)>;

/// The rows and the last revision given out.
#[derive(Debug, Default)]
struct Cas {
    rows: Mutex<(u64, Rows)>,
}

impl MonitorStore for Cas {
    fn load_monitors(&self) -> Result<Vec<MonitorRecord>, StoreError> {
        Ok(self
            .rows
            .lock()
            .unwrap()
            .1
            .values()
            .map(|r| r.0.clone())
            .collect())
    }

    fn put_monitor(
        &self,
        record: &MonitorRecord,
        change: Option<&HealthChange>,
        _keep: u64,
        base: u64,
    ) -> Result<Put, StoreError> {
        let mut rows = self.rows.lock().unwrap();
        let id = record.id();
        let at = rows.1.get(&id).map_or(0, |r| r.2);
        if at != base {
            let current = rows.1.get(&id).map(|r| r.0.clone());
            return Ok(Put::Lost {
                current,
                revision: at,
            });
        }
        rows.0 += 1;
        let revision = rows.0;
        let row = rows
            .1
            .entry(id)
            .or_insert_with(|| (record.clone(), Vec::new(), 0));
        row.0 = record.clone();
        row.1.extend(change.cloned());
        row.2 = revision;
        Ok(Put::Done(revision))
    }

    fn delete_monitor(&self, owner: &str, topic: &str) -> Result<(), StoreError> {
        self.rows
            .lock()
            .unwrap()
            .1
            .remove(&monitor_id(owner, topic));
        Ok(())
    }

    fn monitor_changes(&self, owner: &str, topic: &str) -> Result<Vec<HealthChange>, StoreError> {
        let rows = self.rows.lock().unwrap();
        Ok(rows
            .1
            .get(&monitor_id(owner, topic))
            .map(|r| r.1.clone())
            .unwrap_or_default())
    }

    fn revision(&self, id: &str) -> u64 {
        self.rows.lock().unwrap().1.get(id).map_or(0, |r| r.2)
    }
}

fn alice() -> Identity {
    Identity {
        name: "alice".into(),
        fingerprint: "SHA256:a".into(),
        admin: false,
        anonymous: true,
    }
}

fn node(store: &Arc<Cas>, broker: &Broker, stop: &CancellationToken) -> Monitors {
    let records = store.load_monitors().unwrap();
    let m = Monitors::new(
        store.clone(),
        records,
        broker.clone(),
        Clock::starting_at(T0),
        MonitorLimits::default(),
    );
    tokio::spawn({
        let (m, s) = (m.clone(), stop.clone());
        async move { m.run(s).await }
    });
    m
}

#[tokio::test(start_paused = true)]
async fn of_two_nodes_deciding_the_same_change_only_the_winner_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::open(
        BrokerConfig::default(),
        Some(Store::open(dir.path()).unwrap()),
    )
    .unwrap();
    let (store, stop) = (Arc::new(Cas::default()), CancellationToken::new());
    let a = node(&store, &broker, &stop);
    let t = TopicRef {
        full: "alice/t".into(),
        namespace: Namespace::User("alice".into()),
        local: "t".into(),
    };
    a.set(&alice(), &t, Duration::from_secs(2)).await.unwrap();
    let b = node(&store, &broker, &stop);
    // The same ping seen by both (one would reach the other by the watch).
    a.ping("alice/t");
    b.ping("alice/t");
    let changes = || store.monitor_changes("alice", "alice/t").unwrap();
    let alerts = || broker.queued("alice/monitor-alerts").0;
    let settle = |n: usize| async move {
        tokio::time::timeout(Duration::from_secs(60), async {
            while changes().len() < n || alerts() < n - 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("changes stored");
        // Time for a second, wrong, alert to be published.
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    settle(2).await;
    assert_eq!((changes().len(), alerts()), (2, 1));
    assert!(a.status("alice")[0].healthy && b.status("alice")[0].healthy);
    // Both timers see the window end.
    settle(3).await;
    let got: Vec<(u64, bool)> = changes().iter().map(|c| (c.seq, c.healthy)).collect();
    assert_eq!(got, [(0, false), (1, true), (2, false)]);
    assert_eq!(alerts(), 2);
    assert!(!a.status("alice")[0].healthy && !b.status("alice")[0].healthy);
    stop.cancel();
}
