//! How many live topics there may be (SPEC §9), and who made them.
//!
//! A topic counts against the user whose join created it, until it ends.
//! Three bounds apply together: the server's `max_topics`, one user's
//! `per_user` (a tenth of it, by default, for anonymous `fp-…` keys), and
//! all anonymous keys together at most half the server's topics — new
//! keys cost nothing to make under `--auth open`, so without that last
//! bound enough of them could still fill the server and lock registered
//! users out. Backend-neutral: a backend takes a ticket when it creates a
//! topic and gives it back when the topic ends.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{BrokerConfig, BrokerError};
use crate::identity::Identity;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TopicLimits {
    pub max_topics: usize,
    pub per_user: usize,
    pub per_anonymous: usize,
    pub anonymous_total: usize,
}

impl TopicLimits {
    pub fn from_config(c: &BrokerConfig) -> TopicLimits {
        let divisor = usize::try_from(c.queue.anonymous_divisor.max(1)).unwrap_or(usize::MAX);
        let (per_anonymous, anonymous_total) = if divisor == 1 {
            (c.max_topics_per_user, c.max_topics)
        } else {
            (c.max_topics_per_user / divisor, c.max_topics / 2)
        };
        TopicLimits {
            max_topics: c.max_topics,
            per_user: c.max_topics_per_user,
            per_anonymous,
            anonymous_total,
        }
    }
}

/// Who a topic is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Maker {
    pub user: String,
    pub anonymous: bool,
}

impl Maker {
    pub fn of(who: &Identity) -> Maker {
        Maker {
            user: who.name.clone(),
            anonymous: who.anonymous,
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    anonymous: usize,
    per_user: HashMap<String, usize>,
}

/// The live topics' count. Its lock is a leaf: taken briefly, with nothing
/// else locked inside it.
#[derive(Debug)]
pub(crate) struct TopicCount {
    limits: TopicLimits,
    counts: Mutex<Counts>,
}

impl TopicCount {
    pub fn new(limits: TopicLimits) -> TopicCount {
        TopicCount {
            limits,
            counts: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Plain counters: a panic elsewhere leaves them whole.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more topic made by `maker`, or says which bound is reached.
    pub fn take(&self, maker: &Maker) -> Result<(), BrokerError> {
        let l = &self.limits;
        let mut c = self.lock();
        if c.total >= l.max_topics {
            return Err(BrokerError::TooManyTopics(l.max_topics));
        }
        if maker.anonymous && c.anonymous >= l.anonymous_total {
            return Err(BrokerError::TooManyUserTopics {
                user: "anonymous keys together".into(),
                max: l.anonymous_total,
            });
        }
        let max = if maker.anonymous {
            l.per_anonymous
        } else {
            l.per_user
        };
        let mine = c.per_user.get(&maker.user).copied().unwrap_or(0);
        if mine >= max {
            return Err(BrokerError::TooManyUserTopics {
                user: maker.user.clone(),
                max,
            });
        }
        c.total += 1;
        c.anonymous += usize::from(maker.anonymous);
        *c.per_user.entry(maker.user.clone()).or_default() += 1;
        Ok(())
    }

    /// A topic `maker` made has ended.
    pub fn release(&self, maker: &Maker) {
        let mut c = self.lock();
        c.total = c.total.saturating_sub(1);
        if maker.anonymous {
            c.anonymous = c.anonymous.saturating_sub(1);
        }
        if let Some(n) = c.per_user.get_mut(&maker.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_user.remove(&maker.user);
            }
        }
    }

    pub fn total(&self) -> usize {
        self.lock().total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn maker(user: &str, anonymous: bool) -> Maker {
        Maker {
            user: user.into(),
            anonymous,
        }
    }

    #[test]
    fn free_keys_cannot_fill_the_server() {
        let count = TopicCount::new(TopicLimits {
            max_topics: 100,
            per_user: 20,
            per_anonymous: 2,
            anonymous_total: 50,
        });
        let mut made = 0;
        for k in 0..100 {
            for _ in 0..5 {
                if count.take(&maker(&format!("fp-{k}"), true)).is_ok() {
                    made += 1;
                }
            }
        }
        assert_eq!(made, 50, "anonymous keys together stop at half");
        for _ in 0..20 {
            count.take(&maker("alice", false)).unwrap();
        }
        let over = count.take(&maker("alice", false)).unwrap_err();
        assert_eq!(over.to_string(), "too many topics for alice (limit 20)");
        count.release(&maker("alice", false));
        count.take(&maker("alice", false)).unwrap();
        assert_eq!(count.total(), 70);
    }
}
