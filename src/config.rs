//! Command-line options (each also an `SSHPIPE_*` environment variable) and
//! the checks that turn them into a runnable configuration.
//!
//! Everything a start-up can get wrong is found here, before any port is
//! bound, so a mistake is one clear line and a non-zero exit instead of a
//! half-started server.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::identity::cert::TrustedCas;
use crate::identity::{AuthMode, Users};

#[derive(Debug, Parser)]
#[command(
    name = "sshpipe",
    version,
    about = "Networked Unix pipes over SSH: pub/sub/pipe with plain `ssh`",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the server (the default).
    Serve(ServeArgs),
}

impl Cli {
    /// `sshpipe` alone is `sshpipe serve`.
    pub fn into_serve(self) -> ServeArgs {
        match self.command {
            Some(CliCommand::Serve(args)) => args,
            None => self.serve,
        }
    }
}

/// Which key exchanges the SSH server offers (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum KexPolicy {
    /// ML-KEM hybrid first; curve25519 kept for clients without ML-KEM.
    #[default]
    Compat,
    /// ML-KEM hybrids only.
    PostQuantum,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// SSH listen address.
    #[arg(long, env = "SSHPIPE_SSH_LISTEN", default_value = "0.0.0.0:2222")]
    pub ssh_listen: SocketAddr,
    /// HTTP/WebSocket listen address, or `off`.
    #[arg(long, env = "SSHPIPE_HTTP_LISTEN", default_value = "0.0.0.0:8080", value_parser = parse_http_listen)]
    pub http_listen: HttpListen,
    /// Host keys and the embedded store; created 0700 if missing.
    #[arg(long, env = "SSHPIPE_DATA_DIR", default_value = "./sshpipe-data")]
    pub data_dir: PathBuf,
    /// The ed25519 host key file, which must exist (several nodes share one,
    /// SPEC §14). Default: DATA_DIR/ssh_host_ed25519_key, made on first start.
    #[arg(long, env = "SSHPIPE_HOST_KEY")]
    pub host_key: Option<PathBuf>,
    /// TOML users file.
    #[arg(long, env = "SSHPIPE_USERS")]
    pub users: Option<PathBuf>,
    /// `open`: any key may connect; `users`: only keys in the users file.
    #[arg(long, env = "SSHPIPE_AUTH", value_enum, default_value = "open")]
    pub auth: AuthMode,
    /// Host name printed in hints.
    #[arg(long, env = "SSHPIPE_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Port printed in hints (default: the SSH listen port; 22 prints no -p).
    #[arg(long, env = "SSHPIPE_ADVERTISE_PORT")]
    pub advertise_port: Option<u16>,
    /// Key exchange: `compat` (ML-KEM hybrid first, curve25519 for older
    /// clients) or `post-quantum` (ML-KEM hybrids only).
    #[arg(long, env = "SSHPIPE_KEX", value_enum, default_value = "compat")]
    pub kex: KexPolicy,
    /// Where live topics are kept: `memory` (this process; one node) or
    /// `nats://HOST:PORT[,HOST:PORT…]` (several nodes share topics, SPEC §14).
    #[arg(long, env = "SSHPIPE_BROKER", default_value = "memory", value_parser = parse_broker)]
    pub broker: BrokerUrl,
    /// NATS credentials file (`.creds`: JWT and NKey seed) for `--broker nats://`.
    #[arg(long, env = "SSHPIPE_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificates (PEM) to trust for TLS to NATS; TLS is then required.
    #[arg(long, env = "SSHPIPE_NATS_CA")]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS to NATS (with --nats-key).
    #[arg(long, env = "SSHPIPE_NATS_CERT", requires = "nats_key")]
    pub nats_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, env = "SSHPIPE_NATS_KEY", requires = "nats_cert")]
    pub nats_key: Option<PathBuf>,
    /// Replicas of sshpipe's JetStream buckets (1 with a single nats-server).
    #[arg(long, env = "SSHPIPE_NATS_REPLICAS", default_value_t = 3)]
    pub nats_replicas: usize,
    /// OpenSSH CA public keys, one per line, whose user certificates log in.
    #[arg(long, env = "SSHPIPE_TRUSTED_USER_CA")]
    pub trusted_user_ca: Option<PathBuf>,
    /// Where GET /metrics is served: `http` (the HTTP listener), an address
    /// of its own (then only there), or `off`.
    #[arg(long, env = "SSHPIPE_METRICS_LISTEN", default_value = "http", value_parser = parse_metrics_listen)]
    pub metrics_listen: MetricsListen,
    /// `text` or `json` log lines on stderr; level via RUST_LOG.
    #[arg(long, env = "SSHPIPE_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Largest queued message (`pub -q`), e.g. `64MiB`, `500KB`, `1000`.
    #[arg(long, env = "SSHPIPE_QUEUE_MAX_MESSAGE", default_value = "64MiB", value_parser = parse_size)]
    pub queue_max_message: u64,
    /// Most bytes of queued messages per user.
    #[arg(long, env = "SSHPIPE_QUEUE_MAX_USER_BYTES", default_value = "256MiB", value_parser = parse_size)]
    pub queue_max_user_bytes: u64,
    /// Most queued messages per user.
    #[arg(long, env = "SSHPIPE_QUEUE_MAX_USER_MESSAGES", default_value = "1000")]
    pub queue_max_user_messages: usize,
    /// How long a queued message is kept (Go duration: `168h`, `30m`).
    #[arg(long, env = "SSHPIPE_QUEUE_RETENTION", default_value = "168h", value_parser = crate::command::parse_duration)]
    pub queue_retention: std::time::Duration,
    /// All queued messages together, e.g. `4GiB`; over it `pub -q` gets
    /// `queue full: server storage is full`.
    #[arg(long, env = "SSHPIPE_MAX_STORE_BYTES", default_value = "4GiB", value_parser = parse_size)]
    pub max_store_bytes: u64,
    /// Store nothing while the data dir's file system has less than this
    /// share free (`5%`; `0` turns the check off).
    #[arg(long, env = "SSHPIPE_MIN_FREE_DISK", default_value = "5%", value_parser = parse_percent)]
    pub min_free_disk: u8,
    /// Anonymous keys (`fp-…`) get 1/N of each per-user limit: topics,
    /// queued bytes and queued messages.
    #[arg(long, env = "SSHPIPE_ANONYMOUS_DIVISOR", default_value = "10", value_parser = clap::value_parser!(u64).range(1..))]
    pub anonymous_divisor: u64,
    /// Most open SSH connections.
    #[arg(long, env = "SSHPIPE_MAX_CONNECTIONS", default_value = "10000")]
    pub max_connections: usize,
    /// Most connections per source IP still in handshake or authentication.
    #[arg(long, env = "SSHPIPE_MAX_HANDSHAKES_PER_IP", default_value = "64")]
    pub max_handshakes_per_ip: usize,
    /// Time from connect to finished authentication (Go duration: `20s`).
    #[arg(long, env = "SSHPIPE_AUTH_TIMEOUT", default_value = "20s", value_parser = crate::command::parse_duration)]
    pub auth_timeout: std::time::Duration,
    /// Authentication attempts per connection.
    #[arg(long, env = "SSHPIPE_MAX_AUTH_ATTEMPTS", default_value = "6")]
    pub max_auth_attempts: usize,
    /// Longest exec string (the command a client sends), in bytes.
    #[arg(long, env = "SSHPIPE_MAX_EXEC_BYTES", default_value_t = crate::command::MAX_EXEC_LEN)]
    pub max_exec_bytes: usize,
    /// Most topics that exist at once.
    #[arg(long, env = "SSHPIPE_MAX_TOPICS", default_value = "10000")]
    pub max_topics: usize,
    /// Most live topics one user may have made (anonymous keys: 1/N of it,
    /// see --anonymous-divisor; all anonymous keys together: half of
    /// --max-topics).
    #[arg(long, env = "SSHPIPE_MAX_TOPICS_PER_USER", default_value = "1000")]
    pub max_topics_per_user: usize,
    /// Most commands one user may run at once.
    #[arg(long, env = "SSHPIPE_MAX_SESSIONS_PER_USER", default_value = "1000")]
    pub max_sessions_per_user: usize,
    /// Most session channels open at once on one SSH connection.
    #[arg(
        long,
        env = "SSHPIPE_MAX_CHANNELS_PER_CONNECTION",
        default_value = "10"
    )]
    pub max_channels_per_connection: usize,
    /// Channel requests (env, pty-req, …) a channel may send before its
    /// command; later ones are refused.
    #[arg(long, env = "SSHPIPE_MAX_CHANNEL_REQUESTS", default_value = "64")]
    pub max_channel_requests: usize,
    /// How often an idle client is probed (Go duration: `15s`).
    #[arg(long, env = "SSHPIPE_KEEPALIVE_INTERVAL", default_value = "15s", value_parser = parse_keepalive_interval)]
    pub keepalive_interval: std::time::Duration,
    /// Unanswered probes after which a client is dropped.
    #[arg(long, env = "SSHPIPE_KEEPALIVE_MAX", default_value = "4", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub keepalive_max: u32,
    /// Whether HTTP clients without a token may use public topics
    /// (default: true with --auth open, false with --auth users).
    #[arg(long, env = "SSHPIPE_HTTP_ANONYMOUS", value_parser = parse_bool_option)]
    pub http_anonymous: Option<bool>,
    /// Most open HTTP connections (WebSockets and streams included). Past
    /// it the oldest connection that has not sent a request is closed to
    /// make room, else the new one is closed at once. Never more than half
    /// the open-files limit: the rest is kept for SSH.
    #[arg(long, env = "SSHPIPE_MAX_HTTP_CONNECTIONS", default_value = "10000", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_http_connections: u64,
    /// Time from connect to a complete first request head (Go duration).
    #[arg(long, env = "SSHPIPE_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_http_timeout)]
    pub http_header_timeout: std::time::Duration,
    /// Idle time allowed between requests on a kept-alive connection, and
    /// for the head of each later request.
    #[arg(long, env = "SSHPIPE_HTTP_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_http_timeout)]
    pub http_idle_timeout: std::time::Duration,
}

/// `true`/`false` and the other spellings `-b=` takes over SSH.
fn parse_bool_option(s: &str) -> Result<bool, String> {
    crate::command::parse_bool(s).ok_or_else(|| format!("invalid value {s:?} (use true or false)"))
}

/// An HTTP timeout: from 100ms to an hour.
fn parse_http_timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::command::parse_duration(s)?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(3600) {
        return Err(format!("timeout {s:?} must be from 100ms to 1h"));
    }
    Ok(d)
}

/// A keepalive interval: at least 1 s (a shorter one would probe clients
/// many times a second), at most a day.
fn parse_keepalive_interval(s: &str) -> Result<std::time::Duration, String> {
    let d = crate::command::parse_duration(s)?;
    if d < std::time::Duration::from_secs(1) || d > std::time::Duration::from_secs(86_400) {
        return Err(format!("keepalive interval {s:?} must be from 1s to 24h"));
    }
    Ok(d)
}

impl ServeArgs {
    /// Every option at its default, ignoring the environment. Option
    /// defaults live only in the `#[arg(default_value …)]` attributes above;
    /// the `Default` impls of the structs built from options (broker, queue
    /// and SSH limits) come from here, so a default is never written twice.
    pub fn defaults() -> ServeArgs {
        use clap::FromArgMatches;
        let parsed = defaults_command()
            .try_get_matches_from(["sshpipe"])
            .map_err(|e| e.to_string())
            .and_then(|m| ServeArgs::from_arg_matches(&m).map_err(|e| e.to_string()));
        match parsed {
            Ok(args) => args,
            // Invariant: every option is optional and its default parses;
            // the test `defaults_ignore_the_environment` runs this.
            Err(e) => unreachable!("option defaults do not parse: {e}"),
        }
    }

    /// The broker settings these options set.
    pub fn broker_config(&self) -> crate::broker::BrokerConfig {
        let backend = match &self.broker {
            BrokerUrl::Memory => crate::broker::BackendKind::Memory,
            BrokerUrl::Nats(urls) => crate::broker::BackendKind::Nats(crate::broker::NatsOptions {
                urls: urls.clone(),
                creds: self.nats_creds.clone(),
                tls_ca: self.nats_ca.clone(),
                tls_cert: self.nats_cert.clone().zip(self.nats_key.clone()),
                replicas: self.nats_replicas,
            }),
        };
        crate::broker::BrokerConfig {
            backend,
            queue: self.queue_limits(),
            max_topics: self.max_topics,
            max_topics_per_user: self.max_topics_per_user,
        }
    }

    /// The queue limits these options set.
    pub fn queue_limits(&self) -> crate::broker::QueueLimits {
        crate::broker::QueueLimits {
            max_message: self.queue_max_message,
            max_user_bytes: self.queue_max_user_bytes,
            max_user_messages: self.queue_max_user_messages,
            retention: self.queue_retention,
            max_store_bytes: self.max_store_bytes,
            min_free_percent: self.min_free_disk,
            anonymous_divisor: self.anonymous_divisor,
        }
    }
}

/// `--broker`: the embedded broker, or NATS servers to share topics through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerUrl {
    Memory,
    Nats(Vec<String>),
}

/// Printed at start-up: the servers, never a password in a URL.
impl std::fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BrokerUrl::Memory => f.write_str("memory"),
            BrokerUrl::Nats(urls) => {
                let shown: Vec<String> = urls
                    .iter()
                    .map(|u| match (u.split_once("://"), u.rsplit_once('@')) {
                        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
                        _ => u.clone(),
                    })
                    .collect();
                f.write_str(&shown.join(","))
            }
        }
    }
}

/// `nats://h1:4222,h2:4222` (SPEC §1) lists servers as NATS users write
/// them: a bare `HOST:PORT` after the first URL takes the scheme and the
/// credentials (`user:pw@`) of the URL before it, since one cluster's
/// servers share them; `nats://h1:4222,nats://h2:4222` means the same.
fn parse_broker(s: &str) -> Result<BrokerUrl, String> {
    if s == "memory" {
        return Ok(BrokerUrl::Memory);
    }
    let mut urls: Vec<String> = Vec::new();
    // The scheme and credentials of the last full URL: "nats://user:pw@".
    let mut prefix: Option<String> = None;
    for part in s.split(',').map(str::trim) {
        let full = ["nats://", "tls://"]
            .iter()
            .find_map(|scheme| part.strip_prefix(scheme).map(|rest| (*scheme, rest)));
        let (url, host_port) = match (full, &prefix) {
            (Some((scheme, rest)), _) => {
                let (creds, host_port) =
                    rest.rsplit_once('@').map_or(("", rest), |(c, hp)| (c, hp));
                prefix = Some(if creds.is_empty() {
                    scheme.to_string()
                } else {
                    format!("{scheme}{creds}@")
                });
                (part.to_string(), host_port)
            }
            (None, Some(p)) if !part.contains("://") && !part.contains('@') => {
                (format!("{p}{part}"), part)
            }
            _ => {
                return Err(format!(
                    "{part:?}: expected `memory` or nats://HOST:PORT[,HOST:PORT…]"
                ));
            }
        };
        let ok = host_port
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(format!("{part:?}: expected HOST:PORT after the scheme"));
        }
        urls.push(url);
    }
    Ok(BrokerUrl::Nats(urls))
}

/// The serve options with their environment variables unset, so that
/// `ServeArgs::defaults` never depends on the environment it runs in.
fn defaults_command() -> clap::Command {
    use clap::Args;
    ServeArgs::augment_args(clap::Command::new("sshpipe")).mut_args(|a| a.env(None))
}

/// The broker's defaults are the command line's (see `ServeArgs::defaults`).
impl Default for crate::broker::BrokerConfig {
    fn default() -> Self {
        ServeArgs::defaults().broker_config()
    }
}

impl Default for crate::broker::QueueLimits {
    fn default() -> Self {
        ServeArgs::defaults().queue_limits()
    }
}

/// A share of a file system: `5%` or `5`, from 0 to 100.
pub fn parse_percent(s: &str) -> Result<u8, String> {
    let t = s.trim();
    let n = t.strip_suffix('%').unwrap_or(t).trim();
    match n.parse::<u8>() {
        Ok(p) if p <= 100 => Ok(p),
        _ => Err(format!("{s:?} is not a percentage from 0% to 100%")),
    }
}

/// A byte count: a number with an optional unit (`KiB`, `MiB`, `GiB`,
/// `KB`, `MB`, `GB`, `B`; case-insensitive).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size {s:?} (like 64MiB or 1000)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "invalid size unit in {s:?} (use B, KB, KiB, MB, MiB, GB, GiB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpListen {
    Off,
    On(SocketAddr),
}

fn parse_http_listen(s: &str) -> Result<HttpListen, String> {
    if s == "off" {
        return Ok(HttpListen::Off);
    }
    s.parse()
        .map(HttpListen::On)
        .map_err(|e| format!("{e} (an address like 0.0.0.0:8080, or `off`)"))
}

/// Where `GET /metrics` is served (SPEC §2, §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsListen {
    /// On the HTTP listener, beside the topics (nowhere if HTTP is off).
    #[default]
    Http,
    /// On a listener of its own, and only there.
    On(SocketAddr),
    Off,
}

impl std::fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetricsListen::Http => f.write_str("http"),
            MetricsListen::On(addr) => write!(f, "{addr}"),
            MetricsListen::Off => f.write_str("off"),
        }
    }
}

fn parse_metrics_listen(s: &str) -> Result<MetricsListen, String> {
    match s {
        "http" => Ok(MetricsListen::Http),
        "off" => Ok(MetricsListen::Off),
        _ => s
            .parse()
            .map(MetricsListen::On)
            .map_err(|e| format!("{e} (`http`, an address like 127.0.0.1:9090, or `off`)")),
    }
}

/// Reads and checks the users file; a missing file is an error only when
/// one was named.
pub fn load_users(path: Option<&Path>, auth: AuthMode) -> anyhow::Result<Users> {
    let Some(path) = path else {
        if auth == AuthMode::Users {
            bail!("--auth users needs a users file (--users FILE)");
        }
        return Ok(Users::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read users file {}", path.display()))?;
    // The parser's message already says "users file … line N"; add the path.
    Users::parse(&text).with_context(|| path.display().to_string())
}

/// Reads the `--trusted-user-ca` file; none named trusts no CA.
pub fn load_trusted_cas(path: Option<&Path>) -> anyhow::Result<TrustedCas> {
    let Some(path) = path else {
        return Ok(TrustedCas::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read trusted user CA file {}", path.display()))?;
    TrustedCas::parse(&text).with_context(|| format!("trusted user CA file {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn broker_urls_are_shown_without_their_passwords() {
        let shown = |v: &str| parse_broker(v).map(|u| u.to_string());
        assert_eq!(
            shown("nats://sshpipe:s3cret@127.0.0.1:4222,127.0.0.1:4223"),
            Ok("nats://127.0.0.1:4222,nats://127.0.0.1:4223".to_string())
        );
        assert_eq!(shown("nats://h1:4222"), Ok("nats://h1:4222".to_string()));
    }

    #[test]
    fn broker_urls_parse_or_say_what_is_wrong() {
        assert_eq!(parse_broker("memory"), Ok(BrokerUrl::Memory));
        assert_eq!(
            parse_broker("nats://h1:4222,nats://h2:4222"),
            Ok(BrokerUrl::Nats(vec![
                "nats://h1:4222".into(),
                "nats://h2:4222".into()
            ]))
        );
        assert_eq!(
            parse_broker("tls://user:pw@h:4443"),
            Ok(BrokerUrl::Nats(vec!["tls://user:pw@h:4443".into()]))
        );
        // SPEC §1's form: later servers take the first one's scheme and
        // credentials, until another full URL names its own.
        let nats = |v: &[&str]| Ok(BrokerUrl::Nats(v.iter().map(|u| u.to_string()).collect()));
        for (given, want) in [
            (
                "nats://h1:4222,h2:4222,h3:4222",
                &["nats://h1:4222", "nats://h2:4222", "nats://h3:4222"][..],
            ),
            (
                "nats://127.0.0.1:14221, 127.0.0.1:14222",
                &["nats://127.0.0.1:14221", "nats://127.0.0.1:14222"][..],
            ),
            (
                "tls://u:p@h1:4443,h2:4443,nats://h3:4222,h4:4222",
                &[
                    "tls://u:p@h1:4443",
                    "tls://u:p@h2:4443",
                    "nats://h3:4222",
                    "nats://h4:4222",
                ][..],
            ),
        ] {
            assert_eq!(parse_broker(given), nats(want), "{given}");
        }
        for bad in [
            "redis://h:1",
            "nats://h",
            "nats://:4222",
            "nats://h:0",
            "h:4222",
            "h:4222,nats://h2:4222",
            "nats://h1:4222,h2",
            "nats://h1:4222,",
            "nats://h1:4222,redis://h2:1",
            "nats://h1:4222,u:p@h2:4222",
            "",
        ] {
            let parsed = parse_broker(bad);
            assert!(
                parsed.as_ref().is_err_and(|e| e.contains("expected")),
                "{bad}: {parsed:?}"
            );
        }
    }

    use super::*;

    #[test]
    fn limit_defaults_are_spec_section_9() {
        let args = Cli::try_parse_from(["sshpipe"]).map(Cli::into_serve);
        let Ok(args) = args else {
            unreachable!("no options parse")
        };
        let l = crate::ssh::SshLimits::from_args(&args);
        assert_eq!(l.max_connections, 10_000);
        assert_eq!(l.max_handshakes_per_ip, 64);
        assert_eq!(l.auth_timeout, std::time::Duration::from_secs(20));
        assert_eq!(l.max_auth_attempts, 6);
        assert_eq!(l.max_exec_bytes, 4096);
        assert_eq!(l.max_sessions_per_user, 1000);
        assert_eq!(args.max_topics, 10_000);
        assert_eq!(args.max_topics_per_user, 1000);
        let q = args.queue_limits();
        assert_eq!(
            (q.max_store_bytes, q.min_free_percent, q.anonymous_divisor),
            (4 << 30, 5, 10),
            "SPEC §8's server-wide bounds and the anonymous tenth"
        );
        assert_eq!(args.kex, KexPolicy::Compat);
    }

    #[test]
    fn defaults_ignore_the_environment() {
        let cmd = defaults_command();
        assert!(cmd.get_arguments().count() > 20);
        for arg in cmd.get_arguments() {
            assert_eq!(arg.get_env(), None, "{}", arg.get_id());
        }
        let args = ServeArgs::defaults();
        assert_eq!(args.max_topics, 10_000);
        assert_eq!(args.queue_max_message, 64 << 20);
        let from_cli = Cli::try_parse_from(["sshpipe"]).map(Cli::into_serve);
        let Ok(from_cli) = from_cli else {
            unreachable!("no options parse")
        };
        assert_eq!(format!("{args:?}"), format!("{from_cli:?}"));
        assert_eq!(crate::broker::BrokerConfig::default().max_topics, 10_000);
        assert_eq!(
            crate::broker::QueueLimits::default().retention,
            std::time::Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(crate::ssh::SshLimits::default().max_exec_bytes, 4096);
    }

    #[test]
    fn percentages() {
        for (v, want) in [("5%", Some(5)), ("0", Some(0)), ("100 %", Some(100))] {
            assert_eq!(parse_percent(v).ok(), want, "{v}");
        }
        for v in ["101%", "-1", "5.5%", "%", "half"] {
            assert!(parse_percent(v).is_err(), "{v}");
        }
    }

    #[test]
    fn kex_policy_values() {
        let kex =
            |v: &str| Cli::try_parse_from(["sshpipe", "--kex", v]).map(|c| c.into_serve().kex);
        assert_eq!(kex("post-quantum").ok(), Some(KexPolicy::PostQuantum));
        assert_eq!(kex("compat").ok(), Some(KexPolicy::Compat));
        assert!(kex("sntrup").is_err());
    }

    #[test]
    fn limit_options_parse() {
        let argv = [
            "sshpipe",
            "--auth-timeout",
            "1500ms",
            "--max-exec-bytes",
            "100",
            "--max-handshakes-per-ip",
            "3",
            "--max-sessions-per-user",
            "2",
            "--max-topics",
            "5",
            "--max-connections",
            "7",
            "--max-auth-attempts",
            "1",
        ];
        let Ok(args) = Cli::try_parse_from(argv).map(Cli::into_serve) else {
            unreachable!("options parse")
        };
        let l = crate::ssh::SshLimits::from_args(&args);
        assert_eq!(l.auth_timeout, std::time::Duration::from_millis(1500));
        assert_eq!(
            (
                l.max_exec_bytes,
                l.max_handshakes_per_ip,
                l.max_sessions_per_user
            ),
            (100, 3, 2)
        );
        assert_eq!(
            (l.max_connections, l.max_auth_attempts, args.max_topics),
            (7, 1, 5)
        );
        assert!(Cli::try_parse_from(["sshpipe", "--auth-timeout", "20"]).is_err());
    }

    #[test]
    fn metrics_listen_values() {
        let m = |v: &str| {
            Cli::try_parse_from(["sshpipe", "--metrics-listen", v])
                .map(|c| c.into_serve().metrics_listen)
        };
        assert_eq!(m("http").ok(), Some(MetricsListen::Http));
        assert_eq!(m("off").ok(), Some(MetricsListen::Off));
        let addr: SocketAddr = "127.0.0.1:9090".parse().unwrap_or_else(|_| unreachable!());
        assert_eq!(m("127.0.0.1:9090").ok(), Some(MetricsListen::On(addr)));
        assert!(m("9090").is_err());
        let default = Cli::try_parse_from(["sshpipe"]).map(|c| c.into_serve().metrics_listen);
        assert_eq!(default.ok(), Some(MetricsListen::Http));
        assert_eq!(MetricsListen::On(addr).to_string(), "127.0.0.1:9090");
    }
}
