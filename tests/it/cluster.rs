//! Two sshpipe nodes sharing one set of topics through a real 3-server
//! NATS cluster (SPEC §14), driven with the real `ssh`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::process::Stdio;

use crate::common;
use common::nats::NatsCluster;
use common::{Key, TestServer};
use sha2::{Digest, Sha256};
use sshpipe::broker::{BackendKind, NatsOptions};

/// The NATS server list of a node connected first to server `i` (then the
/// others), as `--broker` gives it.
pub(crate) fn urls_from(nats: &NatsCluster, i: usize, n: usize) -> Vec<String> {
    let mut urls: Vec<String> = (0..n).map(|k| nats.url((i + k) % n)).collect();
    urls.dedup();
    urls
}

/// A node connected first to NATS server `i` (then the others); with an
/// HTTP listener if `http`.
pub(crate) fn node_with(nats: &NatsCluster, i: usize, n: usize, http: bool) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options_for(&dir.path().join("data"));
    opts.broker = node_options(nats, i, n);
    if http {
        opts.http_listen = Some("127.0.0.1:0".parse().unwrap());
    }
    TestServer::from_options(opts, dir)
}

/// The test broker's options, on the NATS cluster through server `i`.
pub(crate) fn node_options(
    nats: &NatsCluster,
    i: usize,
    n: usize,
) -> sshpipe::broker::BrokerConfig {
    let mut broker = common::test_broker();
    broker.backend = BackendKind::Nats(plain(urls_from(nats, i, n)));
    broker
}

/// NATS options with `urls` and nothing else: no login, no TLS.
pub(crate) fn plain(urls: Vec<String>) -> NatsOptions {
    NatsOptions {
        urls,
        creds: None,
        tls_ca: None,
        tls_cert: None,
        replicas: 3,
    }
}

/// A node on NATS as `nats` says (a login, TLS).
pub(crate) fn nats_node(nats: NatsOptions) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options_for(&dir.path().join("data"));
    opts.broker = common::test_broker();
    opts.broker.backend = BackendKind::Nats(nats);
    TestServer::from_options(opts, dir)
}

/// The user `key` logs in as, by `whoami` on `on`.
pub(crate) fn user_of(on: &TestServer, key: &Key) -> String {
    let who = on.run(key, &["whoami"], b"").stdout_str();
    who.lines()
        .find_map(|l| l.strip_prefix("user: "))
        .unwrap_or_else(|| panic!("no user in {who:?}"))
        .to_string()
}

/// `data` from a `pub t` on node `a` to a `sub t` on node `b`, byte for
/// byte, both exiting 0.
pub(crate) fn hand_over(a: &TestServer, b: &TestServer, data: &[u8]) {
    let key = Key::new(a.dir.path(), "alice");
    let sub = b
        .ssh(&key, &["sub", "t"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // On its own node; the pub on A then waits until A hears of it.
    receivers(b, &format!("{}/t", user_of(a, &key)), 1);
    let out = a.run(&key, &["pub", "t"], data);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    let got = sub.wait_with_output().unwrap();
    assert!(got.status.success(), "{:?}", got.status);
    assert_eq!(got.stdout, data);
}

/// The binary started with `args` (and no HTTP), which must refuse to
/// start with one line and exit 1: that line.
pub(crate) fn refused_node(args: &[&std::ffi::OsStr], what: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::binary_with_http(&dir.path().join("data"), "off");
    common::refused_line(cmd.args(args), what)
}

pub(crate) fn node(nats: &NatsCluster, i: usize, n: usize) -> TestServer {
    node_with(nats, i, n, false)
}

/// Waits (bounded) until node `on` counts `n` receivers on `full`.
pub(crate) fn receivers(on: &TestServer, full: &str, n: usize) {
    common::wait_until(&format!("{n} receivers on {full}"), || {
        on.app.broker.counts(full).map_or(0, |c| c.receivers) == n
    });
}

#[test]
fn a_pub_on_one_node_reaches_a_sub_on_the_other_byte_for_byte() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
    let key = Key::new(a.dir.path(), "alice");
    // 100 MiB: a hundred turns of the 1 MiB credit window between nodes.
    let data: Vec<u8> = (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sub = b
        .ssh(&key, &["sub", "files"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The pub blocks until it sees the sub on the other node.
    let mut publ = a
        .ssh(&key, &["pub", "files"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = publ.stdin.take().unwrap();
    let feed = {
        let data = data.clone();
        std::thread::spawn(move || stdin.write_all(&data).unwrap())
    };
    let got = sub.wait_with_output().unwrap();
    feed.join().unwrap();
    let pub_out = publ.wait_with_output().unwrap();
    assert!(pub_out.status.success(), "pub: {:?}", pub_out);
    assert!(got.status.success(), "sub: {:?}", got.status);
    assert_eq!(got.stdout.len(), data.len());
    assert_eq!(Sha256::digest(&got.stdout), Sha256::digest(&data));
}

#[test]
fn a_blocking_pub_waits_for_a_sub_on_another_node_and_ls_shows_both() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&nats, 0, 3), node(&nats, 2, 3));
    let key = Key::new(a.dir.path(), "bob");
    let who = String::from_utf8(a.run(&key, &["whoami"], b"").stdout).unwrap();
    let user = who
        .lines()
        .find_map(|l| l.strip_prefix("user: "))
        .unwrap()
        .to_string();
    let full = format!("{user}/chat");
    let publ = a
        .ssh(&key, &["pub", "chat"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Node B learns of A's waiting pub.
    let mut text = String::new();
    common::wait_until("B lists A's waiting pub", || {
        text = String::from_utf8_lossy(&b.run(&key, &["ls"], b"").stdout).to_string();
        text.contains("waiting pubs: 1")
    });
    assert!(text.contains("pubs: 1"), "{text}");
    let mut sub = b
        .ssh(&key, &["sub", "chat"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    receivers(&a, &full, 1);
    let mut publ = publ;
    publ.stdin
        .take()
        .unwrap()
        .write_all(b"hello from a\n")
        .unwrap();
    let pub_out = publ.wait_with_output().unwrap();
    assert!(pub_out.status.success(), "{pub_out:?}");
    let stderr = String::from_utf8_lossy(&pub_out.stderr);
    assert!(stderr.contains("msg sent!"), "{stderr}");
    let mut out = Vec::new();
    std::io::Read::read_to_end(sub.stdout.as_mut().unwrap(), &mut out).unwrap();
    assert!(sub.wait().unwrap().success());
    assert_eq!(out, b"hello from a\n");
}
