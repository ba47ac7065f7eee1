//! Following a KV bucket for as long as the node runs: every key, history
//! first, then each change — and starting over when the watch stops
//! telling the truth.
//!
//! A watch is an ordered consumer on one NATS server. When that server
//! dies, async-nats notices only once two idle heartbeats are missed (ten
//! seconds), and a watch can also just end; meanwhile the node would act
//! on a stale picture (a sub on another node that never learns its last
//! sender left waits for ever). So each follower writes a probe key of its
//! own every second and expects to see it come back: silent for
//! `PROBE_LATE`, the watch is taken for dead and made again. Starting over
//! replays the bucket's current state, which the callers apply
//! idempotently (views, revisions).

use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Entry};
use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a follower writes its probe, and how late it may come back.
const PROBE_EVERY: Duration = Duration::from_secs(1);
const PROBE_LATE: Duration = Duration::from_secs(4);
/// A watch that could not be made is tried again after this long.
const RETRY: Duration = Duration::from_millis(250);

const PROBE_PREFIX: &str = "_probe.";

/// Whether a failed KV write lost a compare-and-set: the server has more
/// than one error code for it (10071, and 10164 when the key moved on),
/// and async-nats names only the first (`WrongLastRevision`).
pub fn lost_race(e: &impl std::fmt::Display) -> bool {
    e.to_string().contains("wrong last sequence")
}

/// How long a KV write is sent again while its stream is unheard of.
const UNHEARD_WAIT: Duration = Duration::from_secs(10);

/// Whether a KV write failed with JetStream's "no responders": no server
/// had its stream's subject yet (a bucket made a moment ago, or a cluster
/// still recovering its streams after a restart). Nothing was stored, so
/// the write may be sent again.
fn unheard(e: &(dyn std::error::Error + 'static)) -> bool {
    use async_nats::jetstream::context::{PublishError, PublishErrorKind};
    let mut cause = Some(e);
    while let Some(err) = cause {
        if err
            .downcast_ref::<PublishError>()
            .is_some_and(|p| p.kind() == PublishErrorKind::StreamNotFound)
        {
            return true;
        }
        cause = err.source();
    }
    false
}

/// `write` (a KV put, create, update or delete) sent again while its
/// stream is unheard of, for at most `UNHEARD_WAIT`; any other outcome is
/// returned as it is.
pub async fn heard<T, E, F, Fut>(mut write: F) -> Result<T, E>
where
    E: std::error::Error + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    loop {
        match write().await {
            Err(e) if unheard(&e) && start.elapsed() < UNHEARD_WAIT => {
                tracing::debug!(error = %e, "JetStream has not heard of the stream yet; writing again");
                tokio::time::sleep(RETRY).await;
            }
            done => return done,
        }
    }
}

/// The probe key of `node` (any bucket).
pub fn probe_key(node: &str) -> String {
    format!("{PROBE_PREFIX}{node}")
}

/// Whether `key` is some node's probe, not state: loads skip them.
pub fn is_probe(key: &str) -> bool {
    key.starts_with(PROBE_PREFIX)
}

/// `load` retried while a freshly formed cluster is not answering yet, for
/// at most `JETSTREAM_WAIT`: a bucket another node made a moment ago has a
/// stream whose replicas may not serve reads yet, and every read then has
/// "no responders". A node starting next to it waits rather than failing
/// to start.
pub async fn at_start<T, E, F, Fut>(what: &'static str, mut load: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut warned = false;
    loop {
        match load().await {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() < super::JETSTREAM_WAIT => {
                if !warned {
                    tracing::warn!(error = %e, what, "JetStream is not answering yet; retrying");
                    warned = true;
                }
                tokio::time::sleep(RETRY).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Hands every entry of `bucket` but the probes to `apply`, in order,
/// until `stop`.
pub async fn follow<F, Fut>(
    bucket: kv::Store,
    node: &str,
    what: &'static str,
    stop: CancellationToken,
    mut apply: F,
) where
    F: FnMut(Entry) -> Fut,
    Fut: Future<Output = ()>,
{
    let probe = probe_key(node);
    loop {
        match bucket.watch_with_history(">").await {
            Ok(mut watch) => {
                let mut back = Instant::now();
                let mut tick = tokio::time::interval(PROBE_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        entry = watch.next() => match entry {
                            Some(Ok(e)) if e.key == probe => back = Instant::now(),
                            Some(Ok(e)) if is_probe(&e.key) => {}
                            Some(Ok(e)) => apply(e).await,
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, what, "watch error; starting over");
                                break;
                            }
                            None => break,
                        },
                        _ = tick.tick() => {
                            if back.elapsed() > PROBE_LATE {
                                tracing::debug!(what, "watch silent; starting over");
                                break;
                            }
                            let put = bucket.put(probe.as_str(), bytes::Bytes::new());
                            let _ = tokio::time::timeout(PROBE_EVERY, put).await;
                        }
                        () = stop.cancelled() => return,
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, what, "cannot watch; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(RETRY) => {}
            () = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_keys_are_kv_keys_no_view_or_queue_key_parses_as() {
        let key = probe_key("00ab12cd34ef5678");
        assert_eq!(key, "_probe.00ab12cd34ef5678");
        assert!(
            key.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-/_=.".contains(&b))
        );
        assert_eq!(super::super::names::parse_view_key(&key), None);
        assert!(is_probe(&key));
        assert!(!is_probe("probe.x") && !is_probe("x._probe.y"));
    }

    use async_nats::jetstream::context::{PublishError, PublishErrorKind};
    use async_nats::jetstream::kv::{PutError, PutErrorKind, UpdateError, UpdateErrorKind};

    fn put_failed(kind: PublishErrorKind) -> PutError {
        PutError::with_source(PutErrorKind::Ack, PublishError::new(kind))
    }

    #[test]
    fn only_no_responders_to_a_write_is_unheard() {
        assert!(unheard(&put_failed(PublishErrorKind::StreamNotFound)));
        // Nested, as a create's error wraps its update's.
        let nested = UpdateError::with_source(
            UpdateErrorKind::Other,
            put_failed(PublishErrorKind::StreamNotFound),
        );
        assert!(unheard(&nested));
        for kind in [
            PublishErrorKind::TimedOut,
            PublishErrorKind::BrokenPipe,
            PublishErrorKind::WrongLastSequence,
            PublishErrorKind::Other,
        ] {
            assert!(!unheard(&put_failed(kind)), "{kind:?}");
        }
        assert!(!unheard(&PutError::new(PutErrorKind::InvalidKey)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unheard_write_is_sent_again_and_nothing_else_is() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let tries = AtomicUsize::new(0);
        let got = heard(|| async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(put_failed(PublishErrorKind::StreamNotFound)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got.ok(), Some(2));

        tries.store(0, Ordering::SeqCst);
        let got = heard(|| async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(put_failed(PublishErrorKind::TimedOut))
        })
        .await;
        assert!(got.is_err());
        assert_eq!(tries.load(Ordering::SeqCst), 1, "a timeout is not retried");

        // Bounded: after UNHEARD_WAIT the error is returned.
        let start = Instant::now();
        let got =
            heard(|| async { Err::<(), _>(put_failed(PublishErrorKind::StreamNotFound)) }).await;
        assert!(got.is_err());
        assert!(start.elapsed() >= UNHEARD_WAIT && start.elapsed() < UNHEARD_WAIT + RETRY * 2);
    }
}
