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

/// A line longer than this is handed out anyway, so one runaway sender
/// cannot make the server hold unbounded memory for a round-robin line.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Splits a stream into whole lines: a sender's for round-robin dispatch
/// (SPEC §7), where each line goes to one receiver and so must not be cut,
/// and a receiver's for SSE events. A partial line that reaches the limit
/// (`MAX_LINE` unless given) goes out as it is, so memory stays bounded.
#[derive(Debug)]
pub struct LineSplitter {
    partial: BytesMut,
    /// A partial line this long goes out as it is.
    limit: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        Self::with_limit(MAX_LINE)
    }
}

impl LineSplitter {
    /// A splitter that holds at most about `limit` bytes of a partial line.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            partial: BytesMut::new(),
            limit,
        }
    }

    /// Returns the complete lines in `data` (each with its newline); the
    /// tail after the last newline is kept for the next call.
    pub fn push(&mut self, data: Bytes) -> Vec<Bytes> {
        let mut lines = Vec::new();
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let line = rest.split_to(nl + 1);
            if self.partial.is_empty() {
                lines.push(line);
            } else {
                self.partial.extend_from_slice(&line);
                lines.push(self.partial.split().freeze());
            }
        }
        self.partial.extend_from_slice(&rest);
        if self.partial.len() >= self.limit {
            lines.push(self.partial.split().freeze());
        }
        lines
    }

    /// The last line, if the input did not end with a newline.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.partial.is_empty()).then(|| self.partial.split().freeze())
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

    #[test]
    fn splitter_yields_whole_lines_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(
            s.push(Bytes::from_static(b"a\nbb")),
            vec![Bytes::from_static(b"a\n")]
        );
        assert!(s.push(Bytes::from_static(b"b")).is_empty());
        assert_eq!(
            s.push(Bytes::from_static(b"\nc\nd")),
            vec![Bytes::from_static(b"bbb\n"), Bytes::from_static(b"c\n")]
        );
        assert_eq!(s.finish(), Some(Bytes::from_static(b"d")));
        assert_eq!(s.finish(), None);
    }

    #[test]
    fn splitter_keeps_a_line_longer_than_64k_whole() {
        let mut s = LineSplitter::default();
        let big = vec![b'z'; 100 * 1024];
        for piece in big.chunks(32 * 1024) {
            assert!(s.push(Bytes::copy_from_slice(piece)).is_empty());
        }
        let lines = s.push(Bytes::from_static(b"\n"));
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].len(), 100 * 1024 + 1);
    }

    proptest! {
        /// Concatenated output equals the input and every line but the last
        /// ends with exactly one newline, at its end.
        #[test]
        fn splitter_is_lossless_and_line_exact(
            chunks in proptest::collection::vec(proptest::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..100), 0..30)
        ) {
            let mut s = LineSplitter::default();
            let mut input = Vec::new();
            let mut output = Vec::new();
            for chunk in chunks {
                input.extend_from_slice(&chunk);
                for line in s.push(Bytes::from(chunk)) {
                    prop_assert!(line.ends_with(b"\n"));
                    prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                    output.extend_from_slice(&line);
                }
            }
            if let Some(rest) = s.finish() {
                prop_assert!(!rest.contains(&b'\n'));
                output.extend_from_slice(&rest);
            }
            prop_assert_eq!(input, output);
        }
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
