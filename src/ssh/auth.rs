//! Who may log in with an offered key or certificate (SPEC §3), for the
//! handler's auth callbacks.
//!
//! A key or certificate that cannot log in is refused when it is *offered*,
//! before the client is asked to sign, so OpenSSH moves on to its next
//! identity at once. The same decision is taken again once the signature is
//! verified, because that is the one that counts.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};

use crate::app::App;
use crate::config::AuthMode;
use crate::identity::cert::{CertPolicy, CertRefusal};
use crate::identity::keys::{KeyRefusal, check_key_use};
use crate::identity::{self, Identity};

/// Why an offer cannot log in; `Unknown` is the ordinary case (a key not in
/// the users file), not worth a log line.
#[derive(Debug)]
pub enum Refusal {
    Unknown,
    Key(KeyRefusal),
    Cert(CertRefusal),
}

/// The identity a plain key signing with `algorithm` gets.
pub fn key_identity(
    app: &App,
    key: &PublicKey,
    algorithm: &Algorithm,
) -> Result<Identity, Refusal> {
    check_key_use(key.key_data(), algorithm).map_err(Refusal::Key)?;
    let fp = identity::fingerprint(key);
    match identity::identify(&app.users, &fp) {
        Some(id) => Ok(id),
        None if app.auth == AuthMode::Open => Ok(identity::anonymous(&fp)),
        None => Err(Refusal::Unknown),
    }
}

/// The identity a certificate gets, seen from `peer`. The fingerprint is
/// the certified key's, as `ssh-keygen -lf` prints it for the plain key and
/// for its certificate alike, so access lists by fingerprint name the key
/// holder whichever way they log in.
pub fn cert_identity(app: &App, cert: &Certificate, peer: IpAddr) -> Result<Identity, Refusal> {
    let policy = CertPolicy {
        cas: &app.trusted_cas,
        users: &app.users,
        open: app.auth == AuthMode::Open,
    };
    let name = policy
        .user_of(cert, peer, unix_now())
        .map_err(Refusal::Cert)?;
    let fp = cert.public_key().fingerprint(HashAlg::Sha256).to_string();
    Ok(identity::certified(&app.users, &name, &fp))
}

/// The identity a certificate offered with `algorithm` gets (the signature
/// rule applies to the certified key too: no SHA-1).
pub fn cert_offer_identity(
    app: &App,
    cert: &Certificate,
    algorithm: &Algorithm,
    peer: IpAddr,
) -> Result<Identity, Refusal> {
    if *algorithm == (Algorithm::Rsa { hash: None }) {
        return Err(Refusal::Key(KeyRefusal::Sha1));
    }
    cert_identity(app, cert, peer)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
