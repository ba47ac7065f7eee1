//! `pub`, `sub` and `pipe` over an SSH channel: the channel's halves on one
//! side, the broker's intents on the other, and the status lines between.

use std::io;

use russh::ChannelReadHalf;
use tokio_util::sync::CancellationToken;

use super::out::{Gone, Out};
use super::request::{Report, Request, drain_until_closed, failed};
use super::stdio::{ChannelSource, NoInput, StatusLines};
use crate::broker::{
    Delivery, Open, Opened, Piece, PubEnd, PumpError, PumpOptions, QueueError, QueuedPub, Reader,
    Subscription,
};
use crate::command::{CommandKind, Common, Dispatch, PipeArgs, PubArgs, SubArgs};
use crate::front::{self, Failure, Prepared};

/// Checks the topic and `-a` of a command; `Err` carries its report.
async fn prepare(
    req: &Request,
    kind: CommandKind,
    common: &Common,
    out: &mut Out,
) -> Result<Result<Prepared, Report>, Gone> {
    let typed = match &common.topic {
        Some(t) => t.clone(),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let allow_pattern = kind == CommandKind::Sub;
    let prepared = if !allow_pattern && crate::topic::is_pattern(&typed) {
        Err(Failure::BadArgument(format!(
            "{kind}: only sub takes a pattern: {typed:?}"
        )))
    } else {
        front::prepare(
            &req.app,
            &req.identity,
            &req.identity.name,
            req.peer,
            &typed,
            common.public,
            allow_pattern,
            common.access.as_deref(),
        )
    };
    match prepared {
        Ok(p) => {
            req.resolved(&p.topic.full);
            Ok(Ok(p))
        }
        Err(e) => failed(out, kind, None, &e).await.map(Err),
    }
}

fn open<'a>(req: &'a Request, p: &'a Prepared) -> Open<'a> {
    Open {
        topic: &p.topic,
        client: crate::broker::Client {
            identity: &req.identity,
            label: &p.label,
        },
        access: p.access.as_ref(),
    }
}

fn hint(req: &Request, p: &Prepared, verb: &str, shared: bool) -> String {
    front::hint(
        &req.app.ssh_prefix(),
        &p.topic,
        verb,
        &req.identity.name,
        shared,
    )
}

pub async fn publish(
    req: &Request,
    args: PubArgs,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let kind = CommandKind::Pub;
    let p = match prepare(req, kind, &args.common, out).await? {
        Ok(p) => p,
        Err(report) => return Ok(report),
    };
    let full = p.topic.full.clone();
    let Opened { end, shared } = match req.app.broker.open_pub(open(req, &p), args.queue).await {
        Ok(o) => o,
        Err(e) => return failed(out, kind, Some(&full), &e.into()).await,
    };
    let clean = args.common.clean;
    if !clean {
        out.line(&hint(req, &p, "sub", shared)).await?;
    }
    let mut publisher = match end {
        PubEnd::Live(publisher) => publisher,
        PubEnd::Queued(queued) => {
            let report = store_queued(queued, &args, &full, read, out).await?;
            if report.status == 0 {
                front::ping::ended_well(&req.app, &full);
            }
            return Ok(report);
        }
    };
    let opts = PumpOptions {
        // With receivers, `-q` is `-b=false` (SPEC §8).
        block: args.block && !args.queue,
        timeout: args.timeout,
        empty: args.empty,
        round_robin: args.dispatch == Dispatch::RoundRobin,
    };
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
            let mut source = front::ping::Pinging::new(&req.app, &full, ChannelSource(read));
            publisher.pump(&mut source, opts, &mut sink).await
        }
    };
    match result {
        Ok(()) => {
            if !clean {
                out.line("msg sent!").await?;
            }
            front::ping::ended_well(&req.app, &full);
            Ok(Report::on(&full, 0, publisher.sent))
        }
        Err(PumpError::Timeout) => {
            out.line(&Failure::Timeout.to_string()).await?;
            Ok(Report::on(&full, 1, publisher.sent))
        }
        Err(PumpError::AccessDenied) => {
            failed(out, kind, Some(&full), &Failure::AccessDenied).await
        }
        Err(PumpError::Io(_)) => Err(Gone),
    }
}

/// `pub -q` with no receiver: store stdin as one message, then
/// `queued (N waiting)`, exit 0 — or `queue full: …`, exit 1, nothing stored.
async fn store_queued(
    queued: QueuedPub,
    args: &PubArgs,
    full: &str,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let mut source = Counted {
        inner: ChannelSource(read),
        bytes: 0,
    };
    let stored = if args.empty {
        // A queued trigger: an empty message. Stdin is still drained.
        let mut nothing = NoInput;
        tokio::select! {
            r = queued.store(&mut nothing) => r,
            () = drain_until_closed(source.inner.0) => return Err(Gone),
        }
    } else {
        queued.store(&mut source).await
    };
    match stored {
        Ok(waiting) => {
            if !args.common.clean {
                out.line(&format!("queued ({waiting} waiting)")).await?;
            }
            Ok(Report::on(full, 0, source.bytes))
        }
        Err(QueueError::Io(_)) => Err(Gone),
        Err(e) => {
            let mut report = failed(out, CommandKind::Pub, Some(full), &e.into()).await?;
            report.bytes_in = source.bytes;
            Ok(report)
        }
    }
}

/// A source that counts what it hands on, for the session-end line.
struct Counted<S> {
    inner: S,
    bytes: u64,
}

impl<S: crate::broker::ByteSource> crate::broker::ByteSource for Counted<S> {
    async fn next_chunk(&mut self) -> io::Result<Option<bytes::Bytes>> {
        let next = self.inner.next_chunk().await?;
        if let Some(c) = &next {
            self.bytes += c.len() as u64;
        }
        Ok(next)
    }
}

pub async fn subscribe(
    req: &Request,
    args: SubArgs,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let kind = CommandKind::Sub;
    let p = match prepare(req, kind, &args.common, out).await? {
        Ok(p) => p,
        Err(report) => return Ok(report),
    };
    let full = p.topic.full.clone();
    let opened = req
        .app
        .broker
        .open_sub(open(req, &p), args.keep_alive, args.lossy)
        .await;
    let mut reader = match opened {
        Ok(o) => o.end,
        Err(e) => return failed(out, kind, Some(&full), &e.into()).await,
    };
    let mut written = None;
    let copied = tokio::select! {
        r = copy_reader(&mut reader, out, args.keep_alive, &mut written) => r?,
        () = drain_until_closed(read) => return Err(Gone),
    };
    let mut report = Report::on(&full, 0, 0);
    if let Err(e) = copied {
        report = failed(out, kind, Some(&full), &e).await?;
    }
    if args.lossy && reader.skipped() > 0 {
        out.line(&format!("skipped {} bytes", reader.skipped()))
            .await?;
    }
    if report.status == 0 {
        report.delivery = written;
    }
    Ok(report)
}

/// Copies a reader to stdout until it ends; a failure is returned (to be
/// reported), a client gone is `Gone`. A queued message is removed only
/// once the client has it: with `-k`, as soon as it has acknowledged the
/// message (live data waits that long, a window's worth of the client's
/// writing at most, and never more than `Out::acknowledged` allows);
/// without, the message ends the sub and waits in `written` for the exit
/// status (`Out::finish`).
async fn copy_reader(
    reader: &mut Reader,
    out: &mut Out,
    keep_alive: bool,
    written: &mut Option<Delivery>,
) -> Result<Result<(), Failure>, Gone> {
    loop {
        match reader.next_piece().await {
            Ok(Some(Piece::Data(chunk))) => out.stdout(chunk).await?,
            Ok(Some(Piece::Written(delivery))) if keep_alive => {
                out.acknowledged().await?;
                delivery.confirm().await.run().await;
            }
            Ok(Some(Piece::Written(delivery))) => *written = Some(delivery),
            Ok(None) => return Ok(Ok(())),
            Err(e) => return Ok(Err(e.into())),
        }
    }
}

/// Copies a subscription to stdout until it ends or `stop` is cancelled
/// (after the chunk in hand is written whole).
async fn copy_out(
    sub: &mut Subscription,
    out: &mut Out,
    stop: CancellationToken,
) -> Result<(), Gone> {
    loop {
        let next = tokio::select! {
            c = sub.next() => c,
            () = stop.cancelled() => None,
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
    let kind = CommandKind::Pipe;
    let p = match prepare(req, kind, &args.common, out).await? {
        Ok(p) => p,
        Err(report) => return Ok(report),
    };
    let full = p.topic.full.clone();
    let Opened { end, shared } = match req.app.broker.open_pipe(open(req, &p), args.replay).await {
        Ok(o) => o,
        Err(e) => return failed(out, kind, Some(&full), &e.into()).await,
    };
    if args.common.topic.is_none() && !args.common.clean {
        out.line(&hint(req, &p, "pipe", shared)).await?;
    }
    let (mut publisher, mut sub) = (end.publisher, end.subscription);
    let opts = PumpOptions {
        block: false,
        timeout: std::time::Duration::ZERO,
        empty: false,
        round_robin: args.dispatch == Dispatch::RoundRobin,
    };
    let mut source = front::ping::Pinging::new(&req.app, &full, ChannelSource(read));
    let mut quiet = ();
    let send = publisher.pump(&mut source, opts, &mut quiet);
    let (sent, received) = front::run_pipe(send, |stop| copy_out(&mut sub, out, stop)).await;
    received?;
    // A list change took the pipe off its topic (SPEC §6).
    if sub.revoked() || matches!(sent, Some(Err(PumpError::AccessDenied))) {
        return failed(out, kind, Some(&full), &Failure::AccessDenied).await;
    }
    match sent {
        Some(Ok(())) => {
            front::ping::ended_well(&req.app, &full);
            Ok(Report::on(&full, 0, publisher.sent))
        }
        _ => Err(Gone),
    }
}
