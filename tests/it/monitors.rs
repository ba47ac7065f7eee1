//! Health monitors (SPEC §13) with the real `ssh`: short windows, pings
//! from `pub` and `pipe` (over SSH and HTTP), alerts read from
//! `sub -k monitor-alerts` or found queued, `status`, `uptime`, `rss`, and
//! a restart that keeps the monitors and looks at them again.
//!
//! Every wait is on a condition (an alert line, a status row, a queued
//! count), never on a sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::Child;

use common::*;
use serde_json::Value;

/// A running `sub -k monitor-alerts` and what it printed so far.
struct Alerts {
    child: Child,
    lines: Lines,
}

impl Alerts {
    fn start(server: &TestServer, key: &Key) -> Alerts {
        let mut child = server.spawn(key, &["sub", "-k", "monitor-alerts"]);
        let lines = lines_of(&mut child);
        let full = format!("{}/monitor-alerts", key.anonymous_name());
        server.wait_receivers(&full, 1);
        Alerts { child, lines }
    }

    /// Waits for the `n`th alert (from 1) and returns it, checking that
    /// every line is one JSON object of the SPEC's shape.
    fn nth(&self, n: usize) -> Value {
        wait_until(&format!("alert #{n}"), || {
            self.lines.lock().unwrap().len() >= n
        });
        let line = self.lines.lock().unwrap()[n - 1].clone();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for key in ["monitor", "health", "reason", "time"] {
            assert!(v[key].is_string(), "{key} in {line}");
        }
        v
    }
}

impl Drop for Alerts {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn stdout(server: &TestServer, key: &Key, args: &[&str]) -> String {
    let out = server.run(key, args, b"");
    out.expect_code(0);
    out.stdout_str()
}

/// The `status` row of `name` on `server`, once its health is `health`.
pub(crate) fn wait_status(server: &TestServer, key: &Key, name: &str, health: &str) -> String {
    let mut row = String::new();
    wait_until(&format!("status of {name}: {health}"), || {
        let table = stdout(server, key, &["status"]);
        row = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_default()
            .to_string();
        row.split_whitespace().nth(1) == Some(health)
    });
    row
}

#[test]
fn healthy_unhealthy_alerts_status_uptime_rss_and_delete() {
    let server = TestServer::start();
    let alice = server.key("alice");
    assert_eq!(stdout(&server, &alice, &["status"]), "no monitors\n");
    let made = stdout(&server, &alice, &["monitor", "cron", "2s"]);
    assert_eq!(made, "monitor created: cron (window: 2s)\n");
    let row = wait_status(&server, &alice, "cron", "unhealthy");
    assert!(row.ends_with("no ping yet"), "{row}");
    let table = stdout(&server, &alice, &["status"]);
    assert!(
        table.starts_with("TOPIC  HEALTH     WINDOW  LAST PING  WINDOW END  REASON\n"),
        "{table}"
    );

    let alerts = Alerts::start(&server, &alice);
    // A trigger with nobody listening is a ping.
    server
        .run(&alice, &["pub", "cron", "-b=false", "-e"], b"")
        .expect_code(0);
    let up = alerts.nth(1);
    assert_eq!(
        (up["monitor"].as_str(), up["health"].as_str()),
        (Some("cron"), Some("healthy"))
    );
    wait_status(&server, &alice, "cron", "healthy");

    // Two seconds without a ping: the timer notices on its own.
    let down = alerts.nth(2);
    assert_eq!(down["health"], "unhealthy");
    let reason = down["reason"].as_str().unwrap();
    assert!(reason.starts_with("no ping since 20"), "{reason}");
    let row = wait_status(&server, &alice, "cron", "unhealthy");
    assert!(row.contains("no ping since"), "{row}");

    // A `sub` is never a ping; a `pipe` that ends well is.
    let mut sub = server.spawn(&alice, &["sub", "cron"]);
    server.wait_receivers(&format!("{}/cron", alice.anonymous_name()), 1);
    server
        .run(&alice, &["pipe", "cron"], b"hello\n")
        .expect_code(0);
    let _ = wait_child(&mut sub, "sub cron");
    let again = alerts.nth(3);
    assert_eq!(again["health"], "healthy");
    // A longer window from now on, so nothing changes while we look.
    let longer = stdout(&server, &alice, &["monitor", "cron", "1h"]);
    assert_eq!(longer, "monitor created: cron (window: 1h0m0s)\n");

    let up = stdout(&server, &alice, &["uptime", "cron"]);
    assert!(up.starts_with("monitor: cron\nfrom: "), "{up}");
    let share: f64 = up
        .lines()
        .find_map(|l| l.strip_prefix("uptime: "))
        .and_then(|p| p.strip_suffix('%'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(share > 0.0 && share < 100.0, "{up}");
    assert!(
        up.contains("(24h0m0s)") && up.contains("\nunhealthy: "),
        "{up}"
    );
    let bad = server.run(
        &alice,
        &["uptime", "cron", "--from", "1h", "--to", "2h"],
        b"",
    );
    bad.expect_code(2);
    assert!(
        bad.stderr.contains("--from must be before --to"),
        "{}",
        bad.stderr
    );

    let feed = stdout(&server, &alice, &["rss"]);
    assert!(
        feed.starts_with("<?xml") && feed.contains("<rss version=\"2.0\">"),
        "{feed}"
    );
    // Created, healthy, unhealthy, healthy: one item each (more only if
    // the 2s window passed before it grew), ids stable.
    assert!(feed.matches("<item>").count() >= 4, "{feed}");
    let again = stdout(&server, &alice, &["rss"]);
    let guids = |f: &str| -> Vec<String> {
        f.lines()
            .filter(|l| l.starts_with("<guid"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(guids(&feed), guids(&again));

    let gone = stdout(&server, &alice, &["monitor", "-d", "cron"]);
    assert_eq!(gone, "monitor deleted: cron\n");
    assert_eq!(stdout(&server, &alice, &["status"]), "no monitors\n");
    let missing = server.run(&alice, &["monitor", "cron", "-d"], b"");
    missing.expect_code(1);
    assert!(
        missing.stderr.contains("no monitor on cron"),
        "{}",
        missing.stderr
    );
}

#[test]
fn alerts_are_queued_when_nobody_listens() {
    let server = TestServer::start();
    let alice = server.key("alice");
    let alerts_topic = format!("{}/monitor-alerts", alice.anonymous_name());
    stdout(&server, &alice, &["monitor", "-p", "job", "1s"]);
    // A queued message is a pub that ended with exit 0 too.
    server
        .run(&alice, &["pub", "-p", "job", "-q"], b"done\n")
        .expect_code(0);
    wait_until("two alerts queued", || {
        server.app.broker.queued(&alerts_topic).0 >= 2
    });
    let alerts = Alerts::start(&server, &alice);
    assert_eq!(alerts.nth(1)["health"], "healthy");
    assert_eq!(alerts.nth(1)["monitor"], "public/job");
    assert_eq!(alerts.nth(2)["health"], "unhealthy");
}

#[test]
fn http_posts_ping_public_monitors() {
    let server = TestServer::with(Config {
        http: true,
        ..Config::default()
    });
    let alice = server.key("alice");
    stdout(&server, &alice, &["monitor", "web", "1h", "--public"]);
    let url = format!("http://{}/pubsub/web", server.http_addr.unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .post(url)
            .body("ping")
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
    let row = wait_status(&server, &alice, "public/web", "healthy");
    assert!(row.contains("1h0m0s"), "{row}");
    let metrics = sshpipe::metrics::text(&server.app);
    assert!(
        metrics.contains("sshpipe_monitors{health=\"healthy\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_websocket_pipe_that_ends_well_pings() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::with(Config {
        http: true,
        ..Config::default()
    });
    let alice = server.key("alice");
    stdout(&server, &alice, &["monitor", "chat", "1h", "-p"]);
    let url = format!("ws://{}/socket/chat", server.http_addr.unwrap());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        ws.send(Message::Text("hello".into())).await.unwrap();
        ws.send(Message::Close(None)).await.unwrap();
        // The server answers the close once the pipe has ended.
        while let Some(Ok(m)) = ws.next().await {
            if m.is_close() {
                break;
            }
        }
    });
    let row = wait_status(&server, &alice, "public/chat", "healthy");
    assert!(row.contains("1h0m0s"), "{row}");
}

#[test]
fn rss_is_served_over_http_for_a_token_of_the_user() {
    let server = TestServer::with(Config {
        http: true,
        ..Config::default()
    });
    let alice = server.key("alice");
    stdout(&server, &alice, &["monitor", "backup", "1h"]);
    let token = stdout(
        &server,
        &alice,
        &["token", "create", "--read-only", "--name", "feed"],
    );
    let token = token.trim();
    let get = |path: String| {
        let url = format!("http://{}{path}", server.http_addr.unwrap());
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let r = reqwest::get(url).await.unwrap();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), kind, r.text().await.unwrap())
        })
    };
    let (status, kind, body) = get(format!("/rss/{token}"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind.as_deref(), Some("application/rss+xml; charset=utf-8"));
    assert!(body.contains("<rss version=\"2.0\""), "{body}");
    assert!(body.contains("backup"), "{body}");
    // The same feed as `rss` over SSH.
    assert_eq!(body, stdout(&server, &alice, &["rss"]));
    let (status, _, _) = get("/rss/sp_not-a-token".to_string());
    assert_eq!(status, 401);
}

#[test]
fn bad_input_owner_rules_and_bounds() {
    let server = TestServer::start();
    let alice = server.key("alice");
    let bob = server.key("bob");
    for (args, msg) in [
        (&["monitor", "t"][..], "a window is required"),
        (
            &["monitor", "t", "10ms"][..],
            "invalid window \"10ms\": at least 1s",
        ),
        (&["monitor", "t", "soon"][..], "invalid window \"soon\""),
        (&["monitor", "t", "1h", "-d"][..], "-d takes no window"),
        (&["monitor", "t", "1h", "x"][..], "more than one topic"),
        (&["monitor"][..], "a topic is required"),
        (
            &["uptime", "t", "--from", "yesterday"][..],
            "invalid time \"yesterday\" for --from",
        ),
        (&["status", "x"][..], "takes no arguments"),
    ] {
        let out = server.run(&alice, args, b"");
        out.expect_code(2);
        assert!(out.stderr.contains(msg), "{args:?}: {}", out.stderr);
    }
    let help = server.run(&alice, &["monitor", "-h"], b"");
    help.expect_code(0);
    assert!(
        help.stdout_str()
            .starts_with("usage: monitor TOPIC DURATION")
    );

    // Only the owner watches a private topic.
    let theirs = format!("{}/t", bob.anonymous_name());
    let denied = server.run(&alice, &["monitor", &theirs, "1h"], b"");
    denied.expect_code(1);
    assert!(denied.stderr.contains("access denied"), "{}", denied.stderr);

    // Anonymous keys get five.
    for i in 0..5 {
        stdout(&server, &alice, &["monitor", &format!("m{i}"), "1h"]);
    }
    let full = server.run(&alice, &["monitor", "m5", "1h"], b"");
    full.expect_code(1);
    assert!(full.stderr.contains("too many monitors"), "{}", full.stderr);
    // Replacing one is not a new one.
    let replaced = stdout(&server, &alice, &["monitor", "m0", "24h"]);
    assert_eq!(replaced, "monitor created: m0 (window: 24h0m0s)\n");
}

fn in_process(data_dir: &Path) -> TestServer {
    TestServer::from_options(options_for(data_dir), tempfile::tempdir().unwrap())
}

#[test]
fn a_restart_keeps_monitors_and_looks_at_them_again() {
    let data = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let alice = Key::new(keys.path(), "alice");
    let alerts_topic = format!("{}/monitor-alerts", alice.anonymous_name());

    let server = in_process(data.path());
    stdout(&server, &alice, &["monitor", "nightly", "2s"]);
    stdout(&server, &alice, &["monitor", "weekly", "168h"]);
    server
        .run(&alice, &["pub", "-e", "-b=false", "nightly"], b"")
        .expect_code(0);
    server
        .run(&alice, &["pub", "-e", "-b=false", "weekly"], b"")
        .expect_code(0);
    wait_status(&server, &alice, "nightly", "healthy");
    wait_until("two healthy alerts queued", || {
        server.app.broker.queued(&alerts_topic).0 >= 2
    });
    server.stop();

    // Down for longer than the window: the first look after the start
    // finds it unhealthy, and says so.
    let server = in_process(data.path());
    let row = wait_status(&server, &alice, "nightly", "unhealthy");
    assert!(row.contains("no ping since"), "{row}");
    wait_status(&server, &alice, "weekly", "healthy");
    let alerts = Alerts::start(&server, &alice);
    let mut seen = Vec::new();
    for n in 1..=3 {
        let a = alerts.nth(n);
        seen.push((
            a["monitor"].as_str().unwrap().to_string(),
            a["health"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("nightly".to_string(), "healthy".to_string()),
            ("nightly".to_string(), "unhealthy".to_string()),
            ("weekly".to_string(), "healthy".to_string()),
        ]
    );
    let feed = stdout(&server, &alice, &["rss"]);
    assert_eq!(feed.matches("<item>").count(), 5, "{feed}");
}
