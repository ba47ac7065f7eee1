//! The broker's conformance suite: the delivery rules of SPEC §5–§8 on the
//! broker API alone, with no SSH or HTTP in between.
//!
//! Every backend passes it unchanged: each rule is one function of an `Fx`,
//! the one thing that knows what runs underneath, and `conformance!` at the
//! end runs every function twice, as `memory::…` and `nats::…`.
//!
//! - **memory**: time is paused (`start_paused`), so waits and timeouts of
//!   hours take no time and nothing depends on the machine's speed (the
//!   store tests run in real time: redb's file I/O happens on blocking
//!   threads, which paused time would race).
//! - **nats**: each test gets its own real 3-server nats-server cluster with
//!   JetStream (tests/common/nats.rs), so buckets and subjects are never
//!   shared between tests, and a broker made by `Broker::connect` onto it,
//!   in real time (NATS is I/O; a paused clock would fire its timeouts
//!   while a reply is on the wire). Without nats-server they are skipped
//!   with a line saying so, except under CI.
//!
//! Tests wait on conditions, never on sleeps; the one wait for nothing to
//! happen (`Fx::quiet`) is long in paused time and, on NATS, outlasts the
//! node heartbeats a sub could wrongly end on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sshpipe::broker::{
    BackendKind, Broker, BrokerConfig, BrokerError, ByteSource, Client, NatsOptions, Open, PubEnd,
    PubStage, Publisher, PumpError, PumpOptions, QueueLimits, ReadError, Reader, StageSink,
};
use sshpipe::identity::Identity;
use sshpipe::store::{OpenCause, Store, StoreError};
use sshpipe::topic::{AccessList, Namespace, TopicRef};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::common::nats::NatsCluster;

// ------------------------------------------------------------------ set-up

/// Longest wait for a stopped node to let go of its store (`Fx::store`).
const STORE_FREED: Duration = Duration::from_secs(30);

/// What a test runs on.
struct Fx {
    /// `None`: the memory backend.
    nats: Option<NatsCluster>,
}

/// A broker of the test's; on NATS, its node's cluster tasks end when it is
/// dropped (a node that stops), so a second one on the same store is a
/// restart.
struct Node {
    broker: Broker,
    _stop: DropGuard,
}

impl Deref for Node {
    type Target = Broker;
    fn deref(&self) -> &Broker {
        &self.broker
    }
}

/// The limits of the command line's defaults.
fn config() -> BrokerConfig {
    BrokerConfig::default()
}

impl Fx {
    fn memory() -> Fx {
        Fx { nats: None }
    }

    /// `None` (after a SKIPPED line) without nats-server, outside CI.
    fn nats() -> Option<Fx> {
        Some(Fx {
            nats: Some(NatsCluster::start(3)?),
        })
    }

    /// A broker with `cfg`'s limits on this backend.
    async fn open(&self, cfg: BrokerConfig, store: Option<Store>) -> Node {
        let backend = match &self.nats {
            None => BackendKind::Memory,
            Some(cluster) => BackendKind::Nats(NatsOptions {
                urls: cluster.urls().split(',').map(str::to_string).collect(),
                creds: None,
                tls_ca: None,
                tls_cert: None,
                replicas: 3,
            }),
        };
        let stop = CancellationToken::new();
        let broker = Broker::connect(BrokerConfig { backend, ..cfg }, store, stop.clone())
            .await
            .unwrap();
        Node {
            broker,
            _stop: stop.drop_guard(),
        }
    }

    async fn broker(&self) -> Node {
        self.open(config(), None).await
    }

    /// A broker with a store on a real file (queued messages, stored lists).
    async fn broker_with_store(&self) -> (Node, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (self.open(config(), Some(store)).await, dir)
    }

    /// The store in `dir`, opened as a restarted node opens it. On NATS a
    /// stopped node's tasks let go of it a moment after it is dropped (they
    /// see the stop and end), so a store still in use is tried again, for
    /// at most `STORE_FREED`: a node that never let go fails the test.
    async fn store(&self, dir: &std::path::Path) -> Store {
        let started = std::time::Instant::now();
        loop {
            match Store::open(dir) {
                Err(StoreError::Open {
                    cause: OpenCause::InUse,
                    ..
                }) if started.elapsed() < STORE_FREED => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => return other.unwrap(),
            }
        }
    }

    /// How long nothing must happen for a test to say it never will.
    fn quiet(&self) -> Duration {
        match self.nats {
            None => WAIT,
            Some(_) => 2 * sshpipe::broker::NATS_NODE_TTL + Duration::from_secs(2),
        }
    }
}

fn user(name: &str) -> Identity {
    Identity {
        name: name.to_string(),
        fingerprint: format!("SHA256:{name}"),
        admin: false,
        anonymous: false,
    }
}

fn private(owner: &str, local: &str) -> TopicRef {
    TopicRef {
        full: format!("{owner}/{local}"),
        namespace: Namespace::User(owner.to_string()),
        local: local.to_string(),
    }
}

fn public(local: &str) -> TopicRef {
    TopicRef {
        full: format!("public/{local}"),
        namespace: Namespace::Public,
        local: local.to_string(),
    }
}

fn open<'a>(topic: &'a TopicRef, who: &'a Identity, access: Option<&'a AccessList>) -> Open<'a> {
    Open {
        topic,
        client: Client {
            identity: who,
            label: "test@127.0.0.1:1#1",
        },
        access,
    }
}

fn list(names: &[&str]) -> AccessList {
    AccessList(names.iter().map(|s| s.to_string()).collect())
}

/// Input fed from a channel; dropping the sender ends it (EOF), `Err`
/// breaks it off (a sender that vanishes).
struct Feed(mpsc::UnboundedReceiver<std::io::Result<Bytes>>);

impl ByteSource for Feed {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        match self.0.recv().await {
            Some(Ok(b)) => Ok(Some(b)),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

fn feed() -> (mpsc::UnboundedSender<std::io::Result<Bytes>>, Feed) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, Feed(rx))
}

/// Input that is all there from the start.
fn input(chunks: &[&[u8]]) -> Feed {
    let (tx, f) = feed();
    for c in chunks {
        tx.send(Ok(Bytes::copy_from_slice(c))).unwrap();
    }
    f
}

/// Records the stages a pub reports.
#[derive(Default, Clone)]
struct Stages(Arc<std::sync::Mutex<Vec<PubStage>>>);

impl StageSink for Stages {
    async fn stage(&mut self, stage: PubStage) {
        self.0.lock().unwrap().push(stage);
    }
}

impl Stages {
    fn seen(&self) -> Vec<PubStage> {
        self.0.lock().unwrap().clone()
    }
}

const WAIT: Duration = Duration::from_secs(3600);

/// How long a partial line of one of several senders may be held (SPEC §5):
/// a lone sender's is never held, so it arrives sooner.
const LINE_HOLD: Duration = Duration::from_millis(100);

fn blocking() -> PumpOptions {
    PumpOptions {
        block: true,
        timeout: WAIT,
        empty: false,
        round_robin: false,
    }
}

fn nonblocking() -> PumpOptions {
    PumpOptions {
        block: false,
        ..blocking()
    }
}

async fn live_pub(b: &Broker, topic: &TopicRef, who: &Identity) -> Publisher {
    match b.open_pub(open(topic, who, None), false).await.unwrap().end {
        PubEnd::Live(p) => p,
        PubEnd::Queued(_) => panic!("a pub without -q was queued"),
    }
}

async fn sub(b: &Broker, topic: &TopicRef, who: &Identity, keep_alive: bool) -> Reader {
    b.open_sub(open(topic, who, None), keep_alive, false)
        .await
        .unwrap()
        .end
}

/// Reads a reader to its end.
async fn read_all(mut r: Reader) -> Result<Vec<u8>, ReadError> {
    let mut out = Vec::new();
    while let Some(c) = r.next().await? {
        out.extend_from_slice(&c);
    }
    Ok(out)
}

/// A `sub` (no `-k`) on `t`, read to its end in its own task; returns once
/// it is a receiver.
async fn reading(
    b: &Broker,
    t: &TopicRef,
    who: &Identity,
) -> tokio::task::JoinHandle<Result<Vec<u8>, ReadError>> {
    let before = b.counts(&t.full).map_or(0, |c| c.receivers);
    let r = sub(b, t, who, false).await;
    receivers(b, &t.full, before + 1).await;
    tokio::spawn(read_all(r))
}

/// Reads a reader in its own task, chunk by chunk, as a front end does.
fn spawn_reader(mut r: Reader) -> mpsc::UnboundedReceiver<Bytes> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(c)) = r.next().await {
            if tx.send(c).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits (in paused time) until `cond` holds.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..100_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("never happened: {what}");
}

async fn receivers(b: &Broker, full: &str, n: usize) {
    until(&format!("{n} receivers on {full}"), || {
        b.counts(full).map_or(0, |c| c.receivers) == n
    })
    .await;
}

// --------------------------------------------------------------- multicast

async fn every_receiver_gets_every_byte(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let readers: Vec<_> =
        futures_util::future::join_all((0..3).map(|_| sub(&b, &t, &alice, false))).await;
    receivers(&b, &t.full, 3).await;
    let mut p = live_pub(&b, &t, &alice).await;
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = data.chunks(7_000).collect();
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|r| tokio::spawn(read_all(r)))
        .collect();
    p.pump(&mut input(&chunks), blocking(), &mut ())
        .await
        .unwrap();
    drop(p);
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), data);
    }
}

async fn a_blocking_pub_waits_for_a_receiver_and_reads_nothing_meanwhile(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut p = live_pub(&b, &t, &alice).await;
    let stages = Stages::default();
    let (tx, mut src) = feed();
    tx.send(Ok(Bytes::from_static(b"hello\n"))).unwrap();
    drop(tx);
    let mut sink = stages.clone();
    let pumping = tokio::spawn(async move {
        let r = p.pump(&mut src, blocking(), &mut sink).await;
        (r, src)
    });
    until("the pub waits", || b.waiting_pubs(&t.full) == 1).await;
    assert_eq!(stages.seen(), vec![PubStage::Waiting(WAIT)]);
    let r = sub(&b, &t, &alice, false).await;
    let got = tokio::spawn(read_all(r));
    let (done, _) = pumping.await.unwrap();
    done.unwrap();
    assert_eq!(got.await.unwrap().unwrap(), b"hello\n");
    assert_eq!(
        stages.seen(),
        vec![PubStage::Waiting(WAIT), PubStage::Sending]
    );
    assert_eq!(b.waiting_pubs(&t.full), 0);
}

async fn a_blocking_pub_times_out_without_a_receiver(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut p = live_pub(&b, &t, &alice).await;
    let opts = PumpOptions {
        timeout: Duration::from_secs(5),
        ..blocking()
    };
    let started = tokio::time::Instant::now();
    let r = p.pump(&mut input(&[b"x"]), opts, &mut ()).await;
    assert!(matches!(r, Err(PumpError::Timeout)), "{r:?}");
    assert!(started.elapsed() >= Duration::from_secs(5));
}

async fn a_nonblocking_pub_without_receivers_drops_its_data(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut p = live_pub(&b, &t, &alice).await;
    p.pump(&mut input(&[b"lost\n"]), nonblocking(), &mut ())
        .await
        .unwrap();
    assert_eq!(p.sent, 0);
}

async fn a_blocking_pub_waits_again_when_every_receiver_left(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let first = sub(&b, &t, &alice, true).await;
    receivers(&b, &t.full, 1).await;
    let mut p = live_pub(&b, &t, &alice).await;
    let stages = Stages::default();
    let (tx, mut src) = feed();
    let mut sink = stages.clone();
    let pumping = tokio::spawn(async move { p.pump(&mut src, blocking(), &mut sink).await });
    let mut first = first;
    tx.send(Ok(Bytes::from_static(b"one\n"))).unwrap();
    assert_eq!(first.next().await.unwrap().unwrap(), "one\n");
    drop(first);
    until("the pub waits again", || b.waiting_pubs(&t.full) == 1).await;
    tx.send(Ok(Bytes::from_static(b"two\n"))).unwrap();
    let second = sub(&b, &t, &alice, false).await;
    drop(tx);
    let got = tokio::spawn(read_all(second));
    pumping.await.unwrap().unwrap();
    assert_eq!(got.await.unwrap().unwrap(), b"two\n");
    assert_eq!(
        stages.seen(),
        vec![
            PubStage::Sending,
            PubStage::Waiting(WAIT),
            PubStage::Sending
        ]
    );
}

// ----------------------------------------------------------------- endings

async fn a_sub_ends_after_its_senders_and_everything_they_sent(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let got = reading(&b, &t, &alice).await;
    let mut p = live_pub(&b, &t, &alice).await;
    p.pump(&mut input(&[b"a\n", b"b\n"]), blocking(), &mut ())
        .await
        .unwrap();
    // The sender leaving ends the sub, after all it sent.
    drop(p);
    assert_eq!(got.await.unwrap().unwrap(), b"a\nb\n");
}

async fn a_keep_alive_sub_outlives_its_senders(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut r = spawn_reader(sub(&b, &t, &alice, true).await);
    receivers(&b, &t.full, 1).await;
    for word in ["a\n", "b\n"] {
        let mut p = live_pub(&b, &t, &alice).await;
        p.pump(&mut input(&[word.as_bytes()]), blocking(), &mut ())
            .await
            .unwrap();
    }
    assert_eq!(r.recv().await.unwrap(), "a\n");
    assert_eq!(r.recv().await.unwrap(), "b\n");
    let more = tokio::time::timeout(fx.quiet(), r.recv()).await;
    assert!(more.is_err(), "a sub -k ended: {more:?}");
}

async fn a_sender_that_vanishes_fails_its_subs(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let got = reading(&b, &t, &alice).await;
    let mut p = live_pub(&b, &t, &alice).await;
    let (tx, mut src) = feed();
    tx.send(Ok(Bytes::from_static(b"half a file"))).unwrap();
    tx.send(Err(std::io::ErrorKind::ConnectionAborted.into()))
        .unwrap();
    assert!(p.pump(&mut src, blocking(), &mut ()).await.is_err());
    drop(p);
    let r = got.await.unwrap();
    assert!(matches!(r, Err(ReadError::SenderVanished)), "{r:?}");
}

async fn msg_sent_means_every_receiver_was_handed_everything(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut r = sub(&b, &t, &alice, false).await;
    receivers(&b, &t.full, 1).await;
    let mut p = live_pub(&b, &t, &alice).await;
    let big = vec![b'x'; 32 * 1024];
    let chunks: Vec<&[u8]> = (0..64).map(|_| big.as_slice()).collect();
    let mut src = input(&chunks);
    let pumping = tokio::spawn(async move { p.pump(&mut src, blocking(), &mut ()).await });
    let mut got = 0;
    while got < 64 * big.len() {
        assert!(
            !pumping.is_finished(),
            "the pub finished before its data was read"
        );
        got += r.next().await.unwrap().unwrap().len();
    }
    // The flush marker is acknowledged by asking for more.
    let rest = tokio::spawn(async move { r.next().await });
    pumping.await.unwrap().unwrap();
    assert_eq!(rest.await.unwrap().unwrap(), None);
}

// ----------------------------------------------------- several senders, lines

async fn lines_of_several_senders_never_interleave(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut r = spawn_reader(sub(&b, &t, &alice, true).await);
    receivers(&b, &t.full, 1).await;
    let mut p1 = live_pub(&b, &t, &alice).await;
    let mut p2 = live_pub(&b, &t, &alice).await;
    let (tx1, mut s1) = feed();
    let (tx2, mut s2) = feed();
    let a = tokio::spawn(async move { p1.pump(&mut s1, blocking(), &mut ()).await });
    let c = tokio::spawn(async move { p2.pump(&mut s2, blocking(), &mut ()).await });
    for i in 0..50 {
        tx1.send(Ok(Bytes::from(format!("A{i}-")))).unwrap();
        tx2.send(Ok(Bytes::from(format!("B{i}-")))).unwrap();
        tx1.send(Ok(Bytes::from(format!("a{i}\n")))).unwrap();
        tx2.send(Ok(Bytes::from(format!("b{i}\n")))).unwrap();
        tokio::task::yield_now().await;
    }
    drop((tx1, tx2));
    a.await.unwrap().unwrap();
    c.await.unwrap().unwrap();
    let mut text = String::new();
    while text.matches('\n').count() < 100 {
        text.push_str(std::str::from_utf8(&r.recv().await.unwrap()).unwrap());
    }
    for line in text.lines() {
        let ok = (0..50).any(|i| line == format!("A{i}-a{i}") || line == format!("B{i}-b{i}"));
        assert!(ok, "a mixed line: {line:?}");
    }
}

async fn a_lone_sender_is_never_held_back(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let mut r = sub(&b, &t, &alice, true).await;
    receivers(&b, &t.full, 1).await;
    let mut p = live_pub(&b, &t, &alice).await;
    let (tx, mut s) = feed();
    let _pumping = tokio::spawn(async move { p.pump(&mut s, blocking(), &mut ()).await });
    tx.send(Ok(Bytes::from_static(b"no newline yet"))).unwrap();
    let started = tokio::time::Instant::now();
    assert_eq!(r.next().await.unwrap().unwrap(), "no newline yet");
    assert!(started.elapsed() < LINE_HOLD, "held back");
}

// ------------------------------------------------------------ round-robin

fn round_robin() -> PumpOptions {
    PumpOptions {
        round_robin: true,
        ..blocking()
    }
}

async fn round_robin_gives_each_line_to_exactly_one_worker(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "jobs"));
    let workers: Vec<Reader> =
        futures_util::future::join_all((0..3).map(|_| sub(&b, &t, &alice, false))).await;
    receivers(&b, &t.full, 3).await;
    let tasks: Vec<_> = workers
        .into_iter()
        .map(|r| tokio::spawn(read_all(r)))
        .collect();
    let mut p = live_pub(&b, &t, &alice).await;
    let lines: Vec<String> = (0..300).map(|i| format!("job {i}\n")).collect();
    let joined = lines.concat();
    // Chunks cut lines in the middle: still whole lines out.
    let chunks: Vec<&[u8]> = joined.as_bytes().chunks(10).collect();
    p.pump(&mut input(&chunks), round_robin(), &mut ())
        .await
        .unwrap();
    drop(p);
    let mut all = Vec::new();
    for t in tasks {
        let got = String::from_utf8(t.await.unwrap().unwrap()).unwrap();
        assert!(
            got.lines().count() >= 50,
            "uneven spread: {}",
            got.lines().count()
        );
        all.extend(got.lines().map(str::to_string));
    }
    all.sort();
    let mut want: Vec<String> = lines.iter().map(|l| l.trim_end().to_string()).collect();
    want.sort();
    assert_eq!(all, want);
}

async fn a_worker_that_dies_holding_a_line_gives_it_to_another(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "jobs"));
    let mut dying = sub(&b, &t, &alice, true).await;
    let survivor = sub(&b, &t, &alice, true).await;
    receivers(&b, &t.full, 2).await;
    let survivor = Arc::new(Mutex::new(survivor));
    let collected = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let reading = {
        let (survivor, collected) = (Arc::clone(&survivor), Arc::clone(&collected));
        tokio::spawn(async move {
            let mut s = survivor.lock().await;
            while let Ok(Some(c)) = s.next().await {
                collected
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(c.to_vec()).unwrap());
            }
        })
    };
    let mut p = live_pub(&b, &t, &alice).await;
    let lines: Vec<String> = (0..40).map(|i| format!("job {i}\n")).collect();
    let chunks: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let mut src = input(&chunks);
    let pumping = tokio::spawn(async move { p.pump(&mut src, round_robin(), &mut ()).await });
    // The dying worker takes one line and never writes it: its client is gone.
    let held = dying.next().await.unwrap().unwrap();
    drop(dying);
    pumping.await.unwrap().unwrap();
    until("every line reached the survivor", || {
        collected.lock().unwrap().concat().matches('\n').count() == 40
    })
    .await;
    reading.abort();
    let mut got: Vec<String> = collected
        .lock()
        .unwrap()
        .concat()
        .lines()
        .map(str::to_string)
        .collect();
    got.sort();
    let mut want: Vec<String> = lines.iter().map(|l| l.trim_end().to_string()).collect();
    want.sort();
    assert_eq!(
        got, want,
        "the held line {held:?} must reach the survivor, once"
    );
}

// ------------------------------------------------------------------- lossy

async fn a_lossy_receiver_never_slows_the_sender(fx: Fx) {
    let b = fx.broker().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let lossy = b
        .open_sub(open(&t, &alice, None), true, true)
        .await
        .unwrap()
        .end;
    receivers(&b, &t.full, 1).await;
    let mut p = live_pub(&b, &t, &alice).await;
    let big = vec![b'x'; 32 * 1024];
    let chunks: Vec<&[u8]> = (0..100).map(|_| big.as_slice()).collect();
    // Nobody reads the lossy sub, yet the pub finishes.
    p.pump(&mut input(&chunks), blocking(), &mut ())
        .await
        .unwrap();
    assert!(lossy.skipped() > 0);
    assert_eq!(p.sent, 100 * big.len() as u64);
}

// ------------------------------------------------------ access and patterns

async fn a_private_topic_is_its_owners_until_listed(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t) = (user("alice"), user("bob"), private("alice", "t"));
    let denied = b.open_sub(open(&t, &bob, None), false, false).await;
    assert!(denied.is_err());
    let opened = b
        .open_pub(open(&t, &alice, Some(&list(&["bob"]))), false)
        .await
        .unwrap();
    assert!(opened.shared, "a listed topic is reached by its full name");
    assert!(b.open_sub(open(&t, &bob, None), false, false).await.is_ok());
    // bob may not change alice's list.
    let r = b
        .open_sub(open(&t, &bob, Some(&list(&["carol"]))), false, false)
        .await;
    assert!(r.is_err());
    assert_eq!(b.access(&t, &alice).await.unwrap(), Some(list(&["bob"])));
}

async fn a_public_topics_list_belongs_to_who_set_it(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t) = (user("alice"), user("bob"), public("t"));
    let _a = b
        .open_sub(open(&t, &alice, Some(&list(&["carol"]))), true, false)
        .await
        .unwrap()
        .end;
    receivers(&b, &t.full, 1).await;
    assert!(b.open_sub(open(&t, &bob, None), true, false).await.is_err());
    assert!(
        b.open_sub(open(&t, &bob, Some(&list(&["bob"]))), true, false)
            .await
            .is_err(),
        "bob took over alice's list"
    );
    assert!(
        b.open_sub(open(&t, &user("carol"), None), true, false)
            .await
            .is_ok()
    );
}

async fn patterns_reach_only_topics_their_user_may_use(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let pattern = private("alice", "logs-*");
    let watcher = b
        .open_sub(open(&pattern, &bob, None), true, false)
        .await
        .unwrap()
        .end;
    let mut watcher = spawn_reader(watcher);
    let (open_t, closed_t) = (private("alice", "logs-a"), private("alice", "logs-b"));
    let mut p_open = b
        .open_pub(open(&open_t, &alice, Some(&list(&["bob"]))), false)
        .await
        .unwrap();
    let mut p_closed = live_pub(&b, &closed_t, &alice).await;
    let PubEnd::Live(p_open_live) = &mut p_open.end else {
        panic!("queued")
    };
    receivers(&b, &open_t.full, 1).await;
    assert_eq!(b.counts(&closed_t.full).unwrap().receivers, 0);
    p_closed
        .pump(&mut input(&[b"secret\n"]), nonblocking(), &mut ())
        .await
        .unwrap();
    p_open_live
        .pump(&mut input(&[b"shared\n"]), blocking(), &mut ())
        .await
        .unwrap();
    assert_eq!(watcher.recv().await.unwrap(), "shared\n");
}

async fn a_list_change_on_a_live_topic_detaches_patterns_at_once(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob) = (user("alice"), user("bob"));
    let t = private("alice", "logs-a");
    b.set_access(&t, &alice, &list(&["bob"])).await.unwrap();
    let _p = live_pub(&b, &t, &alice).await;
    let _w = b
        .open_sub(open(&private("alice", "logs-*"), &bob, None), true, false)
        .await
        .unwrap();
    receivers(&b, &t.full, 1).await;
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert_eq!(b.counts(&t.full).unwrap().receivers, 0);
    assert!(b.open_sub(open(&t, &bob, None), true, false).await.is_err());
}

// -------------------------------------------- list changes on live topics

fn denied(r: Result<Vec<u8>, ReadError>) -> bool {
    matches!(r, Err(ReadError::Join(BrokerError::AccessDenied)))
}

/// alice's `alice/t`, shared with bob, with a pub of alice's keeping it live.
async fn shared_with_bob(b: &Broker) -> (Identity, Identity, TopicRef, Publisher) {
    let (alice, bob, t) = (user("alice"), user("bob"), private("alice", "t"));
    b.set_access(&t, &alice, &list(&["bob"])).await.unwrap();
    let p = live_pub(b, &t, &alice).await;
    (alice, bob, t, p)
}

async fn an_access_change_on_a_live_topic_removes_a_sub_no_longer_allowed(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t, _p) = shared_with_bob(&b).await;
    let r = b
        .open_sub(open(&t, &bob, None), true, false)
        .await
        .unwrap()
        .end;
    receivers(&b, &t.full, 1).await;
    let reading = tokio::spawn(read_all(r));
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(denied(reading.await.unwrap()), "bob's sub was not cut off");
    assert_eq!(b.counts(&t.full).unwrap().receivers, 0);
}

async fn an_access_change_leaves_clients_still_allowed_alone(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t, mut p) = shared_with_bob(&b).await;
    let carol = user("carol");
    b.set_access(&t, &alice, &list(&["bob", "carol"]))
        .await
        .unwrap();
    let r_alice = reading(&b, &t, &alice).await;
    let r_carol = reading(&b, &t, &carol).await;
    let r_bob = reading(&b, &t, &bob).await;
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(denied(r_bob.await.unwrap()));
    p.pump(&mut input(&[b"still here\n"]), blocking(), &mut ())
        .await
        .unwrap();
    drop(p);
    assert_eq!(r_alice.await.unwrap().unwrap(), b"still here\n");
    assert_eq!(r_carol.await.unwrap().unwrap(), b"still here\n");
}

async fn an_access_change_removes_a_waiting_pub_and_a_streaming_one(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t, _p) = shared_with_bob(&b).await;
    // Waiting: nobody receives yet.
    let mut waiting = live_pub(&b, &t, &bob).await;
    let waits =
        tokio::spawn(async move { waiting.pump(&mut input(&[b"x"]), blocking(), &mut ()).await });
    until("bob's pub waits", || b.waiting_pubs(&t.full) == 1).await;
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(matches!(waits.await.unwrap(), Err(PumpError::AccessDenied)));
    // Streaming: a receiver of alice's takes what it sends.
    b.set_access(&t, &alice, &list(&["bob"])).await.unwrap();
    let got = spawn_reader(sub(&b, &t, &alice, true).await);
    receivers(&b, &t.full, 1).await;
    let mut streaming = live_pub(&b, &t, &bob).await;
    let (tx, mut src) = feed();
    tx.send(Ok(Bytes::from_static(b"first\n"))).unwrap();
    let streams = tokio::spawn(async move {
        let r = streaming.pump(&mut src, nonblocking(), &mut ()).await;
        drop(tx);
        r
    });
    let mut got = got;
    assert_eq!(got.recv().await.unwrap(), "first\n");
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(matches!(
        streams.await.unwrap(),
        Err(PumpError::AccessDenied)
    ));
}

async fn an_access_change_removes_a_pipe(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t, _p) = shared_with_bob(&b).await;
    let pipe = b.open_pipe(open(&t, &bob, None), false).await.unwrap().end;
    receivers(&b, &t.full, 1).await;
    let (mut publisher, mut subscription) = (pipe.publisher, pipe.subscription);
    let (_tx, mut src) = feed();
    let sending =
        tokio::spawn(async move { publisher.pump(&mut src, nonblocking(), &mut ()).await });
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(subscription.next().await.is_none());
    assert!(subscription.revoked());
    assert!(matches!(
        sending.await.unwrap(),
        Err(PumpError::AccessDenied)
    ));
}

/// SPEC §6 names pattern subs among the clients removed: a pattern sub
/// that was receiving from a topic it may no longer use ends.
async fn an_access_change_ends_a_pattern_sub_that_received_from_the_topic(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t, _p) = shared_with_bob(&b).await;
    let w = b
        .open_sub(open(&private("alice", "*"), &bob, None), true, false)
        .await
        .unwrap()
        .end;
    receivers(&b, &t.full, 1).await;
    let watching = tokio::spawn(read_all(w));
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(denied(watching.await.unwrap()));
}

async fn a_public_list_set_by_a_joiner_removes_clients_it_does_not_name(fx: Fx) {
    let b = fx.broker().await;
    let (alice, bob, t) = (user("alice"), user("bob"), public("t"));
    let r = sub(&b, &t, &alice, true).await;
    receivers(&b, &t.full, 1).await;
    let reading = tokio::spawn(read_all(r));
    let _bob = b
        .open_sub(open(&t, &bob, Some(&list(&["carol"]))), true, false)
        .await
        .unwrap();
    assert!(denied(reading.await.unwrap()));
}

async fn a_queued_message_goes_only_to_a_reader_the_list_allows_when_read(fx: Fx) {
    let (b, _dir) = fx.broker_with_store().await;
    let (alice, bob, t) = (user("alice"), user("bob"), private("alice", "files"));
    b.set_access(&t, &alice, &list(&["bob"])).await.unwrap();
    queue_one(&b, &t, &alice, b"one").await;
    queue_one(&b, &t, &alice, b"two").await;
    let mut r = b
        .open_sub(open(&t, &bob, None), true, false)
        .await
        .unwrap()
        .end;
    assert_eq!(r.next().await.unwrap().unwrap(), "one");
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(matches!(
        r.next().await,
        Err(ReadError::Join(BrokerError::AccessDenied))
    ));
    assert_eq!(b.queued(&t.full).0, 1, "bob took the second message");
}

async fn a_public_pub_q_keeps_its_list_with_the_message_until_read(fx: Fx) {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, carol, t) = (user("alice"), user("bob"), user("carol"), public("drop"));
    {
        let b = fx.open(config(), Some(fx.store(dir.path()).await)).await;
        let opened = b
            .open_pub(open(&t, &alice, Some(&list(&["bob"]))), true)
            .await
            .unwrap();
        let PubEnd::Queued(q) = opened.end else {
            panic!("went live with nobody on the topic")
        };
        q.store(&mut input(&[b"for bob"])).await.unwrap();
    }
    // After a restart too, only the list's users may read it.
    let b = fx.open(config(), Some(fx.store(dir.path()).await)).await;
    assert!(
        b.open_sub(open(&t, &carol, None), false, false)
            .await
            .is_err()
    );
    assert!(
        b.open_pub(open(&t, &carol, Some(&list(&["carol"]))), true)
            .await
            .is_err()
    );
    assert_eq!(b.access(&t, &alice).await.unwrap(), Some(list(&["bob"])));
    let r = sub(&b, &t, &bob, false).await;
    assert_eq!(read_all(r).await.unwrap(), b"for bob");
    // Read and nobody on it: the topic is free again.
    assert!(
        b.open_sub(open(&t, &carol, None), false, false)
            .await
            .is_ok()
    );
}

async fn topics_per_user_are_bounded_apart_from_the_server_bound(fx: Fx) {
    let cfg = BrokerConfig {
        max_topics: 10,
        max_topics_per_user: 3,
        ..config()
    };
    let b = fx.open(cfg, None).await;
    let (alice, bob) = (user("alice"), user("bob"));
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(live_pub(&b, &private("alice", &i.to_string()), &alice).await);
    }
    let over = b
        .open_pub(open(&private("alice", "3"), &alice, None), false)
        .await;
    assert!(matches!(over, Err(BrokerError::TooManyUserTopics { .. })));
    // Others are not locked out by alice.
    let _bob = live_pub(&b, &private("bob", "0"), &bob).await;
    held.pop();
    let _again = live_pub(&b, &private("alice", "3"), &alice).await;
}

async fn topics_are_bounded_and_freed_when_empty(fx: Fx) {
    let cfg = BrokerConfig {
        max_topics: 2,
        ..config()
    };
    let b = fx.open(cfg, None).await;
    let alice = user("alice");
    let (t1, t2, t3) = (
        private("alice", "1"),
        private("alice", "2"),
        private("alice", "3"),
    );
    let p1 = live_pub(&b, &t1, &alice).await;
    let _p2 = live_pub(&b, &t2, &alice).await;
    assert!(b.open_pub(open(&t3, &alice, None), false).await.is_err());
    drop(p1);
    assert_eq!(b.topic_count(), 1);
    let _p3 = live_pub(&b, &t3, &alice).await;
}

// ------------------------------------------------------------------ queued

async fn queue_one(b: &Broker, t: &TopicRef, who: &Identity, body: &[u8]) -> usize {
    match b.open_pub(open(t, who, None), true).await.unwrap().end {
        PubEnd::Queued(q) => q.store(&mut input(&[body])).await.unwrap(),
        PubEnd::Live(_) => panic!("a pub -q with no receiver went live"),
    }
}

async fn queued_messages_wait_and_go_to_exactly_one_sub(fx: Fx) {
    let (b, _dir) = fx.broker_with_store().await;
    let (alice, t) = (user("alice"), private("alice", "files"));
    for i in 0..6 {
        let n = queue_one(&b, &t, &alice, format!("message {i}").as_bytes()).await;
        assert_eq!(n, i + 1);
    }
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let r = sub(&b, &t, &alice, false).await;
        tasks.push(tokio::spawn(read_all(r)));
    }
    let mut got: Vec<String> = Vec::new();
    for t in tasks {
        got.push(String::from_utf8(t.await.unwrap().unwrap()).unwrap());
    }
    got.sort();
    let want: Vec<String> = (0..6).map(|i| format!("message {i}")).collect();
    assert_eq!(got, want);
    assert_eq!(b.queued(&t.full), (0, 0));
}

async fn a_pub_q_with_a_receiver_goes_live(fx: Fx) {
    let (b, _dir) = fx.broker_with_store().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let r = sub(&b, &t, &alice, false).await;
    let got = tokio::spawn(read_all(r));
    receivers(&b, &t.full, 1).await;
    let PubEnd::Live(mut p) = b.open_pub(open(&t, &alice, None), true).await.unwrap().end else {
        panic!("queued with a receiver present");
    };
    p.pump(&mut input(&[b"live"]), nonblocking(), &mut ())
        .await
        .unwrap();
    drop(p);
    assert_eq!(got.await.unwrap().unwrap(), b"live");
    assert_eq!(b.queued(&t.full), (0, 0));
}

async fn a_message_queued_while_a_keep_alive_sub_is_live_reaches_it(fx: Fx) {
    let (b, _dir) = fx.broker_with_store().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    queue_one(&b, &t, &alice, b"first").await;
    let mut r = spawn_reader(sub(&b, &t, &alice, true).await);
    assert_eq!(r.recv().await.unwrap(), "first");
    // Now live: a pub -q finds the receiver and delivers live.
    let PubEnd::Live(mut p) = ({
        receivers(&b, &t.full, 1).await;
        b.open_pub(open(&t, &alice, None), true).await.unwrap().end
    }) else {
        panic!("queued with a live receiver");
    };
    let mut src = input(&[b"second"]);
    let pumping = tokio::spawn(async move { p.pump(&mut src, nonblocking(), &mut ()).await });
    assert_eq!(r.recv().await.unwrap(), "second");
    pumping.await.unwrap().unwrap();
}

async fn a_sub_that_leaves_mid_message_puts_it_back(fx: Fx) {
    let (b, _dir) = fx.broker_with_store().await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let body = vec![b'q'; 600 * 1024];
    queue_one(&b, &t, &alice, &body).await;
    let mut first = sub(&b, &t, &alice, false).await;
    assert!(!first.next().await.unwrap().unwrap().is_empty());
    assert_eq!(b.claimed(&t.full), 1);
    drop(first);
    assert_eq!(b.claimed(&t.full), 0);
    let again = sub(&b, &t, &alice, false).await;
    assert_eq!(read_all(again).await.unwrap(), body);
}

/// Input that says when its first chunk was taken, then waits for `more`.
struct Announcing {
    first: Option<Bytes>,
    taken: Arc<std::sync::atomic::AtomicBool>,
    more: mpsc::UnboundedReceiver<Bytes>,
}

impl ByteSource for Announcing {
    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        if let Some(first) = self.first.take() {
            self.taken.store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(Some(first));
        }
        Ok(self.more.recv().await)
    }
}

async fn two_concurrent_pub_q_never_both_pass_a_quota(fx: Fx) {
    let dir = tempfile::tempdir().unwrap();
    let limits = QueueLimits {
        max_user_bytes: 100,
        ..QueueLimits::default()
    };
    let cfg = BrokerConfig {
        queue: limits,
        ..config()
    };
    let b = fx.open(cfg, Some(fx.store(dir.path()).await)).await;
    let (alice, t) = (user("alice"), private("alice", "t"));
    let PubEnd::Queued(first) = b.open_pub(open(&t, &alice, None), true).await.unwrap().end else {
        panic!("live")
    };
    let taken = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (more, rest) = mpsc::unbounded_channel();
    let mut src = Announcing {
        first: Some(Bytes::from(vec![b'a'; 60])),
        taken: Arc::clone(&taken),
        more: rest,
    };
    let storing = tokio::spawn(async move { first.store(&mut src).await });
    until("the first pub read its 60 bytes", || {
        taken.load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    tokio::task::yield_now().await;
    // The second one would fit were the first not counted until stored.
    let PubEnd::Queued(second) = b.open_pub(open(&t, &alice, None), true).await.unwrap().end else {
        panic!("live")
    };
    let refused = second.store(&mut input(&[&[b'b'; 60]])).await;
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .starts_with("queue full: alice has 60 bytes"),
        "the second pub passed a check the first had already used"
    );
    drop(more);
    assert_eq!(storing.await.unwrap().unwrap(), 1);
    assert_eq!(b.queued(&t.full), (1, 60));
}

async fn a_list_change_mid_message_stops_the_reader_and_keeps_the_message(fx: Fx) {
    let (b, _dir) = fx.broker_with_store().await;
    let (alice, bob, t) = (user("alice"), user("bob"), private("alice", "big"));
    b.set_access(&t, &alice, &list(&["bob"])).await.unwrap();
    let body = vec![b'q'; 600 * 1024];
    queue_one(&b, &t, &alice, &body).await;
    let mut r = sub(&b, &t, &bob, false).await;
    assert!(!r.next().await.unwrap().unwrap().is_empty());
    b.set_access(&t, &alice, &list(&["carol"])).await.unwrap();
    assert!(matches!(
        r.next().await,
        Err(ReadError::Join(BrokerError::AccessDenied))
    ));
    drop(r);
    assert_eq!(
        read_all(sub(&b, &t, &alice, false).await).await.unwrap(),
        body
    );
}

async fn a_stored_list_survives_a_restart(fx: Fx) {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob, t) = (user("alice"), user("bob"), private("alice", "t"));
    {
        let b = fx.open(config(), Some(fx.store(dir.path()).await)).await;
        b.set_access(&t, &alice, &list(&["bob"])).await.unwrap();
    }
    let b = fx.open(config(), Some(fx.store(dir.path()).await)).await;
    assert!(b.open_sub(open(&t, &bob, None), true, false).await.is_ok());
}

// ------------------------------------------------------------------- runs

/// Runs every rule on each backend: `paused` ones in paused time on memory,
/// `real` ones in real time everywhere.
macro_rules! conformance {
    (paused: [$($p:ident),* $(,)?], real: [$($r:ident),* $(,)?] $(,)?) => {
        mod memory {
            $(
                #[tokio::test(start_paused = true)]
                async fn $p() {
                    super::$p(super::Fx::memory()).await
                }
            )*
            $(
                #[tokio::test]
                async fn $r() {
                    super::$r(super::Fx::memory()).await
                }
            )*
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $p() {
                    if let Some(fx) = super::Fx::nats() {
                        super::$p(fx).await
                    }
                }
            )*
            $(
                #[tokio::test]
                async fn $r() {
                    if let Some(fx) = super::Fx::nats() {
                        super::$r(fx).await
                    }
                }
            )*
        }
    };
}

conformance! {
    paused: [
        every_receiver_gets_every_byte,
        a_blocking_pub_waits_for_a_receiver_and_reads_nothing_meanwhile,
        a_blocking_pub_times_out_without_a_receiver,
        a_nonblocking_pub_without_receivers_drops_its_data,
        a_blocking_pub_waits_again_when_every_receiver_left,
        a_sub_ends_after_its_senders_and_everything_they_sent,
        a_keep_alive_sub_outlives_its_senders,
        a_sender_that_vanishes_fails_its_subs,
        msg_sent_means_every_receiver_was_handed_everything,
        lines_of_several_senders_never_interleave,
        a_lone_sender_is_never_held_back,
        round_robin_gives_each_line_to_exactly_one_worker,
        a_worker_that_dies_holding_a_line_gives_it_to_another,
        a_lossy_receiver_never_slows_the_sender,
        a_private_topic_is_its_owners_until_listed,
        a_public_topics_list_belongs_to_who_set_it,
        patterns_reach_only_topics_their_user_may_use,
        a_list_change_on_a_live_topic_detaches_patterns_at_once,
        an_access_change_on_a_live_topic_removes_a_sub_no_longer_allowed,
        an_access_change_leaves_clients_still_allowed_alone,
        an_access_change_removes_a_waiting_pub_and_a_streaming_one,
        an_access_change_removes_a_pipe,
        an_access_change_ends_a_pattern_sub_that_received_from_the_topic,
        a_public_list_set_by_a_joiner_removes_clients_it_does_not_name,
        topics_per_user_are_bounded_apart_from_the_server_bound,
        topics_are_bounded_and_freed_when_empty,
    ],
    real: [
        a_queued_message_goes_only_to_a_reader_the_list_allows_when_read,
        a_public_pub_q_keeps_its_list_with_the_message_until_read,
        queued_messages_wait_and_go_to_exactly_one_sub,
        a_pub_q_with_a_receiver_goes_live,
        a_message_queued_while_a_keep_alive_sub_is_live_reaches_it,
        a_sub_that_leaves_mid_message_puts_it_back,
        two_concurrent_pub_q_never_both_pass_a_quota,
        a_list_change_mid_message_stops_the_reader_and_keeps_the_message,
        a_stored_list_survives_a_restart,
    ],
}
