//! Lending a queued message to a sub on another node (`broker::borrow`),
//! by request and reply on core NATS (`sp.q.<node>`).
//!
//! The borrower pulls: one request per chunk, the next only once its
//! client took the last, so a slow client paces the reading and nothing
//! piles up on either node. Requests are idempotent (the last chunk is
//! kept for a repeated ask), so a reply lost in a NATS failover is asked
//! for again. A loan lapses after `LEASE` without a word from its
//! borrower, or at once when the borrower's node is found gone; its claim
//! is then dropped, which puts the message back at the head of its queue.
//! The borrower keeps a slow loan alive with `Touch` while its client
//! catches up.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::names::lend_subject;
use super::{Core, lock};
use crate::broker::borrow::{Borrowed, Lender, Loan};
use crate::broker::claim::Claim;
use crate::broker::queue::QueueError;
use crate::topic::{Namespace, TopicRef, Who, may_use};

/// A loan nobody asked about for this long is taken back.
const LEASE: Duration = Duration::from_secs(30);
/// How often a borrower says it is still reading.
const TOUCH: Duration = Duration::from_secs(5);
/// One request's wait for its answer, and how often it is tried.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);
const ASK_TRIES: u32 = 3;
/// Finished loans remembered, so a repeated `Finish` is answered alike.
const FINISHED_KEPT: usize = 1024;

/// A request to the node holding the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Ask {
    /// `user`, `fingerprint` and `admin` say who will read it: the lists
    /// this node holds for its queued messages (a public topic's, kept
    /// with them here) are checked here, where they are.
    Claim {
        topic: String,
        from: String,
        user: String,
        fingerprint: String,
        admin: bool,
    },
    Chunk {
        id: u64,
        index: u32,
    },
    Touch {
        id: u64,
    },
    Finish {
        id: u64,
    },
    Release {
        id: u64,
    },
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Claimed {
        id: u64,
        size: u64,
    },
    Nothing,
    /// The list this node holds for the topic does not allow the reader
    /// (SPEC §6: `access denied`, as on one node).
    Denied,
    Chunk(Bytes),
    End,
    Done,
    Damaged {
        seq: u64,
    },
    Failed(String),
}

impl Answer {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            Answer::Claimed { id, size } => {
                b.put_u8(0);
                b.put_u64(*id);
                b.put_u64(*size);
            }
            Answer::Nothing => b.put_u8(1),
            Answer::Chunk(data) => {
                b.put_u8(2);
                b.put_slice(data);
            }
            Answer::End => b.put_u8(3),
            Answer::Done => b.put_u8(4),
            Answer::Damaged { seq } => {
                b.put_u8(5);
                b.put_u64(*seq);
            }
            Answer::Failed(why) => {
                b.put_u8(6);
                b.put_slice(why.as_bytes());
            }
            Answer::Denied => b.put_u8(7),
        }
        b.freeze()
    }

    pub fn decode(mut b: Bytes) -> Option<Answer> {
        use bytes::Buf;
        if b.is_empty() {
            return None;
        }
        let tag = b.get_u8();
        let u64_at = |b: &mut Bytes| (b.len() >= 8).then(|| b.get_u64());
        Some(match tag {
            0 => {
                let id = u64_at(&mut b)?;
                Answer::Claimed {
                    id,
                    size: u64_at(&mut b)?,
                }
            }
            1 => Answer::Nothing,
            2 => Answer::Chunk(b),
            3 => Answer::End,
            4 => Answer::Done,
            5 => Answer::Damaged {
                seq: u64_at(&mut b)?,
            },
            6 => Answer::Failed(String::from_utf8_lossy(&b).into_owned()),
            7 => Answer::Denied,
            _ => return None,
        })
    }
}

/// One message lent out.
#[derive(Debug)]
struct LoanState {
    claim: Option<Claim>,
    topic: String,
    borrower: String,
    touched: Instant,
    /// Chunks handed out so far, and the last of them (for a repeat).
    served: u32,
    last: Option<Bytes>,
}

/// What this node has lent out.
#[derive(Debug, Default)]
pub(super) struct Lent {
    loans: std::sync::Mutex<HashMap<u64, Arc<tokio::sync::Mutex<LoanState>>>>,
    finished: std::sync::Mutex<VecDeque<u64>>,
    next: AtomicU64,
}

impl Lent {
    fn take(&self, id: u64) -> Option<Arc<tokio::sync::Mutex<LoanState>>> {
        lock(&self.loans).remove(&id)
    }

    fn get(&self, id: u64) -> Option<Arc<tokio::sync::Mutex<LoanState>>> {
        lock(&self.loans).get(&id).cloned()
    }

    /// Takes back every loan of a node found gone.
    pub fn drop_borrower(&self, node: &str) {
        lock(&self.loans).retain(|_, l| l.try_lock().map_or(true, |l| l.borrower != node));
    }

    /// Takes back loans nobody asked about for `LEASE`.
    fn lapse(&self, now: Instant) {
        lock(&self.loans).retain(|_, l| {
            // Busy: someone is asking right now.
            l.try_lock()
                .map_or(true, |l| now.saturating_duration_since(l.touched) < LEASE)
        });
    }
}

/// Answers other nodes' requests for this node's queued messages.
pub(super) async fn serve(core: Arc<Core>, mut requests: async_nats::Subscriber) {
    let mut sweep = tokio::time::interval(LEASE / 3);
    loop {
        tokio::select! {
            msg = requests.next() => {
                let Some(msg) = msg else { return };
                let core = Arc::clone(&core);
                tokio::spawn(async move {
                    let Some(reply) = msg.reply.clone() else { return };
                    let answer = match serde_json::from_slice::<Ask>(&msg.payload) {
                        Ok(ask) => answer(&core, ask).await,
                        Err(e) => Answer::Failed(format!("bad request: {e}")),
                    };
                    let _ = core.client.publish(reply, answer.encode()).await;
                });
            }
            _ = sweep.tick() => core.lent.lapse(Instant::now()),
            () = core.stop.cancelled() => return,
        }
    }
}

async fn answer(core: &Core, ask: Ask) -> Answer {
    let lent = &core.lent;
    match ask {
        Ask::Claim {
            topic,
            from,
            user,
            fingerprint,
            admin,
        } => {
            let reader = Who {
                name: &user,
                fingerprint: &fingerprint,
                admin,
            };
            if !may_read_here(core, &topic, &reader) {
                return Answer::Denied;
            }
            let Some(claim) = core.queue.as_ref().and_then(|q| q.claim(&topic)) else {
                return Answer::Nothing;
            };
            let id = lent.next.fetch_add(1, Ordering::Relaxed) + 1;
            let size = claim.size();
            let state = LoanState {
                claim: Some(claim),
                topic: topic.clone(),
                borrower: from,
                touched: Instant::now(),
                served: 0,
                last: None,
            };
            lock(&lent.loans).insert(id, Arc::new(tokio::sync::Mutex::new(state)));
            Answer::Claimed { id, size }
        }
        Ask::Chunk { id, index } => {
            let Some(loan) = lent.get(id) else {
                return Answer::Failed("the loan lapsed".into());
            };
            let mut l = loan.lock().await;
            l.touched = Instant::now();
            if index + 1 == l.served
                && let Some(last) = &l.last
            {
                return Answer::Chunk(last.clone());
            }
            if index != l.served {
                return Answer::Failed(format!("chunk {index} asked, {} next", l.served));
            }
            let Some(claim) = l.claim.as_mut() else {
                return Answer::Failed("the loan is over".into());
            };
            match claim.next_chunk().await {
                Ok(Some(chunk)) => {
                    l.served += 1;
                    l.last = Some(chunk.clone());
                    Answer::Chunk(chunk)
                }
                Ok(None) => Answer::End,
                Err(e) => {
                    drop(l);
                    // Damaged (set aside already) or unreadable: the claim
                    // goes, and with it the loan.
                    lent.take(id);
                    match e {
                        QueueError::Damaged { seq } => Answer::Damaged { seq },
                        other => Answer::Failed(other.reading()),
                    }
                }
            }
        }
        Ask::Touch { id } => match lent.get(id) {
            Some(loan) => {
                loan.lock().await.touched = Instant::now();
                Answer::Done
            }
            None => Answer::Failed("the loan lapsed".into()),
        },
        Ask::Finish { id } => {
            let Some(loan) = lent.take(id) else {
                return match lock(&lent.finished).contains(&id) {
                    true => Answer::Done,
                    false => Answer::Failed("the loan lapsed before it was confirmed".into()),
                };
            };
            let (claim, topic) = {
                let mut l = loan.lock().await;
                (l.claim.take(), l.topic.clone())
            };
            let Some(claim) = claim else {
                return Answer::Failed("the loan is over".into());
            };
            match claim.finish().await {
                Ok(()) => {
                    // Its last queued message read: a public list kept
                    // for them here goes, as after a local read.
                    if let Some(queue) = &core.queue {
                        core.memory
                            .release_held(Some(&topic), |name| queue.has_messages(name))
                            .await;
                    }
                    let mut f = lock(&lent.finished);
                    f.push_back(id);
                    if f.len() > FINISHED_KEPT {
                        f.pop_front();
                    }
                    Answer::Done
                }
                Err(e) => Answer::Failed(e.to_string()),
            }
        }
        Ask::Release { id } => {
            lent.take(id);
            Answer::Done
        }
    }
}

/// May `reader` read `topic`'s queued messages, by the lists this node
/// has: the shared private ones and the public ones it holds.
fn may_read_here(core: &Core, topic: &str, reader: &Who) -> bool {
    let (owner, local) = topic.split_once('/').unwrap_or(("", topic));
    let namespace = match owner {
        "public" => Namespace::Public,
        user => Namespace::User(user.to_string()),
    };
    let t = TopicRef {
        full: topic.to_string(),
        namespace,
        local: local.to_string(),
    };
    let (list, public_owner) = core.memory.access_list(&t);
    may_use(&t, list.as_ref(), public_owner.as_deref(), reader)
}

/// The borrowing side: asks the holding node over NATS.
#[derive(Debug, Clone)]
pub(super) struct NatsLender {
    pub client: async_nats::Client,
}

impl NatsLender {
    async fn ask(client: &async_nats::Client, node: &str, ask: &Ask) -> Result<Answer, QueueError> {
        let payload = serde_json::to_vec(ask).map_err(|e| QueueError::Lender(e.to_string()))?;
        let payload = Bytes::from(payload);
        let mut last = String::new();
        for _ in 0..ASK_TRIES {
            let sent = client.request(lend_subject(node), payload.clone());
            match tokio::time::timeout(ASK_TIMEOUT, sent).await {
                Ok(Ok(msg)) => {
                    return Answer::decode(msg.payload)
                        .ok_or_else(|| QueueError::Lender("an answer it could not read".into()));
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "no answer".into(),
            }
        }
        Err(QueueError::Lender(format!(
            "node {node} unreachable: {last}"
        )))
    }

    /// Borrows the oldest unread message a `Claim` asks `node` for.
    pub async fn borrow(self, ask: Ask, node: String) -> Result<Option<Borrowed>, QueueError> {
        match Self::ask(&self.client, &node, &ask).await? {
            Answer::Claimed { id, size } => {
                tracing::debug!(%node, id, size, "borrowed a queued message");
                let loan = Loan { node, id };
                let keep = self.keep_alive(loan.clone());
                let lender: Arc<dyn Lender> = Arc::new(self);
                Ok(Some(Borrowed::new(lender, loan, keep)))
            }
            Answer::Nothing => Ok(None),
            Answer::Denied => Err(QueueError::Denied),
            Answer::Failed(why) => Err(QueueError::Lender(why)),
            other => Err(QueueError::Lender(format!("unexpected answer {other:?}"))),
        }
    }

    /// Touches the loan until the returned token is cancelled (the
    /// borrowed message is done with).
    fn keep_alive(&self, loan: Loan) -> CancellationToken {
        let stop = CancellationToken::new();
        let (client, done) = (self.client.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(TOUCH) => {}
                    () = done.cancelled() => return,
                }
                let _ = Self::ask(&client, &loan.node, &Ask::Touch { id: loan.id }).await;
            }
        });
        stop
    }
}

impl Lender for NatsLender {
    fn chunk(
        &self,
        loan: &Loan,
        index: u32,
    ) -> BoxFuture<'static, Result<Option<Bytes>, QueueError>> {
        let (client, loan) = (self.client.clone(), loan.clone());
        Box::pin(async move {
            let ask = Ask::Chunk { id: loan.id, index };
            match Self::ask(&client, &loan.node, &ask).await? {
                Answer::Chunk(data) => Ok(Some(data)),
                Answer::End => Ok(None),
                Answer::Damaged { seq } => Err(QueueError::Damaged { seq }),
                Answer::Failed(why) => Err(QueueError::Lender(why)),
                other => Err(QueueError::Lender(format!("unexpected answer {other:?}"))),
            }
        })
    }

    fn finish(&self, loan: &Loan) -> BoxFuture<'static, Result<(), QueueError>> {
        let (client, loan) = (self.client.clone(), loan.clone());
        Box::pin(async move {
            match Self::ask(&client, &loan.node, &Ask::Finish { id: loan.id }).await? {
                Answer::Done => Ok(()),
                Answer::Failed(why) => Err(QueueError::Lender(why)),
                other => Err(QueueError::Lender(format!("unexpected answer {other:?}"))),
            }
        })
    }

    fn release(&self, loan: &Loan) {
        let (client, loan) = (self.client.clone(), loan.clone());
        // Best effort: unanswered, the loan lapses by itself.
        tokio::spawn(async move {
            let _ = Self::ask(&client, &loan.node, &Ask::Release { id: loan.id }).await;
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_round_trip() {
        for a in [
            Answer::Claimed {
                id: 7,
                size: 1 << 40,
            },
            Answer::Nothing,
            Answer::Chunk(Bytes::from_static(b"\x00\x01 data")),
            Answer::Chunk(Bytes::new()),
            Answer::End,
            Answer::Done,
            Answer::Damaged { seq: 3 },
            Answer::Failed("gone".into()),
            Answer::Denied,
        ] {
            assert_eq!(Answer::decode(a.encode()), Some(a.clone()), "{a:?}");
        }
        assert_eq!(Answer::decode(Bytes::new()), None);
        assert_eq!(Answer::decode(Bytes::from_static(&[0, 1, 2])), None);
        assert_eq!(Answer::decode(Bytes::from_static(&[9])), None);
    }

    #[test]
    fn asks_are_json_with_an_op() {
        let ask = Ask::Chunk { id: 1, index: 2 };
        let json = serde_json::to_string(&ask).unwrap();
        assert_eq!(json, r#"{"op":"chunk","id":1,"index":2}"#);
        assert_eq!(serde_json::from_str::<Ask>(&json).unwrap(), ask);
    }
}
