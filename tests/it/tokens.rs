//! HTTP identity with tokens (SPEC §11.1), tried as a hostile user would:
//! two users and an anonymous key over SSH, HTTP clients with and without
//! tokens through GET, POST, SSE and WebSocket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use common::{Key, TestServer, WAIT};
use futures_util::{SinkExt as _, StreamExt as _};
use sshpipe::identity::AuthMode;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// alice and bob from the users file (root is an admin), plus any
/// unlisted key as an anonymous `fp-…` user; HTTP on.
struct World {
    server: TestServer,
    alice: Key,
    bob: Key,
    root: Key,
    anon: Key,
    http: reqwest::Client,
}

fn world(auth: AuthMode, anonymous: Option<bool>) -> World {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let bob = Key::new(dir.path(), "bob");
    let root = Key::new(dir.path(), "root");
    let anon = Key::new(dir.path(), "anon");
    let users = format!(
        "[users.alice]\nkeys = [\"{}\"]\n\n[users.bob]\nkeys = [\"{}\"]\n\n[users.root]\nkeys = [\"{}\"]\nadmin = true\n",
        alice.public, bob.public, root.public
    );
    let users_file = dir.path().join("users.toml");
    std::fs::write(&users_file, users).unwrap();
    let mut opts = common::options_for(&dir.path().join("data"));
    opts.users = Some(users_file);
    opts.auth = auth;
    opts.http_listen = Some("127.0.0.1:0".parse().unwrap());
    opts.http.anonymous = anonymous;
    World {
        server: TestServer::from_options(opts, dir),
        alice,
        bob,
        root,
        anon,
        http: reqwest::Client::new(),
    }
}

impl World {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.http_addr.unwrap())
    }

    fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.server.http_addr.unwrap())
    }

    /// `token create ARGS` as `key`; returns (secret, id).
    fn token(&self, key: &Key, args: &[&str]) -> (String, String) {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        let out = self.server.run(key, &all, b"");
        out.expect_code(0);
        let secret = out.stdout_str().trim().to_string();
        assert!(secret.starts_with("sp_") && secret.len() == 46, "{secret}");
        let id = out
            .stderr
            .split_whitespace()
            .nth(1)
            .expect("token ID in the note")
            .to_string();
        (secret, id)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut r = self.http.get(self.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        within("GET", r.send()).await.unwrap()
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &'static str) -> reqwest::Response {
        let mut r = self.http.post(self.url(path)).body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        within("POST", r.send()).await.unwrap()
    }

    async fn ws(&self, path: &str) -> Ws {
        let (ws, _) = within(
            "websocket",
            tokio_tungstenite::connect_async(self.ws_url(path)),
        )
        .await
        .expect("websocket handshake");
        ws
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for: {what}"))
}

/// Status and body of a finished answer.
async fn answer(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

async fn ws_close(ws: &mut Ws) -> (u16, String) {
    within("a close frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(f)))) => {
                    return (u16::from(f.code), f.reason.as_str().to_string());
                }
                Some(Ok(_)) => continue,
                other => panic!("socket ended without a close frame: {other:?}"),
            }
        }
    })
    .await
}

async fn ws_data(ws: &mut Ws) -> Vec<u8> {
    within("a data message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.as_bytes().to_vec(),
                Some(Ok(Message::Binary(b))) => return b.to_vec(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected data, got {other:?}"),
            }
        }
    })
    .await
}

/// Attack: every HTTP client was `@http`, so an HTTP client's `?access=`
/// owned the list for all of them. Now an anonymous client cannot set one,
/// and a token's list keeps other HTTP clients out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_http_cannot_set_or_share_access_lists() {
    let w = world(AuthMode::Open, None);
    for path in ["/topic/club?access=bob", "/sse/club?access=bob"] {
        let (status, body) = answer(w.get(path, None).await).await;
        assert_eq!(
            (status, body.as_str()),
            (403, "access lists need a token\n"),
            "{path}"
        );
    }
    let (status, body) = answer(w.post("/topic/club?access=bob", None, "x").await).await;
    assert_eq!(
        (status, body.as_str()),
        (403, "access lists need a token\n")
    );
    let mut ws = w.ws("/socket/club?access=bob").await;
    assert_eq!(
        ws_close(&mut ws).await,
        (1008, "access lists need a token".into())
    );
    assert!(
        w.server
            .counts("public/club")
            .is_none_or(|c| c.receivers == 0)
    );

    // alice's token sets a list on a public topic: anonymous HTTP clients
    // and bob's token are refused, and cannot replace it.
    let (alice_t, _) = w.token(&w.alice, &[]);
    let (bob_t, _) = w.token(&w.bob, &[]);
    let _owner = w
        .get(
            "/topic/club?public=true&persist=true&access=root",
            Some(&alice_t),
        )
        .await;
    w.server.wait_receivers("public/club", 1);
    let (status, _) = answer(w.get("/topic/club", None).await).await;
    assert_eq!(status, 403);
    let (status, _) = answer(w.post("/pubsub/club", None, "x").await).await;
    assert_eq!(status, 403);
    let (status, _) = answer(w.get("/topic/public/club?access=bob", Some(&bob_t)).await).await;
    assert_eq!(status, 403);
    let (status, _) = answer(w.post("/pubsub/club?public=true", Some(&bob_t), "x").await).await;
    assert_eq!(status, 403);
    // root, on the list, gets in over SSH.
    w.server
        .run(&w.root, &["pub", "-p", "-c", "-b=false", "club"], b"hi\n")
        .expect_code(0);
}

/// A token acts as its user: `/topic/logs` is the user's own `logs`, in `ls`
/// as `USER(token NAME)`; another user's token cannot reach it, and an
/// anonymous client's `/topic/alice/logs` is only the public topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_reach_private_topics_as_their_user() {
    let w = world(AuthMode::Open, None);
    let (alice_t, _) = w.token(&w.alice, &["--name", "ci"]);
    let (bob_t, _) = w.token(&w.bob, &[]);
    let (anon_t, _) = w.token(&w.anon, &[]);
    let mut sub = w.get("/topic/logs?persist=true", Some(&alice_t)).await;
    assert_eq!(sub.status(), 200);
    w.server.wait_receivers("alice/logs", 1);
    let ls = w.server.run(&w.alice, &["ls"], b"");
    assert!(
        ls.stdout_str().contains("alice(token ci)@127.0.0.1:"),
        "{}",
        ls.stdout_str()
    );
    let out = w
        .server
        .run(&w.alice, &["pub", "-c", "logs"], b"secret line\n");
    out.expect_code(0);
    let chunk = within("GET body", sub.chunk()).await.unwrap().unwrap();
    assert_eq!(&chunk[..], b"secret line\n");

    // bob's token, typed as alice's full name: denied, like over SSH.
    let (status, body) = answer(w.get("/topic/alice/logs", Some(&bob_t)).await).await;
    assert_eq!((status, body.as_str()), (403, "access denied\n"));
    let (status, _) = answer(w.post("/topic/alice/logs", Some(&bob_t), "x").await).await;
    assert_eq!(status, 403);
    let mut ws = w.ws(&format!("/socket/alice/logs?token={bob_t}")).await;
    assert_eq!(ws_close(&mut ws).await, (1008, "access denied".into()));
    // An anonymous key's token works in its own fp- namespace.
    let _anon_sub = w.get("/topic/mine?persist=true", Some(&anon_t)).await;
    w.server
        .wait_receivers(&format!("{}/mine", w.anon.anonymous_name()), 1);
    // Without a token, alice/logs is only public/alice/logs.
    let _public = w.get("/topic/alice/logs?persist=true", None).await;
    w.server.wait_receivers("public/alice/logs", 1);
    assert_eq!(w.server.counts("alice/logs").map(|c| c.receivers), Some(1));
    drop(sub);
}

/// Wrong, expired and revoked tokens are 401; `token rm` closes the GET,
/// SSE and WebSocket streams using the token at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_are_401_and_rm_closes_streams() {
    let w = world(AuthMode::Open, None);
    let fake = format!("sp_{}", "A".repeat(43));
    for t in ["nonsense", fake.as_str()] {
        let (status, body) = answer(w.get("/topic/x", Some(t)).await).await;
        assert_eq!((status, body.as_str()), (401, "invalid token\n"));
        let (status, _) = answer(w.get(&format!("/sse/x?token={t}"), None).await).await;
        assert_eq!(status, 401);
    }
    // An expiring token's socket is closed at expiry; then it is 401.
    let (short, _) = w.token(&w.alice, &["--expires", "3s"]);
    let mut ws = w.ws(&format!("/socket/soon?token={short}")).await;
    assert_eq!(ws_close(&mut ws).await, (1008, "token expired".into()));
    let (status, body) = answer(w.get("/topic/x", Some(&short)).await).await;
    assert_eq!((status, body.as_str()), (401, "token expired\n"));

    let (t, id) = w.token(&w.alice, &["--name", "feeds"]);
    let mut get = w.get("/topic/feed?persist=true", Some(&t)).await;
    let mut sse = w
        .get(&format!("/sse/feed?persist=true&token={t}"), None)
        .await;
    let mut ws = w.ws(&format!("/socket/feed?token={t}")).await;
    w.server.wait_receivers("alice/feed", 3);
    // Another user cannot revoke it; it does not exist for them.
    let out = w.server.run(&w.bob, &["token", "rm", &id], b"");
    out.expect_code(1);
    assert!(
        out.stderr.contains(&format!("no token with id {id}")),
        "{}",
        out.stderr
    );
    let out = w.server.run(&w.alice, &["token", "rm", &id], b"");
    out.expect_code(0);
    assert!(out.stderr.contains("revoked"), "{}", out.stderr);
    assert_eq!(ws_close(&mut ws).await, (1008, "token revoked".into()));
    while within("GET body to end", get.chunk())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    while within("SSE body to end", sse.chunk())
        .await
        .ok()
        .flatten()
        .is_some()
    {}
    w.server
        .wait_counts("alice/feed", "no receivers left", |c| c.receivers == 0);
    let (status, body) = answer(w.get("/topic/feed", Some(&t)).await).await;
    assert_eq!((status, body.as_str()), (401, "invalid token\n"));
}

/// A scope limits the topics; `--read-only` allows GET, SSE and receiving
/// on a socket, never sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scope_and_read_only() {
    let w = world(AuthMode::Open, None);
    let (t, _) = w.token(&w.alice, &["--read-only", "--name", "dash", "logs/*"]);
    let (status, body) = answer(w.get("/topic/other", Some(&t)).await).await;
    assert_eq!(
        (status, body.as_str()),
        (403, "token out of scope: alice/other\n")
    );
    let (status, body) = answer(w.post("/topic/logs/a", Some(&t), "x").await).await;
    assert_eq!((status, body.as_str()), (403, "read-only token\n"));
    let (status, _) = answer(w.get("/topic/logs/a?public=true", Some(&t)).await).await;
    assert_eq!(status, 403, "public/logs/a is out of an alice/logs/* scope");

    let mut ws = w.ws(&format!("/socket/logs/a?token={t}")).await;
    w.server.wait_receivers("alice/logs/a", 1);
    w.server
        .run(&w.alice, &["pub", "-c", "logs/a"], b"to the dashboard\n")
        .expect_code(0);
    assert_eq!(ws_data(&mut ws).await, b"to the dashboard\n");
    ws.send(Message::text("a reply")).await.unwrap();
    assert_eq!(ws_close(&mut ws).await, (1008, "read-only token".into()));

    let ls = w.server.run(&w.alice, &["token", "ls"], b"");
    ls.expect_code(0);
    let text = ls.stdout_str();
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("dash") && text.contains("alice/logs/* (read-only)"),
        "{text}"
    );
    // Admins see everyone's; others may not ask.
    w.server
        .run(&w.bob, &["token", "ls", "--all"], b"")
        .expect_code(1);
    let all = w.server.run(&w.root, &["token", "ls", "--all"], b"");
    assert!(all.stdout_str().contains("alice"), "{}", all.stdout_str());
    // Bad input is one line and the usage, exit 2.
    let out = w
        .server
        .run(&w.alice, &["token", "create", "--expires", "soon"], b"");
    out.expect_code(2);
    assert!(
        out.stderr.starts_with("token create: invalid duration"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("usage: token create"), "{}", out.stderr);
}

/// `--auth users` closes HTTP to clients without a token (401), yet
/// `/healthz` answers; `--http-anonymous true` opens public topics again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_users_needs_a_token_over_http() {
    let w = world(AuthMode::Users, None);
    for path in ["/topic/x", "/sse/x"] {
        let r = w.get(path, None).await;
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let (status, _) = answer(w.post("/pubsub/x", None, "x").await).await;
    assert_eq!(status, 401);
    assert_eq!(answer(w.get("/healthz", None).await).await.0, 200);
    let (t, _) = w.token(&w.alice, &[]);
    let (status, body) = answer(w.post("/pubsub/x", Some(&t), "x").await).await;
    assert_eq!((status, body.as_str()), (200, "msg sent!\n"));

    let open = world(AuthMode::Users, Some(true));
    let (status, _) = answer(open.post("/pubsub/x", None, "x").await).await;
    assert_eq!(status, 200);
}

/// One user cannot make tokens without bound, and a free anonymous key
/// gets fewer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_user_are_bounded() {
    use sshpipe::tokens::{MAX_TOKENS_PER_ANONYMOUS, MAX_TOKENS_PER_USER, NewToken};
    let w = world(AuthMode::Open, None);
    let bob = sshpipe::identity::Identity {
        name: "bob".into(),
        fingerprint: w.bob.fingerprint.clone(),
        admin: false,
        anonymous: false,
    };
    for _ in 0..MAX_TOKENS_PER_USER - 1 {
        // In-process, so the test does not pay for 50 SSH logins.
        w.server
            .app
            .tokens
            .create(&bob, NewToken::default())
            .await
            .unwrap();
    }
    w.token(&w.bob, &[]);
    let out = w.server.run(&w.bob, &["token", "create"], b"");
    out.expect_code(1);
    assert_eq!(
        out.stderr.trim(),
        format!(
            "too many tokens for bob (limit {MAX_TOKENS_PER_USER}); remove one with token rm ID"
        )
    );
    for _ in 0..MAX_TOKENS_PER_ANONYMOUS {
        w.token(&w.anon, &[]);
    }
    let out = w.server.run(&w.anon, &["token", "create"], b"");
    out.expect_code(1);
    assert!(
        out.stderr.starts_with("too many tokens for fp-"),
        "{}",
        out.stderr
    );
    // Others are not affected.
    w.token(&w.alice, &[]);
}

/// A WebSocket message over the limit closes with 1009 and a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_message_over_the_limit_closes_1009() {
    let w = world(AuthMode::Open, None);
    let mut ws = w.ws("/socket/big").await;
    w.server.wait_receivers("public/big", 1);
    let _ = ws.send(Message::binary(vec![b'x'; 2 << 20])).await;
    let (code, reason) = ws_close(&mut ws).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("message too big"), "{reason}");
}

/// Tokens survive a restart; the store holds only their hashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_a_restart_as_hashes_only() {
    let outer = tempfile::tempdir().unwrap();
    let data = outer.path().join("data");
    let key = Key::new(outer.path(), "k");
    let start = || {
        let mut opts = common::options_for(&data);
        opts.http_listen = Some("127.0.0.1:0".parse().unwrap());
        TestServer::from_options(opts, tempfile::tempdir().unwrap())
    };
    let first = start();
    let out = first.run(&key, &["token", "create"], b"");
    out.expect_code(0);
    let secret = out.stdout_str().trim().to_string();
    first.stop();
    let store = std::fs::read(data.join("sshpipe.redb")).unwrap();
    assert!(
        !store.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the secret itself is in the store"
    );
    let second = start();
    let r = reqwest::Client::new()
        .post(format!("http://{}/pubsub/t", second.http_addr.unwrap()))
        .bearer_auth(&secret)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
