//! `pub`, `sub` and `pipe` over an SSH channel: glue between the channel's
//! halves and the broker's `Publisher` / `Subscription`.
//!
//! A pipe reads stdin and writes stdout concurrently, as the two ends of a
//! Unix pipe run independently: its client may send while it waits for
//! output, and the reverse.

use std::io;

use russh::ChannelReadHalf;
use tokio_util::sync::CancellationToken;

use super::exec::{Report, Request, argument_error, drain_until_closed, resolve};
use super::out::{Gone, Out};
use super::queued;
use super::stdio::{ChannelSource, NoInput, StatusLines};
use crate::broker::{
    JoinMode, JoinRequest, Membership, PumpError, PumpOptions, ReadError, Reader, Role,
    Subscription,
};
use crate::command::{CommandKind, Common, Dispatch, PipeArgs, PubArgs, SubArgs};
use crate::topic::{Namespace, TopicRef, parse_access};

/// Resolves the topic and joins it; `Err` carries the finished report.
async fn join(
    req: &Request,
    kind: CommandKind,
    common: &Common,
    role: Role,
    out: &mut Out,
) -> Result<Result<(TopicRef, Membership), Report>, Gone> {
    Ok(
        match join_as(req, kind, common, role, out, JoinMode::Join).await? {
            Ok((topic, Some(m))) => Ok((topic, m)),
            Ok((topic, None)) => Err(Report {
                status: 1,
                topic: Some(topic.full),
                bytes_in: 0,
            }),
            Err(report) => Err(report),
        },
    )
}

/// `join` with a `JoinMode`: `None` means access was granted but the
/// client did not join (it drains or fills the topic's queue instead).
pub(super) async fn join_as(
    req: &Request,
    kind: CommandKind,
    common: &Common,
    role: Role,
    out: &mut Out,
    mode: JoinMode,
) -> Result<Result<(TopicRef, Option<Membership>), Report>, Gone> {
    let typed = match &common.topic {
        Some(t) => t.clone(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let allow_pattern = kind == CommandKind::Sub;
    if !allow_pattern && crate::topic::is_pattern(&typed) {
        let line = format!("{kind}: only sub takes a pattern: {typed:?}");
        return argument_error(out, kind, &line).await.map(Err);
    }
    let topic = match resolve(req, &typed, common.public, allow_pattern) {
        Ok(t) => t,
        Err(e) => return argument_error(out, kind, &e.to_string()).await.map(Err),
    };
    let access = match common.access.as_deref().map(parse_access).transpose() {
        Ok(a) => a,
        Err(e) => return argument_error(out, kind, &e).await.map(Err),
    };
    let label = client_label(req);
    let pattern = crate::topic::is_pattern(&topic.local);
    if pattern && access.is_some() {
        let line = format!("{kind}: an access list belongs to a topic, not a pattern");
        return argument_error(out, kind, &line).await.map(Err);
    }
    let join = JoinRequest {
        topic: &topic,
        who: &req.identity,
        label: &label,
        role,
        access: access.as_ref(),
    };
    let joined = match pattern {
        true => req.app.broker.join_pattern(join).map(Some),
        false => req.app.broker.join_with(join, mode),
    };
    match joined {
        Ok(m) => Ok(Ok((topic, m))),
        Err(e) => runtime_error(out, topic, &e).await.map(Err),
    }
}

/// The hint line: what others type to reach this topic.
pub(super) fn hint(req: &Request, topic: &TopicRef, verb: &str, shared: bool) -> String {
    let name = match &topic.namespace {
        Namespace::Public => format!("-p {}", flag_safe(&topic.local)),
        Namespace::User(owner) if owner == &req.identity.name && !shared => flag_safe(&topic.local),
        Namespace::User(_) => topic.full.clone(),
    };
    format!(
        "subscribe to this channel:\n  {} {verb} {name}",
        req.app.ssh_prefix()
    )
}

/// A name that would read as a flag needs `--` before it to be typed back.
fn flag_safe(name: &str) -> String {
    if name.starts_with('-') {
        format!("-- {name}")
    } else {
        name.to_string()
    }
}

pub async fn publish(
    req: &Request,
    args: PubArgs,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let mode = match args.queue {
        true => JoinMode::PubOrQueue,
        false => JoinMode::Join,
    };
    let common = &args.common;
    let (topic, membership) =
        match join_as(req, CommandKind::Pub, common, Role::Pub, out, mode).await? {
            Ok((topic, Some(m))) => (topic, m),
            Ok((topic, None)) => return queued::publish(req, &args, topic, read, out).await,
            Err(report) => return Ok(report),
        };
    let Some(mut publisher) = membership.publisher else {
        return Ok(Report::status(1));
    };
    if !args.common.clean {
        out.line(&hint(req, &topic, "sub", membership.shared))
            .await?;
    }
    let opts = PumpOptions {
        // With receivers, `-q` is `-b=false` (SPEC §8).
        block: args.block && !args.queue,
        timeout: args.timeout,
        empty: args.empty,
        round_robin: args.dispatch == Dispatch::RoundRobin,
    };
    let clean = args.common.clean;
    let result = {
        let mut sink = StatusLines { out, clean };
        if args.empty {
            // A trigger reads nothing, but stdin is still drained.
            let mut nothing = NoInput;
            tokio::select! {
                r = publisher.pump(&mut nothing, opts, &mut sink) => r,
                () = drain_until_closed(read) => Err(PumpError::Io(io::ErrorKind::ConnectionAborted.into())),
            }
        } else {
            publisher
                .pump(&mut ChannelSource(read), opts, &mut sink)
                .await
        }
    };
    let mut report = Report {
        status: 0,
        topic: Some(topic.full),
        bytes_in: publisher.sent,
    };
    match result {
        Ok(()) => {
            if !clean {
                out.line("msg sent!").await?;
            }
        }
        Err(PumpError::Timeout) => {
            out.line("timeout reached, exiting").await?;
            report.status = 1;
        }
        Err(PumpError::Io(_)) => return Err(Gone),
    }
    Ok(report)
}

pub async fn subscribe(
    req: &Request,
    args: SubArgs,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let role = Role::Sub {
        keep_alive: args.keep_alive,
        lossy: args.lossy,
    };
    let (topic, reader) = match start_reader(req, &args, role, out).await? {
        Ok(r) => r,
        Err(report) => return Ok(report),
    };
    let mut reader = reader;
    let copied = tokio::select! {
        r = copy_reader(&mut reader, out) => r?,
        () = drain_until_closed(read) => return Err(Gone),
    };
    let mut report = Report {
        status: 0,
        topic: Some(topic.full),
        bytes_in: 0,
    };
    if let Err(e) = copied {
        out.line(&e.to_string()).await?;
        report.status = 1;
    }
    if args.lossy && reader.skipped() > 0 {
        out.line(&format!("skipped {} bytes", reader.skipped()))
            .await?;
    }
    Ok(report)
}

/// A runtime failure (`access denied`, …): its line, exit 1 (SPEC §4.3).
async fn runtime_error(
    out: &mut Out,
    topic: TopicRef,
    err: &impl std::fmt::Display,
) -> Result<Report, Gone> {
    out.line(&err.to_string()).await?;
    Ok(Report {
        status: 1,
        topic: Some(topic.full),
        bytes_in: 0,
    })
}

/// `USER@IP:PORT#N`, as `ls` shows a client.
fn client_label(req: &Request) -> String {
    format!(
        "{}@{}#{}",
        req.identity.name,
        req.peer,
        req.app.next_client_number()
    )
}

/// Resolves the topic (or pattern) and starts reading it: queued messages
/// first, then live data (the broker's `Reader`).
async fn start_reader(
    req: &Request,
    args: &SubArgs,
    role: Role,
    out: &mut Out,
) -> Result<Result<(TopicRef, Reader), Report>, Gone> {
    let pattern = args
        .common
        .topic
        .as_deref()
        .is_some_and(crate::topic::is_pattern);
    let mode = match pattern {
        true => JoinMode::Join,
        false => JoinMode::Check,
    };
    let (topic, membership) =
        match join_as(req, CommandKind::Sub, &args.common, role, out, mode).await? {
            Ok(j) => j,
            Err(report) => return Ok(Err(report)),
        };
    let broker = &req.app.broker;
    let reader = match membership.and_then(|m| m.subscription) {
        Some(sub) => Ok(Reader::live(broker, sub)),
        None => {
            let label = client_label(req);
            // Already validated by `join_as`; given again because a new
            // public topic keeps its list only once someone is on it.
            let access = args
                .common
                .access
                .as_deref()
                .and_then(|a| parse_access(a).ok());
            broker.reader(
                JoinRequest {
                    topic: &topic,
                    who: &req.identity,
                    label: &label,
                    role,
                    access: access.as_ref(),
                },
                args.keep_alive,
            )
        }
    };
    match reader {
        Ok(r) => Ok(Ok((topic, r))),
        Err(e) => runtime_error(out, topic, &e).await.map(Err),
    }
}

/// Copies a reader to stdout until it ends; a store failure is returned
/// (to be reported), a client gone is `Gone`.
async fn copy_reader(reader: &mut Reader, out: &mut Out) -> Result<Result<(), ReadError>, Gone> {
    loop {
        match reader.next().await {
            Ok(Some(chunk)) => out.stdout(chunk).await?,
            Ok(None) => return Ok(Ok(())),
            Err(e) => return Ok(Err(e)),
        }
    }
}

/// Copies a subscription to stdout until it ends (or `stop` is cancelled,
/// after the chunk in hand is written whole).
pub(super) async fn copy_out(
    sub: &mut Subscription,
    out: &mut Out,
    stop: Option<&CancellationToken>,
) -> Result<(), Gone> {
    loop {
        let next = match stop {
            Some(stop) => tokio::select! {
                c = sub.next() => c,
                () = stop.cancelled() => None,
            },
            None => sub.next().await,
        };
        match next {
            Some(chunk) => out.stdout(chunk).await?,
            None => return Ok(()),
        }
    }
}

pub async fn pipe(
    req: &Request,
    args: PipeArgs,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let role = Role::Pipe {
        replay: args.replay,
    };
    let (topic, membership) = match join(req, CommandKind::Pipe, &args.common, role, out).await? {
        Ok(j) => j,
        Err(report) => return Ok(report),
    };
    let (Some(mut publisher), Some(mut sub)) = (membership.publisher, membership.subscription)
    else {
        return Ok(Report::status(1));
    };
    if args.common.topic.is_none() && !args.common.clean {
        out.line(&hint(req, &topic, "pipe", membership.shared))
            .await?;
    }
    let opts = PumpOptions {
        block: false,
        timeout: std::time::Duration::ZERO,
        empty: false,
        round_robin: args.dispatch == Dispatch::RoundRobin,
    };
    let stop = CancellationToken::new();
    let send = async {
        let r = publisher
            .pump(&mut ChannelSource(read), opts, &mut ())
            .await;
        stop.cancel();
        r
    };
    let (sent, received) = tokio::join!(send, copy_out(&mut sub, out, Some(&stop)));
    received?;
    sent.map_err(|_| Gone)?;
    Ok(Report {
        status: 0,
        topic: Some(topic.full),
        bytes_in: publisher.sent,
    })
}
