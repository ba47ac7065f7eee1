//! Names in NATS: KV keys for views and nodes, and the subjects a node
//! listens on. KV keys may only hold `[-/_=.a-zA-Z0-9]` and become subject
//! tokens, so a topic's name is escaped into one token (`=XX` per other
//! byte, `/` included) and never needs decoding: the view carries the name.

use std::fmt::Write as _;

/// Live data and round-robin lines to a node's receivers.
pub fn data_subject(node: &str) -> String {
    format!("sp.d.{node}")
}

/// Credits and resend requests back to a sending node.
pub fn credit_subject(node: &str) -> String {
    format!("sp.c.{node}")
}

/// Requests for a node's queued messages (`lending`).
pub fn lend_subject(node: &str) -> String {
    format!("sp.q.{node}")
}

/// One subject token for any topic name.
pub fn token(topic: &str) -> String {
    let mut out = String::with_capacity(topic.len());
    for b in topic.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "={b:02X}");
        }
    }
    if out.is_empty() {
        out.push('=');
    }
    out
}

/// A view's key: topic, node, and the topic's life there.
pub fn view_key(topic: &str, node: &str, epoch: u64) -> String {
    format!("{}.{node}.{epoch:016x}", token(topic))
}

/// (node, epoch) of a view's key; `None` for a key we did not write.
pub fn parse_view_key(key: &str) -> Option<(&str, u64)> {
    let mut parts = key.rsplitn(3, '.');
    let epoch = u64::from_str_radix(parts.next()?, 16).ok()?;
    let node = parts.next()?;
    let _topic = parts.next()?;
    is_node_id(node).then_some((node, epoch))
}

/// Node ids are short, lower-case and alphanumeric: safe in any subject.
pub fn is_node_id(node: &str) -> bool {
    !node.is_empty() && node.len() <= 32 && node.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A fresh node id for this process.
pub fn new_node_id() -> String {
    let n: u64 = rand::random();
    format!("{n:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_single_and_safe() {
        let table = [
            ("alice/logs", "alice=2Flogs"),
            ("public/a.b", "public=2Fa=2Eb"),
            ("u/x*y>", "u=2Fx=2Ay=3E"),
            ("u/é", "u=2F=C3=A9"),
            ("u/a=b", "u=2Fa=3Db"),
            ("", "="),
        ];
        for (topic, want) in table {
            assert_eq!(token(topic), want, "{topic}");
        }
    }

    #[test]
    fn distinct_topics_get_distinct_tokens() {
        let names = ["a/b", "a=2Fb", "a.b", "a/=", "a//b", "a/ b"];
        let tokens: std::collections::HashSet<_> = names.iter().map(|n| token(n)).collect();
        assert_eq!(tokens.len(), names.len());
    }

    #[test]
    fn view_keys_round_trip() {
        let key = view_key("alice/logs.x", "0123abcd", 0x1f);
        assert_eq!(key, "alice=2Flogs=2Ex.0123abcd.000000000000001f");
        assert_eq!(parse_view_key(&key), Some(("0123abcd", 0x1f)));
        assert_eq!(parse_view_key("nonsense"), None);
        assert_eq!(parse_view_key("t.no-de.00"), None);
        assert!(is_node_id(&new_node_id()));
    }

    proptest::proptest! {
        #[test]
        fn any_topic_makes_a_valid_kv_key(topic in ".{0,64}") {
            let key = view_key(&topic, "n1", 7);
            proptest::prop_assert!(key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=.".contains(&b)));
            proptest::prop_assert_eq!(key.split('.').count(), 3);
            proptest::prop_assert_eq!(parse_view_key(&key), Some(("n1", 7)));
        }
    }
}
