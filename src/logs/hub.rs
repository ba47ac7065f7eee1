//! Who reads which log lines, and the bounded queue of each reader.
//!
//! Readers are indexed by the user whose lines they want, so handing out a
//! line costs a lookup, not a walk over every reader. The lock is a
//! read-write lock held for a few `try_send`s only: the tracing layer takes
//! the read side on every event somebody wants, and only a reader arriving
//! or leaving takes the write side.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Lines one reader may have waiting. The SSH window (2 MiB) in front of it
/// holds thousands more, so only a reader that stopped reading for a while
/// ever reaches this; it bounds what such a reader costs the server.
pub const QUEUE_LINES: usize = 256;

/// Which lines a reader gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The lines whose `user` is this user.
    User(String),
    /// Every line (`logs --all`, admins only; the caller checks).
    All,
}

/// One line for a reader.
#[derive(Debug, Clone)]
pub struct LogItem {
    /// Lines this reader missed just before this one (its queue was full).
    pub skipped_before: u64,
    /// The JSON object, ending with `\n`.
    pub line: Arc<str>,
}

/// The log readers of a process. Cheap to clone; clones share readers.
#[derive(Debug, Clone, Default)]
pub struct LogHub {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    readers: RwLock<Readers>,
    /// Readers now registered: the layer's first, lock-free check.
    count: AtomicUsize,
    next_id: AtomicU64,
    /// Lines dropped for readers too slow for them, ever.
    skipped: AtomicU64,
    /// Warnings and errors of the broker and store that carry an `error`
    /// (each a failed store operation); see `layer`.
    store_errors: AtomicU64,
}

#[derive(Debug, Default)]
struct Readers {
    by_user: HashMap<String, Vec<Arc<Reader>>>,
    all: Vec<Arc<Reader>>,
}

#[derive(Debug)]
struct Reader {
    id: u64,
    tx: mpsc::Sender<LogItem>,
    /// Lines dropped since the last one that got through.
    pending_skips: AtomicU64,
}

impl Reader {
    /// Queues `line`, or drops and counts it; never waits.
    fn offer(&self, line: &Arc<str>) -> bool {
        let skipped_before = self.pending_skips.swap(0, Ordering::AcqRel);
        let item = LogItem {
            skipped_before,
            line: Arc::clone(line),
        };
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.pending_skips
                    .fetch_add(skipped_before + 1, Ordering::AcqRel);
                false
            }
            // Its stream is being dropped and will unregister it.
            Err(TrySendError::Closed(_)) => true,
        }
    }
}

/// One reader's lines; dropping it stops them.
#[derive(Debug)]
pub struct LogStream {
    hub: LogHub,
    scope: Scope,
    id: u64,
    rx: mpsc::Receiver<LogItem>,
}

impl LogStream {
    /// The next line, waiting for one.
    pub async fn next(&mut self) -> Option<LogItem> {
        self.rx.recv().await
    }

    /// The next line if one is waiting.
    pub fn try_next(&mut self) -> Option<LogItem> {
        self.rx.try_recv().ok()
    }
}

impl Drop for LogStream {
    fn drop(&mut self) {
        self.hub.unregister(&self.scope, self.id);
    }
}

impl LogHub {
    /// The hub of this process. A tracing subscriber is process-wide, so
    /// the layer that feeds readers is too: the server's `App` and the layer
    /// installed by `cli` meet here.
    pub fn global() -> LogHub {
        static HUB: OnceLock<LogHub> = OnceLock::new();
        HUB.get_or_init(LogHub::default).clone()
    }

    /// Starts reading the lines of `scope`.
    pub fn watch(&self, scope: Scope) -> LogStream {
        let (tx, rx) = mpsc::channel(QUEUE_LINES);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let reader = Arc::new(Reader {
            id,
            tx,
            pending_skips: AtomicU64::new(0),
        });
        let mut readers = self.write();
        match &scope {
            Scope::User(user) => readers
                .by_user
                .entry(user.clone())
                .or_default()
                .push(reader),
            Scope::All => readers.all.push(reader),
        }
        self.inner.count.fetch_add(1, Ordering::AcqRel);
        drop(readers);
        LogStream {
            hub: self.clone(),
            scope,
            id,
            rx,
        }
    }

    fn unregister(&self, scope: &Scope, id: u64) {
        let mut readers = self.write();
        let list = match scope {
            Scope::User(user) => readers.by_user.get_mut(user),
            Scope::All => Some(&mut readers.all),
        };
        let Some(list) = list else { return };
        let before = list.len();
        list.retain(|r| r.id != id);
        let removed = before - list.len();
        if let Scope::User(user) = scope
            && list.is_empty()
        {
            readers.by_user.remove(user);
        }
        self.inner.count.fetch_sub(removed, Ordering::AcqRel);
    }

    /// Is anybody reading at all? (One atomic load: the cost of an event
    /// when nobody is.)
    pub(crate) fn has_readers(&self) -> bool {
        self.inner.count.load(Ordering::Acquire) > 0
    }

    /// Would a line of `user` (or of nobody) reach a reader?
    pub(crate) fn wants(&self, user: Option<&str>) -> bool {
        let readers = self.read();
        !readers.all.is_empty() || user.is_some_and(|u| readers.by_user.contains_key(u))
    }

    /// Hands `line` to the readers of `user` and of every line. Never waits.
    pub(crate) fn publish(&self, user: Option<&str>, line: &Arc<str>) {
        let readers = self.read();
        let own = user.and_then(|u| readers.by_user.get(u));
        let mut dropped = 0;
        for reader in own.into_iter().flatten().chain(readers.all.iter()) {
            if !reader.offer(line) {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.inner.skipped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    /// Is `user` reading their lines now? Lets tests wait for a reader
    /// instead of sleeping.
    pub fn is_watching(&self, user: &str) -> bool {
        self.read().by_user.contains_key(user)
    }

    /// Readers of `--all` now.
    pub fn all_readers(&self) -> usize {
        self.read().all.len()
    }

    /// Lines dropped for slow readers since the process started.
    pub fn skipped_lines(&self) -> u64 {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    pub(crate) fn count_store_error(&self) {
        self.inner.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed store operations logged since the process started.
    pub fn store_errors(&self) -> u64 {
        self.inner.store_errors.load(Ordering::Relaxed)
    }

    fn read(&self) -> RwLockReadGuard<'_, Readers> {
        // Poisoning only means a panic elsewhere; the index stays whole
        // because every critical section leaves it so.
        self.inner.readers.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Readers> {
        self.inner
            .readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn line(s: &str) -> Arc<str> {
        Arc::from(format!("{s}\n"))
    }

    #[tokio::test]
    async fn lines_reach_their_user_and_all_readers_only() {
        let hub = LogHub::default();
        let mut alice = hub.watch(Scope::User("alice".into()));
        let mut admin = hub.watch(Scope::All);
        let bob = hub.watch(Scope::User("bob".into()));
        assert!(hub.wants(Some("alice")) && hub.wants(None));
        hub.publish(Some("alice"), &line("a"));
        hub.publish(None, &line("server"));
        assert_eq!(&*alice.next().await.unwrap().line, "a\n");
        assert_eq!(&*admin.next().await.unwrap().line, "a\n");
        assert_eq!(&*admin.next().await.unwrap().line, "server\n");
        drop(bob);
        assert!(!hub.is_watching("bob"));
        drop(admin);
        assert!(!hub.wants(None) && !hub.wants(Some("bob")));
        assert!(hub.wants(Some("alice")));
        drop(alice);
        assert!(!hub.has_readers());
    }

    #[tokio::test]
    async fn a_full_queue_skips_and_says_how_many_before_the_next_line() {
        let hub = LogHub::default();
        let mut r = hub.watch(Scope::User("u".into()));
        for i in 0..QUEUE_LINES + 5 {
            hub.publish(Some("u"), &line(&i.to_string()));
        }
        assert_eq!(hub.skipped_lines(), 5);
        for i in 0..QUEUE_LINES {
            let item = r.next().await.unwrap();
            assert_eq!(item.skipped_before, 0);
            assert_eq!(&*item.line, format!("{i}\n"));
        }
        hub.publish(Some("u"), &line("next"));
        let item = r.next().await.unwrap();
        assert_eq!((item.skipped_before, &*item.line), (5, "next\n"));
        hub.publish(Some("u"), &line("after"));
        assert_eq!(r.next().await.unwrap().skipped_before, 0);
    }
}
