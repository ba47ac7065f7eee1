//! The words after `monitor` and `uptime` (SPEC §13): like `pub`'s, Go-flag
//! style with flags anywhere, but with their own positionals — `monitor`
//! takes a topic and a window, `uptime` a topic and a range.
//!
//! Reads the same flag table as every other command, through the same word
//! classifier, so `-p`, `--`, `=` values and `-h` behave the same.

use std::time::Duration;

use super::flag_table::Flag;
use super::flags::{Word, bool_value, classify, flag_spec, is_help_flag};
use super::{Command, CommandKind, MonitorArgs, TimeArg, UptimeArgs, UsageError, parse_duration};
use crate::monitor::time::parse_rfc3339;

/// Shortest monitor window: below it the timer would be busier than pings.
pub const MIN_WINDOW: Duration = Duration::from_secs(1);
/// Longest monitor window (a leap year).
pub const MAX_WINDOW: Duration = Duration::from_secs(366 * 24 * 3600);

/// One word after the command name, once flags are told apart.
enum Item {
    Positional(String),
    Bool(Flag, bool),
    Value(Flag, String, String),
}

/// Splits `args` into positionals and flags of `kind`.
fn walk(kind: CommandKind, args: &[String]) -> Result<Vec<Item>, UsageError> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut flags_done = false;
    while let Some(arg) = args.get(i) {
        i += 1;
        if flags_done {
            out.push(Item::Positional(arg.clone()));
            continue;
        }
        if arg == "--" {
            flags_done = true;
            continue;
        }
        let (typed, name, value) = match classify(arg) {
            Word::Positional => {
                out.push(Item::Positional(arg.clone()));
                continue;
            }
            Word::Malformed => {
                return Err(UsageError::BadFlagSyntax {
                    kind,
                    arg: arg.clone(),
                });
            }
            Word::Flag { typed, name, value } => (typed, name, value),
        };
        let spec = flag_spec(kind, name, typed)?;
        if spec.value.is_some() {
            let v = match value {
                Some(v) => v.to_string(),
                None => {
                    let next = args.get(i).ok_or_else(|| UsageError::MissingValue {
                        kind,
                        flag: typed.to_string(),
                    })?;
                    i += 1;
                    next.clone()
                }
            };
            out.push(Item::Value(spec.flag, typed.to_string(), v));
            continue;
        }
        let b = bool_value(kind, typed, value, args.get(i))?;
        out.push(Item::Bool(spec.flag, b));
    }
    Ok(out)
}

/// `monitor TOPIC DURATION [-p]`, `monitor TOPIC -d [-p]`.
pub(super) fn parse_monitor(args: &[String]) -> Result<Command, UsageError> {
    let kind = CommandKind::Monitor;
    if args
        .iter()
        .take_while(|a| a.as_str() != "--")
        .any(|a| is_help_flag(a))
    {
        return Ok(Command::Usage(kind));
    }
    let mut words = Vec::new();
    let (mut public, mut delete) = (false, false);
    for item in walk(kind, args)? {
        match item {
            Item::Positional(w) => words.push(w),
            Item::Bool(Flag::Public, b) => public = b,
            Item::Bool(Flag::Delete, b) => delete = b,
            Item::Bool(..) | Item::Value(..) => {}
        }
    }
    let mut words = words.into_iter();
    let topic = words.next().ok_or(UsageError::MissingTopic(kind))?;
    let window = words.next();
    if let Some(extra) = words.next() {
        return Err(UsageError::TooManyTopics { kind, extra });
    }
    let window = match (window, delete) {
        (Some(w), true) => return Err(UsageError::DeleteTakesNoWindow(w)),
        (None, true) => None,
        (None, false) => return Err(UsageError::MissingWindow),
        (Some(w), false) => Some(parse_window(&w)?),
    };
    Ok(Command::Monitor(MonitorArgs {
        topic,
        public,
        window,
    }))
}

fn parse_window(w: &str) -> Result<Duration, UsageError> {
    let bad = |reason: String| UsageError::BadWindow {
        value: w.to_string(),
        reason,
    };
    let d = parse_duration(w).map_err(bad)?;
    if d < MIN_WINDOW {
        return Err(bad("at least 1s".into()));
    }
    if d > MAX_WINDOW {
        return Err(bad("at most 8784h".into()));
    }
    Ok(d)
}

/// `uptime TOPIC [--from TIME|DURATION] [--to TIME|DURATION] [-p]`.
pub(super) fn parse_uptime(args: &[String]) -> Result<Command, UsageError> {
    let kind = CommandKind::Uptime;
    if args
        .iter()
        .take_while(|a| a.as_str() != "--")
        .any(|a| is_help_flag(a))
    {
        return Ok(Command::Usage(kind));
    }
    let mut out = UptimeArgs::default();
    for item in walk(kind, args)? {
        match item {
            Item::Positional(w) if out.topic.is_empty() => out.topic = w,
            Item::Positional(extra) => return Err(UsageError::TooManyTopics { kind, extra }),
            Item::Bool(Flag::Public, b) => out.public = b,
            Item::Value(Flag::From, typed, v) => out.from = Some(parse_time(&typed, &v)?),
            Item::Value(Flag::To, typed, v) => out.to = Some(parse_time(&typed, &v)?),
            Item::Bool(..) | Item::Value(..) => {}
        }
    }
    if out.topic.is_empty() {
        return Err(UsageError::MissingTopic(kind));
    }
    Ok(Command::Uptime(out))
}

/// A time (RFC 3339) or a duration before now.
fn parse_time(flag: &str, v: &str) -> Result<TimeArg, UsageError> {
    if let Ok(d) = parse_duration(v) {
        return Ok(TimeArg::Ago(d));
    }
    parse_rfc3339(v)
        .map(TimeArg::At)
        .map_err(|reason| UsageError::BadTime {
            flag: flag.to_string(),
            value: v.to_string(),
            reason: format!("{reason}, or a duration like 24h"),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::parse;
    use super::*;

    fn monitor(topic: &str, public: bool, window: Option<u64>) -> Command {
        Command::Monitor(MonitorArgs {
            topic: topic.into(),
            public,
            window: window.map(Duration::from_secs),
        })
    }

    #[test]
    fn monitor_words() {
        let table = [
            ("monitor t 24h", monitor("t", false, Some(86_400))),
            ("monitor -p t 1m30s", monitor("t", true, Some(90))),
            ("monitor t 2s --public", monitor("t", true, Some(2))),
            ("monitor t -d", monitor("t", false, None)),
            ("monitor -d -p t", monitor("t", true, None)),
            ("monitor --delete=true t", monitor("t", false, None)),
            ("monitor -- -t 1s", monitor("-t", false, Some(1))),
            ("monitor t 8784h", monitor("t", false, Some(8784 * 3600))),
            ("monitor -h", Command::Usage(CommandKind::Monitor)),
            ("help monitor", Command::Usage(CommandKind::Monitor)),
            ("status", Command::Status),
            ("rss", Command::Rss),
        ];
        for (exec, want) in table {
            assert_eq!(parse(exec), Ok(want), "{exec}");
        }
    }

    #[test]
    fn uptime_words() {
        let at = |s: &str| Some(TimeArg::At(parse_rfc3339(s).unwrap()));
        let table = [
            (
                "uptime t",
                UptimeArgs {
                    topic: "t".into(),
                    ..Default::default()
                },
            ),
            (
                "uptime --from 7d t",
                // `7d` is not a Go duration: a bad time (below).
                UptimeArgs::default(),
            ),
            (
                "uptime t --from 168h -p",
                UptimeArgs {
                    topic: "t".into(),
                    public: true,
                    from: Some(TimeArg::Ago(Duration::from_secs(168 * 3600))),
                    to: None,
                },
            ),
            (
                "uptime --from=2026-12-01T00:00:00Z --to 2026-12-02T00:00:00+01:00 t",
                UptimeArgs {
                    topic: "t".into(),
                    public: false,
                    from: at("2026-12-01T00:00:00Z"),
                    to: at("2026-12-01T23:00:00Z"),
                },
            ),
        ];
        for (exec, want) in table {
            let got = parse(exec);
            if want.topic.is_empty() {
                assert!(
                    matches!(got, Err(UsageError::BadTime { .. })),
                    "{exec}: {got:?}"
                );
            } else {
                assert_eq!(got, Ok(Command::Uptime(want)), "{exec}");
            }
        }
    }

    #[test]
    fn bad_words_are_usage_errors_of_their_command() {
        let table = [
            ("monitor", "monitor: a topic is required"),
            (
                "monitor t",
                "monitor: a window is required (monitor TOPIC 24h), or -d to delete",
            ),
            ("monitor t 1h -d", "monitor: -d takes no window, got \"1h\""),
            (
                "monitor t 999ms",
                "monitor: invalid window \"999ms\": at least 1s",
            ),
            (
                "monitor t 8785h",
                "monitor: invalid window \"8785h\": at most 8784h",
            ),
            ("monitor t 1h x", "monitor: more than one topic: \"x\""),
            ("monitor t 1h -q", "monitor: unknown flag: -q"),
            (
                "monitor t 1h -d false",
                "monitor: boolean flag -d takes a value only with '=': write -d=false",
            ),
            ("uptime", "uptime: a topic is required"),
            ("uptime t u", "uptime: more than one topic: \"u\""),
            ("uptime t --from", "uptime: flag needs a value: --from"),
            ("status -p", "status: takes no arguments, got \"-p\""),
        ];
        for (exec, want) in table {
            let err = parse(exec).unwrap_err();
            assert_eq!(err.to_string(), want, "{exec}");
            assert!(err.kind().is_some() || exec.starts_with("status"), "{exec}");
        }
    }
}
