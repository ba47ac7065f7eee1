//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! `# HELP` and `# TYPE` once per family, then one `name{labels} value`
//! line per series. Small enough that a client library would cost more
//! than it saves.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::broker::stats::BrokerStats;

/// The `Content-Type` of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Everything one scrape shows.
pub struct Page<'a> {
    pub ssh_connections: i64,
    pub http_connections: i64,
    pub sessions: &'a BTreeMap<(&'static str, &'static str), u64>,
    /// (in, out).
    pub bytes: (u64, u64),
    pub skipped_bytes: u64,
    pub stats: &'a BrokerStats,
    pub refused: &'a [(&'static str, u64)],
    pub store_errors: u64,
    pub log_lines_skipped: u64,
    /// Health monitors: (healthy, unhealthy).
    pub monitors: (usize, usize),
}

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

fn family<'a>(out: &'a mut String, name: &'static str, kind: &str, help: &str) -> Family<'a> {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// A label value: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(4096);
        let o = &mut s;
        family(
            o,
            "sshpipe_build_info",
            "gauge",
            "Always 1; the version of the server.",
        )
        .sample(&[("version", env!("CARGO_PKG_VERSION"))], 1);
        family(
            o,
            "sshpipe_connections",
            "gauge",
            "Open client connections.",
        )
        .sample(&[("transport", "ssh")], self.ssh_connections)
        .sample(&[("transport", "http")], self.http_connections);
        let mut f = family(
            o,
            "sshpipe_sessions_total",
            "counter",
            "SSH sessions ended, by command and exit status (gone: the client left first).",
        );
        for ((cmd, status), n) in self.sessions {
            f.sample(&[("cmd", cmd), ("status", status)], n);
        }
        family(
            o,
            "sshpipe_bytes_total",
            "counter",
            "Bytes of data from clients (in) and to clients (out): SSH as sessions end, HTTP as it moves.",
        )
        .sample(&[("direction", "in")], self.bytes.0)
        .sample(&[("direction", "out")], self.bytes.1);
        let st = self.stats;
        family(o, "sshpipe_topics", "gauge", "Live topics.").sample(&[], st.topics);
        family(
            o,
            "sshpipe_receivers",
            "gauge",
            "Receiving clients (subs and pipes).",
        )
        .sample(&[], st.receivers);
        family(
            o,
            "sshpipe_queued_messages",
            "gauge",
            "Queued messages waiting.",
        )
        .sample(&[], st.queued_messages);
        family(
            o,
            "sshpipe_queued_bytes",
            "gauge",
            "Bytes of queued messages waiting.",
        )
        .sample(&[], st.queued_bytes);
        family(
            o,
            "sshpipe_skipped_bytes_total",
            "counter",
            "Bytes lossy receivers (sub -l) skipped.",
        )
        .sample(&[], self.skipped_bytes);
        let mut f = family(
            o,
            "sshpipe_refused_total",
            "counter",
            "Clients turned away, by reason.",
        );
        for (reason, n) in self.refused {
            f.sample(&[("reason", reason)], n);
        }
        family(
            o,
            "sshpipe_store_errors_total",
            "counter",
            "Store operations that failed.",
        )
        .sample(&[], self.store_errors);
        family(
            o,
            "sshpipe_monitors",
            "gauge",
            "Health monitors, by health.",
        )
        .sample(&[("health", "healthy")], self.monitors.0)
        .sample(&[("health", "unhealthy")], self.monitors.1);
        family(
            o,
            "sshpipe_log_lines_skipped_total",
            "counter",
            "Lines `logs` readers were too slow for.",
        )
        .sample(&[], self.log_lines_skipped);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_type_and_samples() {
        let mut sessions = BTreeMap::new();
        sessions.insert(("pub", "0"), 3);
        let page = Page {
            ssh_connections: 2,
            http_connections: 0,
            sessions: &sessions,
            bytes: (10, 20),
            skipped_bytes: 0,
            stats: &BrokerStats::default(),
            refused: &[("key", 1)],
            store_errors: 0,
            log_lines_skipped: 0,
            monitors: (1, 2),
        };
        let text = page.render();
        assert!(text.contains(
            "# TYPE sshpipe_sessions_total counter\nsshpipe_sessions_total{cmd=\"pub\",status=\"0\"} 3\n"
        ));
        assert!(text.contains("sshpipe_connections{transport=\"ssh\"} 2\n"));
        assert!(text.contains("sshpipe_bytes_total{direction=\"out\"} 20\n"));
        assert!(text.contains("sshpipe_topics 0\n"));
        assert!(text.contains("sshpipe_monitors{health=\"unhealthy\"} 2\n"));
        assert!(text.ends_with('\n'));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("sshpipe_"), "{line}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
