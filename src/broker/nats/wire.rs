//! What travels between nodes on core NATS, byte for byte.
//!
//! A forwarder numbers what it sends; the receiving node hands frames on in
//! that order only and says how far it got, so a frame lost in a NATS
//! failover is sent again instead of leaving a hole in someone's file.
//! Our own little header rather than NATS headers: fixed fields, no
//! parsing of text on every 32 KiB chunk.

use bytes::{Buf, BufMut, Bytes, BytesMut};

const VERSION: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bytes for every receiver.
    Data,
    /// A round-robin line for exactly one receiver.
    Line,
    /// Acknowledge once everything before was handed to the receivers.
    Flush,
    /// The forwarder is done.
    End,
    /// A round-robin line outside any stream, to be placed with one
    /// receiver (`loose`); `seq` counts its hops.
    Loose,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Kind::Data => 0,
            Kind::Line => 1,
            Kind::Flush => 2,
            Kind::End => 3,
            Kind::Loose => 4,
        }
    }
    fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            0 => Kind::Data,
            1 => Kind::Line,
            2 => Kind::Flush,
            3 => Kind::End,
            4 => Kind::Loose,
            _ => return None,
        })
    }
}

/// One frame of a forwarder's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: Kind,
    /// The forwarder (unique per sending node).
    pub stream: u64,
    /// 1, 2, 3, … within the stream.
    pub seq: u64,
    /// The sending node, where credits go.
    pub from: String,
    pub topic: String,
    pub body: Bytes,
}

impl Frame {
    pub fn encode(&self) -> Bytes {
        let mut b =
            BytesMut::with_capacity(24 + self.from.len() + self.topic.len() + self.body.len());
        b.put_u8(VERSION);
        b.put_u8(self.kind.code());
        b.put_u64(self.stream);
        b.put_u64(self.seq);
        b.put_u8(self.from.len().min(255) as u8);
        b.put_slice(&self.from.as_bytes()[..self.from.len().min(255)]);
        b.put_u16(self.topic.len().min(u16::MAX as usize) as u16);
        b.put_slice(&self.topic.as_bytes()[..self.topic.len().min(u16::MAX as usize)]);
        b.put_slice(&self.body);
        b.freeze()
    }

    /// `None` for anything we did not encode (another version, garbage).
    pub fn decode(mut b: Bytes) -> Option<Frame> {
        if b.remaining() < 19 || b.get_u8() != VERSION {
            return None;
        }
        let kind = Kind::from_code(b.get_u8())?;
        let stream = b.get_u64();
        let seq = b.get_u64();
        let from_len = b.get_u8() as usize;
        if b.remaining() < from_len + 2 {
            return None;
        }
        let from = String::from_utf8(b.split_to(from_len).to_vec()).ok()?;
        let topic_len = b.get_u16() as usize;
        if b.remaining() < topic_len {
            return None;
        }
        let topic = String::from_utf8(b.split_to(topic_len).to_vec()).ok()?;
        Some(Frame {
            kind,
            stream,
            seq,
            from,
            topic,
            body: b,
        })
    }
}

/// A receiving node's word on a stream: everything up to `processed` was
/// handed to its receivers, everything up to `received` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Credit {
    pub stream: u64,
    pub processed: u64,
    pub received: u64,
    /// A gap or a repeat was seen: send what was not received, now.
    pub resend: bool,
}

impl Credit {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(26);
        b.put_u8(VERSION);
        b.put_u64(self.stream);
        b.put_u64(self.processed);
        b.put_u64(self.received);
        b.put_u8(u8::from(self.resend));
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Option<Credit> {
        if b.remaining() != 26 || b.get_u8() != VERSION {
            return None;
        }
        Some(Credit {
            stream: b.get_u64(),
            processed: b.get_u64(),
            received: b.get_u64(),
            resend: b.get_u8() != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        for kind in [Kind::Data, Kind::Line, Kind::Flush, Kind::End, Kind::Loose] {
            let f = Frame {
                kind,
                stream: 0xdead_beef,
                seq: 42,
                from: "0123abcd".into(),
                topic: "alice/logs".into(),
                body: Bytes::from_static(b"hello\nworld\n"),
            };
            assert_eq!(Frame::decode(f.encode()), Some(f));
        }
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        let good = Frame {
            kind: Kind::Data,
            stream: 1,
            seq: 1,
            from: "n".into(),
            topic: "t/x".into(),
            body: Bytes::new(),
        }
        .encode();
        // The body is empty, so every cut falls inside the header.
        for cut in 0..good.len() {
            let decoded = Frame::decode(good.slice(..cut));
            assert!(decoded.is_none(), "cut at {cut}: {decoded:?}");
        }
        assert_eq!(Frame::decode(Bytes::from_static(&[9; 40])), None);
        assert_eq!(Credit::decode(Bytes::from_static(&[1; 25])), None);
    }

    #[test]
    fn credits_round_trip() {
        for resend in [false, true] {
            let c = Credit {
                stream: 7,
                processed: 3,
                received: 5,
                resend,
            };
            assert_eq!(Credit::decode(c.encode()), Some(c));
        }
    }
}
