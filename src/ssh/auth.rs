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
use crate::identity::AuthMode;
use crate::identity::cert::{CertPolicy, CertRefusal};
use crate::identity::keys::{KeyRefusal, check_key_use};
use crate::identity::{self, Identity};

/// Why an offer cannot log in; `Unknown` is the ordinary case (a key not in
/// the users file), not worth a log line. The others carry the user the
/// refusal concerns, if any, so it shows in that user's `logs` (SPEC §12).
#[derive(Debug)]
pub enum Refusal {
    Unknown,
    Key(KeyRefusal, Option<String>),
    Cert(CertRefusal, Option<String>),
}

/// The user a key belongs to: the one the users file lists it under, or in
/// `open` mode its anonymous name. The key is only offered, not proven, so
/// this names whose key was tried, not who tried it.
fn key_owner(app: &App, fingerprint: &str) -> Option<String> {
    match identity::identify(&app.users, fingerprint) {
        Some(id) => Some(id.name),
        None if app.auth == AuthMode::Open => Some(identity::anonymous_name(fingerprint)),
        None => None,
    }
}

/// The user a refused certificate concerns: the one a trusted CA vouched
/// for, else the owner of the certified key.
fn cert_owner(app: &App, cert: &Certificate) -> Option<String> {
    policy(app).vouched_user(cert).or_else(|| {
        let fp = cert.public_key().fingerprint(HashAlg::Sha256).to_string();
        key_owner(app, &fp)
    })
}

fn policy(app: &App) -> CertPolicy<'_> {
    CertPolicy {
        cas: &app.trusted_cas,
        users: &app.users,
        open: app.auth == AuthMode::Open,
    }
}

/// The identity a plain key signing with `algorithm` gets.
pub fn key_identity(
    app: &App,
    key: &PublicKey,
    algorithm: &Algorithm,
) -> Result<Identity, Refusal> {
    let fp = identity::fingerprint(key);
    check_key_use(key.key_data(), algorithm)
        .map_err(|why| Refusal::Key(why, key_owner(app, &fp)))?;
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
    let name = policy(app)
        .user_of(cert, peer, unix_now())
        .map_err(|why| Refusal::Cert(why, cert_owner(app, cert)))?;
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
        return Err(Refusal::Key(KeyRefusal::Sha1, cert_owner(app, cert)));
    }
    cert_identity(app, cert, peer)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
