//! The exec string of an SSH session, turned into a typed [`Command`].
//!
//! Everything a user types after `ssh HOST` arrives as one string. This module
//! is the single place that decides what that string means (SPEC §4, §4.1):
//! shell-like word splitting, the command name, Go-`flag`-style flags as
//! pipe.pico.sh users type them, and the help and usage texts. Keeping it pure
//! (no I/O, no async, no configuration) lets the SSH and HTTP front ends share
//! it and lets every corner of the syntax be tested in a table.
//!
//! What the words *mean* beyond syntax is decided elsewhere: topic names and
//! access-list entries are kept raw here and validated by `topic.rs`.

use std::fmt;
use std::time::Duration;

mod duration;
mod words;

#[cfg(test)]
mod tests;

pub use duration::{format_duration, parse_duration};
pub use words::split_words;

/// Longest exec string accepted, in bytes. Longer ones are a usage error
/// before any splitting, so a hostile client cannot make us do much work.
pub const MAX_EXEC_LEN: usize = 4096;

/// Default `pub -t`: 30 days, as pipe.pico.sh.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(720 * 3600);

/// A parsed exec string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `help`, or an empty exec string: print [`help_text`] on stdout, exit 0.
    Help,
    /// `whoami`: print the user's name, fingerprint and admin flag.
    Whoami,
    /// `ls`: list the topics the user can see.
    Ls,
    /// `pub [TOPIC] [flags]`.
    Pub(PubArgs),
    /// `sub TOPIC [flags]`.
    Sub(SubArgs),
    /// `pipe [TOPIC] [flags]`.
    Pipe(PipeArgs),
    /// `pub -h`, `sub --help`, `help pipe`, ...: print [`usage_text`] of that
    /// command on stdout, exit 0.
    Usage(CommandKind),
}

impl Command {
    /// The flags shared by `pub`, `sub` and `pipe`; `None` for the others.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Command::Pub(a) => Some(&a.common),
            Command::Sub(a) => Some(&a.common),
            Command::Pipe(a) => Some(&a.common),
            Command::Help | Command::Whoami | Command::Ls | Command::Usage(_) => None,
        }
    }
}

/// The commands that take a topic and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// `pub`
    Pub,
    /// `sub`
    Sub,
    /// `pipe`
    Pipe,
}

impl CommandKind {
    /// The command's name as typed: `pub`, `sub` or `pipe`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Pub => "pub",
            CommandKind::Sub => "sub",
            CommandKind::Pipe => "pipe",
        }
    }
}

impl fmt::Display for CommandKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a sender's data is spread over the topic's receivers (`-d`, SPEC §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dispatch {
    /// Every receiver gets everything (`multicast`, the default).
    #[default]
    Multicast,
    /// Each message goes to one receiver, in turn (`round-robin`).
    RoundRobin,
}

impl Dispatch {
    /// The mode's name as typed after `-d`.
    pub fn as_str(self) -> &'static str {
        match self {
            Dispatch::Multicast => "multicast",
            Dispatch::RoundRobin => "round-robin",
        }
    }
}

impl fmt::Display for Dispatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Topic and flags shared by `pub`, `sub` and `pipe`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Common {
    /// The topic as typed; validating the name is `topic.rs`'s job.
    pub topic: Option<String>,
    /// `-a`: `None` when not given; `Some(vec![])` for `-a ''` (clear the
    /// list). Entries are split on `,` and trimmed; empty entries are dropped.
    pub access: Option<Vec<String>>,
    /// `-p`: use the shared `public/` namespace.
    pub public: bool,
    /// `-c`: print no status lines.
    pub clean: bool,
}

/// `pub [TOPIC] [flags]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubArgs {
    /// Topic, `-a`, `-p`, `-c`.
    pub common: Common,
    /// `-b`: wait for a receiver before sending (default true).
    pub block: bool,
    /// `-t`: bound on each wait for a receiver (default 720h).
    pub timeout: Duration,
    /// `-e`: send nothing, do not read stdin.
    pub empty: bool,
    /// `-d`: multicast (default) or round-robin.
    pub dispatch: Dispatch,
    /// `-q`: never wait; queue the input when nobody is listening.
    pub queue: bool,
}

impl Default for PubArgs {
    fn default() -> Self {
        PubArgs {
            common: Common::default(),
            block: true,
            timeout: DEFAULT_TIMEOUT,
            empty: false,
            dispatch: Dispatch::Multicast,
            queue: false,
        }
    }
}

/// `sub TOPIC [flags]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubArgs {
    /// Topic (always `Some` after [`parse`]), `-a`, `-p`, `-c`.
    pub common: Common,
    /// `-k`: do not end when the senders leave.
    pub keep_alive: bool,
    /// `-l`: skip data this receiver cannot keep up with.
    pub lossy: bool,
}

/// `pipe [TOPIC] [flags]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PipeArgs {
    /// Topic, `-a`, `-p`, `-c`.
    pub common: Common,
    /// `-r`: also receive your own data.
    pub replay: bool,
    /// `-d`: multicast (default) or round-robin.
    pub dispatch: Dispatch,
}

/// A malformed exec string. Each variant displays as one line naming the
/// problem (SPEC §4.3); the caller prints it, then the usage named by
/// [`UsageError::kind`], on stderr, and exits 2.
///
/// Flags are kept as typed (`-t`, `--timeout`) so the message echoes the
/// user's own spelling. User text is escaped so a message is always one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// A `'` or `"` without its closing partner.
    #[error("unbalanced quote in command")]
    UnbalancedQuote,
    /// The exec string is longer than the limit.
    #[error("command too long: {len} bytes (max {max})")]
    ExecTooLong {
        /// Length of the exec string in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The first word is not a command.
    #[error("unknown command: {}", esc(.0))]
    UnknownCommand(String),
    /// `whoami` or `ls` followed by something.
    #[error("{command}: takes no arguments, got {arg:?}")]
    UnexpectedArgument {
        /// `whoami` or `ls`.
        command: &'static str,
        /// The first extra word.
        arg: String,
    },
    /// A flag this command does not have (including flags of other commands).
    #[error("{kind}: unknown flag: {}", esc(flag))]
    UnknownFlag {
        /// The command.
        kind: CommandKind,
        /// The flag as typed, without any `=VALUE`.
        flag: String,
    },
    /// `---x`, `-=x`, `--=x`: not a flag at all.
    #[error("{kind}: bad flag syntax: {}", esc(arg))]
    BadFlagSyntax {
        /// The command.
        kind: CommandKind,
        /// The whole word.
        arg: String,
    },
    /// A value flag (`-a`, `-t`, `-d`) as the last word, with no value.
    #[error("{kind}: flag needs a value: {}", esc(flag))]
    MissingValue {
        /// The command.
        kind: CommandKind,
        /// The flag as typed.
        flag: String,
    },
    /// `-b false`: a boolean flag followed by a boolean-looking word.
    #[error(
        "{kind}: boolean flag {} takes a value only with '=': write {}={}",
        esc(flag),
        esc(flag),
        esc(value)
    )]
    BoolNeedsEquals {
        /// The command.
        kind: CommandKind,
        /// The flag as typed.
        flag: String,
        /// The word after it.
        value: String,
    },
    /// `-b=maybe`.
    #[error(
        "{kind}: invalid boolean value {value:?} for {} (true or false)",
        esc(flag)
    )]
    BadBool {
        /// The command.
        kind: CommandKind,
        /// The flag as typed.
        flag: String,
        /// The value after `=`.
        value: String,
    },
    /// `-t abc`.
    #[error("{kind}: invalid duration {value:?} for {}: {reason}", esc(flag))]
    BadDuration {
        /// The command.
        kind: CommandKind,
        /// The flag as typed.
        flag: String,
        /// The value given.
        value: String,
        /// Why it is not a duration (from [`parse_duration`]).
        reason: String,
    },
    /// `-d sideways`.
    #[error("{kind}: invalid dispatch mode {value:?} for -d (multicast or round-robin)")]
    BadDispatch {
        /// The command.
        kind: CommandKind,
        /// The value given.
        value: String,
    },
    /// A second positional word.
    #[error("{kind}: more than one topic: {extra:?}")]
    TooManyTopics {
        /// The command.
        kind: CommandKind,
        /// The first word beyond the topic.
        extra: String,
    },
    /// `sub` without a topic.
    #[error("{0}: a topic is required")]
    MissingTopic(CommandKind),
    /// Valid syntax for a feature this server does not offer (yet). Never
    /// returned by [`parse`]; front ends build it after parsing.
    #[error("{kind}: not supported: {}", esc(what))]
    Unsupported {
        /// The command.
        kind: CommandKind,
        /// What is not supported, e.g. `-d round-robin`.
        what: String,
    },
}

impl UsageError {
    /// Which command's usage to print after the message; `None` means the
    /// error is not about one command (print a pointer to `help` instead).
    pub fn kind(&self) -> Option<CommandKind> {
        match self {
            UsageError::UnbalancedQuote
            | UsageError::ExecTooLong { .. }
            | UsageError::UnknownCommand(_)
            | UsageError::UnexpectedArgument { .. } => None,
            UsageError::UnknownFlag { kind, .. }
            | UsageError::BadFlagSyntax { kind, .. }
            | UsageError::MissingValue { kind, .. }
            | UsageError::BoolNeedsEquals { kind, .. }
            | UsageError::BadBool { kind, .. }
            | UsageError::BadDuration { kind, .. }
            | UsageError::BadDispatch { kind, .. }
            | UsageError::TooManyTopics { kind, .. }
            | UsageError::MissingTopic(kind)
            | UsageError::Unsupported { kind, .. } => Some(*kind),
        }
    }
}

/// User text inside a one-line message: control characters (newlines, tabs,
/// escape sequences) are shown escaped rather than acted on.
fn esc(s: &str) -> String {
    let quoted = format!("{s:?}");
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .map(str::to_string)
        .unwrap_or(quoted)
}

/// Parses an exec string (SPEC §4, §4.1). Rejects strings longer than
/// [`MAX_EXEC_LEN`] bytes.
pub fn parse(exec: &str) -> Result<Command, UsageError> {
    parse_with_limit(exec, MAX_EXEC_LEN)
}

/// [`parse`] with a different length limit, in bytes.
pub fn parse_with_limit(exec: &str, max: usize) -> Result<Command, UsageError> {
    if exec.len() > max {
        return Err(UsageError::ExecTooLong {
            len: exec.len(),
            max,
        });
    }
    let words = split_words(exec)?;
    let Some((name, args)) = words.split_first() else {
        return Ok(Command::Help);
    };
    match name.as_str() {
        // `ssh host -- --help` reaches us as `--help`; be kind.
        "help" | "-h" | "--help" => Ok(match args {
            [one] => match one.as_str() {
                "pub" => Command::Usage(CommandKind::Pub),
                "sub" => Command::Usage(CommandKind::Sub),
                "pipe" => Command::Usage(CommandKind::Pipe),
                _ => Command::Help,
            },
            _ => Command::Help,
        }),
        "whoami" => no_args("whoami", args, Command::Whoami),
        "ls" => no_args("ls", args, Command::Ls),
        "pub" => parse_kind(CommandKind::Pub, args),
        "sub" => parse_kind(CommandKind::Sub, args),
        "pipe" => parse_kind(CommandKind::Pipe, args),
        _ => Err(UsageError::UnknownCommand(name.clone())),
    }
}

fn no_args(command: &'static str, args: &[String], cmd: Command) -> Result<Command, UsageError> {
    match args.first() {
        None => Ok(cmd),
        Some(a) if is_help_flag(a) => Ok(Command::Help),
        Some(a) => Err(UsageError::UnexpectedArgument {
            command,
            arg: a.clone(),
        }),
    }
}

/// Every flag of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Access,
    Block,
    Timeout,
    Empty,
    Public,
    Clean,
    KeepAlive,
    Replay,
    Dispatch,
    Queue,
    Lossy,
}

/// One row of the SPEC §4.1 flag table.
struct FlagSpec {
    flag: Flag,
    short: &'static str,
    long: &'static str,
    /// Placeholder for a value flag (`-x VALUE`); `None` for boolean flags.
    value: Option<&'static str>,
    kinds: &'static [CommandKind],
    help: &'static str,
    default: &'static str,
}

use CommandKind::{Pipe as PIPE, Pub as PUB, Sub as SUB};

/// The flag table, in SPEC §4.1 order.
const FLAGS: &[FlagSpec] = &[
    FlagSpec {
        flag: Flag::Access,
        short: "a",
        long: "access",
        value: Some("LIST"),
        kinds: &[PUB, SUB, PIPE],
        help: "comma-separated users or SHA256: keys allowed",
        default: "none",
    },
    FlagSpec {
        flag: Flag::Block,
        short: "b",
        long: "block",
        value: None,
        kinds: &[PUB],
        help: "wait for a receiver before sending",
        default: "true",
    },
    FlagSpec {
        flag: Flag::Timeout,
        short: "t",
        long: "timeout",
        value: Some("DUR"),
        kinds: &[PUB],
        help: "bound on each wait: 500ms, 10s, 1m30s, 720h",
        default: "720h0m0s",
    },
    FlagSpec {
        flag: Flag::Empty,
        short: "e",
        long: "empty",
        value: None,
        kinds: &[PUB],
        help: "send nothing: connect, wait as -b says, leave",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Public,
        short: "p",
        long: "public",
        value: None,
        kinds: &[PUB, SUB, PIPE],
        help: "use the shared public/ namespace",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Clean,
        short: "c",
        long: "clean",
        value: None,
        kinds: &[PUB, SUB, PIPE],
        help: "print no status lines (errors still print)",
        default: "false",
    },
    FlagSpec {
        flag: Flag::KeepAlive,
        short: "k",
        long: "keep-alive",
        value: None,
        kinds: &[SUB],
        help: "do not end when the senders leave",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Replay,
        short: "r",
        long: "replay",
        value: None,
        kinds: &[PIPE],
        help: "also receive your own data (echo)",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Dispatch,
        short: "d",
        long: "dispatch",
        value: Some("MODE"),
        kinds: &[PUB, PIPE],
        help: "multicast, or round-robin: one receiver each",
        default: "multicast",
    },
    FlagSpec {
        flag: Flag::Queue,
        short: "q",
        long: "queue",
        value: None,
        kinds: &[PUB],
        help: "never wait: queue the input if nobody listens",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Lossy,
        short: "l",
        long: "lossy",
        value: None,
        kinds: &[SUB],
        help: "skip data rather than slow the senders down",
        default: "false",
    },
];

impl FlagSpec {
    /// `-a, --access LIST`, `-b, --block[=BOOL]`, `-p, --public`.
    fn synopsis(&self) -> String {
        match (self.value, self.flag) {
            (Some(v), _) => format!("-{}, --{} {v}", self.short, self.long),
            (None, Flag::Block) => format!("-{}, --{}[=BOOL]", self.short, self.long),
            (None, _) => format!("-{}, --{}", self.short, self.long),
        }
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// The `-b false` mistake (SPEC §4.1) is caught only for the spelled-out
/// words: `sub -p t` or `sub -p 1` is a public topic named `t` or `1`.
fn looks_like_bool_word(s: &str) -> bool {
    matches!(s, "true" | "TRUE" | "True" | "false" | "FALSE" | "False")
}

/// One word after the command name, classified by Go `flag` rules.
enum Word<'a> {
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

fn classify(arg: &str) -> Word<'_> {
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

fn is_help_flag(arg: &str) -> bool {
    matches!(
        classify(arg),
        Word::Flag {
            name: "h" | "help",
            ..
        }
    )
}

/// All fields any of `pub`/`sub`/`pipe` can set, at their defaults.
struct Opts {
    pubs: PubArgs,
    keep_alive: bool,
    lossy: bool,
    replay: bool,
}

fn parse_kind(kind: CommandKind, args: &[String]) -> Result<Command, UsageError> {
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
        let Some(spec) = FLAGS
            .iter()
            .find(|f| (f.short == name || f.long == name) && f.kinds.contains(&kind))
        else {
            return Err(UsageError::UnknownFlag {
                kind,
                flag: typed.to_string(),
            });
        };
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
            let b = match value {
                Some(v) => parse_bool(v).ok_or_else(|| UsageError::BadBool {
                    kind,
                    flag: typed.to_string(),
                    value: v.to_string(),
                })?,
                None => {
                    if let Some(next) = args.get(i)
                        && looks_like_bool_word(next)
                    {
                        return Err(UsageError::BoolNeedsEquals {
                            kind,
                            flag: typed.to_string(),
                            value: next.clone(),
                        });
                    }
                    true
                }
            };
            set_bool(&mut o, spec.flag, b);
        }
    }

    let Opts {
        pubs,
        keep_alive,
        lossy,
        replay,
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
    })
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
            o.pubs.common.access = Some(
                v.split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(str::to_string)
                    .collect(),
            );
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
        | Flag::Lossy => {}
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
        // Value flags never get here.
        Flag::Access | Flag::Timeout | Flag::Dispatch => {}
    }
}

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
           pipe [TOPIC] [flags]  both: send stdin, receive others' data on stdout\n\
         \n\
         flags:\n",
    );
    for f in FLAGS {
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
           tail -f app.log | ssh -p 2222 HOST pub logs -b=false -a bob,carol\n",
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
    s.push_str(
        "\nFlags go before or after TOPIC; -- ends flags. Boolean flags take a value\n\
         only with '=' (-x=false).\n",
    );
    s
}
