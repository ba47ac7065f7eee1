//! Health monitors across two nodes on a real 3-server NATS cluster (SPEC
//! §13, §14), with the real `ssh`: a monitor made on one node is listed on
//! the other, a ping on either counts, each change of health is published
//! once for the whole cluster (a `sub -k monitor-alerts` on each node gets
//! the same single line), and monitors live in NATS, so nodes restarted on
//! empty data directories still have them.
//!
//! Every wait is on a condition (an alert line, a status row), never on a
//! sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Child;

use crate::cluster::{node, receivers};
use crate::common;
use crate::monitors::{stdout, wait_status};
use common::nats::NatsCluster;
use common::{Key, Lines, TestServer, lines_of, wait_until};
use serde_json::Value;

/// A running `sub -k monitor-alerts` on one node and what it printed.
struct Alerts {
    child: Child,
    lines: Lines,
}

impl Alerts {
    fn start(on: &TestServer, key: &Key) -> Alerts {
        let mut child = on.spawn(key, &["sub", "-k", "monitor-alerts"]);
        let lines = lines_of(&mut child);
        Alerts { child, lines }
    }

    /// Waits for the `n`th alert (from 1) and returns it.
    fn nth(&self, n: usize) -> Value {
        wait_until(&format!("alert #{n}"), || {
            self.lines.lock().unwrap().len() >= n
        });
        let line = self.lines.lock().unwrap()[n - 1].clone();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn all(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each line's `health`, checking no two in a row are the same (a change
/// published twice would be).
fn healths(lines: &[String]) -> Vec<String> {
    let hs: Vec<String> = lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            v["health"].as_str().unwrap().to_string()
        })
        .collect();
    for pair in hs.windows(2) {
        assert_ne!(pair[0], pair[1], "a change published twice: {lines:?}");
    }
    hs
}

fn guids(feed: &str) -> Vec<String> {
    feed.lines()
        .filter(|l| l.starts_with("<guid"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_monitor_made_on_one_node_is_pinged_on_the_other_and_alerts_once() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
    let alice = Key::new(a.dir.path(), "alice");
    assert_eq!(stdout(&b, &alice, &["status"]), "no monitors\n");
    let made = stdout(&a, &alice, &["monitor", "cron", "2s"]);
    assert_eq!(made, "monitor created: cron (window: 2s)\n");
    let row = wait_status(&b, &alice, "cron", "unhealthy");
    assert!(row.ends_with("no ping yet"), "{row}");

    // One alerts reader on each node, each seen by both nodes.
    let full = format!("{}/monitor-alerts", alice.anonymous_name());
    let on_a = Alerts::start(&a, &alice);
    let on_b = Alerts::start(&b, &alice);
    receivers(&a, &full, 2);
    receivers(&b, &full, 2);

    // A ping on B makes the monitor made on A healthy, on A too.
    b.run(&alice, &["pub", "cron", "-b=false", "-e"], b"")
        .expect_code(0);
    for alerts in [&on_a, &on_b] {
        let up = alerts.nth(1);
        assert_eq!(
            (up["monitor"].as_str(), up["health"].as_str()),
            (Some("cron"), Some("healthy"))
        );
    }
    wait_status(&a, &alice, "cron", "healthy");

    // Two seconds without a ping: both nodes' timers see the window end,
    // one of them publishes.
    for alerts in [&on_a, &on_b] {
        let down = alerts.nth(2);
        assert_eq!(down["health"], "unhealthy");
        let reason = down["reason"].as_str().unwrap();
        assert!(reason.starts_with("no ping since 20"), "{reason}");
    }
    wait_status(&a, &alice, "cron", "unhealthy");
    wait_status(&b, &alice, "cron", "unhealthy");

    // A ping on A brings it back; a duplicate of the unhealthy alert
    // would stand before this one.
    a.run(&alice, &["pub", "cron", "-b=false", "-e"], b"")
        .expect_code(0);
    for alerts in [&on_a, &on_b] {
        assert_eq!(alerts.nth(3)["health"], "healthy");
    }
    // A longer window, set on B, so nothing changes while we look.
    let longer = stdout(&b, &alice, &["monitor", "cron", "1h"]);
    assert_eq!(longer, "monitor created: cron (window: 1h0m0s)\n");
    wait_until("the 1h window on A", || {
        stdout(&a, &alice, &["status"]).contains(" 1h0m0s ")
    });

    // Both nodes answer uptime and rss from the same history.
    for on in [&a, &b] {
        let up = stdout(on, &alice, &["uptime", "cron"]);
        assert!(up.starts_with("monitor: cron\nfrom: "), "{up}");
        assert!(up.contains("\nunhealthy: "), "{up}");
    }
    let (feed_a, feed_b) = (stdout(&a, &alice, &["rss"]), stdout(&b, &alice, &["rss"]));
    assert!(feed_a.matches("<item>").count() >= 4, "{feed_a}");
    assert_eq!(guids(&feed_a), guids(&feed_b));

    // Every line came once to each reader, the same lines on both.
    let (got_a, got_b) = (on_a.all(), on_b.all());
    assert_eq!(got_a, got_b);
    let hs = healths(&got_a);
    assert_eq!(&hs[..3], ["healthy", "unhealthy", "healthy"], "{got_a:?}");
    assert_eq!(
        feed_a.matches("<item>").count(),
        got_a.len() + 1,
        "one feed item per alert, and the first state: {feed_a}"
    );

    // Deleted on A, gone on B.
    let gone = stdout(&a, &alice, &["monitor", "-d", "cron"]);
    assert_eq!(gone, "monitor deleted: cron\n");
    wait_until("no monitors on B", || {
        stdout(&b, &alice, &["status"]) == "no monitors\n"
    });
}

#[test]
fn monitors_outlive_both_nodes() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    let alice = Key::new(keys.path(), "alice");
    {
        let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
        stdout(&a, &alice, &["monitor", "backup", "1h"]);
        stdout(&a, &alice, &["monitor", "cron", "1h"]);
        wait_status(&b, &alice, "backup", "unhealthy");
        b.run(&alice, &["pub", "backup", "-b=false", "-e"], b"")
            .expect_code(0);
        wait_status(&a, &alice, "backup", "healthy");
        a.stop();
        b.stop();
    }
    // New nodes on empty data directories: the monitors and their history
    // come from NATS, there before the first client.
    let (a, b) = (node(&nats, 2, 3), node(&nats, 0, 3));
    for on in [&a, &b] {
        let table = stdout(on, &alice, &["status"]);
        let health = |name: &str| {
            table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(str::to_string)
        };
        assert_eq!(health("backup").as_deref(), Some("healthy"), "{table}");
        assert_eq!(health("cron").as_deref(), Some("unhealthy"), "{table}");
        let feed = stdout(on, &alice, &["rss"]);
        // backup: created, healthy; cron: created.
        assert_eq!(feed.matches("<item>").count(), 3, "{feed}");
    }
}
