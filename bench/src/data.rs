//! The bytes a benchmark sends, and the byte-exact check on what arrives.
//!
//! A stream is a fixed pseudo-random block repeated from an offset, so any
//! amount can be produced and checked without keeping a copy or hashing:
//! the check compares each arriving slice with the block where it must sit.
//! The block's length is odd so chunk boundaries never line up with it.

use std::sync::Arc;

const BLOCK_LEN: usize = 1_048_573;

#[derive(Clone)]
pub struct Pattern {
    block: Arc<[u8]>,
}

impl Pattern {
    pub fn new(seed: u64) -> Self {
        let mut x = seed | 1;
        let block: Vec<u8> = (0..BLOCK_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        Self {
            block: block.into(),
        }
    }

    /// The `len` bytes of the stream that start at `offset`.
    pub fn chunk(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut at = (offset % BLOCK_LEN as u64) as usize;
        while out.len() < len {
            let take = (len - out.len()).min(BLOCK_LEN - at);
            out.extend_from_slice(&self.block[at..at + take]);
            at = (at + take) % BLOCK_LEN;
        }
        out
    }

    pub fn checker(&self) -> Checker {
        Checker {
            pattern: self.clone(),
            received: 0,
            mismatch: None,
        }
    }
}

/// Follows one received copy of a stream.
pub struct Checker {
    pattern: Pattern,
    received: u64,
    mismatch: Option<u64>,
}

impl Checker {
    pub fn feed(&mut self, mut data: &[u8]) {
        if self.mismatch.is_none() {
            let mut at = (self.received % BLOCK_LEN as u64) as usize;
            let mut pos = self.received;
            while !data.is_empty() {
                let take = data.len().min(BLOCK_LEN - at);
                let expected = &self.pattern.block[at..at + take];
                if let Some(i) = data[..take].iter().zip(expected).position(|(a, b)| a != b) {
                    self.mismatch = Some(pos + i as u64);
                    break;
                }
                data = &data[take..];
                pos += take as u64;
                at = (at + take) % BLOCK_LEN;
            }
            self.received = pos + data.len() as u64;
            return;
        }
        self.received += data.len() as u64;
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// True when exactly `expected` bytes arrived and all of them matched.
    pub fn exact(&self, expected: u64) -> bool {
        self.mismatch.is_none() && self.received == expected
    }

    pub fn mismatch(&self) -> Option<u64> {
        self.mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_in_any_split_check_exact() {
        let p = Pattern::new(7);
        let whole = p.chunk(0, 3 * BLOCK_LEN + 5);
        for split in [1usize, 4096, 32_768, BLOCK_LEN - 1, BLOCK_LEN + 3] {
            let mut c = p.checker();
            for piece in whole.chunks(split) {
                c.feed(piece);
            }
            assert!(c.exact(whole.len() as u64), "split {split}");
        }
        assert_eq!(
            p.chunk(BLOCK_LEN as u64 + 9, 100),
            whole[BLOCK_LEN + 9..BLOCK_LEN + 109]
        );
    }

    #[test]
    fn a_changed_byte_or_a_short_copy_fails() {
        let p = Pattern::new(7);
        let mut data = p.chunk(0, 100_000);
        let mut c = p.checker();
        c.feed(&data[..99_999]);
        assert!(!c.exact(100_000));
        data[50_000] ^= 1;
        let mut c = p.checker();
        c.feed(&data);
        assert!(!c.exact(100_000));
        assert_eq!(c.mismatch(), Some(50_000));
    }
}
