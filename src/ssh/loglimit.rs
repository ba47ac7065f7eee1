//! Refusals are what anyone on the internet can cause at will, one per TCP
//! connection, so their log lines are rate-limited: a flood costs a few
//! lines per second instead of one line per connection, and disks don't
//! fill. The first refusals of each window are still logged whole, and the
//! next logged line says how many were left out before it.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines allowed per window (per second by default) for one kind of event.
#[derive(Debug)]
pub struct LogLimit {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

impl LogLimit {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            state: Mutex::new(State {
                start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Ten lines a second.
    pub fn per_second() -> Self {
        Self::new(10, Duration::from_secs(1))
    }

    /// `Some(n)`: log this event, saying `n` earlier ones were left out.
    /// `None`: leave it out (it is counted for the next logged line).
    pub fn check(&self, now: Instant) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-count; the
        // counts are still usable.
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let expired = s
            .start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.window);
        if expired {
            s.start = Some(now);
            s.logged = 0;
        }
        if s.logged < self.per_window {
            s.logged += 1;
            Some(std::mem::take(&mut s.suppressed))
        } else {
            s.suppressed += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_logs_the_first_lines_then_counts_the_rest() {
        let limit = LogLimit::new(3, Duration::from_secs(1));
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let seen: Vec<Option<u64>> = (0..6).map(|i| limit.check(ms(i))).collect();
        assert_eq!(seen, [Some(0), Some(0), Some(0), None, None, None]);
        // Next window: the first line carries the count left out.
        assert_eq!(limit.check(ms(1000)), Some(3));
        assert_eq!(limit.check(ms(1001)), Some(0));
        assert_eq!(limit.check(ms(1002)), Some(0));
        assert_eq!(limit.check(ms(1003)), None);
        // A quiet spell: the count waits for the next line.
        assert_eq!(limit.check(ms(60_000)), Some(1));
    }

    #[test]
    fn a_steady_trickle_is_never_cut() {
        let limit = LogLimit::new(10, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..100 {
            assert_eq!(limit.check(t0 + Duration::from_millis(i * 200)), Some(0));
        }
    }
}
