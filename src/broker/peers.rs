//! What the in-memory backend knows of other nodes (SPEC §14).
//!
//! With `--broker nats://…` every node keeps its own clients in `memory`,
//! exactly as a single node does, and learns the other nodes' clients as
//! *views*: per topic and node, how many senders and receivers they have
//! and who they are. A topic's watches (sender counts, receiver count) add
//! the views to its own members, so blocking pubs, the ending rules and
//! line framing work unchanged across nodes. A node with receivers on a
//! topic also gets one slot on it, whose queue a forwarder drains towards
//! that node; the delivery rules pace on it like on any other receiver.
//!
//! The backend reports its own membership changes through `Peers` and
//! applies other nodes' views through `Memory::apply_remote`; it never sees
//! NATS.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::DropGuard;

use futures_util::future::BoxFuture;

use super::QueuedTotals;
use super::borrow::Borrowed;
use super::link::Slot;
use super::queue::QueueError;
use crate::topic::TopicRef;

/// One node's share of one topic, as it publishes it.
///
/// The counters (`joins`, `vanished`) only grow for as long as the node's
/// topic lives (`epoch`); a topic that ends and starts again on a node is a
/// new epoch, so the sums other nodes make never go backwards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The topic's full name (keys only carry an encoding of it).
    pub topic: String,
    pub senders: usize,
    pub joins: u64,
    pub vanished: u64,
    pub receivers: usize,
    pub waiting: usize,
    /// Who is on it there, for `ls`.
    #[serde(default)]
    pub members: Vec<Member>,
    /// A public topic's list as that node has it (SPEC §6), so that every
    /// node enforces one list; the newest `stamp` wins.
    #[serde(default)]
    pub public: Option<PublicList>,
    /// The topic's last view on that node: it ended there. Kept a while
    /// before it is deleted, so a node whose watch was down meanwhile
    /// still learns that the senders it never saw came and went.
    #[serde(default)]
    pub ended: bool,
}

/// A public topic's list, set (or, empty, cleared) at `stamp`. Every node
/// on the topic takes the newest it sees as its own, so the list lasts
/// while any node has clients on the topic, and a change on one node
/// re-decides the clients on all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicList {
    pub list: Vec<String>,
    pub owner: String,
    /// Milliseconds since the epoch, shifted left 8 bits, plus 8 random
    /// bits (two nodes setting a list in the same millisecond still
    /// differ); always above the one it replaces.
    pub stamp: u64,
}

/// A client on another node, as `ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// `p`ub, `s`ub or p`i`pe.
    pub role: char,
    pub user: String,
    pub label: String,
    /// A pattern sub's pattern (full name): listed under it, not the topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
}

/// Whose view it is: a node and the life of the topic there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewKey {
    pub node: String,
    pub epoch: u64,
}

/// How a view left: its node said so, or the node is gone and its senders
/// with it (they count as vanished: their receivers did not get all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    Ended,
    NodeLost,
}

/// The backend's line to the other nodes.
pub(crate) trait Peers: Send + Sync + std::fmt::Debug + 'static {
    /// A local topic's membership changed (called under its lock: must not
    /// block). The name and epoch say which view to publish again.
    fn changed(&self, topic: &str, epoch: u64);
    /// A local topic ended: its last view, to publish once and withdraw.
    fn ended(&self, last: View, epoch: u64);
    /// Every other node's views of `topic`, for a topic starting here.
    fn views(&self, topic: &str) -> Vec<(ViewKey, View)>;
    /// A round-robin line nobody on this node could take (its worker left
    /// and the topic has no receiver here): place it on another node.
    fn orphan(&self, topic: &str, line: bytes::Bytes);
    /// Topics some other node has senders on (for a pattern sub joining).
    fn topics_with_senders(&self) -> Vec<String>;
    /// A slot whose queue is carried to `node` (its receivers on `topic`).
    fn link(&self, topic: &TopicRef, node: &str, member: u64) -> Link;
    /// The node holding the oldest message queued on `topic` elsewhere
    /// that nobody reads yet, and when it was queued (ms since the epoch).
    fn queued_elsewhere(&self, topic: &str) -> Option<(String, u64)>;
    /// Borrows the oldest unread message of `topic` from `node` for `who`,
    /// if it still has one `who` may read there (`borrow`).
    fn borrow(
        &self,
        topic: &str,
        node: &str,
        who: &crate::identity::Identity,
    ) -> BoxFuture<'static, Result<Option<Borrowed>, QueueError>>;
    /// Messages queued on the other nodes, per topic, for `ls`.
    fn queued_totals(&self) -> QueuedTotals;
}

/// A slot towards another node. Dropping it stops the forwarder, which
/// lets any sender still waiting on the slot's queue go on.
#[derive(Debug)]
pub(crate) struct Link {
    pub slot: Slot,
    pub _stop: DropGuard,
}

pub(crate) type SharedPeers = Arc<dyn Peers>;
