//! The command surface (SPEC §4): help, whoami, ls, flag parsing, usage
//! errors and status lines, all through the real server with the real
//! OpenSSH client.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::time::{Duration, Instant};

use sshpipe::identity::AuthMode;

// ---------------------------------------------------------------- helpers

/// The hint line pub prints for `cmd NAME` (`sub` or `pipe`).
fn hint(server: &TestServer, cmd: &str, name: &str) -> String {
    format!("  ssh -p {} testhost {cmd} {name}", server.addr.port())
}

/// The full status-line block of a pub that did not have to wait.
fn sent_without_wait(server: &TestServer, name: &str) -> String {
    format!(
        "subscribe to this channel:\n{}\nsending msg ...\nmsg sent!\n",
        hint(server, "sub", name)
    )
}

fn stderr_lines(out: &Out) -> Vec<&str> {
    out.stderr.lines().collect()
}

/// A usage error: exit 2, nothing on stdout, the first stderr line exactly
/// `first`, and (SPEC §4.3) the usage after it.
fn assert_usage_error(out: &Out, first: &str, ctx: &str) {
    assert_eq!(out.code(), 2, "{ctx}: exit status; stderr: {}", out.stderr);
    assert!(
        out.stdout.is_empty(),
        "{ctx}: stdout: {:?}",
        out.stdout_str()
    );
    let lines = stderr_lines(out);
    assert_eq!(
        lines.first().copied(),
        Some(first),
        "{ctx}: stderr: {}",
        out.stderr
    );
}

/// For a command's flag error: the line, then that command's usage block.
fn assert_flag_error(out: &Out, cmd: &str, first: &str, ctx: &str) {
    assert_usage_error(out, first, ctx);
    let lines = stderr_lines(out);
    assert!(
        lines.len() > 2,
        "{ctx}: the usage should follow the error line; stderr: {}",
        out.stderr
    );
    assert!(
        lines[1].starts_with(&format!("usage: {cmd} ")),
        "{ctx}: second line should be {cmd}'s usage; stderr: {}",
        out.stderr
    );
}

/// Checks a UUID v4 in canonical text form.
fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

/// `USER@127.0.0.1:PORT#N`
fn is_client_id(id: &str, user: &str) -> bool {
    let Some(rest) = id.strip_prefix(&format!("{user}@127.0.0.1:")) else {
        return false;
    };
    let Some((port, n)) = rest.split_once('#') else {
        return false;
    };
    !port.is_empty()
        && port.chars().all(|c| c.is_ascii_digit())
        && !n.is_empty()
        && n.chars().all(|c| c.is_ascii_digit())
}

/// Parses a `  subs: N (id, id)` line into (N, ids).
fn parse_count_line<'a>(line: &'a str, what: &str) -> (usize, Vec<&'a str>) {
    let prefix = format!("  {what}: ");
    let rest = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected `{prefix}...`, got {line:?}"));
    match rest.split_once(' ') {
        None => (rest.parse().expect("count"), Vec::new()),
        Some((n, ids)) => {
            let ids = ids
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or_else(|| panic!("ids in parentheses: {line:?}"));
            (n.parse().expect("count"), ids.split(", ").collect())
        }
    }
}

/// Reads a child's stdout until it has produced at least `want.len()` bytes
/// (bounded by the harness wait), and returns what it read.
fn read_until(child: &mut std::process::Child, want: &[u8], what: &str) -> Vec<u8> {
    use std::io::Read;
    use std::sync::{Arc, Mutex};
    let mut stdout = child.stdout.take().expect("stdout piped");
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&buf);
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut chunk) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&chunk[..n]);
        }
    });
    wait_until(what, || buf.lock().unwrap().len() >= want.len());
    buf.lock().unwrap().clone()
}

fn users_toml(entries: &[(&str, &Key, bool)]) -> String {
    let mut s = String::new();
    for (name, key, admin) in entries {
        s.push_str(&format!(
            "[users.{name}]\nkeys = [\"{}\"]\nadmin = {admin}\n\n",
            key.public
        ));
    }
    s
}

// ---------------------------------------------------------------- help

const COMMANDS: [&str; 6] = ["help", "whoami", "ls", "pub", "sub", "pipe"];

fn assert_is_help(out: &Out, ctx: &str) {
    out.expect_code(0);
    let text = out.stdout_str();
    for cmd in COMMANDS {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "{ctx}: help should list `{cmd}`; stdout:\n{text}"
        );
    }
}

#[test]
fn help_lists_the_commands_on_stdout_and_exits_zero() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["help"], b"");
    assert_is_help(&out, "help");
    assert_eq!(out.stderr, "", "help prints nothing on stderr");
}

#[test]
fn no_command_prints_help_and_exits_zero() {
    let server = TestServer::start();
    let key = server.key("k");
    let help = server.run(&key, &["help"], b"");
    help.expect_code(0);
    // `ssh host` with no command (stdin is not a tty: no PTY either).
    let out = server.run(&key, &[], b"ignored input\n");
    assert_is_help(&out, "ssh host");
    assert_eq!(out.stdout, help.stdout, "same text as `help`");
}

#[test]
fn pub_dash_h_and_sub_double_dash_help_print_usage_on_stdout() {
    let server = TestServer::start();
    let key = server.key("k");
    for (args, cmd) in [
        (&["pub", "-h"][..], "pub"),
        (&["pub", "--help"][..], "pub"),
        (&["sub", "--help"][..], "sub"),
        (&["sub", "-h"][..], "sub"),
        (&["pipe", "-h"][..], "pipe"),
    ] {
        let out = server.run(&key, args, b"");
        out.expect_code(0);
        let text = out.stdout_str();
        assert!(
            text.starts_with(&format!("usage: {cmd} ")),
            "{args:?}: stdout: {text}"
        );
        assert!(
            text.contains("-c, --clean"),
            "{args:?}: flags listed: {text}"
        );
        assert_eq!(out.stderr, "", "{args:?}: stderr");
    }
}

// ---------------------------------------------------------------- whoami

#[test]
fn whoami_for_an_anonymous_key_is_three_exact_lines() {
    let server = TestServer::start();
    let key = server.key("anon");
    let out = server.run(&key, &["whoami"], b"");
    out.expect_code(0);
    assert_eq!(
        out.stdout_str(),
        format!(
            "user: {}\nfingerprint: {}\nadmin: no\n",
            key.anonymous_name(),
            key.fingerprint
        )
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn whoami_for_a_users_file_user_and_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Key::new(dir.path(), "alice");
    let root = Key::new(dir.path(), "root");
    let server = TestServer::with(Config {
        users_toml: Some(users_toml(&[
            ("alice", &alice, false),
            ("boss", &root, true),
        ])),
        auth: AuthMode::Open,
        ..Config::default()
    });
    let out = server.run(&alice, &["whoami"], b"");
    out.expect_code(0);
    assert_eq!(
        out.stdout_str(),
        format!(
            "user: alice\nfingerprint: {}\nadmin: no\n",
            alice.fingerprint
        )
    );
    let out = server.run(&root, &["whoami"], b"");
    out.expect_code(0);
    assert_eq!(
        out.stdout_str(),
        format!(
            "user: boss\nfingerprint: {}\nadmin: yes\n",
            root.fingerprint
        )
    );
    assert_eq!(out.stderr, "");
}

// ---------------------------------------------------------------- ls

#[test]
fn ls_with_nothing_says_no_topics() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["ls"], b"");
    out.expect_code(0);
    assert_eq!(out.stdout_str(), "no topics\n");
    assert_eq!(out.stderr, "");
}

#[test]
fn ls_shows_names_counts_and_ids_sorted() {
    let server = TestServer::start();
    let key = server.key("k");
    let user = key.anonymous_name();
    let full = |n: &str| format!("{user}/{n}");

    // "zeta": a pub waiting for a receiver.
    let waiting = server.spawn(&key, &["pub", "zeta"]);
    server.wait_waiting_pubs(&full("zeta"), 1);
    // "alpha": two subs.
    let sub_a1 = server.spawn(&key, &["sub", "alpha"]);
    let sub_a2 = server.spawn(&key, &["sub", "alpha"]);
    server.wait_receivers(&full("alpha"), 2);
    // "mid": a connected pub (stdin still open) and a sub.
    let sub_m = server.spawn(&key, &["sub", "mid"]);
    server.wait_receivers(&full("mid"), 1);
    let mut pub_m = server.spawn(&key, &["pub", "mid"]);
    server.wait_senders(&full("mid"), 1);
    // "beta": a pipe with an access list.
    let mut pipe_b = server.spawn(&key, &["pipe", "beta", "-a", "bob"]);
    server.wait_counts(&full("beta"), "a pipe on beta", |c| c.receivers >= 1);

    let out = server.run(&key, &["ls"], b"");
    out.expect_code(0);
    assert_eq!(out.stderr, "");
    let text = out.stdout_str();
    let lines: Vec<&str> = text.lines().collect();

    // Topic name lines: the ones not indented.
    let names: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.starts_with(' '))
        .collect();
    assert_eq!(names, ["alpha", "beta", "mid", "zeta"], "ls:\n{text}");

    let block = |name: &str| -> Vec<&str> {
        let start = lines.iter().position(|l| *l == name).unwrap();
        lines[start + 1..]
            .iter()
            .copied()
            .take_while(|l| l.starts_with(' '))
            .collect()
    };

    let check = |name: &str,
                 access: Option<&str>,
                 pubs: usize,
                 subs: usize,
                 pipes: usize,
                 waiting: usize| {
        let b = block(name);
        let mut i = 0;
        if let Some(acl) = access {
            assert_eq!(b[0], format!("  access: {acl}"), "{name}:\n{text}");
            i = 1;
        }
        assert_eq!(b.len(), i + 4, "{name}: lines:\n{text}");
        for (line, what, n) in [
            (b[i], "pubs", pubs),
            (b[i + 1], "subs", subs),
            (b[i + 2], "pipes", pipes),
        ] {
            let (count, ids) = parse_count_line(line, what);
            assert_eq!(count, n, "{name} {what}:\n{text}");
            assert_eq!(ids.len(), n, "{name} {what} ids:\n{text}");
            for id in ids {
                assert!(is_client_id(id, &user), "{name}: id {id:?}:\n{text}");
            }
        }
        assert_eq!(
            b[i + 3],
            format!("  waiting pubs: {waiting}"),
            "{name}:\n{text}"
        );
    };
    check("alpha", None, 0, 2, 0, 0);
    check("beta", Some("bob"), 0, 0, 1, 0);
    check("mid", None, 1, 1, 0, 0);
    check("zeta", None, 1, 0, 0, 1);

    // Ids are distinct across the listing.
    let mut ids: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.split_once(" (").map(|(_, r)| r.trim_end_matches(')')))
        .flat_map(|r| r.split(", "))
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "client ids are unique:\n{text}");
    assert_eq!(n, 6, "six clients listed:\n{text}");

    // Clean up: end every client.
    drop(pub_m.stdin.take());
    drop(pipe_b.stdin.take());
    collect(pub_m, "pub mid").expect_code(0);
    collect(sub_m, "sub mid").expect_code(0);
    collect(pipe_b, "pipe beta").expect_code(0);
    for mut c in [waiting, sub_a1, sub_a2] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

// ---------------------------------------------------------------- usage errors

#[test]
fn unknown_command_is_two_lines_on_stderr_and_exit_two() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["bogus"], b"");
    assert_usage_error(&out, "unknown command: bogus", "bogus");
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 2, "stderr: {}", out.stderr);
    assert!(lines[1].contains("help"), "points to help: {}", out.stderr);
    assert!(
        lines[1].contains(&format!("ssh -p {} testhost help", server.addr.port())),
        "pointer names this server: {}",
        out.stderr
    );
}

#[test]
fn flag_errors_print_the_problem_then_the_usage() {
    let server = TestServer::start();
    let key = server.key("k");
    let cases: &[(&[&str], &str, &str)] = &[
        (&["pub", "-z", "t"], "pub", "pub: unknown flag: -z"),
        (
            &["sub", "t", "--bogus"],
            "sub",
            "sub: unknown flag: --bogus",
        ),
        (
            &["pub", "-b", "false", "t"],
            "pub",
            "pub: boolean flag -b takes a value only with '=': write -b=false",
        ),
        (
            &["pub", "-b=maybe", "t"],
            "pub",
            "pub: invalid boolean value \"maybe\" for -b (true or false)",
        ),
        (&["pub", "t", "-t"], "pub", "pub: flag needs a value: -t"),
        (&["pub", "a", "b"], "pub", "pub: more than one topic: \"b\""),
        (&["sub", "a", "b"], "sub", "sub: more than one topic: \"b\""),
        (&["sub"], "sub", "sub: a topic is required"),
        (&["sub", "-c"], "sub", "sub: a topic is required"),
    ];
    for (args, cmd, first) in cases {
        let out = server.run(&key, args, b"");
        assert_flag_error(&out, cmd, first, &format!("{args:?}"));
    }
    // A bad duration names the value and the flag.
    let out = server.run(&key, &["pub", "-t", "abc", "t"], b"");
    assert_eq!(out.code(), 2, "stderr: {}", out.stderr);
    let first = stderr_lines(&out)[0];
    assert!(
        first.starts_with("pub: invalid duration \"abc\" for -t"),
        "stderr: {}",
        out.stderr
    );
    assert!(
        stderr_lines(&out)[1].starts_with("usage: pub "),
        "{}",
        out.stderr
    );
}

#[test]
fn invalid_topic_names_exit_two_naming_the_topic() {
    let server = TestServer::start();
    let key = server.key("k");
    let long = "a".repeat(257);
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["sub".into(), "a//b".into()],
            "invalid topic name: \"a//b\"".into(),
        ),
        (
            vec!["pub".into(), "a//b".into()],
            "invalid topic name: \"a//b\"".into(),
        ),
        (
            vec!["sub".into(), ".".into()],
            "invalid topic name: \".\"".into(),
        ),
        (
            vec!["sub".into(), "a/../b".into()],
            "invalid topic name: \"a/../b\"".into(),
        ),
        (
            vec!["sub".into(), "/x".into()],
            "invalid topic name: \"/x\"".into(),
        ),
        (
            vec!["sub".into(), "x/".into()],
            "invalid topic name: \"x/\"".into(),
        ),
        (
            vec!["sub".into(), long.clone()],
            "invalid topic name: \"".into(),
        ),
        // A space, through quoting of the exec string.
        (
            vec!["sub 'a b'".into()],
            "invalid topic name: \"a b\"".into(),
        ),
        (
            vec!["pipe \"a b\"".into()],
            "invalid topic name: \"a b\"".into(),
        ),
        // A control character.
        (
            vec!["sub".into(), "a\u{1}b".into()],
            "invalid topic name: \"a".into(),
        ),
        (
            vec!["sub".into(), "a\u{7f}b".into()],
            "invalid topic name: \"a".into(),
        ),
    ];
    for (args, prefix) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = server.run(&key, &args, b"");
        let ctx = format!(
            "{:?}",
            args.iter()
                .map(|a| &a[..a.len().min(40)])
                .collect::<Vec<_>>()
        );
        assert_eq!(out.code(), 2, "{ctx}: stderr: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{ctx}");
        assert!(
            stderr_lines(&out)
                .first()
                .is_some_and(|l| l.starts_with(prefix.as_str())),
            "{ctx}: stderr: {}",
            out.stderr
        );
    }
    // The 257-byte case says why.
    let out = server.run(&key, &["sub", &long], b"");
    assert!(out.stderr.contains("257"), "length named: {}", out.stderr);
    // 256 bytes is still a valid name.
    let ok = "b".repeat(256);
    let out = server.run(&key, &["pub", "-b=false", "-c", &ok], b"x");
    out.expect_code(0);
    assert_eq!(out.stderr, "");
}

/// SPEC §4.3: every usage error (bad topic name, bad access list included) is
/// one line naming the problem, *then the usage*.
#[test]
fn topic_and_access_errors_are_followed_by_usage() {
    let server = TestServer::start();
    let key = server.key("k");
    for args in [
        &["sub", "a//b"][..],
        &["pub", "a/../b"][..],
        &["pub", "t", "-a", "'Bad Name'"][..],
    ] {
        let out = server.run(&key, args, b"");
        assert_eq!(out.code(), 2, "{args:?}: {}", out.stderr);
        let lines = stderr_lines(&out);
        assert!(
            lines.len() >= 2 && (lines[1].starts_with("usage: ") || lines[1].contains("help")),
            "{args:?}: the usage (or a pointer to it) should follow the error line; stderr:\n{}",
            out.stderr
        );
    }
}

#[test]
fn unbalanced_quote_is_a_usage_error() {
    let server = TestServer::start();
    let key = server.key("k");
    for cmd in ["sub 'abc", "pub \"t"] {
        let out = server.run(&key, &[cmd], b"");
        assert_eq!(out.code(), 2, "{cmd:?}: {}", out.stderr);
        assert!(out.stdout.is_empty());
        let first = stderr_lines(&out).first().copied().unwrap_or("");
        assert!(
            first.contains("quote") || first.contains("escape") || first.contains("backslash"),
            "{cmd:?}: names the problem: {}",
            out.stderr
        );
    }
    // Balanced quoting works: the quotes are removed.
    let out = server.run(&key, &["pub -c -b=false 'qt'"], b"x");
    out.expect_code(0);
}

#[test]
fn invalid_access_entry_is_a_usage_error() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["pub", "t", "-a", "'Bad Name'"], b"");
    assert_usage_error(
        &out,
        "invalid access list entry: \"Bad Name\"",
        "-a 'Bad Name'",
    );
    let out = server.run(&key, &["sub", "t", "--access", "ok,Bad!"], b"");
    assert_eq!(out.code(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("invalid access list entry: \"Bad!\""),
        "{}",
        out.stderr
    );
}

#[test]
fn queue_flag_short_and_long_forms_queue() {
    // `-q` used to be "not supported"; it now queues (SPEC §8, issue 4).
    let server = TestServer::start();
    let key = server.key("k");
    for (n, args) in [&["pub", "-q", "t"][..], &["pub", "--queue", "t"][..]]
        .into_iter()
        .enumerate()
    {
        let out = server.run(&key, args, b"");
        out.expect_code(0);
        let want = format!("queued ({} waiting)", n + 1);
        assert_eq!(stderr_lines(&out).last().copied(), Some(want.as_str()));
        assert!(out.stdout.is_empty());
    }
    // -d multicast is the default and fine.
    let out = server.run(
        &key,
        &["pub", "-c", "-b=false", "-d", "multicast", "t"],
        b"x",
    );
    out.expect_code(0);
    assert_eq!(out.stderr, "");
}

// ---------------------------------------------------------------- flags

#[test]
fn flags_before_or_after_the_topic_are_the_same() {
    let server = TestServer::start();
    let key = server.key("k");
    for args in [
        &["pub", "-b=false", "t"][..],
        &["pub", "t", "-b=false"][..],
        &["pub", "--block=false", "t"][..],
        &["pub", "t", "--block=0"][..],
        &["pub", "-b=f", "t"][..],
        &["pub", "-b=FALSE", "t"][..],
    ] {
        let start = Instant::now();
        let out = server.run(&key, args, b"dropped\n");
        out.expect_code(0);
        assert_eq!(out.stderr, sent_without_wait(&server, "t"), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{args:?} did not wait"
        );
    }
}

#[test]
fn timeout_ends_a_waiting_pub_with_exit_one() {
    let server = TestServer::start();
    let key = server.key("k");
    let start = Instant::now();
    let out = server.run(&key, &["pub", "t", "-t", "300ms"], b"x\n");
    let took = start.elapsed();
    out.expect_code(1);
    assert_eq!(
        out.stderr,
        format!(
            "subscribe to this channel:\n{}\nno subs found ... waiting 300ms\ntimeout reached, exiting\n",
            hint(&server, "sub", "t")
        )
    );
    assert!(
        took >= Duration::from_millis(300),
        "waited the timeout: {took:?}"
    );
    assert!(
        took < Duration::from_secs(10),
        "but not much more: {took:?}"
    );
    // Long form.
    let out = server.run(&key, &["pub", "--timeout=300ms", "t"], b"x\n");
    out.expect_code(1);
    assert!(
        out.stderr.ends_with("timeout reached, exiting\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn compound_duration_is_accepted_and_shown_in_go_format() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/t", key.anonymous_name());
    let publ = server.spawn(&key, &["pub", "t", "-t", "1m30s"]);
    server.wait_waiting_pubs(&full, 1);
    let sub = server.spawn(&key, &["sub", "t"]);
    let p = finish(publ, b"hello\n", "pub -t 1m30s");
    p.expect_code(0);
    assert_eq!(
        p.stderr,
        format!(
            "subscribe to this channel:\n{}\nno subs found ... waiting 1m30s\nsending msg ...\nmsg sent!\n",
            hint(&server, "sub", "t")
        )
    );
    let s = collect(sub, "sub");
    s.expect_code(0);
    assert_eq!(s.stdout, b"hello\n");
}

#[test]
fn clean_suppresses_status_lines_but_not_errors() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["pub", "-c", "-b=false", "t"], b"x");
    out.expect_code(0);
    assert_eq!(out.stderr, "");
    let out = server.run(&key, &["pub", "t", "--clean", "-b=false"], b"x");
    out.expect_code(0);
    assert_eq!(out.stderr, "");
    // Runtime error still printed.
    let out = server.run(&key, &["pub", "-c", "-t", "300ms", "t"], b"x");
    out.expect_code(1);
    assert_eq!(out.stderr, "timeout reached, exiting\n");
    // Usage error still printed.
    let out = server.run(&key, &["pub", "-c", "-t", "abc", "t"], b"x");
    assert_eq!(out.code(), 2);
    assert!(
        out.stderr.starts_with("pub: invalid duration"),
        "{}",
        out.stderr
    );
    // pipe with an omitted topic: -c hides the hint too.
    let out = server.run(&key, &["pipe", "-c"], b"");
    out.expect_code(0);
    assert_eq!(out.stderr, "");
}

#[test]
fn long_flag_names_work() {
    let server = TestServer::start();
    let key = server.key("k");
    let user = key.anonymous_name();

    // --public: the hint says -p.
    let out = server.run(&key, &["pub", "--public", "--block=false", "pt"], b"x");
    out.expect_code(0);
    assert_eq!(
        out.stderr,
        format!(
            "subscribe to this channel:\n{}\nsending msg ...\nmsg sent!\n",
            hint(&server, "sub", "-p pt")
        )
    );

    // --access: the hint shows the full name others type; ls shows the list.
    let out = server.run(
        &key,
        &["pub", "--access", "bob", "--block=false", "at"],
        b"x",
    );
    out.expect_code(0);
    assert!(
        out.stderr.contains(&format!(
            "{}\n",
            hint(&server, "sub", &format!("{user}/at"))
        )),
        "{}",
        out.stderr
    );
    let ls = server.run(&key, &["ls"], b"");
    assert!(
        ls.stdout_str().contains("at\n  access: bob\n"),
        "{}",
        ls.stdout_str()
    );
    let out = server.run(
        &key,
        &["pub", "--access=bob,carol", "-c", "-b=false", "at2"],
        b"",
    );
    out.expect_code(0);

    // --empty: nothing is sent even though stdin has data.
    let full = format!("{user}/e");
    let sub = server.spawn(&key, &["sub", "e", "--clean"]);
    server.wait_receivers(&full, 1);
    let out = server.run(&key, &["pub", "e", "--empty"], b"must not arrive\n");
    out.expect_code(0);
    let s = collect(sub, "sub e");
    s.expect_code(0);
    assert_eq!(s.stdout, b"", "--empty sends nothing");

    // --keep-alive: the sub outlives its first sender.
    let full = format!("{user}/k");
    let mut sub = server.spawn(&key, &["sub", "--keep-alive", "k"]);
    drop(sub.stdin.take());
    server.wait_receivers(&full, 1);
    server
        .run(&key, &["pub", "k", "-c"], b"one\n")
        .expect_code(0);
    // Were the sub gone, this blocking pub would time out.
    server
        .run(&key, &["pub", "k", "-c", "--timeout", "20s"], b"two\n")
        .expect_code(0);
    // A pub's exit 0 means the server handed the data over; wait until the
    // client has written it before ending the sub.
    let got = read_until(&mut sub, b"one\ntwo\n", "sub -k output");
    assert_eq!(got, b"one\ntwo\n");
    let _ = sub.kill();
    let _ = sub.wait();

    // --replay: a pipe receives its own data.
    let out = server.run(&key, &["pipe", "r", "--replay"], b"echo\n");
    out.expect_code(0);
    assert_eq!(out.stdout, b"echo\n");
    assert_eq!(out.stderr, "");

    // --lossy is accepted.
    let full = format!("{user}/l");
    let sub = server.spawn(&key, &["sub", "l", "--lossy"]);
    server.wait_receivers(&full, 1);
    server
        .run(&key, &["pub", "l", "-c"], b"lossy\n")
        .expect_code(0);
    let s = collect(sub, "sub --lossy");
    s.expect_code(0);
    assert_eq!(s.stdout, b"lossy\n");
}

#[test]
fn sub_dash_l_is_accepted() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/t", key.anonymous_name());
    let sub = server.spawn(&key, &["sub", "-l", "t"]);
    server.wait_receivers(&full, 1);
    let data = random_bytes(100_000, 7);
    server.run(&key, &["pub", "t", "-c"], &data).expect_code(0);
    let s = collect(sub, "sub -l");
    s.expect_code(0);
    // Lossy may skip under pressure, but then it says so; here it keeps up.
    if s.stdout.len() == data.len() {
        assert_eq!(sha256(&s.stdout), sha256(&data));
    } else {
        assert!(s.stderr.contains("skipped"), "{}", s.stderr);
    }
}

#[test]
fn ls_sorts_by_the_name_the_user_sees() {
    // An anonymous user's own topics show by local name; a public topic as
    // public/NAME. "fp-…/zeta" sorts before "public/mid" by full name, but
    // the listing must follow what is printed.
    let server = TestServer::start();
    let key = server.key("k");
    let me = key.anonymous_name();
    let mut subs = Vec::new();
    for (args, full) in [
        (vec!["sub", "-k", "zeta"], format!("{me}/zeta")),
        (vec!["sub", "-k", "-p", "mid"], "public/mid".to_string()),
        (vec!["sub", "-k", "alpha"], format!("{me}/alpha")),
    ] {
        subs.push(server.spawn(&key, &args));
        server.wait_receivers(&full, 1);
    }
    let out = server.run(&key, &["ls"], b"");
    out.expect_code(0);
    let names: Vec<String> = out
        .stdout_str()
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(str::to_string)
        .collect();
    assert_eq!(names, ["alpha", "public/mid", "zeta"]);
    for mut s in subs {
        s.kill().unwrap();
        let _ = s.wait();
    }
}

#[test]
fn double_dash_ends_flags() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/-dash", key.anonymous_name());
    let sub = server.spawn(&key, &["sub", "-c", "--", "-dash"]);
    server.wait_receivers(&full, 1);
    let out = server.run(&key, &["pub", "-c", "--", "-dash"], b"dd\n");
    out.expect_code(0);
    let s = collect(sub, "sub -- -dash");
    s.expect_code(0);
    assert_eq!(s.stdout, b"dd\n");
    // After --, "-c" is a topic, not --clean: status lines still print,
    // and the hint can be typed back as it is shown.
    let out = server.run(&key, &["pub", "-b=false", "--", "-c"], b"");
    out.expect_code(0);
    assert!(out.stderr.contains("msg sent!"), "{}", out.stderr);
    let port = server.addr.port();
    assert!(
        out.stderr
            .contains(&format!("ssh -p {port} testhost sub -- -c\n")),
        "{}",
        out.stderr
    );
    // Two topics after -- is still an error.
    let out = server.run(&key, &["pub", "--", "a", "b"], b"");
    assert_eq!(out.code(), 2, "{}", out.stderr);
}

// ---------------------------------------------------------------- status lines

#[test]
fn pub_status_lines_when_a_sub_is_there() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/news", key.anonymous_name());
    let sub = server.spawn(&key, &["sub", "news"]);
    server.wait_receivers(&full, 1);
    let p = server.run(&key, &["pub", "news"], b"hi\n");
    p.expect_code(0);
    assert_eq!(p.stderr, sent_without_wait(&server, "news"));
    assert!(p.stdout.is_empty());
    let s = collect(sub, "sub");
    s.expect_code(0);
    assert_eq!(s.stdout, b"hi\n");
    assert_eq!(s.stderr, "", "sub prints nothing but errors");
}

#[test]
fn pub_status_lines_when_it_has_to_wait() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/news", key.anonymous_name());
    let publ = server.spawn(&key, &["pub", "news"]);
    server.wait_waiting_pubs(&full, 1);
    let sub = server.spawn(&key, &["sub", "news"]);
    let p = finish(publ, b"late\n", "pub");
    p.expect_code(0);
    assert_eq!(
        p.stderr,
        format!(
            "subscribe to this channel:\n{}\nno subs found ... waiting 720h0m0s\nsending msg ...\nmsg sent!\n",
            hint(&server, "sub", "news")
        )
    );
    let s = collect(sub, "sub");
    s.expect_code(0);
    assert_eq!(s.stdout, b"late\n");
}

#[test]
fn pub_to_a_public_topic_hints_dash_p() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["pub", "-p", "-b=false", "shared"], b"x");
    out.expect_code(0);
    assert_eq!(out.stderr, sent_without_wait(&server, "-p shared"));
    // `public/NAME` typed without -p is the same public topic.
    let out = server.run(&key, &["pub", "-b=false", "public/shared"], b"x");
    out.expect_code(0);
    assert_eq!(out.stderr, sent_without_wait(&server, "-p shared"));
}

fn hinted_name(out: &Out, cmd: &str, server: &TestServer) -> String {
    let prefix = format!("  ssh -p {} testhost {cmd} ", server.addr.port());
    let line = stderr_lines(out)
        .into_iter()
        .nth(1)
        .unwrap_or_else(|| panic!("hint line; stderr: {}", out.stderr));
    line.strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("hint {line:?} should start {prefix:?}"))
        .to_string()
}

#[test]
fn pub_without_topic_gets_a_fresh_uuid() {
    let server = TestServer::start();
    let key = server.key("k");
    let a = server.run(&key, &["pub", "-b=false"], b"x");
    a.expect_code(0);
    let name_a = hinted_name(&a, "sub", &server);
    assert!(is_uuid_v4(&name_a), "uuid v4: {name_a:?}");
    assert_eq!(a.stderr, sent_without_wait(&server, &name_a));
    let b = server.run(&key, &["pub", "-b=false"], b"x");
    b.expect_code(0);
    let name_b = hinted_name(&b, "sub", &server);
    assert!(is_uuid_v4(&name_b), "uuid v4: {name_b:?}");
    assert_ne!(name_a, name_b, "fresh each time");

    // The hint is usable: a sub on the hinted name gets the data.
    let publ = server.spawn(&key, &["pub"]);
    let full_prefix = format!("{}/", key.anonymous_name());
    // Find the waiting topic via ls (the hint is on the pub's stderr, which
    // we only read at the end).
    let mut topic = String::new();
    wait_until("pub with omitted topic is waiting", || {
        let ls = server.run(&key, &["ls"], b"");
        let text = ls.stdout_str();
        match text.lines().find(|l| is_uuid_v4(l)) {
            Some(t) => {
                topic = t.to_string();
                server.app.broker.waiting_pubs(&format!("{full_prefix}{t}")) >= 1
            }
            None => false,
        }
    });
    let sub = server.spawn(&key, &["sub", &topic]);
    let p = finish(publ, b"to the uuid\n", "pub (no topic)");
    p.expect_code(0);
    assert_eq!(hinted_name(&p, "sub", &server), topic);
    let s = collect(sub, "sub uuid");
    s.expect_code(0);
    assert_eq!(s.stdout, b"to the uuid\n");
}

#[test]
fn pipe_without_topic_hints_pipe_and_with_topic_prints_nothing() {
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["pipe"], b"");
    out.expect_code(0);
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 2, "stderr: {}", out.stderr);
    assert_eq!(lines[0], "subscribe to this channel:");
    let name = hinted_name(&out, "pipe", &server);
    assert!(is_uuid_v4(&name), "{name:?}");

    let out = server.run(&key, &["pipe", "t"], b"data\n");
    out.expect_code(0);
    assert_eq!(out.stderr, "", "pipe with a topic prints nothing");
    assert!(out.stdout.is_empty(), "no own data without -r");
}
