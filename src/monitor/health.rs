//! A monitor's health from its window and its last ping (SPEC §13), as a
//! pure function of the time: healthy while the last ping is no older than
//! the window, unhealthy once the window has passed without one, and
//! unhealthy from the start until the first ping.
//!
//! The same function answers `status`, the timer (when does this monitor
//! next need looking at?) and the re-evaluation after a restart, so none of
//! them can disagree about where a window ends.

use super::time::{Millis, rfc3339};

/// What a monitor is at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub healthy: bool,
    /// `no ping yet`, `no ping since TIME`, or `pinged at TIME`.
    pub reason: String,
    /// When the current window ends (`None` before the first ping).
    pub window_end: Option<Millis>,
    /// For an unhealthy verdict with a ping: when it turned unhealthy (the
    /// window's end).
    pub since: Option<Millis>,
}

/// The health at `now` of a monitor with window `window` whose last ping
/// was at `last_ping`.
pub fn evaluate(window: Millis, last_ping: Option<Millis>, now: Millis) -> Verdict {
    let Some(ping) = last_ping else {
        return Verdict {
            healthy: false,
            reason: "no ping yet".into(),
            window_end: None,
            since: None,
        };
    };
    let end = ping.saturating_add(window);
    if now <= end {
        Verdict {
            healthy: true,
            reason: format!("pinged at {}", rfc3339(ping)),
            window_end: Some(end),
            since: None,
        }
    } else {
        Verdict {
            healthy: false,
            reason: format!("no ping since {}", rfc3339(ping)),
            window_end: Some(end),
            since: Some(end),
        }
    }
}

/// When a monitor that is healthy now must be looked at again: the first
/// moment after its window ends. `None` for one with no ping (it can only
/// change by a ping, which is not a timer's business).
pub fn next_check(window: Millis, last_ping: Option<Millis>) -> Option<Millis> {
    last_ping.map(|p| p.saturating_add(window).saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let s = 1_000_000;
        // (window, last ping, now) → (healthy, reason, window end)
        type Row = (
            Millis,
            Option<Millis>,
            Millis,
            bool,
            &'static str,
            Option<Millis>,
        );
        let table: [Row; 5] = [
            (1000, None, s, false, "no ping yet", None),
            (
                1000,
                Some(s),
                s,
                true,
                "pinged at 1970-01-01T00:16:40Z",
                Some(s + 1000),
            ),
            (
                1000,
                Some(s),
                s + 1000,
                true,
                "pinged at 1970-01-01T00:16:40Z",
                Some(s + 1000),
            ),
            (
                1000,
                Some(s),
                s + 1001,
                false,
                "no ping since 1970-01-01T00:16:40Z",
                Some(s + 1000),
            ),
            (
                u64::MAX,
                Some(s),
                u64::MAX,
                true,
                "pinged at 1970-01-01T00:16:40Z",
                Some(u64::MAX),
            ),
        ];
        for (window, ping, now, healthy, reason, end) in table {
            let v = evaluate(window, ping, now);
            assert_eq!(
                (v.healthy, v.reason.as_str(), v.window_end),
                (healthy, reason, end)
            );
            assert_eq!(v.since, (!healthy).then_some(end).flatten());
        }
    }

    #[test]
    fn the_next_check_is_the_first_unhealthy_moment() {
        for (window, ping) in [(1000, 5), (1, 0), (86_400_000, 1_796_185_462_000)] {
            let at = next_check(window, Some(ping)).unwrap_or(0);
            assert!(evaluate(window, Some(ping), at - 1).healthy);
            assert!(!evaluate(window, Some(ping), at).healthy);
        }
        assert_eq!(next_check(1000, None), None);
    }
}
