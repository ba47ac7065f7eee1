//! What every front end shares: the broker, who the users are, how the
//! server presents itself in hints, and what it reports about itself (the
//! `logs` readers and the `/metrics` counters).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::identity::AuthMode;
use crate::identity::Users;
use crate::identity::cert::TrustedCas;
use crate::logs::LogHub;
use crate::metrics::Metrics;
use crate::monitor::{Clock, MemoryMonitors, MonitorLimits, Monitors};
use crate::tokens::Tokens;

#[derive(Debug)]
pub struct App {
    pub broker: Broker,
    pub users: Users,
    /// CAs whose user certificates log in (`--trusted-user-ca`).
    pub trusted_cas: TrustedCas,
    pub auth: AuthMode,
    /// Host name printed in hints.
    pub domain: String,
    /// Port printed in hints; 22 prints no `-p`.
    pub advertise_port: u16,
    /// Cancelled on SIGINT/SIGTERM: every client is told and let go.
    pub shutdown: CancellationToken,
    /// The `#N` of client ids (`USER@IP:PORT#N`).
    next_client: AtomicU64,
    /// Readers of `ssh host logs`, fed by the process's tracing layer.
    pub logs: LogHub,
    /// The `/metrics` counters.
    pub metrics: Metrics,
    /// HTTP access tokens (SPEC §11.1).
    pub tokens: Arc<Tokens>,
    /// Whether HTTP requests without a token may use public topics
    /// (`--http-anonymous`).
    pub http_anonymous: bool,
    /// Health monitors (SPEC §13). `new` gives memory-only ones;
    /// `server::start` puts stored ones in with `with_monitors`.
    pub monitors: Monitors,
}

impl App {
    pub fn new(
        broker: Broker,
        users: Users,
        trusted_cas: TrustedCas,
        auth: AuthMode,
        domain: String,
        advertise_port: u16,
        shutdown: CancellationToken,
    ) -> Self {
        let monitors = Monitors::new(
            Arc::new(MemoryMonitors::default()),
            Vec::new(),
            broker.clone(),
            Clock::system(),
            MonitorLimits::default(),
        );
        App {
            monitors,
            broker,
            users,
            trusted_cas,
            auth,
            domain,
            advertise_port,
            tokens: Arc::new(Tokens::in_memory(shutdown.clone())),
            http_anonymous: auth == AuthMode::Open,
            shutdown,
            next_client: AtomicU64::new(1),
            logs: LogHub::global(),
            metrics: Metrics::default(),
        }
    }

    /// The same, counting into `metrics` (which knows where `/metrics` is
    /// served).
    pub fn with_metrics(self, metrics: Metrics) -> Self {
        App { metrics, ..self }
    }

    /// The same, with tokens kept in `tokens` and `--http-anonymous` set.
    pub fn with_tokens(self, tokens: Arc<Tokens>, http_anonymous: bool) -> Self {
        App {
            tokens,
            http_anonymous,
            ..self
        }
    }

    /// The same, with these monitors (stored ones, at start-up).
    pub fn with_monitors(self, monitors: Monitors) -> Self {
        App { monitors, ..self }
    }

    pub fn next_client_number(&self) -> u64 {
        self.next_client.fetch_add(1, Ordering::Relaxed)
    }

    /// `ssh -p 2222 DOMAIN` (or `ssh DOMAIN` on port 22), for hints.
    pub fn ssh_prefix(&self) -> String {
        if self.advertise_port == 22 {
            format!("ssh {}", self.domain)
        } else {
            format!("ssh -p {} {}", self.advertise_port, self.domain)
        }
    }
}
