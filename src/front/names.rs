//! From what a client typed to what the broker needs: the topic, the access
//! list, the label `ls` shows — and back: the hint line that says what
//! others type to reach the topic.

use std::net::SocketAddr;

use super::Failure;
use crate::app::App;
use crate::identity::Identity;
use crate::topic::{
    AccessList, Namespace, Resolver, TopicError, TopicRef, is_pattern, parse_access,
};

/// A command's topic, list and label, checked.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub topic: TopicRef,
    /// `-a`: `Some(empty)` clears the list.
    pub access: Option<AccessList>,
    /// `USER@IP:PORT#N`, as `ls` shows the client.
    pub label: String,
}

/// Resolves a typed topic name for `identity` (SPEC §6, §7).
pub fn resolve(
    app: &App,
    identity: &Identity,
    typed: &str,
    public: bool,
    allow_pattern: bool,
) -> Result<TopicRef, TopicError> {
    let is_user = |name: &str| app.users.is_user(name);
    Resolver {
        user: &identity.name,
        admin: identity.admin,
        is_user: &is_user,
    }
    .resolve(typed, public, allow_pattern)
}

/// Checks a command's topic and `-a` entries (already split on commas).
/// `shown` is the user part of the label (`http` for HTTP clients).
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    app: &App,
    identity: &Identity,
    shown: &str,
    peer: SocketAddr,
    typed: &str,
    public: bool,
    allow_pattern: bool,
    access: Option<&[String]>,
) -> Result<Prepared, Failure> {
    let topic = resolve(app, identity, typed, public, allow_pattern)?;
    let access = access
        .map(parse_access)
        .transpose()
        .map_err(Failure::BadArgument)?;
    if access.is_some() && is_pattern(&topic.local) {
        return Err(Failure::BadArgument(
            "an access list belongs to a topic, not a pattern".into(),
        ));
    }
    Ok(Prepared {
        topic,
        access,
        label: client_label(app, shown, peer),
    })
}

/// `USER@IP:PORT#N`, as `ls` shows a client.
fn client_label(app: &App, shown: &str, peer: SocketAddr) -> String {
    format!("{shown}@{peer}#{}", app.next_client_number())
}

/// The hint line: what others type to reach this topic. `viewer` is the
/// user the hint is for; `shared`: the topic has an access list, so even
/// its owner's own short name would not reach it for others.
pub fn hint(prefix: &str, topic: &TopicRef, verb: &str, viewer: &str, shared: bool) -> String {
    let name = match &topic.namespace {
        Namespace::Public => format!("-p {}", flag_safe(&topic.local)),
        Namespace::User(owner) if owner == viewer && !shared => flag_safe(&topic.local),
        Namespace::User(_) => topic.full.clone(),
    };
    format!("subscribe to this channel:\n  {prefix} {verb} {name}")
}

/// A name that would read as a flag needs `--` before it to be typed back.
fn flag_safe(name: &str) -> String {
    if name.starts_with('-') {
        format!("-- {name}")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(ns: Namespace, local: &str) -> TopicRef {
        let full = match &ns {
            Namespace::Public => format!("public/{local}"),
            Namespace::User(u) => format!("{u}/{local}"),
        };
        TopicRef {
            full,
            namespace: ns,
            local: local.into(),
        }
    }

    #[test]
    fn hints() {
        let p = "ssh -p 2222 localhost";
        let alice = Namespace::User("alice".into());
        let table = [
            (topic(Namespace::Public, "t"), "alice", false, "-p t"),
            (topic(Namespace::Public, "-x"), "alice", false, "-p -- -x"),
            (topic(alice.clone(), "t"), "alice", false, "t"),
            (topic(alice.clone(), "-t"), "alice", false, "-- -t"),
            (topic(alice.clone(), "t"), "alice", true, "alice/t"),
            (topic(alice, "t"), "bob", false, "alice/t"),
        ];
        for (t, viewer, shared, want) in table {
            assert_eq!(
                hint(p, &t, "sub", viewer, shared),
                format!("subscribe to this channel:\n  {p} sub {want}")
            );
        }
    }
}
