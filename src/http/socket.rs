//! `GET /socket/{t}` and `/pipe/{t}`: a WebSocket as `pipe -p t`.
//!
//! Like SSH's `pipe`, reading and writing run concurrently (a client that
//! sends while we wait to write to it must not deadlock us). Each message in
//! is sent to the topic; each chunk from the others is one message out.
//! A bad request (invalid topic, bad parameter) is refused with its HTTP
//! status before the upgrade. Access denied is answered *after* the upgrade
//! with close code 1008, because browsers hide a refused handshake's status
//! but do show a close code and reason. Shutdown closes with 1001.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_util::sync::CancellationToken;

use super::error::HttpError;
use super::query::Params;
use super::topic::MAX_CHUNK;
use super::{HttpState, open_pipe};
use crate::broker::{ByteSource, Pipe, PumpOptions, Subscription};
use crate::front;

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

pub async fn handler(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(typed): Path<String>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Result<Response, HttpError> {
    let params = Params::parse(query.as_deref())?;
    let opts = Options {
        binary: params.flag("binary")?,
        status: params.flag("status")?,
    };
    let replay = params.flag("replay")?;
    // A bad request is refused before the upgrade; a refusal of the topic
    // itself after it, as a close code browsers can show.
    let joined = match open_pipe(&state, peer, &typed, &params, replay).await {
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
                Ok((topic, pipe)) => {
                    let hint = front::hint(&app.ssh_prefix(), &topic, "pipe", "@http", false);
                    let shutdown = app.shutdown.clone();
                    let io = SocketIo {
                        sink: &mut sink,
                        stream: &mut stream,
                        opts,
                    };
                    io.run(pipe, &hint, &shutdown).await
                }
                Err(e) => (e.close_code(), e.to_string()),
            };
            close(&mut sink, &mut stream, opts, code, &reason).await;
        }))
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
}

/// Why the writer stopped.
enum Ending {
    InputEnded,
    Shutdown,
    ClientGone,
    Silent,
}

impl SocketIo<'_> {
    /// Runs the pipe; returns the close code and reason.
    async fn run(self, pipe: Pipe, hint: &str, shutdown: &CancellationToken) -> (u16, String) {
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
        let mut source = SocketSource {
            stream: self.stream,
            pending: Bytes::new(),
            started,
            last_seen: &last_seen,
        };
        let mut quiet = ();
        let send = publisher.pump(&mut source, opts, &mut quiet);
        let writer = Writer {
            sink: self.sink,
            binary: self.opts.binary,
            carry: Vec::new(),
        };
        let last_seen = &last_seen;
        let receiving = &mut sub;
        let (_, ending) = front::run_pipe(send, |input_done| async move {
            writer
                .run(receiving, &input_done, shutdown, started, last_seen)
                .await
        })
        .await;
        if sub.revoked() {
            return (close_code::POLICY, "access denied".into());
        }
        match ending {
            Ending::InputEnded | Ending::ClientGone => (close_code::NORMAL, String::new()),
            Ending::Shutdown => (close_code::AWAY, "server shutting down".into()),
            Ending::Silent => (close_code::AWAY, "no answer to pings".into()),
        }
    }
}

/// Messages from the client as the broker's input.
struct SocketSource<'a> {
    stream: &'a mut SplitStream<WebSocket>,
    pending: Bytes,
    started: Instant,
    /// Milliseconds after `started` when the client last sent anything.
    last_seen: &'a AtomicU64,
}

impl ByteSource for SocketSource<'_> {
    /// Cancel-safe: `StreamExt::next` is, and `pending` keeps the rest of a
    /// message larger than a chunk.
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(MAX_CHUNK);
                return Ok(Some(self.pending.split_to(n)));
            }
            let msg = match self.stream.next().await {
                None => return Err(io::ErrorKind::ConnectionAborted.into()),
                Some(Err(e)) => return Err(io::Error::other(e)),
                Some(Ok(msg)) => msg,
            };
            let now = self.started.elapsed().as_millis() as u64;
            self.last_seen.store(now, Ordering::Relaxed);
            match msg {
                Message::Text(text) => self.pending = text.into(),
                Message::Binary(data) => self.pending = data,
                Message::Close(_) => return Ok(None),
                Message::Ping(_) | Message::Pong(_) => {}
            }
        }
    }
}

/// Chunks from the others, one message each.
struct Writer<'a> {
    sink: &'a mut SplitSink<WebSocket, Message>,
    binary: bool,
    /// The start of a UTF-8 character cut by a chunk boundary (text mode).
    carry: Vec<u8>,
}

impl Writer<'_> {
    async fn run(
        mut self,
        sub: &mut Subscription,
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
