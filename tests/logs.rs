//! `ssh host logs` (SPEC §12) with the real `ssh`: each user reads only the
//! lines about them, admins read every line with `--all`, every line is one
//! JSON object, and a reader that stops reading skips lines (and is told
//! how many) without slowing anything else down.
//!
//! The server runs in this process, so its tracing events reach the layer
//! this file installs, exactly as `cli` installs it in the binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex, Once};
use std::thread;

use common::{Config, Key, Lines, TestServer, lines_of, wait_until};
use serde_json::Value;
use sshpipe::identity::AuthMode;
use sshpipe::logs::LogHub;

/// Installs the `logs` layer as this process's subscriber (once).
fn install_layer() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        let _ = tracing_subscriber::registry()
            .with(sshpipe::logs::layer(LogHub::global()))
            .try_init();
    });
}

/// A running `logs` client and the lines it printed so far.
struct Reader {
    child: Child,
    lines: Lines,
}

impl Reader {
    fn start(server: &TestServer, key: &Key, args: &[&str]) -> Reader {
        let mut child = server.spawn(key, args);
        let lines = lines_of(&mut child);
        Reader { child, lines }
    }

    /// Every line so far, each parsed as one JSON object.
    fn objects(&self) -> Vec<Value> {
        let lines = self.lines.lock().unwrap().clone();
        lines
            .iter()
            .map(|l| {
                let v: Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("not one JSON object per line: {e}: {l:?}"));
                assert!(v.is_object(), "{l}");
                v
            })
            .collect()
    }

    fn has(&self, pred: impl Fn(&Value) -> bool) -> bool {
        self.objects().iter().any(pred)
    }

    /// Waits for a line matching `pred`; fails showing the lines seen.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) {
        let start = std::time::Instant::now();
        while !self.has(&pred) {
            if start.elapsed() > common::WAIT {
                let seen = self.lines.lock().unwrap().join("\n");
                panic!("timed out waiting for: {what}; lines so far:\n{seen}");
            }
            thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn is(v: &Value, key: &str, want: &str) -> bool {
    v[key].as_str() == Some(want)
}

fn session_end(v: &Value, user: &str, cmd: &str) -> bool {
    is(v, "msg", "session end") && is(v, "user", user) && is(v, "cmd", cmd)
}

/// `ssh-keygen -s CA` for `key`, with `args` (`-n PRINCIPALS`, `-V …`).
fn certify(ca: &Key, key: &Key, dir: &Path, args: &[&str]) -> PathBuf {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(&ca.path)
        .args(["-I", "test"])
        .args(args)
        .arg(key.path.with_extension("pub"))
        .status()
        .unwrap();
    assert!(st.success(), "ssh-keygen -s");
    let cert = dir.join("refused.cert");
    std::fs::rename(format!("{}-cert.pub", key.path.display()), &cert).unwrap();
    cert
}

#[test]
fn each_user_reads_their_own_lines_and_admins_read_all() {
    install_layer();
    let dir = tempfile::tempdir().unwrap();
    let [alice, bob, carol, root, ca] =
        ["alice", "bob", "carol", "root", "ca"].map(|n| Key::new(dir.path(), n));
    // Names of their own, so no other test's sessions can be theirs.
    let (a, b, c, r) = ("lg-alice", "lg-bob", "lg-carol", "lg-root");
    let users = format!(
        "{}[users.{r}]\nkeys = [\"{}\"]\nadmin = true\n",
        common::users_toml(&[(a, &alice), (b, &bob), (c, &carol)]),
        root.public
    );
    let server = TestServer::with(Config {
        users_toml: Some(users),
        auth: AuthMode::Users,
        trusted_user_ca: Some(ca.public.clone()),
        ..Config::default()
    });
    let readers = [
        Reader::start(&server, &alice, &["logs"]),
        Reader::start(&server, &bob, &["logs"]),
        Reader::start(&server, &carol, &["logs"]),
        Reader::start(&server, &root, &["logs"]),
    ];
    let all = Reader::start(&server, &root, &["logs", "--all"]);
    let hub = &server.app.logs;
    for user in [a, b, c, r] {
        wait_until(&format!("{user} reading logs"), || hub.is_watching(user));
    }
    wait_until("root reading --all", || hub.all_readers() >= 1);

    server.run(&alice, &["whoami"], b"").expect_code(0);
    server
        .run(&alice, &["pub", "-b=false", "-c", "news"], b"hi\n")
        .expect_code(0);
    server.run(&carol, &["sub"], b"").expect_code(2);
    // Bob offers a certificate with a critical option we refuse first (his
    // line: the CA vouches it is his), then logs in with his plain key.
    let cert = certify(&ca, &bob, dir.path(), &["-n", b, "-O", "force-command=ls"]);
    let opt = format!("CertificateFile={}", cert.display());
    let out = server
        .ssh_with(&bob, &["-o", &opt], &["ls"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let [ra, rb, rc, rr] = &readers;
    ra.wait_for("alice's whoami", |v| session_end(v, a, "whoami"));
    ra.wait_for("alice's pub", |v| {
        session_end(v, a, "pub -b=false -c news") && is(v, "status", "0")
    });
    rb.wait_for("bob's refused certificate", |v| {
        is(v, "msg", "key refused")
            && is(v, "user", b)
            && v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("force-command"))
    });
    rb.wait_for("bob's ls", |v| session_end(v, b, "ls"));
    rc.wait_for("carol's usage error", |v| {
        session_end(v, c, "sub") && is(v, "status", "2")
    });
    for user in [a, b, c] {
        all.wait_for(&format!("{user}'s lines in --all"), |v| is(v, "user", user));
    }
    all.wait_for("bob's refusal in --all", |v| is(v, "msg", "key refused"));

    // Every line has the keys of SPEC §12, and each reader only its own.
    for (reader, user) in [(ra, a), (rb, b), (rc, c), (rr, r)] {
        for v in reader.objects() {
            for key in ["time", "level", "msg", "user", "peer", "cmd", "topic"] {
                assert!(v.get(key).is_some(), "{key} missing: {v}");
            }
            assert_eq!(v["user"].as_str(), Some(user), "{user} got {v}");
            assert!(v["time"].as_str().unwrap().ends_with('Z'), "{v}");
        }
    }
    let start = ra
        .objects()
        .into_iter()
        .find(|v| is(v, "msg", "session start") && is(v, "cmd", "whoami"))
        .expect("alice's session start");
    assert!(start["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(start["level"], "INFO");

    // A client that leaves stops its stream.
    drop(readers);
    drop(all);
    for user in [a, b, c, r] {
        wait_until(&format!("{user}'s reader gone"), || !hub.is_watching(user));
    }
}

#[test]
fn all_is_for_admins_and_logs_takes_no_topic() {
    install_layer();
    let server = TestServer::start();
    let key = server.key("k");
    let out = server.run(&key, &["logs", "--all"], b"");
    out.expect_code(1);
    assert_eq!(out.stderr, "access denied: logs --all is for admins\n");
    assert!(out.stdout.is_empty());
    let out = server.run(&key, &["logs", "mytopic"], b"");
    out.expect_code(2);
    assert!(
        out.stderr
            .starts_with("logs: takes no topic, got \"mytopic\"\nusage: logs [flags]\n"),
        "{}",
        out.stderr
    );
    let out = server.run(&key, &["logs", "-h"], b"");
    out.expect_code(0);
    assert!(out.stdout_str().starts_with("usage: logs [flags]\n"));
    assert!(!server.app.logs.is_watching(&key.anonymous_name()));
}

#[test]
fn a_reader_that_stops_reading_skips_lines_and_slows_nothing() {
    install_layer();
    let server = TestServer::start();
    let key = server.key("slow");
    let user = key.anonymous_name();
    let hub = server.app.logs.clone();
    // Nobody reads this client's stdout for now.
    let mut child = server.spawn(&key, &["logs"]);
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    wait_until("the reader registered", || hub.is_watching(&user));

    // Lines of 16 KiB fill the client's pipe, its SSH window and its queue
    // in a few hundred; from then on each is dropped at once.
    let pad = "x".repeat(16 * 1024);
    let before = hub.skipped_lines();
    let mut sent = 0;
    while hub.skipped_lines() < before + 100 {
        tracing::info!(target: "sshpipe::test", user = %user, n = sent, pad = %pad, "filler");
        sent += 1;
        assert!(sent < 20_000, "no line was ever skipped");
    }
    // The server is not held up meanwhile: the same user's command runs.
    server.run(&key, &["whoami"], b"").expect_code(0);

    // Start reading; markers go out until one arrives behind the gap.
    let lines = lines_of(&mut child);
    let mut marker = 0;
    wait_until("a line after the skipped ones", || {
        marker += 1;
        tracing::info!(target: "sshpipe::test", user = %user, marker, "marker");
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("\"msg\":\"marker\""))
    });
    let skipped: u64 = stderr
        .lock()
        .unwrap()
        .lines()
        .map(|l| {
            let n = l
                .strip_prefix("skipped ")
                .and_then(|l| l.strip_suffix(" lines"));
            n.unwrap_or_else(|| panic!("unexpected stderr line: {l:?}"))
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert!(skipped >= 100, "told of {skipped} skipped lines");
    assert!(skipped <= hub.skipped_lines() - before);
    let got = lines.lock().unwrap().clone();
    for l in &got {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:.200}"));
        assert_eq!(v["user"].as_str(), Some(user.as_str()));
    }
    // What was neither delivered nor skipped is still queued or in flight;
    // nothing was lost without a count.
    let fillers = got
        .iter()
        .filter(|l| l.contains("\"msg\":\"filler\""))
        .count() as u64;
    // (Skipped markers count too: they are lines like any other.)
    let total = sent + marker;
    assert!(
        fillers + skipped <= total,
        "{fillers} + {skipped} > {total}"
    );
    let _ = child.kill();
    let _ = child.wait();
}
