//! The credit window of one forwarder (SPEC §14: lossless pacing across
//! nodes), as plain state: no I/O, no clock, so it is tested by tables.
//!
//! At most `W` frames are out that the receiving node has not handed to
//! its receivers; the sender waits for credit beyond that, which is how a
//! slow `sub` on node B paces a `pub` on node A. Frames stay in the ring
//! until processed, so any the receiver says it has not received can be
//! sent again: a NATS failover loses nothing.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug)]
pub struct Window {
    limit: u64,
    /// The next sequence number to give out (the first is 1).
    next: u64,
    /// Highest sequence the receiver handed on.
    processed: u64,
    /// Highest sequence the receiver has, in order.
    received: u64,
    /// Sent, not yet processed: (seq, encoded frame).
    ring: VecDeque<(u64, Bytes)>,
}

impl Window {
    pub fn new(limit: u64) -> Self {
        Window {
            limit: limit.max(1),
            next: 1,
            processed: 0,
            received: 0,
            ring: VecDeque::new(),
        }
    }

    /// May another frame go out now?
    pub fn open(&self) -> bool {
        self.next - 1 - self.processed < self.limit
    }

    /// The sequence number for the next frame.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Records a frame sent with `next_seq()`.
    pub fn sent(&mut self, frame: Bytes) {
        self.ring.push_back((self.next, frame));
        self.next += 1;
    }

    /// Applies a credit; true when it moved anything on.
    pub fn credit(&mut self, processed: u64, received: u64) -> bool {
        let last = self.next - 1;
        let processed = processed.min(last);
        let received = received.max(processed).min(last);
        let moved = processed > self.processed || received > self.received;
        self.processed = self.processed.max(processed);
        self.received = self.received.max(received);
        while self.ring.front().is_some_and(|(s, _)| *s <= self.processed) {
            self.ring.pop_front();
        }
        moved
    }

    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Frames sent that the receiver has not said it has.
    pub fn missing(&self) -> impl Iterator<Item = &Bytes> {
        let received = self.received;
        self.ring
            .iter()
            .filter(move |(s, _)| *s > received)
            .map(|(_, f)| f)
    }

    /// Everything sent was processed.
    pub fn idle(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![n])
    }

    #[test]
    fn the_window_closes_at_its_limit_and_reopens_on_credit() {
        let mut w = Window::new(3);
        for n in 1..=3 {
            assert!(w.open());
            assert_eq!(w.next_seq(), n);
            w.sent(frame(n as u8));
        }
        assert!(!w.open());
        // Received moved on (a resend would skip those), but received
        // alone does not open the window.
        assert!(w.credit(0, 2));
        assert!(!w.open());
        assert!(w.credit(1, 2));
        assert!(w.open());
        assert_eq!(w.processed(), 1);
    }

    #[test]
    fn only_what_was_not_received_is_sent_again() {
        let mut w = Window::new(8);
        for n in 1..=5 {
            w.sent(frame(n));
        }
        w.credit(1, 3);
        let again: Vec<_> = w.missing().cloned().collect();
        assert_eq!(again, vec![frame(4), frame(5)]);
        w.credit(5, 5);
        assert!(w.idle());
        assert_eq!(w.missing().count(), 0);
    }

    #[test]
    fn stale_or_wild_credits_change_nothing_they_should_not() {
        let mut w = Window::new(4);
        for n in 1..=4 {
            w.sent(frame(n));
        }
        w.credit(3, 4);
        // An old credit arriving late moves nothing back.
        assert!(!w.credit(1, 2));
        assert_eq!(w.processed(), 3);
        // A credit beyond what was sent is capped to what was sent.
        w.credit(99, 99);
        assert_eq!(w.processed(), 4);
        assert!(w.idle());
        assert!(w.open());
    }

    proptest::proptest! {
        /// Whatever order credits come in, never more than the limit is out
        /// unprocessed, and the ring holds exactly the unprocessed frames.
        #[test]
        fn the_limit_always_holds(limit in 1u64..16, credits in proptest::collection::vec((0u64..64, 0u64..64), 0..64)) {
            let mut w = Window::new(limit);
            for (p, r) in credits {
                while w.open() {
                    w.sent(frame(0));
                }
                proptest::prop_assert!(w.next_seq() - 1 - w.processed() <= limit);
                w.credit(p, r);
                proptest::prop_assert_eq!(w.ring.len() as u64, w.next_seq() - 1 - w.processed());
            }
        }
    }
}
