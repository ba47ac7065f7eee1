//! The SSH front end: russh configuration and our own accept loop.
//!
//! We own the accept loop (not `run_on_socket`) so that an accept error
//! backs off instead of killing the server, connections are capped, every
//! connection has a cancellation token that fires when it ends, and
//! shutdown can wait for all of them.

mod exec;
mod handler;
mod out;
mod pubsub;
mod queued;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use russh::keys::{Algorithm, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet, Preferred, cipher, kex, mac};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;

/// Limits of SPEC §9 that the SSH side enforces.
#[derive(Debug, Clone)]
pub struct SshLimits {
    pub max_connections: usize,
    pub auth_timeout: Duration,
    pub max_auth_attempts: usize,
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
}

impl Default for SshLimits {
    fn default() -> Self {
        SshLimits {
            max_connections: 10_000,
            auth_timeout: Duration::from_secs(20),
            max_auth_attempts: 6,
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 4,
        }
    }
}

/// Only algorithms of current strength (SPEC §9).
fn preferred() -> Preferred {
    Preferred {
        kex: Cow::Borrowed(&[
            kex::MLKEM768X25519_SHA256,
            kex::CURVE25519,
            kex::CURVE25519_PRE_RFC_8731,
            kex::EXTENSION_SUPPORT_AS_SERVER,
            kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
        ]),
        key: Cow::Borrowed(&[Algorithm::Ed25519]),
        cipher: Cow::Borrowed(&[
            cipher::CHACHA20_POLY1305,
            cipher::AES_256_GCM,
            cipher::AES_128_GCM,
            cipher::AES_256_CTR,
            cipher::AES_192_CTR,
            cipher::AES_128_CTR,
        ]),
        mac: Cow::Borrowed(&[mac::HMAC_SHA512_ETM, mac::HMAC_SHA256_ETM]),
        ..Preferred::default()
    }
}

pub fn russh_config(host_key: PrivateKey, limits: &SshLimits) -> Config {
    Config {
        server_id: russh::SshId::Standard(Cow::Owned(format!(
            "SSH-2.0-sshpipe_{}",
            env!("CARGO_PKG_VERSION")
        ))),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        auth_rejection_time: Duration::from_secs(1),
        // OpenSSH probes with `none` first; do not make every login wait.
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: limits.max_auth_attempts,
        keepalive_interval: Some(limits.keepalive_interval),
        keepalive_max: limits.keepalive_max,
        // Keepalive replies reset this; it only catches a client whose TCP
        // stopped moving entirely.
        inactivity_timeout: Some(limits.keepalive_interval * (limits.keepalive_max as u32 + 1)),
        nodelay: true,
        preferred: preferred(),
        ..Config::default()
    }
}

/// Accepts SSH connections until `app.shutdown` fires, then waits (bounded)
/// for every connection to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, config: Arc<Config>, limits: SshLimits) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let shutdown = app.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; backing off");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached; refusing");
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let (app, config, tracker2, auth_timeout) = (
            Arc::clone(&app),
            Arc::clone(&config),
            tracker.clone(),
            limits.auth_timeout,
        );
        tracker.spawn(async move {
            let _permit = permit;
            connection(socket, peer, app, config, tracker2, auth_timeout).await;
        });
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(8), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("some SSH sessions did not end in time");
    }
}

async fn connection(
    socket: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    app: Arc<App>,
    config: Arc<Config>,
    tracker: TaskTracker,
    auth_timeout: Duration,
) {
    let conn = CancellationToken::new();
    let _cancel_on_exit = conn.clone().drop_guard();
    let (authed_tx, authed_rx) = oneshot::channel();
    let handler = handler::Conn::new(Arc::clone(&app), peer, conn.clone(), tracker, authed_tx);
    let started = tokio::time::timeout(
        auth_timeout,
        russh::server::run_stream(config, socket, handler),
    );
    let mut session = match started.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "no SSH banner in time; dropped");
            return;
        }
    };
    let handle = session.handle();
    tokio::select! {
        r = &mut session => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "session ended before auth");
            }
            return;
        }
        r = tokio::time::timeout(auth_timeout, authed_rx) => {
            if !matches!(r, Ok(Ok(()))) {
                tracing::info!(%peer, "authentication not finished in time; dropped");
                let _ = handle.disconnect(russh::Disconnect::ByApplication, "authentication timeout".into(), String::new()).await;
                return;
            }
        }
    }
    let shutdown = app.shutdown.clone();
    tokio::select! {
        r = &mut session => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "session ended");
            }
        }
        () = shutdown.cancelled() => {
            // Command tasks tell their clients; give them a moment to do so
            // and the clients to close, then drop the connection.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut session).await;
        }
    }
}
