//! Pattern subscriptions (`sub 'logs-*'`, SPEC §7).
//!
//! A pattern sub is one receiver queue attached, as a member, to every live
//! topic it matches — those that exist when it joins and those created
//! later. Attachment is decided per topic by the same access rule as a
//! `sub` by name, and re-decided whenever a topic's access list changes, so
//! a pattern never reaches a topic its user could not subscribe to by name.
//! Attachments count as receivers (a blocking pub sees them) but never keep
//! a topic alive.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use super::subscription::Subscription;
use super::topic::Counts;
use super::topic::{MemberInfo, Role, Slot, Topic, TopicInner};
use super::{Broker, BrokerError, JoinRequest, Membership, Shared, acl_of, lock, new_slot, who};
use crate::identity::Identity;
use crate::topic::{AccessList, TopicRef, may_use, pattern_matches};

#[derive(Debug)]
pub(crate) struct PatternEntry {
    /// Namespace plus the pattern as its `local` part.
    pub pattern: TopicRef,
    pub who: Identity,
    pub label: String,
    pub slot: Slot,
}

impl PatternEntry {
    fn member_info(&self) -> MemberInfo {
        MemberInfo {
            role: Role::Sub {
                keep_alive: true,
                lossy: self.slot.lossy,
            },
            label: self.label.clone(),
            user: self.who.name.clone(),
            via_pattern: true,
        }
    }

    /// Should this pattern receive from `topic` under its current list?
    fn wants(&self, topic: &TopicRef, acl: Option<&AccessList>, owner: Option<&str>) -> bool {
        self.pattern.namespace == topic.namespace
            && pattern_matches(&self.pattern.local, &topic.local)
            && may_use(topic, acl, owner, &who(&self.who))
    }
}

/// Makes one pattern's attachment to one topic match the rules.
pub(crate) fn sync_one(
    id: u64,
    entry: &PatternEntry,
    topic: &Topic,
    inner: &mut TopicInner,
    acl: Option<&AccessList>,
    owner: Option<&str>,
) {
    let wants = entry.wants(&topic.name, acl, owner);
    let has = inner.members.contains_key(&id);
    if wants && !has {
        topic.add(
            inner,
            id,
            entry.member_info(),
            Some(entry.slot.clone_handle()),
        );
    } else if has && !wants {
        topic.remove_locked(inner, id, false);
    }
}

/// Makes every pattern's attachment to one topic match the rules (a new
/// topic, or one whose access list just changed).
pub(crate) fn sync_topic(
    patterns: &HashMap<u64, PatternEntry>,
    topic: &Topic,
    inner: &mut TopicInner,
    acl: Option<&AccessList>,
    owner: Option<&str>,
) {
    for (id, entry) in patterns {
        sync_one(*id, entry, topic, inner, acl, owner);
    }
}

/// Takes a pattern sub off every topic when its subscription drops.
pub(crate) struct PatternRegistration {
    pub shared: Arc<Shared>,
    pub id: u64,
}

impl Drop for PatternRegistration {
    fn drop(&mut self) {
        let mut state = lock(&self.shared.state);
        state.patterns.remove(&self.id);
        for topic in state.topics.values() {
            let mut inner = topic.lock();
            topic.remove_locked(&mut inner, self.id, false);
        }
    }
}

impl Broker {
    /// Joins a pattern sub (`sub 'logs-*'`): attached to every matching
    /// topic it may use, now and later. It never ends because senders left.
    pub fn join_pattern(&self, req: JoinRequest<'_>) -> Result<Membership, BrokerError> {
        let Role::Sub { lossy, .. } = req.role else {
            return Err(BrokerError::PatternNeedsSub);
        };
        let id = self.shared.next_member.fetch_add(1, Ordering::Relaxed);
        let (Some(slot), Some(rx)) = new_slot(id, lossy) else {
            return Err(BrokerError::PatternNeedsSub);
        };
        let entry = PatternEntry {
            pattern: req.topic.clone(),
            who: req.who.clone(),
            label: req.label.to_string(),
            slot,
        };
        let mut state = lock(&self.shared.state);
        for topic in state.topics.values() {
            let mut inner = topic.lock();
            let (acl, owner) = acl_of(&state.acls, topic, &inner);
            let (acl, owner) = (acl.cloned(), owner.map(str::to_string));
            sync_one(
                id,
                &entry,
                topic,
                &mut inner,
                acl.as_ref(),
                owner.as_deref(),
            );
        }
        state.patterns.insert(id, entry);
        drop(state);
        let guard = Arc::new(PatternRegistration {
            shared: Arc::clone(&self.shared),
            id,
        });
        let subscription = Subscription::new(
            guard,
            id,
            rx,
            watch::channel(Counts::default()).1,
            Counts::default(),
            false,
            Arc::default(),
        );
        Ok(Membership {
            publisher: None,
            subscription: Some(subscription),
            shared: false,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::broker::topic::Slot;
    use crate::topic::Namespace;
    use proptest::prelude::*;

    fn entry(namespace: Namespace, local: &str, user: &str) -> PatternEntry {
        let (tx, _rx) = tokio::sync::mpsc::channel(1);
        let full = format!("{}/{local}", namespace_str(&namespace));
        PatternEntry {
            pattern: TopicRef {
                full,
                namespace,
                local: local.to_string(),
            },
            who: Identity {
                name: user.to_string(),
                fingerprint: "SHA256:x".to_string(),
                admin: false,
                anonymous: false,
            },
            label: String::new(),
            slot: Slot {
                member: 1,
                tx,
                lossy: false,
                skipped: Arc::default(),
            },
        }
    }

    fn namespace_str(ns: &Namespace) -> String {
        match ns {
            Namespace::Public => "public".to_string(),
            Namespace::User(u) => u.clone(),
        }
    }

    fn topic(namespace: Namespace, local: &str) -> TopicRef {
        TopicRef {
            full: format!("{}/{local}", namespace_str(&namespace)),
            namespace,
            local: local.to_string(),
        }
    }

    proptest! {
        /// A pattern never reaches a topic outside its namespace, whatever
        /// the names, and inside it only what `pattern_matches` allows.
        #[test]
        fn never_matches_outside_its_namespace(
            pat in "[a-c*?/-]{1,8}",
            name in "[a-c/-]{1,8}",
            owner in prop_oneof![Just("alice"), Just("bob")],
            other in prop_oneof![Just("alice"), Just("bob"), Just("public")],
        ) {
            let e = entry(Namespace::User(owner.to_string()), &pat, owner);
            let ns = match other {
                "public" => Namespace::Public,
                u => Namespace::User(u.to_string()),
            };
            let t = topic(ns.clone(), &name);
            let wants = e.wants(&t, None, None);
            if ns != Namespace::User(owner.to_string()) {
                prop_assert!(!wants);
            } else {
                prop_assert_eq!(wants, pattern_matches(&pat, &name));
            }
        }

        /// Someone else's unlisted private topic is never reached, even in
        /// the namespace the pattern names.
        #[test]
        fn never_reaches_an_unlisted_private_topic(name in "[a-c-]{1,8}") {
            let e = entry(Namespace::User("alice".into()), "*", "bob");
            let t = topic(Namespace::User("alice".into()), &name);
            prop_assert!(!e.wants(&t, None, None));
            let listed = AccessList(vec!["bob".into()]);
            prop_assert!(e.wants(&t, Some(&listed), None));
        }
    }
}
