//! Access lists and HTTP tokens across nodes (SPEC §6, §11.1, §14): two
//! sshpipe nodes with the same users file on a real 3-server NATS cluster,
//! driven with the real `ssh` and a real HTTP client. A list or a token
//! made on one node holds on the other, a change re-decides clients there,
//! and both live in NATS: nodes restarted on empty data directories still
//! have them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};

use super::cluster::{receivers, urls_from};
use crate::common;
use common::nats::NatsCluster;
use common::{Key, Out, TestServer, wait_child, wait_until};
use sshpipe::broker::{BackendKind, NatsOptions};

/// alice, bob and carol in a users file both nodes read.
struct Users {
    file: PathBuf,
    alice: Key,
    bob: Key,
    carol: Key,
    dir: tempfile::TempDir,
}

fn users() -> Users {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let bob = Key::new(dir.path(), "bob");
    let carol = Key::new(dir.path(), "carol");
    let file = dir.path().join("users.toml");
    let text = format!(
        "[users.alice]\nkeys = [{:?}]\n\n[users.bob]\nkeys = [{:?}]\n\n[users.carol]\nkeys = [{:?}]\n",
        alice.public, bob.public, carol.public
    );
    std::fs::write(&file, text).unwrap();
    Users {
        file,
        alice,
        bob,
        carol,
        dir,
    }
}

/// A node on an empty data directory, connected first to NATS server
/// `i`, with HTTP on.
fn node(nats: &NatsCluster, i: usize, users: &Path) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options_for(&dir.path().join("data"));
    opts.users = Some(users.to_path_buf());
    opts.http_listen = Some("127.0.0.1:0".parse().unwrap());
    opts.broker.backend = BackendKind::Nats(NatsOptions {
        urls: urls_from(nats, i, nats.len()),
        creds: None,
        tls_ca: None,
        tls_cert: None,
        replicas: 3,
    });
    TestServer::from_options(opts, dir)
}

/// Exit 1, exactly `access denied` on stderr, nothing on stdout: what one
/// node answers (tests/it/access.rs).
fn assert_denied(out: &Out, what: &str) {
    assert_eq!(out.code(), 1, "{what}: exit status; stderr: {}", out.stderr);
    assert_eq!(out.stderr, "access denied\n", "{what}: stderr");
    assert!(
        out.stdout.is_empty(),
        "{what}: stdout {:?}",
        out.stdout_str()
    );
}

/// `access TOPIC [LIST]` as `key` on `on`: its one line.
fn access(on: &TestServer, key: &Key, args: &[&str]) -> String {
    let mut all = vec!["access"];
    all.extend_from_slice(args);
    let out = on.run(key, &all, b"");
    out.expect_code(0);
    out.stdout_str()
}

/// Waits until `on` shows `want` as alice's list of `alice/logs`.
fn wait_list(on: &TestServer, alice: &Key, want: &str) {
    let mut last = String::new();
    wait_until(
        &format!("{want:?} on the other node (last: {last:?})"),
        || {
            last = access(on, alice, &["alice/logs"]);
            last == format!("{want}\n")
        },
    );
}

/// A client left running, its stderr collected as it comes.
struct Running {
    child: Child,
    err: Arc<Mutex<Vec<u8>>>,
    reader: std::thread::JoinHandle<()>,
}

fn running(on: &TestServer, key: &Key, args: &[&str]) -> Running {
    let mut child = on
        .ssh(key, args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err = Arc::new(Mutex::new(Vec::new()));
    let into = Arc::clone(&err);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stderr.read(&mut buf) {
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Running { child, err, reader }
}

impl Running {
    /// Waits for it to end by itself: exit status and stderr.
    fn finish(mut self, what: &str) -> (Option<i32>, String) {
        let status = wait_child(&mut self.child, what);
        self.reader.join().unwrap();
        let err = String::from_utf8_lossy(&self.err.lock().unwrap()).into_owned();
        (status.code(), err)
    }
}

/// The user `key` logs in as, by `whoami`.
fn user_of(on: &TestServer, key: &Key) -> String {
    let who = on.run(key, &["whoami"], b"").stdout_str();
    who.lines()
        .find_map(|l| l.strip_prefix("user: "))
        .unwrap_or_else(|| panic!("no user in {who:?}"))
        .to_string()
}

#[test]
fn a_list_set_on_one_node_is_enforced_on_the_other() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let u = users();
    let (a, b) = (node(&nats, 0, &u.file), node(&nats, 1, &u.file));
    assert_eq!(access(&a, &u.alice, &["logs", "bob"]), "access: bob\n");
    wait_list(&b, &u.alice, "access: bob");
    // carol, unlisted, is refused on B as one node refuses her.
    for cmd in ["sub", "pub", "pipe"] {
        assert_denied(
            &b.run(&u.carol, &[cmd, "alice/logs"], b"x\n"),
            &format!("carol {cmd} alice/logs on B"),
        );
    }
    // Nor may she set the list there.
    assert_denied(
        &b.run(&u.carol, &["access", "alice/logs", "carol"], b""),
        "carol access on B",
    );
    // bob, listed, reads on B what alice sends on A.
    let sub = b
        .ssh(&u.bob, &["sub", "alice/logs"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    receivers(&b, "alice/logs", 1);
    let p = a.run(&u.alice, &["pub", "logs"], b"for bob\n");
    p.expect_code(0);
    let got = sub.wait_with_output().unwrap();
    assert!(got.status.success(), "bob's sub on B: {got:?}");
    assert_eq!(got.stdout, b"for bob\n");
}

#[test]
fn a_change_on_one_node_re_decides_clients_on_the_other() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let u = users();
    let (a, b) = (node(&nats, 0, &u.file), node(&nats, 2, &u.file));
    assert_eq!(access(&a, &u.alice, &["logs", "bob"]), "access: bob\n");
    wait_list(&b, &u.alice, "access: bob");
    let bob_sub = running(&b, &u.bob, &["sub", "-k", "alice/logs"]);
    let bob_pattern = running(&b, &u.bob, &["sub", "alice/log*"]);
    receivers(&b, "alice/logs", 2);
    // Replaced on A: bob is out on B at once, as on one node.
    assert_eq!(access(&a, &u.alice, &["logs", "carol"]), "access: carol\n");
    let (code, err) = bob_sub.finish("bob's sub -k on B");
    assert_eq!((code, err.as_str()), (Some(1), "access denied\n"));
    let (code, err) = bob_pattern.finish("bob's pattern sub on B");
    assert_eq!((code, err.as_str()), (Some(1), "access denied\n"));
    receivers(&b, "alice/logs", 0);
    assert_denied(
        &b.run(&u.bob, &["sub", "alice/logs"], b""),
        "bob sub on B after the change",
    );
    // carol is in on B now.
    let carol_sub = running(&b, &u.carol, &["sub", "-k", "alice/logs"]);
    receivers(&b, "alice/logs", 1);
    // Cleared on A: others are refused again on B (a private topic with
    // no list is its owner's alone), carol's sub with them.
    assert_eq!(access(&a, &u.alice, &["logs", "--clear"]), "access: none\n");
    let (code, err) = carol_sub.finish("carol's sub -k on B");
    assert_eq!((code, err.as_str()), (Some(1), "access denied\n"));
    wait_list(&b, &u.alice, "access: none");
    assert_denied(
        &b.run(&u.carol, &["sub", "alice/logs"], b""),
        "carol sub on B after the clear",
    );
}

/// A blocking HTTP client: reqwest on a runtime of its own, so the test
/// can wait on conditions with `wait_until` between requests.
struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            rt: tokio::runtime::Runtime::new().unwrap(),
            client: reqwest::Client::new(),
        }
    }

    /// `POST path` with `body` on `on` with `token`: status and body.
    fn post(&self, on: &TestServer, path: &str, token: &str, body: &'static str) -> (u16, String) {
        let url = format!("http://{}{path}", on.http_addr.unwrap());
        let send = self.client.post(url).bearer_auth(token).body(body).send();
        self.rt.block_on(async {
            let r = tokio::time::timeout(common::WAIT, send)
                .await
                .expect("POST answered in time")
                .unwrap();
            let status = r.status().as_u16();
            (status, r.text().await.unwrap_or_default())
        })
    }

    /// A streaming `GET path` on `on` with `token`.
    fn get(&self, on: &TestServer, path: &str, token: &str) -> reqwest::Response {
        let url = format!("http://{}{path}", on.http_addr.unwrap());
        let send = self.client.get(url).bearer_auth(token).send();
        self.rt.block_on(async {
            tokio::time::timeout(common::WAIT, send)
                .await
                .expect("GET answered in time")
                .unwrap()
        })
    }

    /// The next piece of a streaming body (`None` at its end).
    fn chunk(&self, r: &mut reqwest::Response) -> Option<Vec<u8>> {
        self.rt.block_on(async {
            tokio::time::timeout(common::WAIT, r.chunk())
                .await
                .expect("body moved in time")
                .ok()
                .flatten()
                .map(|b| b.to_vec())
        })
    }
}

/// `token create ARGS` as `key` on `on`: (secret, id).
fn token(on: &TestServer, key: &Key, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "create"];
    all.extend_from_slice(args);
    let out = on.run(key, &all, b"");
    out.expect_code(0);
    let secret = out.stdout_str().trim().to_string();
    assert!(secret.starts_with("sp_"), "{secret}");
    let id = out
        .stderr
        .split_whitespace()
        .nth(1)
        .expect("token ID in the note")
        .to_string();
    (secret, id)
}

/// Waits until `on` accepts `secret`.
fn wait_accepted(http: &Http, on: &TestServer, secret: &str) {
    let mut last = (0, String::new());
    wait_until(&format!("the token accepted on B (last: {last:?})"), || {
        last = http.post(on, "/pubsub/probe", secret, "x");
        last.0 != 401
    });
    assert_eq!(last.0, 200, "{last:?}");
}

#[test]
fn a_token_made_on_one_node_works_on_the_other_until_rm() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let u = users();
    let (a, b) = (node(&nats, 0, &u.file), node(&nats, 1, &u.file));
    let http = Http::new();
    let (secret, id) = token(&a, &u.alice, &["--name", "ci"]);
    wait_accepted(&http, &b, &secret);
    // The token is alice on B: her private topic, by its short name.
    let mut get = http.get(&b, "/topic/logs?persist=true", &secret);
    assert_eq!(get.status(), 200);
    receivers(&b, "alice/logs", 1);
    a.run(&u.alice, &["pub", "logs"], b"over http\n")
        .expect_code(0);
    assert_eq!(http.chunk(&mut get).as_deref(), Some(&b"over http\n"[..]));
    // bob cannot remove it, on either node.
    b.run(&u.bob, &["token", "rm", &id], b"").expect_code(1);
    // Revoked on A: the stream on B is closed, and the token is 401 there.
    let out = a.run(&u.alice, &["token", "rm", &id], b"");
    out.expect_code(0);
    while http.chunk(&mut get).is_some() {}
    receivers(&b, "alice/logs", 0);
    assert_eq!(
        http.post(&b, "/pubsub/probe", &secret, "x"),
        (401, "invalid token\n".to_string())
    );
}

#[test]
fn the_per_user_token_bound_holds_across_nodes() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let u = users();
    let (a, b) = (node(&nats, 0, &u.file), node(&nats, 1, &u.file));
    // An anonymous key may hold 5 (MAX_TOKENS_PER_ANONYMOUS), wherever
    // they were made; neither node waits to hear of the other's.
    let anon = Key::new(u.dir.path(), "anon");
    let name = user_of(&a, &anon);
    for i in 0..5 {
        let on = if i % 2 == 0 { &a } else { &b };
        token(on, &anon, &[]);
    }
    for on in [&a, &b] {
        let out = on.run(&anon, &["token", "create"], b"");
        assert_eq!(out.code(), 1, "a 6th token: {}", out.stderr);
        assert!(
            out.stderr
                .contains(&format!("too many tokens for {name} (limit 5)")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn lists_and_tokens_outlive_both_nodes() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let u = users();
    let http = Http::new();
    let secret = {
        let (a, b) = (node(&nats, 0, &u.file), node(&nats, 1, &u.file));
        assert_eq!(access(&a, &u.alice, &["logs", "bob"]), "access: bob\n");
        let (secret, _) = token(&b, &u.alice, &[]);
        a.stop();
        b.stop();
        secret
    };
    // New nodes on empty data directories: all of it comes from NATS, and
    // is there before their first client.
    let (a, b) = (node(&nats, 2, &u.file), node(&nats, 0, &u.file));
    assert_eq!(access(&a, &u.alice, &["alice/logs"]), "access: bob\n");
    assert_denied(
        &b.run(&u.carol, &["sub", "alice/logs"], b""),
        "carol sub after the restart",
    );
    assert_eq!(
        http.post(&a, "/pubsub/probe", &secret, "x").0,
        200,
        "the token on a new node"
    );
    assert_eq!(http.post(&b, "/pubsub/probe", &secret, "x").0, 200);
}

/// alice's `ls` on `on` shows `public/x` with `line` in its block.
fn wait_public_listed(on: &TestServer, alice: &Key, line: &str) {
    let mut last = String::new();
    wait_until(
        &format!("{line:?} for public/x (last ls: {last:?})"),
        || {
            last = on.run(alice, &["ls"], b"").stdout_str();
            let mut block = last
                .lines()
                .skip_while(|l| !l.starts_with("public/x"))
                .skip(1)
                .take_while(|l| l.starts_with(' '));
            block.any(|l| l == line)
        },
    );
}

#[test]
fn a_public_list_set_on_one_node_holds_on_the_other() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let u = users();
    let (a, b) = (node(&nats, 0, &u.file), node(&nats, 1, &u.file));
    // alice claims public/x on A with a list, as the first client on it.
    let alice_sub = running(&a, &u.alice, &["sub", "-p", "-k", "-a", "bob", "x"]);
    receivers(&a, "public/x", 1);
    wait_public_listed(&b, &u.alice, "  access: bob");
    // On B carol is refused, and cannot take the topic over with -a.
    assert_denied(
        &b.run(&u.carol, &["sub", "-p", "x"], b""),
        "carol sub -p x on B",
    );
    assert_denied(
        &b.run(&u.carol, &["pub", "-p", "-a", "carol", "x"], b"x\n"),
        "carol pub -p -a carol x on B",
    );
    // bob, listed, is in on B.
    let bob_sub = running(&b, &u.bob, &["sub", "-p", "-k", "x"]);
    receivers(&a, "public/x", 2);
    // alice replaces the list on A: bob is out on B at once.
    assert_eq!(
        access(&a, &u.alice, &["-p", "x", "carol"]),
        "access: carol\n"
    );
    let (code, err) = bob_sub.finish("bob's sub -p -k x on B");
    assert_eq!((code, err.as_str()), (Some(1), "access denied\n"));
    // A has heard that bob left B, so the 2 below count carol, not him.
    receivers(&a, "public/x", 1);
    // carol is in on B now, and B holds the list too: it stays while
    // carol is on the topic after alice, who set it, leaves A.
    let carol_sub = running(&b, &u.carol, &["sub", "-p", "-k", "x"]);
    receivers(&a, "public/x", 2);
    let mut alice_sub = alice_sub;
    alice_sub.child.kill().unwrap();
    let _ = alice_sub.finish("alice's sub on A");
    receivers(&b, "public/x", 1);
    assert_denied(
        &a.run(&u.bob, &["sub", "-p", "x"], b""),
        "bob sub -p x on A after alice left",
    );
    drop(carol_sub);
}
