//! Queued messages (SPEC §8) with the real `ssh` client: skypipe's "data in
//! the pipe" — files pulled out in order, draining then live with `-k`,
//! exactly-once under concurrent subs, limits that leave nothing behind,
//! and a receiver killed mid-message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::Read;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use sshpipe::broker::{BrokerConfig, QueueLimits};
use sshpipe::server::Options;

/// Collects a child's stdout on a thread.
fn pump(child: &mut Child) -> (Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let mut from = child.stdout.take().unwrap();
    let into = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&into);
    let t = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    (into, t)
}

fn queue(server: &TestServer, key: &Key, topic: &str, body: &[u8]) -> Out {
    let out = server.run(key, &["pub", "-q", topic], body);
    out.expect_code(0);
    out
}

fn full(key: &Key, topic: &str) -> String {
    format!("{}/{topic}", key.anonymous_name())
}

fn ls(server: &TestServer, key: &Key) -> String {
    let out = server.run(key, &["ls"], b"");
    out.expect_code(0);
    out.stdout_str()
}

#[test]
fn two_files_come_out_in_order() {
    let server = TestServer::start();
    let key = server.key("k");
    let a = random_bytes(300_000, 1);
    let b = b"file b\n".to_vec();
    let out = queue(&server, &key, "files", &a);
    assert!(
        out.stderr.ends_with("queued (1 waiting)\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.starts_with("subscribe to this channel:\n"));
    let out = queue(&server, &key, "files", &b);
    assert!(
        out.stderr.ends_with("queued (2 waiting)\n"),
        "{}",
        out.stderr
    );
    let listing = ls(&server, &key);
    let want = format!("  queued: 2 messages, {} bytes\n", a.len() + b.len());
    assert!(listing.starts_with("files\n"), "{listing}");
    assert!(listing.contains(&want), "{listing}");

    let first = server.run(&key, &["sub", "files"], b"");
    first.expect_code(0);
    assert_eq!(sha256(&first.stdout), sha256(&a));
    assert_eq!(first.stderr, "");
    let second = server.run(&key, &["sub", "files"], b"");
    second.expect_code(0);
    assert_eq!(second.stdout, b);
    assert_eq!(server.app.broker.queued(&full(&key, "files")), (0, 0));
    assert_eq!(ls(&server, &key), "no topics\n");
}

#[test]
fn with_a_receiver_pub_q_delivers_live() {
    let server = TestServer::start();
    let key = server.key("k");
    let mut sub = server.spawn(&key, &["sub", "t"]);
    server.wait_receivers(&full(&key, "t"), 1);
    let out = server.run(&key, &["pub", "-q", "t"], b"live\n");
    out.expect_code(0);
    assert!(out.stderr.ends_with("msg sent!\n"), "{}", out.stderr);
    let wait = wait_child(&mut sub, "sub");
    assert!(wait.success());
    let done = collect(sub, "sub");
    assert_eq!(done.stdout, b"live\n");
    assert_eq!(server.app.broker.queued(&full(&key, "t")), (0, 0));
}

#[test]
fn sub_k_drains_in_order_then_stays_live() {
    let server = TestServer::start();
    let key = server.key("k");
    queue(&server, &key, "jobs", b"one\n");
    queue(&server, &key, "jobs", b"two\n");
    let mut sub = server.spawn(&key, &["sub", "-k", "jobs"]);
    let (got, reader) = pump(&mut sub);
    wait_until("the queue drained", || {
        got.lock().unwrap().as_slice() == b"one\ntwo\n"
    });
    server.wait_receivers(&full(&key, "jobs"), 1);
    let out = server.run(&key, &["pub", "-q", "jobs"], b"three\n");
    assert!(out.stderr.ends_with("msg sent!\n"), "{}", out.stderr);
    wait_until("live data after the queue", || {
        got.lock().unwrap().as_slice() == b"one\ntwo\nthree\n"
    });
    assert_eq!(server.app.broker.queued(&full(&key, "jobs")), (0, 0));
    sub.kill().unwrap();
    let _ = sub.wait();
    reader.join().unwrap();
}

/// `sub -k` removes each queued message once its client has written it
/// out (acknowledged it), not when the server handed it to the channel:
/// a 1 MiB message fits in OpenSSH's 2 MiB window at once, so removed on
/// handing over, it left the queue before the client wrote 64 KiB of it.
/// The client here writes slowly (the test reads 4 KiB every 10 ms) but
/// steadily, so the server keeps waiting for it.
#[test]
fn sub_k_removes_a_message_once_the_client_has_written_it_out() {
    let server = TestServer::start();
    let key = server.key("k");
    let (one, two) = (random_bytes(1 << 20, 3), b"two\n".to_vec());
    queue(&server, &key, "jobs", &one);
    queue(&server, &key, "jobs", &two);
    let topic = full(&key, "jobs");
    let mut sub = server.spawn(&key, &["sub", "-k", "jobs"]);
    let mut from = sub.stdout.take().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
            thread::sleep(std::time::Duration::from_millis(10));
        }
    });
    wait_until("the first message removed", || {
        server.app.broker.queued(&topic).0 < 2
    });
    let read_by_then = got.lock().unwrap().len();
    assert!(
        read_by_then >= 512 * 1024,
        "removed when the client had written out {read_by_then} bytes"
    );
    wait_until("both messages", || {
        got.lock().unwrap().len() == one.len() + two.len()
    });
    let all = got.lock().unwrap().clone();
    assert_eq!(sha256(&all[..one.len()]), sha256(&one));
    assert_eq!(&all[one.len()..], two.as_slice());
    wait_until("the queue drained", || {
        server.app.broker.queued(&topic) == (0, 0)
    });
    sub.kill().unwrap();
    let _ = sub.wait();
    reader.join().unwrap();
}

#[test]
fn six_concurrent_subs_each_get_exactly_one_message() {
    let server = TestServer::start();
    let key = server.key("k");
    let bodies: Vec<Vec<u8>> = (0..6u64)
        .map(|i| {
            let mut b = format!("message {i}\n").into_bytes();
            b.extend(random_bytes(50_000, i + 10));
            b
        })
        .collect();
    for b in &bodies {
        queue(&server, &key, "work", b);
    }
    let subs: Vec<Child> = (0..6)
        .map(|_| server.spawn(&key, &["sub", "work"]))
        .collect();
    let mut got: Vec<String> = subs
        .into_iter()
        .map(|c| {
            let out = collect(c, "sub work");
            out.expect_code(0);
            sha256(&out.stdout)
        })
        .collect();
    let mut want: Vec<String> = bodies.iter().map(|b| sha256(b)).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "each message to exactly one sub");
    assert_eq!(server.app.broker.queued(&full(&key, "work")), (0, 0));
}

fn limited(limits: QueueLimits) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        broker: BrokerConfig {
            // Test keys are anonymous: give them a user's whole quota here.
            queue: QueueLimits {
                anonymous_divisor: 1,
                ..limits
            },
            ..Default::default()
        },
        ..options_for(&dir.path().join("data"))
    };
    TestServer::from_options(opts, dir)
}

#[test]
fn over_a_limit_is_queue_full_and_nothing_is_stored() {
    let server = limited(QueueLimits {
        max_message: 100_000,
        max_user_bytes: 150_000,
        max_user_messages: 2,
        ..Default::default()
    });
    let key = server.key("k");
    let topic = full(&key, "t");

    let out = server.run(&key, &["pub", "-q", "t"], &random_bytes(100_001, 1));
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("queue full: message is over the 100000-byte limit"),
        "{}",
        out.stderr
    );
    assert_eq!(server.app.broker.queued(&topic), (0, 0));
    assert_eq!(ls(&server, &key), "no topics\n");

    queue(&server, &key, "t", &random_bytes(100_000, 2));
    let out = server.run(&key, &["pub", "-q", "t"], &random_bytes(60_000, 3));
    out.expect_code(1);
    let line = out.stderr.lines().last().unwrap();
    assert!(
        line.starts_with("queue full: ") && line.contains("(limit 150000)"),
        "{line}"
    );
    assert_eq!(server.app.broker.queued(&topic), (1, 100_000));

    queue(&server, &key, "t", b"small");
    let out = server.run(&key, &["pub", "-q", "t"], b"x");
    out.expect_code(1);
    let want = format!(
        "queue full: {} has 2 queued messages (limit 2)",
        key.anonymous_name()
    );
    assert_eq!(out.stderr.lines().last(), Some(want.as_str()));
    assert_eq!(server.app.broker.queued(&topic), (2, 100_005));
}

#[test]
fn a_sub_killed_mid_message_leaves_it_at_the_head() {
    let server = TestServer::start();
    let key = server.key("k");
    let big = random_bytes(16 * 1024 * 1024, 7);
    queue(&server, &key, "big", &big);
    queue(&server, &key, "big", b"second\n");
    // A reader that takes a little and then stalls: the server is
    // mid-message, blocked on the SSH window.
    let mut sub = server.spawn(&key, &["sub", "big"]);
    let mut stdout = sub.stdout.take().unwrap();
    let mut first = vec![0u8; 100_000];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(first, big[..100_000]);
    let topic = full(&key, "big");
    assert_eq!(server.app.broker.claimed(&topic), 1);
    sub.kill().unwrap();
    let _ = sub.wait();
    drop(stdout);
    wait_until("the killed sub's claim released", || {
        server.app.broker.claimed(&topic) == 0
    });
    assert_eq!(server.app.broker.queued(&topic).0, 2);

    let again = server.run(&key, &["sub", "big"], b"");
    again.expect_code(0);
    assert_eq!(again.stdout.len(), big.len());
    assert_eq!(sha256(&again.stdout), sha256(&big));
    let last = server.run(&key, &["sub", "big"], b"");
    assert_eq!(last.stdout, b"second\n");
}

#[test]
fn queued_trigger_with_e() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["pub", "-q", "-e", "go"], b"");
    out.expect_code(0);
    assert!(
        out.stderr.ends_with("queued (1 waiting)\n"),
        "{}",
        out.stderr
    );
    let out = server.run(&key, &["sub", "go"], b"");
    out.expect_code(0);
    assert!(out.stdout.is_empty());
    assert_eq!(server.app.broker.queued(&full(&key, "go")), (0, 0));
}

#[test]
fn a_64_mib_message_round_trips_through_the_store() {
    // Exactly at the default limit; it moves through the server in 256 KiB
    // chunks (memory use is the benchmark's business, not a timed test's).
    let server = TestServer::start();
    let key = server.key("k");
    let body = random_bytes(64 * 1024 * 1024, 64);
    let out = server.run(&key, &["pub", "-q", "-c", "big"], &body);
    out.expect_code(0);
    assert_eq!(out.stderr, "");
    let got = server.run(&key, &["sub", "big"], b"");
    got.expect_code(0);
    assert_eq!(got.stdout.len(), body.len());
    assert_eq!(sha256(&got.stdout), sha256(&body));
}
