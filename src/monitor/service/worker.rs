//! The worker: does the queued work in order — writes the monitor's
//! current record (and its change) to the store, then publishes the alert
//! to the owner's `monitor-alerts` through the broker, as `pub -q` would.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ALERT_WAIT, ALERTS_TOPIC, HISTORY_KEEP, Monitors, Work, lock};
use crate::broker::{ByteSource, Client, Open, PubEnd, PumpOptions};
use crate::identity::Identity;
use crate::store::{MonitorRecord, StoreError};
use crate::topic::{Namespace, TopicRef};

impl Monitors {
    /// Does the queued work in order until `stop`, then what is left.
    pub(super) async fn worker(
        &self,
        mut rx: mpsc::UnboundedReceiver<Work>,
        stop: CancellationToken,
    ) {
        loop {
            let work = tokio::select! {
                w = rx.recv() => w,
                () = stop.cancelled() => break,
            };
            let Some(work) = work else { return };
            self.apply(work).await;
        }
        rx.close();
        while let Some(work) = rx.recv().await {
            self.apply(work).await;
        }
    }

    async fn apply(&self, work: Work) {
        match work {
            Work::Persist {
                id,
                change,
                alert,
                reply,
            } => {
                let rec = lock(&self.inner.state)
                    .by_id
                    .get(&id)
                    .map(|e| e.rec.clone());
                let Some(rec) = rec else {
                    // Deleted meanwhile.
                    if let Some(r) = reply {
                        let _ = r.send(Ok(()));
                    }
                    return;
                };
                let store = Arc::clone(&self.inner.store);
                let written = {
                    let rec = rec.clone();
                    tokio::task::spawn_blocking(move || {
                        store.put_monitor(&rec, change.as_ref(), HISTORY_KEEP)
                    })
                    .await
                    .unwrap_or_else(|e| Err(StoreError::Failed(e.to_string())))
                };
                if let Err(e) = &written {
                    tracing::warn!(user = %rec.owner, topic = %rec.topic, error = %e, "cannot store monitor");
                }
                if let Some(r) = reply {
                    let _ = r.send(written);
                }
                if let Some(line) = alert {
                    self.alert(&rec, line).await;
                }
            }
            Work::Delete {
                owner,
                topic,
                reply,
            } => {
                let store = Arc::clone(&self.inner.store);
                let done =
                    tokio::task::spawn_blocking(move || store.delete_monitor(&owner, &topic))
                        .await
                        .unwrap_or_else(|e| Err(StoreError::Failed(e.to_string())));
                let _ = reply.send(done);
            }
        }
    }

    /// Publishes one alert line to the owner's `monitor-alerts`, as
    /// `pub -q` does: to the live readers if any (`-b=false`), else queued.
    async fn alert(&self, rec: &MonitorRecord, line: String) {
        let owner = Identity {
            name: rec.owner.clone(),
            fingerprint: rec.fingerprint.clone(),
            admin: false,
            anonymous: rec.anonymous,
        };
        let topic = TopicRef {
            full: format!("{}/{ALERTS_TOPIC}", rec.owner),
            namespace: Namespace::User(rec.owner.clone()),
            local: ALERTS_TOPIC.to_string(),
        };
        let label = format!("{}@monitor", rec.owner);
        let sent = tokio::time::timeout(ALERT_WAIT, async {
            let open = Open {
                topic: &topic,
                client: Client {
                    identity: &owner,
                    label: &label,
                },
                access: None,
            };
            let mut line = Some(bytes::Bytes::from(line));
            match self.inner.broker.open_pub(open, true).await {
                Ok(o) => match o.end {
                    PubEnd::Live(mut p) => {
                        let opts = PumpOptions {
                            block: false,
                            timeout: Duration::ZERO,
                            empty: false,
                            round_robin: false,
                        };
                        p.pump(&mut OneChunk(line.take()), opts, &mut ())
                            .await
                            .map_err(|e| e.to_string())
                    }
                    PubEnd::Queued(q) => q
                        .store(&mut OneChunk(line.take()))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .unwrap_or_else(|_| Err("readers too slow".into()));
        if let Err(error) = sent {
            tracing::warn!(user = %rec.owner, topic = %rec.topic, %error, "monitor alert not delivered");
        }
    }
}

/// One chunk, then the end.
struct OneChunk(Option<bytes::Bytes>);

impl ByteSource for OneChunk {
    async fn next_chunk(&mut self) -> std::io::Result<Option<bytes::Bytes>> {
        Ok(self.0.take())
    }
}
