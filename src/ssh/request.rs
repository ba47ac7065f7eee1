//! One command's context and how it ends: who asked, on which connection,
//! and the report the session-end log line and exit status come from.
//! Shared by `exec` (which runs a command) and `pubsub` (which moves its
//! bytes), so neither imports the other's internals.

use std::net::SocketAddr;
use std::sync::Arc;

use russh::{ChannelMsg, ChannelReadHalf};
use tokio_util::sync::CancellationToken;

use super::limits::Shared;
use super::out::{Gone, Out};
use crate::app::App;
use crate::broker::Delivery;
use crate::command::{self, CommandKind, UsageError};
use crate::front::Failure;
use crate::identity::Identity;

pub struct Request {
    pub app: Arc<App>,
    /// The SSH limits and the per-user session counter.
    pub shared: Arc<Shared>,
    pub identity: Identity,
    pub peer: SocketAddr,
    /// Cancelled when the connection ends or the client closes this channel.
    pub conn: CancellationToken,
    /// `None` for a shell request (no command).
    pub exec: Option<Vec<u8>>,
    /// The client asked for a PTY.
    pub pty: bool,
    /// How its client acknowledges stdout (`Out::acknowledged`).
    pub cadence: super::out::Cadence,
    /// The topic or pattern, once resolved: the session-end line names it
    /// even when the client left mid-command.
    pub topic: std::sync::OnceLock<String>,
}

impl Request {
    /// Notes the command's topic for the session's span and end line.
    pub fn resolved(&self, full: &str) {
        if self.topic.set(full.to_string()).is_ok() {
            tracing::Span::current().record("topic", full);
        }
    }
}

/// How a command ended, for the exit status and the session log line.
#[derive(Debug, Default)]
pub struct Report {
    pub status: u32,
    /// The topic or pattern, as its full name.
    pub topic: Option<String>,
    pub bytes_in: u64,
    /// A queued message handed out whole, removed once the client has it,
    /// just before the exit status (`Out::finish`).
    pub delivery: Option<Delivery>,
}

impl Report {
    pub fn status(status: u32) -> Self {
        Report {
            status,
            ..Report::default()
        }
    }

    pub fn on(topic: &str, status: u32, bytes_in: u64) -> Self {
        Report {
            status,
            topic: Some(topic.to_string()),
            bytes_in,
            delivery: None,
        }
    }
}

/// One line naming the problem, then the usage (SPEC §4.3), exit 2.
pub async fn usage_error(req: &Request, out: &mut Out, err: &UsageError) -> Result<Report, Gone> {
    out.line(&err.to_string()).await?;
    match err.kind() {
        Some(kind) => out.line(command::usage_text(kind).trim_end()).await?,
        None if matches!(err, UsageError::Token(_)) => {
            out.line(command::TOKEN_USAGE.trim_end()).await?;
        }
        None => {
            let hint = format!("run `{} help` for the commands", req.app.ssh_prefix());
            out.line(&hint).await?;
        }
    }
    Ok(Report::status(2))
}

/// A command's failure as the client sees it: its line (a bad argument
/// adds the command's usage, SPEC §4.3) and its exit status.
pub async fn failed(
    out: &mut Out,
    kind: CommandKind,
    topic: Option<&str>,
    err: &Failure,
) -> Result<Report, Gone> {
    let status = err.exit_code();
    out.line(&err.to_string()).await?;
    if let Failure::BadArgument(_) = err {
        out.line(command::usage_text(kind).trim_end()).await?;
    }
    Ok(Report {
        status,
        topic: topic.map(str::to_string),
        bytes_in: 0,
        delivery: None,
    })
}

/// Reads and discards stdin until the client closes the channel, for
/// commands that take no input (a client piping into `sub` is not held up).
pub async fn drain_until_closed(read: &mut ChannelReadHalf) {
    while let Some(msg) = read.wait().await {
        if matches!(msg, ChannelMsg::Close) {
            return;
        }
    }
}
