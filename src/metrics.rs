//! `GET /metrics` (SPEC §12): the server's numbers in the Prometheus text
//! format, so an operator can graph and alert on it without reading logs.
//!
//! Two kinds of numbers, kept apart so the hot paths pay next to nothing:
//!
//! - counted as things happen (connections open, sessions ended, bytes,
//!   refusals): a few atomics bumped by one-line hooks in the front ends;
//! - asked for when scraped (topics, receivers, queued messages, skipped
//!   bytes): `Broker::stats`, computed from what the broker keeps anyway.
//!
//! Labels hold only fixed words (`transport`, `cmd`, `status`, `direction`,
//! `reason`, `health`, `version`): never a user or topic name, so a scrape
//! reveals no one's activity and the number of series stays bounded
//! whatever users do.
//!
//! - `render`: the text format.
//! - `serve`: the `/metrics` route, on the HTTP listener or on
//!   `--metrics-listen ADDR` of its own; and the listener that counts HTTP
//!   connections.

mod render;
mod serve;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub use serve::{CountedListener, routes, serve};

use crate::app::App;

/// What a connection came in through (`sshpipe_connections{transport}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ssh,
    /// HTTP, including WebSockets and SSE streams.
    Http,
}

/// Why the server turned a client away (`sshpipe_refused_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `--max-connections` reached.
    Connections,
    /// `--max-handshakes-per-ip` reached.
    Handshakes,
    /// No SSH banner and key exchange within `--auth-timeout`.
    Banner,
    /// Connected but not authenticated within `--auth-timeout`.
    AuthTimeout,
    /// A key offered that is not in the users file (`--auth users`).
    UnknownKey,
    /// A key of a refused type or size, or a SHA-1 signature.
    Key,
    /// A certificate refused (untrusted CA, expired, ...).
    Certificate,
    /// `--max-sessions-per-user` reached.
    Sessions,
    /// `--max-channels-per-connection` reached.
    Channels,
    /// `--max-channel-requests` reached.
    ChannelRequests,
}

impl Refusal {
    pub const ALL: [Refusal; 10] = [
        Refusal::Connections,
        Refusal::Handshakes,
        Refusal::Banner,
        Refusal::AuthTimeout,
        Refusal::UnknownKey,
        Refusal::Key,
        Refusal::Certificate,
        Refusal::Sessions,
        Refusal::Channels,
        Refusal::ChannelRequests,
    ];

    /// The `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Connections => "connection_limit",
            Refusal::Handshakes => "handshake_limit",
            Refusal::Banner => "banner_timeout",
            Refusal::AuthTimeout => "auth_timeout",
            Refusal::UnknownKey => "unknown_key",
            Refusal::Key => "key",
            Refusal::Certificate => "certificate",
            Refusal::Sessions => "session_limit",
            Refusal::Channels => "channel_limit",
            Refusal::ChannelRequests => "channel_request_limit",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// The commands of SPEC §4, the only values of the `cmd` label; anything
/// else a client types is `unknown`.
const COMMANDS: [&str; 13] = [
    "help", "whoami", "ls", "pub", "sub", "pipe", "access", "token", "logs", "monitor", "status",
    "uptime", "rss",
];

/// The server's counters. Lives in `App`; every front end bumps it.
#[derive(Debug)]
pub struct Metrics {
    /// `/metrics` is served on the HTTP listener (`--metrics-listen http`).
    on_http: bool,
    ssh_connections: Arc<AtomicI64>,
    http_connections: Arc<AtomicI64>,
    /// Ended sessions by (`cmd`, `status`); a map because only the pairs
    /// that happened are worth a series.
    sessions: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    refused: [AtomicU64; Refusal::ALL.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(true)
    }
}

/// Holds an open connection in `sshpipe_connections` until dropped.
#[derive(Debug)]
pub struct OpenConnection(Arc<AtomicI64>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// `on_http`: whether the HTTP listener serves `/metrics`.
    pub fn new(on_http: bool) -> Self {
        Metrics {
            on_http,
            ssh_connections: Arc::default(),
            http_connections: Arc::default(),
            sessions: Mutex::default(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            refused: Default::default(),
        }
    }

    pub fn on_http(&self) -> bool {
        self.on_http
    }

    /// A connection opened; it counts until the guard is dropped.
    pub fn connection(&self, transport: Transport) -> OpenConnection {
        let gauge = match transport {
            Transport::Ssh => &self.ssh_connections,
            Transport::Http => &self.http_connections,
        };
        gauge.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(gauge))
    }

    /// Open connections of `transport` now.
    pub fn connections(&self, transport: Transport) -> i64 {
        match transport {
            Transport::Ssh => self.ssh_connections.load(Ordering::Relaxed),
            Transport::Http => self.http_connections.load(Ordering::Relaxed),
        }
    }

    /// A client was turned away.
    pub fn refused(&self, why: Refusal) {
        self.refused[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// A session ended: `exec` as the client sent it (`None`: a shell),
    /// its exit status (`None`: the client went away first), and the bytes
    /// it moved.
    pub fn session_ended(&self, exec: Option<&str>, status: Option<u32>, bytes: (u64, u64)) {
        let key = (cmd_label(exec), status_label(status));
        *lock(&self.sessions).entry(key).or_default() += 1;
        self.add_bytes(bytes.0, bytes.1);
    }

    /// Data moved for clients: SSH sessions report theirs as they end,
    /// HTTP requests as it moves.
    pub fn add_bytes(&self, bytes_in: u64, bytes_out: u64) {
        if bytes_in > 0 {
            self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        }
        if bytes_out > 0 {
            self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        }
    }
}

/// The `cmd` label of an exec string: its command word if it is one of
/// SPEC §4's, else `unknown` (so no typed text ever becomes a label).
fn cmd_label(exec: Option<&str>) -> &'static str {
    let Some(exec) = exec else { return "help" };
    let Ok(words) = crate::command::split_words(exec) else {
        return "unknown";
    };
    match words.first().map(String::as_str) {
        None | Some("-h" | "--help") => "help",
        Some(word) => COMMANDS
            .iter()
            .find(|c| **c == word)
            .copied()
            .unwrap_or("unknown"),
    }
}

fn status_label(status: Option<u32>) -> &'static str {
    match status {
        None => "gone",
        Some(0) => "0",
        Some(1) => "1",
        Some(2) => "2",
        Some(_) => "other",
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Poisoning only means a panic elsewhere; counters stay usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `/metrics` page of `app`, as of now.
pub fn text(app: &App) -> String {
    let stats = app.broker.stats();
    let m = &app.metrics;
    let sessions = lock(&m.sessions).clone();
    let refused = Refusal::ALL.map(|r| (r.label(), m.refused[r.index()].load(Ordering::Relaxed)));
    render::Page {
        ssh_connections: m.connections(Transport::Ssh),
        http_connections: m.connections(Transport::Http),
        sessions: &sessions,
        bytes: (
            m.bytes_in.load(Ordering::Relaxed),
            m.bytes_out.load(Ordering::Relaxed),
        ),
        skipped_bytes: stats.skipped_bytes,
        stats: &stats,
        refused: &refused,
        store_errors: app.logs.store_errors(),
        log_lines_skipped: app.logs.skipped_lines(),
        monitors: app.monitors.counts(),
    }
    .render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmd_labels_are_only_command_names() {
        let table = [
            (None, "help"),
            (Some(""), "help"),
            (Some("--help"), "help"),
            (Some("pub -q t"), "pub"),
            (Some("'sub' x"), "sub"),
            (Some("logs --all"), "logs"),
            (Some("monitor t 2s"), "monitor"),
            (Some("secret-topic-name"), "unknown"),
            (Some("pub 'unbalanced"), "unknown"),
            (Some("PUB t"), "unknown"),
        ];
        for (exec, want) in table {
            assert_eq!(cmd_label(exec), want, "{exec:?}");
        }
    }

    #[test]
    fn connections_count_while_their_guard_lives() {
        let m = Metrics::default();
        let a = m.connection(Transport::Ssh);
        let b = m.connection(Transport::Http);
        let c = m.connection(Transport::Ssh);
        assert_eq!(m.connections(Transport::Ssh), 2);
        drop((a, b));
        assert_eq!(
            (
                m.connections(Transport::Ssh),
                m.connections(Transport::Http)
            ),
            (1, 0)
        );
        drop(c);
        assert_eq!(m.connections(Transport::Ssh), 0);
    }
}
