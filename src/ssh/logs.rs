//! `ssh host logs [--all]` (SPEC §12): the caller's server log lines, live,
//! one JSON object per line on stdout, until the client leaves.
//!
//! stdout carries only the JSON, so `| jq` always parses; the one other
//! thing a reader is told, `skipped N lines`, goes to stderr where it
//! happened. Writing waits for the client's window like any stdout, but
//! that wait is this reader's alone: the lines it cannot take meanwhile
//! are dropped by the hub, never queued without bound or waited for.

use russh::ChannelReadHalf;

use super::out::{Gone, Out};
use super::request::{Report, Request, drain_until_closed};
use crate::command::LogsArgs;
use crate::logs::{LogStream, Scope};

pub async fn run(
    req: &Request,
    args: LogsArgs,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    if args.all && !req.identity.admin {
        out.line("access denied: logs --all is for admins").await?;
        return Ok(Report::status(1));
    }
    let scope = match args.all {
        true => Scope::All,
        false => Scope::User(req.identity.name.clone()),
    };
    let mut lines = req.app.logs.watch(scope);
    // Stdin is read (and dropped) only to see the client close the channel;
    // its EOF alone does not end the stream (`ssh host logs < /dev/null`).
    tokio::select! {
        r = copy(&mut lines, out) => r?,
        () = drain_until_closed(read) => return Err(Gone),
    }
    Ok(Report::status(0))
}

/// Copies lines to stdout until the hub stops (it does not, but for a
/// process going away), saying on stderr where lines were skipped.
async fn copy(lines: &mut LogStream, out: &mut Out) -> Result<(), Gone> {
    while let Some(item) = lines.next().await {
        if item.skipped_before > 0 {
            out.line(&format!("skipped {} lines", item.skipped_before))
                .await?;
        }
        out.text(&item.line).await?;
    }
    Ok(())
}
