#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::flag_table::FLAGS;
use super::*;
use proptest::prelude::*;

fn h(n: u64) -> Duration {
    Duration::from_secs(n * 3600)
}

fn s(v: &str) -> String {
    v.to_string()
}

fn pub_args(f: impl FnOnce(&mut PubArgs)) -> Command {
    let mut a = PubArgs::default();
    f(&mut a);
    Command::Pub(a)
}

fn sub_args(topic: &str, f: impl FnOnce(&mut SubArgs)) -> Command {
    let mut a = SubArgs::default();
    a.common.topic = Some(s(topic));
    f(&mut a);
    Command::Sub(a)
}

fn pipe_args(f: impl FnOnce(&mut PipeArgs)) -> Command {
    let mut a = PipeArgs::default();
    f(&mut a);
    Command::Pipe(a)
}

fn topic(t: &str) -> Option<String> {
    Some(s(t))
}

#[track_caller]
fn ok(exec: &str) -> Command {
    match parse(exec) {
        Ok(c) => c,
        Err(e) => panic!("{exec:?}: unexpected error: {e}"),
    }
}

#[track_caller]
fn err(exec: &str) -> UsageError {
    match parse(exec) {
        Ok(c) => panic!("{exec:?}: expected an error, got {c:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- commands

#[test]
fn simple_commands() {
    let table: &[(&str, Command)] = &[
        ("", Command::Help),
        ("   ", Command::Help),
        ("\t\n", Command::Help),
        ("help", Command::Help),
        ("  help  ", Command::Help),
        ("help me please", Command::Help),
        ("help whoami", Command::Help),
        ("help pub", Command::Usage(CommandKind::Pub)),
        ("help sub", Command::Usage(CommandKind::Sub)),
        ("help pipe", Command::Usage(CommandKind::Pipe)),
        ("-h", Command::Help),
        ("--help", Command::Help),
        ("whoami", Command::Whoami),
        ("whoami -h", Command::Help),
        ("ls", Command::Ls),
        ("ls --help", Command::Help),
        ("'ls'", Command::Ls),
        ("\"who\"ami", Command::Whoami),
    ];
    for (exec, want) in table {
        assert_eq!(&ok(exec), want, "{exec:?}");
    }
}

#[test]
fn command_names_are_case_sensitive() {
    for exec in ["PUB t", "Sub t", "Help", "LS", "WhoAmI", "pipe2", "publish"] {
        let name = exec.split(' ').next().unwrap();
        assert_eq!(err(exec), UsageError::UnknownCommand(s(name)), "{exec:?}");
    }
}

#[test]
fn no_arguments_for_whoami_and_ls() {
    assert_eq!(
        err("whoami extra"),
        UsageError::UnexpectedArgument {
            command: "whoami",
            arg: s("extra")
        }
    );
    assert_eq!(
        err("ls -a"),
        UsageError::UnexpectedArgument {
            command: "ls",
            arg: s("-a")
        }
    );
}

// ---------------------------------------------------------------- pub

#[test]
fn logs_takes_all_and_nothing_else() {
    let all = Command::Logs(LogsArgs { all: true });
    let own = Command::Logs(LogsArgs { all: false });
    let table: &[(&str, &Command)] = &[
        ("logs", &own),
        ("logs --all", &all),
        ("logs -all", &all),
        ("logs --all=true", &all),
        ("logs --all=false", &own),
        ("logs --all=0 --all", &all),
        ("logs --", &own),
        ("logs -h", &Command::Usage(CommandKind::Logs)),
        ("logs --all --help", &Command::Usage(CommandKind::Logs)),
        ("help logs", &Command::Usage(CommandKind::Logs)),
    ];
    for (exec, want) in table {
        assert_eq!(&ok(exec), *want, "{exec:?}");
    }
    let errors: &[(&str, &str)] = &[
        ("logs alice", "logs: takes no topic, got \"alice\""),
        ("logs -- --all", "logs: takes no topic, got \"--all\""),
        ("logs -p", "logs: unknown flag: -p"),
        ("logs -a", "logs: unknown flag: -a"),
        (
            "logs --all false",
            "logs: boolean flag --all takes a value only with '=': write --all=false",
        ),
        (
            "logs --all=maybe",
            "logs: invalid boolean value \"maybe\" for --all (true or false)",
        ),
        ("logs ---all", "logs: bad flag syntax: ---all"),
        ("pub --all", "pub: unknown flag: --all"),
        ("sub t --all", "sub: unknown flag: --all"),
    ];
    for (exec, want) in errors {
        let e = err(exec);
        assert_eq!(e.to_string(), *want, "{exec:?}");
    }
    assert_eq!(err("logs x").kind(), Some(CommandKind::Logs));
    assert_eq!(ok("logs").common(), None);
    assert_eq!(CommandKind::Logs.to_string(), "logs");
}

#[test]
fn pub_defaults() {
    let want = PubArgs {
        common: Common::default(),
        block: true,
        timeout: h(720),
        empty: false,
        dispatch: Dispatch::Multicast,
        queue: false,
    };
    assert_eq!(ok("pub"), Command::Pub(want.clone()));
    assert_eq!(PubArgs::default(), want);
    assert_eq!(ok("pub logs"), pub_args(|a| a.common.topic = topic("logs")));
}

#[test]
fn flag_forms() {
    // Every spelling of -b=false and -t 10s must give the same result.
    let want = pub_args(|a| {
        a.common.topic = topic("logs");
        a.block = false;
        a.timeout = Duration::from_secs(10);
    });
    let table = [
        "pub logs -b=false -t 10s",
        "pub logs --b=false --t 10s",
        "pub logs -block=false -timeout=10s",
        "pub logs --block=false --timeout=10s",
        "pub logs --block=false --timeout 10s",
        "pub -b=false -t=10s logs",
        "pub -b=false logs -t 10s",
        "pub -t 10s logs -b=false",
        "pub --timeout=10s -- logs -b=false -b=false",
        "pub -b=false -t 10s -- logs",
        "  pub   logs\t-b=false  -t   10s  ",
        "pub 'logs' \"-b=false\" -t=\"10s\"",
        "pub -b -b=false -t 1h -t 10s logs",
    ];
    for exec in table {
        if exec.contains("-- logs -b=false") {
            // After `--`, words are positional: this one has two topics.
            assert_eq!(
                err(exec),
                UsageError::TooManyTopics {
                    kind: CommandKind::Pub,
                    extra: s("-b=false")
                }
            );
            continue;
        }
        assert_eq!(ok(exec), want, "{exec:?}");
    }
}

#[test]
fn every_pub_flag_short_and_long() {
    let table: &[(&str, Command)] = &[
        (
            "pub -a alice,bob",
            pub_args(|a| a.common.access = Some(vec![s("alice"), s("bob")])),
        ),
        (
            "pub --access=alice",
            pub_args(|a| a.common.access = Some(vec![s("alice")])),
        ),
        ("pub -b", pub_args(|_| {})),
        ("pub --block=0", pub_args(|a| a.block = false)),
        (
            "pub -t 1m30s",
            pub_args(|a| a.timeout = Duration::from_secs(90)),
        ),
        (
            "pub --timeout=500ms",
            pub_args(|a| a.timeout = Duration::from_millis(500)),
        ),
        ("pub -e", pub_args(|a| a.empty = true)),
        ("pub --empty", pub_args(|a| a.empty = true)),
        ("pub -p", pub_args(|a| a.common.public = true)),
        ("pub --public", pub_args(|a| a.common.public = true)),
        ("pub -c", pub_args(|a| a.common.clean = true)),
        ("pub --clean", pub_args(|a| a.common.clean = true)),
        (
            "pub -d round-robin",
            pub_args(|a| a.dispatch = Dispatch::RoundRobin),
        ),
        (
            "pub --dispatch=round-robin",
            pub_args(|a| a.dispatch = Dispatch::RoundRobin),
        ),
        ("pub -d multicast", pub_args(|_| {})),
        ("pub -q", pub_args(|a| a.queue = true)),
        ("pub --queue", pub_args(|a| a.queue = true)),
        (
            "pub -e -p -c -q x",
            pub_args(|a| {
                a.common.topic = topic("x");
                a.empty = true;
                a.common.public = true;
                a.common.clean = true;
                a.queue = true;
            }),
        ),
    ];
    for (exec, want) in table {
        assert_eq!(&ok(exec), want, "{exec:?}");
    }
}

#[test]
fn every_sub_flag() {
    let table: &[(&str, Command)] = &[
        ("sub t", sub_args("t", |_| {})),
        (
            "sub t -a x",
            sub_args("t", |a| a.common.access = Some(vec![s("x")])),
        ),
        ("sub -p top", sub_args("top", |a| a.common.public = true)),
        ("sub t --clean", sub_args("t", |a| a.common.clean = true)),
        ("sub t -k", sub_args("t", |a| a.keep_alive = true)),
        ("sub t --keep-alive", sub_args("t", |a| a.keep_alive = true)),
        ("sub -l -- t", sub_args("t", |a| a.lossy = true)),
        ("sub --lossy=true t", sub_args("t", |a| a.lossy = true)),
        (
            "sub -k=false -l=1 t",
            sub_args("t", |a| {
                a.keep_alive = false;
                a.lossy = true;
            }),
        ),
        ("sub -- -k", sub_args("-k", |_| {})),
        ("sub -", sub_args("-", |_| {})),
        ("sub ''", sub_args("", |_| {})),
    ];
    for (exec, want) in table {
        assert_eq!(&ok(exec), want, "{exec:?}");
    }
}

#[test]
fn every_pipe_flag() {
    let table: &[(&str, Command)] = &[
        ("pipe", pipe_args(|_| {})),
        ("pipe chat", pipe_args(|a| a.common.topic = topic("chat"))),
        ("pipe -r", pipe_args(|a| a.replay = true)),
        ("pipe --replay", pipe_args(|a| a.replay = true)),
        (
            "pipe -p -c",
            pipe_args(|a| {
                a.common.public = true;
                a.common.clean = true;
            }),
        ),
        ("pipe -a ''", pipe_args(|a| a.common.access = Some(vec![]))),
        (
            "pipe -d=round-robin",
            pipe_args(|a| a.dispatch = Dispatch::RoundRobin),
        ),
        ("pipe --dispatch multicast", pipe_args(|_| {})),
    ];
    for (exec, want) in table {
        assert_eq!(&ok(exec), want, "{exec:?}");
    }
}

#[test]
fn access_lists() {
    let table: &[(&str, Option<Vec<&str>>)] = &[
        ("pub", None),
        ("pub -a ''", Some(vec![])),
        ("pub -a=", Some(vec![])),
        ("pub --access ' , ,'", Some(vec![])),
        ("pub -a alice", Some(vec!["alice"])),
        (
            "pub -a 'alice, bob ,,carol'",
            Some(vec!["alice", "bob", "carol"]),
        ),
        (
            "pub -a SHA256:abc+/def,bob",
            Some(vec!["SHA256:abc+/def", "bob"]),
        ),
        ("pub -a x=y", Some(vec!["x=y"])),
        ("pub -a=x=y", Some(vec!["x=y"])),
        ("pub -a one -a two", Some(vec!["two"])),
        // Go `flag`: the next word is the value, whatever it looks like.
        ("pub -a -p", Some(vec!["-p"])),
    ];
    for (exec, want) in table {
        let got = ok(exec).common().unwrap().access.clone();
        let want = want
            .as_ref()
            .map(|v| v.iter().map(|e| s(e)).collect::<Vec<_>>());
        assert_eq!(got, want, "{exec:?}");
    }
}

#[test]
fn bool_spellings() {
    for (v, want) in [
        ("1", true),
        ("t", true),
        ("T", true),
        ("true", true),
        ("TRUE", true),
        ("True", true),
        ("0", false),
        ("f", false),
        ("F", false),
        ("false", false),
        ("FALSE", false),
        ("False", false),
    ] {
        for flag in ["-b", "--block", "-block", "--b"] {
            let exec = format!("pub {flag}={v}");
            assert_eq!(ok(&exec), pub_args(|a| a.block = want), "{exec:?}");
        }
        let exec = format!("sub t -k={v} --lossy={v}");
        assert_eq!(
            ok(&exec),
            sub_args("t", |a| {
                a.keep_alive = want;
                a.lossy = want;
            }),
            "{exec:?}"
        );
    }
}

#[test]
fn bool_flag_followed_by_ordinary_word_is_a_topic() {
    assert_eq!(
        ok("pub -b logs"),
        pub_args(|a| a.common.topic = topic("logs"))
    );
    assert_eq!(
        ok("pub -p truely"),
        pub_args(|a| {
            a.common.topic = topic("truely");
            a.common.public = true;
        })
    );
    // A spelled-out bool right after a bool flag is the `-b false` mistake
    // (SPEC §4.1); short forms like `t` or `1` stay usable as topic names.
    for exec in ["sub -p true", "pub -c FALSE", "pipe -r False"] {
        assert!(
            matches!(err(exec), UsageError::BoolNeedsEquals { .. }),
            "{exec:?}"
        );
    }
    for (exec, name) in [("sub -p t", "t"), ("pub -c 1", "1"), ("pipe -r F", "F")] {
        let cmd = ok(exec);
        assert_eq!(
            cmd.common().and_then(|c| c.topic.clone()).as_deref(),
            Some(name),
            "{exec:?}"
        );
    }
    // A bool-looking topic is still reachable: before the flag, or after `--`.
    assert_eq!(
        ok("pub true -p"),
        pub_args(|a| {
            a.common.topic = topic("true");
            a.common.public = true;
        })
    );
    assert_eq!(
        ok("pub -p -- 1"),
        pub_args(|a| {
            a.common.topic = topic("1");
            a.common.public = true;
        })
    );
}

#[test]
fn help_flag_wins() {
    let table: &[(&str, CommandKind)] = &[
        ("pub -h", CommandKind::Pub),
        ("pub --help", CommandKind::Pub),
        ("pub -help", CommandKind::Pub),
        ("pub --h", CommandKind::Pub),
        ("pub logs -h", CommandKind::Pub),
        ("pub -z -h", CommandKind::Pub),
        ("pub a b c -h", CommandKind::Pub),
        ("pub -t nonsense --help", CommandKind::Pub),
        ("pub -h=1", CommandKind::Pub),
        ("sub -h", CommandKind::Sub),
        ("sub --help", CommandKind::Sub),
        ("sub -b -h", CommandKind::Sub),
        ("pipe -h", CommandKind::Pipe),
        ("pipe x --help -r", CommandKind::Pipe),
    ];
    for (exec, kind) in table {
        assert_eq!(ok(exec), Command::Usage(*kind), "{exec:?}");
    }
    // After `--`, `-h` is just a topic.
    assert_eq!(ok("pub -- -h"), pub_args(|a| a.common.topic = topic("-h")));
}

// ---------------------------------------------------------------- errors

#[test]
fn every_error_variant() {
    use CommandKind::{Pipe as PIPE, Pub as PUB, Sub as SUB};
    let table: Vec<(&str, UsageError, &str)> = vec![
        (
            "pub 'logs",
            UsageError::UnbalancedQuote,
            "unbalanced quote in command",
        ),
        (
            "frobnicate x",
            UsageError::UnknownCommand(s("frobnicate")),
            "unknown command: frobnicate",
        ),
        (
            "whoami x",
            UsageError::UnexpectedArgument {
                command: "whoami",
                arg: s("x"),
            },
            "whoami: takes no arguments, got \"x\"",
        ),
        (
            "pub -z",
            UsageError::UnknownFlag {
                kind: PUB,
                flag: s("-z"),
            },
            "pub: unknown flag: -z",
        ),
        (
            "pub --zap=3",
            UsageError::UnknownFlag {
                kind: PUB,
                flag: s("--zap"),
            },
            "pub: unknown flag: --zap",
        ),
        (
            "sub t -b",
            UsageError::UnknownFlag {
                kind: SUB,
                flag: s("-b"),
            },
            "sub: unknown flag: -b",
        ),
        (
            "pipe -k",
            UsageError::UnknownFlag {
                kind: PIPE,
                flag: s("-k"),
            },
            "pipe: unknown flag: -k",
        ),
        (
            "pub -r",
            UsageError::UnknownFlag {
                kind: PUB,
                flag: s("-r"),
            },
            "pub: unknown flag: -r",
        ),
        (
            "sub t --dispatch=multicast",
            UsageError::UnknownFlag {
                kind: SUB,
                flag: s("--dispatch"),
            },
            "sub: unknown flag: --dispatch",
        ),
        (
            "pipe -l",
            UsageError::UnknownFlag {
                kind: PIPE,
                flag: s("-l"),
            },
            "pipe: unknown flag: -l",
        ),
        (
            "pipe -t 1s",
            UsageError::UnknownFlag {
                kind: PIPE,
                flag: s("-t"),
            },
            "pipe: unknown flag: -t",
        ),
        (
            "pub ---b",
            UsageError::BadFlagSyntax {
                kind: PUB,
                arg: s("---b"),
            },
            "pub: bad flag syntax: ---b",
        ),
        (
            "pub -=x",
            UsageError::BadFlagSyntax {
                kind: PUB,
                arg: s("-=x"),
            },
            "pub: bad flag syntax: -=x",
        ),
        (
            "pub -t",
            UsageError::MissingValue {
                kind: PUB,
                flag: s("-t"),
            },
            "pub: flag needs a value: -t",
        ),
        (
            "sub t --access",
            UsageError::MissingValue {
                kind: SUB,
                flag: s("--access"),
            },
            "sub: flag needs a value: --access",
        ),
        (
            "pipe -d",
            UsageError::MissingValue {
                kind: PIPE,
                flag: s("-d"),
            },
            "pipe: flag needs a value: -d",
        ),
        (
            "pub -b false",
            UsageError::BoolNeedsEquals {
                kind: PUB,
                flag: s("-b"),
                value: s("false"),
            },
            "pub: boolean flag -b takes a value only with '=': write -b=false",
        ),
        (
            "sub t --keep-alive True",
            UsageError::BoolNeedsEquals {
                kind: SUB,
                flag: s("--keep-alive"),
                value: s("True"),
            },
            "sub: boolean flag --keep-alive takes a value only with '=': write --keep-alive=True",
        ),
        (
            "pub -b=maybe",
            UsageError::BadBool {
                kind: PUB,
                flag: s("-b"),
                value: s("maybe"),
            },
            "pub: invalid boolean value \"maybe\" for -b (true or false)",
        ),
        (
            "pipe --replay=",
            UsageError::BadBool {
                kind: PIPE,
                flag: s("--replay"),
                value: s(""),
            },
            "pipe: invalid boolean value \"\" for --replay (true or false)",
        ),
        (
            "pub -t abc",
            UsageError::BadDuration {
                kind: PUB,
                flag: s("-t"),
                value: s("abc"),
                reason: parse_duration("abc").unwrap_err(),
            },
            "pub: invalid duration \"abc\" for -t: expected a number and a unit, e.g. 10s, 500ms, 720h",
        ),
        (
            "pub --timeout=10",
            UsageError::BadDuration {
                kind: PUB,
                flag: s("--timeout"),
                value: s("10"),
                reason: parse_duration("10").unwrap_err(),
            },
            "pub: invalid duration \"10\" for --timeout: missing unit (ns, us, ms, s, m or h), e.g. 10s",
        ),
        (
            "pub -d sideways",
            UsageError::BadDispatch {
                kind: PUB,
                value: s("sideways"),
            },
            "pub: invalid dispatch mode \"sideways\" for -d (multicast or round-robin)",
        ),
        (
            "pipe -d=Multicast",
            UsageError::BadDispatch {
                kind: PIPE,
                value: s("Multicast"),
            },
            "pipe: invalid dispatch mode \"Multicast\" for -d (multicast or round-robin)",
        ),
        (
            "pub a b",
            UsageError::TooManyTopics {
                kind: PUB,
                extra: s("b"),
            },
            "pub: more than one topic: \"b\"",
        ),
        (
            "sub a -k b",
            UsageError::TooManyTopics {
                kind: SUB,
                extra: s("b"),
            },
            "sub: more than one topic: \"b\"",
        ),
        (
            "sub",
            UsageError::MissingTopic(SUB),
            "sub: a topic is required",
        ),
        (
            "sub -k -p",
            UsageError::MissingTopic(SUB),
            "sub: a topic is required",
        ),
    ];
    for (exec, want, msg) in table {
        let got = err(exec);
        assert_eq!(got, want, "{exec:?}");
        assert_eq!(got.to_string(), msg, "{exec:?}");
    }

    let long = format!("pub {}", "x".repeat(MAX_EXEC_LEN));
    let e = err(&long);
    assert_eq!(
        e,
        UsageError::ExecTooLong {
            len: MAX_EXEC_LEN + 4,
            max: MAX_EXEC_LEN
        }
    );
    assert_eq!(e.to_string(), "command too long: 4100 bytes (max 4096)");
    // Exactly at the limit is fine.
    let at_limit = format!("pub {}", "x".repeat(MAX_EXEC_LEN - 4));
    assert!(parse(&at_limit).is_ok());
    assert_eq!(
        parse_with_limit("pub abc", 3),
        Err(UsageError::ExecTooLong { len: 7, max: 3 })
    );
}

#[test]
fn error_kinds() {
    assert_eq!(UsageError::UnbalancedQuote.kind(), None);
    assert_eq!(UsageError::UnknownCommand(s("x")).kind(), None);
    assert_eq!(err("ls x").kind(), None);
    assert_eq!(err(&"x".repeat(5000)).kind(), None);
    assert_eq!(err("pub -z").kind(), Some(CommandKind::Pub));
    assert_eq!(err("pub ---z").kind(), Some(CommandKind::Pub));
    assert_eq!(err("sub").kind(), Some(CommandKind::Sub));
    assert_eq!(err("pipe -d").kind(), Some(CommandKind::Pipe));
    assert_eq!(err("pipe -r false").kind(), Some(CommandKind::Pipe));
    assert_eq!(err("pipe -r=x").kind(), Some(CommandKind::Pipe));
    assert_eq!(err("pub -t x").kind(), Some(CommandKind::Pub));
    assert_eq!(err("pub -d x").kind(), Some(CommandKind::Pub));
    assert_eq!(err("pub a b").kind(), Some(CommandKind::Pub));
    let e = UsageError::Unsupported {
        kind: CommandKind::Pipe,
        what: s("-d round-robin"),
    };
    assert_eq!(e.kind(), Some(CommandKind::Pipe));
    assert_eq!(e.to_string(), "pipe: not supported: -d round-robin");
}

#[test]
fn errors_are_one_line_even_with_control_characters() {
    for exec in [
        "'un\nknown'",
        "pub '-\nz'",
        "pub -t 'a\nb'",
        "pub -d 'x\ry'",
        "pub a 'b\nc'",
        "pub -b=\"\x1b[2J\"",
        "whoami 'x\ny'",
    ] {
        let msg = err(exec).to_string();
        assert!(
            !msg.contains('\n') && !msg.contains('\r'),
            "{exec:?}: {msg:?}"
        );
        assert!(!msg.contains('\x1b'), "{exec:?}: {msg:?}");
    }
    assert_eq!(err("'a\nb'").to_string(), "unknown command: a\\nb");
}

#[test]
fn bad_durations() {
    for v in [
        "",
        "abc",
        "10",
        "1x",
        "-1s",
        "-5m",
        ".s",
        "1.5",
        "s",
        "1h-5m",
        "9999999999h",
        "1e3s",
        " 1s",
    ] {
        let exec = format!("pub -t '{v}'");
        match err(&exec) {
            UsageError::BadDuration { value, flag, .. } => {
                assert_eq!(value, v);
                assert_eq!(flag, "-t");
            }
            other => panic!("{exec:?}: {other:?}"),
        }
    }
}

// ---------------------------------------------------------------- quoting

#[test]
fn quoting() {
    let table: &[(&str, &[&str])] = &[
        ("", &[]),
        ("a b  c", &["a", "b", "c"]),
        ("a\tb\nc\r\nd", &["a", "b", "c", "d"]),
        ("'a b'", &["a b"]),
        ("\"a b\"", &["a b"]),
        ("a' 'b", &["a b"]),
        ("''", &[""]),
        ("\"\"", &[""]),
        ("'' ''", &["", ""]),
        ("a ''", &["a", ""]),
        ("'it'\\''s'", &["it's"]),
        ("\"it's\"", &["it's"]),
        ("'say \"hi\"'", &["say \"hi\""]),
        ("\"say \\\"hi\\\"\"", &["say \"hi\""]),
        ("'back\\slash'", &["back\\slash"]),
        ("\"back\\slash\"", &["back\\slash"]),
        ("\"a\\\\b\"", &["a\\b"]),
        ("\"\\$HOME \\`x\\`\"", &["$HOME `x`"]),
        ("\"line\\\ncont\"", &["linecont"]),
        ("a\\ b", &["a b"]),
        ("\\'", &["'"]),
        ("\\\"", &["\""]),
        ("\\\\", &["\\"]),
        ("a\\\nb", &["ab"]),
        ("a \\\n b", &["a", "b"]),
        ("trailing\\", &["trailing\\"]),
        ("$HOME *.log #x a|b", &["$HOME", "*.log", "#x", "a|b"]),
        ("héllo 'wörld ✓'", &["héllo", "wörld ✓"]),
        ("a\"b\"'c'd", &["abcd"]),
    ];
    for (exec, want) in table {
        let got = split_words(exec).unwrap();
        assert_eq!(got, *want, "{exec:?}");
    }
    for exec in [
        "'",
        "\"",
        "'abc",
        "abc\"",
        "\"a'",
        "'a\"",
        "\"abc\\\"",
        "a 'b' 'c",
        "\"\\",
    ] {
        assert_eq!(
            split_words(exec),
            Err(UsageError::UnbalancedQuote),
            "{exec:?}"
        );
        assert_eq!(parse(exec), Err(UsageError::UnbalancedQuote), "{exec:?}");
    }
}

#[test]
fn quoted_topics_and_values() {
    assert_eq!(
        ok("pub 'my topic' -a 'alice, bob'"),
        pub_args(|a| {
            a.common.topic = topic("my topic");
            a.common.access = Some(vec![s("alice"), s("bob")]);
        })
    );
    assert_eq!(ok("sub \"a b\""), sub_args("a b", |_| {}));
}

// ---------------------------------------------------------------- durations

#[test]
fn duration_parsing() {
    let table: &[(&str, Duration)] = &[
        ("0", Duration::ZERO),
        ("+0", Duration::ZERO),
        ("-0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("-0s", Duration::ZERO),
        ("1ns", Duration::from_nanos(1)),
        ("1us", Duration::from_micros(1)),
        ("1\u{b5}s", Duration::from_micros(1)),
        ("1\u{3bc}s", Duration::from_micros(1)),
        ("500ms", Duration::from_millis(500)),
        ("10s", Duration::from_secs(10)),
        ("+10s", Duration::from_secs(10)),
        ("1m30s", Duration::from_secs(90)),
        ("90s", Duration::from_secs(90)),
        ("720h", h(720)),
        ("720h0m0s", h(720)),
        ("1.5h", Duration::from_secs(5400)),
        ("1.5s", Duration::from_millis(1500)),
        (".5s", Duration::from_millis(500)),
        ("5.s", Duration::from_secs(5)),
        ("1.000000001s", Duration::from_nanos(1_000_000_001)),
        ("1.0000000019s", Duration::from_nanos(1_000_000_001)),
        ("2h45m", Duration::from_secs(2 * 3600 + 45 * 60)),
        ("1h1m1s1ms1us1ns", Duration::from_nanos(3_661_001_001_001)),
        ("3m3m", Duration::from_secs(360)),
        ("0.000000001h", Duration::from_nanos(3600)),
        ("0.000000000001h", Duration::from_nanos(3)),
        (
            "2562047h47m16.854775807s",
            Duration::from_nanos(i64::MAX as u64),
        ),
        (
            "9223372036854775807ns",
            Duration::from_nanos(i64::MAX as u64),
        ),
    ];
    for (text, want) in table {
        assert_eq!(parse_duration(text), Ok(*want), "{text:?}");
    }
    for bad in [
        "",
        "+",
        "-",
        "abc",
        "1",
        "00",
        "1.5",
        "s",
        ".",
        ".s",
        "1x",
        "1 s",
        "1S",
        "1H",
        "1d",
        "-1s",
        "-1ns",
        "1h-1m",
        "2562047h47m16.854775808s",
        "9223372036854775808ns",
        "99999999999999999999999999999999999999999h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
    }
    assert!(parse_duration("-1s").unwrap_err().contains("negative"));
    assert!(
        parse_duration("1x")
            .unwrap_err()
            .contains("unknown unit \"x\"")
    );
    assert!(parse_duration("5").unwrap_err().contains("missing unit"));
    assert!(
        parse_duration("9999999h")
            .unwrap_err()
            .contains("out of range")
    );
}

#[test]
fn duration_formatting() {
    let table: &[(Duration, &str)] = &[
        (Duration::ZERO, "0s"),
        (Duration::from_nanos(1), "1ns"),
        (Duration::from_nanos(999), "999ns"),
        (Duration::from_nanos(1_500), "1.5\u{b5}s"),
        (Duration::from_micros(1), "1\u{b5}s"),
        (Duration::from_millis(500), "500ms"),
        (Duration::from_micros(1_500), "1.5ms"),
        (Duration::from_nanos(1_000_001), "1.000001ms"),
        (Duration::from_secs(1), "1s"),
        (Duration::from_millis(1500), "1.5s"),
        (Duration::from_nanos(1_000_000_001), "1.000000001s"),
        (Duration::from_secs(59), "59s"),
        (Duration::from_secs(60), "1m0s"),
        (Duration::from_secs(90), "1m30s"),
        (Duration::from_millis(90_500), "1m30.5s"),
        (Duration::from_secs(3600), "1h0m0s"),
        (Duration::from_secs(2 * 3600 + 45 * 60), "2h45m0s"),
        (h(720), "720h0m0s"),
        (
            Duration::from_nanos(i64::MAX as u64),
            "2562047h47m16.854775807s",
        ),
        (Duration::from_nanos(u64::MAX), "5124095h34m33.709551615s"),
    ];
    for (d, want) in table {
        assert_eq!(format_duration(*d), *want, "{d:?}");
    }
}

// ---------------------------------------------------------------- texts

#[test]
fn help_text_is_complete() {
    let t = help_text();
    for needle in [
        "help",
        "whoami",
        "ls",
        "pub [TOPIC]",
        "sub TOPIC",
        "pipe [TOPIC]",
        "echo hi | ssh -p 2222 HOST pub hello",
        "-b=false",
        "--",
        "720h0m0s",
    ] {
        assert!(t.contains(needle), "help lacks {needle:?}:\n{t}");
    }
    for f in FLAGS {
        assert!(t.contains(&f.synopsis()), "help lacks {}", f.synopsis());
    }
    assert!(t.contains("logs [--all]"), "{t}");
    // `--all` is in the command list, not in the pub/sub/pipe flag table.
    assert!(!t.contains("--all "), "{t}");
    assert!(!t.contains("{host}") && !t.contains('{'), "{t}");
    assert!(t.lines().count() < 45, "help too long:\n{t}");
    assert!(t.ends_with('\n'));
}

#[test]
fn usage_texts_list_exactly_their_flags() {
    let table: &[(CommandKind, &str, &str)] = &[
        (CommandKind::Pub, "usage: pub [TOPIC] [flags]", "abtepcdq"),
        (CommandKind::Sub, "usage: sub TOPIC [flags]", "apckl"),
        (CommandKind::Pipe, "usage: pipe [TOPIC] [flags]", "apcrd"),
        (CommandKind::Logs, "usage: logs [flags]", "-"),
    ];
    for (kind, first, flags) in table {
        let t = usage_text(*kind);
        assert_eq!(t.lines().next(), Some(*first));
        let listed: String = t
            .lines()
            .filter_map(|l| l.strip_prefix("  -"))
            .filter_map(|l| l.chars().next())
            .filter(|c| *c != 'h')
            .collect();
        assert_eq!(&listed, flags, "{kind}:\n{t}");
        for f in FLAGS.iter().filter(|f| f.kinds.contains(kind)) {
            let line = t.lines().find(|l| l.contains(&f.synopsis())).unwrap();
            assert!(
                line.ends_with(&format!("(default {})", f.default)),
                "{line}"
            );
        }
        assert!(t.contains("-h, --help"));
        assert!(t.ends_with('\n'));
    }
    assert!(usage_text(CommandKind::Logs).contains("--all "));
    assert!(usage_text(CommandKind::Logs).contains("skipped N lines"));
    assert!(!usage_text(CommandKind::Logs).contains("TOPIC"));
    assert!(usage_text(CommandKind::Pub).contains("-b, --block[=BOOL]"));
    assert!(usage_text(CommandKind::Pub).contains("(default 720h0m0s)"));
    assert!(usage_text(CommandKind::Pipe).contains("(default multicast)"));
}

#[test]
fn flag_table_defaults_match_parse_defaults() {
    let PubArgs {
        block,
        timeout,
        dispatch,
        ..
    } = PubArgs::default();
    assert_eq!(block.to_string(), FLAGS[1].default);
    assert_eq!(format_duration(timeout), FLAGS[2].default);
    assert_eq!(dispatch.to_string(), FLAGS[8].default);
}

#[test]
fn display_helpers() {
    assert_eq!(CommandKind::Pipe.to_string(), "pipe");
    assert_eq!(Dispatch::RoundRobin.to_string(), "round-robin");
    assert_eq!(Command::Ls.common(), None);
    assert_eq!(ok("sub t -p").common().unwrap().topic.as_deref(), Some("t"));
}

// ---------------------------------------------------------------- properties

fn shell_quote(w: &str) -> String {
    format!("'{}'", w.replace('\'', "'\\''"))
}

proptest! {
    #[test]
    fn parse_never_panics(exec in any::<String>()) {
        if let Err(e) = parse(&exec) {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n'));
        }
    }

    #[test]
    fn parse_never_panics_on_flag_like_words(
        cmd in prop::sample::select(vec!["pub", "sub", "pipe", "ls", "help", "whoami", "x"]),
        words in prop::collection::vec(
            prop_oneof![
                "-{1,3}[a-z=-]{0,12}(=[a-z0-9.'\" ]{0,6})?",
                "[a-z0-9 .,'\"\\\\]{0,10}",
                Just("--".to_string()),
                Just("-b".to_string()),
                Just("false".to_string()),
                Just("-t".to_string()),
                Just("-a".to_string()),
                Just("-d".to_string()),
            ],
            0..8,
        ),
        quote in any::<bool>(),
    ) {
        let rest: Vec<String> = if quote {
            words.iter().map(|w| shell_quote(w)).collect()
        } else {
            words.clone()
        };
        let exec = format!("{cmd} {}", rest.join(" "));
        match parse(&exec) {
            Ok(c) => {
                if quote && let Command::Sub(a) = &c {
                    prop_assert!(a.common.topic.is_some());
                }
            }
            Err(e) => prop_assert!(!e.to_string().contains('\n')),
        }
    }

    #[test]
    fn split_words_round_trips_single_quoted(words in prop::collection::vec(any::<String>(), 0..8)) {
        let exec = words.iter().map(|w| shell_quote(w)).collect::<Vec<_>>().join(" ");
        prop_assert_eq!(split_words(&exec).unwrap(), words);
    }

    #[test]
    fn split_words_round_trips_backslash_escaped(words in prop::collection::vec("[^\n]{1,10}", 0..8)) {
        let exec = words
            .iter()
            .map(|w| w.chars().flat_map(|c| ['\\', c]).collect::<String>())
            .collect::<Vec<_>>()
            .join("\t");
        prop_assert_eq!(split_words(&exec).unwrap(), words);
    }

    #[test]
    fn duration_round_trips(nanos in 0..=i64::MAX as u64) {
        let d = Duration::from_nanos(nanos);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn duration_round_trips_whole_units(secs in 0u64..10_000_000, millis in 0u64..1000) {
        let d = Duration::from_secs(secs) + Duration::from_millis(millis);
        prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }

    #[test]
    fn parse_duration_never_panics(s in "[-+0-9.a-zµμ]{0,24}") {
        let _ = parse_duration(&s);
    }

    #[test]
    fn timeout_flag_round_trips(nanos in 0..=i64::MAX as u64) {
        let d = Duration::from_nanos(nanos);
        let exec = format!("pub -t {}", format_duration(d));
        prop_assert_eq!(parse(&exec), Ok(pub_args(|a| a.timeout = d)));
    }
}

#[test]
fn access_shows_sets_or_clears() {
    let access = |t: &str, public: bool, change: AccessChange| {
        Command::Access(AccessArgs {
            topic: s(t),
            public,
            change,
        })
    };
    let table = [
        ("access t", access("t", false, AccessChange::Show)),
        ("access -p t", access("t", true, AccessChange::Show)),
        (
            "access t bob,SHA256:x",
            access("t", false, AccessChange::Set(vec![s("bob"), s("SHA256:x")])),
        ),
        (
            "access t ' bob , carol '",
            access("t", false, AccessChange::Set(vec![s("bob"), s("carol")])),
        ),
        ("access t --clear", access("t", false, AccessChange::Clear)),
        (
            "access --clear -p t",
            access("t", true, AccessChange::Clear),
        ),
        ("access -- -t", access("-t", false, AccessChange::Show)),
        ("access -h", Command::Usage(CommandKind::Access)),
        ("help access", Command::Usage(CommandKind::Access)),
    ];
    for (exec, want) in table {
        assert_eq!(ok(exec), want, "{exec}");
    }
    let bad = [
        ("access", "access: a topic is required"),
        (
            "access t bob --clear",
            "access: give a list or --clear, not both",
        ),
        ("access t a b", "access: more than one list: \"b\""),
        (
            "access t ''",
            "access: empty list; to remove the list, use --clear",
        ),
        ("access t -a bob", "access: unknown flag: -a"),
    ];
    for (exec, want) in bad {
        let e = err(exec);
        assert_eq!(e.to_string(), want, "{exec}");
        assert_eq!(e.kind(), Some(CommandKind::Access), "{exec}");
    }
}
