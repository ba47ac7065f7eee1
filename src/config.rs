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

use crate::identity::Users;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Any key may connect; unknown keys are anonymous `fp-…` users.
    Open,
    /// Only keys listed in the users file may connect.
    Users,
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
}

impl ServeArgs {
    /// The queue limits these options set.
    pub fn queue_limits(&self) -> crate::broker::QueueLimits {
        crate::broker::QueueLimits {
            max_message: self.queue_max_message,
            max_user_bytes: self.queue_max_user_bytes,
            max_user_messages: self.queue_max_user_messages,
            retention: self.queue_retention,
        }
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
