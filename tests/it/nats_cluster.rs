//! The NATS test cluster itself (tests/common/nats.rs), proven with a real
//! client (async-nats) before the several-nodes tests lean on it: a
//! replicated KV bucket is shared by all servers, survives losing one of
//! three, fails while all are down and serves again once they are back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::future::Future;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv, stream::StorageType};
use async_nats::{Client, ConnectOptions, ServerAddr};
use bytes::Bytes;
use common::WAIT;
use common::nats::{MIN_VERSION, NatsCluster, parse_version};

const BUCKET: &str = "harness";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client of `urls` (comma-separated), reconnecting every 100 ms so a
/// restarted cluster is found quickly.
async fn connect(urls: &str) -> Result<Client, async_nats::ConnectError> {
    let addrs: Vec<ServerAddr> = urls.split(',').map(|u| u.parse().unwrap()).collect();
    ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(addrs)
        .await
}

/// JetStream requests that give up after 2 s instead of 10.
fn js(client: Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(client)
}

/// Retried (bounded): a cluster that has just started may still be
/// electing its JetStream meta leader, and the request then times out or
/// finds no responders (CI saw it once). Creating the same bucket again
/// is a no-op, so a try that timed out but took effect does no harm.
async fn create_bucket(js: &jetstream::Context) -> kv::Store {
    retry(&format!("create R3 bucket {BUCKET}"), || {
        js.create_key_value(kv::Config {
            bucket: BUCKET.to_string(),
            num_replicas: 3,
            storage: StorageType::File,
            ..Default::default()
        })
    })
    .await
}

/// Retries `f` until it gives `Ok`, for at most `WAIT`; panics with the last
/// error. For the seconds a stream needs to elect a new leader.
async fn retry<T, E: std::fmt::Display, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        let last = match f().await {
            Ok(v) => return v,
            Err(e) => e.to_string(),
        };
        assert!(
            start.elapsed() < WAIT,
            "{what}: still failing after {} s: {last}",
            WAIT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `key`'s value, once it reads `want` (bounded).
async fn read_until(kv: &kv::Store, key: &str, want: &str, what: &str) {
    retry(what, || async {
        match kv.get(key).await {
            Ok(Some(v)) if v == want.as_bytes() => Ok(()),
            Ok(other) => Err(format!("read {other:?}, want {want:?}")),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
}

#[test]
fn version_check() {
    assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15)));
    assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9)));
    assert_eq!(parse_version("v2.11.0-RC.1"), Some((2, 11)));
    assert_eq!(parse_version("garbage"), None);
    assert!((2, 9) < MIN_VERSION && (2, 15) >= MIN_VERSION);
}

#[test]
fn a_value_put_through_server_1_is_read_through_server_3() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    let urls = nats.urls();
    let parts: Vec<&str> = urls.split(',').collect();
    assert_eq!(parts.len(), 3, "{urls}");
    for (i, u) in parts.iter().enumerate() {
        assert_eq!(*u, nats.url(i));
        assert!(u.starts_with("nats://127.0.0.1:"), "{u}");
    }
    runtime().block_on(async {
        let c1 = connect(&nats.url(0)).await.unwrap();
        assert_eq!(c1.server_info().server_name, nats.name(0));
        let js1 = js(c1);
        let kv1 = create_bucket(&js1).await;
        retry("the first put", || {
            kv1.put("greeting", Bytes::from_static(b"hello"))
        })
        .await;

        let c3 = connect(&nats.url(2)).await.unwrap();
        assert_eq!(c3.server_info().server_name, nats.name(2));
        let js3 = js(c3);
        // Server 3 may learn of the new bucket a moment after server 1
        // acknowledged it ("no responders" until then).
        let kv3 = retry("the bucket through server 3", || js3.get_key_value(BUCKET)).await;
        read_until(&kv3, "greeting", "hello", "the value through server 3").await;
        // Replicated on all three, not a single copy on one server.
        let mut stream = js3.get_stream(format!("KV_{BUCKET}")).await.unwrap();
        let cluster = stream.info().await.unwrap().cluster.clone().unwrap();
        let mut members: Vec<String> = cluster.replicas.iter().map(|p| p.name.clone()).collect();
        members.extend(cluster.leader);
        members.sort();
        assert_eq!(members, ["n1", "n2", "n3"]);
    });
    // The same client list a node gets with --broker.
    runtime().block_on(async {
        let c = connect(&nats.urls()).await.unwrap();
        let ctx = js(c);
        let kv = retry("the bucket", || ctx.get_key_value(BUCKET)).await;
        assert_eq!(
            kv.get("greeting").await.unwrap().as_deref(),
            Some(&b"hello"[..])
        );
    });
}

#[test]
fn losing_one_server_of_three_changes_nothing_and_it_catches_up() {
    let Some(mut nats) = NatsCluster::start(3) else {
        return;
    };
    let rt = runtime();
    let kv = rt.block_on(async {
        let kv = create_bucket(&js(connect(&nats.url(0)).await.unwrap())).await;
        // A new stream may still be settling ("stream not found").
        retry("the first put", || kv.put("k", Bytes::from_static(b"v1"))).await;
        kv
    });
    // The worst one to lose: the bucket's stream leader.
    let mut victim = None;
    common::wait_until("the bucket's stream leader", || {
        victim = nats.stream_leader(&format!("KV_{BUCKET}"));
        victim.is_some()
    });
    let victim = victim.unwrap();
    let survivor = (victim + 1) % 3;
    let other = (victim + 2) % 3;
    drop(kv);
    nats.kill(victim);
    assert!(!nats.is_running(victim));
    rt.block_on(async {
        let c = connect(&nats.url(survivor)).await.unwrap();
        assert_eq!(c.server_info().server_name, nats.name(survivor));
        // The bucket's stream elects a new leader first.
        let ctx = js(c);
        let kv = retry("the bucket through a survivor", || {
            ctx.get_key_value(BUCKET)
        })
        .await;
        read_until(&kv, "k", "v1", "the old value through a survivor").await;
        retry("a put with one server of three gone", || {
            kv.put("k", Bytes::from_static(b"v2"))
        })
        .await;
        read_until(&kv, "k", "v2", "the new value through a survivor").await;

        let c = connect(&nats.url(other)).await.unwrap();
        let ctx = js(c);
        let kv = retry("the bucket", || ctx.get_key_value(BUCKET)).await;
        read_until(&kv, "k", "v2", "the new value through the other survivor").await;
    });
    assert!(
        connect_fails(&rt, &nats.url(victim)),
        "{} was killed, yet it answers",
        nats.name(victim)
    );

    // Back on its own port and store, it has the put it missed.
    nats.start_one(victim);
    rt.block_on(async {
        let c = connect(&nats.url(victim)).await.unwrap();
        assert_eq!(c.server_info().server_name, nats.name(victim));
        let ctx = js(c);
        let kv = retry("the bucket", || ctx.get_key_value(BUCKET)).await;
        read_until(
            &kv,
            "k",
            "v2",
            "the missed put through the restarted server",
        )
        .await;
    });
}

fn connect_fails(rt: &tokio::runtime::Runtime, url: &str) -> bool {
    rt.block_on(connect(url)).is_err()
}

#[test]
fn with_every_server_stopped_requests_fail_and_after_start_all_they_work() {
    let Some(mut nats) = NatsCluster::start(3) else {
        return;
    };
    let rt = runtime();
    let client = rt.block_on(connect(&nats.urls())).unwrap();
    let kv = rt.block_on(async {
        let kv = create_bucket(&js(client.clone())).await;
        retry("the first put", || kv.put("k", Bytes::from_static(b"kept"))).await;
        kv
    });

    nats.stop_all();
    assert!((0..3).all(|i| !nats.is_running(i)));
    rt.block_on(async {
        let got = tokio::time::timeout(WAIT, kv.get("k"))
            .await
            .expect("a request to a stopped cluster ends (JetStream timeout: 2 s)");
        assert!(got.is_err(), "a get with no server up gave {got:?}");
    });
    assert!(
        connect_fails(&rt, &nats.urls()),
        "a stopped cluster takes connections"
    );

    nats.start_all();
    assert!((0..3).all(|i| nats.is_running(i)));
    rt.block_on(async {
        // The old client reconnects by itself; the file store kept the value.
        read_until(&kv, "k", "kept", "the value after start_all, old client").await;
        retry("a put after start_all", || {
            kv.put("k", Bytes::from_static(b"new"))
        })
        .await;
        let fresh = connect(&nats.urls()).await.unwrap();
        let ctx = js(fresh);
        let kv = retry("the bucket", || ctx.get_key_value(BUCKET)).await;
        read_until(&kv, "k", "new", "the new value, new client").await;
    });
    drop(client);
}
