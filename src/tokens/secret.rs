//! A token's secret and what is kept of it.
//!
//! The secret is `sp_` + 32 random bytes in unpadded base64url (SPEC §11.1):
//! 256 bits, so guessing is hopeless and a plain SHA-256 (no salt, no slow
//! hash) is enough to make a stolen store useless. Only that hash is stored;
//! the secret is printed once and never logged.

use sha2::{Digest, Sha256};

/// Every token starts with this, so secret scanners and people can tell one.
pub const PREFIX: &str = "sp_";
/// Random bytes in a token.
pub const SECRET_BYTES: usize = 32;

/// A new random secret.
pub fn generate() -> String {
    use rand::RngCore as _;
    let mut raw = [0u8; SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    format!("{PREFIX}{}", base64url(&raw))
}

/// The stored form of a secret: its SHA-256, in hex.
pub fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Could this be a token at all? Cheap check before any lookup, so junk in
/// an `Authorization` header costs nothing.
pub fn looks_like_token(s: &str) -> bool {
    s.strip_prefix(PREFIX).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    })
}

/// A short random id for `token ls` / `token rm` (not secret).
pub fn new_id() -> String {
    use rand::RngCore as _;
    let mut raw = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        let table: [(&[u8], &str); 7] = [
            (b"", ""),
            (b"f", "Zg"),
            (b"fo", "Zm8"),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg"),
            (b"fooba", "Zm9vYmE"),
            (&[0xfb, 0xff], "-_8"),
        ];
        for (input, want) in table {
            assert_eq!(base64url(input), want);
        }
    }

    #[test]
    fn secrets_have_the_documented_shape_and_differ() {
        let a = generate();
        let b = generate();
        assert!(looks_like_token(&a), "{a}");
        assert_ne!(a, b);
        assert_eq!(hash(&a).len(), 64);
        assert_ne!(hash(&a), hash(&b));
        assert!(!looks_like_token("sp_short"));
        assert!(!looks_like_token(&a.replace("sp_", "xx_")));
    }
}
