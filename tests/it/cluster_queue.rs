//! Queued messages across nodes (SPEC §8, §14), with the real `ssh` on two
//! nodes of a real 3-server NATS cluster: what `pub -q` stores on one node
//! is listed and read on the other, byte for byte, each message by exactly
//! one of the subs racing for them on both nodes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::process::Stdio;

use super::cluster::node;
use super::cluster_failures::process_node;
use crate::common;
use common::nats::NatsCluster;
use common::{Key, TestServer, collect, random_bytes, sha256, wait_until};

/// Message `id`: a header line with its id, length and digest, then bytes.
fn message(id: usize, len: usize) -> Vec<u8> {
    let body = random_bytes(len, id as u64 + 7);
    let mut m = format!("{id} {len} {}\n", sha256(&body)).into_bytes();
    m.extend_from_slice(&body);
    m
}

/// The id of a message received whole and exact.
fn check(got: &[u8]) -> usize {
    let nl = got.iter().position(|&b| b == b'\n').expect("a header");
    let header = std::str::from_utf8(&got[..nl]).unwrap();
    let mut parts = header.split(' ');
    let id: usize = parts.next().unwrap().parse().unwrap();
    let len: usize = parts.next().unwrap().parse().unwrap();
    let body = &got[nl + 1..];
    assert_eq!(body.len(), len, "message {id}: length");
    assert_eq!(sha256(body), parts.next().unwrap(), "message {id}: bytes");
    id
}

/// The `queued:` count `ls` on a node shows for `topic`.
fn listed(on: &TestServer, key: &Key, topic: &str) -> Option<usize> {
    queued_in(&on.run(key, &["ls"], b"").stdout_str(), topic)
}

fn queued_in(ls: &str, topic: &str) -> Option<usize> {
    let mut lines = ls.lines().skip_while(|l| *l != topic).skip(1);
    lines
        .find_map(|l| l.strip_prefix("  queued: "))
        .and_then(|l| l.split(' ').next()?.parse().ok())
}

#[test]
fn queued_on_one_node_is_drained_exactly_once_by_subs_on_both() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
    let key = Key::new(a.dir.path(), "frank");
    // Sizes around the store's 256 KiB chunks, and one of several MiB.
    let sizes = [
        0,
        1,
        300,
        256 * 1024,
        256 * 1024 + 1,
        700_000,
        5 << 20,
        40,
        2_000,
        1 << 20,
    ];
    for (id, len) in sizes.iter().enumerate() {
        let out = a.run(&key, &["pub", "-q", "files"], &message(id, *len));
        out.expect_code(0);
        assert!(
            out.stderr.contains(&format!("queued ({} waiting)", id + 1)),
            "{}",
            out.stderr
        );
    }
    // B lists what waits on A.
    wait_until("B lists A's 10 queued messages", || {
        listed(&b, &key, "files") == Some(sizes.len())
    });

    // Ten subs at once, half on each node: each takes one message.
    let subs: Vec<_> = (0..sizes.len())
        .map(|i| {
            let on = if i % 2 == 0 { &a } else { &b };
            on.ssh(&key, &["sub", "files"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let mut from_b = 0;
    for (i, child) in subs.into_iter().enumerate() {
        let out = collect(child, "sub");
        out.expect_code(0);
        *seen.entry(check(&out.stdout)).or_default() += 1;
        from_b += i % 2;
    }
    let mut ids: Vec<usize> = seen.keys().copied().collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..sizes.len()).collect::<Vec<_>>(),
        "every message once: {seen:?}"
    );
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(from_b, sizes.len() / 2);
    for on in [&a, &b] {
        wait_until("the queue empty on both nodes", || {
            on.run(&key, &["ls"], b"").stdout_str() == "no topics\n"
        });
    }
}

#[test]
fn a_sub_on_another_node_takes_the_oldest_first_and_leaves_nothing_behind() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
    let key = Key::new(a.dir.path(), "gina");
    // Oldest on A, then one on B, then another on A.
    a.run(&key, &["pub", "-q", "jobs"], &message(0, 10))
        .expect_code(0);
    wait_until("B sees A's message", || listed(&b, &key, "jobs") == Some(1));
    // `queued (N waiting)` counts the whole cluster's queue, as `ls` does.
    let out = b.run(&key, &["pub", "-q", "jobs"], &message(1, 10));
    out.expect_code(0);
    assert!(out.stderr.contains("queued (2 waiting)"), "{}", out.stderr);
    wait_until("A sees B's message", || listed(&a, &key, "jobs") == Some(2));
    let out = a.run(&key, &["pub", "-q", "jobs"], &message(2, 10));
    out.expect_code(0);
    assert!(out.stderr.contains("queued (3 waiting)"), "{}", out.stderr);
    wait_until("B lists all three", || listed(&b, &key, "jobs") == Some(3));
    let order: Vec<usize> = (0..3)
        .map(|_| {
            let out = b.run(&key, &["sub", "jobs"], b"");
            out.expect_code(0);
            check(&out.stdout)
        })
        .collect();
    assert_eq!(order, [0, 1, 2]);
    wait_until("nothing left", || {
        a.run(&key, &["ls"], b"").stdout_str() == "no topics\n"
    });
}

/// A node killed while its sub reads a message borrowed from another node:
/// the loan lapses with the node, and the message, back at the head of its
/// queue, goes whole to the next sub.
#[test]
fn a_borrower_killed_mid_message_leaves_the_message_queued() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let a = node(&nats, 0, 3);
    let b_data = tempfile::tempdir().unwrap();
    let b = process_node(&nats, 1, b_data.path());
    let key = Key::new(a.dir.path(), "hank");
    let body = message(0, 8 << 20);
    a.run(&key, &["pub", "-q", "files"], &body).expect_code(0);
    wait_until("B sees A's message", || {
        queued_in(&b.run(&key, &["ls"], b"").stdout_str(), "files") == Some(1)
    });

    // A sub on B that reads a little and then nothing (its pipe fills).
    let mut sub = b
        .ssh(&key, &["sub", "files"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = sub.stdout.take().unwrap();
    let mut first = [0u8; 4096];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert_eq!(&first[..], &body[..4096]);
    b.kill9();
    drop(out);
    let _ = sub.wait();

    let out = a.run(&key, &["sub", "files"], b"");
    out.expect_code(0);
    assert_eq!(check(&out.stdout), 0);
    assert_eq!(a.run(&key, &["ls"], b"").stdout_str(), "no topics\n");
}

/// A public topic's list kept with its queued messages (`pub -q -p -a`)
/// lives on the node that took them; that node checks it before it lends
/// one, so a reader the list leaves out is refused on another node too,
/// and lets go of it once the last one is read, wherever it was read.
#[test]
fn a_list_kept_with_queued_messages_holds_for_readers_on_other_nodes() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
    let keys = tempfile::tempdir().unwrap();
    let (alice, bob, carol) = (
        Key::new(keys.path(), "alice"),
        Key::new(keys.path(), "bob"),
        Key::new(keys.path(), "carol"),
    );
    let name = |key: &Key| {
        let who = a.run(key, &["whoami"], b"").stdout_str();
        who.lines()
            .find_map(|l| l.strip_prefix("user: "))
            .unwrap()
            .to_string()
    };
    let bob_name = name(&bob);
    a.run(
        &alice,
        &["pub", "-q", "-p", "-a", &bob_name, "drop"],
        &message(0, 1000),
    )
    .expect_code(0);
    wait_until("B lists alice's queued message", || {
        listed(&b, &alice, "public/drop") == Some(1)
    });
    // Carol asks first, on B: the list A keeps with the message refuses
    // her, as it would on A (SPEC §6).
    let out = b.run(&carol, &["sub", "public/drop"], b"");
    out.expect_code(1);
    assert_eq!(out.stderr, "access denied\n");
    assert!(out.stdout.is_empty());
    let got = b.run(&bob, &["sub", "public/drop"], b"");
    got.expect_code(0);
    assert_eq!(check(&got.stdout), 0);
    // Its last message read on B, A lets go of the list: the public
    // name is free again, on A as on B, and carol may wait there.
    for on in [&a, &b] {
        let mut carol_sub = on
            .ssh(&carol, &["sub", "public/drop"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("carol a receiver", || {
            on.app
                .broker
                .counts("public/drop")
                .is_some_and(|c| c.receivers == 1)
                || carol_sub.try_wait().unwrap().is_some()
        });
        assert!(
            carol_sub.try_wait().unwrap().is_none(),
            "carol's sub ended: {:?}",
            carol_sub.wait_with_output().unwrap()
        );
        carol_sub.kill().unwrap();
        let _ = carol_sub.wait();
        wait_until("carol gone", || {
            on.app.broker.counts("public/drop").is_none()
        });
    }
}

/// One quota for the whole cluster (SPEC §8, §14): what a user has queued
/// through one node counts on the others, so N nodes don't give N quotas.
#[test]
fn a_users_queue_quota_counts_what_waits_on_every_node() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let limited = |i: usize| {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = common::options_for(&dir.path().join("data"));
        opts.broker = super::cluster::node_options(&nats, i, 3);
        opts.broker.queue.max_user_messages = 3;
        opts.broker.queue.max_user_bytes = 1000;
        TestServer::from_options(opts, dir)
    };
    let (a, b) = (limited(0), limited(1));
    let key = Key::new(a.dir.path(), "hank");
    for _ in 0..2 {
        a.run(&key, &["pub", "-q", "jobs"], b"0123456789")
            .expect_code(0);
    }
    wait_until("B lists A's two messages", || {
        listed(&b, &key, "jobs") == Some(2)
    });
    // Bytes: 20 on A, so 981 more on B pass the 1000-byte limit.
    let out = b.run(&key, &["pub", "-q", "other"], &[b'x'; 981]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains(" has 20 bytes queued, this message would make 1001 (limit 1000)"),
        "{}",
        out.stderr
    );
    b.run(&key, &["pub", "-q", "jobs"], b"third").expect_code(0);
    wait_until("A lists B's message", || {
        listed(&a, &key, "jobs") == Some(3)
    });
    for on in [&a, &b] {
        let out = on.run(&key, &["pub", "-q", "jobs"], b"fourth");
        out.expect_code(1);
        assert!(
            out.stderr.contains(" has 3 queued messages (limit 3)"),
            "{}",
            out.stderr
        );
    }
    // Taking one, on either node, makes room on both.
    b.run(&key, &["sub", "jobs"], b"").expect_code(0);
    wait_until("A sees the room", || listed(&a, &key, "jobs") == Some(2));
    a.run(&key, &["pub", "-q", "jobs"], b"fourth")
        .expect_code(0);
}
