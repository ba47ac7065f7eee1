//! What `ls` shows (SPEC §4.4): which topics a user may see, and who is on
//! them. Visibility follows the same access rules as joining, so `ls` never
//! reveals a topic its viewer could not use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::patterns::PatternEntry;
use super::topic::{Role, Topic};
use crate::topic::{AccessList, Namespace, TopicRef, Who, may_use};

/// One topic as `ls` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicListing {
    pub topic: TopicRef,
    pub access: Option<AccessList>,
    pub pubs: Vec<String>,
    pub subs: Vec<String>,
    pub pipes: Vec<String>,
    pub waiting_pubs: usize,
}

impl TopicListing {
    fn empty(topic: TopicRef, access: Option<AccessList>) -> Self {
        TopicListing {
            topic,
            access,
            pubs: Vec::new(),
            subs: Vec::new(),
            pipes: Vec::new(),
            waiting_pubs: 0,
        }
    }
}

pub(super) fn visible(
    topics: &HashMap<String, Arc<Topic>>,
    acls: &HashMap<String, AccessList>,
    patterns: &HashMap<u64, PatternEntry>,
    who: &Who<'_>,
) -> Vec<TopicListing> {
    let mut out: BTreeMap<String, TopicListing> = BTreeMap::new();
    for (name, topic) in topics {
        let inner = topic.lock();
        let (acl, owner) = match (&topic.name.namespace, &inner.public_acl) {
            (Namespace::Public, Some((list, owner))) => (Some(list), Some(owner.as_str())),
            (Namespace::Public, None) => (None, None),
            (Namespace::User(_), _) => (acls.get(name), None),
        };
        let shows = match &topic.name.namespace {
            Namespace::Public => who.admin || inner.members.values().any(|m| m.user == who.name),
            Namespace::User(_) => may_use(&topic.name, acl, owner, who),
        };
        if !shows {
            continue;
        }
        let mut listing = TopicListing::empty(topic.name.clone(), acl.cloned());
        listing.waiting_pubs = inner.waiting_pubs;
        // Pattern subs are listed under their pattern, not here.
        for member in inner.members.values().filter(|m| !m.via_pattern) {
            let list = match member.role {
                Role::Pub => &mut listing.pubs,
                Role::Sub { .. } => &mut listing.subs,
                Role::Pipe { .. } => &mut listing.pipes,
            };
            list.push(member.label.clone());
        }
        out.insert(name.clone(), listing);
    }
    // Private topics with an access list but nobody on them still exist.
    for (name, list) in acls {
        if out.contains_key(name) {
            continue;
        }
        let Some(topic) = dormant_ref(name) else {
            continue;
        };
        if may_use(&topic, Some(list), None, who) {
            out.insert(name.clone(), TopicListing::empty(topic, Some(list.clone())));
        }
    }
    // Pattern subs, under their pattern: seen by their user, the owner of
    // the namespace they watch, and admins.
    for entry in patterns.values() {
        let owner_sees = entry.pattern.namespace == Namespace::User(who.name.to_string());
        if !(who.admin || entry.who.name == who.name || owner_sees) {
            continue;
        }
        let key = format!("{}\u{0}pattern", entry.pattern.full);
        out.entry(key)
            .or_insert_with(|| TopicListing::empty(entry.pattern.clone(), None))
            .subs
            .push(entry.label.clone());
    }
    out.into_values().collect()
}

/// Rebuilds the `TopicRef` of a private topic known only by its full name.
fn dormant_ref(full: &str) -> Option<TopicRef> {
    let (user, local) = full.split_once('/')?;
    Some(TopicRef {
        full: full.to_string(),
        namespace: Namespace::User(user.to_string()),
        local: local.to_string(),
    })
}
