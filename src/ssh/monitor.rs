//! `monitor`, `status`, `uptime` and `rss` over SSH (SPEC §13): the typed
//! arguments on one side, `App::monitors` on the other, one line (or a
//! table, or a feed) back.

use super::out::{Gone, Out};
use super::request::{Report, Request, failed};
use crate::command::{CommandKind, MonitorArgs, TimeArg, UptimeArgs};
use crate::front::Failure;
use crate::monitor::{self, render_uptime, status_table, typed_name};
use crate::topic::{Namespace, TopicRef};

/// One day: `uptime`'s default range.
const DAY_MS: u64 = 24 * 3600 * 1000;

/// The topic a monitor command names: the caller's own, or a public one
/// (SPEC §6: only the owner may watch a private topic).
fn topic(req: &Request, typed: &str, public: bool) -> Result<TopicRef, Failure> {
    let t = crate::front::resolve(&req.app, &req.identity, typed, public, false)?;
    match &t.namespace {
        Namespace::User(owner) if owner != &req.identity.name => Err(Failure::AccessDenied),
        _ => Ok(t),
    }
}

pub async fn monitor(req: &Request, args: MonitorArgs, out: &mut Out) -> Result<Report, Gone> {
    let kind = CommandKind::Monitor;
    let t = match topic(req, &args.topic, args.public) {
        Ok(t) => t,
        Err(e) => return failed(out, kind, None, &e).await,
    };
    req.resolved(&t.full);
    let monitors = &req.app.monitors;
    let name = typed_name(&req.identity.name, &t.full);
    let done = match args.window {
        Some(window) => monitors.set(&req.identity, &t, window).await.map(|()| {
            let w = crate::command::format_duration(window);
            tracing::info!(topic = %t.full, window = %w, "monitor created");
            format!("monitor created: {name} (window: {w})")
        }),
        None => monitors.delete(&req.identity.name, &t).await.map(|()| {
            tracing::info!(topic = %t.full, "monitor deleted");
            format!("monitor deleted: {name}")
        }),
    };
    match done {
        Ok(line) => {
            out.text(&format!("{line}\n")).await?;
            Ok(Report::on(&t.full, 0, 0))
        }
        Err(e) => failed(out, kind, Some(&t.full), &e.into()).await,
    }
}

pub async fn status(req: &Request, out: &mut Out) -> Result<Report, Gone> {
    let rows = req.app.monitors.status(&req.identity.name);
    out.text(&status_table(&rows)).await?;
    Ok(Report::status(0))
}

pub async fn uptime(req: &Request, args: UptimeArgs, out: &mut Out) -> Result<Report, Gone> {
    let kind = CommandKind::Uptime;
    let t = match topic(req, &args.topic, args.public) {
        Ok(t) => t,
        Err(e) => return failed(out, kind, None, &e).await,
    };
    req.resolved(&t.full);
    let monitors = &req.app.monitors;
    let now = monitors.now();
    let at = |a: TimeArg| match a {
        TimeArg::At(ms) => ms,
        TimeArg::Ago(d) => now.saturating_sub(d.as_millis() as u64),
    };
    let to = args.to.map_or(now, at);
    let from = args.from.map_or(to.saturating_sub(DAY_MS), at);
    if from >= to {
        let e = Failure::BadArgument("uptime: --from must be before --to".into());
        return failed(out, kind, Some(&t.full), &e).await;
    }
    match monitors.uptime(&req.identity.name, &t, from, to).await {
        Ok(u) => {
            let name = typed_name(&req.identity.name, &t.full);
            out.text(&render_uptime(&name, from, to, &u)).await?;
            Ok(Report::on(&t.full, 0, 0))
        }
        Err(e) => failed(out, kind, Some(&t.full), &e.into()).await,
    }
}

pub async fn rss(req: &Request, out: &mut Out) -> Result<Report, Gone> {
    let link = format!("ssh://{}:{}", req.app.domain, req.app.advertise_port);
    match monitor::feed(&req.app.monitors, &req.identity.name, &link).await {
        Ok(feed) => {
            out.text(&feed).await?;
            Ok(Report::status(0))
        }
        Err(e) => {
            out.line(&e.to_string()).await?;
            Ok(Report::status(1))
        }
    }
}
