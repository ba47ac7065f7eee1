//! `uptime`: how much of a time range a monitor was healthy, from its
//! recorded health changes (SPEC §13). Pure: the changes, the range and
//! "now" in, three durations out.
//!
//! Each change holds until the next one; the newest holds until now. Time
//! before the first change (the monitor did not exist yet, or its oldest
//! changes were dropped by the history bound) and time after now are
//! "not monitored", and the share is taken over the monitored time only.

use std::time::Duration;

use super::time::{Millis, rfc3339};
use crate::command::format_duration;

/// How one range splits up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Uptime {
    pub healthy: Millis,
    pub unhealthy: Millis,
    pub unmonitored: Millis,
}

impl Uptime {
    /// Healthy time over monitored time, in percent (`None`: none monitored).
    pub fn percent(&self) -> Option<f64> {
        let monitored = self.healthy + self.unhealthy;
        (monitored > 0).then(|| self.healthy as f64 * 100.0 / monitored as f64)
    }
}

/// Splits `[from, to)` by `changes` (`(at, healthy)`, oldest first).
pub fn uptime(changes: &[(Millis, bool)], from: Millis, to: Millis, now: Millis) -> Uptime {
    let mut out = Uptime::default();
    let to = to.max(from);
    let clip = |a: Millis, b: Millis| b.min(to).saturating_sub(a.max(from));
    for (i, &(at, healthy)) in changes.iter().enumerate() {
        let until = changes.get(i + 1).map_or(now, |next| next.0).max(at);
        let span = clip(at, until.min(now.max(at)));
        if healthy {
            out.healthy += span;
        } else {
            out.unhealthy += span;
        }
    }
    out.unmonitored = (to - from) - out.healthy - out.unhealthy;
    out
}

/// The text `uptime` prints.
pub fn render(name: &str, from: Millis, to: Millis, u: &Uptime) -> String {
    let d = |ms: Millis| format_duration(Duration::from_millis(ms));
    let share = match u.percent() {
        Some(p) => format!("{p:.2}%"),
        None => "n/a (not monitored in this range)".into(),
    };
    format!(
        "monitor: {name}\nfrom: {}\nto: {} ({})\nuptime: {share}\nhealthy: {}\nunhealthy: {}\nnot monitored: {}\n",
        rfc3339(from),
        rfc3339(to),
        d(to.saturating_sub(from)),
        d(u.healthy),
        d(u.unhealthy),
        d(u.unmonitored),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(healthy: Millis, unhealthy: Millis, unmonitored: Millis) -> Uptime {
        Uptime {
            healthy,
            unhealthy,
            unmonitored,
        }
    }

    #[test]
    fn splits() {
        // created unhealthy at 10, healthy at 20, unhealthy at 50, now 100.
        let c = [(10, false), (20, true), (50, false)];
        let table = [
            (&c[..], 0, 100, 100, u(30, 60, 10)),
            (&c[..], 20, 50, 100, u(30, 0, 0)),
            (&c[..], 30, 60, 100, u(20, 10, 0)),
            (&c[..], 0, 200, 100, u(30, 60, 110)),
            (&c[..], 0, 5, 100, u(0, 0, 5)),
            (&c[..], 60, 60, 100, u(0, 0, 0)),
            (&c[..], 60, 40, 100, u(0, 0, 0)),
            (&[][..], 0, 100, 100, u(0, 0, 100)),
            // A change recorded in the future (a window's end) counts from then.
            (&[(10, true), (150, false)][..], 0, 200, 100, u(90, 0, 110)),
        ];
        for (changes, from, to, now, want) in table {
            assert_eq!(
                uptime(changes, from, to, now),
                want,
                "{changes:?} {from} {to}"
            );
        }
        assert_eq!(u(30, 10, 0).percent(), Some(75.0));
        assert_eq!(u(0, 0, 7).percent(), None);
    }

    #[test]
    fn renders() {
        let text = render("t", 0, 86_400_000, &u(3_600_000, 1_800_000, 81_000_000));
        assert_eq!(
            text,
            "monitor: t\nfrom: 1970-01-01T00:00:00Z\nto: 1970-01-02T00:00:00Z (24h0m0s)\n\
             uptime: 66.67%\nhealthy: 1h0m0s\nunhealthy: 30m0s\nnot monitored: 22h30m0s\n"
        );
    }

    proptest! {
        #[test]
        fn the_parts_always_add_up_to_the_range(
            mut steps in proptest::collection::vec((0u64..1000, any::<bool>()), 0..20),
            from in 0u64..20_000,
            len in 0u64..20_000,
            now in 0u64..20_000,
        ) {
            let mut at = 0;
            let changes: Vec<(Millis, bool)> = steps
                .drain(..)
                .map(|(gap, h)| { at += gap; (at, h) })
                .collect();
            let got = uptime(&changes, from, from + len, now);
            prop_assert_eq!(got.healthy + got.unhealthy + got.unmonitored, len);
            if let Some(p) = got.percent() {
                prop_assert!((0.0..=100.0).contains(&p));
            }
        }
    }
}
