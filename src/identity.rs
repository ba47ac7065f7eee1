//! Who a connecting key is: user names, fingerprints, anonymous names and the users file.
//!
//! Everything here is pure (no I/O) so that the rules deciding *who you are* — and therefore
//! whose topics you can reach — can be tested exhaustively without a server.
//!
//! Why the naming rules look the way they do:
//!
//! - A user name is the first segment of that user's private topics (`alice/logs`), so names
//!   are restricted to `[a-z0-9][a-z0-9_-]{0,31}`: no `/`, no pattern characters, no dots,
//!   nothing that could make one name a prefix trick for another namespace.
//! - `public` is reserved because `public/` is the shared namespace; a user called `public`
//!   would own everybody's public topics.
//! - Names starting `fp-` are reserved for *anonymous key users* (open mode): their name is
//!   derived from the key's SHA256 fingerprint. If a listed user could be called `fp-…`, they
//!   could pick the name of somebody's anonymous key and take over that key's namespace.
//!   Because the two sets are disjoint, a namespace has exactly one possible owner.
//! - Fingerprints are produced exactly as `ssh-keygen -lf` prints them (`SHA256:` + unpadded
//!   base64), so people can paste them into access lists.
//! - A key listed twice in the users file is an error rather than "first one wins": silently
//!   picking one of two users for the same key would hand one user's topics to the other.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use russh::keys::{HashAlg, PublicKey};
use serde::Deserialize;

pub mod cert;
pub mod keys;
#[cfg(test)]
mod tests;

/// Longest user name, in bytes.
pub const MAX_USER_NAME_LEN: usize = 32;
/// Prefix of anonymous key users' names.
pub const ANONYMOUS_PREFIX: &str = "fp-";
/// Number of fingerprint characters in an anonymous name.
pub const ANONYMOUS_FP_CHARS: usize = 16;

/// `[a-z0-9][a-z0-9_-]{0,31}`, not `public`, not starting `fp-`.
pub fn valid_user_name(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    b.len() <= MAX_USER_NAME_LEN
        && (first.is_ascii_lowercase() || first.is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
        && s != "public"
        && !s.starts_with(ANONYMOUS_PREFIX)
}

/// The key's SHA256 fingerprint exactly as `ssh-keygen -lf` prints it: `SHA256:` + unpadded base64.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// `fp-` + the first 16 characters of the fingerprint's base64 part, with `+` → `-` and
/// `/` → `_` (so the name is slash-free and usable as a topic namespace).
///
/// Accepts the fingerprint with or without its `SHA256:` prefix.
pub fn anonymous_name(fingerprint: &str) -> String {
    let b64 = fingerprint
        .split_once(':')
        .map_or(fingerprint, |(_, rest)| rest);
    let mut name = String::with_capacity(ANONYMOUS_PREFIX.len() + ANONYMOUS_FP_CHARS);
    name.push_str(ANONYMOUS_PREFIX);
    name.extend(
        b64.chars()
            .filter(|&c| c != '=')
            .take(ANONYMOUS_FP_CHARS)
            .map(|c| match c {
                '+' => '-',
                '/' => '_',
                c => c,
            }),
    );
    name
}

/// `fp-` followed by exactly 16 characters of `[A-Za-z0-9_-]`.
pub fn is_anonymous_name(s: &str) -> bool {
    s.strip_prefix(ANONYMOUS_PREFIX).is_some_and(|rest| {
        rest.len() == ANONYMOUS_FP_CHARS
            && rest
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
    })
}

/// Who may log in (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Any key may connect; unknown keys are anonymous `fp-…` users.
    Open,
    /// Only keys listed in the users file may connect.
    Users,
}

/// Who a session is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User name, or `fp-…` for an anonymous key user.
    pub name: String,
    /// `SHA256:…` fingerprint of the key that authenticated.
    pub fingerprint: String,
    pub admin: bool,
    /// True when the key is not in the users file.
    pub anonymous: bool,
}

impl Identity {
    /// The `whoami` output: `user: NAME\nfingerprint: SHA256:...\nadmin: yes|no\n`.
    pub fn whoami_text(&self) -> String {
        format!(
            "user: {}\nfingerprint: {}\nadmin: {}\n",
            self.name,
            self.fingerprint,
            if self.admin { "yes" } else { "no" }
        )
    }
}

/// The parsed users file: which key belongs to which user.
#[derive(Debug, Clone, Default)]
pub struct Users {
    /// fingerprint → (name, admin)
    by_fingerprint: HashMap<String, (String, bool)>,
    names: BTreeSet<String>,
    /// Listed users with `admin = true` (also those with no key, who can
    /// log in only with a certificate).
    admins: BTreeSet<String>,
}

/// A users-file problem. Every message is one line and names the line where it can.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsersError {
    /// TOML syntax error, unknown field, wrong type, …
    #[error("users file line {line}: {message}")]
    Syntax { line: usize, message: String },
    /// As `Syntax` when toml gives no position.
    #[error("users file: {message}")]
    Toml { message: String },
    #[error(
        "users file: invalid user name {name:?} (line {line}): names are 1-32 of a-z 0-9 _ -, starting with a letter or digit"
    )]
    InvalidName { name: String, line: usize },
    #[error("users file: user name {name:?} is reserved (line {line}): {why}")]
    ReservedName {
        name: String,
        line: usize,
        why: &'static str,
    },
    #[error("users file: user {user:?}: bad key {key:?}: {reason} (line {line})")]
    BadKey {
        user: String,
        key: String,
        reason: String,
        line: usize,
    },
    #[error(
        "users file: key {fingerprint} is listed twice (users {first} and {second}, lines {first_line} and {second_line})"
    )]
    DuplicateKey {
        fingerprint: String,
        first: String,
        second: String,
        first_line: usize,
        second_line: usize,
    },
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a users file with [users.NAME] tables"
)]
struct FileDe {
    #[serde(default)]
    users: BTreeMap<toml::Spanned<String>, UserDe>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a user table like [users.NAME] with keys = [...] and optional admin = true|false"
)]
struct UserDe {
    keys: Vec<toml::Spanned<String>>,
    #[serde(default)]
    admin: bool,
}

/// 1-based line number of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Shorten a user-supplied string for an error message.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push_str("...");
        out
    }
}

/// Make a message one line. Key parse errors can quote decoded key bytes,
/// so `\r` also breaks lines and other control characters are replaced.
fn one_line(s: &str) -> String {
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(|c: char| c.is_control(), "\u{FFFD}")
}

impl Users {
    /// Parse the users file (SPEC §3):
    ///
    /// ```toml
    /// [users.alice]
    /// keys = ["ssh-ed25519 AAAA... alice@laptop"]
    /// admin = false   # optional
    /// ```
    pub fn parse(toml_text: &str) -> Result<Users, UsersError> {
        let file: FileDe = toml::from_str(toml_text).map_err(|e| {
            let message = one_line(e.message());
            match e.span() {
                Some(span) => UsersError::Syntax {
                    line: line_of(toml_text, span.start),
                    message,
                },
                None => UsersError::Toml { message },
            }
        })?;

        // (fingerprint, line, name, admin), collected then checked in file order so the
        // duplicate message names the earlier user first.
        let mut entries: Vec<(String, usize, String, bool)> = Vec::new();
        let mut names = BTreeSet::new();
        let mut admins = BTreeSet::new();
        for (name, user) in &file.users {
            let line = line_of(toml_text, name.span().start);
            let name = name.get_ref();
            check_name(name, line)?;
            names.insert(name.clone());
            if user.admin {
                admins.insert(name.clone());
            }
            for key in &user.keys {
                let key_line = line_of(toml_text, key.span().start);
                let text = key.get_ref().trim();
                let parsed = PublicKey::from_openssh(text).map_err(|e| UsersError::BadKey {
                    user: name.clone(),
                    key: shorten(text),
                    reason: one_line(&e.to_string()),
                    line: key_line,
                })?;
                // A listed key that could never log in is a mistake to show now.
                keys::check_key(parsed.key_data()).map_err(|e| UsersError::BadKey {
                    user: name.clone(),
                    key: shorten(text),
                    reason: e.to_string(),
                    line: key_line,
                })?;
                entries.push((fingerprint(&parsed), key_line, name.clone(), user.admin));
            }
        }
        entries.sort_by_key(|e| e.1);

        let mut by_fingerprint: HashMap<String, (String, bool)> = HashMap::new();
        let mut lines: HashMap<String, usize> = HashMap::new();
        for (fp, line, name, admin) in entries {
            if let Some((first, _)) = by_fingerprint.get(&fp) {
                return Err(UsersError::DuplicateKey {
                    first: first.clone(),
                    second: name,
                    first_line: lines.get(&fp).copied().unwrap_or(0),
                    second_line: line,
                    fingerprint: fp,
                });
            }
            lines.insert(fp.clone(), line);
            by_fingerprint.insert(fp, (name, admin));
        }
        Ok(Users {
            by_fingerprint,
            names,
            admins,
        })
    }

    /// The listed user a key fingerprint belongs to: `(name, admin)`.
    pub fn lookup(&self, fingerprint: &str) -> Option<(&str, bool)> {
        self.by_fingerprint
            .get(fingerprint)
            .map(|(name, admin)| (name.as_str(), *admin))
    }

    /// Is `name` a user of the users file?
    pub fn is_user(&self, name: &str) -> bool {
        self.names.contains(name)
    }

    /// Is `name` a listed user with `admin = true`?
    pub fn is_admin(&self, name: &str) -> bool {
        self.admins.contains(name)
    }

    /// Listed user names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    /// Number of listed users.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

fn check_name(name: &str, line: usize) -> Result<(), UsersError> {
    if name == "public" {
        return Err(UsersError::ReservedName {
            name: name.to_string(),
            line,
            why: "public/ is the shared namespace",
        });
    }
    if name.starts_with(ANONYMOUS_PREFIX) {
        return Err(UsersError::ReservedName {
            name: name.to_string(),
            line,
            why: "names starting fp- are for anonymous keys",
        });
    }
    if !valid_user_name(name) {
        return Err(UsersError::InvalidName {
            name: shorten(name),
            line,
        });
    }
    Ok(())
}

/// Identity for a key listed in the users file; `None` for an unlisted key (the caller then
/// decides, by auth mode, whether [`anonymous`] applies).
pub fn identify(users: &Users, fingerprint: &str) -> Option<Identity> {
    users.lookup(fingerprint).map(|(name, admin)| Identity {
        name: name.to_string(),
        fingerprint: fingerprint.to_string(),
        admin,
        anonymous: false,
    })
}

/// Identity of an unlisted key in `open` mode: named after its fingerprint, never admin.
pub fn anonymous(fingerprint: &str) -> Identity {
    Identity {
        name: anonymous_name(fingerprint),
        fingerprint: fingerprint.to_string(),
        admin: false,
        anonymous: true,
    }
}

/// Identity of a certificate (SPEC §3) naming `name`: a listed user keeps
/// that user's admin flag; the fingerprint is the certified key's.
pub fn certified(users: &Users, name: &str, fingerprint: &str) -> Identity {
    Identity {
        name: name.to_string(),
        fingerprint: fingerprint.to_string(),
        admin: users.is_admin(name),
        anonymous: false,
    }
}
