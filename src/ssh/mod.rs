//! The SSH front end: russh configuration and our own accept loop.
//!
//! We own the accept loop (not `run_on_socket`) so that an accept error
//! backs off instead of killing the server, connections are capped, every
//! connection has a cancellation token that fires when it ends, and
//! shutdown can wait for all of them.

mod access;
mod auth;
mod exec;
mod handler;
mod limits;
mod loglimit;
mod logs;
mod monitor;
mod out;
mod pubsub;
mod request;
mod stdio;
mod token;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::keys::{Algorithm, EcdsaCurve, HashAlg, PrivateKey};
use russh::server::Config;
use russh::{MethodKind, MethodSet, Preferred, cipher, kex, mac};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::KexPolicy;
use crate::metrics::Refusal as Refused;
pub use limits::SshLimits;
use limits::{Shared, Slot};

/// Key exchanges of `--kex compat`: the ML-KEM hybrid first, curve25519
/// for clients without it (OpenSSH < 9.9, PuTTY, Dropbear, paramiko < 5.1).
const KEX_COMPAT: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::CURVE25519,
    kex::CURVE25519_PRE_RFC_8731,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// `--kex post-quantum`: the hybrids only (russh 0.65 has one; it has no
/// sntrup761).
const KEX_POST_QUANTUM: &[kex::Name] = &[
    kex::MLKEM768X25519_SHA256,
    kex::EXTENSION_SUPPORT_AS_SERVER,
    kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Client key algorithms (SPEC §3). russh advertises exactly this list in
/// `server-sig-algs`, so RSA and ECDSA must be here or OpenSSH and paramiko
/// never offer those keys. The host key algorithms russh offers are this
/// list filtered to the keys it holds, so the host key stays ed25519 only.
/// `ssh-rsa` (SHA-1) is left out, and refused if a client uses it anyway.
const KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha512),
    },
    Algorithm::Rsa {
        hash: Some(HashAlg::Sha256),
    },
];

/// Only algorithms of current strength (SPEC §9).
fn preferred(kex_policy: KexPolicy) -> Preferred {
    Preferred {
        kex: Cow::Borrowed(match kex_policy {
            KexPolicy::Compat => KEX_COMPAT,
            KexPolicy::PostQuantum => KEX_POST_QUANTUM,
        }),
        key: Cow::Borrowed(KEY_ALGORITHMS),
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

pub fn russh_config(host_key: PrivateKey, limits: &SshLimits, kex_policy: KexPolicy) -> Config {
    Config {
        server_id: russh::SshId::Standard(Cow::Owned(format!(
            "SSH-2.0-sshpipe_{}",
            env!("CARGO_PKG_VERSION")
        ))),
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        // No penalty after a rejected key: russh would sleep it inside the
        // read loop before even sending the failure, so each refused key of
        // an honest client (OpenSSH tries them in turn) cost a second. With
        // public keys only, timing reveals nothing the answer does not, and
        // `max_auth_attempts` bounds what one connection may try.
        auth_rejection_time: Duration::ZERO,
        auth_rejection_time_initial: Some(Duration::ZERO),
        keys: vec![host_key],
        max_auth_attempts: limits.max_auth_attempts,
        keepalive_interval: Some(limits.keepalive_interval),
        keepalive_max: limits.keepalive_max,
        // Keepalive replies reset this; it only catches a client whose TCP
        // stopped moving entirely.
        inactivity_timeout: Some(limits.keepalive_interval * (limits.keepalive_max as u32 + 1)),
        nodelay: true,
        preferred: preferred(kex_policy),
        ..Config::default()
    }
}

/// Accepts SSH connections until `app.shutdown` fires, then waits (bounded)
/// for every connection to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, config: Arc<Config>, limits: SshLimits) {
    let tracker = TaskTracker::new();
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let shared = Shared::new(limits);
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
        // Both caps are checked before any byte is read or any crypto runs:
        // a refused connection costs one accept and one close.
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            app.metrics.refused(Refused::Connections);
            if let Some(suppressed) = shared.refusal_logs.check(Instant::now()) {
                tracing::warn!(%peer, limit = shared.limits.max_connections, suppressed, "connection limit reached; refusing");
            }
            drop(socket);
            continue;
        };
        let Some(handshake) = shared.handshakes.try_acquire(peer.ip()) else {
            app.metrics.refused(Refused::Handshakes);
            if let Some(suppressed) = shared.refusal_logs.check(Instant::now()) {
                tracing::warn!(%peer, limit = shared.handshakes.max(), suppressed, "too many handshakes from this address; refusing");
            }
            drop(socket);
            continue;
        };
        let _ = socket.set_nodelay(true);
        let conn = Connection {
            peer,
            app: Arc::clone(&app),
            config: Arc::clone(&config),
            shared: Arc::clone(&shared),
            tracker: tracker.clone(),
        };
        tracker.spawn(async move {
            let _permit = permit;
            conn.run(socket, handshake).await;
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

/// What one connection's task needs.
struct Connection {
    peer: std::net::SocketAddr,
    app: Arc<App>,
    config: Arc<Config>,
    shared: Arc<Shared>,
    tracker: TaskTracker,
}

impl Connection {
    /// Runs one connection: the handshake and authentication under one
    /// deadline (holding a per-IP handshake slot), then the session until
    /// it ends or the server shuts down.
    async fn run(self, socket: tokio::net::TcpStream, handshake: Slot<std::net::IpAddr>) {
        let Connection {
            peer,
            app,
            config,
            shared,
            tracker,
        } = self;
        let _open = app.metrics.connection(crate::metrics::Transport::Ssh);
        let deadline = tokio::time::Instant::now() + shared.limits.auth_timeout;
        // russh runs the session in its own task, which a dropped
        // `RunningSession` does not stop and which ignores `disconnect`
        // during key exchange; shutting the socket down through a second
        // handle is what reliably ends a connection that never authenticates.
        let (socket, killer) = match killable(socket) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "cannot set up the connection");
                return;
            }
        };
        let conn = CancellationToken::new();
        let _cancel_on_exit = conn.clone().drop_guard();
        let (authed_tx, authed_rx) = oneshot::channel();
        let handler = handler::Conn::new(
            Arc::clone(&app),
            Arc::clone(&shared),
            peer,
            conn.clone(),
            tracker,
            authed_tx,
        );
        let started =
            tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler));
        let mut session = match started.await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "handshake failed");
                return;
            }
            Err(_) => {
                app.metrics.refused(Refused::Banner);
                if let Some(suppressed) = shared.refusal_logs.check(Instant::now()) {
                    tracing::info!(%peer, suppressed, "no SSH banner in time; dropped");
                }
                return;
            }
        };
        let handle = session.handle();
        let why = tokio::select! {
            r = &mut session => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "session ended before auth");
                }
                return;
            }
            r = tokio::time::timeout_at(deadline, authed_rx) => match r {
                Ok(Ok(())) => None,
                _ => {
                    app.metrics.refused(Refused::AuthTimeout);
                    Some("authentication timeout")
                }
            },
            () = app.shutdown.cancelled() => Some("server shutting down"),
        };
        if let Some(why) = why {
            if let Some(suppressed) = shared.refusal_logs.check(Instant::now()) {
                tracing::info!(%peer, reason = why, suppressed, "unauthenticated connection dropped");
            }
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, why.into(), String::new())
                .await;
            // The disconnect message gets a moment; then the socket goes.
            let _ = tokio::time::timeout(Duration::from_millis(200), &mut session).await;
            let _ = killer.shutdown(std::net::Shutdown::Both);
            return;
        }
        drop(killer);
        // Authenticated: this connection no longer counts against its IP.
        drop(handshake);
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
}

/// The socket for russh plus a second handle to the same socket, whose
/// `shutdown` ends the connection from outside russh's task.
fn killable(
    socket: tokio::net::TcpStream,
) -> std::io::Result<(tokio::net::TcpStream, std::net::TcpStream)> {
    let std = socket.into_std()?;
    let killer = std.try_clone()?;
    Ok((tokio::net::TcpStream::from_std(std)?, killer))
}
