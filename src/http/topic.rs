//! `/topic/{t}` and `/pubsub/{t}`: `sub -p` as a streamed response body and
//! `pub -p` from a streamed request body.
//!
//! Neither side buffers: the response body is a stream pulled from the
//! subscription chunk by chunk (so a slow HTTP reader paces the topic like a
//! slow SSH one), and the request body is read only as fast as the broker
//! delivers, so a 1 GiB POST holds at most a few chunks in memory.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{Body, BodyDataStream};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{Stream, StreamExt as _, stream};
use tokio_util::sync::CancellationToken;

use super::caller::identify;
use super::error::HttpError;
use super::query::Params;
use super::{HttpState, open_pub, subscribe};
use crate::broker::{ByteSource, Piece, PumpError, PumpOptions, ReadError, Reader};
use crate::front;

/// Largest chunk handed to the broker, as an SSH channel would (GUIDE §3):
/// it bounds what each receiver queue can hold.
pub const MAX_CHUNK: usize = 32 * 1024;

const DEFAULT_MIME: &str = "text/plain; charset=utf-8";

/// `GET /topic/{t}`, `GET /pubsub/{t}`: `sub -p t`, `?persist=true` → `-k`.
pub async fn get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(typed): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let params = Params::parse(query.as_deref())?;
    let caller = identify(&state.app, &headers, &params)?;
    let mime = match params.get("mime") {
        None | Some("") => HeaderValue::from_static(DEFAULT_MIME),
        Some(m) => HeaderValue::from_str(m)
            .map_err(|_| HttpError::BadArgument(format!("invalid value for mime: {m:?}")))?,
    };
    let (_, reader) = subscribe(
        &state,
        &caller,
        peer,
        &typed,
        &params,
        params.flag("persist")?,
    )
    .await?;
    // Ends with the server, or at once when the token is revoked.
    let app = Arc::clone(&state.app);
    let counted = chunks(reader, caller.stop.clone()).inspect(move |chunk| {
        if let Ok(data) = chunk {
            app.metrics.add_bytes(0, data.len() as u64);
        }
    });
    let body = Body::from_stream(counted);
    let headers = [
        (header::CONTENT_TYPE, mime),
        // Browsers would otherwise buffer text/plain to sniff its type.
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    Ok((headers, body).into_response())
}

/// A reader as a body stream; it ends with the sub, or cleanly (a proper
/// end of the chunked body) when the server shuts down. A sub that ends in
/// error (a sender vanished, a store failure) yields the error, which makes
/// hyper abort the response: no final chunk, so `curl` exits 18 and
/// `curl … > file && use file` never uses a truncated file (SPEC §5.3).
pub fn chunks(
    reader: Reader,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Bytes, ReadError>> + Send {
    stream::unfold(Some((reader, stop)), |state| async move {
        let (mut reader, stop) = state?;
        let next = tokio::select! {
            biased;
            () = stop.cancelled() => Ok(None),
            c = next_chunk(&mut reader) => c,
        };
        match next {
            Ok(Some(chunk)) => Some((Ok(chunk), Some((reader, stop)))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// The reader's next chunk; an error is logged here (the status line has
/// gone out already) and handed on, so each route ends the way it should.
///
/// A queued message is removed for good when this is called after its last
/// chunk, that is once the route's writer has taken every byte of it: a
/// WebSocket sends each chunk with a flush, and hyper asks a body for its
/// next frame only once it took the last. Over HTTP that is the best there
/// is — no exit status follows, and a client's receive window is not ours
/// to watch. What a `kill -9` can still cut is what hyper and the kernel
/// hold for the client at that moment; without its final chunk such a
/// response is an error (`curl` exits 18), never a short success.
pub async fn next_chunk(reader: &mut Reader) -> Result<Option<Bytes>, ReadError> {
    reader.next().await.inspect_err(log_early_end)
}

/// As `next_chunk`, with a written queued message's `Delivery` handed to
/// the route (SSE ends its last line there before confirming it).
pub async fn next_piece(reader: &mut Reader) -> Result<Option<Piece>, ReadError> {
    reader.next_piece().await.inspect_err(log_early_end)
}

fn log_early_end(e: &ReadError) {
    tracing::info!(error = %e, "http sub ended early");
}

/// `POST /topic/{t}`: a blocking `pub -p t` (`?timeout=` as `-t`).
pub async fn post_blocking(
    state: State<HttpState>,
    peer: ConnectInfo<SocketAddr>,
    typed: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    publish(state, peer, typed, query, headers, body, true).await
}

/// `POST /pubsub/{t}`: `pub -p -b=false t`, data without receivers is dropped.
pub async fn post_nonblocking(
    state: State<HttpState>,
    peer: ConnectInfo<SocketAddr>,
    typed: Path<String>,
    query: RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    publish(state, peer, typed, query, headers, body, false).await
}

#[allow(clippy::too_many_arguments)]
async fn publish(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(typed): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
    block: bool,
) -> Result<Response, HttpError> {
    let params = Params::parse(query.as_deref())?;
    let caller = identify(&state.app, &headers, &params)?;
    let timeout = params.timeout()?;
    let (topic, mut publisher) = open_pub(&state, &caller, peer, &typed, &params).await?;
    let opts = PumpOptions {
        block,
        timeout,
        empty: false,
        round_robin: false,
    };
    let mut source = front::ping::Pinging::new(&state.app, &topic.full, BodySource::new(body));
    let mut quiet = ();
    let result = tokio::select! {
        r = publisher.pump(&mut source, opts, &mut quiet) => r,
        () = caller.stop.cancelled() => return Err(match caller.token_ended(&state.app) {
            Some(why) => HttpError::Unauthorized(why.into()),
            None => HttpError::ShuttingDown,
        }),
    };
    tracing::info!(user = %caller.identity.name, topic = %topic.full, bytes_in = publisher.sent, ok = result.is_ok(), "http pub end");
    state.app.metrics.add_bytes(publisher.sent, 0);
    match result {
        Ok(()) => {
            front::ping::ended_well(&state.app, &topic.full);
            Ok("msg sent!\n".into_response())
        }
        Err(PumpError::Timeout) => Err(HttpError::Timeout),
        Err(PumpError::AccessDenied) => Err(HttpError::AccessDenied),
        Err(PumpError::Io(e)) => Err(HttpError::Body(e)),
    }
}

/// A request body as the broker's input, cut into `MAX_CHUNK` slices
/// (zero-copy) whatever size the HTTP layer reads.
struct BodySource {
    stream: BodyDataStream,
    pending: Bytes,
}

impl BodySource {
    fn new(body: Body) -> Self {
        BodySource {
            stream: body.into_data_stream(),
            pending: Bytes::new(),
        }
    }
}

impl ByteSource for BodySource {
    /// Cancel-safe: `StreamExt::next` is, and a slice in hand stays in
    /// `pending` until returned.
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(MAX_CHUNK);
                return Ok(Some(self.pending.split_to(n)));
            }
            match self.stream.next().await {
                None => return Ok(None),
                Some(Ok(data)) => self.pending = data,
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
    }
}
