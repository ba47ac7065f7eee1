//! OpenSSH user certificates (SPEC §3): the trusted CAs, and who a
//! certificate is.
//!
//! A certificate authenticates only when every one of these holds, checked
//! in this order (the cheapest and most common refusal first):
//!
//! - its CA is one of `--trusted-user-ca`, and the CA's signature verifies
//!   and is not SHA-1 (`ssh-rsa`);
//! - it is a *user* certificate (a host certificate never logs a user in);
//! - its own key passes the key rules of [`super::keys`];
//! - now is inside its validity interval (`valid after <= now < valid before`);
//! - its only critical option, if any, is `source-address`, and the peer's
//!   address is inside one of its CIDR blocks (an option we do not know could
//!   restrict the certificate in a way we would silently ignore);
//! - one of its principals names a user: the first principal that is a valid
//!   user name — in `users` mode also a user of the users file. Reserved
//!   names (`public`, `fp-…`) never match, and a certificate with no
//!   principals names nobody (OpenSSH's "any principal" would be a golden
//!   ticket here).

use std::net::IpAddr;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};

use super::keys::{KeyRefusal, check_key};
use super::{Users, one_line, shorten, valid_user_name};

/// The one critical option we understand and enforce.
pub const SOURCE_ADDRESS: &str = "source-address";

/// CA keys whose user certificates authenticate (`--trusted-user-ca`).
#[derive(Debug, Clone, Default)]
pub struct TrustedCas {
    keys: Vec<KeyData>,
}

/// A problem in the trusted CA file; each names its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaFileError {
    #[error("line {line}: not an OpenSSH public key ({text:?}): {reason}")]
    BadKey {
        line: usize,
        text: String,
        reason: String,
    },
    #[error("line {line}: CA key refused: {refusal}")]
    Refused { line: usize, refusal: KeyRefusal },
}

impl TrustedCas {
    /// One OpenSSH public key per line (`ssh-ed25519 AAAA… comment`); blank
    /// lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<TrustedCas, CaFileError> {
        let mut keys = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let entry = raw.trim();
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            let key = PublicKey::from_openssh(entry).map_err(|e| CaFileError::BadKey {
                line,
                text: shorten(entry),
                reason: one_line(&e.to_string()),
            })?;
            check_key(key.key_data()).map_err(|refusal| CaFileError::Refused { line, refusal })?;
            keys.push(key.key_data().clone());
        }
        Ok(TrustedCas { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn trusts(&self, ca: &KeyData) -> bool {
        self.keys.iter().any(|k| k == ca)
    }
}

/// Why a certificate may not authenticate. Messages are for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertRefusal {
    #[error("signed by a CA that is not trusted ({0})")]
    UntrustedCa(String),
    #[error("the CA signature does not verify")]
    BadSignature,
    #[error("the CA signed with SHA-1 (ssh-rsa)")]
    Sha1CaSignature,
    #[error("a host certificate, not a user certificate")]
    NotUserCert,
    #[error("certified key refused: {0}")]
    Key(KeyRefusal),
    #[error("not valid yet")]
    NotYetValid,
    #[error("expired")]
    Expired,
    #[error("critical option {0:?} is not supported")]
    CriticalOption(String),
    #[error("source-address {list:?} does not include {peer}")]
    SourceAddress { list: String, peer: IpAddr },
    #[error("source-address {0:?} is malformed")]
    BadSourceAddress(String),
    #[error("no principal names a user ({0:?})")]
    NoPrincipal(Vec<String>),
}

/// What decides who a certificate is.
#[derive(Debug, Clone, Copy)]
pub struct CertPolicy<'a> {
    pub cas: &'a TrustedCas,
    pub users: &'a Users,
    /// `--auth open`: any valid user name may be a principal; otherwise
    /// only users of the users file.
    pub open: bool,
}

impl CertPolicy<'_> {
    /// The user `cert` authenticates as, seen from `peer` at `now` (Unix
    /// seconds), or why it does not.
    pub fn user_of(
        &self,
        cert: &Certificate,
        peer: IpAddr,
        now: u64,
    ) -> Result<String, CertRefusal> {
        let ca = cert.signature_key();
        if !self.cas.trusts(ca) {
            return Err(CertRefusal::UntrustedCa(
                ca.fingerprint(HashAlg::Sha256).to_string(),
            ));
        }
        if cert.signature().algorithm() == (Algorithm::Rsa { hash: None }) {
            return Err(CertRefusal::Sha1CaSignature);
        }
        // russh checked this before asking us; a trust decision should not
        // depend on the caller having done so.
        cert.verify_signature()
            .map_err(|_| CertRefusal::BadSignature)?;
        if cert.cert_type() != CertType::User {
            return Err(CertRefusal::NotUserCert);
        }
        check_key(cert.public_key()).map_err(CertRefusal::Key)?;
        if now < cert.valid_after() {
            return Err(CertRefusal::NotYetValid);
        }
        if now >= cert.valid_before() {
            return Err(CertRefusal::Expired);
        }
        for (name, value) in cert.critical_options().iter() {
            if name != SOURCE_ADDRESS {
                return Err(CertRefusal::CriticalOption(name.clone()));
            }
            let allowed = source_address_allows(value, peer)
                .ok_or_else(|| CertRefusal::BadSourceAddress(value.clone()))?;
            if !allowed {
                return Err(CertRefusal::SourceAddress {
                    list: value.clone(),
                    peer,
                });
            }
        }
        self.principal_user(cert)
            .ok_or_else(|| CertRefusal::NoPrincipal(cert.valid_principals().to_vec()))
    }

    /// The user `cert`'s principals name (the first valid one), whatever
    /// else is wrong with it. Says only who a certificate claims to be.
    pub fn principal_user(&self, cert: &Certificate) -> Option<String> {
        cert.valid_principals()
            .iter()
            .find(|p| valid_user_name(p) && (self.open || self.users.is_user(p)))
            .cloned()
    }

    /// Whose refusal a refused `cert` is, for that user's `logs`: the user
    /// its principals name when a trusted CA really signed it (then the CA
    /// vouches for the name), else nobody: anyone can write any principal
    /// into a certificate of their own.
    pub fn vouched_user(&self, cert: &Certificate) -> Option<String> {
        let signed = self.cas.trusts(cert.signature_key()) && cert.verify_signature().is_ok();
        signed.then(|| self.principal_user(cert)).flatten()
    }
}

/// Does the `source-address` list (`ADDR[/BITS],…`) include `peer`?
/// `None` when the list is malformed (then the certificate is refused).
pub fn source_address_allows(list: &str, peer: IpAddr) -> Option<bool> {
    let peer = peer.to_canonical();
    let mut allowed = false;
    for entry in list.split(',') {
        let (addr, bits) = match entry.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
            None => (entry, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        allowed |= in_block(peer, addr, bits)?;
    }
    Some(allowed)
}

/// Is `peer` in `net/bits`? `None` for a prefix longer than the address.
fn in_block(peer: IpAddr, net: IpAddr, bits: Option<u32>) -> Option<bool> {
    let (peer, net, width) = match (peer, net) {
        (IpAddr::V4(p), IpAddr::V4(n)) => (u128::from(p.to_bits()), u128::from(n.to_bits()), 32),
        (IpAddr::V6(p), IpAddr::V6(n)) => (p.to_bits(), n.to_bits(), 128),
        // Check the prefix length even when the family differs.
        (_, IpAddr::V4(_)) => return (bits.unwrap_or(32) <= 32).then_some(false),
        (_, IpAddr::V6(_)) => return (bits.unwrap_or(128) <= 128).then_some(false),
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return None;
    }
    let host_bits = width - bits;
    Some(peer.checked_shr(host_bits).unwrap_or(0) == net.checked_shr(host_bits).unwrap_or(0))
}

#[cfg(test)]
mod tests;
