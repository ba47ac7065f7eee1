//! Monitor pings (SPEC §13), the same for every front end: a `pub` or
//! `pipe` that ends with exit 0 pings the topic's monitors ([`ended_well`]),
//! and a long one pings as its data flows, at most once per
//! [`STREAM_PING_EVERY`] ([`Pinging`], a wrapper around its input). A `sub`
//! never pings: nothing here is called for one.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::app::App;
use crate::broker::ByteSource;
use crate::monitor::Monitors;

/// The most often one long stream pings.
pub const STREAM_PING_EVERY: Duration = Duration::from_secs(15);

/// A `pub` or `pipe` on `full` ended with exit 0.
pub fn ended_well(app: &App, full: &str) {
    app.monitors.ping(full);
}

/// Input that pings `topic`'s monitors while chunks arrive: on the first
/// one, then at most once per [`STREAM_PING_EVERY`].
pub struct Pinging<S> {
    inner: S,
    monitors: Monitors,
    topic: String,
    last: Option<Instant>,
}

impl<S> Pinging<S> {
    pub fn new(app: &App, topic: &str, inner: S) -> Self {
        Pinging {
            inner,
            monitors: app.monitors.clone(),
            topic: topic.to_string(),
            last: None,
        }
    }
}

impl<S: ByteSource> ByteSource for Pinging<S> {
    /// Cancel-safe when the inner source is: the ping comes after the
    /// chunk is in hand.
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        let next = self.inner.next_chunk().await?;
        if next.is_some() && self.last.is_none_or(|t| t.elapsed() >= STREAM_PING_EVERY) {
            self.last = Some(Instant::now());
            self.monitors.ping(&self.topic);
        }
        Ok(next)
    }
}
