//! Who may log in with an offered key (SPEC §3), for the
//! handler's auth callbacks.
//!
//! A key that cannot log in is refused when it is *offered*,
//! before the client is asked to sign, so OpenSSH moves on to its next
//! identity at once. The same decision is taken again once the signature is
//! verified, because that is the one that counts.

use russh::keys::{Algorithm, PublicKey};

use crate::app::App;
use crate::config::AuthMode;
use crate::identity::keys::{KeyRefusal, check_key_use};
use crate::identity::{self, Identity};

/// Why an offer cannot log in; `Unknown` is the ordinary case (a key not in
/// the users file), not worth a log line.
#[derive(Debug)]
pub enum Refusal {
    Unknown,
    Key(KeyRefusal),
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
