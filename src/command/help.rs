//! The texts printed by `help` and by `pub -h` / `sub --help` / `help pipe`.
//!
//! Both are built from the flag table, so a flag added there shows up here
//! with its synopsis, help line and default.

use super::CommandKind;
use super::flag_table::FLAGS;

use CommandKind::{Pipe as PIPE, Pub as PUB, Sub as SUB};

/// Width of the flag synopsis column in help and usage texts.
const SYNOPSIS_WIDTH: usize = 20;

/// The full help, printed by `help` and by a session without a command. It
/// does not depend on configuration: the server's address is written `HOST`.
pub fn help_text() -> String {
    let mut s = String::new();
    s.push_str(
        "sshpipe: networked Unix pipes over SSH\n\
         \n\
         usage: ssh [-p PORT] HOST COMMAND [TOPIC] [flags]\n\
         \n\
         commands:\n  \
           help                  print this help\n  \
           whoami                print your user name, key fingerprint and admin status\n  \
           ls                    list the topics you can see\n  \
           pub [TOPIC] [flags]   send stdin to the topic's receivers (no TOPIC: a random one)\n  \
           sub TOPIC [flags]     copy the topic's data to stdout\n  \
           pipe [TOPIC] [flags]  both: send stdin, receive others' data on stdout\n  \
           logs [--all]          your server log lines, live, as JSON (admins: --all)\n  \
           token create|ls|rm    HTTP access tokens (token help for more)\n  \
           access TOPIC [LIST|--clear]  show, set or clear a topic's access list\n  \
           monitor TOPIC DUR     unhealthy when DUR passes with no pub on TOPIC (-d, --delete)\n  \
           status                your monitors' health\n  \
           uptime TOPIC          share of time healthy [--from TIME|DUR] [--to TIME|DUR]\n  \
           rss                   your monitors' changes as an RSS 2.0 feed\n\
         \n\
         flags:\n",
    );
    // `logs --all` is in the command list above; this table is pub/sub/pipe.
    let topic_flags = FLAGS
        .iter()
        .filter(|f| [PUB, SUB, PIPE].iter().any(|k| f.kinds.contains(k)));
    for f in topic_flags {
        let mark = |k: CommandKind| {
            if f.kinds.contains(&k) { k.as_str() } else { "" }
        };
        s.push_str(&format!(
            "  {:<w$} {:<3} {:<3} {:<4}  {}\n",
            f.synopsis(),
            mark(PUB),
            mark(SUB),
            mark(PIPE),
            f.help,
            w = SYNOPSIS_WIDTH,
        ));
    }
    s.push_str(&format!(
        "  {:<w$} pub sub pipe  print that command's usage\n",
        "-h, --help",
        w = SYNOPSIS_WIDTH
    ));
    s.push_str(
        "\n\
         Flags go before or after TOPIC; -- ends flags. Boolean flags take a value\n\
         only with '=' (-b=false). Defaults: -b true, -t 720h0m0s, -d multicast.\n\
         \n\
         examples:\n  \
           echo hi | ssh -p 2222 HOST pub hello\n  \
           ssh -p 2222 HOST sub hello\n  \
           tail -f app.log | ssh -p 2222 HOST pub logs -b=false -a bob,carol\n  \
           ssh -p 2222 HOST logs | jq .msg\n",
    );
    s
}

/// One command's usage line and its flags with defaults, printed after a
/// usage error and for `-h`/`--help`.
pub fn usage_text(kind: CommandKind) -> String {
    let (synopsis, what) = match kind {
        CommandKind::Pub => (
            "pub [TOPIC] [flags]",
            "Send stdin to the topic's receivers. Without TOPIC, a random one is made.",
        ),
        CommandKind::Sub => ("sub TOPIC [flags]", "Copy the topic's data to stdout."),
        CommandKind::Pipe => (
            "pipe [TOPIC] [flags]",
            "Send stdin to the topic and receive others' data on stdout.",
        ),
        CommandKind::Access => (
            "access TOPIC [LIST | --clear] [flags]",
            "Print the topic's access list (access: none when it has none), set it to\n\
             LIST (comma-separated users or SHA256: keys), or remove it with --clear.\n\
             Only the topic's owner may; clients no longer allowed are cut off at once.",
        ),
        CommandKind::Logs => (
            "logs [flags]",
            "Stream the server's log lines about you (your sessions, refusals of your\n\
             keys), live, one JSON object per line, until you leave. Lines you read\n\
             too slowly for are skipped and counted on stderr: skipped N lines.",
        ),
        CommandKind::Monitor => (
            "monitor TOPIC DURATION [flags] | monitor TOPIC -d",
            "Watch TOPIC: a pub or pipe on it that ends well is a ping. Unhealthy once\n\
             DURATION (1s to 8784h) passes without one; each change is published as a\n\
             JSON line to your topic monitor-alerts (queued if nobody listens):\n\
             ssh HOST sub -k monitor-alerts. See also: status, uptime, rss.",
        ),
        CommandKind::Uptime => (
            "uptime TOPIC [flags]",
            "The share of a range (default the last 24h) the topic's monitor was\n\
             healthy, from its recorded changes. TIME: 2026-01-02T15:04:05Z; DUR: ago.",
        ),
    };
    let mut s = format!("usage: {synopsis}\n{what}\n\nflags:\n");
    for f in FLAGS.iter().filter(|f| f.kinds.contains(&kind)) {
        s.push_str(&format!(
            "  {:<w$} {} (default {})\n",
            f.synopsis(),
            f.help,
            f.default,
            w = SYNOPSIS_WIDTH,
        ));
    }
    s.push_str(&format!(
        "  {:<w$} print this usage\n",
        "-h, --help",
        w = SYNOPSIS_WIDTH
    ));
    s.push_str(match kind {
        CommandKind::Logs => "\nBoolean flags take a value only with '=' (--all=false).\n",
        _ => {
            "\nFlags go before or after TOPIC; -- ends flags. Boolean flags take a value\n\
             only with '=' (-x=false).\n"
        }
    });
    s
}
