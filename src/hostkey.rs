//! The server's ed25519 host key: made once, then reused forever, so
//! clients never see a changed key (SPEC §2, §10).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rand::RngCore;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::{HashAlg, PrivateKey};

pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Creates the data dir (mode 0700) if it is missing.
pub fn ensure_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))
}

/// Loads the host key from the data dir, generating it on first start.
pub fn load_or_create(dir: &Path) -> anyhow::Result<PrivateKey> {
    let path = dir.join(HOST_KEY_FILE);
    if path.exists() {
        return load(&path);
    }
    let key = generate_ed25519("sshpipe host key").context("cannot build host key")?;
    let tmp: PathBuf = dir.join(format!("{HOST_KEY_FILE}.tmp"));
    key.write_openssh_file(&tmp, LineEnding::LF)
        .with_context(|| format!("cannot write host key {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot set mode 0600 on {}", tmp.display()))?;
    fs::rename(&tmp, &path)
        .with_context(|| format!("cannot move host key into {}", path.display()))?;
    Ok(key)
}

/// A new ed25519 key from the OS's random source.
pub fn generate_ed25519(comment: &str) -> anyhow::Result<PrivateKey> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    Ok(PrivateKey::new(
        KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed)),
        comment,
    )?)
}

fn load(path: &Path) -> anyhow::Result<PrivateKey> {
    let key = PrivateKey::read_openssh_file(path)
        .with_context(|| format!("cannot read host key {}", path.display()))?;
    if key.algorithm() != russh::keys::Algorithm::Ed25519 {
        bail!("host key {} is not an ed25519 key", path.display());
    }
    Ok(key)
}

pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}
