//! The HTTP side door (SPEC §11) with real clients: reqwest for streaming
//! GET/POST and SSE, tokio-tungstenite for WebSockets, and the real `ssh`
//! binary on the other end of the same public topics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::{Read, Write};
use std::process::Child;
use std::thread::{self, JoinHandle};

use bytes::Bytes;
use common::{Config, TestServer, WAIT, collect, random_bytes, sha256};
use futures_util::{SinkExt as _, StreamExt as _};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn server() -> TestServer {
    TestServer::with(Config {
        http: true,
        ..Config::default()
    })
}

fn url(server: &TestServer, path: &str) -> String {
    format!("http://{}{path}", server.http_addr.expect("http on"))
}

fn ws_url(server: &TestServer, path: &str) -> String {
    format!("ws://{}{path}", server.http_addr.expect("http on"))
}

/// Bounds an await by the harness's wait, failing with context.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

/// Runs a blocking harness wait without stalling the test's runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// Reads a child's stdout on a thread, hashing it.
fn hash_stdout(child: &mut Child) -> JoinHandle<(usize, String)> {
    let mut out = child.stdout.take().expect("stdout piped");
    thread::spawn(move || {
        let (mut hasher, mut total, mut buf) = (Sha256::new(), 0, vec![0u8; 64 * 1024]);
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n;
                }
            }
        }
        (total, format!("{:x}", hasher.finalize()))
    })
}

/// Waits for a child whose stdout is read elsewhere; it must exit 0.
fn exits_zero(mut child: Child, what: &str) {
    let status = common::wait_child(&mut child, what);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(status.success(), "{what}: {status}; stderr: {stderr}");
}

async fn ws_connect(server: &TestServer, path: &str) -> Ws {
    let (ws, _) = within(
        "websocket connect",
        tokio_tungstenite::connect_async(ws_url(server, path)),
    )
    .await
    .expect("websocket handshake");
    ws
}

/// The next data or close message, skipping pings and pongs.
async fn ws_next(ws: &mut Ws) -> Message {
    within("a websocket message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(m)) => return m,
                other => panic!("websocket ended: {other:?}"),
            }
        }
    })
    .await
}

async fn ws_text(ws: &mut Ws) -> String {
    match ws_next(ws).await {
        Message::Text(t) => t.as_str().to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

async fn ws_close_code(ws: &mut Ws) -> (u16, String) {
    loop {
        match ws_next(ws).await {
            Message::Close(Some(f)) => return (u16::from(f.code), f.reason.as_str().to_string()),
            Message::Close(None) => panic!("close frame without a code"),
            _ => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_404_405_and_cors() {
    let server = server();
    let client = reqwest::Client::new();
    let r = client.get(url(&server, "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.text().await.unwrap(), "ok\n");

    let r = client.get(url(&server, "/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");

    for path in ["/topic/x", "/pubsub/x", "/sse/x", "/socket/x"] {
        let r = client.delete(url(&server, path)).send().await.unwrap();
        assert_eq!(r.status(), 405, "{path}");
        let allow = r.headers()["allow"].to_str().unwrap().to_string();
        assert!(allow.contains("GET"), "{path}: Allow: {allow}");
        assert_eq!(
            allow.contains("POST"),
            path.contains("topic") || path.contains("pubsub")
        );
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
    }

    let r = client
        .request(reqwest::Method::OPTIONS, url(&server, "/topic/x"))
        .header("origin", "http://example.com")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_with_the_reason() {
    let server = server();
    let client = reqwest::Client::new();
    let cases = [
        (
            "GET",
            "/topic/a//b",
            "invalid topic name: \"a//b\": empty segment",
        ),
        (
            "POST",
            "/topic/a//b",
            "invalid topic name: \"a//b\": empty segment",
        ),
        (
            "GET",
            "/topic/",
            "invalid topic name: \"\": a name must not be empty",
        ),
        ("GET", "/sse/a%20b", "invalid topic name: \"a b\""),
        (
            "GET",
            "/pubsub/a/",
            "invalid topic name: \"a/\": empty segment",
        ),
        ("GET", "/topic/logs-*", "only allowed in sub patterns"),
        (
            "POST",
            "/topic/t?timeout=soon",
            "invalid value for timeout: \"soon\"",
        ),
        (
            "GET",
            "/topic/t?persist=maybe",
            "invalid value for persist: \"maybe\"",
        ),
        (
            "GET",
            "/topic/t?access=not%20a%20name",
            "invalid access list entry",
        ),
    ];
    for (method, path, reason) in cases {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let r = client.request(m, url(&server, path)).send().await.unwrap();
        assert_eq!(r.status(), 400, "{method} {path}");
        let body = r.text().await.unwrap();
        assert!(body.contains(reason), "{method} {path}: {body}");
        assert!(
            body.ends_with('\n') && body.lines().count() == 1,
            "{body:?}"
        );
    }
    // A WebSocket on a bad topic is refused before the upgrade.
    let err = tokio_tungstenite::connect_async(ws_url(&server, "/socket/a//b"))
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 400),
        other => panic!("expected HTTP 400, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_streams_an_ssh_pub_with_headers_sent_at_once() {
    let server = server();
    let alice = server.key("alice");
    let client = reqwest::Client::new();
    // Headers arrive while nothing has been published yet.
    let mut r = within(
        "response headers",
        client.get(url(&server, "/topic/news")).send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(server.counts("public/news").unwrap().receivers, 1);

    let mut publisher = server.spawn(&alice, &["pub", "-p", "-c", "news"]);
    let mut stdin = publisher.stdin.take().unwrap();
    stdin.write_all(b"first\n").unwrap();
    // Chunks are flushed as they arrive, before the pub ends.
    let chunk = within("first chunk", r.chunk()).await.unwrap().unwrap();
    assert_eq!(&chunk[..], b"first\n");
    stdin.write_all(b"second\n").unwrap();
    drop(stdin);
    let mut rest = Vec::new();
    while let Some(c) = within("rest of body", r.chunk()).await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second\n");
    collect(publisher, "ssh pub").expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mime_and_persist() {
    let server = server();
    let alice = server.key("alice");
    let client = reqwest::Client::new();
    let path = "/topic/feed?persist=true&mime=application/ld+json";
    let mut r = client.get(url(&server, path)).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/ld+json");
    for msg in ["one\n", "two\n"] {
        let child = server.spawn(&alice, &["pub", "-p", "-c", "feed"]);
        let out = blocking(move || common::finish(child, msg.as_bytes(), "ssh pub")).await;
        out.expect_code(0);
        let chunk = within("chunk", r.chunk()).await.unwrap().unwrap();
        assert_eq!(&chunk[..], msg.as_bytes());
    }
    // Both senders left, and the persistent GET is still a receiver.
    assert_eq!(server.counts("public/feed").unwrap().receivers, 1);
    assert_eq!(server.counts("public/feed").unwrap().senders, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_drains_messages_queued_over_ssh_in_order() {
    // Same broker, same semantics (SPEC §11): a GET is `sub -p`, so it takes
    // the oldest queued message and ends, like `ssh host sub -p files`.
    let server = server();
    let alice = server.key("alice");
    for msg in ["file a\n", "file b\n"] {
        let child = server.spawn(&alice, &["pub", "-q", "-p", "-c", "files"]);
        let out = blocking(move || common::finish(child, msg.as_bytes(), "ssh pub -q")).await;
        out.expect_code(0);
    }
    assert_eq!(server.app.broker.queued("public/files").0, 2);
    let client = reqwest::Client::new();
    for expected in ["file a\n", "file b\n"] {
        let body = within("GET of a queued message", async {
            let r = client
                .get(url(&server, "/topic/files"))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        })
        .await;
        assert_eq!(body, expected);
    }
    assert_eq!(server.app.broker.queued("public/files").0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_64_mib_reaches_an_ssh_sub_byte_exact() {
    let server = server();
    let bob = server.key("bob");
    let data = Bytes::from(random_bytes(64 << 20, 7));
    let expected = sha256(&data);
    let mut sub = server.spawn(&bob, &["sub", "-p", "big"]);
    let hashed = hash_stdout(&mut sub);
    server.wait_receivers("public/big", 1);
    // Sent as a chunked stream, so the server never sees a Content-Length.
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(1 << 20)
        .map(|c| Ok(data.slice_ref(c)))
        .collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let r = reqwest::Client::new()
        .post(url(&server, "/topic/big"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "msg sent!\n");
    let (len, got) = blocking(move || hashed.join().unwrap()).await;
    assert_eq!((len, got), (data.len(), expected));
    blocking(move || exits_zero(sub, "ssh sub")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_pub_64_mib_reaches_a_get_byte_exact() {
    let server = server();
    let alice = server.key("alice");
    let data = random_bytes(64 << 20, 11);
    let expected = sha256(&data);
    let mut r = reqwest::Client::new()
        .get(url(&server, "/topic/big?mime=application/octet-stream"))
        .send()
        .await
        .unwrap();
    let publisher = server.spawn(&alice, &["pub", "-p", "-c", "big"]);
    let feeding = thread::spawn(move || common::finish(publisher, &data, "ssh pub"));
    let (mut hasher, mut len) = (Sha256::new(), 0);
    while let Some(c) = within("body chunk", r.chunk()).await.unwrap() {
        hasher.update(&c);
        len += c.len();
    }
    assert_eq!(
        (len, format!("{:x}", hasher.finalize())),
        (64 << 20, expected)
    );
    blocking(move || feeding.join().unwrap())
        .await
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_post_times_out_504_and_pubsub_post_does_not_wait() {
    let server = server();
    let client = reqwest::Client::new();
    let r = client
        .post(url(&server, "/topic/nobody?timeout=200ms"))
        .body("lost")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.text().await.unwrap(), "timeout reached, exiting\n");

    let r = within(
        "non-blocking post",
        client
            .post(url(&server, "/pubsub/nobody"))
            .body("dropped")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);

    // GET /pubsub is a sub too: it gets what a non-blocking POST sends.
    let mut get = client
        .get(url(&server, "/pubsub/room"))
        .send()
        .await
        .unwrap();
    server.wait_receivers("public/room", 1);
    let r = client
        .post(url(&server, "/pubsub/room"))
        .body("hi\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        &within("chunk", get.chunk()).await.unwrap().unwrap()[..],
        b"hi\n"
    );
}

/// A key whose fingerprint has a `+` or `/`, so `?access=` must keep it.
fn awkward_key(server: &TestServer) -> common::Key {
    (0..20)
        .map(|i| server.key(&format!("k{i}")))
        .find(|k| k.fingerprint.contains('+') || k.fingerprint.contains('/'))
        .expect("a fingerprint with + or / in 20 tries")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_lists_403_and_close_1008() {
    let server = server();
    let alice = server.key("alice");
    let client = reqwest::Client::new();
    // An SSH user's list on a public topic keeps HTTP clients out.
    let mut owner = server.spawn(&alice, &["sub", "-p", "-k", "-a", "bob", "club"]);
    server.wait_receivers("public/club", 1);
    for (m, path) in [
        ("GET", "/topic/club"),
        ("POST", "/topic/club"),
        ("GET", "/sse/club"),
    ] {
        let m = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = client.request(m, url(&server, path)).send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(r.text().await.unwrap(), "access denied\n");
    }
    let mut ws = ws_connect(&server, "/socket/club?status=true").await;
    assert_eq!(ws_text(&mut ws).await, "access denied");
    assert_eq!(
        ws_close_code(&mut ws).await,
        (1008, "access denied".to_string())
    );
    owner.kill().unwrap();
    let _ = owner.wait();

    // Without a token an HTTP client may not set a list (SPEC §11.1).
    let friend = awkward_key(&server);
    let stranger = server.key("stranger");
    let path = format!("/topic/den?persist=true&access={}", friend.fingerprint);
    let r = client.get(url(&server, &path)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "access lists need a token\n");
    // With one, its ?access= (a raw fingerprint, `+` and `/` unescaped)
    // owns the list: that key gets in, others do not.
    let token = server.run(&alice, &["token", "create"], b"");
    token.expect_code(0);
    let token = token.stdout_str().trim().to_string();
    let _den = client
        .get(url(&server, &format!("{path}&public=true")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    server.wait_receivers("public/den", 1);
    let out = server.run(&stranger, &["pub", "-p", "den"], b"x");
    out.expect_code(1);
    assert!(out.stderr.contains("access denied"), "{}", out.stderr);
    server
        .run(&friend, &["pub", "-p", "-c", "den"], b"x\n")
        .expect_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_frames_one_event_per_line() {
    let server = server();
    let alice = server.key("alice");
    let mut r = reqwest::Client::new()
        .get(url(&server, "/sse/ticker"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    server.wait_receivers("public/ticker", 1);
    let input = b"one\ntwo\r\n\nthree and a ".to_vec();
    let out = blocking({
        let child = server.spawn(&alice, &["pub", "-p", "-c", "ticker"]);
        move || common::finish(child, &[&input[..], b"half"].concat(), "ssh pub")
    })
    .await;
    out.expect_code(0);
    let mut body = Vec::new();
    while let Some(c) = within("sse body", r.chunk()).await.unwrap() {
        body.extend_from_slice(&c);
    }
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "data: one\n\ndata: two\n\ndata: three and a half\n\n"
    );
}

/// A stream without newlines must not make the server hold it whole for an
/// SSE client (it used to: 200 MB without a newline peaked at 420 MB RSS):
/// it goes out as 1 MiB events, and the tail as the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_splits_a_line_without_newlines_into_1_mib_events() {
    let server = server();
    let alice = server.key("alice");
    let mut r = reqwest::Client::new()
        .get(url(&server, "/sse/flood"))
        .send()
        .await
        .unwrap();
    server.wait_receivers("public/flood", 1);
    let mut input = vec![b'x'; 3 << 20];
    input.extend_from_slice(b"tail");
    let out = blocking({
        let child = server.spawn(&alice, &["pub", "-p", "-c", "flood"]);
        move || common::finish(child, &input, "ssh pub")
    })
    .await;
    out.expect_code(0);
    let mut body = Vec::new();
    while let Some(c) = within("sse body", r.chunk()).await.unwrap() {
        body.extend_from_slice(&c);
    }
    let body = String::from_utf8(body).unwrap();
    let events: Vec<&str> = body
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").unwrap())
        .collect();
    let sizes: Vec<usize> = events.iter().map(|e| e.len()).collect();
    assert_eq!(sizes, [1 << 20, 1 << 20, 1 << 20, 4]);
    assert_eq!(events[3], "tail");
    assert!(events[..3].iter().all(|e| e.bytes().all(|b| b == b'x')));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sockets_and_an_ssh_pipe_chat() {
    let server = server();
    let carol = server.key("carol");
    let mut a = ws_connect(&server, "/socket/chat").await;
    let mut b = ws_connect(&server, "/pipe/chat").await;
    server.wait_receivers("public/chat", 2);
    a.send(Message::text("hello from a\n")).await.unwrap();
    assert_eq!(ws_text(&mut b).await, "hello from a\n");
    b.send(Message::binary(&b"hi from b\n"[..])).await.unwrap();
    assert_eq!(ws_text(&mut a).await, "hi from b\n");

    let mut pipe = server.spawn(&carol, &["pipe", "-p", "chat"]);
    let mut stdout = pipe.stdout.take().unwrap();
    server.wait_receivers("public/chat", 3);
    let mut stdin = pipe.stdin.take().unwrap();
    stdin.write_all(b"from ssh\n").unwrap();
    assert_eq!(ws_text(&mut a).await, "from ssh\n");
    assert_eq!(ws_text(&mut b).await, "from ssh\n");
    a.send(Message::text("from a\n")).await.unwrap();
    let mut line = [0u8; 7];
    blocking(move || {
        stdout.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"from a\n");
    })
    .await;
    assert_eq!(ws_text(&mut b).await, "from a\n");
    drop(stdin);
    blocking(move || exits_zero(pipe, "ssh pipe")).await;
    a.close(None).await.unwrap();
    assert!(matches!(ws_next(&mut a).await, Message::Close(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_binary_replay_and_status() {
    let server = server();
    let port = server.addr.port();
    let mut s = ws_connect(&server, "/socket/opts?binary=true&replay=true&status=true").await;
    assert_eq!(ws_text(&mut s).await, "subscribe to this channel:");
    assert_eq!(
        ws_text(&mut s).await,
        format!("  ssh -p {port} testhost pipe -p opts")
    );
    let raw = vec![0u8, 255, 10, 128, 7];
    s.send(Message::binary(raw.clone())).await.unwrap();
    match ws_next(&mut s).await {
        Message::Binary(b) => assert_eq!(&b[..], &raw[..]),
        other => panic!("expected binary echo, got {other:?}"),
    }
    // A text socket without replay does not get its own message back.
    let mut t = ws_connect(&server, "/socket/opts").await;
    server.wait_receivers("public/opts", 2);
    t.send(Message::text("é€ ok\n")).await.unwrap();
    match ws_next(&mut s).await {
        Message::Binary(b) => assert_eq!(&b[..], "é€ ok\n".as_bytes()),
        other => panic!("expected binary, got {other:?}"),
    }
    s.send(Message::text("back\n")).await.unwrap();
    assert_eq!(ws_text(&mut t).await, "back\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_streams_and_closes_sockets_1001() {
    let server = server();
    let client = reqwest::Client::new();
    let mut get = client
        .get(url(&server, "/topic/bye?persist=true"))
        .send()
        .await
        .unwrap();
    let mut sse = client
        .get(url(&server, "/sse/bye?persist=true"))
        .send()
        .await
        .unwrap();
    let mut ws = ws_connect(&server, "/socket/bye").await;
    server.wait_receivers("public/bye", 3);
    // A blocking POST still waiting for a receiver is told why it ends.
    let waiting = tokio::spawn(client.post(url(&server, "/topic/nobody")).body("x").send());
    server.wait_waiting_pubs("public/nobody", 1);
    let stopping = tokio::task::spawn_blocking(move || server.stop());
    // The bodies end cleanly (a proper end of the chunked body, no error).
    assert!(within("GET end", get.chunk()).await.unwrap().is_none());
    while within("SSE end", sse.chunk()).await.unwrap().is_some() {}
    let (code, reason) = ws_close_code(&mut ws).await;
    assert_eq!(code, u16::from(CloseCode::Away));
    assert_eq!(reason, "server shutting down");
    let r = within("POST answer", waiting).await.unwrap().unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "server shutting down\n");
    within("server stop", stopping).await.unwrap();
}
