//! Queued messages over SSH (SPEC §8): `pub -q` storing its input when
//! nobody listens, and `sub` draining the queue before (or instead of)
//! live data.
//!
//! The broker decides and stores; this module only moves bytes between the
//! channel and the broker's `Claim`s, and turns outcomes into the status
//! lines and exit codes users see.

use russh::ChannelReadHalf;
use tokio::sync::watch;

use super::exec::{Report, Request, drain_until_closed};
use super::out::{Gone, Out};
use super::pubsub::{ChannelSource, NoInput, hint};
use crate::broker::{Claim, QueueError, Subscription};
use crate::command::PubArgs;
use crate::topic::TopicRef;

/// `pub -q` with no receiver: store stdin as one message, then
/// `queued (N waiting)`, exit 0 — or `queue full: …`, exit 1, nothing stored.
pub async fn publish(
    req: &Request,
    args: &PubArgs,
    topic: TopicRef,
    read: &mut ChannelReadHalf,
    out: &mut Out,
) -> Result<Report, Gone> {
    let clean = args.common.clean;
    let broker = &req.app.broker;
    if !clean {
        let shared = broker.has_access_list(&topic.full);
        out.line(&hint(req, &topic, "sub", shared)).await?;
    }
    let user = &req.identity.name;
    let stored = if args.empty {
        // A queued trigger: an empty message. Stdin is still drained.
        let mut nothing = NoInput;
        tokio::select! {
            r = broker.enqueue(&topic.full, user, &mut nothing) => r,
            () = drain_until_closed(read) => return Err(Gone),
        }
    } else {
        broker
            .enqueue(&topic.full, user, &mut ChannelSource(read))
            .await
    };
    let mut report = Report {
        status: 0,
        topic: Some(topic.full),
        bytes_in: 0,
    };
    match stored {
        Ok(waiting) => {
            if !clean {
                out.line(&format!("queued ({waiting} waiting)")).await?;
            }
        }
        Err(QueueError::Io(_)) => return Err(Gone),
        Err(e) => {
            out.line(&e.to_string()).await?;
            report.status = 1;
        }
    }
    Ok(report)
}

/// What draining the queue came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drained {
    /// This many messages were written whole.
    Wrote(usize),
    /// A message could not be read from the store (already reported).
    Failed,
}

/// Writes the topic's queued messages, oldest first: one without `-k`,
/// all of them with it.
pub async fn drain(
    req: &Request,
    topic: &str,
    keep_alive: bool,
    out: &mut Out,
) -> Result<Drained, Gone> {
    let mut wrote = 0;
    while let Some(claim) = req.app.broker.claim(topic) {
        if !write_claim(claim, out).await? {
            return Ok(Drained::Failed);
        }
        wrote += 1;
        if !keep_alive {
            break;
        }
    }
    Ok(Drained::Wrote(wrote))
}

/// Streams one claimed message to stdout chunk by chunk, then removes it.
/// Dropped part-way (client gone), the claim puts the message back.
async fn write_claim(mut claim: Claim, out: &mut Out) -> Result<bool, Gone> {
    loop {
        match claim.next_chunk().await {
            Ok(Some(chunk)) => out.stdout(chunk).await?,
            Ok(None) => break,
            Err(e) => {
                tracing::error!(error = %e, "cannot read a queued message");
                out.line(&format!("cannot read a queued message: {e}"))
                    .await?;
                return Ok(false);
            }
        }
    }
    if let Err(e) = claim.finish().await {
        // Written but not removed: it may be served again. Say so in the log.
        tracing::error!(error = %e, "cannot remove a delivered queued message");
    }
    Ok(true)
}

/// Live data, plus any queued message that turns up meanwhile (one linked
/// just as this sub joined, or one released by a receiver that died). A
/// sub without `-k` ends after such a message, as it would after a sender.
pub async fn copy_live(
    req: &Request,
    sub: &mut Subscription,
    topic: &TopicRef,
    changes: &mut watch::Receiver<u64>,
    keep_alive: bool,
    out: &mut Out,
) -> Result<bool, Gone> {
    let mut queue_open = true;
    loop {
        tokio::select! {
            next = sub.next() => match next {
                Some(chunk) => out.stdout(chunk).await?,
                None => return Ok(true),
            },
            changed = changes.changed(), if queue_open => {
                if changed.is_err() {
                    queue_open = false;
                    continue;
                }
                match drain(req, &topic.full, keep_alive, out).await? {
                    Drained::Failed => return Ok(false),
                    Drained::Wrote(n) if n > 0 && !keep_alive => return Ok(true),
                    Drained::Wrote(_) => {}
                }
            }
        }
    }
}
