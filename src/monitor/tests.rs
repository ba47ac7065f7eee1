//! The running monitors on paused time: the timer turns a missed window
//! unhealthy at the window's end with nobody asking, a ping turns it back,
//! and monitors loaded after a restart are looked at again at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;
use crate::broker::{Broker, BrokerConfig};
use crate::identity::Identity;
use crate::store::HealthChange;
use crate::topic::{Namespace, TopicRef};

const T0: u64 = 1_796_185_462_000;

fn alice() -> Identity {
    Identity {
        name: "alice".into(),
        fingerprint: "SHA256:a".into(),
        admin: false,
        anonymous: true,
    }
}

fn topic(local: &str) -> TopicRef {
    TopicRef {
        full: format!("alice/{local}"),
        namespace: Namespace::User("alice".into()),
        local: local.into(),
    }
}

struct Running {
    monitors: Monitors,
    store: Arc<MemoryMonitors>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

fn start(store: Arc<MemoryMonitors>) -> Running {
    let broker = Broker::open(BrokerConfig::default(), None).unwrap();
    let records = store.load_monitors().unwrap();
    let monitors = Monitors::new(
        store.clone(),
        records,
        broker,
        Clock::starting_at(T0),
        MonitorLimits::default(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn({
        let (m, s) = (monitors.clone(), stop.clone());
        async move { m.run(s).await }
    });
    Running {
        monitors,
        store,
        stop,
        task,
    }
}

impl Running {
    /// The stored changes of `alice/t`, once there are `n`.
    async fn changes(&self, n: usize) -> Vec<(u64, bool, String)> {
        let got = tokio::time::timeout(Duration::from_secs(3600), async {
            loop {
                let c = self.store.monitor_changes("alice", "alice/t").unwrap();
                if c.len() >= n {
                    return c;
                }
                // Paused time moves only while every task sleeps: a short
                // sleep lets the timer's deadline come.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("changes stored");
        got.into_iter()
            .map(
                |HealthChange {
                     at_ms,
                     healthy,
                     reason,
                     ..
                 }| (at_ms - T0, healthy, reason),
            )
            .collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn the_timer_notices_a_missed_window_at_its_end() {
    let r = start(Arc::default());
    let m = &r.monitors;
    m.set(&alice(), &topic("t"), Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!m.status("alice")[0].healthy);
    tokio::time::sleep(Duration::from_secs(3)).await;
    m.ping("alice/t");
    assert!(m.status("alice")[0].healthy);
    assert_eq!(m.counts(), (1, 0));
    // Nobody asks; the timer alone writes the change, dated at the window's
    // end rather than when it woke.
    let c = r.changes(3).await;
    assert_eq!(
        c,
        [
            (0, false, "no ping yet".to_string()),
            (3000, true, "pinged at 2026-12-02T04:24:25Z".to_string()),
            (
                13_000,
                false,
                "no ping since 2026-12-02T04:24:25Z".to_string()
            ),
        ]
    );
    assert_eq!(m.counts(), (0, 1));
    // Back to healthy with the next ping; the record says so.
    m.ping("alice/t");
    let back = r.changes(4).await[3].clone();
    assert!(back.1 && back.0 > 13_000, "{back:?}");
    let rec = r.store.load_monitors().unwrap().remove(0);
    assert!(rec.healthy && rec.next_seq == 4);
    let now = m.now() - T0;
    let up = m.uptime("alice", &topic("t"), T0, T0 + now).await.unwrap();
    assert_eq!(
        (up.healthy, up.unhealthy, up.unmonitored),
        (10_000 + now - back.0, 3000 + back.0 - 13_000, 0)
    );
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn pings_during_a_window_push_its_end_and_are_written_sparingly() {
    let r = start(Arc::default());
    let m = &r.monitors;
    m.set(&alice(), &topic("t"), Duration::from_secs(20))
        .await
        .unwrap();
    for _ in 0..10 {
        m.ping("alice/t");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    // Still healthy: every ping moved the window on.
    assert!(m.status("alice")[0].healthy);
    assert_eq!(r.changes(2).await.len(), 2);
    let rec = r.store.load_monitors().unwrap().remove(0);
    // Written at 0 s (the change), 15 s, 30 s and 45 s; the rest only in
    // memory.
    assert_eq!(rec.last_ping_ms.map(|p| p - T0), Some(45_000));
    assert_eq!(m.status("alice")[0].last_ping.map(|p| p - T0), Some(45_000));
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn loaded_monitors_are_looked_at_again_at_once() {
    let r = start(Arc::default());
    r.monitors
        .set(&alice(), &topic("t"), Duration::from_secs(60))
        .await
        .unwrap();
    r.monitors.ping("alice/t");
    assert_eq!(r.changes(2).await.len(), 2);
    let store = Arc::clone(&r.store);
    r.stop().await;

    // Two minutes later the server starts again.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let r = start(store);
    let c = r.changes(3).await;
    assert_eq!(c[2].0, 60_000);
    assert!(!c[2].1);
    r.stop().await;
}

#[tokio::test(start_paused = true)]
async fn limits_and_deletes() {
    let r = start(Arc::default());
    let m = &r.monitors;
    for i in 0..5 {
        m.set(&alice(), &topic(&format!("m{i}")), Duration::from_secs(60))
            .await
            .unwrap();
    }
    let err = m.set(&alice(), &topic("m5"), Duration::from_secs(60)).await;
    assert!(
        matches!(err, Err(MonitorError::TooMany { limit: 5, .. })),
        "{err:?}"
    );
    m.delete("alice", &topic("m0")).await.unwrap();
    assert!(matches!(
        m.delete("alice", &topic("m0")).await,
        Err(MonitorError::NotFound(n)) if n == "m0"
    ));
    m.set(&alice(), &topic("m5"), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(m.status("alice").len(), 5);
    assert_eq!(r.store.load_monitors().unwrap().len(), 5);
    r.stop().await;
}
