//! Another node's state of a monitor, taken in (SPEC §14): from the shared
//! store's watch, or from a write of ours that lost to that node's.
//!
//! The stored state replaces the entry if it is newer than the one the
//! entry was made from, under a new generation (so work queued on the old
//! one is dropped). A ping seen here but not yet written is kept, and the
//! replaced entry is looked at again at once: that ping may make it healthy
//! (a change this node then tries to write, and publishes if it wins), or
//! it is simply written so the other nodes learn of it.

use super::{Entry, Monitors, State, Work, lock};
use crate::store::MonitorRecord;

impl Monitors {
    /// Takes in monitor `id` as stored at `revision` (`None`: deleted).
    pub fn apply_stored(&self, id: &str, current: Option<MonitorRecord>, revision: u64) {
        let mut st = lock(&self.inner.state);
        self.adopt(&mut st, id, current, revision);
        drop(st);
        // Its window may end earlier (or it is new): the timer looks again.
        self.inner.wake.notify_one();
    }

    /// `apply_stored` under the lock.
    pub(super) fn adopt(
        &self,
        st: &mut State,
        id: &str,
        current: Option<MonitorRecord>,
        revision: u64,
    ) {
        let mine = st.by_id.get(id);
        if mine.is_some_and(|m| m.revision >= revision) {
            return;
        }
        let Some(rec) = current else {
            // A monitor made here and not stored yet is not the one that
            // was deleted: its own write decides.
            if mine.is_some_and(|m| m.revision != 0) {
                st.remove(id);
            }
            return;
        };
        if rec.id() != id {
            return;
        }
        let local_ping = st.remove(id).and_then(|m| m.last_ping);
        st.generations += 1;
        let mut entry = Entry {
            last_ping: local_ping.max(rec.last_ping_ms),
            rec,
            revision,
            generation: st.generations,
        };
        let (change, alert) = self.reevaluate(&mut entry, self.now());
        let ping_unwritten = entry.last_ping > entry.rec.last_ping_ms;
        if ping_unwritten {
            entry.rec.last_ping_ms = entry.last_ping;
        }
        let generation = entry.generation;
        st.insert(entry);
        if change.is_some() || ping_unwritten {
            self.queue(Work::Persist {
                id: id.to_string(),
                change,
                alert,
                generation,
                window: None,
                reply: None,
            });
        }
    }
}
