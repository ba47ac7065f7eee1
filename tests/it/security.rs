//! The broker half of issue 13, tried as a hostile user would (SPEC §6, §8,
//! §9): three users, an admin-less world, and anonymous keys, over the real
//! `ssh` client. Each test is an attack that worked before and must not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::process::Child;

use sshpipe::broker::{BrokerConfig, QueueLimits};

/// The server and everybody's keys: alice, bob and carol in the users file,
/// and keys in no file (anonymous, open mode).
struct World {
    server: TestServer,
    alice: Key,
    bob: Key,
    carol: Key,
    keys: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World::with(BrokerConfig::default())
    }

    fn with(broker: BrokerConfig) -> World {
        let keys = tempfile::tempdir().expect("tempdir");
        let alice = Key::new(keys.path(), "alice");
        let bob = Key::new(keys.path(), "bob");
        let carol = Key::new(keys.path(), "carol");
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("users.toml");
        let toml = users_toml(&[("alice", &alice), ("bob", &bob), ("carol", &carol)]);
        std::fs::write(&users, toml).unwrap();
        let opts = sshpipe::server::Options {
            users: Some(users),
            broker,
            ..options_for(&dir.path().join("data"))
        };
        World {
            server: TestServer::from_options(opts, dir),
            alice,
            bob,
            carol,
            keys,
        }
    }

    fn anon(&self, name: &str) -> Key {
        Key::new(self.keys.path(), name)
    }

    fn run(&self, key: &Key, args: &[&str]) -> Out {
        self.server.run(key, args, b"")
    }
}

/// Ends a background client this test started.
fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A background client's end: its exit status 1 and `access denied`.
fn expect_denied(child: Child, what: &str) {
    let out = collect(child, what);
    out.expect_code(1);
    assert_eq!(out.stderr.lines().last(), Some("access denied"), "{what}");
}

// ------------------------------------------------- revocation (SPEC §6)

#[test]
fn removing_a_user_from_a_list_cuts_off_his_live_sub_at_once() {
    let w = World::new();
    w.run(&w.alice, &["access", "t", "bob,carol"])
        .expect_code(0);
    let bob = w.server.spawn(&w.bob, &["sub", "-k", "alice/t"]);
    let carol = w.server.spawn(&w.carol, &["sub", "-k", "alice/t"]);
    w.server.wait_receivers("alice/t", 2);
    let out = w.run(&w.alice, &["access", "t", "carol"]);
    out.expect_code(0);
    assert_eq!(out.stdout_str(), "access: carol\n");
    expect_denied(bob, "bob's sub after alice removed him");
    // carol is still on the list and still receiving.
    w.server
        .wait_counts("alice/t", "carol alone", |c| c.receivers == 1);
    let sent = w
        .server
        .run(&w.alice, &["pub", "-c", "t"], b"still yours\n");
    sent.expect_code(0);
    stop(carol);
}

#[test]
fn a_new_list_given_by_pub_a_cuts_off_a_pipe_a_pub_and_a_pattern_sub() {
    let w = World::new();
    w.run(&w.alice, &["access", "t", "bob"]).expect_code(0);
    let pipe = w.server.spawn(&w.bob, &["pipe", "alice/t"]);
    w.server.wait_receivers("alice/t", 1);
    let pattern = w.server.spawn(&w.bob, &["sub", "alice/t*"]);
    w.server.wait_receivers("alice/t", 2);
    // A blocking pub of bob's, waiting on a topic nobody reads.
    w.run(&w.alice, &["access", "w", "bob"]).expect_code(0);
    let waiting = w.server.spawn(&w.bob, &["pub", "alice/w"]);
    w.server.wait_waiting_pubs("alice/w", 1);
    // alice replaces both lists the way -a does.
    let out = w.server.run(
        &w.alice,
        &["pub", "-b=false", "-c", "-a", "carol", "t"],
        b"",
    );
    out.expect_code(0);
    expect_denied(pipe, "bob's pipe");
    expect_denied(pattern, "bob's pattern sub");
    w.run(&w.alice, &["access", "w", "carol"]).expect_code(0);
    expect_denied(waiting, "bob's waiting pub");
}

// --------------------------------------------- the access command (§4, §6)

#[test]
fn access_shows_sets_and_clears_for_the_owner_only() {
    let w = World::new();
    let out = w.run(&w.alice, &["access", "t"]);
    out.expect_code(0);
    assert_eq!(out.stdout_str(), "access: none\n");
    let fp = w.carol.fingerprint.clone();
    let out = w.run(&w.alice, &["access", "t", &format!("bob,{fp}")]);
    out.expect_code(0);
    assert_eq!(out.stdout_str(), format!("access: bob,{fp}\n"));
    assert_eq!(
        w.run(&w.alice, &["access", "alice/t"]).stdout_str(),
        format!("access: bob,{fp}\n")
    );
    for args in [
        &["access", "alice/t"][..],
        &["access", "alice/t", "bob"][..],
        &["access", "alice/t", "--clear"][..],
    ] {
        let out = w.run(&w.bob, args);
        out.expect_code(1);
        assert_eq!(out.stderr, "access denied\n", "{args:?}");
    }
    let out = w.run(&w.alice, &["access", "t", "--clear"]);
    out.expect_code(0);
    assert_eq!(out.stdout_str(), "access: none\n");
    let out = w.run(&w.alice, &["access", "t", "bob", "--clear"]);
    out.expect_code(2);
    assert!(
        out.stderr
            .starts_with("access: give a list or --clear, not both\n")
    );
}

#[test]
fn access_p_works_on_a_public_topic_while_someone_is_on_it() {
    let w = World::new();
    let out = w.run(&w.alice, &["access", "-p", "room", "bob"]);
    out.expect_code(1);
    let alice = w.server.spawn(&w.alice, &["sub", "-k", "-p", "room"]);
    let carol = w.server.spawn(&w.carol, &["sub", "-k", "-p", "room"]);
    w.server.wait_receivers("public/room", 2);
    // Not on it: no claim to its list.
    w.run(&w.bob, &["access", "-p", "room", "bob"])
        .expect_code(1);
    let out = w.run(&w.alice, &["access", "-p", "room", "bob"]);
    out.expect_code(0);
    assert_eq!(out.stdout_str(), "access: bob\n");
    expect_denied(carol, "carol, not on alice's new public list");
    w.run(&w.carol, &["access", "-p", "room", "carol"])
        .expect_code(1);
    stop(alice);
}

// ------------------------------------------ pub -q -a keeps its list (§6)

#[test]
fn a_public_queued_message_with_a_list_is_only_for_the_list() {
    let w = World::new();
    let out = w.server.run(
        &w.alice,
        &["pub", "-q", "-p", "-a", "bob", "drop"],
        b"for bob",
    );
    out.expect_code(0);
    let out = w.run(&w.carol, &["sub", "-p", "drop"]);
    out.expect_code(1);
    assert_eq!(out.stderr, "access denied\n");
    assert!(out.stdout.is_empty());
    let out = w.run(&w.bob, &["sub", "-p", "drop"]);
    out.expect_code(0);
    assert_eq!(out.stdout, b"for bob");
}

// --------------------------------------------------------- ls hides IPs

#[test]
fn ls_shows_addresses_only_to_their_own_user() {
    let w = World::new();
    let alice = w.server.spawn(&w.alice, &["sub", "-k", "-p", "room"]);
    let bob = w.server.spawn(&w.bob, &["sub", "-k", "-p", "room"]);
    w.server.wait_receivers("public/room", 2);
    let seen = w.run(&w.bob, &["ls"]).stdout_str();
    assert!(seen.contains("alice#"), "{seen}");
    assert!(!seen.contains("alice@"), "bob sees alice's address: {seen}");
    assert!(seen.contains("bob@127.0.0.1:"), "{seen}");
    stop(alice);
    stop(bob);
}

// --------------------------------------------------- fair limits (§8, §9)

#[test]
fn anonymous_keys_cannot_fill_the_topic_limit() {
    let w = World::with(BrokerConfig {
        max_topics: 4,
        max_topics_per_user: 10,
        queue: QueueLimits {
            anonymous_divisor: 10,
            ..QueueLimits::default()
        },
        ..BrokerConfig::default()
    });
    let mut held: Vec<Child> = Vec::new();
    let first = w.anon("anon1");
    held.push(w.server.spawn(&first, &["sub", "-k", "a"]));
    w.server
        .wait_receivers(&format!("{}/a", first.anonymous_name()), 1);
    let out = w.run(&first, &["sub", "-k", "b"]);
    out.expect_code(1);
    let want = format!("too many topics for {} (limit 1)", first.anonymous_name());
    assert_eq!(out.stderr.lines().last(), Some(want.as_str()));
    let second = w.anon("anon2");
    held.push(w.server.spawn(&second, &["sub", "-k", "a"]));
    w.server
        .wait_receivers(&format!("{}/a", second.anonymous_name()), 1);
    let third = w.anon("anon3");
    let out = w.run(&third, &["sub", "-k", "a"]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("too many topics for anonymous keys together (limit 2)")
    );
    // Registered users still get topics.
    held.push(w.server.spawn(&w.alice, &["sub", "-k", "a"]));
    w.server.wait_receivers("alice/a", 1);
    held.into_iter().for_each(stop);
}

fn queue_limits(l: QueueLimits) -> World {
    World::with(BrokerConfig {
        queue: l,
        ..BrokerConfig::default()
    })
}

#[test]
fn queued_messages_count_against_the_topics_owner() {
    let w = queue_limits(QueueLimits {
        max_user_messages: 2,
        ..QueueLimits::default()
    });
    w.run(&w.alice, &["access", "inbox", "bob"]).expect_code(0);
    for i in 0..2 {
        let body = format!("note {i}");
        let out = w
            .server
            .run(&w.bob, &["pub", "-q", "alice/inbox"], body.as_bytes());
        out.expect_code(0);
    }
    let out = w
        .server
        .run(&w.bob, &["pub", "-q", "alice/inbox"], b"one more");
    out.expect_code(1);
    assert_eq!(
        out.stderr.lines().last(),
        Some("queue full: alice has 2 queued messages (limit 2)")
    );
    // bob's own quota is untouched.
    let out = w.server.run(&w.bob, &["pub", "-q", "mine"], b"x");
    out.expect_code(0);
}

#[test]
fn anonymous_owners_get_a_tenth_of_the_queue_quota() {
    let w = queue_limits(QueueLimits {
        max_user_messages: 20,
        anonymous_divisor: 10,
        ..QueueLimits::default()
    });
    let anon = w.anon("anon");
    for _ in 0..2 {
        w.server
            .run(&anon, &["pub", "-q", "t"], b"x")
            .expect_code(0);
    }
    let out = w.server.run(&anon, &["pub", "-q", "t"], b"x");
    out.expect_code(1);
    let want = format!(
        "queue full: {} has 2 queued messages (limit 2)",
        anon.anonymous_name()
    );
    assert_eq!(out.stderr.lines().last(), Some(want.as_str()));
    // A registered user keeps the whole quota.
    for _ in 0..3 {
        w.server
            .run(&w.alice, &["pub", "-q", "t"], b"x")
            .expect_code(0);
    }
}

#[test]
fn the_store_as_a_whole_is_bounded() {
    let w = queue_limits(QueueLimits {
        max_store_bytes: 1000,
        ..QueueLimits::default()
    });
    w.server
        .run(&w.alice, &["pub", "-q", "t"], &[b'a'; 600])
        .expect_code(0);
    let out = w.server.run(&w.bob, &["pub", "-q", "t"], &[b'b'; 600]);
    out.expect_code(1);
    assert_eq!(
        out.stderr.lines().last(),
        Some("queue full: server storage is full")
    );
    assert_eq!(w.server.app.broker.queued("bob/t"), (0, 0));
    w.server
        .run(&w.bob, &["pub", "-q", "t"], &[b'b'; 400])
        .expect_code(0);
}

#[test]
fn nothing_is_stored_below_the_free_disk_share() {
    let w = queue_limits(QueueLimits {
        min_free_percent: 100,
        ..QueueLimits::default()
    });
    let out = w.server.run(&w.alice, &["pub", "-q", "t"], b"x");
    out.expect_code(1);
    assert_eq!(
        out.stderr.lines().last(),
        Some("queue full: server storage is full")
    );
    assert_eq!(w.server.app.broker.queued("alice/t"), (0, 0));
}
