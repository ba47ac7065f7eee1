//! `pub -q` over SSH (SPEC §8): storing the input when nobody listens.
//! (Draining the queue is the broker's `Reader`, shared with HTTP.)
//!
//! The broker decides and stores; this module turns outcomes into the
//! status lines and exit codes users see.

use russh::ChannelReadHalf;

use super::exec::{Report, Request, drain_until_closed};
use super::out::{Gone, Out};
use super::pubsub::hint;
use super::stdio::{ChannelSource, NoInput};
use crate::broker::QueueError;
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
