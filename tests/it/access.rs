//! Namespaces and access lists (SPEC §3, §4.4, §6), black-box with the real
//! `ssh` client against a server with a users file: alice, bob, carol, an
//! admin `root1`, and an anonymous key that is in no file (open mode).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::Read;
use std::process::{Child, ChildStdin};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// The server and everybody's keys.
struct World {
    server: TestServer,
    alice: Key,
    bob: Key,
    carol: Key,
    root: Key,
    anon: Key,
    _keys: tempfile::TempDir,
}

impl World {
    /// The users file must exist before the server starts, so the keys are
    /// made (with `ssh-keygen`, as `server.key` does) in a directory of
    /// their own first.
    fn new() -> World {
        let keys = tempfile::tempdir().expect("tempdir");
        let alice = Key::new(keys.path(), "alice");
        let bob = Key::new(keys.path(), "bob");
        let carol = Key::new(keys.path(), "carol");
        let root = Key::new(keys.path(), "root1");
        let anon = Key::new(keys.path(), "anon");
        let users = format!(
            "[users.alice]\nkeys = [{:?}]\n\n\
             [users.bob]\nkeys = [{:?}]\n\n\
             [users.carol]\nkeys = [{:?}]\nadmin = false\n\n\
             [users.root1]\nkeys = [{:?}]\nadmin = true\n",
            alice.public, bob.public, carol.public, root.public
        );
        let server = TestServer::with(Config {
            users_toml: Some(users),
            ..Config::default()
        });
        World {
            server,
            alice,
            bob,
            carol,
            root,
            anon,
            _keys: keys,
        }
    }
}

/// A background ssh client whose output is read as it arrives, so a test can
/// wait for data from a `sub -k` that never ends on its own.
struct Live {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Arc<Mutex<Vec<u8>>>,
    err: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
    what: String,
}

fn pump(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

fn live(server: &TestServer, key: &Key, args: &[&str]) -> Live {
    let mut child = server.spawn(key, args);
    let stdin = child.stdin.take();
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = vec![
        pump(child.stdout.take().expect("stdout"), Arc::clone(&out)),
        pump(child.stderr.take().expect("stderr"), Arc::clone(&err)),
    ];
    Live {
        child,
        stdin,
        out,
        err,
        readers,
        what: format!("ssh {args:?}"),
    }
}

impl Live {
    /// Waits until stdout holds at least `want.len()` bytes, then checks them.
    fn wait_stdout(&self, want: &[u8]) {
        wait_until(
            &format!("{} to print {} bytes", self.what, want.len()),
            || self.out.lock().unwrap().len() >= want.len(),
        );
        let got = self.out.lock().unwrap().clone();
        assert_eq!(
            sha256(&got),
            sha256(want),
            "{} stdout: {:?}",
            self.what,
            String::from_utf8_lossy(&got)
        );
    }

    fn output(mut self, status: std::process::ExitStatus) -> Out {
        drop(self.stdin.take());
        for r in self.readers.drain(..) {
            r.join().expect("reader");
        }
        Out {
            status,
            stdout: self.out.lock().unwrap().clone(),
            stderr: String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned(),
        }
    }

    /// Waits for the client to exit on its own.
    fn finish(mut self) -> Out {
        drop(self.stdin.take());
        let what = self.what.clone();
        let status = wait_child(&mut self.child, &what);
        self.output(status)
    }

    /// Kills the client (a `sub -k`), returning what it printed.
    fn kill(mut self) -> Out {
        let _ = self.child.kill();
        let what = self.what.clone();
        let status = wait_child(&mut self.child, &what);
        self.output(status)
    }
}

fn receivers(server: &TestServer, full: &str) -> usize {
    server.counts(full).map_or(0, |c| c.receivers)
}

/// Waits until no client is left on `full`: a client that has exited may
/// still be leaving on the server, and a stale sender would end a fresh
/// `sub` (no -k) early.
fn settle(w: &World, full: &str) {
    w.server.wait_counts(full, &format!("{full} empty"), |c| {
        c.senders == 0 && c.receivers == 0
    });
}

/// `sub_key` runs `sub SUB_ARGS` (no -k) on a topic nobody else is on and, once it is on `full`,
/// `pub_key` runs `pub PUB_ARGS` with `data`: both exit 0, the sub prints
/// exactly `data`. Returns the pub's output for further checks.
fn delivers(
    w: &World,
    sub_key: &Key,
    sub_args: &[&str],
    full: &str,
    pub_key: &Key,
    pub_args: &[&str],
    data: &[u8],
) -> Out {
    settle(w, full);
    let sub = live(&w.server, sub_key, sub_args);
    w.server.wait_receivers(full, 1);
    let p = w.server.run(pub_key, pub_args, data);
    p.expect_code(0);
    assert!(p.stderr.contains("msg sent!"), "pub stderr: {}", p.stderr);
    let s = sub.finish();
    s.expect_code(0);
    assert_eq!(
        sha256(&s.stdout),
        sha256(data),
        "sub {sub_args:?} got {:?}",
        s.stdout_str()
    );
    assert_eq!(s.stderr, "", "sub {sub_args:?} stderr");
    p
}

/// Exit 1, exactly `access denied` on stderr, nothing on stdout.
fn assert_denied(out: &Out, what: &str) {
    assert_eq!(
        out.code(),
        1,
        "{what}: exit status; stderr: {}; stdout: {}",
        out.stderr,
        out.stdout_str()
    );
    assert_eq!(out.stderr, "access denied\n", "{what}: stderr");
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout {:?}",
        out.stdout_str()
    );
}

/// Exit 2, first stderr line starts with `prefix`, nothing on stdout.
fn assert_usage(out: &Out, prefix: &str, what: &str) {
    assert_eq!(
        out.code(),
        2,
        "{what}: exit status; stderr: {}; stdout: {}",
        out.stderr,
        out.stdout_str()
    );
    let first = out.stderr.lines().next().unwrap_or("");
    assert!(
        first.starts_with(prefix),
        "{what}: first stderr line {first:?}, want prefix {prefix:?}; stderr: {}",
        out.stderr
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout {:?}",
        out.stdout_str()
    );
}

/// Sets (or with `""` clears) a topic's access list with a pipe that has
/// nothing to send: it never blocks and exits 0 at once.
fn set_list(w: &World, key: &Key, list: &str, topic: &str, extra: &[&str]) {
    let quoted = format!("'{list}'");
    let mut args = vec!["pipe", "-c", "-a", quoted.as_str()];
    args.extend_from_slice(extra);
    args.push(topic);
    let out = w.server.run(key, &args, b"");
    out.expect_code(0);
    assert_eq!(out.stderr, "", "{args:?} stderr");
    assert!(out.stdout.is_empty(), "{args:?} stdout");
}

/// `ls` stdout for a user (exit 0, no stderr).
fn ls(w: &World, key: &Key) -> String {
    let out = w.server.run(key, &["ls"], b"");
    out.expect_code(0);
    assert_eq!(out.stderr, "", "ls stderr");
    out.stdout_str()
}

/// Topic name lines of an `ls` listing (the lines not indented).
fn ls_names(listing: &str) -> Vec<String> {
    if listing == "no topics\n" {
        return Vec::new();
    }
    listing
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(str::to_string)
        .collect()
}

/// The indented lines under one topic of an `ls` listing.
fn ls_block(listing: &str, name: &str) -> Vec<String> {
    let mut lines = listing.lines().skip_while(|l| *l != name);
    assert!(
        lines.next().is_some(),
        "{name:?} not in listing:\n{listing}"
    );
    lines
        .take_while(|l| l.starts_with(' '))
        .map(str::to_string)
        .collect()
}

fn hint(w: &World, rest: &str) -> String {
    format!("  ssh -p {} testhost {rest}", w.server.addr.port())
}

#[test]
fn whoami_for_each_user() {
    let w = World::new();
    for (key, name, admin) in [
        (&w.alice, "alice".to_string(), "no"),
        (&w.bob, "bob".to_string(), "no"),
        (&w.carol, "carol".to_string(), "no"),
        (&w.root, "root1".to_string(), "yes"),
        (&w.anon, w.anon.anonymous_name(), "no"),
    ] {
        let out = w.server.run(key, &["whoami"], b"");
        out.expect_code(0);
        assert_eq!(out.stderr, "", "whoami stderr for {name}");
        assert_eq!(
            out.stdout_str(),
            format!(
                "user: {name}\nfingerprint: {}\nadmin: {admin}\n",
                key.fingerprint
            )
        );
    }
}

#[test]
fn own_topic_by_short_and_full_name_is_one_topic() {
    let w = World::new();
    let a = &w.alice;
    delivers(
        &w,
        a,
        &["sub", "logs"],
        "alice/logs",
        a,
        &["pub", "alice/logs"],
        b"full to short\n",
    );
    let p = delivers(
        &w,
        a,
        &["sub", "alice/logs"],
        "alice/logs",
        a,
        &["pub", "logs"],
        b"short to full\n",
    );
    // Own, unshared topic: the hint shows the local name.
    assert!(
        p.stderr.lines().any(|l| l == hint(&w, "sub logs")),
        "pub stderr: {}",
        p.stderr
    );
    // Nothing went to a topic literally named alice/alice/logs.
    assert!(w.server.counts("alice/alice/logs").is_none());
}

#[test]
fn other_namespace_is_denied_without_a_list() {
    let w = World::new();
    // No topic yet: still alice's namespace, still denied.
    for cmd in ["sub", "pub", "pipe"] {
        let out = w.server.run(&w.bob, &[cmd, "alice/logs"], b"bob data\n");
        assert_denied(&out, &format!("bob {cmd} alice/logs (no topic)"));
    }
    // With alice on it.
    let sub = live(&w.server, &w.alice, &["sub", "logs"]);
    w.server.wait_receivers("alice/logs", 1);
    for cmd in ["sub", "pub", "pipe"] {
        let out = w.server.run(&w.bob, &[cmd, "alice/logs"], b"bob data\n");
        assert_denied(&out, &format!("bob {cmd} alice/logs (alice subbed)"));
        let out = w.server.run(&w.anon, &[cmd, "alice/logs"], b"anon data\n");
        assert_denied(&out, &format!("anon {cmd} alice/logs"));
    }
    let c = w.server.counts("alice/logs").expect("alice/logs live");
    assert_eq!(
        (c.senders, c.receivers),
        (0, 1),
        "only alice's sub is on it"
    );
    let p = w.server.run(&w.alice, &["pub", "logs"], b"alice only\n");
    p.expect_code(0);
    let s = sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"alice only\n");
    assert_eq!(s.stderr, "");
    assert!(w.server.counts("bob/alice/logs").is_none());
}

#[test]
fn a_name_not_starting_with_a_user_stays_in_own_namespace() {
    let w = World::new();
    // alice and bob both type svc/logs: two different topics.
    let alice_sub = live(&w.server, &w.alice, &["sub", "svc/logs"]);
    w.server.wait_receivers("alice/svc/logs", 1);
    delivers(
        &w,
        &w.bob,
        &["sub", "svc/logs"],
        "bob/svc/logs",
        &w.bob,
        &["pub", "svc/logs"],
        b"bob's svc\n",
    );
    // bob can also type his own full name.
    delivers(
        &w,
        &w.bob,
        &["sub", "bob/svc/logs"],
        "bob/svc/logs",
        &w.bob,
        &["pub", "svc/logs"],
        b"bob's svc again\n",
    );
    // A first segment that is no user is just a directory in bob's namespace.
    delivers(
        &w,
        &w.bob,
        &["sub", "nobody/logs"],
        "bob/nobody/logs",
        &w.bob,
        &["pub", "nobody/logs"],
        b"nobody\n",
    );
    let c = w.server.counts("alice/svc/logs").expect("alice's topic");
    assert_eq!((c.senders, c.sender_joins), (0, 0), "bob never reached it");
    w.server
        .run(&w.alice, &["pub", "svc/logs"], b"alice's svc\n")
        .expect_code(0);
    let s = alice_sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"alice's svc\n");
}

#[test]
fn owner_list_lets_listed_user_in_and_keeps_others_out() {
    let w = World::new();
    // alice subscribes and shares in one go.
    let alice_sub = live(&w.server, &w.alice, &["sub", "-a", "bob", "logs"]);
    w.server.wait_receivers("alice/logs", 1);
    for cmd in ["sub", "pub", "pipe"] {
        let out = w.server.run(&w.carol, &[cmd, "alice/logs"], b"carol\n");
        assert_denied(&out, &format!("carol {cmd} alice/logs"));
    }
    let p = w
        .server
        .run(&w.bob, &["pub", "alice/logs"], b"hi from bob\n");
    p.expect_code(0);
    assert!(
        p.stderr.lines().any(|l| l == hint(&w, "sub alice/logs")),
        "bob's hint names alice/logs in full: {}",
        p.stderr
    );
    assert!(p.stderr.contains("msg sent!"), "{}", p.stderr);
    let s = alice_sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"hi from bob\n");
    assert_eq!(s.stderr, "");

    // And the other way: bob subscribes, alice publishes (short name).
    delivers(
        &w,
        &w.bob,
        &["sub", "alice/logs"],
        "alice/logs",
        &w.alice,
        &["pub", "logs"],
        b"hi from alice\n",
    );
    // bob's pipe works too.
    let bob_pipe = w
        .server
        .run(&w.bob, &["pipe", "alice/logs"], b"nobody hears\n");
    bob_pipe.expect_code(0);
    // The owner's own shared pub shows the full name in its hint.
    settle(&w, "alice/logs");
    let bob_sub = live(&w.server, &w.bob, &["sub", "alice/logs"]);
    w.server.wait_receivers("alice/logs", 1);
    let p = w
        .server
        .run(&w.alice, &["pub", "-a", "bob", "logs"], b"shared\n");
    p.expect_code(0);
    assert!(
        p.stderr.lines().any(|l| l == hint(&w, "sub alice/logs")),
        "alice's hint for a shared topic: {}",
        p.stderr
    );
    let s = bob_sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"shared\n");
}

#[test]
fn list_entry_by_fingerprint_lets_that_key_in() {
    let w = World::new();
    let list = w.carol.fingerprint.clone();
    let alice_sub = live(&w.server, &w.alice, &["sub", "-a", &list, "logs"]);
    w.server.wait_receivers("alice/logs", 1);
    assert_denied(
        &w.server.run(&w.bob, &["pub", "alice/logs"], b"bob\n"),
        "bob pub (carol's fingerprint listed)",
    );
    w.server
        .run(&w.carol, &["pub", "alice/logs"], b"carol by key\n")
        .expect_code(0);
    let s = alice_sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"carol by key\n");
    // ls shows the fingerprint entry as given.
    let listing = ls(&w, &w.alice);
    assert_eq!(
        ls_block(&listing, "logs").first().map(String::as_str),
        Some(format!("  access: {list}").as_str()),
        "{listing}"
    );
}

#[test]
fn anonymous_user_listed_by_fingerprint_and_by_name() {
    let w = World::new();
    let anon_name = w.anon.anonymous_name();
    // By fingerprint.
    set_list(&w, &w.alice, &w.anon.fingerprint, "logs", &[]);
    delivers(
        &w,
        &w.alice,
        &["sub", "logs"],
        "alice/logs",
        &w.anon,
        &["pub", "alice/logs"],
        b"anon by fingerprint\n",
    );
    assert_denied(
        &w.server.run(&w.bob, &["sub", "alice/logs"], b""),
        "bob sub",
    );
    // By fp- name.
    set_list(&w, &w.alice, &anon_name, "logs", &[]);
    delivers(
        &w,
        &w.anon,
        &["sub", "alice/logs"],
        "alice/logs",
        &w.alice,
        &["pub", "logs"],
        b"anon by name\n",
    );
    assert_denied(
        &w.server.run(&w.bob, &["pub", "alice/logs"], b"x\n"),
        "bob pub",
    );
    let listing = ls(&w, &w.anon);
    assert_eq!(ls_names(&listing), vec!["alice/logs".to_string()]);
    assert_eq!(
        ls_block(&listing, "alice/logs")[0],
        format!("  access: {anon_name}")
    );
}

#[test]
fn anonymous_namespace_is_addressed_by_its_fp_name() {
    let w = World::new();
    let anon_name = w.anon.anonymous_name();
    let full = format!("{anon_name}/t");
    // Unlisted: alice typing fp-…/t is in anon's namespace and denied.
    let anon_sub = live(&w.server, &w.anon, &["sub", "t"]);
    w.server.wait_receivers(&full, 1);
    for cmd in ["sub", "pub", "pipe"] {
        assert_denied(
            &w.server.run(&w.alice, &[cmd, &full], b"alice\n"),
            &format!("alice {cmd} {full}"),
        );
    }
    assert!(w.server.counts(&format!("alice/{full}")).is_none());
    w.server
        .run(&w.anon, &["pub", &full], b"anon full name\n")
        .expect_code(0);
    let s = anon_sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"anon full name\n");

    // The anonymous owner shares it with alice: alice's fp-…/t reaches it.
    set_list(&w, &w.anon, "alice", "t", &[]);
    delivers(
        &w,
        &w.anon,
        &["sub", "t"],
        &full,
        &w.alice,
        &["pub", &full],
        b"alice to anon\n",
    );
    assert_denied(&w.server.run(&w.bob, &["sub", &full], b""), "bob sub");
    assert!(w.server.counts(&format!("alice/{full}")).is_none());
}

#[test]
fn list_outlives_the_session_that_set_it() {
    let w = World::new();
    let alice_sub = live(&w.server, &w.alice, &["sub", "-k", "-a", "bob", "logs"]);
    w.server.wait_receivers("alice/logs", 1);
    let k = alice_sub.kill();
    assert!(k.stdout.is_empty());
    w.server.wait_counts("alice/logs", "alice's sub gone", |c| {
        c.receivers == 0 && c.senders == 0
    });
    wait_until("alice/logs no longer live", || {
        w.server.counts("alice/logs").is_none()
    });

    // Nobody is on it, yet the owner and bob still see it, with the list.
    let empty = "  access: bob\n  pubs: 0\n  subs: 0\n  pipes: 0\n  waiting pubs: 0\n";
    assert_eq!(ls(&w, &w.alice), format!("logs\n{empty}"));
    assert_eq!(ls(&w, &w.bob), format!("alice/logs\n{empty}"));
    assert_eq!(ls(&w, &w.carol), "no topics\n");

    // bob can still use it, carol still can't.
    delivers(
        &w,
        &w.bob,
        &["sub", "alice/logs"],
        "alice/logs",
        &w.alice,
        &["pub", "logs"],
        b"still shared\n",
    );
    delivers(
        &w,
        &w.alice,
        &["sub", "logs"],
        "alice/logs",
        &w.bob,
        &["pub", "alice/logs"],
        b"bob still in\n",
    );
    assert_denied(
        &w.server.run(&w.carol, &["pub", "alice/logs"], b"c\n"),
        "carol pub",
    );
}

#[test]
fn shared_topic_hint_shows_full_name_after_list_was_set_earlier() {
    // SPEC §4.2: "For a topic shared by access list, the hint shows the name
    // others must type (alice/logs)" — also for a pub without -a of its own.
    let w = World::new();
    set_list(&w, &w.alice, "bob", "logs", &[]);
    let p = delivers(
        &w,
        &w.bob,
        &["sub", "alice/logs"],
        "alice/logs",
        &w.alice,
        &["pub", "logs"],
        b"x\n",
    );
    assert!(
        p.stderr.lines().any(|l| l == hint(&w, "sub alice/logs")),
        "alice's hint for her shared topic: {}",
        p.stderr
    );
}

#[test]
fn owner_replaces_and_clears_the_list() {
    let w = World::new();
    set_list(&w, &w.alice, "bob", "logs", &[]);
    assert_denied(
        &w.server.run(&w.carol, &["sub", "alice/logs"], b""),
        "carol sub (bob listed)",
    );
    // Replace: carol in, bob out.
    set_list(&w, &w.alice, "carol", "logs", &[]);
    assert_denied(
        &w.server.run(&w.bob, &["sub", "alice/logs"], b""),
        "bob sub (carol listed)",
    );
    delivers(
        &w,
        &w.alice,
        &["sub", "logs"],
        "alice/logs",
        &w.carol,
        &["pub", "alice/logs"],
        b"carol now\n",
    );
    assert_eq!(
        ls_block(&ls(&w, &w.alice), "logs")[0],
        "  access: carol".to_string()
    );
    // Two entries at once.
    set_list(&w, &w.alice, "bob,carol", "logs", &[]);
    delivers(
        &w,
        &w.alice,
        &["sub", "logs"],
        "alice/logs",
        &w.bob,
        &["pub", "alice/logs"],
        b"bob again\n",
    );
    assert_eq!(
        ls_block(&ls(&w, &w.alice), "logs")[0],
        "  access: bob,carol".to_string()
    );
    // Clear.
    set_list(&w, &w.alice, "", "logs", &[]);
    wait_until("alice/logs no longer live", || {
        w.server.counts("alice/logs").is_none()
    });
    for key in [&w.bob, &w.carol] {
        for cmd in ["sub", "pub", "pipe"] {
            assert_denied(
                &w.server.run(key, &[cmd, "alice/logs"], b"x\n"),
                &format!("{cmd} after the list was cleared"),
            );
        }
    }
    assert_eq!(ls(&w, &w.alice), "no topics\n");
    assert_eq!(ls(&w, &w.bob), "no topics\n");
    // alice herself is unaffected.
    delivers(
        &w,
        &w.alice,
        &["sub", "logs"],
        "alice/logs",
        &w.alice,
        &["pub", "logs"],
        b"mine\n",
    );
}

#[test]
fn non_owner_cannot_set_the_list() {
    let w = World::new();
    // No list yet.
    for cmd in ["sub", "pub", "pipe"] {
        assert_denied(
            &w.server
                .run(&w.bob, &[cmd, "-a", "bob", "alice/logs"], b"x\n"),
            &format!("bob {cmd} -a bob alice/logs (no list)"),
        );
    }
    set_list(&w, &w.alice, "bob", "logs", &[]);
    // bob is on the list, but it is not his to change.
    for args in [
        &["sub", "-a", "carol", "alice/logs"][..],
        &["pub", "-a", "carol", "alice/logs"][..],
        &["pipe", "-a", "carol", "alice/logs"][..],
        &["pipe", "-a", "bob", "alice/logs"][..],
        &["pipe", "-a", "''", "alice/logs"][..],
    ] {
        let out = w.server.run(&w.bob, args, b"x\n");
        assert_denied(&out, &format!("bob {args:?}"));
    }
    assert_denied(
        &w.server
            .run(&w.carol, &["sub", "-a", "carol", "alice/logs"], b""),
        "carol sets a list on alice/logs",
    );
    // The list is unchanged.
    assert_denied(
        &w.server.run(&w.carol, &["pub", "alice/logs"], b"c\n"),
        "carol pub",
    );
    assert_eq!(
        ls_block(&ls(&w, &w.alice), "logs")[0],
        "  access: bob".to_string()
    );
    delivers(
        &w,
        &w.alice,
        &["sub", "logs"],
        "alice/logs",
        &w.bob,
        &["pub", "alice/logs"],
        b"bob still listed\n",
    );
}

#[test]
fn unlisted_user_cannot_read_by_any_spelling() {
    let w = World::new();
    set_list(&w, &w.alice, "bob", "logs", &[]);
    settle(&w, "alice/logs");
    let alice_sub = live(&w.server, &w.alice, &["sub", "-k", "logs"]);
    w.server.wait_receivers("alice/logs", 1);

    assert_denied(
        &w.server.run(&w.carol, &["sub", "alice/logs"], b""),
        "carol sub alice/logs",
    );
    let out = w.server.run(&w.carol, &["sub", "/alice/logs"], b"");
    assert_usage(
        &out,
        "invalid topic name: \"/alice/logs\"",
        "carol sub /alice/logs",
    );
    for name in [
        "public/../alice/logs",
        "./alice/logs",
        "../alice/logs",
        "alice/./logs",
        "alice//logs",
        "//alice/logs",
    ] {
        let out = w.server.run(&w.carol, &["sub", name], b"");
        assert_usage(
            &out,
            &format!("invalid topic name: {name:?}"),
            &format!("carol sub {name}"),
        );
        let out = w.server.run(&w.carol, &["sub", "-p", name], b"");
        assert_usage(
            &out,
            "invalid topic name: ",
            &format!("carol sub -p {name}"),
        );
    }
    // An unlisted anonymous key fares no better.
    assert_denied(
        &w.server.run(&w.anon, &["sub", "alice/logs"], b""),
        "anon sub alice/logs",
    );
    // `-p alice/logs` is a public topic, not alice's: carol is on it alone.
    let carol_public = live(&w.server, &w.carol, &["sub", "-k", "-p", "alice/logs"]);
    w.server.wait_receivers("public/alice/logs", 1);
    assert_eq!(receivers(&w.server, "alice/logs"), 1, "only alice's sub");

    w.server
        .run(&w.alice, &["pub", "logs"], b"secret\n")
        .expect_code(0);
    alice_sub.wait_stdout(b"secret\n");
    let c = carol_public.kill();
    assert!(c.stdout.is_empty(), "carol read {:?}", c.stdout_str());
    alice_sub.kill();
}

#[test]
fn admin_reaches_any_topic_and_sees_everything() {
    let w = World::new();
    set_list(&w, &w.alice, "bob", "logs", &[]);
    settle(&w, "alice/logs");
    let root_full = live(&w.server, &w.root, &["sub", "/alice/logs"]);
    let root_typed = live(&w.server, &w.root, &["sub", "alice/logs"]);
    w.server.wait_receivers("alice/logs", 2);
    w.server
        .run(&w.alice, &["pub", "logs"], b"admin reads\n")
        .expect_code(0);
    for s in [root_full.finish(), root_typed.finish()] {
        s.expect_code(0);
        assert_eq!(s.stdout, b"admin reads\n");
        assert_eq!(s.stderr, "");
    }
    // An unlisted private topic of bob's: the admin publishes into it.
    delivers(
        &w,
        &w.bob,
        &["sub", "secret"],
        "bob/secret",
        &w.root,
        &["pub", "/bob/secret"],
        b"from root\n",
    );

    // ls: everything, including topics the admin has no client on.
    settle(&w, "bob/secret");
    let bob_sub = live(&w.server, &w.bob, &["sub", "-k", "secret"]);
    let carol_pub = live(&w.server, &w.carol, &["sub", "-k", "-p", "x"]);
    let anon_sub = live(&w.server, &w.anon, &["sub", "-k", "t"]);
    let anon_full = format!("{}/t", w.anon.anonymous_name());
    w.server.wait_receivers("bob/secret", 1);
    w.server.wait_receivers("public/x", 1);
    w.server.wait_receivers(&anon_full, 1);
    let listing = ls(&w, &w.root);
    assert_eq!(
        ls_names(&listing),
        vec![
            "alice/logs".to_string(),
            "bob/secret".to_string(),
            anon_full.clone(),
            "public/x".to_string(),
        ],
        "admin ls:\n{listing}"
    );
    assert_eq!(ls_block(&listing, "alice/logs")[0], "  access: bob");
    assert!(
        ls_block(&listing, "bob/secret")
            .iter()
            .any(|l| l.starts_with("  subs: 1 (bob@127.0.0.1:")),
        "{listing}"
    );
    // Non-admins don't see each other's unlisted topics.
    assert_eq!(ls_names(&ls(&w, &w.carol)), vec!["public/x".to_string()]);
    for l in [bob_sub, carol_pub, anon_sub] {
        l.kill();
    }
}

#[test]
fn public_topics_are_open_and_public_prefix_means_public() {
    let w = World::new();
    let alice_sub = live(&w.server, &w.alice, &["sub", "-p", "x"]);
    let carol_sub = live(&w.server, &w.carol, &["sub", "public/x"]);
    let anon_sub = live(&w.server, &w.anon, &["sub", "-p", "public/x"]);
    w.server.wait_receivers("public/x", 3);
    let p = w.server.run(&w.bob, &["pub", "-p", "x"], b"to everyone\n");
    p.expect_code(0);
    assert!(
        p.stderr.lines().any(|l| l == hint(&w, "sub -p x")),
        "pub -p hint: {}",
        p.stderr
    );
    for s in [alice_sub.finish(), carol_sub.finish(), anon_sub.finish()] {
        s.expect_code(0);
        assert_eq!(s.stdout, b"to everyone\n");
        assert_eq!(s.stderr, "");
    }
    // `public/x` typed without -p by a sender is the same topic.
    delivers(
        &w,
        &w.bob,
        &["sub", "-p", "x"],
        "public/x",
        &w.anon,
        &["pub", "public/x"],
        b"typed in full\n",
    );
    assert!(w.server.counts("bob/public/x").is_none());
    assert!(w.server.counts("alice/public/x").is_none());
}

#[test]
fn public_list_holds_while_occupied_and_is_dropped_when_empty() {
    let w = World::new();
    let alice_sub = live(&w.server, &w.alice, &["sub", "-k", "-p", "-a", "bob", "x"]);
    w.server.wait_receivers("public/x", 1);
    assert_denied(
        &w.server.run(&w.carol, &["pub", "-p", "x"], b"carol\n"),
        "carol pub -p x",
    );
    assert_denied(
        &w.server.run(&w.carol, &["sub", "public/x"], b""),
        "carol sub public/x",
    );
    assert_denied(
        &w.server.run(&w.anon, &["pipe", "-p", "x"], b"anon\n"),
        "anon pipe -p x",
    );
    // Neither an outsider nor a listed non-owner may change the list.
    assert_denied(
        &w.server
            .run(&w.carol, &["sub", "-p", "-a", "carol", "x"], b""),
        "carol sets the public list",
    );
    assert_denied(
        &w.server
            .run(&w.bob, &["pub", "-p", "-a", "carol", "x"], b"b\n"),
        "bob sets the public list",
    );
    let p = w.server.run(&w.bob, &["pub", "-p", "x"], b"from bob\n");
    p.expect_code(0);
    assert!(p.stderr.contains("msg sent!"), "{}", p.stderr);
    alice_sub.wait_stdout(b"from bob\n");
    // The list shows in ls for those on the topic.
    let listing = ls(&w, &w.alice);
    assert_eq!(
        ls_block(&listing, "public/x")[0],
        "  access: bob",
        "{listing}"
    );

    let k = alice_sub.kill();
    assert_eq!(k.stdout, b"from bob\n");
    wait_until("public/x empty and gone", || {
        w.server.counts("public/x").is_none()
    });

    // The list went with the last client: carol may use (and claim) it now.
    delivers(
        &w,
        &w.carol,
        &["sub", "-p", "x"],
        "public/x",
        &w.anon,
        &["pub", "-p", "x"],
        b"open again\n",
    );
    wait_until("public/x gone again", || {
        w.server.counts("public/x").is_none()
    });
    let carol_sub = live(&w.server, &w.carol, &["sub", "-p", "-a", "carol", "x"]);
    w.server.wait_receivers("public/x", 1);
    assert_denied(
        &w.server.run(&w.alice, &["pub", "-p", "x"], b"a\n"),
        "alice pub -p x (carol's list)",
    );
    w.server
        .run(&w.carol, &["pub", "-p", "x"], b"carol's\n")
        .expect_code(0);
    let s = carol_sub.finish();
    s.expect_code(0);
    assert_eq!(s.stdout, b"carol's\n");
}

#[test]
fn ls_shows_only_what_the_user_may_see() {
    let w = World::new();
    assert_eq!(ls(&w, &w.alice), "no topics\n");
    assert_eq!(ls(&w, &w.bob), "no topics\n");

    let alice_logs = live(&w.server, &w.alice, &["sub", "-k", "logs"]);
    let alice_other = live(&w.server, &w.alice, &["sub", "-k", "other"]);
    let alice_pub = live(&w.server, &w.alice, &["sub", "-k", "-p", "pt"]);
    w.server.wait_receivers("alice/logs", 1);
    w.server.wait_receivers("alice/other", 1);
    w.server.wait_receivers("public/pt", 1);

    let listing = ls(&w, &w.alice);
    assert_eq!(
        ls_names(&listing),
        vec![
            "logs".to_string(),
            "other".to_string(),
            "public/pt".to_string()
        ],
        "{listing}"
    );
    let block = ls_block(&listing, "logs");
    assert_eq!(block.len(), 4, "no access line when unlisted: {listing}");
    assert!(
        block[1].starts_with("  subs: 1 (alice@127.0.0.1:"),
        "{listing}"
    );
    // bob: alice's unlisted topics and a public topic he's not on are hidden.
    assert_eq!(ls(&w, &w.bob), "no topics\n");

    // Shared with bob: shown to him by its full name, with the list.
    set_list(&w, &w.alice, "bob", "logs", &[]);
    w.server
        .wait_counts("alice/logs", "the list-setting pipe gone", |c| {
            c.senders == 0 && c.receivers == 1
        });
    let listing = ls(&w, &w.bob);
    assert_eq!(
        ls_names(&listing),
        vec!["alice/logs".to_string()],
        "{listing}"
    );
    let block = ls_block(&listing, "alice/logs");
    assert_eq!(block[0], "  access: bob");
    assert_eq!(block[1], "  pubs: 0");
    // Others see who, not where from (SPEC §6).
    assert!(block[2].starts_with("  subs: 1 (alice#"), "{listing}");
    assert_eq!(block[3], "  pipes: 0");
    assert_eq!(block[4], "  waiting pubs: 0");
    assert_eq!(ls(&w, &w.carol), "no topics\n");

    // A public topic shows once bob has a client there.
    let bob_pub = live(&w.server, &w.bob, &["sub", "-k", "-p", "pt"]);
    w.server.wait_receivers("public/pt", 2);
    let listing = ls(&w, &w.bob);
    assert_eq!(
        ls_names(&listing),
        vec!["alice/logs".to_string(), "public/pt".to_string()],
        "{listing}"
    );
    let subs = &ls_block(&listing, "public/pt")[1];
    assert!(subs.starts_with("  subs: 2 ("), "{listing}");
    assert!(
        subs.contains("alice#") && subs.contains("bob@127.0.0.1:"),
        "{listing}"
    );
    assert!(!subs.contains("alice@"), "{listing}");
    assert_eq!(ls(&w, &w.carol), "no topics\n");
    let anon_ls = ls(&w, &w.anon);
    assert_eq!(anon_ls, "no topics\n");

    for l in [alice_logs, alice_other, alice_pub, bob_pub] {
        l.kill();
    }
}

#[test]
fn invalid_access_entries_are_usage_errors() {
    let w = World::new();
    for cmd in ["sub", "pub", "pipe"] {
        let out = w
            .server
            .run(&w.alice, &[cmd, "-a", "'Bad Name'", "logs"], b"x\n");
        assert_usage(
            &out,
            "invalid access list entry: \"Bad Name\"",
            &format!("{cmd} -a 'Bad Name'"),
        );
    }
    for bad in ["Bob", "bob,Carol", "SHA256:short", "bob/x"] {
        let out = w.server.run(&w.alice, &["sub", "-a", bad, "logs"], b"");
        assert_usage(
            &out,
            "invalid access list entry: ",
            &format!("sub -a {bad}"),
        );
    }
    // Nothing was created or shared.
    assert!(w.server.counts("alice/logs").is_none());
    assert_eq!(ls(&w, &w.alice), "no topics\n");
    assert_denied(
        &w.server.run(&w.bob, &["sub", "alice/logs"], b""),
        "bob after failed -a",
    );
}
