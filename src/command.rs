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
//!
//! The parts live in submodules, re-exported here: [`UsageError`] in `error`,
//! the flag table and the flag parser in `flags`, the help and usage texts in
//! `help`, word splitting in `words`, Go durations in `duration`.

use std::fmt;
use std::time::Duration;

mod duration;
mod error;
mod flag_table;
mod flags;
mod help;
mod monitor;
mod token;
mod words;

#[cfg(test)]
mod tests;

use flags::{no_args, parse_kind};

pub use duration::{format_duration, parse_duration};
pub use error::UsageError;
pub use flags::{parse_bool, split_access};
pub use help::{help_text, usage_text};
pub use monitor::{MAX_WINDOW, MIN_WINDOW};
pub use token::{CreateArgs, TOKEN_USAGE, TokenCmd};
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
    /// `logs [--all]`: stream the server's log lines about this user.
    Logs(LogsArgs),
    /// `token create|ls|rm …`: HTTP access tokens (SPEC §11.1).
    Token(TokenCmd),
    /// `access TOPIC [LIST | --clear]`: show, set or clear a topic's list.
    Access(AccessArgs),
    /// `pub -h`, `sub --help`, `help pipe`, ...: print [`usage_text`] of that
    /// command on stdout, exit 0.
    Usage(CommandKind),
    /// `monitor TOPIC DURATION`, `monitor TOPIC -d` (SPEC §13).
    Monitor(MonitorArgs),
    /// `status`: the caller's monitors.
    Status,
    /// `uptime TOPIC [--from ..] [--to ..]`.
    Uptime(UptimeArgs),
    /// `rss`: the caller's monitor changes as an RSS 2.0 feed.
    Rss,
}

impl Command {
    /// The flags shared by `pub`, `sub` and `pipe`; `None` for the others.
    pub fn common(&self) -> Option<&Common> {
        match self {
            Command::Pub(a) => Some(&a.common),
            Command::Sub(a) => Some(&a.common),
            Command::Pipe(a) => Some(&a.common),
            Command::Help
            | Command::Whoami
            | Command::Ls
            | Command::Logs(_)
            | Command::Token(_)
            | Command::Access(_)
            | Command::Usage(_)
            | Command::Monitor(_)
            | Command::Status
            | Command::Uptime(_)
            | Command::Rss => None,
        }
    }
}

/// The commands that take flags (and, but for `logs`, a topic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    /// `pub`
    Pub,
    /// `sub`
    Sub,
    /// `pipe`
    Pipe,
    /// `logs`
    Logs,
    /// `access`
    Access,
    /// `monitor`
    Monitor,
    /// `uptime`
    Uptime,
}

impl CommandKind {
    /// The command's name as typed: `pub`, `sub` or `pipe`.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandKind::Pub => "pub",
            CommandKind::Sub => "sub",
            CommandKind::Pipe => "pipe",
            CommandKind::Logs => "logs",
            CommandKind::Access => "access",
            CommandKind::Monitor => "monitor",
            CommandKind::Uptime => "uptime",
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

/// `logs [--all]` (SPEC §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogsArgs {
    /// `--all`: every line, not only the caller's (admins only; the front
    /// end refuses it to others, since parsing knows nobody).
    pub all: bool,
}

/// `access TOPIC [LIST | --clear] [-p]` (SPEC §4, §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessArgs {
    /// The topic as typed.
    pub topic: String,
    /// `-p`: the topic is in `public/`.
    pub public: bool,
    pub change: AccessChange,
}

/// What `access` does with the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessChange {
    /// No LIST: print the list.
    Show,
    /// LIST: the entries, split on `,` and trimmed (never empty).
    Set(Vec<String>),
    /// `--clear`.
    Clear,
}

/// `monitor TOPIC DURATION [-p]` or `monitor TOPIC -d [-p]` (SPEC §13).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorArgs {
    /// The topic as typed.
    pub topic: String,
    /// `-p`: a monitor on the public topic.
    pub public: bool,
    /// The window; `None` is `-d`: delete the monitor.
    pub window: Option<Duration>,
}

/// A point in time as `uptime --from/--to` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeArg {
    /// An RFC 3339 time, as unix milliseconds.
    At(u64),
    /// That long before now.
    Ago(Duration),
}

/// `uptime TOPIC [--from TIME|DURATION] [--to TIME|DURATION] [-p]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UptimeArgs {
    pub topic: String,
    pub public: bool,
    /// Default: 24 h before now (SPEC §13).
    pub from: Option<TimeArg>,
    /// Default: now.
    pub to: Option<TimeArg>,
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
                "logs" => Command::Usage(CommandKind::Logs),
                "access" => Command::Usage(CommandKind::Access),
                "monitor" => Command::Usage(CommandKind::Monitor),
                "uptime" => Command::Usage(CommandKind::Uptime),
                _ => Command::Help,
            },
            _ => Command::Help,
        }),
        "whoami" => no_args("whoami", args, Command::Whoami),
        "ls" => no_args("ls", args, Command::Ls),
        "pub" => parse_kind(CommandKind::Pub, args),
        "sub" => parse_kind(CommandKind::Sub, args),
        "pipe" => parse_kind(CommandKind::Pipe, args),
        "logs" => parse_kind(CommandKind::Logs, args),
        "token" => token::parse(args).map(Command::Token),
        "access" => parse_kind(CommandKind::Access, args),
        "monitor" => monitor::parse_monitor(args),
        "uptime" => monitor::parse_uptime(args),
        "status" => no_args("status", args, Command::Status),
        "rss" => no_args("rss", args, Command::Rss),
        _ => Err(UsageError::UnknownCommand(name.clone())),
    }
}
