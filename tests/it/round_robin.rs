//! Round-robin dispatch (SPEC §7, issue 7): each line of a round-robin
//! sender reaches exactly one receiver, rotating; workers joining and
//! leaving adjust the rotation without losing or repeating a line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::Child;
use std::thread;

use common::*;

/// `n` workers (`sub -k TOPIC`) on the topic, each with its lines collected.
fn workers(server: &TestServer, key: &Key, topic: &str, n: usize) -> (Vec<Child>, Vec<Lines>) {
    let full = format!("{}/{topic}", key.anonymous_name());
    let mut subs: Vec<Child> = (0..n)
        .map(|_| server.spawn(key, &["sub", "-k", topic]))
        .collect();
    let lines = subs.iter_mut().map(lines_of).collect();
    server.wait_receivers(&full, n);
    (subs, lines)
}

fn stop(subs: &mut [Child]) {
    for s in subs {
        s.kill().unwrap();
        let _ = s.wait();
    }
}

fn total(workers: &[Lines]) -> usize {
    workers.iter().map(|w| w.lock().unwrap().len()).sum()
}

/// Every number 1..=n exactly once across the workers.
fn assert_exactly_once(workers: &[Lines], n: usize) {
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for w in workers {
        for line in w.lock().unwrap().iter() {
            *seen.entry(line.parse().unwrap()).or_default() += 1;
        }
    }
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
    assert!(dupes.is_empty(), "lines sent twice: {dupes:?}");
    let missing: Vec<_> = (1..=n).filter(|i| !seen.contains_key(i)).collect();
    assert!(missing.is_empty(), "lines lost: {missing:?}");
    assert_eq!(seen.len(), n);
}

fn numbers(range: std::ops::RangeInclusive<usize>) -> Vec<u8> {
    range
        .map(|i| format!("{i}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn thousand_lines_to_three_workers_exactly_once_and_balanced() {
    let server = TestServer::start();
    let key = server.key("k");
    let (mut subs, workers) = workers(&server, &key, "jobs", 3);
    let out = server.run(
        &key,
        &["pub", "-d", "round-robin", "jobs"],
        &numbers(1..=1000),
    );
    out.expect_code(0);
    assert!(out.stderr.contains("msg sent!"), "{}", out.stderr);
    wait_until("1000 lines delivered", || total(&workers) >= 1000);
    assert_exactly_once(&workers, 1000);
    for w in &workers {
        let n = w.lock().unwrap().len();
        // Balanced within 10 % of an even share (333).
        assert!((300..=367).contains(&n), "unbalanced: {n} of 1000");
    }
    stop(&mut subs);
}

#[test]
fn a_worker_leaving_midway_loses_and_repeats_nothing() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/jobs", key.anonymous_name());
    let (mut subs, workers) = workers(&server, &key, "jobs", 3);
    let mut publ = server.spawn(&key, &["pub", "-c", "-d", "round-robin", "jobs"]);
    let mut stdin = publ.stdin.take().unwrap();
    stdin.write_all(&numbers(1..=500)).unwrap();
    stdin.flush().unwrap();
    wait_until("first 500 lines delivered", || total(&workers) >= 500);
    // The third worker leaves; the rotation continues over the other two.
    subs[2].kill().unwrap();
    let _ = subs[2].wait();
    server.wait_counts(&full, "worker gone", |c| c.receivers == 2);
    let before = workers[2].lock().unwrap().len();
    stdin.write_all(&numbers(501..=1000)).unwrap();
    drop(stdin);
    let out = collect(publ, "round-robin pub");
    out.expect_code(0);
    wait_until("all 1000 lines delivered", || total(&workers) >= 1000);
    assert_eq!(
        workers[2].lock().unwrap().len(),
        before,
        "gone worker got lines"
    );
    assert_exactly_once(&workers, 1000);
    stop(&mut subs[..2]);
}

#[test]
fn other_senders_keep_their_own_mode() {
    let server = TestServer::start();
    let key = server.key("k");
    let (mut subs, workers) = workers(&server, &key, "mixed", 2);
    let rr: String = (1..=100).map(|i| format!("rr-{i}\n")).collect();
    let mc: String = (1..=10).map(|i| format!("mc-{i}\n")).collect();
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| {
            server.run(
                &key,
                &["pub", "-c", "-d", "round-robin", "mixed"],
                rr.as_bytes(),
            )
        });
        let b = s.spawn(|| server.run(&key, &["pub", "-c", "mixed"], mc.as_bytes()));
        (a.join().unwrap(), b.join().unwrap())
    });
    a.expect_code(0);
    b.expect_code(0);
    wait_until("all lines", || total(&workers) >= 100 + 2 * 10);
    let mut rr_seen = Vec::new();
    for w in &workers {
        let lines = w.lock().unwrap();
        let mc_lines: Vec<_> = lines.iter().filter(|l| l.starts_with("mc-")).collect();
        assert_eq!(mc_lines.len(), 10, "multicast reaches every receiver");
        rr_seen.extend(lines.iter().filter(|l| l.starts_with("rr-")).cloned());
    }
    rr_seen.sort();
    let mut expected: Vec<String> = (1..=100).map(|i| format!("rr-{i}")).collect();
    expected.sort();
    assert_eq!(rr_seen, expected, "round-robin lines exactly once");
    stop(&mut subs);
}

#[test]
fn a_line_longer_than_64k_goes_whole_to_one_receiver() {
    let server = TestServer::start();
    let key = server.key("k");
    let (mut subs, workers) = workers(&server, &key, "big", 2);
    let long = "L".repeat(200 * 1024);
    let input = format!("short-1\n{long}\nshort-2\n");
    server
        .run(
            &key,
            &["pub", "-c", "-d", "round-robin", "big"],
            input.as_bytes(),
        )
        .expect_code(0);
    wait_until("three lines", || total(&workers) >= 3);
    let all: Vec<String> = workers
        .iter()
        .flat_map(|w| w.lock().unwrap().clone())
        .collect();
    assert_eq!(
        all.len(),
        3,
        "{:?}",
        all.iter().map(String::len).collect::<Vec<_>>()
    );
    assert!(all.contains(&long), "the long line arrived whole");
    stop(&mut subs);
}

#[test]
fn blocking_round_robin_pub_waits_for_a_worker() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/later", key.anonymous_name());
    let publ = server.spawn(&key, &["pub", "-d", "round-robin", "later"]);
    server.wait_waiting_pubs(&full, 1);
    let mut sub = server.spawn(&key, &["sub", "later"]);
    let got = lines_of(&mut sub);
    let mut publ = publ;
    publ.stdin.take().unwrap().write_all(b"one\ntwo\n").unwrap();
    let out = collect(publ, "pub");
    out.expect_code(0);
    assert!(
        out.stderr.contains("no subs found ... waiting"),
        "{}",
        out.stderr
    );
    // stdout is already being read by `lines_of`; only the status remains.
    let status = wait_child(&mut sub, "sub");
    assert_eq!(status.code(), Some(0));
    wait_until("both lines", || got.lock().unwrap().len() >= 2);
    assert_eq!(*got.lock().unwrap(), ["one", "two"]);
}
