//! Which keys and signature algorithms may authenticate (SPEC §3).
//!
//! ed25519, ECDSA (nistp256/384/521 — the only curves a key can name) and
//! RSA of at least 2048 bits signed with `rsa-sha2-256`/`rsa-sha2-512`.
//! SHA-1 (`ssh-rsa`) signatures are refused: a collision in SHA-1 costs
//! tens of thousands of dollars today. Short RSA moduli are refused because
//! 1024-bit RSA is within reach of a well-funded attacker. The same rule
//! applies to a certificate's key and to a CA's key.

use russh::keys::Algorithm;
use russh::keys::ssh_key::public::{KeyData, RsaPublicKey};

/// Shortest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: u32 = 2048;

/// Why a key or signature algorithm may not authenticate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("RSA key of {bits} bits (at least {MIN_RSA_BITS} needed)")]
    ShortRsa { bits: u32 },
    #[error("SHA-1 signature algorithm ssh-rsa (use rsa-sha2-256 or rsa-sha2-512)")]
    Sha1,
    #[error("key type {0} is not accepted (ed25519, ECDSA or RSA)")]
    KeyType(String),
}

/// Exact bit length of an RSA modulus (`key_size` rounds up to bytes).
pub fn rsa_bits(key: &RsaPublicKey) -> u32 {
    let Some(bytes) = key.n().as_positive_bytes() else {
        return 0;
    };
    let Some((&first, rest)) = bytes.split_first() else {
        return 0;
    };
    u32::try_from(rest.len())
        .unwrap_or(u32::MAX)
        .saturating_mul(8)
        .saturating_add(8 - first.leading_zeros())
}

/// Is `key` of an accepted type and size? (Says nothing of the signature.)
pub fn check_key(key: &KeyData) -> Result<(), KeyRefusal> {
    match key {
        KeyData::Ed25519(_) | KeyData::Ecdsa(_) => Ok(()),
        KeyData::Rsa(rsa) => match rsa_bits(rsa) {
            bits if bits < MIN_RSA_BITS => Err(KeyRefusal::ShortRsa { bits }),
            _ => Ok(()),
        },
        other => Err(KeyRefusal::KeyType(other.algorithm().to_string())),
    }
}

/// May `key` authenticate with signatures of `algorithm`?
pub fn check_key_use(key: &KeyData, algorithm: &Algorithm) -> Result<(), KeyRefusal> {
    check_key(key)?;
    if *algorithm == (Algorithm::Rsa { hash: None }) {
        return Err(KeyRefusal::Sha1);
    }
    Ok(())
}
