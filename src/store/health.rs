//! Store health (SPEC §10): after an I/O error the store is *unavailable*
//! — `GET /healthz` answers `503 store unavailable` — until a probe shows it
//! can store again. That span is one *episode*: counted once and logged
//! once when it starts and once when it ends, however many operations fail
//! in between.
//!
//! The probe runs on a thread of its own (the reviver), started with the
//! episode: it reopens redb if the failure closed it, commits a tiny write,
//! and writes and fsyncs a chunk-sized file beside the bodies, so "available"
//! means a chunk fits again, not only that redb found a free page. It tries
//! with a growing pause (50 ms up to 1 s) and at once when the store is told
//! space was freed (a message removed). Meanwhile operations keep trying on
//! their own: one that works is just that much earlier.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{Inner, META, Store, StoreError, lock};

/// What a probe writes beside the bodies: one chunk's worth.
const PROBE_BYTES: usize = 256 * 1024;
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
const PROBE_FILE: &str = ".probe";

/// What `/healthz` and metrics see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreHealth {
    pub available: bool,
    /// The failure that started the current episode.
    pub cause: Option<String>,
    /// Episodes since start (`sshpipe_store_errors_total`).
    pub episodes: u64,
}

#[derive(Debug)]
pub(super) struct Health {
    available: watch::Sender<bool>,
    /// The current episode's cause and start.
    episode: Mutex<Option<(String, Instant)>>,
    episodes: AtomicU64,
    nudge: Arc<Nudge>,
}

/// Wakes the reviver early.
#[derive(Debug, Default)]
struct Nudge {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Nudge {
    fn wake(&self) {
        *lock(&self.woken) = true;
        self.cond.notify_all();
    }

    fn wait(&self, pause: Duration) {
        let woken = lock(&self.woken);
        let (mut woken, _) = self
            .cond
            .wait_timeout_while(woken, pause, |w| !*w)
            .unwrap_or_else(|e| e.into_inner());
        *woken = false;
    }
}

impl Health {
    pub(super) fn new() -> Health {
        Health {
            available: watch::Sender::new(true),
            episode: Mutex::new(None),
            episodes: AtomicU64::new(0),
            nudge: Arc::default(),
        }
    }
}

impl Store {
    pub fn health(&self) -> StoreHealth {
        let h = &self.inner.health;
        StoreHealth {
            available: *h.available.borrow(),
            cause: lock(&h.episode).as_ref().map(|(c, _)| c.clone()),
            episodes: h.episodes.load(Ordering::Relaxed),
        }
    }

    /// Changes whenever the store becomes available or unavailable.
    pub fn health_changes(&self) -> watch::Receiver<bool> {
        self.inner.health.available.subscribe()
    }

    /// Space was freed: if the store is unavailable, probe now.
    pub(super) fn space_freed(&self) {
        if !*self.inner.health.available.borrow() {
            self.inner.health.nudge.wake();
        }
    }

    /// An operation failed with `err`: starts an episode unless one is on.
    pub(super) fn failed(
        &self,
        err: &StoreError,
        detail: &str,
        doing: &str,
        path: &std::path::Path,
    ) {
        let h = &self.inner.health;
        {
            let mut episode = lock(&h.episode);
            if episode.is_some() {
                tracing::debug!(error = %detail, doing, "store still unavailable");
                return;
            }
            *episode = Some((err.to_string(), Instant::now()));
            h.episodes.fetch_add(1, Ordering::Relaxed);
            h.available.send_replace(false);
        }
        tracing::error!(
            error = %detail,
            doing,
            file = %path.display(),
            "store unavailable: operations that need it fail until it works again"
        );
        let (weak, nudge) = (Arc::downgrade(&self.inner), Arc::clone(&h.nudge));
        let spawned = std::thread::Builder::new()
            .name("store-reviver".into())
            .spawn(move || revive(&weak, &nudge));
        if let Err(e) = spawned {
            // Operations still reopen the store themselves; only the
            // idle-time recovery (and so /healthz) waits for them.
            tracing::warn!(error = %e, "cannot start the store's reviver thread");
        }
    }

    /// Ends the episode (the probe worked).
    fn recovered(&self) {
        let h = &self.inner.health;
        let Some((cause, since)) = lock(&h.episode).take() else {
            return;
        };
        h.available.send_replace(true);
        tracing::info!(
            after_ms = since.elapsed().as_millis() as u64,
            was = %cause,
            file = %self.inner.file.display(),
            "store available again"
        );
    }

    /// Can the store take a message again? Reopens redb if needed, commits
    /// one tiny write, and writes a chunk-sized file beside the bodies.
    fn probe(&self) -> Result<(), StoreError> {
        self.write(|txn| {
            txn.open_table(META)?
                .insert("probe", super::queue::unix_ms())?;
            Ok(())
        })?;
        let path = self.inner.queue_dir.join(PROBE_FILE);
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)?;
            f.write_all(&[0u8; PROBE_BYTES])?;
            f.sync_data()
        })();
        let _ = std::fs::remove_file(&path);
        written.map_err(|e| self.body_failed(&e, "probing", &path))
    }
}

/// The reviver: probes until the store works or is dropped.
fn revive(store: &Weak<Inner>, nudge: &Nudge) {
    let mut pause = FIRST_PAUSE;
    loop {
        nudge.wait(pause);
        // Holds the store only while probing, so a store dropped meanwhile
        // (a server shut down) closes its file at once.
        let Some(inner) = store.upgrade() else {
            return;
        };
        let store = Store { inner };
        if store.probe().is_ok() {
            store.recovered();
            return;
        }
        pause = (pause * 2).min(LONGEST_PAUSE);
    }
}
