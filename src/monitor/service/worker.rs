//! The worker: does the queued work in order — writes the monitor's
//! current record (and its change) to the store, then publishes the alert
//! to the owner's `monitor-alerts` through the broker, as `pub -q` would.
//! Only a write that the store took publishes: with a shared store, the
//! node that lost the race adopts the winner's state instead.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{ALERT_WAIT, ALERTS_TOPIC, HISTORY_KEEP, Monitors, Work, lock};
use crate::broker::{ByteSource, Client, Open, PubEnd, PumpOptions};
use crate::identity::Identity;
use crate::monitor::store::Put;
use crate::monitor::time::Millis;
use crate::store::{HealthChange, MonitorRecord, StoreError};
use crate::topic::{Namespace, TopicRef};

/// Writes of one `monitor` command lost to other nodes before giving up.
const MAX_ROUNDS: u32 = 16;
/// The pause before writing a `monitor` command again after a lost write
/// (times the round): the other node's state may still be on its way.
const ROUND_PAUSE: Duration = Duration::from_millis(10);

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
                generation,
                window,
                reply,
            } => {
                self.persist(id, change, alert, generation, window, reply)
                    .await
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

    /// Writes monitor `id`'s current record with `change`, then publishes
    /// `alert` — unless another node's state came first: then that state is
    /// adopted instead (and looked at again), and a `monitor` command's
    /// window is set on it and written again.
    async fn persist(
        &self,
        id: String,
        mut change: Option<HealthChange>,
        mut alert: Option<String>,
        mut generation: u64,
        window: Option<Millis>,
        mut reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    ) {
        let mut outcome = Err(StoreError::Failed(
            "NATS: too many concurrent monitor changes; try again".into(),
        ));
        for round in 0..MAX_ROUNDS {
            let (rec, base) = {
                let mut st = lock(&self.inner.state);
                let Some(entry) = st.by_id.get_mut(&id) else {
                    // Deleted meanwhile.
                    outcome = Ok(());
                    break;
                };
                if entry.generation != generation {
                    let Some(w) = window else {
                        // Replaced by another node's state, which was
                        // looked at again then.
                        outcome = Ok(());
                        break;
                    };
                    entry.rec.window_ms = w;
                    (change, alert) = self.reevaluate(entry, self.now());
                    generation = entry.generation;
                }
                (entry.rec.clone(), entry.revision)
            };
            let store = Arc::clone(&self.inner.store);
            let written = {
                let (rec, change) = (rec.clone(), change.clone());
                tokio::task::spawn_blocking(move || {
                    store.put_monitor(&rec, change.as_ref(), HISTORY_KEEP, base)
                })
                .await
                .unwrap_or_else(|e| Err(StoreError::Failed(e.to_string())))
            };
            match written {
                Ok(Put::Done(revision)) => {
                    if let Some(e) = lock(&self.inner.state).by_id.get_mut(&id)
                        && e.generation == generation
                    {
                        e.revision = e.revision.max(revision);
                    }
                    // The command's answer does not wait for slow readers.
                    if let Some(r) = reply.take() {
                        let _ = r.send(Ok(()));
                    }
                    if let Some(line) = alert.take() {
                        self.alert(&rec, line).await;
                    }
                    return;
                }
                Ok(Put::Lost { current, revision }) => {
                    tracing::debug!(user = %rec.owner, topic = %rec.topic, "monitor changed on another node first");
                    {
                        let mut st = lock(&self.inner.state);
                        let kept = window.and_then(|_| st.by_id.get(&id).cloned());
                        self.adopt(&mut st, &id, current, revision);
                        if !st.by_id.contains_key(&id)
                            && let Some(mut mine) = kept
                        {
                            // Deleted on the other node: made anew here.
                            mine.revision = 0;
                            st.insert(mine);
                        }
                    }
                    if window.is_none() {
                        // The adopted state was looked at again.
                        outcome = Ok(());
                        break;
                    }
                    tokio::time::sleep(ROUND_PAUSE * (round + 1)).await;
                }
                Err(e) => {
                    tracing::warn!(user = %rec.owner, topic = %rec.topic, error = %e, "cannot store monitor");
                    // As on one node: the change happened, even if the
                    // store could not keep it.
                    if let Some(r) = reply.take() {
                        let _ = r.send(Err(e));
                    }
                    if let Some(line) = alert.take() {
                        self.alert(&rec, line).await;
                    }
                    return;
                }
            }
        }
        if let Some(r) = reply {
            let _ = r.send(outcome);
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
