//! Our own HTTP accept loop (SPEC §11.2), as the SSH side owns its own:
//! `axum::serve` has no connection cap, no header timeout, no idle timeout
//! and no TCP keepalive, so about 30,000 idle connections once took every
//! file descriptor and SSH stopped serving.
//!
//! - A semaphore caps open connections (`connection_budget`: at most half
//!   the open-files limit). Its permit lives inside the connection's I/O
//!   object, so an upgraded WebSocket keeps holding it until it closes.
//! - At the cap, the oldest connection that has not yet sent a request is
//!   closed to make room (those are what a flood is made of; a client with
//!   a request in flight is never evicted); with none, the new connection
//!   is closed at once.
//! - The first request head must be complete within `--http-header-timeout`
//!   of the connect (slowloris); later heads, and the idle time before
//!   them, get `--http-idle-timeout` (hyper's header timer starts when it
//!   waits for a head, so it bounds both).
//! - An accept error (EMFILE when the process is out of descriptors) backs
//!   off instead of spinning or ending the loop.

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

use super::limits::{HttpLimits, KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_RETRIES};
use crate::app::App;
use crate::metrics::{OpenConnection, Transport};

/// How long a connection that evicted an idle one waits for its slot (in a
/// flood it queues behind the others that evicted one; a busy machine needs
/// more than a moment to end them all).
const EVICTION_WAIT: Duration = Duration::from_secs(3);

/// The cap and the connections that have not sent a request yet.
struct Gate {
    permits: Arc<Semaphore>,
    next: AtomicU64,
    /// By age: the first is the oldest.
    waiting: Mutex<BTreeMap<u64, CancellationToken>>,
}

impl Gate {
    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
        // Poisoning only means a panic elsewhere; entries are whole.
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn register(&self) -> (u64, CancellationToken) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        self.waiting().insert(id, evict.clone());
        (id, evict)
    }

    fn unregister(&self, id: u64) {
        self.waiting().remove(&id);
    }

    /// Tells the oldest request-less connection to close; false if none.
    fn evict_oldest(&self) -> bool {
        match self.waiting().pop_first() {
            Some((_, evict)) => {
                evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// Accepts until `app.shutdown`, then waits (within the caller's bound) for
/// every connection's task to end.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    app: Arc<App>,
    limits: HttpLimits,
    budget: usize,
    tracker: TaskTracker,
) {
    let gate = Arc::new(Gate {
        permits: Arc::new(Semaphore::new(budget)),
        next: AtomicU64::new(0),
        waiting: Mutex::new(BTreeMap::new()),
    });
    let shutdown = app.shutdown.clone();
    let mut last_warning: Option<Instant> = None;
    let mut warn = |what: &str, e: &dyn std::fmt::Display| {
        if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            last_warning = Some(Instant::now());
            tracing::warn!(error = %e, limit = budget, "{what}");
        }
    };
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                warn("HTTP accept failed; backing off", &e);
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match Arc::clone(&gate.permits).try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if gate.evict_oldest() => None,
            Err(_) => {
                warn("HTTP connection limit reached; refusing", &peer);
                drop(tcp);
                continue;
            }
        };
        let conn = Conn {
            router: router.clone(),
            app: Arc::clone(&app),
            limits: limits.clone(),
            gate: Arc::clone(&gate),
            peer,
        };
        tracker.spawn(async move {
            let permit = match permit {
                Some(p) => p,
                // The evicted connection gives its slot back as it ends.
                None => {
                    let wait = Arc::clone(&conn.gate.permits).acquire_owned();
                    match tokio::time::timeout(EVICTION_WAIT, wait).await {
                        Ok(Ok(p)) => p,
                        _ => return,
                    }
                }
            };
            conn.run(tcp, permit).await;
        });
    }
}

struct Conn {
    router: Router,
    app: Arc<App>,
    limits: HttpLimits,
    gate: Arc<Gate>,
    peer: SocketAddr,
}

impl Conn {
    async fn run(self, tcp: TcpStream, permit: OwnedSemaphorePermit) {
        let _ = tcp.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_RETRIES);
        if let Err(e) = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive) {
            tracing::debug!(error = %e, "cannot set TCP keepalive");
        }
        let io = Held {
            tcp,
            _permit: permit,
            _open: self.app.metrics.connection(Transport::Http),
        };
        let (id, evict) = self.gate.register();
        let seen = Arc::new(AtomicBool::new(false));
        let service = {
            let (router, gate, seen, peer) = (
                self.router.clone(),
                Arc::clone(&self.gate),
                Arc::clone(&seen),
                self.peer,
            );
            hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                if !seen.swap(true, Ordering::Relaxed) {
                    gate.unregister(id);
                }
                req.extensions_mut().insert(ConnectInfo(peer));
                router.clone().call(req)
            })
        };
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.idle_timeout)
            .keep_alive(true);
        let mut conn = pin!(
            builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades()
        );
        let mut first_head = pin!(tokio::time::sleep(self.limits.header_timeout));
        let shutdown = self.app.shutdown.clone();
        let mut draining = false;
        loop {
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(peer = %self.peer, error = %e, "HTTP connection ended");
                    }
                    break;
                }
                () = &mut first_head, if !seen.load(Ordering::Relaxed) => {
                    if !seen.load(Ordering::Relaxed) {
                        tracing::debug!(peer = %self.peer, "no request head in time; closing");
                        break;
                    }
                }
                () = evict.cancelled(), if !seen.load(Ordering::Relaxed) => {
                    if !seen.load(Ordering::Relaxed) {
                        break;
                    }
                }
                () = shutdown.cancelled(), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
        self.gate.unregister(id);
    }
}

/// A connection's socket with its slot under the cap and its place in
/// `sshpipe_connections{transport="http"}`: both end when the socket is
/// dropped, after a WebSocket upgrade too.
struct Held {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    _open: OpenConnection,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}
