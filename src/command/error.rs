//! [`UsageError`]: every way an exec string can be malformed, each with its
//! one-line message.
//!
//! Kept apart from the parser so the full list of messages users can see
//! (SPEC §4.3) reads in one place, together with the escaping that keeps each
//! of them on one line.

use super::CommandKind;

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
        /// Why it is not a duration (from [`parse_duration`](super::parse_duration)).
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
    /// A word that is not a flag after a command that takes no topic (`logs x`).
    #[error("{kind}: takes no topic, got {arg:?}")]
    NoTopic {
        /// The command.
        kind: CommandKind,
        /// The word.
        arg: String,
    },
    /// `access` given both a list and `--clear`, two lists, or an empty one.
    #[error("access: {0}")]
    BadAccessArgs(String),
    /// `monitor TOPIC` with neither a window nor `-d`.
    #[error("monitor: a window is required (monitor TOPIC 24h), or -d to delete")]
    MissingWindow,
    /// `monitor TOPIC 1h -d`.
    #[error("monitor: -d takes no window, got {0:?}")]
    DeleteTakesNoWindow(String),
    /// `monitor TOPIC soon`, `monitor TOPIC 10ms`.
    #[error("monitor: invalid window {value:?}: {reason}")]
    BadWindow {
        /// The word given.
        value: String,
        /// Why it is not a window.
        reason: String,
    },
    /// `uptime t --from yesterday`.
    #[error("uptime: invalid time {value:?} for {}: {reason}", esc(flag))]
    BadTime {
        /// The flag as typed.
        flag: String,
        /// The value given.
        value: String,
        /// Why it is not a time.
        reason: String,
    },
    /// `sub` without a topic.
    #[error("{0}: a topic is required")]
    MissingTopic(CommandKind),
    /// Valid syntax for a feature this server does not offer (yet). Never
    /// returned by [`parse`](super::parse); front ends build it after parsing.
    #[error("{kind}: not supported: {}", esc(what))]
    Unsupported {
        /// The command.
        kind: CommandKind,
        /// What is not supported, e.g. `-d round-robin`.
        what: String,
    },
    /// A malformed `token` command; the caller prints `TOKEN_USAGE` after it.
    #[error("{}", esc(.0))]
    Token(String),
}

impl UsageError {
    /// Which command's usage to print after the message; `None` means the
    /// error is not about one command (print a pointer to `help` instead).
    pub fn kind(&self) -> Option<CommandKind> {
        match self {
            UsageError::UnbalancedQuote
            | UsageError::ExecTooLong { .. }
            | UsageError::UnknownCommand(_)
            | UsageError::UnexpectedArgument { .. }
            | UsageError::Token(_) => None,
            UsageError::UnknownFlag { kind, .. }
            | UsageError::BadFlagSyntax { kind, .. }
            | UsageError::MissingValue { kind, .. }
            | UsageError::BoolNeedsEquals { kind, .. }
            | UsageError::BadBool { kind, .. }
            | UsageError::BadDuration { kind, .. }
            | UsageError::BadDispatch { kind, .. }
            | UsageError::TooManyTopics { kind, .. }
            | UsageError::NoTopic { kind, .. }
            | UsageError::MissingTopic(kind)
            | UsageError::Unsupported { kind, .. } => Some(*kind),
            UsageError::BadAccessArgs(_) => Some(CommandKind::Access),
            UsageError::MissingWindow
            | UsageError::DeleteTakesNoWindow(_)
            | UsageError::BadWindow { .. } => Some(CommandKind::Monitor),
            UsageError::BadTime { .. } => Some(CommandKind::Uptime),
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
