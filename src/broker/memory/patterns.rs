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

use tokio_util::sync::CancellationToken;

use super::topic::{MemberInfo, Topic, TopicInner};
use super::{Joined, Memory};
use crate::broker::link::{Registration, Role, SenderCounts, Slot, TopicPort};
use crate::broker::who;
use crate::identity::Identity;
use crate::topic::{AccessList, TopicRef, may_use, pattern_matches};

#[derive(Debug)]
pub(crate) struct PatternEntry {
    /// Namespace plus the pattern as its `local` part.
    pub pattern: TopicRef,
    pub who: Identity,
    pub label: String,
    pub slot: Slot,
    /// Ends the pattern sub (`access denied`) when a list change takes it
    /// off a topic it was receiving from (SPEC §6).
    pub revoked: CancellationToken,
}

impl PatternEntry {
    fn member_info(&self) -> MemberInfo {
        MemberInfo {
            role: Role::Sub {
                keep_alive: true,
                lossy: self.slot.lossy,
            },
            label: self.label.clone(),
            who: self.who.clone(),
            revoked: self.revoked.clone(),
            via_pattern: Some(self.pattern.full.clone()),
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
    let wants = !inner.dead && entry.wants(&topic.name, acl, owner);
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
    patterns: &HashMap<u64, Arc<PatternEntry>>,
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
#[derive(Debug)]
pub(crate) struct PatternPort {
    memory: std::sync::Weak<Memory>,
    id: u64,
    senders: tokio::sync::watch::Sender<SenderCounts>,
    receivers: tokio::sync::watch::Sender<usize>,
    cursor: std::sync::atomic::AtomicUsize,
}

/// A pattern sub is a receiver only: nothing is ever sent to "the pattern",
/// so as a port it has no receivers and never changes; leaving detaches it
/// from every topic.
impl TopicPort for PatternPort {
    fn senders(&self) -> tokio::sync::watch::Receiver<SenderCounts> {
        self.senders.subscribe()
    }
    fn receiver_count(&self) -> tokio::sync::watch::Receiver<usize> {
        self.receivers.subscribe()
    }
    fn receivers(&self) -> Arc<[Slot]> {
        Arc::from(Vec::new())
    }
    fn cursor(&self) -> &std::sync::atomic::AtomicUsize {
        &self.cursor
    }
    fn waiting(&self, _delta: isize) {}
    fn leave(&self, member: u64, _vanished: bool) {
        if let Some(memory) = self.memory.upgrade() {
            memory.drop_pattern(member);
        }
        debug_assert_eq!(member, self.id);
    }
}

impl Memory {
    /// Joins a pattern sub (`sub 'logs-*'`): attached to every matching
    /// topic it may use, now and later. Registered first, then walked topic
    /// by topic: a topic created meanwhile either sees the entry or is
    /// already in its shard for the walk (creators hold `patterns` shared).
    pub fn join_pattern(
        &self,
        pattern: &TopicRef,
        who_is: &Identity,
        label: &str,
        lossy: bool,
        receiver_chunks: usize,
    ) -> Joined {
        let id = self.next_id();
        let (slot, rx) = Slot::new(id, lossy, receiver_chunks, &self.skipped_total);
        let skipped = Arc::clone(&slot.skipped);
        let entry = Arc::new(PatternEntry {
            pattern: pattern.clone(),
            who: who_is.clone(),
            label: label.to_string(),
            slot,
            revoked: CancellationToken::new(),
        });
        self.patterns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&entry));
        for topic in self.all_topics() {
            let mut inner = topic.lock();
            let (acl, owner) = self.acl_of(&topic, &inner);
            sync_one(
                id,
                &entry,
                &topic,
                &mut inner,
                acl.as_ref(),
                owner.as_deref(),
            );
        }
        // Topics whose senders are all on other nodes (SPEC §14).
        self.adopt_remote_topics(pattern);
        let port = Arc::new(PatternPort {
            memory: self.me.clone(),
            id,
            senders: tokio::sync::watch::Sender::new(SenderCounts::default()),
            receivers: tokio::sync::watch::Sender::new(0),
            cursor: Default::default(),
        });
        let senders = port.senders.subscribe();
        Joined {
            registration: Registration::new(port, id, entry.revoked.clone()),
            rx: Some(rx),
            skipped,
            senders_at_join: SenderCounts::default(),
            senders,
            shared: false,
        }
    }

    /// Unregisters first, so no new topic attaches it, then detaches it
    /// from every topic.
    fn drop_pattern(&self, id: u64) {
        self.patterns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        for topic in self.all_topics() {
            topic.remove_locked(&mut topic.lock(), id, false);
            // A topic adopted for patterns only ends with its last one.
            self.end_if_unused(&topic);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
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
                skipped_total: Arc::default(),
                share: Arc::default(),
            },
            revoked: CancellationToken::new(),
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
