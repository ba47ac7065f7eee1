//! `GET /socket/{t}` and `/pipe/{t}`: a WebSocket as `pipe -p t`.
//!
//! Like SSH's `pipe`, reading and writing run concurrently (a client that
//! sends while we wait to write to it must not deadlock us). Each message in
//! is sent to the topic; each chunk from the others is one message out.
//! A bad request (invalid topic, bad parameter) is refused with its HTTP
//! status before the upgrade. Access denied is answered *after* the upgrade
//! with close code 1008, because browsers hide a refused handshake's status
//! but do show a close code and reason. Shutdown closes with 1001.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

use super::caller::{Caller, identify};
use super::error::HttpError;
use super::query::Params;
use super::topic::MAX_CHUNK;
use super::{HttpState, open_pipe, subscribe};
use crate::broker::{ByteSource, Pipe, PumpOptions, Reader, Subscription};
use crate::front;

mod source;

use source::SocketSource;

/// A ping this often keeps idle sockets alive through proxies.
const PING_EVERY: Duration = Duration::from_secs(15);
/// A client that answers nothing (not even pongs) for this long is gone.
const SILENCE_LIMIT: Duration = Duration::from_secs(60);
/// Largest message accepted: bounds what one client can make us buffer.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
struct Options {
    binary: bool,
    status: bool,
}

/// What the socket carries once open: a pipe, or (read-only token) only
/// what others send.
/// Both boxed: one lives per socket, and the two differ in size.
enum Joined {
    Pipe(Box<Pipe>),
    Receive(Box<Reader>),
}

pub async fn handler(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(typed): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    let params = Params::parse(query.as_deref())?;
    // A missing or bad token is refused before the upgrade, like a bad request.
    let caller = identify(&state.app, &headers, &params)?;
    let opts = Options {
        binary: params.flag("binary")?,
        status: params.flag("status")?,
    };
    let replay = params.flag("replay")?;
    let read_only = caller.grant.as_ref().is_some_and(|g| g.record.read_only);
    // A bad request is refused before the upgrade; a refusal of the topic
    // itself after it, as a close code browsers can show.
    let joined = if read_only {
        // Like a pipe, a receiving socket outlives the topic's senders.
        subscribe(&state, &caller, peer, &typed, &params, true)
            .await
            .map(|(t, r)| (t, Joined::Receive(Box::new(r))))
    } else {
        open_pipe(&state, &caller, peer, &typed, &params, replay)
            .await
            .map(|(t, p)| (t, Joined::Pipe(Box::new(p))))
    };
    let joined = match joined {
        Ok(j) => Ok(j),
        Err(e @ (HttpError::BadArgument(_) | HttpError::Body(_))) => return Err(e),
        Err(e) => Err(e),
    };
    let token = state.sockets.token();
    let app = state.app.clone();
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let _running = token;
            let (mut sink, mut stream) = socket.split();
            let (code, reason) = match joined {
                Ok((topic, joined)) => {
                    let hint = front::hint(
                        &app.ssh_prefix(),
                        &topic,
                        if read_only { "sub" } else { "pipe" },
                        &caller.identity.name,
                        false,
                    );
                    let io = SocketIo {
                        sink: &mut sink,
                        stream: &mut stream,
                        opts,
                        app: &app,
                        topic: &topic.full,
                    };
                    let (code, reason) = io.run(joined, &hint, &caller.stop).await;
                    revoked_or(&app, &caller, code, reason)
                }
                Err(e) => (e.close_code(), e.to_string()),
            };
            close(&mut sink, &mut stream, opts, code, &reason).await;
        }))
}

/// A socket stopped by its token's revocation or expiry says so (1008),
/// not `server shutting down`.
fn revoked_or(app: &crate::app::App, caller: &Caller, code: u16, reason: String) -> (u16, String) {
    match caller.token_ended(app) {
        Some(why) if code == close_code::AWAY => (close_code::POLICY, why.into()),
        _ => (code, reason),
    }
}

/// Ends the socket: the reason as a status line (with `?status=true`), a
/// close frame, then a short wait for the client's own close so the TCP
/// connection is not reset under unread data.
async fn close(
    sink: &mut SplitSink<WebSocket, Message>,
    stream: &mut SplitStream<WebSocket>,
    opts: Options,
    code: u16,
    reason: &str,
) {
    if opts.status && code != close_code::NORMAL && !reason.is_empty() {
        let _ = sink.send(Message::Text(reason.into())).await;
    }
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

struct SocketIo<'a> {
    sink: &'a mut SplitSink<WebSocket, Message>,
    stream: &'a mut SplitStream<WebSocket>,
    opts: Options,
    /// For monitor pings: a socket pipe is a pipe (SPEC §13).
    app: &'a crate::app::App,
    topic: &'a str,
}

/// Why the writer stopped.
enum Ending {
    InputEnded,
    Shutdown,
    ClientGone,
    Silent,
}

impl SocketIo<'_> {
    /// Runs the pipe (or, read-only, the receiving half); returns the
    /// close code and reason.
    async fn run(self, joined: Joined, hint: &str, shutdown: &CancellationToken) -> (u16, String) {
        let pipe = match joined {
            Joined::Pipe(pipe) => *pipe,
            Joined::Receive(reader) => return self.receive(*reader, hint, shutdown).await,
        };
        let (mut publisher, mut sub) = (pipe.publisher, pipe.subscription);
        if self.opts.status {
            for line in hint.lines() {
                let _ = self.sink.send(Message::Text(line.into())).await;
            }
        }
        let started = Instant::now();
        let last_seen = AtomicU64::new(0);
        let opts = PumpOptions {
            block: false,
            timeout: Duration::ZERO,
            empty: false,
            round_robin: false,
        };
        let too_big = AtomicBool::new(false);
        let source = SocketSource {
            stream: self.stream,
            pending: Bytes::new(),
            started,
            last_seen: &last_seen,
            too_big: &too_big,
        };
        let mut source = front::ping::Pinging::new(self.app, self.topic, source);
        let mut quiet = ();
        let send = publisher.pump(&mut source, opts, &mut quiet);
        let writer = Writer {
            sink: self.sink,
            app: self.app,
            binary: self.opts.binary,
            carry: Vec::new(),
        };
        let last_seen = &last_seen;
        let receiving = &mut sub;
        let (app, topic) = (self.app, self.topic);
        let (sent, ending) = front::run_pipe(send, |input_done| async move {
            writer
                .run(
                    Chunks::Pipe(receiving),
                    &input_done,
                    shutdown,
                    started,
                    last_seen,
                )
                .await
        })
        .await;
        if sub.revoked() {
            return (close_code::POLICY, "access denied".into());
        }
        if too_big.load(Ordering::Relaxed) {
            return too_big_close();
        }
        // Its input ended and was delivered: the pipe "exits 0".
        app.metrics.add_bytes(publisher.sent, 0);
        if matches!(sent, Some(Ok(()))) && matches!(ending, Ending::InputEnded) {
            front::ping::ended_well(app, topic);
        }
        ending_close(ending)
    }

    /// A read-only socket: what others send goes out; anything the client
    /// sends but pings, pongs and its close ends it with 1008.
    async fn receive(
        self,
        mut reader: Reader,
        hint: &str,
        shutdown: &CancellationToken,
    ) -> (u16, String) {
        if self.opts.status {
            for line in hint.lines() {
                let _ = self.sink.send(Message::Text(line.into())).await;
            }
        }
        let started = Instant::now();
        let last_seen = AtomicU64::new(0);
        let too_big = AtomicBool::new(false);
        let mut source = SocketSource {
            stream: self.stream,
            pending: Bytes::new(),
            started,
            last_seen: &last_seen,
            too_big: &too_big,
        };
        let watch = async { matches!(source.next_chunk().await, Ok(Some(_))) };
        let writer = Writer {
            sink: self.sink,
            app: self.app,
            binary: self.opts.binary,
            carry: Vec::new(),
        };
        let last_seen = &last_seen;
        let (sent, ending) = front::run_pipe(watch, |input_done| async move {
            writer
                .run(
                    Chunks::Sub(&mut reader),
                    &input_done,
                    shutdown,
                    started,
                    last_seen,
                )
                .await
        })
        .await;
        if too_big.load(Ordering::Relaxed) {
            return too_big_close();
        }
        if sent == Some(true) {
            return (close_code::POLICY, "read-only token".into());
        }
        ending_close(ending)
    }
}

/// 1009 and why (SPEC §11).
fn too_big_close() -> (u16, String) {
    (
        close_code::SIZE,
        format!("message too big (limit {MAX_MESSAGE} bytes)"),
    )
}

fn ending_close(ending: Ending) -> (u16, String) {
    match ending {
        Ending::InputEnded | Ending::ClientGone => (close_code::NORMAL, String::new()),
        Ending::Shutdown => (close_code::AWAY, "server shutting down".into()),
        Ending::Silent => (close_code::AWAY, "no answer to pings".into()),
    }
}

/// Where the writer's chunks come from.
enum Chunks<'a> {
    Pipe(&'a mut Subscription),
    /// A sub's reader: an error ends the stream (SSE and GET report it;
    /// a socket just closes).
    Sub(&'a mut Reader),
}

impl Chunks<'_> {
    async fn next(&mut self) -> Option<Bytes> {
        match self {
            Chunks::Pipe(sub) => sub.next().await,
            Chunks::Sub(reader) => super::topic::next_chunk(reader).await.ok().flatten(),
        }
    }
}

/// Chunks from the others, one message each.
struct Writer<'a> {
    sink: &'a mut SplitSink<WebSocket, Message>,
    /// Counts the bytes sent (`sshpipe_bytes_total`).
    app: &'a crate::app::App,
    binary: bool,
    /// The start of a UTF-8 character cut by a chunk boundary (text mode).
    carry: Vec<u8>,
}

impl Writer<'_> {
    async fn run(
        mut self,
        mut sub: Chunks<'_>,
        input_done: &CancellationToken,
        shutdown: &CancellationToken,
        started: Instant,
        last_seen: &AtomicU64,
    ) -> Ending {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            let msg = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ending::Shutdown,
                () = input_done.cancelled() => return Ending::InputEnded,
                _ = ping.tick() => {
                    let seen = Duration::from_millis(last_seen.load(Ordering::Relaxed));
                    if started.elapsed().saturating_sub(seen) > SILENCE_LIMIT {
                        return Ending::Silent;
                    }
                    Message::Ping(Bytes::new())
                }
                chunk = sub.next() => match chunk {
                    Some(chunk) => match self.message(chunk) {
                        Some(m) => m,
                        None => continue,
                    },
                    None => return Ending::InputEnded,
                },
            };
            tokio::select! {
                r = self.sink.send(msg) => if r.is_err() { return Ending::ClientGone },
                () = shutdown.cancelled() => return Ending::Shutdown,
            }
        }
    }

    fn message(&mut self, chunk: Bytes) -> Option<Message> {
        self.app.metrics.add_bytes(0, chunk.len() as u64);
        if self.binary {
            return Some(Message::Binary(chunk));
        }
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(&chunk);
        let keep = incomplete_tail(&buf);
        self.carry = buf.split_off(buf.len() - keep);
        (!buf.is_empty()).then(|| Message::Text(String::from_utf8_lossy(&buf).as_ref().into()))
    }
}

/// Length of an unfinished UTF-8 character at the end of `b` (0–3 bytes),
/// kept for the next chunk so text frames never split a character.
fn incomplete_tail(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let byte = b[b.len() - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let need = match byte {
            0xC0..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF7 => 4,
            _ => 1,
        };
        return if need > back { back } else { 0 };
    }
    0
}

#[cfg(test)]
mod tests {
    use super::incomplete_tail;

    #[test]
    fn utf8_tails() {
        let e = "é".as_bytes();
        let euro = "€".as_bytes();
        assert_eq!(incomplete_tail(b"abc"), 0);
        assert_eq!(incomplete_tail(&[b'a', e[0]]), 1);
        assert_eq!(incomplete_tail(e), 0);
        assert_eq!(incomplete_tail(&euro[..2]), 2);
        assert_eq!(incomplete_tail(euro), 0);
        assert_eq!(incomplete_tail(&[0x80, 0x80, 0x80]), 0);
    }
}
