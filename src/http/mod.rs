//! The HTTP, WebSocket and SSE side door (SPEC §11).
//!
//! Browsers and `curl` meet SSH users on the same public topics, so this
//! module talks to the very same broker API as `ssh/` — `join`, `Publisher`,
//! `Subscription` — never an SSH hop. Each route is a thin mapping from a
//! request to one of `sub -p`, `pub -p` or `pipe -p`; the delivery rules
//! (blocking, ending, backpressure) all live in the broker.
//!
//! Who a request is comes first (`caller`): anonymous (`@http`, public
//! topics only, no access lists) or a token's user, who reaches their
//! topics as over SSH. The connections themselves are ours too (`accept`):
//! a cap, header and idle timeouts, TCP keepalive, and a share of file
//! descriptors HTTP can never take from SSH (`limits`, SPEC §11.2).

mod accept;
mod caller;
mod error;
mod limits;
mod query;
mod rss;
mod socket;
mod sse;
mod topic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use caller::{Caller, http_identity};
pub use error::HttpError;
pub use limits::{HttpLimits, connection_budget, raise_open_files_limit};
#[doc(hidden)] // public only for the fuzz targets in fuzz/
pub use query::Params;

use crate::app::App;
use crate::broker::{Client, Open, Pipe, PubEnd, Publisher, Reader};
use crate::front::{self, Prepared};
use crate::identity::Identity;
use crate::topic::{Resolver, TopicError, TopicRef};

/// How long open streams and sockets get to finish after shutdown starts
/// (inside the 10 s SPEC §2 allows for the whole exit).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(8);

/// What every handler needs.
#[derive(Clone)]
struct HttpState {
    app: Arc<App>,
    /// Upgraded WebSockets run outside axum's connection tracking; this lets
    /// `serve` wait for them to send their close frames.
    sockets: TaskTracker,
}

/// Checks `typed` and `?access=` for `caller`, as `ssh host CMD [-p] typed
/// -a …` would for its user, then what the caller's token allows. Invalid
/// names and lists are errors, never rewritten. `sends`: the request sends
/// to the topic.
fn prepare(
    state: &HttpState,
    caller: &Caller,
    peer: SocketAddr,
    typed: &str,
    params: &Params,
    sends: bool,
) -> Result<Prepared, HttpError> {
    let access = params.access();
    let p = front::prepare(
        &state.app,
        &caller.identity,
        &caller.shown,
        peer,
        typed,
        caller.public(params)?,
        false,
        access.as_deref(),
    )?;
    caller.check(&p.topic, sends, access.is_some())?;
    Ok(p)
}

fn open<'a>(p: &'a Prepared, who: &'a Identity) -> Open<'a> {
    Open {
        topic: &p.topic,
        client: Client {
            identity: who,
            label: &p.label,
        },
        access: p.access.as_ref(),
    }
}

/// `pub [-p] t` for a POST route.
async fn open_pub(
    state: &HttpState,
    caller: &Caller,
    peer: SocketAddr,
    typed: &str,
    params: &Params,
) -> Result<(TopicRef, Publisher), HttpError> {
    let p = prepare(state, caller, peer, typed, params, true)?;
    let who = &caller.identity;
    let opened = state.app.broker.open_pub(open(&p, who), false).await?;
    tracing::info!(user = %who.name, client = %p.label, topic = %p.topic.full, "http pub");
    match opened.end {
        PubEnd::Live(publisher) => Ok((p.topic, publisher)),
        PubEnd::Queued(_) => Err(HttpError::Unavailable("a pub was queued".into())),
    }
}

/// `pipe [-p] t` for a WebSocket.
async fn open_pipe(
    state: &HttpState,
    caller: &Caller,
    peer: SocketAddr,
    typed: &str,
    params: &Params,
    replay: bool,
) -> Result<(TopicRef, Pipe), HttpError> {
    let p = prepare(state, caller, peer, typed, params, true)?;
    let who = &caller.identity;
    let opened = state.app.broker.open_pipe(open(&p, who), replay).await?;
    tracing::info!(user = %who.name, client = %p.label, topic = %p.topic.full, replay, "http pipe");
    Ok((p.topic, opened.end))
}

/// `sub [-p] t` for a GET route (`keep_alive`: `?persist=true` → `-k`):
/// queued messages first, then live data, exactly as `ssh host sub -p t`
/// reads them.
async fn subscribe(
    state: &HttpState,
    caller: &Caller,
    peer: SocketAddr,
    typed: &str,
    params: &Params,
    keep_alive: bool,
) -> Result<(TopicRef, Reader), HttpError> {
    let p = prepare(state, caller, peer, typed, params, false)?;
    let who = &caller.identity;
    let opened = state
        .app
        .broker
        .open_sub(open(&p, who), keep_alive, false)
        .await?;
    tracing::info!(user = %who.name, client = %p.label, topic = %p.topic.full, keep_alive, "http sub");
    Ok((p.topic, opened.end))
}

/// The topic an HTTP path names (`typed` is the path after the route
/// prefix, percent-decoded); `is_user` asks the users file. Public only for
/// the fuzz targets in fuzz/.
#[doc(hidden)]
pub fn resolve_path(is_user: &dyn Fn(&str) -> bool, typed: &str) -> Result<TopicRef, TopicError> {
    Resolver {
        user: "@http",
        admin: false,
        is_user,
    }
    .resolve(typed, true, false)
}

/// All routes of SPEC §11, with CORS on every answer.
fn router(state: HttpState) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(healthz))
        .route("/rss/{token}", get(rss::handler))
        .route("/topic/{*t}", get(topic::get).post(topic::post_blocking))
        .route(
            "/pubsub/{*t}",
            get(topic::get).post(topic::post_nonblocking),
        )
        .route("/socket/{*t}", get(socket::handler))
        .route("/pipe/{*t}", get(socket::handler))
        .route("/sse/{*t}", get(sse::handler))
        .merge(crate::metrics::routes(&state.app));
    // `/topic/` with no name is an invalid (empty) topic, not an unknown route.
    for prefix in ["topic", "pubsub", "socket", "pipe", "sse"] {
        router = router.route(&format!("/{prefix}/"), any(empty_topic));
    }
    router
        .fallback(not_found)
        .layer(middleware::from_fn(cors))
        .with_state(state)
}

/// `503 store unavailable` while the store cannot store (SPEC §10).
async fn healthz(state: axum::extract::State<HttpState>) -> (StatusCode, &'static str) {
    if !state.app.broker.available() {
        (StatusCode::SERVICE_UNAVAILABLE, "broker unavailable\n")
    } else if state.app.broker.store_healthy() {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
    }
}

async fn empty_topic() -> HttpError {
    HttpError::from(TopicError::Empty)
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "not found\n")
}

/// `Access-Control-Allow-Origin: *` on every answer (SPEC §11), and
/// answers to preflight requests so browsers may POST any content type.
async fn cors(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("*"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("86400"),
        );
        r
    } else {
        next.run(req).await
    };
    response.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    response
}

/// Serves HTTP on `listener` until `app.shutdown` is cancelled, then lets
/// open streams end (they watch the same token) and sockets send their
/// close frames, for at most `SHUTDOWN_GRACE`. `budget` is the connection
/// cap (`connection_budget`).
pub async fn serve(listener: TcpListener, app: Arc<App>, limits: HttpLimits, budget: usize) {
    let sockets = TaskTracker::new();
    let connections = TaskTracker::new();
    let shutdown = app.shutdown.clone();
    let router = router(HttpState {
        app: Arc::clone(&app),
        sockets: sockets.clone(),
    });
    accept::serve(listener, router, app, limits, budget, connections.clone()).await;
    // Both waits share one bound, so HTTP never holds up the exit longer
    // than SHUTDOWN_GRACE after the signal.
    let drain = async {
        connections.close();
        connections.wait().await;
        sockets.close();
        sockets.wait().await;
    };
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        () = drain => {}
        () = deadline => tracing::warn!("some HTTP streams or WebSockets did not end in time"),
    }
}
