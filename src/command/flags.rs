//! The flag table of SPEC §4.1 and the Go-`flag`-style parser for the words
//! after `pub`, `sub`, `pipe` and `logs`.
//!
//! The parser reads the same table (`flag_table::FLAGS`) as the help texts,
//! so they cannot disagree about which flags exist.

use super::flag_table::{FLAGS, Flag, FlagSpec};
use super::parse_duration;
use super::{
    AccessArgs, AccessChange, Command, CommandKind, Dispatch, LogsArgs, PipeArgs, PubArgs, SubArgs,
    UsageError,
};

/// Go's `strconv.ParseBool`: the boolean values `-b=` takes over SSH and
/// `?persist=` and the like over HTTP.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// `-a LIST` (and `?access=LIST`): entries split on `,` and trimmed; empty
/// entries are dropped, so `-a ''` clears the list.
pub fn split_access(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// The `-b false` mistake (SPEC §4.1) is caught only for the spelled-out
/// words: `sub -p t` or `sub -p 1` is a public topic named `t` or `1`.
pub(super) fn looks_like_bool_word(s: &str) -> bool {
    matches!(s, "true" | "TRUE" | "True" | "false" | "FALSE" | "False")
}

/// One word after the command name, classified by Go `flag` rules.
pub(super) enum Word<'a> {
    /// Not a flag: a topic (or a stray word).
    Positional,
    /// One or two dashes, then a name that does not start with `-` or `=`.
    Flag {
        /// Dashes and name as typed, without `=VALUE`: `-t`, `--timeout`.
        typed: &'a str,
        /// The name alone: `t`, `timeout`.
        name: &'a str,
        /// What follows the first `=`, if any.
        value: Option<&'a str>,
    },
    /// `---x`, `-=x`: looks like a flag but is not one.
    Malformed,
}

/// A boolean flag's value: `-f=VALUE`, or true alone. `-f false` (a
/// boolean word after it) is refused rather than read as a topic.
pub(super) fn bool_value(
    kind: CommandKind,
    typed: &str,
    value: Option<&str>,
    next: Option<&String>,
) -> Result<bool, UsageError> {
    match value {
        Some(v) => parse_bool(v).ok_or_else(|| UsageError::BadBool {
            kind,
            flag: typed.to_string(),
            value: v.to_string(),
        }),
        None => match next {
            Some(next) if looks_like_bool_word(next) => Err(UsageError::BoolNeedsEquals {
                kind,
                flag: typed.to_string(),
                value: next.clone(),
            }),
            _ => Ok(true),
        },
    }
}

/// The flag `name` (short or long) of `kind`, as typed in `typed`.
pub(super) fn flag_spec(
    kind: CommandKind,
    name: &str,
    typed: &str,
) -> Result<&'static FlagSpec, UsageError> {
    FLAGS
        .iter()
        .find(|f| (f.short == name || f.long == name) && f.kinds.contains(&kind))
        .ok_or_else(|| UsageError::UnknownFlag {
            kind,
            flag: typed.to_string(),
        })
}

pub(super) fn classify(arg: &str) -> Word<'_> {
    if arg.len() < 2 || !arg.starts_with('-') {
        return Word::Positional;
    }
    let body = arg
        .strip_prefix("--")
        .or_else(|| arg.strip_prefix('-'))
        .unwrap_or(arg);
    if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
        return Word::Malformed;
    }
    let dashes = arg.len() - body.len();
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let typed = arg.get(..dashes + name.len()).unwrap_or(arg);
    Word::Flag { typed, name, value }
}

pub(super) fn is_help_flag(arg: &str) -> bool {
    matches!(
        classify(arg),
        Word::Flag {
            name: "h" | "help",
            ..
        }
    )
}

pub(super) fn no_args(
    command: &'static str,
    args: &[String],
    cmd: Command,
) -> Result<Command, UsageError> {
    match args.first() {
        None => Ok(cmd),
        Some(a) if is_help_flag(a) => Ok(Command::Help),
        Some(a) => Err(UsageError::UnexpectedArgument {
            command,
            arg: a.clone(),
        }),
    }
}

/// All fields any of `pub`/`sub`/`pipe`/`logs` can set, at their defaults.
struct Opts {
    pubs: PubArgs,
    keep_alive: bool,
    lossy: bool,
    replay: bool,
    all: bool,
    /// `access`'s second word.
    list: Option<String>,
    clear: bool,
}

pub(super) fn parse_kind(kind: CommandKind, args: &[String]) -> Result<Command, UsageError> {
    // `-h`/`--help` wins over everything else on the line, errors included.
    if args
        .iter()
        .take_while(|a| a.as_str() != "--")
        .any(|a| is_help_flag(a))
    {
        return Ok(Command::Usage(kind));
    }

    let mut o = Opts {
        pubs: PubArgs::default(),
        keep_alive: false,
        lossy: false,
        replay: false,
        all: false,
        list: None,
        clear: false,
    };
    let mut i = 0;
    let mut flags_done = false;
    while let Some(arg) = args.get(i) {
        i += 1;
        let word = if flags_done {
            Word::Positional
        } else if arg == "--" {
            flags_done = true;
            continue;
        } else {
            classify(arg)
        };
        let (typed, name, value) = match word {
            Word::Flag { typed, name, value } => (typed, name, value),
            Word::Malformed => {
                return Err(UsageError::BadFlagSyntax {
                    kind,
                    arg: arg.clone(),
                });
            }
            Word::Positional => {
                if kind == CommandKind::Logs {
                    return Err(UsageError::NoTopic {
                        kind,
                        arg: arg.clone(),
                    });
                }
                if kind == CommandKind::Access && o.pubs.common.topic.is_some() {
                    if o.list.is_some() {
                        return Err(UsageError::BadAccessArgs(format!(
                            "more than one list: {arg:?}"
                        )));
                    }
                    o.list = Some(arg.clone());
                    continue;
                }
                if o.pubs.common.topic.is_some() {
                    return Err(UsageError::TooManyTopics {
                        kind,
                        extra: arg.clone(),
                    });
                }
                o.pubs.common.topic = Some(arg.clone());
                continue;
            }
        };
        let spec = flag_spec(kind, name, typed)?;
        if spec.value.is_some() {
            // Go `flag`: `-x VALUE` takes the next word, whatever it is.
            let v = match value {
                Some(v) => v.to_string(),
                None => {
                    let Some(next) = args.get(i) else {
                        return Err(UsageError::MissingValue {
                            kind,
                            flag: typed.to_string(),
                        });
                    };
                    i += 1;
                    next.clone()
                }
            };
            set_value(&mut o, kind, spec.flag, typed, v)?;
        } else {
            let b = bool_value(kind, typed, value, args.get(i))?;
            set_bool(&mut o, spec.flag, b);
        }
    }

    let Opts {
        pubs,
        keep_alive,
        lossy,
        replay,
        all,
        list,
        clear,
    } = o;
    Ok(match kind {
        CommandKind::Pub => Command::Pub(pubs),
        CommandKind::Sub => {
            if pubs.common.topic.is_none() {
                return Err(UsageError::MissingTopic(kind));
            }
            Command::Sub(SubArgs {
                common: pubs.common,
                keep_alive,
                lossy,
            })
        }
        CommandKind::Pipe => Command::Pipe(PipeArgs {
            common: pubs.common,
            replay,
            dispatch: pubs.dispatch,
        }),
        CommandKind::Logs => Command::Logs(LogsArgs { all }),
        CommandKind::Access => access_args(pubs.common.topic, pubs.common.public, list, clear)?,
        // Their own positionals: their own parser (never reached from `parse`).
        CommandKind::Monitor => return super::monitor::parse_monitor(args),
        CommandKind::Uptime => return super::monitor::parse_uptime(args),
    })
}

fn access_args(
    topic: Option<String>,
    public: bool,
    list: Option<String>,
    clear: bool,
) -> Result<Command, UsageError> {
    let Some(topic) = topic else {
        return Err(UsageError::MissingTopic(CommandKind::Access));
    };
    let change = match (list, clear) {
        (Some(_), true) => {
            return Err(UsageError::BadAccessArgs(
                "give a list or --clear, not both".into(),
            ));
        }
        (Some(l), false) => {
            let entries = split_access(&l);
            if entries.is_empty() {
                return Err(UsageError::BadAccessArgs(
                    "empty list; to remove the list, use --clear".into(),
                ));
            }
            AccessChange::Set(entries)
        }
        (None, true) => AccessChange::Clear,
        (None, false) => AccessChange::Show,
    };
    Ok(Command::Access(AccessArgs {
        topic,
        public,
        change,
    }))
}

fn set_value(
    o: &mut Opts,
    kind: CommandKind,
    flag: Flag,
    typed: &str,
    v: String,
) -> Result<(), UsageError> {
    match flag {
        Flag::Access => {
            o.pubs.common.access = Some(split_access(&v));
        }
        Flag::Timeout => {
            o.pubs.timeout = parse_duration(&v).map_err(|reason| UsageError::BadDuration {
                kind,
                flag: typed.to_string(),
                value: v.clone(),
                reason,
            })?;
        }
        Flag::Dispatch => {
            o.pubs.dispatch = match v.as_str() {
                "multicast" => Dispatch::Multicast,
                "round-robin" => Dispatch::RoundRobin,
                _ => return Err(UsageError::BadDispatch { kind, value: v }),
            };
        }
        // Boolean flags never get here (FLAGS gives them no value).
        Flag::Block
        | Flag::Empty
        | Flag::Public
        | Flag::Clean
        | Flag::KeepAlive
        | Flag::Replay
        | Flag::Queue
        | Flag::Lossy
        | Flag::All
        | Flag::Clear
        | Flag::Delete => {}
        // `monitor` and `uptime` have their own parser (`monitor`).
        Flag::From | Flag::To => {}
    }
    Ok(())
}

fn set_bool(o: &mut Opts, flag: Flag, b: bool) {
    match flag {
        Flag::Block => o.pubs.block = b,
        Flag::Empty => o.pubs.empty = b,
        Flag::Public => o.pubs.common.public = b,
        Flag::Clean => o.pubs.common.clean = b,
        Flag::KeepAlive => o.keep_alive = b,
        Flag::Replay => o.replay = b,
        Flag::Queue => o.pubs.queue = b,
        Flag::Lossy => o.lossy = b,
        Flag::All => o.all = b,
        Flag::Clear => o.clear = b,
        // Value flags, and `monitor`'s own, never get here.
        Flag::Access | Flag::Timeout | Flag::Dispatch | Flag::Delete | Flag::From | Flag::To => {}
    }
}
