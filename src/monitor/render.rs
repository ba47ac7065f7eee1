//! What monitors look like to their owner: the `status` table, the alert
//! line published to `monitor-alerts`, and the RSS 2.0 feed of changes.
//! Pure functions of plain rows, so each format is pinned by a test.

use std::fmt::Write as _;
use std::time::Duration;

use super::time::{Millis, rfc822, rfc3339};
use crate::command::format_duration;

/// One monitor as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRow {
    /// The topic as its owner types it (`backup`, `public/cron`).
    pub name: String,
    pub healthy: bool,
    pub window_ms: Millis,
    pub last_ping: Option<Millis>,
    pub window_end: Option<Millis>,
    pub reason: String,
}

fn health_word(healthy: bool) -> &'static str {
    if healthy { "healthy" } else { "unhealthy" }
}

/// The `status` table (rows sorted by the caller), or `no monitors`.
pub fn status_table(rows: &[StatusRow]) -> String {
    if rows.is_empty() {
        return "no monitors\n".into();
    }
    let time = |t: Option<Millis>| t.map_or_else(|| "-".to_string(), rfc3339);
    let mut cells = vec![[
        "TOPIC".to_string(),
        "HEALTH".into(),
        "WINDOW".into(),
        "LAST PING".into(),
        "WINDOW END".into(),
        "REASON".into(),
    ]];
    for r in rows {
        cells.push([
            r.name.clone(),
            health_word(r.healthy).into(),
            format_duration(Duration::from_millis(r.window_ms)),
            time(r.last_ping),
            time(r.window_end),
            r.reason.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in &cells {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                let _ = write!(line, "{c:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The one JSON line published to `monitor-alerts` on a change.
pub fn alert_line(name: &str, healthy: bool, reason: &str, at: Millis) -> String {
    // Written field by field: SPEC §13's order, whatever serde_json's map does.
    let q = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"monitor\":{},\"health\":\"{}\",\"reason\":{},\"time\":\"{}\"}}\n",
        q(name),
        health_word(healthy),
        q(reason),
        rfc3339(at)
    )
}

/// One change in the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    pub name: String,
    pub healthy: bool,
    pub reason: String,
    pub at: Millis,
    /// Stable across renders and restarts: the same change keeps its id.
    pub guid: String,
}

/// The stable id of a change: owner, topic, when the monitor was made (a
/// monitor made again is a new one) and the change's sequence number.
pub fn guid(owner: &str, topic: &str, created: Millis, seq: u64) -> String {
    format!("sshpipe-monitor:{owner}:{topic}:{created}:{seq}")
}

/// An RSS 2.0 feed of `owner`'s changes (items newest first, as given).
pub fn rss(owner: &str, link: &str, items: &[FeedItem]) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\">\n<channel>\n",
    );
    let _ = writeln!(s, "<title>sshpipe monitors of {}</title>", xml(owner));
    let _ = writeln!(s, "<link>{}</link>", xml(link));
    let _ = writeln!(
        s,
        "<description>Health changes of {}'s monitors</description>",
        xml(owner)
    );
    for it in items {
        let word = health_word(it.healthy);
        s.push_str("<item>\n");
        let _ = writeln!(s, "<title>{}: {word}</title>", xml(&it.name));
        let _ = writeln!(s, "<description>{}</description>", xml(&it.reason));
        let _ = writeln!(s, "<pubDate>{}</pubDate>", rfc822(it.at));
        let _ = writeln!(s, "<guid isPermaLink=\"false\">{}</guid>", xml(&it.guid));
        s.push_str("</item>\n");
    }
    s.push_str("</channel>\n</rss>\n");
    s
}

/// Text as XML character data or attribute value.
fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_aligns_columns() {
        assert_eq!(status_table(&[]), "no monitors\n");
        let rows = [
            StatusRow {
                name: "backup".into(),
                healthy: true,
                window_ms: 86_400_000,
                last_ping: Some(0),
                window_end: Some(86_400_000),
                reason: "pinged at 1970-01-01T00:00:00Z".into(),
            },
            StatusRow {
                name: "public/cron".into(),
                healthy: false,
                window_ms: 1500,
                last_ping: None,
                window_end: None,
                reason: "no ping yet".into(),
            },
        ];
        assert_eq!(
            status_table(&rows),
            "TOPIC        HEALTH     WINDOW   LAST PING             WINDOW END            REASON\n\
             backup       healthy    24h0m0s  1970-01-01T00:00:00Z  1970-01-02T00:00:00Z  pinged at 1970-01-01T00:00:00Z\n\
             public/cron  unhealthy  1.5s     -                     -                     no ping yet\n"
        );
    }

    #[test]
    fn alert_lines_are_one_json_object() {
        let line = alert_line("a\"b", false, "no ping yet", 1_796_185_462_000);
        assert_eq!(
            line,
            "{\"monitor\":\"a\\\"b\",\"health\":\"unhealthy\",\"reason\":\"no ping yet\",\"time\":\"2026-12-02T04:24:22Z\"}\n"
        );
    }

    #[test]
    fn feeds_escape_and_keep_ids() {
        let items = [FeedItem {
            name: "<t>&".into(),
            healthy: true,
            reason: "pinged".into(),
            at: 0,
            guid: guid("alice", "alice/<t>&", 5, 2),
        }];
        let feed = rss("alice", "ssh://host", &items);
        assert!(
            feed.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\">")
        );
        assert!(feed.contains("<title>&lt;t&gt;&amp;: healthy</title>"));
        assert!(feed.contains("<pubDate>Thu, 01 Jan 1970 00:00:00 +0000</pubDate>"));
        assert!(feed.contains(
            "<guid isPermaLink=\"false\">sshpipe-monitor:alice:alice/&lt;t&gt;&amp;:5:2</guid>"
        ));
        assert!(feed.ends_with("</channel>\n</rss>\n"));
        assert_eq!(xml("a\u{1}b"), "a\u{fffd}b");
    }
}
