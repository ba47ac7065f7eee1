//! The timer: sleeps until the earliest window end (or until a ping
//! brings an earlier one), then looks at every monitor. Its first look, at
//! start, is the re-evaluation after a restart.

use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::{Monitors, Work, lock};
use crate::monitor::health::next_check;
use crate::monitor::time::Millis;

impl Monitors {
    /// Looks at every monitor whenever a window may have ended.
    pub(super) async fn timer(&self, stop: CancellationToken) {
        loop {
            let next = self.tick();
            let sleep = async {
                if next == u64::MAX {
                    std::future::pending::<()>().await;
                } else {
                    tokio::time::sleep_until(self.inner.clock.instant_of(next)).await;
                }
            };
            tokio::select! {
                () = sleep => {}
                () = self.inner.wake.notified() => {}
                () = stop.cancelled() => return,
            }
        }
    }

    /// Re-evaluates every monitor now; returns the earliest window end to
    /// wake for.
    fn tick(&self) -> Millis {
        let now = self.now();
        let mut st = lock(&self.inner.state);
        let mut earliest = u64::MAX;
        let mut work = Vec::new();
        for (id, entry) in &mut st.by_id {
            let (change, alert) = self.reevaluate(entry, now);
            if change.is_some() {
                work.push(Work::Persist {
                    id: id.clone(),
                    change,
                    alert,
                    generation: entry.generation,
                    window: None,
                    reply: None,
                });
            }
            if entry.rec.healthy
                && let Some(at) = next_check(entry.rec.window_ms, entry.last_ping)
            {
                earliest = earliest.min(at);
            }
        }
        for w in work {
            self.queue(w);
        }
        // Under the lock: a ping after this compares with the right time.
        self.inner.timer_at.store(earliest, Ordering::Relaxed);
        earliest
    }
}
