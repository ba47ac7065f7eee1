//! The load generator's SSH client: russh in-process, so thousands of
//! sessions fit in one process on two cores (an OpenSSH `ssh` per session
//! would cost a process each and measure `fork` more than the server).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use russh::client::{self, Handle, Msg};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelMsg};

/// What a client needs to log in: one ed25519 key, one user name.
#[derive(Clone)]
pub struct Identity {
    pub key: Arc<PrivateKey>,
    pub user: String,
    config: Arc<client::Config>,
}

impl Identity {
    pub fn generate(user: &str) -> Result<Self> {
        let key = sshpipe::hostkey::generate_ed25519("sshpipe-bench")
            .context("cannot build a client key")?;
        let config = client::Config {
            nodelay: true,
            // Idle sessions must not be cut by the client while we measure.
            inactivity_timeout: None,
            keepalive_interval: None,
            ..client::Config::default()
        };
        Ok(Self {
            key: Arc::new(key),
            user: user.to_string(),
            config: Arc::new(config),
        })
    }

    /// The same key, logging in as another user (sshd's session user).
    pub fn as_user(&self, user: &str) -> Self {
        Self {
            user: user.to_string(),
            ..self.clone()
        }
    }

    /// The key as an `authorized_keys` line.
    pub fn authorized_key(&self) -> Result<String> {
        self.key
            .public_key()
            .to_openssh()
            .context("cannot encode the public key")
    }

    /// TCP connect, key exchange and public-key authentication.
    pub async fn connect(&self, addr: SocketAddr) -> Result<Handle<Trusting>> {
        let mut handle = client::connect(self.config.clone(), addr, Trusting)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let auth = handle
            .authenticate_publickey(
                self.user.clone(),
                PrivateKeyWithHashAlg::new(self.key.clone(), None),
            )
            .await
            .context("authentication failed")?;
        if !auth.success() {
            bail!("server refused our key");
        }
        Ok(handle)
    }
}

/// Benchmarks talk to servers they just started; any host key will do.
pub struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// Opens a session channel and runs `command` on it.
pub async fn exec(handle: &Handle<Trusting>, command: &str) -> Result<Channel<Msg>> {
    let channel = handle
        .channel_open_session()
        .await
        .context("cannot open a session channel")?;
    channel
        .exec(true, command)
        .await
        .with_context(|| format!("cannot exec {command:?}"))?;
    Ok(channel)
}

/// What a finished command left behind.
#[derive(Debug, Default)]
pub struct Finished {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: Option<u32>,
}

/// Reads a channel to its end, keeping what it printed (small outputs only).
pub async fn finish(channel: &mut Channel<Msg>, limit: Duration) -> Result<Finished> {
    let mut out = Finished::default();
    tokio::time::timeout(limit, async {
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, .. } => out.stderr.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                _ => {}
            }
        }
    })
    .await
    .context("the command did not finish in time")?;
    Ok(out)
}

/// Disconnects politely; errors are ignored because the server may already
/// have closed.
pub async fn bye(handle: Handle<Trusting>) {
    let _ = handle
        .disconnect(russh::Disconnect::ByApplication, "", "en")
        .await;
}

impl Identity {
    /// Writes the private key where the OpenSSH client can use it (0600).
    pub fn write_openssh(&self, path: &std::path::Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        self.key
            .write_openssh_file(path, russh::keys::ssh_key::LineEnding::LF)
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(())
    }
}
