//! Failures across nodes (SPEC §14), each with the real `ssh` against
//! nodes on a real 3-server NATS cluster: a node killed with SIGKILL takes
//! only its own clients; losing one NATS server of three changes nothing;
//! with every NATS server stopped new commands fail with `broker
//! unavailable` and `/healthz` is 503, and all of it recovers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::cluster::{node, receivers, urls_from, user_of};
use crate::common;
use common::nats::{NatsCluster, http_get};
use common::{Binary, Key, Lines, TestServer, lines_of, wait_child, wait_until};
use sha2::{Digest, Sha256};

/// A node as its own process (so it can be killed with SIGKILL), connected
/// first to NATS server `i`.
pub(crate) fn process_node(nats: &NatsCluster, i: usize, data: &std::path::Path) -> Binary {
    process_node_with_http(nats, i, data, "off")
}

fn process_node_with_http(
    nats: &NatsCluster,
    i: usize,
    data: &std::path::Path,
    http: &str,
) -> Binary {
    let mut cmd = common::binary_with_http(data, http);
    cmd.env("RUST_LOG", "info,sshpipe::broker::nats=debug");
    // SPEC §1's form, `nats://h1:4222,h2:4222,…`: the later servers
    // without a scheme of their own.
    let urls = urls_from(nats, i, nats.len());
    let short: Vec<&str> = urls
        .iter()
        .enumerate()
        .map(|(k, u)| {
            if k == 0 {
                u.as_str()
            } else {
                u.trim_start_matches("nats://")
            }
        })
        .collect();
    cmd.arg("--broker").arg(short.join(","));
    Binary::spawn(cmd)
}

/// Once its reader has caught up (the client may exit first), `lines`
/// are `want`.
fn lines_are(lines: &Lines, want: &[&str]) {
    wait_until(&format!("{} lines", want.len()), || {
        lines.lock().unwrap().len() >= want.len()
    });
    assert_eq!(*lines.lock().unwrap(), want);
}

fn has(lines: &Lines, want: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l == want)
}

/// A `pub` on `a`, its stdin kept to write lines into.
fn publisher(a: &TestServer, key: &Key, topic: &str) -> (Child, std::process::ChildStdin) {
    let mut publ = a
        .ssh(key, &["pub", topic])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = publ.stdin.take().unwrap();
    (publ, stdin)
}

fn sub(
    on: impl Fn(&Key, &[&str]) -> std::process::Command,
    key: &Key,
    topic: &str,
) -> (Child, Lines) {
    let mut child = on(key, &["sub", topic])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    (child, lines)
}

/// Every probe key in every KV bucket of the cluster: (bucket, key).
fn probes(nats: &NatsCluster) -> Vec<(String, String)> {
    use futures_util::StreamExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = async_nats::connect(nats.url(0)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut names = js.stream_names();
        let mut out = Vec::new();
        while let Some(name) = names.next().await {
            let Some(bucket) = name.unwrap().strip_prefix("KV_").map(str::to_string) else {
                continue;
            };
            let kv = js.get_key_value(&bucket).await.unwrap();
            let mut keys = kv.keys().await.unwrap();
            while let Some(k) = keys.next().await {
                let k = k.unwrap();
                if k.starts_with("_probe.") {
                    out.push((bucket.clone(), k));
                }
            }
        }
        out
    })
}

#[test]
fn a_killed_node_takes_only_its_clients_and_a_pub_left_without_receivers_waits_again() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let a = node(&nats, 0, 3);
    let b_data = tempfile::tempdir().unwrap();
    let b = process_node(&nats, 1, b_data.path());
    let key = Key::new(a.dir.path(), "carol");
    let user = user_of(&a, &key);
    let (jobs, news) = (format!("{user}/jobs"), format!("{user}/news"));

    // "jobs": its only receiver on B. "news": one on each node.
    let (mut jobs_b, jobs_b_lines) = sub(|k, a| b.ssh(k, a), &key, "jobs");
    let (mut news_b, news_b_lines) = sub(|k, a| b.ssh(k, a), &key, "news");
    let (mut news_a, news_a_lines) = sub(|k, args| a.ssh(k, args), &key, "news");
    let (jobs_pub, mut jobs_in) = publisher(&a, &key, "jobs");
    let (news_pub, mut news_in) = publisher(&a, &key, "news");
    // (A counts a topic's members once it has the topic: its pubs.)
    receivers(&a, &jobs, 1);
    receivers(&a, &news, 2);
    jobs_in.write_all(b"job 1\n").unwrap();
    news_in.write_all(b"news 1\n").unwrap();
    wait_until("B's subs have line 1", || {
        has(&jobs_b_lines, "job 1") && has(&news_b_lines, "news 1")
    });
    wait_until("A's sub has news 1", || has(&news_a_lines, "news 1"));

    b.kill9();
    // B's clients see their connection drop.
    assert_ne!(wait_child(&mut jobs_b, "jobs sub on B").code(), Some(0));
    assert_ne!(wait_child(&mut news_b, "news sub on B").code(), Some(0));
    // A finds B gone: "jobs" has no receiver left and its pub waits again.
    receivers(&a, &jobs, 0);
    receivers(&a, &news, 1);
    a.wait_waiting_pubs(&jobs, 1);
    // Nothing of B's stays behind: its probe is gone from every bucket
    // (presence, queued, access lists, tokens, monitors), A's are there.
    let a_probe = format!("_probe.{}", a.app.broker.node_id().unwrap());
    let only_a = |p: &[(String, String)]| p.iter().all(|(_, k)| *k == a_probe);
    wait_until("B's probes deleted", || only_a(&probes(&nats)));
    let mut buckets: Vec<String> = probes(&nats).into_iter().map(|(b, _)| b).collect();
    buckets.sort();
    assert_eq!(
        buckets,
        [
            "sp_acl",
            "sp_monitors",
            "sp_nodes",
            "sp_presence",
            "sp_queued",
            "sp_tokens"
        ]
    );

    // The client on A never noticed.
    news_in.write_all(b"news 2\n").unwrap();
    drop(news_in);
    let news_pub = news_pub.wait_with_output().unwrap();
    assert!(news_pub.status.success(), "{news_pub:?}");
    assert_eq!(wait_child(&mut news_a, "news sub on A").code(), Some(0));
    lines_are(&news_a_lines, &["news 1", "news 2"]);

    // The waiting pub goes on with a new receiver, and nothing went to B.
    jobs_in.write_all(b"job 2\n").unwrap();
    drop(jobs_in);
    let (mut jobs_a, jobs_a_lines) = sub(|k, args| a.ssh(k, args), &key, "jobs");
    let jobs_pub = jobs_pub.wait_with_output().unwrap();
    assert!(jobs_pub.status.success(), "{jobs_pub:?}");
    assert_eq!(wait_child(&mut jobs_a, "jobs sub on A").code(), Some(0));
    lines_are(&jobs_a_lines, &["job 2"]);
}

/// Which NATS servers hold an sshpipe node's connection (`/connz`).
fn servers_with_nodes(nats: &NatsCluster) -> Vec<usize> {
    (0..nats.len())
        .filter(|&i| {
            nats.monitor_get(i, "/connz")
                .is_ok_and(|(_, body)| body.contains("\"name\": \"sshpipe "))
        })
        .collect()
}

/// The last lines a node process logged, for a failure's message.
fn log_tail(node: &Binary) -> String {
    let log = node.log.lock().unwrap();
    let from = log.len().saturating_sub(30);
    log[from..].join("\n")
}

/// A child's stderr, read to its end on a thread of its own.
fn stderr_of(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = err.read_to_string(&mut text);
        text
    })
}

#[test]
fn losing_one_nats_server_of_three_mid_stream_changes_nothing() {
    let Some(mut nats) = NatsCluster::start(3) else {
        return;
    };
    // Both nodes as processes, so that a failure shows what they logged.
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = process_node(&nats, 0, dirs.0.path());
    let b = process_node(&nats, 1, dirs.1.path());
    let key = Key::new(dirs.0.path(), "dave");
    let data = common::random_bytes(16 << 20, 16);
    let mut sub = b.ssh(&key, &["sub", "files"]).spawn().unwrap();
    drop(sub.stdin.take());
    let mut out = sub.stdout.take().unwrap();
    let sub_err = stderr_of(&mut sub);
    let received = Arc::new(AtomicUsize::new(0));
    let reader = {
        let received = Arc::clone(&received);
        std::thread::spawn(move || {
            let (mut got, mut buf) = (Vec::new(), vec![0u8; 64 * 1024]);
            while let Ok(n @ 1..) = out.read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
                received.store(got.len(), Ordering::SeqCst);
            }
            got
        })
    };
    // The pub blocks until it sees the sub on B.
    let mut publ = a.ssh(&key, &["pub", "files"]).spawn().unwrap();
    drop(publ.stdout.take());
    let pub_err = stderr_of(&mut publ);
    let mut stdin = publ.stdin.take().unwrap();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let feed = {
        let data = data.clone();
        std::thread::spawn(move || {
            let (first, rest) = data.split_at(data.len() / 4);
            stdin.write_all(first).unwrap();
            wait_go.recv().unwrap();
            stdin.write_all(rest).unwrap();
        })
    };
    wait_until("a first MiB across", || {
        received.load(Ordering::SeqCst) >= 1 << 20
    });
    // The worst one to lose: a server a node is connected through.
    let victim = *servers_with_nodes(&nats)
        .first()
        .expect("a NATS server holding a node's connection");
    nats.kill(victim);
    go.send(()).unwrap();
    let logs = || format!("node A:\n{}\nnode B:\n{}", log_tail(&a), log_tail(&b));
    let start = std::time::Instant::now();
    while received.load(Ordering::SeqCst) < data.len() && !sub_err.is_finished() {
        assert!(
            start.elapsed() < common::WAIT,
            "stuck at {} of {} bytes\n{}",
            received.load(Ordering::SeqCst),
            data.len(),
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    feed.join().unwrap();
    let pub_status = common::wait_child(&mut publ, "pub");
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < common::WAIT,
            "the sub did not end\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let (pub_err, sub_err) = (pub_err.join().unwrap(), sub_err.join().unwrap());
    assert_eq!(pub_status.code(), Some(0), "pub: {pub_err}\n{}", logs());
    assert_eq!(status.code(), Some(0), "sub: {sub_err}\n{}", logs());
    let got = reader.join().unwrap();
    assert_eq!(got.len(), data.len());
    assert_eq!(Sha256::digest(&got), Sha256::digest(&data));
}

fn healthz(on: &Binary) -> (u16, String) {
    http_get(on.http_port().unwrap(), "/healthz").unwrap()
}

#[test]
fn with_all_nats_servers_stopped_commands_fail_and_everything_recovers() {
    let Some(mut nats) = NatsCluster::start(3) else {
        return;
    };
    // Both nodes as processes, so that a failure shows what they logged.
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = process_node_with_http(&nats, 0, dirs.0.path(), "127.0.0.1:0");
    let b = process_node(&nats, 1, dirs.1.path());
    let key = Key::new(dirs.0.path(), "erin");
    let logs = || format!("node A:\n{}\nnode B:\n{}", log_tail(&a), log_tail(&b));
    assert_eq!(healthz(&a).0, 200);

    nats.stop_all();
    let mut last = (0, String::new());
    wait_until("/healthz 503 with NATS gone", || {
        last = healthz(&a);
        last.0 == 503
    });
    assert!(last.1.contains("broker unavailable"), "{last:?}");
    for args in [&["pub", "t"][..], &["sub", "t"], &["pipe", "t"]] {
        let out = a.run(&key, args, b"lost?\n");
        out.expect_code(1);
        assert!(
            out.stderr.contains("broker unavailable"),
            "{args:?}: {}",
            out.stderr
        );
    }
    // What needs no broker still answers.
    a.run(&key, &["whoami"], b"").expect_code(0);

    nats.start_all();
    wait_until("/healthz 200 with NATS back", || healthz(&a).0 == 200);
    // Both nodes serve across again: a pub on A reaches a sub on B.
    wait_until("B serves again", || b.run(&key, &["ls"], b"").code() == 0);
    let (mut sub_b, lines) = sub(|k, args| b.ssh(k, args), &key, "t");
    // The pub blocks until it sees the sub on B.
    let out = a.run(&key, &["pub", "t"], b"back\n");
    out.expect_code(0);
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = sub_b.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < common::WAIT,
            "the sub on B did not end\n{}",
            logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", logs());
    lines_are(&lines, &["back"]);
}
