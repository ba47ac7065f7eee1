//! One command on one channel, start to finish: parse the exec string, run
//! it, and always end with an exit status (OpenSSH exits 255 without one).
//!
//! The whole command races the connection's end and the server's shutdown,
//! so no task outlives its client and every client hears why it was cut.

use std::time::Instant;

use russh::server::Msg;
use russh::{Channel, ChannelReadHalf};

use super::out::{Gone, Out};
use super::pubsub;
use super::request::usage_error;
pub use super::request::{Report, Request};
use crate::app::App;
use crate::broker::TopicListing;
use crate::command::{self, Command, UsageError};
use crate::topic::{Namespace, TopicRef};

/// Runs one command on a channel; spawned by the handler.
pub async fn run(req: Request, channel: Channel<Msg>) {
    // The handler counts this channel as open until its token is cancelled.
    let _ended = req.conn.clone().drop_guard();
    let started = Instant::now();
    let (mut read, write) = channel.split();
    let mut out = Out::new(
        write,
        req.conn.clone(),
        req.app.shutdown.clone(),
        req.cadence,
        req.pty,
    );
    // Held until the command ends; over the cap the command never starts
    // and the refusal is the only log line.
    let Some(slot) = req.shared.sessions.try_acquire(req.identity.name.clone()) else {
        too_many_sessions(&req, out).await;
        return;
    };
    let shutdown = req.app.shutdown.clone();
    let exec = req
        .exec
        .as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    tracing::info!("session start");
    let result = tokio::select! {
        r = dispatch(&req, exec.as_deref(), &mut read, &mut out) => r,
        () = shutdown.cancelled() => {
            let _ = out.shutting_down().await;
            Ok(Report::status(1))
        }
        () = req.conn.cancelled() => Err(Gone),
    };
    let (status, topic, bytes_in, delivery) = match result {
        Ok(r) => (Some(r.status), r.topic, r.bytes_in, r.delivery),
        Err(Gone) => (None, None, 0, None),
    };
    let topic = topic.or_else(|| req.topic.get().cloned());
    tracing::info!(
        topic = topic.as_deref().unwrap_or("-"),
        bytes_in,
        bytes_out = out.bytes_out,
        duration_ms = started.elapsed().as_millis() as u64,
        status = status.map_or_else(|| "client gone".to_string(), |s| s.to_string()),
        "session end"
    );
    let bytes = (bytes_in, out.bytes_out);
    req.app
        .metrics
        .session_ended(exec.as_deref(), status, bytes);
    if let Some(status) = status {
        out.finish(status, delivery).await;
    }
    drop(slot);
}

/// The user already runs as many commands as allowed (SPEC §9).
async fn too_many_sessions(req: &Request, mut out: Out) {
    let max = req.shared.sessions.max();
    let user = &req.identity.name;
    req.app.metrics.refused(crate::metrics::Refusal::Sessions);
    if let Some(suppressed) = req.shared.refusal_logs.check(std::time::Instant::now()) {
        tracing::warn!(%user, peer = %req.peer, limit = max, suppressed, "too many sessions; refused");
    }
    let line = format!("too many sessions for {user} (limit {max})");
    if out.line(&line).await.is_ok() {
        out.finish(1, None).await;
    }
}

async fn dispatch(
    req: &Request,
    exec: Option<&str>,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    if req
        .exec
        .as_deref()
        .is_some_and(|b| std::str::from_utf8(b).is_err())
    {
        return usage_error(req, out, &UsageError::UnknownCommand("(not UTF-8)".into())).await;
    }
    let cmd = match command::parse_with_limit(exec.unwrap_or(""), req.shared.limits.max_exec_bytes)
    {
        Ok(cmd) => cmd,
        Err(e) => return usage_error(req, out, &e).await,
    };
    match cmd {
        Command::Help => {
            out.text(&help(&req.app)).await?;
            Ok(Report::status(0))
        }
        Command::Usage(kind) => {
            out.text(&command::usage_text(kind)).await?;
            Ok(Report::status(0))
        }
        Command::Whoami => {
            out.text(&req.identity.whoami_text()).await?;
            Ok(Report::status(0))
        }
        Command::Ls => {
            let listing = req.app.broker.list(&req.identity).await;
            out.text(&format_listing(&listing, &req.identity.name))
                .await?;
            Ok(Report::status(0))
        }
        // Every session's task is as large as the largest command future
        // it could run, and most of the idle ones are `sub`s: the others
        // are boxed, so a sub's task holds only a sub's state (issue 17).
        Command::Sub(args) => pubsub::subscribe(req, args, read, out).await,
        Command::Pub(args) => Box::pin(pubsub::publish(req, args, read, out)).await,
        Command::Pipe(args) => Box::pin(pubsub::pipe(req, args, read, out)).await,
        Command::Logs(args) => Box::pin(super::logs::run(req, args, read, out)).await,
        Command::Token(cmd) => Box::pin(super::token::run(req, cmd, out)).await,
        Command::Access(args) => Box::pin(super::access::run(req, args, out)).await,
        Command::Monitor(args) => Box::pin(super::monitor::monitor(req, args, out)).await,
        Command::Status => Box::pin(super::monitor::status(req, out)).await,
        Command::Uptime(args) => Box::pin(super::monitor::uptime(req, args, out)).await,
        Command::Rss => Box::pin(super::monitor::rss(req, out)).await,
    }
}

fn help(app: &App) -> String {
    format!(
        "{}\nthis server: {} COMMAND\n",
        command::help_text().trim_end(),
        app.ssh_prefix()
    )
}

/// The name a user would type for a topic (SPEC §4.4).
pub fn typed_name(topic: &TopicRef, viewer: &str) -> String {
    match &topic.namespace {
        Namespace::Public => format!("public/{}", topic.local),
        Namespace::User(owner) if owner == viewer => topic.local.clone(),
        Namespace::User(_) => topic.full.clone(),
    }
}

pub fn format_listing(listing: &[TopicListing], viewer: &str) -> String {
    if listing.is_empty() {
        return "no topics\n".to_string();
    }
    // Sorted by the name the viewer sees, which is not the full name's order.
    let mut named: Vec<_> = listing
        .iter()
        .map(|t| (typed_name(&t.topic, viewer), t))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut s = String::new();
    for (name, t) in named {
        s.push_str(&name);
        s.push('\n');
        if let Some(acl) = &t.access {
            s.push_str(&format!("  access: {}\n", acl.0.join(",")));
        }
        for (what, ids) in [("pubs", &t.pubs), ("subs", &t.subs), ("pipes", &t.pipes)] {
            s.push_str(&format!("  {what}: {}", ids.len()));
            if !ids.is_empty() {
                s.push_str(&format!(" ({})", ids.join(", ")));
            }
            s.push('\n');
        }
        s.push_str(&format!("  waiting pubs: {}\n", t.waiting_pubs));
        if t.queued > 0 {
            let queued = format!(
                "  queued: {} messages, {} bytes\n",
                t.queued, t.queued_bytes
            );
            s.push_str(&queued);
        }
    }
    s
}
