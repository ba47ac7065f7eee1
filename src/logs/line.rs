//! One event as one line of JSON, for `logs | jq`.
//!
//! The keys users filter on come first and are always there (`null` when
//! the event has none), so `jq 'select(.cmd == "sub t")'` needs no guards:
//! `time`, `level`, `msg`, `user`, `peer`, `cmd`, `topic`. The event's
//! other fields follow in the order they were recorded. `level` is spelled
//! as in the server's own `--log-format json` lines (`INFO`), so one filter
//! fits both.

use crate::civil::civil_from_days;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The keys every line has, in this order; `message` is written `msg`.
pub const FIRST_KEYS: [&str; 4] = ["user", "peer", "cmd", "topic"];

/// The fields of an event (and of its spans), in the order recorded.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(&'static str, Value)>);

impl Fields {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// Sets `key`, replacing an earlier value (a span's `record`).
    pub fn set(&mut self, key: &'static str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.0.push((key, value)),
        }
    }

    /// Adds what `outer` has and `self` lacks: an event's own fields win
    /// over its span's, an inner span's over an outer one's.
    pub fn inherit(&mut self, outer: &Fields) {
        for (k, v) in &outer.0 {
            if self.get(k).is_none() {
                self.0.push((k, v.clone()));
            }
        }
    }
}

/// The JSON line (ending with `\n`) of an event at `level` with `fields`.
pub fn render(time: SystemTime, level: &tracing::Level, fields: &Fields) -> Arc<str> {
    let mut out = String::with_capacity(160);
    out.push('{');
    push(&mut out, "time", &Value::String(rfc3339(time)));
    out.push(',');
    push(
        &mut out,
        "level",
        &Value::String(level.as_str().to_string()),
    );
    out.push(',');
    push(
        &mut out,
        "msg",
        fields.get("message").unwrap_or(&Value::Null),
    );
    for key in FIRST_KEYS {
        out.push(',');
        push(&mut out, key, fields.get(key).unwrap_or(&Value::Null));
    }
    for (key, value) in &fields.0 {
        if *key == "message" || FIRST_KEYS.contains(key) {
            continue;
        }
        out.push(',');
        push(&mut out, key, value);
    }
    out.push_str("}\n");
    Arc::from(out)
}

fn push(out: &mut String, key: &str, value: &Value) {
    // `Value`'s Display is its compact JSON; a key is a JSON string.
    let _ = write!(out, "{}:{value}", Value::String(key.to_string()));
}

/// `2025-01-02T03:04:05.678901Z`: UTC, microseconds, as tracing's own JSON
/// lines show it.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_rfc3339_utc() {
        let at = |s: u64, us: u64| UNIX_EPOCH + Duration::from_micros(s * 1_000_000 + us);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.000005Z");
        assert_eq!(
            rfc3339(at(1_735_787_045, 678_901)),
            "2025-01-02T03:04:05.678901Z"
        );
        assert_eq!(rfc3339(at(4_107_542_399, 0)), "2100-02-28T23:59:59.000000Z");
        assert_eq!(rfc3339(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn a_line_is_one_json_object_with_the_usual_keys_first() {
        let mut f = Fields::default();
        f.set("bytes_in", Value::from(42u64));
        f.set("message", Value::from("session end"));
        f.set("user", Value::from("alice"));
        f.set("note", Value::from("a \"quoted\"\nline"));
        let line = render(UNIX_EPOCH, &tracing::Level::INFO, &f);
        assert!(line.ends_with("}\n") && line.matches('\n').count() == 1);
        assert!(line.starts_with(
            "{\"time\":\"1970-01-01T00:00:00.000000Z\",\"level\":\"INFO\",\
             \"msg\":\"session end\",\"user\":\"alice\",\"peer\":null,\"cmd\":null,\
             \"topic\":null,\"bytes_in\":42,"
        ));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["note"], "a \"quoted\"\nline");
    }

    #[test]
    fn own_fields_win_over_inherited_ones() {
        let mut event = Fields::default();
        event.set("user", Value::from("alice"));
        let mut span = Fields::default();
        span.set("user", Value::from("bob"));
        span.set("peer", Value::from("127.0.0.1:1"));
        event.inherit(&span);
        assert_eq!(event.get_str("user"), Some("alice"));
        assert_eq!(event.get_str("peer"), Some("127.0.0.1:1"));
    }
}
