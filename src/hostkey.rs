//! The server's ed25519 host key: made once, then reused forever, so
//! clients never see a changed key (SPEC §2, §10).
//!
//! A key named with `--host-key FILE` is never made here: that file is the
//! one every node of a cluster shares (SPEC §14), so a node that made its own
//! because of a typo or a mount that is not there yet would present a second
//! key behind the same load balancer. Like OpenSSH's sshd with a missing
//! `HostKey`, the start fails instead and says how to make the file once.

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

/// Loads the `--host-key FILE` key; a missing file is an error, not a key to
/// make (see the module doc).
pub fn load_given(path: &Path) -> anyhow::Result<PrivateKey> {
    match fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "host key file {} does not exist (make it once with: ssh-keygen -t ed25519 -N '' -f {})",
            path.display(),
            path.display()
        ),
        Ok(meta) if meta.is_dir() => bail!("host key file {} is a directory", path.display()),
        _ => load(path),
    }
}

fn load(path: &Path) -> anyhow::Result<PrivateKey> {
    let key = PrivateKey::read_openssh_file(path)
        .with_context(|| format!("cannot read host key {}", path.display()))?;
    if key.algorithm() != russh::keys::Algorithm::Ed25519 {
        bail!("host key {} is not an ed25519 key", path.display());
    }
    if key.is_encrypted() {
        bail!(
            "host key {} has a passphrase (the server needs it without one)",
            path.display()
        );
    }
    Ok(key)
}

pub fn fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &Path) -> String {
        match load_given(path) {
            Ok(_) => unreachable!("{} loaded", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn a_named_key_is_loaded_never_made() {
        let Ok(dir) = tempfile::tempdir() else {
            unreachable!("tempdir")
        };
        let made = load_or_create(dir.path()).map(|k| fingerprint(&k));
        let given = load_given(&dir.path().join(HOST_KEY_FILE)).map(|k| fingerprint(&k));
        assert_eq!(made.ok(), given.ok(), "the data dir's key, read back");

        let missing = dir.path().join("shared_key");
        let e = err(&missing);
        assert!(e.starts_with("host key file "), "{e}");
        assert!(
            e.contains("does not exist (make it once with: ssh-keygen"),
            "{e}"
        );
        assert!(!missing.exists(), "nothing made");
        assert_eq!(
            err(dir.path()),
            format!("host key file {} is a directory", dir.path().display())
        );
        let junk = dir.path().join("junk");
        assert!(fs::write(&junk, "not a key\n").is_ok());
        assert!(err(&junk).starts_with("cannot read host key "));
    }
}
