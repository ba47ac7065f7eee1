//! What `ls` shows (SPEC §4.4): which topics a user may see, and who is on
//! them. Visibility follows the same access rules as joining, so `ls` never
//! reveals a topic its viewer could not use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::patterns::PatternEntry;
use super::topic::Topic;
use crate::broker::link::Role;
use crate::broker::peers::View;
use crate::broker::{QueuedTotals, TopicListing};

/// Other nodes' views, by full topic name.
pub(crate) type RemoteViews = BTreeMap<String, Vec<View>>;
use crate::topic::{AccessList, Namespace, TopicRef, Who, may_use};

impl TopicListing {
    fn empty(topic: TopicRef, access: Option<AccessList>) -> Self {
        TopicListing {
            topic,
            access,
            pubs: Vec::new(),
            subs: Vec::new(),
            pipes: Vec::new(),
            waiting_pubs: 0,
            queued: 0,
            queued_bytes: 0,
        }
    }
}

pub(super) fn visible(
    topics: &[Arc<Topic>],
    acls: &HashMap<String, AccessList>,
    patterns: &[Arc<PatternEntry>],
    queued: &QueuedTotals,
    remote: &RemoteViews,
    who: &Who<'_>,
) -> Vec<TopicListing> {
    let mut out = live(topics, acls, who);
    on_other_nodes(&mut out, acls, remote, who);
    dormant(&mut out, acls, queued, who);
    for (name, listing) in out.iter_mut() {
        if let Some((n, bytes, _)) = queued.get(name) {
            listing.queued = *n;
            listing.queued_bytes = *bytes;
        }
    }
    pattern_subs(&mut out, patterns, who);
    out.into_values().collect()
}

/// Each topic is locked on its own, briefly: `ls` never holds up joins.
fn live(
    topics: &[Arc<Topic>],
    acls: &HashMap<String, AccessList>,
    who: &Who<'_>,
) -> BTreeMap<String, TopicListing> {
    let mut out: BTreeMap<String, TopicListing> = BTreeMap::new();
    for topic in topics {
        let name = &topic.name.full;
        let inner = topic.lock();
        if inner.dead {
            continue;
        }
        let (acl, owner) = match (&topic.name.namespace, &inner.public_acl) {
            (Namespace::Public, Some((list, owner))) => (Some(list), Some(owner.as_str())),
            (Namespace::Public, None) => (None, None),
            (Namespace::User(_), _) => (acls.get(name), None),
        };
        let shows = match &topic.name.namespace {
            Namespace::Public => {
                who.admin || inner.members.values().any(|m| m.who.name == who.name)
            }
            Namespace::User(_) => may_use(&topic.name, acl, owner, who),
        };
        if !shows {
            continue;
        }
        let mut listing = TopicListing::empty(topic.name.clone(), acl.cloned());
        listing.waiting_pubs = inner.waiting_pubs;
        // Pattern subs are listed under their pattern, not here.
        for member in inner.members.values().filter(|m| m.via_pattern.is_none()) {
            let list = match member.role {
                Role::Pub => &mut listing.pubs,
                Role::Sub { .. } => &mut listing.subs,
                Role::Pipe { .. } => &mut listing.pipes,
            };
            list.push(shown_label(&member.label, &member.who.name, who));
        }
        out.insert(name.clone(), listing);
    }
    out
}

/// Topics with nobody on them that still exist: private ones with an access
/// list, and any with queued messages.
fn dormant(
    out: &mut BTreeMap<String, TopicListing>,
    acls: &HashMap<String, AccessList>,
    queued: &QueuedTotals,
    who: &Who<'_>,
) {
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
    for (name, (_, _, users)) in queued {
        if out.contains_key(name) {
            continue;
        }
        let shows = match name.strip_prefix("public/") {
            // Public queues show to those who queued on them (and admins).
            Some(local) => (who.admin || users.iter().any(|u| u == who.name)).then(|| TopicRef {
                full: name.clone(),
                namespace: Namespace::Public,
                local: local.to_string(),
            }),
            None => dormant_ref(name).filter(|t| may_use(t, acls.get(name), None, who)),
        };
        if let Some(topic) = shows {
            out.insert(
                name.clone(),
                TopicListing::empty(topic, acls.get(name).cloned()),
            );
        }
    }
}

/// Clients on other nodes (SPEC §14): added to the topic's entry, or an
/// entry of its own for a topic no client of this node is on.
fn on_other_nodes(
    out: &mut BTreeMap<String, TopicListing>,
    acls: &HashMap<String, AccessList>,
    remote: &RemoteViews,
    who: &Who<'_>,
) {
    let mut patterns = Vec::new();
    for (name, views) in remote {
        if !out.contains_key(name) {
            let topic = match name.strip_prefix("public/") {
                Some(local) => {
                    let member = views
                        .iter()
                        .any(|v| v.members.iter().any(|m| m.user == who.name));
                    (who.admin || member).then(|| TopicRef {
                        full: name.clone(),
                        namespace: Namespace::Public,
                        local: local.to_string(),
                    })
                }
                None => dormant_ref(name).filter(|t| may_use(t, acls.get(name), None, who)),
            };
            let Some(topic) = topic else {
                continue;
            };
            let access = match topic.namespace {
                Namespace::Public => newest_public(views),
                Namespace::User(_) => acls.get(name).cloned(),
            };
            out.insert(name.clone(), TopicListing::empty(topic, access));
        }
        let Some(listing) = out.get_mut(name) else {
            continue;
        };
        for view in views {
            listing.waiting_pubs += view.waiting;
            for m in &view.members {
                if let Some(pattern) = &m.pattern {
                    patterns.push((pattern, m));
                    continue;
                }
                let list = match m.role {
                    'p' => &mut listing.pubs,
                    'i' => &mut listing.pipes,
                    _ => &mut listing.subs,
                };
                list.push(shown_label(&m.label, &m.user, who));
            }
        }
    }
    // Their pattern subs, under the pattern, by the rule of
    // `pattern_subs`; once each, though one is in the view of every topic
    // it receives from.
    for (pattern, m) in patterns {
        let Some(p) = pattern_ref(pattern) else {
            continue;
        };
        let owner_sees = p.namespace == Namespace::User(who.name.to_string());
        if !(who.admin || m.user == who.name || owner_sees) {
            continue;
        }
        let subs = &mut out
            .entry(format!("{pattern}\u{0}pattern"))
            .or_insert_with(|| TopicListing::empty(p, None))
            .subs;
        let label = shown_label(&m.label, &m.user, who);
        if !subs.contains(&label) {
            subs.push(label);
        }
    }
}

/// The `TopicRef` of a pattern known only by its full name.
fn pattern_ref(full: &str) -> Option<TopicRef> {
    match full.strip_prefix("public/") {
        Some(local) => Some(TopicRef {
            full: full.to_string(),
            namespace: Namespace::Public,
            local: local.to_string(),
        }),
        None => dormant_ref(full),
    }
}

/// The list other nodes hold for a public topic live only there.
fn newest_public(views: &[View]) -> Option<AccessList> {
    views
        .iter()
        .filter_map(|v| v.public.as_ref())
        .max_by_key(|p| p.stamp)
        .filter(|p| !p.list.is_empty())
        .map(|p| AccessList(p.list.clone()))
}

fn pattern_subs(
    out: &mut BTreeMap<String, TopicListing>,
    patterns: &[Arc<PatternEntry>],
    who: &Who<'_>,
) {
    // Pattern subs, under their pattern: seen by their user, the owner of
    // the namespace they watch, and admins.
    for entry in patterns {
        let owner_sees = entry.pattern.namespace == Namespace::User(who.name.to_string());
        if !(who.admin || entry.who.name == who.name || owner_sees) {
            continue;
        }
        let key = format!("{}\u{0}pattern", entry.pattern.full);
        out.entry(key)
            .or_insert_with(|| TopicListing::empty(entry.pattern.clone(), None))
            .subs
            .push(shown_label(&entry.label, &entry.who.name, who));
    }
}

/// A client's id as `who` may see it (SPEC §6): `USER@IP:PORT#N` to the
/// client's own user and to admins, `USER#N` to everyone else, so sharing a
/// topic does not tell others where a user connects from.
fn shown_label(label: &str, member: &str, who: &Who<'_>) -> String {
    if who.admin || member == who.name {
        return label.to_string();
    }
    match label.split_once('@').zip(label.rsplit_once('#')) {
        Some(((user, _), (_, n))) => format!("{user}#{n}"),
        None => label.to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_show_only_to_their_user_and_admins() {
        let who = |name, admin| Who {
            name,
            fingerprint: "SHA256:x",
            admin,
        };
        let label = "bob@10.0.0.7:51234#12";
        let table = [
            (who("bob", false), "bob@10.0.0.7:51234#12"),
            (who("root", true), "bob@10.0.0.7:51234#12"),
            (who("alice", false), "bob#12"),
        ];
        for (viewer, want) in table {
            assert_eq!(shown_label(label, "bob", &viewer), want);
        }
        assert_eq!(
            shown_label("http@[::1]:9#3", "@http", &who("alice", false)),
            "http#3"
        );
    }
}
