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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use super::*;
    use crate::broker::{Broker, BrokerConfig};
    use crate::identity::Identity;
    use crate::monitor::{Clock, MemoryMonitors, MonitorLimits};
    use crate::topic::{Namespace, TopicRef};

    /// A chunk a second, for `n` seconds.
    struct Slow(u32);

    impl ByteSource for Slow {
        async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
            if self.0 == 0 {
                return Ok(None);
            }
            self.0 -= 1;
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(Some(Bytes::from_static(b"x")))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_stream_pings_at_most_every_15s() {
        let broker = Broker::open(BrokerConfig::default(), None).unwrap();
        let monitors = Monitors::new(
            Arc::new(MemoryMonitors::default()),
            Vec::new(),
            broker,
            Clock::starting_at(0),
            MonitorLimits::default(),
        );
        let who = Identity {
            name: "alice".into(),
            fingerprint: "SHA256:a".into(),
            admin: false,
            anonymous: false,
        };
        let topic = TopicRef {
            full: "alice/t".into(),
            namespace: Namespace::User("alice".into()),
            local: "t".into(),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let run = tokio::spawn({
            let (m, s) = (monitors.clone(), stop.clone());
            async move { m.run(s).await }
        });
        monitors
            .set(&who, &topic, Duration::from_secs(3600))
            .await
            .unwrap();
        let mut source = Pinging {
            inner: Slow(40),
            monitors: monitors.clone(),
            topic: topic.full.clone(),
            last: None,
        };
        let mut seen = Vec::new();
        while source.next_chunk().await.unwrap().is_some() {
            let last = monitors.status("alice")[0].last_ping.unwrap_or(0);
            if seen.last() != Some(&last) {
                seen.push(last);
            }
        }
        assert_eq!(seen, [1000, 16_000, 31_000]);
        stop.cancel();
        run.await.unwrap();
    }
}
