//! Queue quotas (SPEC §8): whom a queued message counts against, and the
//! ledger that makes every limit check atomic with taking the room.
//!
//! A `pub -q` reserves before it stores: one message slot when it starts,
//! then its bytes as they arrive, each step checked and taken under the
//! index lock in one go. Two concurrent pubs can therefore never both pass
//! a check that only one of them fits. A reservation that is not turned
//! into a stored message (the input broke off, the store failed, the
//! client left) is given back when it is dropped.
//!
//! The charge goes to the topic's owner — the namespace the message lands
//! in — so a user on someone's access list cannot fill the owner's queue
//! with their own quota, and the owner's limits bound everything queued in
//! their namespace; in `public/` it goes to the sender. Anonymous keys
//! (`fp-…`) get a fraction of each per-user limit.

use std::collections::HashMap;
use std::sync::Arc;

use super::queue::{Queue, QueueError, QueueLimits};
use crate::identity::{Identity, is_anonymous_name};
use crate::topic::{Namespace, TopicRef};

/// Whose quota a message counts against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Charge {
    pub user: String,
    pub anonymous: bool,
}

impl Charge {
    /// The topic's owner; in `public/`, the sender.
    pub fn for_topic(topic: &TopicRef, sender: &Identity) -> Charge {
        match &topic.namespace {
            Namespace::User(owner) => Charge {
                anonymous: is_anonymous_name(owner),
                user: owner.clone(),
            },
            Namespace::Public => Charge {
                user: sender.name.clone(),
                anonymous: sender.anonymous,
            },
        }
    }
}

/// One user's queued bytes and messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    pub bytes: u64,
    pub messages: usize,
}

/// What is queued (and reserved), per user and in all.
#[derive(Debug, Default)]
pub(super) struct Ledger {
    per_user: HashMap<String, Usage>,
    total_bytes: u64,
}

/// The per-user limits that apply to `charge`.
fn user_limits(l: &QueueLimits, charge: &Charge) -> (u64, usize) {
    if charge.anonymous {
        let d = l.anonymous_divisor.max(1);
        (l.max_user_bytes / d, l.max_user_messages / d as usize)
    } else {
        (l.max_user_bytes, l.max_user_messages)
    }
}

pub(super) fn server_full() -> QueueError {
    QueueError::Full("server storage is full".into())
}

impl Ledger {
    /// A message loaded from the store at start.
    pub fn add_stored(&mut self, user: &str, size: u64) {
        let u = self.per_user.entry(user.to_string()).or_default();
        u.bytes += size;
        u.messages += 1;
        self.total_bytes += size;
    }

    /// Takes one message slot for `charge`, or says which limit is reached.
    /// `elsewhere` is what the user has queued on other nodes (SPEC §14:
    /// one quota for the whole cluster), counted but never taken here.
    pub fn reserve_message(
        &mut self,
        l: &QueueLimits,
        charge: &Charge,
        elsewhere: Usage,
    ) -> Result<(), QueueError> {
        let (_, max) = user_limits(l, charge);
        let u = self.per_user.entry(charge.user.clone()).or_default();
        if u.messages + elsewhere.messages >= max {
            let n = u.messages + elsewhere.messages;
            self.drop_if_idle(&charge.user);
            return Err(QueueError::Full(format!(
                "{} has {n} queued messages (limit {max})",
                charge.user
            )));
        }
        u.messages += 1;
        Ok(())
    }

    /// Takes `more` bytes for a message of which `so_far` are already
    /// reserved, or says which limit it would pass (nothing taken then).
    pub fn reserve_bytes(
        &mut self,
        l: &QueueLimits,
        charge: &Charge,
        elsewhere: Usage,
        so_far: u64,
        more: u64,
    ) -> Result<(), QueueError> {
        let size = so_far + more;
        if size > l.max_message {
            return Err(QueueError::Full(format!(
                "message is over the {}-byte limit ({size} bytes read)",
                l.max_message
            )));
        }
        if self.total_bytes + more > l.max_store_bytes {
            return Err(server_full());
        }
        let (max, _) = user_limits(l, charge);
        let u = self.per_user.entry(charge.user.clone()).or_default();
        if u.bytes + elsewhere.bytes + more > max {
            let others = u.bytes - so_far + elsewhere.bytes;
            return Err(QueueError::Full(format!(
                "{} has {others} bytes queued, this message would make {} (limit {max})",
                charge.user,
                others + size
            )));
        }
        u.bytes += more;
        self.total_bytes += more;
        Ok(())
    }

    /// Gives back `bytes` and `messages` of `user` (a message removed, or a
    /// reservation never stored).
    pub fn release(&mut self, user: &str, bytes: u64, messages: usize) {
        if let Some(u) = self.per_user.get_mut(user) {
            u.bytes = u.bytes.saturating_sub(bytes);
            u.messages = u.messages.saturating_sub(messages);
        }
        self.total_bytes = self.total_bytes.saturating_sub(bytes);
        self.drop_if_idle(user);
    }

    fn drop_if_idle(&mut self, user: &str) {
        if self
            .per_user
            .get(user)
            .is_some_and(|u| u.messages == 0 && u.bytes == 0)
        {
            self.per_user.remove(user);
        }
    }

    #[cfg(test)]
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

/// Room taken for one message being stored; given back on drop unless
/// `stored` was called.
pub(super) struct Reservation {
    queue: Arc<Queue>,
    pub charge: Charge,
    pub bytes: u64,
    /// What the user had queued on other nodes when this message began
    /// (read once, outside the index lock: see `Queue::elsewhere`).
    elsewhere: Usage,
    held: bool,
}

impl Reservation {
    pub fn new(queue: &Arc<Queue>, charge: Charge) -> Result<Reservation, QueueError> {
        let elsewhere = queue.elsewhere(&charge.user);
        queue
            .lock()
            .ledger
            .reserve_message(&queue.limits, &charge, elsewhere)?;
        Ok(Reservation {
            queue: Arc::clone(queue),
            charge,
            bytes: 0,
            elsewhere,
            held: true,
        })
    }

    /// Takes room for `more` bytes of this message.
    pub fn grow(&mut self, more: u64) -> Result<(), QueueError> {
        let q = &self.queue;
        q.lock()
            .ledger
            .reserve_bytes(&q.limits, &self.charge, self.elsewhere, self.bytes, more)?;
        self.bytes += more;
        Ok(())
    }

    /// The message is stored: its room now belongs to it, and is given
    /// back when it is removed.
    pub fn stored(mut self) {
        self.held = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.held {
            self.queue
                .lock()
                .ledger
                .release(&self.charge.user, self.bytes, 1);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> QueueLimits {
        QueueLimits {
            max_message: 100,
            max_user_bytes: 1000,
            max_user_messages: 10,
            retention: Duration::from_secs(1),
            max_store_bytes: 1500,
            min_free_percent: 0,
            anonymous_divisor: 10,
        }
    }

    fn charge(user: &str, anonymous: bool) -> Charge {
        Charge {
            user: user.into(),
            anonymous,
        }
    }

    #[test]
    fn anonymous_keys_get_a_tenth() {
        let (l, mut led) = (limits(), Ledger::default());
        let fp = charge("fp-x", true);
        led.reserve_message(&l, &fp, Usage::default()).unwrap();
        assert!(led.reserve_bytes(&l, &fp, Usage::default(), 0, 100).is_ok());
        assert!(
            led.reserve_bytes(&l, &fp, Usage::default(), 100, 1)
                .is_err(),
            "over 1000/10"
        );
        assert!(
            led.reserve_message(&l, &fp, Usage::default()).is_err(),
            "over 10/10 messages"
        );
        led.release(&fp.user, 100, 1);
        assert_eq!(led.total_bytes(), 0);
        assert!(led.per_user.is_empty());
    }

    #[test]
    fn the_server_wide_bound_covers_every_user() {
        let (l, mut led) = (limits(), Ledger::default());
        for (i, user) in ["a", "b"].iter().enumerate() {
            let c = charge(user, false);
            for _ in 0..(7 + i as u64) {
                led.reserve_message(&l, &c, Usage::default()).unwrap();
                led.reserve_bytes(&l, &c, Usage::default(), 0, 100).unwrap();
            }
        }
        let c = charge("c", false);
        led.reserve_message(&l, &c, Usage::default()).unwrap();
        assert_eq!(
            led.reserve_bytes(&l, &c, Usage::default(), 0, 1)
                .unwrap_err()
                .to_string(),
            "queue full: server storage is full"
        );
    }

    #[test]
    fn what_a_user_has_on_other_nodes_counts_against_their_limits() {
        let (l, mut led) = (limits(), Ledger::default());
        let c = charge("a", false);
        let near = Usage {
            bytes: 950,
            messages: 9,
        };
        led.reserve_message(&l, &c, near).unwrap();
        assert!(led.reserve_bytes(&l, &c, near, 0, 50).is_ok(), "950 + 50");
        assert_eq!(
            led.reserve_bytes(&l, &c, near, 50, 1)
                .unwrap_err()
                .to_string(),
            "queue full: a has 950 bytes queued, this message would make 1001 (limit 1000)"
        );
        let full = Usage {
            bytes: 0,
            messages: 9,
        };
        assert_eq!(
            led.reserve_message(&l, &c, full).unwrap_err().to_string(),
            "queue full: a has 10 queued messages (limit 10)"
        );
        // Nothing of the other nodes' usage is kept here.
        led.release(&c.user, 50, 1);
        assert!(led.per_user.is_empty());
    }

    #[test]
    fn a_refused_reservation_takes_nothing() {
        let (l, mut led) = (limits(), Ledger::default());
        let c = charge("a", false);
        led.reserve_message(&l, &c, Usage::default()).unwrap();
        assert!(led.reserve_bytes(&l, &c, Usage::default(), 0, 101).is_err());
        assert_eq!(led.total_bytes(), 0);
    }
}
