//! Access lists and the access decision.
//!
//! Kept apart from name resolution so the whole "who may use this topic" rule reads in one
//! screen: a private topic is open to its owner, admins and the entries of its access list —
//! nobody else, whatever name they typed to get here. Public topics are open unless a client
//! that joined while they had no list set one (SPEC §6).

use super::{Namespace, Shown, TopicRef};
use crate::identity::{is_anonymous_name, valid_user_name};

/// Access list entries: user names (listed or `fp-…`) or `SHA256:<base64>` fingerprints.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessList(pub Vec<String>);

impl AccessList {
    /// Does the list name this user name or key fingerprint?
    pub fn allows(&self, name: &str, fingerprint: &str) -> bool {
        self.0.iter().any(|e| {
            (!name.is_empty() && e == name) || (!fingerprint.is_empty() && e == fingerprint)
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `SHA256:` + 43 base64 characters (a 32-byte digest), optionally one trailing `=`.
fn is_fingerprint_entry(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b64| {
        let b64 = b64.strip_suffix('=').unwrap_or(b64);
        b64.len() == 43
            && b64
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

/// Check `-a` entries (already split on ',' and trimmed). Fingerprints are stored without
/// base64 padding (as `ssh-keygen -lf` prints them) so they compare equal to a client's
/// fingerprint; duplicates are dropped. Error: `invalid access list entry: "x"`.
pub fn parse_access(entries: &[String]) -> Result<AccessList, String> {
    let mut list: Vec<String> = Vec::with_capacity(entries.len());
    for entry in entries {
        let normalized = if valid_user_name(entry) || is_anonymous_name(entry) {
            entry.as_str()
        } else if is_fingerprint_entry(entry) {
            entry.strip_suffix('=').unwrap_or(entry)
        } else {
            return Err(format!("invalid access list entry: {}", Shown(entry)));
        };
        if !list.iter().any(|e| e == normalized) {
            list.push(normalized.to_string());
        }
    }
    Ok(AccessList(list))
}

/// Who is asking (pure data; built by the ssh/http layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    pub name: &'a str,
    /// `SHA256:…`
    pub fingerprint: &'a str,
    pub admin: bool,
}

/// May `who` use the topic (pub, sub, pipe)?
///
/// Admins always. Private: the namespace owner, or anyone on the access list. Public: anyone
/// without a list; with a list, its owner (`public_owner`, who set it) or anyone on it.
pub fn may_use(
    topic: &TopicRef,
    acl: Option<&AccessList>,
    public_owner: Option<&str>,
    who: &Who,
) -> bool {
    if who.admin {
        return true;
    }
    let listed = || acl.is_some_and(|l| l.allows(who.name, who.fingerprint));
    match &topic.namespace {
        Namespace::User(owner) => owner == who.name || listed(),
        Namespace::Public => acl.is_none() || public_owner == Some(who.name) || listed(),
    }
}

/// May `who` set or clear the topic's access list (`-a`)?
///
/// Admins always. Private: only the namespace owner. Public: anyone while the topic has no
/// list (they become its owner), afterwards only that owner.
pub fn may_set_access(
    topic: &TopicRef,
    has_acl: bool,
    public_owner: Option<&str>,
    who: &Who,
) -> bool {
    if who.admin {
        return true;
    }
    match &topic.namespace {
        Namespace::User(owner) => owner == who.name,
        Namespace::Public => !has_acl || public_owner == Some(who.name),
    }
}
