//! Where `/metrics` is served, and the HTTP listener that counts its
//! connections.
//!
//! `--metrics-listen http` (the default, SPEC §2) adds the route to the
//! HTTP listener; `--metrics-listen ADDR` serves it there only, on a small
//! server of its own (a public server keeps its numbers on a private
//! address); `off` serves it nowhere.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::Listener;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::render::CONTENT_TYPE;
use super::{Metrics, OpenConnection};
use crate::app::App;

/// The `/metrics` route for the HTTP listener, or no route when metrics
/// are served elsewhere or nowhere.
pub fn routes<S: Clone + Send + Sync + 'static>(app: &Arc<App>) -> Router<S> {
    if !app.metrics.on_http() {
        return Router::new();
    }
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(Arc::clone(app))
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], super::text(&app))
}

/// Serves `/metrics` alone on `listener` (`--metrics-listen ADDR`) until
/// the server shuts down.
pub async fn serve(listener: TcpListener, app: Arc<App>) {
    let shutdown = app.shutdown.clone();
    let router = Router::new()
        .route("/metrics", get(metrics))
        .with_state(app);
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await });
    if let Err(e) = server.await {
        tracing::warn!(error = %e, "metrics server failed");
    }
}

/// A TCP listener whose connections count in
/// `sshpipe_connections{transport="http"}` while they are open (WebSockets
/// and streams included: the count ends when the socket closes).
pub struct CountedListener {
    inner: TcpListener,
    gauge: Arc<std::sync::atomic::AtomicI64>,
}

impl CountedListener {
    pub fn new(inner: TcpListener, metrics: &Metrics) -> Self {
        CountedListener {
            inner,
            gauge: Arc::clone(&metrics.http_connections),
        }
    }
}

impl Listener for CountedListener {
    type Io = Counted;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Counted, SocketAddr) {
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        self.gauge
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let open = OpenConnection(Arc::clone(&self.gauge));
        (
            Counted {
                stream,
                _open: open,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A counted connection: the stream, and its place in the gauge.
pub struct Counted {
    stream: TcpStream,
    _open: OpenConnection,
}

impl std::ops::Deref for Counted {
    type Target = TcpStream;
    fn deref(&self) -> &TcpStream {
        &self.stream
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
