//! A WebSocket's incoming messages as the broker's input, and the one read
//! error that gets its own close code: a message over the size limit (1009).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::SplitStream;

use super::MAX_CHUNK;
use crate::broker::ByteSource;

/// Messages from the client as the broker's input.
pub(super) struct SocketSource<'a> {
    pub(super) stream: &'a mut SplitStream<WebSocket>,
    pub(super) pending: Bytes,
    pub(super) started: Instant,
    /// Milliseconds after `started` when the client last sent anything.
    pub(super) last_seen: &'a AtomicU64,
    /// Set when the client sent a message over `MAX_MESSAGE`.
    pub(super) too_big: &'a AtomicBool,
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
                Some(Err(e)) => {
                    if is_too_big(&e) {
                        self.too_big.store(true, Ordering::Relaxed);
                    }
                    return Err(io::Error::other(e));
                }
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

/// Is this read error tungstenite's "message too long"? axum does not
/// expose tungstenite's error type, so its message is matched (a test in
/// tests/it/tokens.rs keeps this honest across upgrades).
fn is_too_big(e: &axum::Error) -> bool {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&s.to_string());
        source = s.source();
    }
    text.contains("Message too long") || text.contains("Space limit exceeded")
}
