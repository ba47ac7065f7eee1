//! The russh `Handler`: authenticate, answer every request, and hand each
//! command to its own task.
//!
//! Callbacks run inside the connection's read loop, so they never wait on
//! anything slow: they decide, reply, and spawn. Every request that wants a
//! reply gets one — an unanswered request hangs the OpenSSH client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use std::time::Instant;

use russh::keys::Certificate;
use russh::server::{Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::auth::{self, Refusal};
use super::exec::{self, Request};
use super::limits::Shared;
use super::out::Cadence;
use crate::app::App;
use crate::identity::Identity;

pub struct Conn {
    app: Arc<App>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    identity: Option<Identity>,
    /// Session channels opened but not yet given a command.
    channels: HashMap<ChannelId, Pending>,
    /// Channels running a command, each with a token cancelled when the
    /// client closes the channel (or the command ends), so a command whose
    /// client went away ends even while it reads nothing from the channel
    /// (a waiting pub over a ControlMaster connection).
    running: HashMap<ChannelId, CancellationToken>,
    /// Cancelled when this connection ends.
    conn: CancellationToken,
    tracker: TaskTracker,
    /// Told once authentication succeeds (the auth time limit stops then).
    authed: Option<oneshot::Sender<()>>,
}

impl Conn {
    pub fn new(
        app: Arc<App>,
        shared: Arc<Shared>,
        peer: SocketAddr,
        conn: CancellationToken,
        tracker: TaskTracker,
        authed: oneshot::Sender<()>,
    ) -> Self {
        Conn {
            app,
            shared,
            peer,
            identity: None,
            channels: HashMap::new(),
            running: HashMap::new(),
            conn,
            tracker,
            authed: Some(authed),
        }
    }

    /// `Some` when `decision` lets the client in; a refusal other than an
    /// unknown key is logged (rate-limited), as it usually means a client
    /// or CA to fix.
    fn admit(&self, decision: Result<Identity, Refusal>) -> Option<Identity> {
        use crate::metrics::Refusal as Counted;
        let (why, user, counted) = match decision {
            Ok(id) => return Some(id),
            Err(Refusal::Unknown) => {
                self.app.metrics.refused(Counted::UnknownKey);
                return None;
            }
            Err(Refusal::Key(why, user)) => (why.to_string(), user, Counted::Key),
            Err(Refusal::Cert(why, user)) => {
                (format!("certificate {why}"), user, Counted::Certificate)
            }
        };
        self.app.metrics.refused(counted);
        if let Some(suppressed) = self.shared.refusal_logs.check(Instant::now()) {
            tracing::info!(peer = %self.peer, user = user.as_deref(), reason = %why, suppressed, "key refused");
        }
        None
    }

    /// Authentication succeeded as `identity`.
    fn authenticated(&mut self, identity: Identity) -> Auth {
        tracing::debug!(peer = %self.peer, user = %identity.name, "authenticated");
        self.identity = Some(identity);
        if let Some(tx) = self.authed.take() {
            let _ = tx.send(());
        }
        Auth::Accept
    }

    fn start(&mut self, channel: ChannelId, exec: Option<Vec<u8>>, session: &mut Session) {
        let (Some(pending), Some(identity)) =
            (self.channels.remove(&channel), self.identity.clone())
        else {
            let _ = session.channel_failure(channel);
            return;
        };
        let _ = session.channel_success(channel);
        let token = self.conn.child_token();
        self.running.insert(channel, token.clone());
        // Every line a command logs carries who and from where once, here,
        // instead of as fields repeated on each event.
        let cmd = exec.as_deref().map_or_else(
            || "(shell)".to_string(),
            |b| String::from_utf8_lossy(b).into_owned(),
        );
        let span = tracing::info_span!(
            "session",
            user = %identity.name,
            peer = %self.peer,
            cmd = %cmd,
            topic = tracing::field::Empty,
        );
        let req = Request {
            app: Arc::clone(&self.app),
            shared: Arc::clone(&self.shared),
            identity,
            peer: self.peer,
            conn: token,
            exec,
            pty: pending.pty,
            cadence: Cadence::of(session.remote_sshid()),
            topic: std::sync::OnceLock::new(),
        };
        self.tracker.spawn(tracing::Instrument::instrument(
            exec::run(req, pending.channel),
            span,
        ));
    }

    /// Session channels open now: waiting for a command, or running one
    /// (a command's token is cancelled when it ends).
    fn open_channels(&mut self) -> usize {
        self.running.retain(|_, token| !token.is_cancelled());
        self.channels.len() + self.running.len()
    }

    /// Counts a request made before the command; past the limit it is
    /// refused (SPEC §9), so a client cannot make us hold requests.
    fn request_allowed(&mut self, channel: ChannelId) -> bool {
        let max = self.shared.limits.max_channel_requests;
        match self.channels.get_mut(&channel) {
            Some(p) if p.requests < max => {
                p.requests += 1;
                true
            }
            Some(_) => {
                self.app
                    .metrics
                    .refused(crate::metrics::Refusal::ChannelRequests);
                if let Some(suppressed) = self.shared.refusal_logs.check(std::time::Instant::now())
                {
                    tracing::info!(peer = %self.peer, limit = max, suppressed, "too many channel requests before a command; refusing");
                }
                false
            }
            None => false,
        }
    }
}

/// A session channel waiting for its command.
struct Pending {
    channel: Channel<Msg>,
    /// The client asked for a PTY.
    pty: bool,
    /// Requests seen so far.
    requests: usize,
}

fn publickey_only() -> MethodSet {
    MethodSet::from(&[MethodKind::PublicKey][..])
}

fn reject() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(publickey_only()),
        partial_success: false,
    }
}

impl russh::server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Say no before the client signs with a key or certificate that
        // cannot log in, so OpenSSH moves on to its next one at once (a
        // certificate from an untrusted CA falls back to the plain key).
        let peer = self.peer.ip();
        let decision = match offer.certificate {
            Some(cert) => auth::cert_offer_identity(&self.app, cert, offer.algorithm, peer),
            None => auth::key_identity(&self.app, offer.public_key, offer.algorithm),
        };
        Ok(match self.admit(decision) {
            Some(_) => Auth::Accept,
            None => reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let decision = auth::key_identity(&self.app, key.public_key, key.algorithm);
        Ok(match self.admit(decision) {
            Some(identity) => self.authenticated(identity),
            None => reject(),
        })
    }

    async fn auth_openssh_certificate(
        &mut self,
        _user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        // The signature algorithm was checked when this certificate was
        // offered: russh calls the offer callback for every signed request
        // except one that repeats the PK_OK'd probe byte for byte (same
        // algorithm name and blob).
        let decision = auth::cert_identity(&self.app, cert, self.peer.ip());
        Ok(match self.admit(decision) {
            Some(identity) => self.authenticated(identity),
            None => reject(),
        })
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let max = self.shared.limits.max_channels_per_connection;
        if self.open_channels() >= max {
            self.app.metrics.refused(crate::metrics::Refusal::Channels);
            if let Some(suppressed) = self.shared.refusal_logs.check(std::time::Instant::now()) {
                tracing::info!(peer = %self.peer, limit = max, suppressed, "too many channels on one connection; refusing");
            }
            reply
                .reject(russh::ChannelOpenFailure::ResourceShortage)
                .await;
            return Ok(());
        }
        let pending = Pending {
            channel,
            pty: false,
            requests: 0,
        };
        self.channels.insert(pending.channel.id(), pending);
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // A channel closed before any command: drop it so nothing queues on
        // it. One running a command: its client is gone, so the command ends.
        self.channels.remove(&channel);
        if let Some(token) = self.running.remove(&channel) {
            token.cancel();
        }
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, Some(data.to_vec()), session);
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.start(channel, None, session);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Accepted so interactive `ssh host` works; we never translate data.
        if !self.request_allowed(channel) {
            return session.channel_failure(channel);
        }
        if let Some(p) = self.channels.get_mut(&channel) {
            p.pty = true;
        }
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Ignored (SPEC §9), but counted like every request before a command.
        self.request_allowed(channel);
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer, subsystem = name, "subsystem refused");
        session.channel_failure(channel)?;
        // Nothing will run on this channel: end it so the client does not wait.
        if self.channels.remove(&channel).is_some() {
            session.exit_status_request(channel, 1)?;
            session.eof(channel)?;
            session.close(channel)?;
        }
        Ok(())
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        Ok(false)
    }
}
