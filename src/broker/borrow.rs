//! A queued message read from another node (SPEC §8 across nodes, §14).
//!
//! Each node keeps the messages queued through it in its own store, with
//! the claims that give each to exactly one receiver. A sub on another
//! node borrows one: the holding node claims it as for a local reader and
//! lends it out; the borrower pulls it chunk by chunk (so a slow client
//! paces the reading, as a local one does), and confirms or gives it back
//! as a local `Claim` would be finished or dropped. Exactly-once stays the
//! holding node's business, decided in one place.
//!
//! Nothing here knows how nodes talk: that is the `Lender` of the backend.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::queue::QueueError;
use super::reader::Held;
use super::{Broker, BrokerError};
use crate::identity::Identity;

/// One lent message: which node holds it and its number there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loan {
    pub node: String,
    pub id: u64,
}

/// How a borrower reaches the node that lent it a message.
pub(crate) trait Lender: Send + Sync + std::fmt::Debug + 'static {
    /// Chunk `index` (0, 1, 2, … in order; asking for the last one again is
    /// allowed, for a lost answer); `None` once all were read.
    fn chunk(
        &self,
        loan: &Loan,
        index: u32,
    ) -> BoxFuture<'static, Result<Option<Bytes>, QueueError>>;
    /// The client has it: remove it for good.
    fn finish(&self, loan: &Loan) -> BoxFuture<'static, Result<(), QueueError>>;
    /// Give it back, unread or partly read: it goes back to the head of its
    /// queue. Must not block (called from `Drop`).
    fn release(&self, loan: &Loan);
}

/// A borrowed message, read a chunk at a time; as a `Claim`, dropped
/// before `finish` it goes back to the head of its queue.
#[derive(Debug)]
pub struct Borrowed {
    lender: Arc<dyn Lender>,
    loan: Loan,
    next: u32,
    done: bool,
    /// Whatever keeps the loan alive meanwhile stops with this.
    _keep: DropGuard,
}

impl Borrowed {
    pub(crate) fn new(lender: Arc<dyn Lender>, loan: Loan, keep: CancellationToken) -> Borrowed {
        Borrowed {
            lender,
            loan,
            next: 0,
            done: false,
            _keep: keep.drop_guard(),
        }
    }

    /// The next chunk (`None`: all read). Cancel-safe: a cancelled call
    /// asks for the same chunk again next time.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, QueueError> {
        let got = self.lender.chunk(&self.loan, self.next).await;
        match got {
            Ok(Some(chunk)) => {
                self.next += 1;
                Ok(Some(chunk))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                // The lender dropped it (damaged, or its node is gone).
                self.done = true;
                Err(e)
            }
        }
    }

    pub async fn finish(mut self) -> Result<(), QueueError> {
        self.done = true;
        self.lender.finish(&self.loan).await
    }
}

impl Drop for Borrowed {
    fn drop(&mut self) {
        if !self.done {
            self.lender.release(&self.loan);
        }
    }
}

impl Broker {
    /// Claims the oldest queued message of `topic` that no receiver is
    /// reading, on this node or, older there, on another (by the time it
    /// was queued: the nodes' clocks order them). Another node that cannot
    /// lend it now (gone, or its message taken meanwhile) is passed over;
    /// one whose list for the topic refuses `who` refuses it here too.
    pub(super) async fn claim_oldest(
        &self,
        topic: &str,
        who: &Identity,
    ) -> Result<Option<Held>, BrokerError> {
        let queue = self.inner.queue.as_ref();
        let local = queue.and_then(|q| q.oldest_unclaimed(topic));
        let elsewhere = self
            .memory()
            .peers()
            .and_then(|p| p.queued_elsewhere(topic).map(|at| (p, at)));
        if let Some((peers, (node, queued_ms))) = elsewhere
            && local.is_none_or(|l| queued_ms < l)
        {
            match peers.borrow(topic, &node, who).await {
                Ok(Some(b)) => return Ok(Some(Held::Remote(b))),
                Ok(None) => {}
                Err(QueueError::Denied) => return Err(BrokerError::AccessDenied),
                Err(e) => {
                    tracing::debug!(error = %e, %node, topic, "cannot borrow a queued message")
                }
            }
        }
        Ok(queue.and_then(|q| q.claim(topic)).map(Held::Local))
    }
}
