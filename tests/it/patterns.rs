//! Pattern subs (SPEC §7, issue 7): `sub 'logs-*'` receives from every
//! matching topic, existing and future, never from a non-matching one, and
//! never from a topic its user could not `sub` by name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;

use common::*;

/// Waits until `ls` shows the pattern sub (patterns are not topics, so there
/// are no counts to watch).
fn wait_pattern(server: &TestServer, key: &Key, pattern: &str) {
    wait_until(&format!("pattern {pattern} registered"), || {
        let ls = server.run(key, &["ls"], b"").stdout_str();
        ls.lines().any(|l| l == pattern)
    });
}

#[test]
fn pattern_receives_from_existing_and_future_matching_topics_only() {
    let server = TestServer::start();
    let key = server.key("k");
    let me = key.anonymous_name();
    // An existing topic, kept alive by a pipe.
    let mut keeper = server.spawn(&key, &["pipe", "-c", "logs-old"]);
    server.wait_receivers(&format!("{me}/logs-old"), 1);

    let mut pat = server.spawn(&key, &["sub", "-k", "logs-*"]);
    let got = lines_of(&mut pat);
    server.wait_receivers(&format!("{me}/logs-old"), 2);

    // Blocking pubs: the pattern sub counts as a receiver on a new topic.
    server
        .run(&key, &["pub", "-c", "logs-old"], b"old\n")
        .expect_code(0);
    server
        .run(&key, &["pub", "-c", "-t", "10s", "logs-new"], b"new\n")
        .expect_code(0);
    // Not matching: another name, and a deeper path ('*' never crosses '/').
    for topic in ["metrics", "logs-x/deep", "xlogs-1"] {
        let out = server.run(&key, &["pub", "-c", "-t", "300ms", topic], b"no\n");
        out.expect_code(1);
        assert!(out.stderr.contains("timeout reached, exiting"), "{topic}");
    }
    // '?' matches one character.
    let mut one = server.spawn(&key, &["sub", "-k", "logs-?"]);
    let got_one = lines_of(&mut one);
    wait_pattern(&server, &key, "logs-?");
    server
        .run(&key, &["pub", "-c", "-t", "10s", "logs-z"], b"z\n")
        .expect_code(0);
    server
        .run(&key, &["pub", "-c", "-t", "10s", "logs-zz"], b"zz\n")
        .expect_code(0);
    wait_until("pattern sub got four lines", || {
        got.lock().unwrap().len() >= 4
    });
    wait_until("? sub got its line", || !got_one.lock().unwrap().is_empty());
    assert_eq!(*got.lock().unwrap(), ["old", "new", "z", "zz"]);
    assert_eq!(*got_one.lock().unwrap(), ["z"]);

    // Patterns do not end when senders leave; ls shows them under the pattern.
    assert!(pat.try_wait().unwrap().is_none());
    let ls = server.run(&key, &["ls"], b"").stdout_str();
    assert!(ls.contains("logs-*\n  pubs: 0\n  subs: 1 ("), "{ls}");
    assert!(ls.contains("logs-?\n  pubs: 0\n  subs: 1 ("), "{ls}");
    assert!(
        ls.contains("logs-old\n  pubs: 0\n  subs: 0\n  pipes: 1"),
        "{ls}"
    );
    for c in [&mut pat, &mut one, &mut keeper] {
        c.kill().unwrap();
        let _ = c.wait();
    }
}

#[test]
fn pub_and_pipe_with_a_pattern_are_usage_errors() {
    let server = TestServer::start();
    let key = server.key("k");
    for args in [
        &["pub", "logs-*"][..],
        &["pipe", "logs-?"][..],
        &["pub", "-p", "a*"][..],
    ] {
        let out = server.run(&key, args, b"");
        out.expect_code(2);
        assert!(
            out.stderr.contains("only sub takes a pattern"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("usage:"), "{}", out.stderr);
    }
    let out = server.run(&key, &["sub", "-a", "bob", "logs-*"], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("not a pattern"), "{}", out.stderr);
}

#[test]
fn public_pattern_receives_public_topics() {
    let server = TestServer::start();
    let a = server.key("a");
    let b = server.key("b");
    let mut pat = server.spawn(&a, &["sub", "-k", "-p", "news-*"]);
    let got = lines_of(&mut pat);
    // Wait until the pattern is registered: a blocking pub finds it.
    server
        .run(&b, &["pub", "-c", "-p", "-t", "10s", "news-1"], b"one\n")
        .expect_code(0);
    // b's private news-2 is not public: the public pattern must not see it.
    server
        .run(&b, &["pub", "-c", "-t", "300ms", "news-2"], b"private\n")
        .expect_code(1);
    server
        .run(&b, &["pub", "-c", "-p", "-t", "10s", "news-3"], b"three\n")
        .expect_code(0);
    wait_until("two public lines", || got.lock().unwrap().len() >= 2);
    assert_eq!(*got.lock().unwrap(), ["one", "three"]);
    pat.kill().unwrap();
    let _ = pat.wait();
}

#[test]
fn a_pattern_never_reaches_a_topic_its_user_could_not_sub_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let bob = Key::new(dir.path(), "bob");
    let server = TestServer::with(Config {
        users_toml: Some(users_toml(&[("alice", &alice), ("bob", &bob)])),
        ..Config::default()
    });
    // Bob watches alice's namespace.
    let mut pat = server.spawn(&bob, &["sub", "-k", "alice/logs-*"]);
    let got = lines_of(&mut pat);
    // An unlisted topic of alice's: bob's pattern is not a receiver there.
    let out = server.run(&alice, &["pub", "-c", "-t", "300ms", "logs-secret"], b"s\n");
    out.expect_code(1);
    // A topic alice shares with bob: the pattern attaches when the list is set.
    let mut shared = server.spawn(
        &alice,
        &["pub", "-c", "-t", "1s", "-a", "bob", "logs-shared"],
    );
    let mut stdin = shared.stdin.take().unwrap();
    server.wait_receivers("alice/logs-shared", 1);
    {
        use std::io::Write;
        stdin.write_all(b"shared\n").unwrap();
    }
    wait_until("bob got the shared line", || {
        !got.lock().unwrap().is_empty()
    });
    // Alice clears the list (quoted: ssh joins its arguments with spaces, so
    // a bare empty argument would vanish): bob's pattern, no longer allowed
    // on a topic it was receiving from, is removed at once (SPEC §6).
    server
        .run(&alice, &["pipe", "-c", "-a", "''", "logs-shared"], b"")
        .expect_code(0);
    server.wait_counts("alice/logs-shared", "pattern detached", |c| {
        c.receivers == 0
    });
    {
        use std::io::Write;
        let _ = stdin.write_all(b"after-clear\n");
    }
    drop(stdin);
    // With nobody left to receive, the pub waits (-t 1s) and gives up; the
    // line written after the clear reached no one.
    let out = collect(shared, "alice pub");
    out.expect_code(1);
    assert!(
        out.stderr.contains("timeout reached, exiting"),
        "{}",
        out.stderr
    );
    assert_eq!(*got.lock().unwrap(), ["shared"]);
    let status = wait_child(&mut pat, "bob's pattern sub");
    assert_eq!(status.code(), Some(1), "the pattern sub ends access denied");
    // Bob's own listing never shows alice's unlisted topic.
    let ls = server.run(&bob, &["ls"], b"").stdout_str();
    assert!(!ls.contains("logs-secret"), "{ls}");
}
