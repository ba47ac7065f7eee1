//! What is kept of a token besides its hash, and the pure checks on it:
//! who it acts as, which topics it reaches, until when.

use serde::{Deserialize, Serialize};

use crate::topic::pattern_matches;

/// Longest token name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most scope patterns on one token.
pub const MAX_SCOPE_PATTERNS: usize = 16;

/// One token, as stored (JSON in the store) and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Short, not secret: what `token ls` shows and `token rm` takes.
    pub id: String,
    /// The user it acts as.
    pub user: String,
    /// The key that created it: an access list naming that `SHA256:` key
    /// lets the token in as it would the key.
    pub fingerprint: String,
    pub name: String,
    /// Full-name topic patterns (`alice/logs/*`); empty: every topic the
    /// user may use.
    pub scope: Vec<String>,
    /// GET, SSE and receiving on sockets only.
    pub read_only: bool,
    /// Unix milliseconds.
    pub created_ms: u64,
    /// Unix milliseconds; `None` never expires.
    pub expires_ms: Option<u64>,
}

impl TokenRecord {
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|e| now_ms >= e)
    }

    /// Does the scope allow the topic with this full name?
    pub fn allows(&self, full: &str) -> bool {
        self.scope.is_empty() || self.scope.iter().any(|p| pattern_matches(p, full))
    }

    /// `token ls`'s scope column.
    pub fn scope_text(&self) -> String {
        let topics = if self.scope.is_empty() {
            "all topics".to_string()
        } else {
            self.scope.join(",")
        };
        if self.read_only {
            format!("{topics} (read-only)")
        } else {
            topics
        }
    }
}

/// A valid token name: 1–64 printable ASCII characters, no spaces or commas
/// (it is shown inside `USER(token NAME)` client ids).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|c| c.is_ascii_graphic() && !matches!(c, b',' | b'(' | b')' | b'@' | b'#'))
}

/// Unix milliseconds as `2026-12-02T04:35:00Z` (UTC), for `token ls`.
pub fn format_time(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = crate::civil::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(scope: &[&str]) -> TokenRecord {
        TokenRecord {
            id: "abc".into(),
            user: "alice".into(),
            fingerprint: "SHA256:x".into(),
            name: "ci".into(),
            scope: scope.iter().map(|s| s.to_string()).collect(),
            read_only: false,
            created_ms: 0,
            expires_ms: Some(1000),
        }
    }

    #[test]
    fn scope_and_expiry() {
        let all = record(&[]);
        assert!(all.allows("alice/logs") && all.allows("public/x"));
        let some = record(&["alice/logs/*", "public/feed"]);
        let table = [
            ("alice/logs/a", true),
            ("alice/logs", false),
            ("public/feed", true),
            ("bob/logs/a", false),
        ];
        for (full, want) in table {
            assert_eq!(some.allows(full), want, "{full}");
        }
        assert!(!all.expired(999));
        assert!(all.expired(1000));
    }

    #[test]
    fn names_and_times() {
        assert!(valid_name("ci-deploy_1.0"));
        for bad in ["", "a b", "a,b", "x(y)", &"n".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_796_186_100_000), "2026-12-02T04:35:00Z");
        assert_eq!(format_time(951_782_400_000), "2000-02-29T00:00:00Z");
    }
}
