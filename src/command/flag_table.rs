//! The flag table of SPEC §4.1: which flags exist, which commands take
//! them and how they are documented. The parser (`flags`) and the help
//! texts (`help`) both read this one table, so they cannot disagree.

use super::CommandKind;

/// Every flag of every command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flag {
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
    All,
    Clear,
    Delete,
    From,
    To,
}

/// One row of the SPEC §4.1 flag table.
pub(super) struct FlagSpec {
    pub(super) flag: Flag,
    /// Empty for a flag with only a long name (`--all`; Go's `-all` works too).
    pub(super) short: &'static str,
    pub(super) long: &'static str,
    /// Placeholder for a value flag (`-x VALUE`); `None` for boolean flags.
    pub(super) value: Option<&'static str>,
    pub(super) kinds: &'static [CommandKind],
    pub(super) help: &'static str,
    pub(super) default: &'static str,
}

use CommandKind::{
    Access as ACCESS, Logs as LOGS, Monitor as MONITOR, Pipe as PIPE, Pub as PUB, Sub as SUB,
    Uptime as UPTIME,
};

/// The flag table, in SPEC §4.1 order, then the flags of `logs` (§4, §12).
pub(super) const FLAGS: &[FlagSpec] = &[
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
        kinds: &[PUB, SUB, PIPE, ACCESS, MONITOR, UPTIME],
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
    FlagSpec {
        flag: Flag::All,
        short: "",
        long: "all",
        value: None,
        kinds: &[LOGS],
        help: "every user's lines, not only yours (admins only)",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Clear,
        short: "",
        long: "clear",
        value: None,
        kinds: &[ACCESS],
        help: "remove the topic's access list",
        default: "false",
    },
    FlagSpec {
        flag: Flag::Delete,
        short: "d",
        long: "delete",
        value: None,
        kinds: &[MONITOR],
        help: "delete the topic's monitor",
        default: "false",
    },
    FlagSpec {
        flag: Flag::From,
        short: "",
        long: "from",
        value: Some("TIME|DUR"),
        kinds: &[UPTIME],
        help: "start: 2026-01-02T15:04:05Z, or a duration ago",
        default: "24h ago",
    },
    FlagSpec {
        flag: Flag::To,
        short: "",
        long: "to",
        value: Some("TIME|DUR"),
        kinds: &[UPTIME],
        help: "end: a time, or a duration ago",
        default: "now",
    },
];

impl FlagSpec {
    /// `-a, --access LIST`, `-b, --block[=BOOL]`, `-p, --public`, `--all`.
    pub(super) fn synopsis(&self) -> String {
        if self.short.is_empty() {
            return match self.value {
                Some(v) => format!("--{} {v}", self.long),
                None => format!("--{}", self.long),
            };
        }
        match (self.value, self.flag) {
            (Some(v), _) => format!("-{}, --{} {v}", self.short, self.long),
            (None, Flag::Block) => format!("-{}, --{}[=BOOL]", self.short, self.long),
            (None, _) => format!("-{}, --{}", self.short, self.long),
        }
    }
}
