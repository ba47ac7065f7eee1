//! Query parameters, decoded by hand.
//!
//! Form decoding (`serde_urlencoded`, axum's `Query`) turns `+` into a space,
//! which would corrupt `SHA256:` fingerprints in `?access=` (their base64 has
//! `+` and `/`) and MIME types like `application/ld+json`. Here only `%XX`
//! escapes are decoded; `:+/=` reach the access list exactly as typed.

use std::time::Duration;

use super::error::HttpError;
use crate::command::{parse_bool, parse_duration, split_access};

/// `pub -t`'s default (SPEC §4.1).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(720 * 3600);

/// The decoded `key=value` pairs of a query string. Unknown keys are
/// ignored, so cache-busting parameters do no harm.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    pub fn parse(raw: Option<&str>) -> Result<Params, HttpError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(key)?, decode(value)?));
        }
        Ok(Params { pairs })
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean: absent is false, a bare `?key` is true, otherwise the
    /// values `-b=` accepts over SSH.
    pub fn flag(&self, key: &str) -> Result<bool, HttpError> {
        match self.get(key) {
            None => Ok(false),
            Some("") => Ok(true),
            Some(v) => parse_bool(v).ok_or_else(|| {
                HttpError::BadArgument(format!(
                    "invalid value for {key}: {v:?} (use true or false)"
                ))
            }),
        }
    }

    /// `?timeout=DUR` (Go duration syntax), default 720h.
    pub fn timeout(&self) -> Result<Duration, HttpError> {
        match self.get("timeout") {
            None => Ok(DEFAULT_TIMEOUT),
            Some(v) => parse_duration(v).map_err(|reason| {
                HttpError::BadArgument(format!("invalid value for timeout: {v:?}: {reason}"))
            }),
        }
    }

    /// `?access=LIST` as `-a LIST`, split the same way: `Some(empty)` (a
    /// bare `?access=`) clears. Checked by `front::prepare`.
    pub fn access(&self) -> Option<Vec<String>> {
        self.get("access").map(split_access)
    }
}

/// Percent-decoding without the form rule `+` → space.
fn decode(s: &str) -> Result<String, HttpError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            // Exactly two hex digits: `from_str_radix` alone would also take
            // a sign (`%+2` → 0x02), eating a literal `+`.
            .filter(|hex| hex.iter().all(u8::is_ascii_hexdigit))
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| HttpError::BadArgument(format!("query parameter is not UTF-8: {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plus_colon_slash_equals() {
        let p = Params::parse(Some("access=bob,SHA256:a+b/c=&mime=application/ld%2Bjson"))
            .unwrap_or_default();
        assert_eq!(p.get("access"), Some("bob,SHA256:a+b/c="));
        assert_eq!(p.get("mime"), Some("application/ld+json"));
    }

    #[test]
    fn flags() {
        let p = Params::parse(Some("a&b=true&c=0&d=yes&e=T&f=F")).unwrap_or_default();
        assert!(matches!(p.flag("e"), Ok(true)));
        assert!(matches!(p.flag("f"), Ok(false)));
        assert!(matches!(p.flag("a"), Ok(true)));
        assert!(matches!(p.flag("b"), Ok(true)));
        assert!(matches!(p.flag("c"), Ok(false)));
        assert!(matches!(p.flag("zz"), Ok(false)));
        assert!(p.flag("d").is_err());
    }

    #[test]
    fn bad_escape_is_kept_and_bad_utf8_refused() {
        let p = Params::parse(Some("x=100%&y=%zz")).unwrap_or_default();
        assert_eq!(p.get("x"), Some("100%"));
        assert_eq!(p.get("y"), Some("%zz"));
        assert!(Params::parse(Some("x=%ff")).is_err());
    }

    /// Found by fuzz/ (http_query): `%+2` decoded as byte 0x02 because
    /// `u8::from_str_radix` accepts a sign, eating a literal `+`.
    #[test]
    fn an_escape_is_exactly_two_hex_digits() {
        let p = Params::parse(Some("a=%+2b&b=%-1&%+2=x&c=%2b%2B")).unwrap_or_default();
        assert_eq!(p.get("a"), Some("%+2b"));
        assert_eq!(p.get("b"), Some("%-1"));
        assert_eq!(p.get("%+2"), Some("x"));
        assert_eq!(p.get("c"), Some("++"));
    }
}
