//! Round-robin lines that lost their receiver on the way between nodes
//! (SPEC §7: a line is never lost while any receiver is connected).
//!
//! On one node a worker that leaves gives its lines back to its topic.
//! Across nodes a line can also be caught in between: queued for a link
//! that closed, in flight to a node whose last worker just left, or given
//! back on a node where the topic ended with that worker. Such a line is
//! *placed* again: with a receiver of the topic on this node (or through
//! its links), or else sent as a loose frame to another node that has
//! receivers there, which does the same. Lines are never copied, only
//! moved, so this adds no duplicates; a hop bound keeps a line from
//! bouncing between nodes whose views are stale.

use std::sync::Arc;

use bytes::Bytes;

use super::Core;
use super::names::data_subject;
use super::wire::{Frame, Kind};
use crate::broker::link::{TopicPort, dispatch_line, dispatch_line_to};

/// A loose line goes from node to node at most this often.
const MAX_HOPS: u64 = 4;

/// Hands `line` to one receiver of `topic`: here first, else anywhere the
/// topic's links reach, else on another node that has receivers.
/// `hops`: how often it was sent loose already.
pub(super) async fn place(core: &Arc<Core>, topic: &str, line: Bytes, hops: u64) {
    let live = core.memory.local_port(topic).filter(|t| !t.lock().dead);
    if let Some(t) = live {
        let local = t.local_receivers();
        let port: Arc<dyn TopicPort> = t;
        if dispatch_line_to(&port, &local, &line, &[]).await
            || dispatch_line(&port, &line, &[]).await
        {
            return;
        }
    }
    send_loose(core, topic, line, hops).await;
}

/// Sends a line to another node with receivers on `topic`.
async fn send_loose(core: &Core, topic: &str, line: Bytes, hops: u64) {
    let to = match hops < MAX_HOPS {
        true => core.node_with_receivers(topic),
        false => None,
    };
    let Some(to) = to else {
        tracing::warn!(
            topic,
            bytes = line.len(),
            "round-robin line lost: no receiver left"
        );
        return;
    };
    let frame = Frame {
        kind: Kind::Loose,
        stream: 0,
        seq: hops + 1,
        from: core.node.clone(),
        topic: topic.to_string(),
        body: line,
    };
    // Core NATS without a window: these are rare, and only a NATS failure
    // at the same moment loses one.
    let _ = core.client.publish(data_subject(&to), frame.encode()).await;
}
