//! `GET /metrics` (SPEC §12): the page is read by a real Prometheus text
//! parser (`prometheus_client` from PyPI, tests/py/prom_parse.py), fetched
//! with a real HTTP client, and its counters move as real `ssh` traffic
//! flows. Where `--metrics-listen` puts the page is checked too.
//!
//! Without `prometheus_client` the parser checks are skipped with a
//! message, except under CI, where `.ci/run` installs it and a missing one
//! fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Config, Key, TestServer, collect, options_for, random_bytes};
use serde_json::Value;
use sshpipe::config::MetricsListen;

/// `GET http://ADDR/PATH` with reqwest: the status and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = tokio::time::timeout(common::WAIT, reqwest::get(format!("http://{addr}{path}")))
            .await
            .expect("GET within the wait")
            .expect("GET");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        (status, ctype, r.text().await.unwrap())
    })
}

fn have_parser() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus-client is missing under CI: .ci/run must install it"
        );
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: prometheus-client is not installed (pip install -r .ci/requirements.txt); \
             /metrics is checked without its parser"
        );
    }
    ok
}

/// One scrape as the parser read it: family types, and samples by name
/// and labels.
struct Scrape {
    families: HashMap<String, String>,
    samples: Vec<(String, HashMap<String, String>, f64)>,
}

impl Scrape {
    /// The value of `name{labels}` (the labels given must all match).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
    }

    fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found = self.samples.iter().any(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        });
        if found { self.value(name, labels) } else { 0.0 }
    }
}

/// Scrapes `addr` and parses the page with prometheus_client.
fn scrape(addr: SocketAddr) -> Scrape {
    let (status, ctype, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    parse(&body)
}

fn parse(body: &str) -> Scrape {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/prom_parse.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = collect(child, "prom_parse.py");
    out.expect_code(0);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let families = v["families"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), t.as_str().unwrap().to_string()))
        .collect();
    let samples = v["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels = s["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            (
                s["name"].as_str().unwrap().to_string(),
                labels,
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    Scrape { families, samples }
}

fn http_server() -> TestServer {
    TestServer::with(Config {
        http: true,
        ..Config::default()
    })
}

#[test]
fn the_page_parses_and_its_counters_move_with_traffic() {
    if !have_parser() {
        return;
    }
    let server = http_server();
    let http = server.http_addr.unwrap();
    let key = server.key("k");
    let user = key.anonymous_name();

    let before = scrape(http);
    let kinds = [
        ("sshpipe_build_info", "gauge"),
        ("sshpipe_connections", "gauge"),
        ("sshpipe_sessions", "counter"),
        ("sshpipe_bytes", "counter"),
        ("sshpipe_topics", "gauge"),
        ("sshpipe_receivers", "gauge"),
        ("sshpipe_queued_messages", "gauge"),
        ("sshpipe_queued_bytes", "gauge"),
        ("sshpipe_skipped_bytes", "counter"),
        ("sshpipe_refused", "counter"),
        ("sshpipe_store_errors", "counter"),
        ("sshpipe_monitors", "gauge"),
    ];
    for (name, kind) in kinds {
        assert_eq!(
            before.families.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        before.value("sshpipe_build_info", &[("version", version)]),
        1.0
    );
    assert_eq!(
        before.value("sshpipe_monitors", &[("health", "unhealthy")]),
        0.0
    );
    // This very scrape is an open HTTP connection.
    assert!(before.value("sshpipe_connections", &[("transport", "http")]) >= 1.0);

    // A sub waiting on a topic: a connection, a topic, a receiver.
    let sub = server.spawn(&key, &["sub", "metrics-t"]);
    let full = format!("{user}/metrics-t");
    server.wait_receivers(&full, 1);
    let live = scrape(http);
    assert_eq!(
        live.value("sshpipe_connections", &[("transport", "ssh")]),
        1.0
    );
    assert_eq!(live.value("sshpipe_topics", &[]), 1.0);
    assert_eq!(live.value("sshpipe_receivers", &[]), 1.0);

    // Data through it, a queued message, a refused key.
    let data = random_bytes(10_000, 7);
    server
        .run(&key, &["pub", "-c", "metrics-t"], &data)
        .expect_code(0);
    let out = collect(sub, "sub");
    out.expect_code(0);
    assert_eq!(out.stdout.len(), data.len());
    server
        .run(&key, &["pub", "-q", "-c", "later"], &data[..1234])
        .expect_code(0);
    server.run(&key, &["bogus"], b"").expect_code(2);
    let weak = Key::generate(server.dir.path(), "rsa1024", &["-t", "rsa", "-b", "1024"]);
    assert_eq!(server.run(&weak, &["whoami"], b"").code(), 255);

    // Clients exit on their exit status; their connections close just after.
    common::wait_until("the SSH connections closed", || {
        server
            .app
            .metrics
            .connections(sshpipe::metrics::Transport::Ssh)
            == 0
    });
    let after = scrape(http);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value_or_zero(name, labels) - before.value_or_zero(name, labels)
    };
    assert_eq!(
        moved("sshpipe_sessions_total", &[("cmd", "pub"), ("status", "0")]),
        2.0
    );
    assert_eq!(
        moved("sshpipe_sessions_total", &[("cmd", "sub"), ("status", "0")]),
        1.0
    );
    assert_eq!(
        moved(
            "sshpipe_sessions_total",
            &[("cmd", "unknown"), ("status", "2")]
        ),
        1.0
    );
    assert!(moved("sshpipe_bytes_total", &[("direction", "in")]) >= data.len() as f64);
    assert!(moved("sshpipe_bytes_total", &[("direction", "out")]) >= data.len() as f64);
    assert!(moved("sshpipe_refused_total", &[("reason", "key")]) >= 1.0);
    assert_eq!(after.value("sshpipe_queued_messages", &[]), 1.0);
    assert_eq!(after.value("sshpipe_queued_bytes", &[]), 1234.0);
    assert_eq!(
        after.value("sshpipe_connections", &[("transport", "ssh")]),
        0.0
    );
    assert_eq!(after.value("sshpipe_receivers", &[]), 0.0);

    // HTTP traffic counts too: a GET receiving what a POST sends.
    let url = format!("http://{http}/topic/metrics-http");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let getter = rt.spawn(reqwest::get(url.clone()));
    server.wait_receivers("public/metrics-http", 1);
    let posted = rt.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .body(data.clone())
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(posted, 200);
    let got = rt.block_on(async { getter.await.unwrap().unwrap().bytes().await.unwrap() });
    assert_eq!(got.len(), data.len());
    let with_http = scrape(http);
    let http_moved = |direction: &str| {
        with_http.value_or_zero("sshpipe_bytes_total", &[("direction", direction)])
            - after.value_or_zero("sshpipe_bytes_total", &[("direction", direction)])
    };
    assert_eq!(http_moved("in"), data.len() as f64);
    assert_eq!(http_moved("out"), data.len() as f64);

    // No label names a user or a topic.
    for (name, labels, _) in &after.samples {
        for v in labels.values() {
            assert!(
                !v.contains(&user) && !v.contains("metrics-t") && !v.contains("later"),
                "{name} {labels:?}"
            );
        }
    }
}

#[test]
fn metrics_listen_addr_serves_there_only_and_off_serves_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let opts = sshpipe::server::Options {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_listen: MetricsListen::On("127.0.0.1:0".parse().unwrap()),
        ..options_for(&dir.path().join("data"))
    };
    let server = TestServer::from_options(opts, dir);
    let (http, metrics) = (server.http_addr.unwrap(), server.metrics_addr.unwrap());
    assert_eq!(get(http, "/metrics").0, 404);
    assert_eq!(get(http, "/healthz").0, 200);
    let (status, _, body) = get(metrics, "/metrics");
    assert_eq!(status, 200);
    assert!(body.contains("\nsshpipe_topics 0\n"), "{body}");
    assert_eq!(get(metrics, "/topic/x").0, 404, "only /metrics there");
    if have_parser() {
        parse(&body);
    }
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let opts = sshpipe::server::Options {
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        metrics_listen: MetricsListen::Off,
        ..options_for(&dir.path().join("data"))
    };
    let server = TestServer::from_options(opts, dir);
    assert_eq!(server.metrics_addr, None);
    assert_eq!(get(server.http_addr.unwrap(), "/metrics").0, 404);
}
