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
}
