//! Topic names, namespaces, patterns and the access decision — pure functions.
//!
//! Why this module exists on its own: every security property of sshpipe's topics comes down
//! to two questions, and both are answered here, in one place, without I/O so they can be
//! table- and property-tested:
//!
//! 1. *Which topic does a typed name mean?* ([`Resolver::resolve`]) Every topic has exactly
//!    one full name `NAMESPACE/LOCAL`, where the namespace is a user (listed or `fp-…`
//!    anonymous) or `public`. The namespace segment is always a literal — never a pattern —
//!    so a `sub` pattern can never reach across namespaces, and two different typed names
//!    that mean the same topic resolve to the same full name, so an access list can't be
//!    dodged by spelling.
//! 2. *May this client use it?* ([`may_use`], [`may_set_access`]) A private topic is open to
//!    its namespace owner, admins and whoever the owner listed — nobody else. There is no
//!    loophole: whatever name an unlisted user types, it either lands in their own namespace,
//!    in `public/`, or in somebody else's namespace where `may_use` says no (`access denied`,
//!    never a silent move to another topic). Only admins may type a full name (`/alice/logs`).
//!
//! Names are validated strictly (SPEC §7): printable, no whitespace, no empty, `.` or `..`
//! segments, at most 256 bytes — so names are unambiguous on a terminal, in `ls`, in URLs
//! and as store keys. `*` and `?` are pattern characters, only accepted where a pattern is.

use crate::identity::{is_anonymous_name, valid_user_name};

mod access;
#[cfg(test)]
mod tests;

pub use access::{AccessList, Who, may_set_access, may_use, parse_access};

/// Longest topic name as typed, in bytes.
pub const MAX_TOPIC_LEN: usize = 256;
/// Longest full name: a typed name plus the longest namespace prefix (32-byte user name + '/').
pub const MAX_FULL_LEN: usize = MAX_TOPIC_LEN + 33;
/// The shared namespace.
pub const PUBLIC: &str = "public";

/// An invalid topic name. Display is one line starting `invalid topic name: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("invalid topic name: \"\": a name must not be empty")]
    Empty,
    #[error("invalid topic name: {}: {len} bytes is too long (max {max})", Shown(.name))]
    TooLong {
        name: String,
        len: usize,
        max: usize,
    },
    #[error("invalid topic name: {}: {ch:?} is not allowed (only printable, non-space characters)", Shown(.name))]
    BadChar { name: String, ch: char },
    #[error("invalid topic name: {}: empty segment", Shown(.name))]
    EmptySegment { name: String },
    #[error("invalid topic name: {}: {segment:?} segment is not allowed", Shown(.name))]
    DotSegment { name: String, segment: String },
    #[error("invalid topic name: {}: {ch:?} is only allowed in sub patterns", Shown(.name))]
    PatternChar { name: String, ch: char },
    #[error("invalid topic name: {}: a leading '/' is for admins", Shown(.name))]
    AdminOnly { name: String },
    #[error("invalid topic name: {}: a full name needs a namespace and a topic, like /alice/logs", Shown(.name))]
    NoNamespace { name: String },
    #[error("invalid topic name: {}: {namespace:?} is not a user or the public namespace", Shown(.name))]
    BadNamespace { name: String, namespace: String },
    #[error("invalid topic name: {}: -p only goes with a full name under /public/", Shown(.name))]
    PublicConflict { name: String },
}

/// Shows a (possibly hostile) name quoted and escaped, cut to a sane length.
struct Shown<'a>(&'a str);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MAX_CHARS: usize = 64;
        match self.0.char_indices().nth(MAX_CHARS) {
            Some((cut, _)) => write!(f, "{:?}", format!("{}...", &self.0[..cut])),
            None => write!(f, "{:?}", self.0),
        }
    }
}

/// Characters that print nothing or reorder text: a name containing them would look like
/// another name on screen.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}'
        | '\u{FFA0}' | '\u{FFF9}'..='\u{FFFB}' | '\u{E0000}'..='\u{E0FFF}')
}

fn check(name: &str, allow_pattern: bool) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong {
            name: name.to_string(),
            len: name.len(),
            max: MAX_TOPIC_LEN,
        });
    }
    for ch in name.chars() {
        if ch.is_control() || ch.is_whitespace() || is_invisible(ch) {
            return Err(TopicError::BadChar {
                name: name.to_string(),
                ch,
            });
        }
        if !allow_pattern && (ch == '*' || ch == '?') {
            return Err(TopicError::PatternChar {
                name: name.to_string(),
                ch,
            });
        }
    }
    for segment in name.split('/') {
        if segment.is_empty() {
            return Err(TopicError::EmptySegment {
                name: name.to_string(),
            });
        }
        if segment == "." || segment == ".." {
            return Err(TopicError::DotSegment {
                name: name.to_string(),
                segment: segment.to_string(),
            });
        }
    }
    Ok(())
}

/// Validate a concrete topic name (SPEC §7): 1–256 bytes of printable non-space UTF-8,
/// `/`-separated segments, none empty, `.` or `..`; no pattern characters `*` `?`.
pub fn validate(name: &str) -> Result<(), TopicError> {
    check(name, false)
}

/// As [`validate`], but `*` and `?` are allowed (a `sub` pattern).
pub fn validate_pattern(name: &str) -> Result<(), TopicError> {
    check(name, true)
}

/// Does the name contain a pattern character (`*` or `?`)?
pub fn is_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

/// Glob match: `*` matches any run of characters except `/`, `?` one character except `/`,
/// everything else itself. Neither wildcard crosses a `/`, so pattern and name must have the
/// same number of segments and each segment is matched on its own.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if pattern.matches('/').count() != name.matches('/').count() {
        return false;
    }
    pattern
        .split('/')
        .zip(name.split('/'))
        .all(|(p, n)| segment_matches(p, n))
}

/// Classic linear-backtracking wildcard match on one segment (no `/` inside).
fn segment_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    // Position of the last '*' seen, and the name position it is currently matched up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    // Let the last '*' swallow one more character and retry.
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Who owns a topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A user's private namespace (a listed user name or an `fp-…` anonymous name).
    User(String),
    /// The shared `public/` namespace.
    Public,
}

impl Namespace {
    /// The first segment of full names in this namespace.
    pub fn as_str(&self) -> &str {
        match self {
            Namespace::User(name) => name,
            Namespace::Public => PUBLIC,
        }
    }

    /// The owning user, `None` for `public`.
    pub fn owner(&self) -> Option<&str> {
        match self {
            Namespace::User(name) => Some(name),
            Namespace::Public => None,
        }
    }
}

/// A topic name resolved to its one true full name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRef {
    /// `"alice/logs"` or `"public/logs"`.
    pub full: String,
    /// Owner namespace.
    pub namespace: Namespace,
    /// Name inside the namespace: `"logs"`.
    pub local: String,
}

impl TopicRef {
    fn new(namespace: Namespace, local: &str) -> TopicRef {
        TopicRef {
            full: format!("{}/{}", namespace.as_str(), local),
            namespace,
            local: local.to_string(),
        }
    }

    pub fn is_public(&self) -> bool {
        self.namespace == Namespace::Public
    }

    pub fn is_pattern(&self) -> bool {
        is_pattern(&self.local)
    }
}

/// Resolves typed names for one client.
pub struct Resolver<'a> {
    /// The client's user name (listed or `fp-…`).
    pub user: &'a str,
    pub admin: bool,
    /// Is this a user of the users file?
    pub is_user: &'a dyn Fn(&str) -> bool,
}

impl Resolver<'_> {
    /// Resolve a typed topic name (SPEC §6) to its full name.
    ///
    /// - `public` (`-p`): the `public/` namespace; a typed `public/` prefix is dropped.
    /// - a leading `/`: admins only, the rest is the full name `/NAMESPACE/TOPIC`.
    /// - `public/x`: same as `-p x`.
    /// - `USER/x` where `USER` is a listed user or an `fp-…` name: that user's namespace
    ///   (your own name included).
    /// - anything else: your own namespace, the whole typed name is the local name.
    pub fn resolve(
        &self,
        typed: &str,
        public: bool,
        allow_pattern: bool,
    ) -> Result<TopicRef, TopicError> {
        if let Some(rest) = typed.strip_prefix('/') {
            if !self.admin {
                return Err(TopicError::AdminOnly {
                    name: typed.to_string(),
                });
            }
            check(rest, allow_pattern)?;
            return self.resolve_full(typed, rest, public);
        }
        check(typed, allow_pattern)?;
        let topic = match typed.split_once('/') {
            _ if public => {
                let local = typed.strip_prefix("public/").unwrap_or(typed);
                TopicRef::new(Namespace::Public, local)
            }
            Some((PUBLIC, local)) => TopicRef::new(Namespace::Public, local),
            Some((first, local)) if self.is_namespace(first) => {
                TopicRef::new(Namespace::User(first.to_string()), local)
            }
            _ => TopicRef::new(Namespace::User(self.user.to_string()), typed),
        };
        if topic.full.len() > MAX_FULL_LEN {
            return Err(TopicError::TooLong {
                name: topic.full,
                len: typed.len(),
                max: MAX_TOPIC_LEN,
            });
        }
        Ok(topic)
    }

    /// Is `first` (the first segment of a typed name) somebody's namespace? Never a pattern.
    fn is_namespace(&self, first: &str) -> bool {
        !is_pattern(first)
            && (first == self.user
                || is_anonymous_name(first)
                || (valid_user_name(first) && (self.is_user)(first)))
    }

    /// Admin full name: `rest` is `typed` without its leading '/', already checked.
    fn resolve_full(&self, typed: &str, rest: &str, public: bool) -> Result<TopicRef, TopicError> {
        let Some((first, local)) = rest.split_once('/') else {
            return Err(TopicError::NoNamespace {
                name: typed.to_string(),
            });
        };
        let namespace = if first == PUBLIC {
            Namespace::Public
        } else if !is_pattern(first) && (valid_user_name(first) || is_anonymous_name(first)) {
            Namespace::User(first.to_string())
        } else {
            return Err(TopicError::BadNamespace {
                name: typed.to_string(),
                namespace: first.to_string(),
            });
        };
        if public && namespace != Namespace::Public {
            return Err(TopicError::PublicConflict {
                name: typed.to_string(),
            });
        }
        Ok(TopicRef::new(namespace, local))
    }
}
