//! The running monitors: what they are now (in memory, one lock), the
//! timer that notices a missed window on time, and the one worker that
//! writes changes to the store and publishes the alerts.
//!
//! - Pings and commands change the state under the lock and queue the work
//!   for it in the same breath, so the worker sees changes in the order they
//!   happened. The worker writes the monitor's *current* record (not a copy
//!   taken when the work was queued), so a late write never undoes a newer
//!   one, then publishes the alert. The queue is unbounded but its input is
//!   not: a ping is written at most once per [`PING_WRITE_EVERY`] (a
//!   second with a shared store) per monitor, and a monitor changes health
//!   at most twice per window (at least [`MIN_WINDOW`]), over a bounded
//!   number of monitors.
//! - The timer sleeps until the earliest window end (or until a ping makes
//!   an earlier one), then looks at every monitor. It also runs once at
//!   start: that is the re-evaluation after a restart.
//! - With a store several nodes share, each entry also remembers the
//!   revision it was made from, and a generation that changes whenever
//!   another node's state replaces it (`remote`). Work decided on a
//!   replaced generation is dropped (the replacement was decided again),
//!   and a write that loses to another node's adopts that node's state
//!   instead of publishing: so each change is published once.
//! - Time comes from a [`Clock`] tied to tokio's clock, so tests can run the
//!   timer on paused time.

mod query;
mod remote;
mod timer;
mod worker;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::health::{evaluate, next_check};
use super::render::alert_line;
use super::store::MonitorStore;
use super::time::Millis;
use crate::broker::Broker;
use crate::identity::Identity;
use crate::store::{HealthChange, MonitorRecord, StoreError, monitor_id};
use crate::topic::TopicRef;

pub use crate::command::{MAX_WINDOW, MIN_WINDOW};
/// A ping that changes nothing is written to the store at most this often
/// per monitor; in between it lives in memory only. After a crash a
/// monitor may so come back with a ping up to this much older. (A store
/// several nodes share asks for less: `MonitorStore::ping_write_every`.)
pub const PING_WRITE_EVERY: Millis = 15_000;
/// Health changes kept per monitor (the oldest go first).
pub const HISTORY_KEEP: u64 = 1000;
/// Items in an RSS feed.
pub const FEED_ITEMS: usize = 100;
/// The topic, in the owner's namespace, that alerts go to.
pub const ALERTS_TOPIC: &str = "monitor-alerts";
/// How long one alert may wait for slow live readers before it is given up
/// (and logged): the worker must not stall behind a reader that stopped.
const ALERT_WAIT: Duration = Duration::from_secs(5);

/// How many monitors there may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorLimits {
    /// Per user of the users file.
    pub per_user: usize,
    /// Per anonymous key: free keys are many, so each gets fewer.
    pub per_anonymous: usize,
    /// On the whole server.
    pub total: usize,
}

impl Default for MonitorLimits {
    fn default() -> Self {
        MonitorLimits {
            per_user: 50,
            per_anonymous: 5,
            total: 10_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("too many monitors for {user} (limit {limit})")]
    TooMany { user: String, limit: usize },
    #[error("too many monitors on this server ({0}); try again later")]
    Full(usize),
    #[error("no monitor on {0}")]
    NotFound(String),
    #[error("cannot store the monitor: {0}")]
    Store(StoreError),
}

/// Wall-clock milliseconds that advance with tokio's clock, so a paused
/// test clock moves the monitors' time too.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall_at_start: Millis,
    start: tokio::time::Instant,
}

impl Clock {
    /// The system's wall clock, as of now.
    pub fn system() -> Clock {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as Millis);
        Clock::starting_at(wall)
    }

    /// A clock that reads `wall` now.
    pub fn starting_at(wall: Millis) -> Clock {
        Clock {
            wall_at_start: wall,
            start: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> Millis {
        self.wall_at_start + self.start.elapsed().as_millis() as Millis
    }

    fn instant_of(&self, at: Millis) -> tokio::time::Instant {
        self.start + Duration::from_millis(at.saturating_sub(self.wall_at_start))
    }
}

/// One monitor in memory.
#[derive(Debug, Clone)]
struct Entry {
    rec: MonitorRecord,
    /// The newest ping, written or not (`rec.last_ping_ms` is what the
    /// store has).
    last_ping: Option<Millis>,
    /// The stored revision `rec` was made from (0: not stored yet, or a
    /// store of one node).
    revision: u64,
    /// Changes when another node's state replaces this entry.
    generation: u64,
}

#[derive(Debug, Default)]
struct State {
    by_id: HashMap<String, Entry>,
    /// Full topic name → ids of the monitors on it.
    by_topic: HashMap<String, BTreeSet<String>>,
    /// Owner → their monitors' full topic names.
    by_owner: HashMap<String, BTreeSet<String>>,
    /// The generation the next replaced entry gets.
    generations: u64,
}

/// What the worker does, in order.
#[derive(Debug)]
enum Work {
    /// Write the monitor's current record with `change`, then publish
    /// `alert` (a JSON line) to the owner's alerts topic — if the entry is
    /// still of `generation`.
    Persist {
        id: String,
        change: Option<HealthChange>,
        alert: Option<String>,
        generation: u64,
        /// A `monitor TOPIC DURATION`'s window, set again on another
        /// node's state if that replaces the entry first.
        window: Option<Millis>,
        reply: Option<oneshot::Sender<Result<(), StoreError>>>,
    },
    Delete {
        owner: String,
        topic: String,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn MonitorStore>,
    broker: Broker,
    clock: Clock,
    limits: MonitorLimits,
    state: Mutex<State>,
    work: mpsc::UnboundedSender<Work>,
    /// Taken by `run`.
    work_rx: Mutex<Option<mpsc::UnboundedReceiver<Work>>>,
    /// Wakes the timer for a window end earlier than the one it sleeps to.
    wake: Notify,
    /// The window end the timer sleeps to (`u64::MAX`: none).
    timer_at: AtomicU64,
}

/// Cheap to clone; every clone is the same monitors.
#[derive(Debug, Clone)]
pub struct Monitors {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; entries are replaced whole.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The topic as its owner types it: `backup`, `public/cron`.
pub fn typed_name(owner: &str, full: &str) -> String {
    match full.strip_prefix(owner).and_then(|r| r.strip_prefix('/')) {
        Some(local) => local.to_string(),
        None => full.to_string(),
    }
}

impl Monitors {
    /// Monitors kept in `store`, as they were at the last stop; `run`
    /// starts their timer and worker (and re-evaluates them at once).
    pub fn open(
        store: Arc<dyn MonitorStore>,
        broker: Broker,
        clock: Clock,
        limits: MonitorLimits,
    ) -> Result<Monitors, StoreError> {
        let records = store.load_monitors()?;
        Ok(Monitors::new(store, records, broker, clock, limits))
    }

    /// Monitors from `records` (already loaded from `store`).
    pub fn new(
        store: Arc<dyn MonitorStore>,
        records: Vec<MonitorRecord>,
        broker: Broker,
        clock: Clock,
        limits: MonitorLimits,
    ) -> Monitors {
        let mut state = State::default();
        for rec in records {
            let entry = Entry {
                last_ping: rec.last_ping_ms,
                revision: store.revision(&rec.id()),
                generation: 0,
                rec,
            };
            state.insert(entry);
        }
        let (work, work_rx) = mpsc::unbounded_channel();
        Monitors {
            inner: Arc::new(Inner {
                store,
                broker,
                clock,
                limits,
                state: Mutex::new(state),
                work,
                work_rx: Mutex::new(Some(work_rx)),
                wake: Notify::new(),
                timer_at: AtomicU64::new(u64::MAX),
            }),
        }
    }

    pub fn now(&self) -> Millis {
        self.inner.clock.now()
    }

    /// Runs the timer and the worker until `stop`; the worker then finishes
    /// the work already queued. Call once.
    pub async fn run(&self, stop: CancellationToken) {
        let Some(rx) = lock(&self.inner.work_rx).take() else {
            return;
        };
        let timer = self.timer(stop.clone());
        let worker = self.worker(rx, stop);
        tokio::join!(timer, worker);
    }

    /// Creates or replaces `owner`'s monitor on `topic`; durable on return.
    pub async fn set(
        &self,
        owner: &Identity,
        topic: &TopicRef,
        window: Duration,
    ) -> Result<(), MonitorError> {
        let id = monitor_id(&owner.name, &topic.full);
        let now = self.now();
        let window_ms = window.as_millis() as Millis;
        let (reply, done) = oneshot::channel();
        let before = {
            let mut st = lock(&self.inner.state);
            let before = st.by_id.get(&id).cloned();
            if before.is_none() {
                self.check_room(&st, owner)?;
            }
            let mut entry = before.clone().unwrap_or_else(|| Entry {
                rec: MonitorRecord {
                    owner: owner.name.clone(),
                    fingerprint: owner.fingerprint.clone(),
                    anonymous: owner.anonymous,
                    topic: topic.full.clone(),
                    window_ms,
                    created_ms: now,
                    last_ping_ms: None,
                    healthy: false,
                    reason: "no ping yet".into(),
                    next_seq: 0,
                },
                last_ping: None,
                revision: 0,
                generation: 0,
            });
            entry.rec.window_ms = window_ms;
            // A new monitor's history starts with its first state; a
            // replaced one changes only if the new window says so.
            let change = match &before {
                None => Some(record_change(
                    &mut entry.rec,
                    false,
                    "no ping yet".into(),
                    now,
                )),
                Some(_) => None,
            };
            let (more, alert) = match change {
                Some(c) => (Some(c), None),
                None => self.reevaluate(&mut entry, now),
            };
            let generation = entry.generation;
            st.insert(entry);
            self.queue(Work::Persist {
                id: id.clone(),
                change: more,
                alert,
                generation,
                window: Some(window_ms),
                reply: Some(reply),
            });
            before
        };
        self.inner.wake.notify_one();
        let err = match done.await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(_) => StoreError::Failed("the server is stopping".into()),
        };
        // Not stored: as if it had not happened.
        let mut st = lock(&self.inner.state);
        st.remove(&id);
        if let Some(b) = before {
            st.insert(b);
        }
        Err(MonitorError::Store(err))
    }

    fn check_room(&self, st: &State, owner: &Identity) -> Result<(), MonitorError> {
        let limits = self.inner.limits;
        let limit = if owner.anonymous {
            limits.per_anonymous
        } else {
            limits.per_user
        };
        let mine = st.by_owner.get(&owner.name).map_or(0, BTreeSet::len);
        if mine >= limit {
            return Err(MonitorError::TooMany {
                user: owner.name.clone(),
                limit,
            });
        }
        if st.by_id.len() >= limits.total {
            return Err(MonitorError::Full(limits.total));
        }
        Ok(())
    }

    /// Deletes `owner`'s monitor on `topic` and its history.
    pub async fn delete(&self, owner: &str, topic: &TopicRef) -> Result<(), MonitorError> {
        let id = monitor_id(owner, &topic.full);
        let (reply, done) = oneshot::channel();
        let before = {
            let mut st = lock(&self.inner.state);
            let Some(before) = st.remove(&id) else {
                return Err(MonitorError::NotFound(typed_name(owner, &topic.full)));
            };
            self.queue(Work::Delete {
                owner: owner.to_string(),
                topic: topic.full.clone(),
                reply,
            });
            before
        };
        match done.await {
            Ok(Ok(())) => Ok(()),
            other => {
                lock(&self.inner.state).insert(before);
                Err(MonitorError::Store(match other {
                    Ok(Err(e)) => e,
                    _ => StoreError::Failed("the server is stopping".into()),
                }))
            }
        }
    }

    /// A `pub` or `pipe` on `full` ended well, or a long one is still
    /// sending: every monitor on the topic is healthy from now.
    pub fn ping(&self, full: &str) {
        let now = self.now();
        let write_every = self.inner.store.ping_write_every();
        let mut st = lock(&self.inner.state);
        let Some(ids) = st.by_topic.get(full).cloned() else {
            return;
        };
        let mut earliest = u64::MAX;
        for id in ids {
            let Some(entry) = st.by_id.get_mut(&id) else {
                continue;
            };
            entry.last_ping = Some(now);
            let (change, alert) = self.reevaluate(entry, now);
            let stale = entry
                .rec
                .last_ping_ms
                .is_none_or(|p| now.saturating_sub(p) >= write_every);
            if let Some(at) = next_check(entry.rec.window_ms, entry.last_ping) {
                earliest = earliest.min(at);
            }
            if change.is_some() || stale {
                entry.rec.last_ping_ms = Some(now);
                let generation = entry.generation;
                self.queue(Work::Persist {
                    id,
                    change,
                    alert,
                    generation,
                    window: None,
                    reply: None,
                });
            }
        }
        drop(st);
        if earliest < self.inner.timer_at.load(Ordering::Relaxed) {
            self.inner.wake.notify_one();
        }
    }

    /// Brings `entry`'s recorded health in line with its pings at `now`;
    /// returns the change and its alert line, if it changed.
    fn reevaluate(&self, entry: &mut Entry, now: Millis) -> (Option<HealthChange>, Option<String>) {
        let v = evaluate(entry.rec.window_ms, entry.last_ping, now);
        if v.healthy == entry.rec.healthy {
            return (None, None);
        }
        let at = match (v.healthy, v.since) {
            (false, Some(end)) => end,
            _ => now,
        };
        if v.healthy {
            entry.rec.last_ping_ms = entry.last_ping;
        }
        let change = record_change(&mut entry.rec, v.healthy, v.reason.clone(), at);
        let name = typed_name(&entry.rec.owner, &entry.rec.topic);
        tracing::info!(
            user = %entry.rec.owner,
            topic = %entry.rec.topic,
            health = if v.healthy { "healthy" } else { "unhealthy" },
            reason = %v.reason,
            "monitor changed"
        );
        (
            Some(change),
            Some(alert_line(&name, v.healthy, &v.reason, at)),
        )
    }

    fn queue(&self, work: Work) {
        // The receiver only goes with the process (`run` drains it).
        if self.inner.work.send(work).is_err() {
            tracing::warn!("monitor work dropped: the monitors are stopped");
        }
    }
}

/// Counts a change into `rec` and returns it.
fn record_change(
    rec: &mut MonitorRecord,
    healthy: bool,
    reason: String,
    at: Millis,
) -> HealthChange {
    let change = HealthChange {
        seq: rec.next_seq,
        at_ms: at,
        healthy,
        reason: reason.clone(),
    };
    rec.next_seq += 1;
    rec.healthy = healthy;
    rec.reason = reason;
    change
}

impl State {
    fn insert(&mut self, e: Entry) {
        let id = e.rec.id();
        self.by_topic
            .entry(e.rec.topic.clone())
            .or_default()
            .insert(id.clone());
        self.by_owner
            .entry(e.rec.owner.clone())
            .or_default()
            .insert(e.rec.topic.clone());
        self.by_id.insert(id, e);
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let e = self.by_id.remove(id)?;
        if let Some(ids) = self.by_topic.get_mut(&e.rec.topic) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_topic.remove(&e.rec.topic);
            }
        }
        if let Some(topics) = self.by_owner.get_mut(&e.rec.owner) {
            topics.remove(&e.rec.topic);
            if topics.is_empty() {
                self.by_owner.remove(&e.rec.owner);
            }
        }
        Some(e)
    }
}
