//! Line framing for topics with several senders (SPEC §5.5).
//!
//! When two or more senders share a topic their chunks interleave at the
//! receivers, so each sender must hand over whole lines only; otherwise
//! `grep` on the other end sees half a line from one host glued to half a
//! line from another. A lone sender is never cut or delayed: the framer only
//! holds data back while `shared` is true. Pure logic, so it is tested by
//! tables and properties without any I/O.

use bytes::{Bytes, BytesMut};

/// A partial line longer than this is sent anyway (SPEC §5.5).
pub const MAX_HELD: usize = 64 * 1024;

/// Holds the tail of a sender's data after its last newline.
#[derive(Debug, Default)]
pub struct Framer {
    /// Bytes after the last `\n` seen while the topic had several senders.
    held: BytesMut,
}

impl Framer {
    /// True while a partial line waits for its newline (the caller flushes it
    /// after 100 ms without new data).
    pub fn has_held(&self) -> bool {
        !self.held.is_empty()
    }

    /// Takes whatever is held, for the idle timer or the sender's end.
    pub fn take_held(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }

    /// Accepts a chunk from the sender and returns what may be sent now.
    /// `shared` says whether the topic currently has two or more senders.
    pub fn push(&mut self, data: Bytes, shared: bool) -> Option<Bytes> {
        if !shared {
            return match self.take_held() {
                None => (!data.is_empty()).then_some(data),
                Some(held) => Some(concat(held, &data)),
            };
        }
        let Some(last_nl) = data.iter().rposition(|&b| b == b'\n') else {
            self.held.extend_from_slice(&data);
            return (self.held.len() >= MAX_HELD).then(|| self.held.split().freeze());
        };
        let (lines, rest) = (data.slice(..=last_nl), data.slice(last_nl + 1..));
        let out = match self.take_held() {
            None => lines,
            Some(held) => concat(held, &lines),
        };
        self.held.extend_from_slice(&rest);
        Some(out)
    }
}

fn concat(head: Bytes, tail: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(head.len() + tail.len());
    buf.extend_from_slice(&head);
    buf.extend_from_slice(tail);
    buf.freeze()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn push(f: &mut Framer, s: &str, shared: bool) -> Option<String> {
        f.push(Bytes::copy_from_slice(s.as_bytes()), shared)
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
    }

    #[test]
    fn lone_sender_passes_through() {
        let mut f = Framer::default();
        assert_eq!(push(&mut f, "abc", false).as_deref(), Some("abc"));
        assert!(!f.has_held());
    }

    #[test]
    fn shared_topic_cuts_at_last_newline() {
        let mut f = Framer::default();
        assert_eq!(push(&mut f, "a\nb\nc", true).as_deref(), Some("a\nb\n"));
        assert!(f.has_held());
        assert_eq!(push(&mut f, "d", true), None);
        assert_eq!(push(&mut f, "e\nf", true).as_deref(), Some("cde\n"));
        assert_eq!(f.take_held().unwrap(), Bytes::from_static(b"f"));
    }

    #[test]
    fn held_partial_goes_first_when_topic_becomes_unshared() {
        let mut f = Framer::default();
        assert_eq!(push(&mut f, "x\npart", true).as_deref(), Some("x\n"));
        assert_eq!(push(&mut f, "ial", false).as_deref(), Some("partial"));
    }

    #[test]
    fn long_partial_line_is_released_at_64k() {
        let mut f = Framer::default();
        let big = "y".repeat(MAX_HELD - 1);
        assert_eq!(push(&mut f, &big, true), None);
        let out = push(&mut f, "zz", true).unwrap();
        assert_eq!(out.len(), MAX_HELD + 1);
        assert!(!f.has_held());
    }

    proptest! {
        /// Whatever the chunking and sharing, bytes come out in order, unchanged,
        /// and while shared every emitted piece ends at a newline or is >= 64 KiB.
        #[test]
        fn never_loses_reorders_or_cuts_lines(
            chunks in proptest::collection::vec((proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..200), any::<bool>()), 0..40)
        ) {
            let mut f = Framer::default();
            let mut input = Vec::new();
            let mut output = Vec::new();
            for (chunk, shared) in chunks {
                input.extend_from_slice(&chunk);
                if let Some(out) = f.push(Bytes::from(chunk), shared) {
                    if shared {
                        prop_assert!(out.ends_with(b"\n") || out.len() >= MAX_HELD);
                    }
                    output.extend_from_slice(&out);
                }
            }
            if let Some(rest) = f.take_held() {
                output.extend_from_slice(&rest);
            }
            prop_assert_eq!(input, output);
        }
    }
}
