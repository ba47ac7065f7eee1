//! Per-channel flow control and honest endings (SPEC §9, §5.3, §4.2), with
//! the real OpenSSH client. These are the regression tests of the russh
//! patch in `vendor/russh`: before it, a pub that waited with unread input
//! froze its whole connection — keepalives, other channels of a
//! ControlMaster connection, the detection of a dead client.
//!
//! Waits are short keepalive windows and conditions, never sleeps: the
//! server probes every 300 ms, so "the connection stayed alive through many
//! probe rounds" is a count of probes the client saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;

const TWENTY_MIB: usize = 20 << 20;

/// Everything a client printed on stderr so far, collected as it arrives.
fn stderr_of(child: &mut Child) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let err = child.stderr.take().expect("stderr piped");
    let sink = Arc::clone(&text);
    thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let mut t = sink.lock().unwrap();
            t.push_str(&line);
            t.push('\n');
        }
    });
    text
}

/// Bytes a client wrote on stdout so far, kept whole.
fn stdout_of(child: &mut Child) -> Arc<Mutex<Vec<u8>>> {
    let data = Arc::new(Mutex::new(Vec::new()));
    let mut out = child.stdout.take().expect("stdout piped");
    let sink = Arc::clone(&data);
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    });
    data
}

/// Feeds `data` to the child's stdin from a thread, then closes it.
fn feed(child: &mut Child, data: Arc<Vec<u8>>) -> thread::JoinHandle<()> {
    let mut input = child.stdin.take().expect("stdin piped");
    thread::spawn(move || {
        let _ = input.write_all(&data);
    })
}

fn server_keepalives(stderr: &Mutex<String>) -> usize {
    stderr
        .lock()
        .unwrap()
        .matches("rtype keepalive@openssh.com")
        .count()
}

fn kill(child: &Child, signal: &str) {
    let st = std::process::Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {signal}");
}

fn control_path(server: &TestServer) -> PathBuf {
    server.dir.path().join("cm")
}

/// Runs an ssh command with extra client options to completion, stdin
/// empty, bounded like every other wait.
fn run_with(server: &TestServer, key: &Key, opts: &[&str], args: &[&str]) -> Out {
    let child = server
        .ssh_with(key, opts, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    collect(child, &format!("ssh {opts:?} {args:?}"))
}

/// A ControlMaster connection that runs no command of its own (`ssh -N`),
/// once its socket is there; and the `ControlPath=` option that reaches it.
fn control_master(server: &TestServer, key: &Key) -> (Child, String) {
    let cm = control_path(server);
    let path = format!("ControlPath={}", cm.display());
    let master = server
        .ssh_with(key, &["-N", "-o", "ControlMaster=yes", "-o", &path], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the control socket", || cm.exists());
    (master, path)
}

#[test]
fn a_pub_waiting_with_20_mib_keeps_its_connection_alive_then_delivers_it_all() {
    let server = fast_keepalive_server();
    let key = server.key("hand-off");
    let topic = format!("{}/file", key.anonymous_name());
    let data = Arc::new(random_bytes(TWENTY_MIB, 11));
    let cm = control_path(&server);
    let master_opts = [
        "-o",
        "LogLevel=DEBUG1",
        "-o",
        "ServerAliveInterval=1",
        "-o",
        "ServerAliveCountMax=2",
        "-o",
        "ControlMaster=yes",
        "-o",
        &format!("ControlPath={}", cm.display()),
    ];
    let mut publ = server
        .ssh_with(&key, &master_opts, &["pub", "file"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pub_err = stderr_of(&mut publ);
    let writer = feed(&mut publ, Arc::clone(&data));
    server.wait_waiting_pubs(&topic, 1);
    // Ten probe rounds (3 s) while the pub's client pushes 20 MiB that
    // nobody reads: the connection answers, and the client, which hangs up
    // after two unanswered probes of its own, stays.
    wait_until(
        "10 server keepalives seen by the waiting pub's client",
        || server_keepalives(&pub_err) >= 10,
    );
    assert!(
        publ.try_wait().unwrap().is_none(),
        "the waiting pub's client left"
    );
    // Another channel of the same connection answers at once.
    let cm_opts = [
        "-o",
        "ControlMaster=no",
        "-o",
        &format!("ControlPath={}", cm.display()),
    ];
    let who = run_with(&server, &key, &cm_opts, &["whoami"]);
    who.expect_code(0);
    assert!(
        who.stdout_str().starts_with("user: "),
        "{}",
        who.stdout_str()
    );

    let sub = server.spawn(&key, &["sub", "file"]);
    let got = collect(sub, "sub file");
    got.expect_code(0);
    assert_eq!(got.stdout.len(), data.len(), "bytes received");
    assert!(got.stdout == *data, "the 20 MiB arrived changed");
    writer.join().unwrap();
    assert!(wait_child(&mut publ, "pub file").success());
    let err = pub_err.lock().unwrap().clone();
    for line in ["no subs found ... waiting", "sending msg ...", "msg sent!"] {
        assert!(err.contains(line), "pub stderr lacks {line:?}: {err}");
    }
}

/// A waiting pub with unread input whose client dies leaves `ls` within the
/// keepalive window, whichever way it dies.
#[test]
fn a_waiting_pub_whose_client_dies_leaves() {
    let server = fast_keepalive_server();
    let key = server.key("dies");
    let data = Arc::new(random_bytes(TWENTY_MIB, 12));
    for (signal, name) in [("-KILL", "killed"), ("-STOP", "stopped")] {
        let topic = format!("{}/{name}", key.anonymous_name());
        let mut publ = server.spawn(&key, &["pub", name]);
        let _writer = feed(&mut publ, Arc::clone(&data));
        server.wait_waiting_pubs(&topic, 1);
        kill(&publ, signal);
        server.wait_counts(&topic, &format!("the {name} pub to leave"), |c| {
            c.senders == 0
        });
        assert_eq!(server.app.broker.waiting_pubs(&topic), 0);
        let _ = publ.kill();
        kill(&publ, "-CONT");
        let _ = publ.wait();
    }
}

/// Over ControlMaster the connection outlives a killed client: closing its
/// channel is what ends the waiting pub.
#[test]
fn a_waiting_pub_whose_mux_client_is_killed_leaves() {
    let server = fast_keepalive_server();
    let key = server.key("mux");
    let topic = format!("{}/muxed", key.anonymous_name());
    let (mut master, path) = control_master(&server, &key);
    let mux = ["-o", "ControlMaster=no", "-o", path.as_str()];
    let mut publ = server
        .ssh_with(&key, &mux, &["pub", "muxed"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _writer = feed(&mut publ, Arc::new(random_bytes(TWENTY_MIB, 13)));
    server.wait_waiting_pubs(&topic, 1);
    kill(&publ, "-KILL");
    let _ = publ.wait();
    server.wait_counts(&topic, "the muxed pub to leave", |c| c.senders == 0);
    // The shared connection is still there and serves new sessions.
    run_with(&server, &key, &mux, &["whoami"]).expect_code(0);
    master.kill().unwrap();
    let _ = master.wait();
}

#[test]
fn a_sub_whose_sender_vanished_says_so_and_exits_1() {
    let server = TestServer::start();
    let key = server.key("vanish");
    let topic = format!("{}/cut", key.anonymous_name());
    let mut sub = server.spawn(&key, &["sub", "cut"]);
    let got = stdout_of(&mut sub);
    let sub_err = stderr_of(&mut sub);
    server.wait_receivers(&topic, 1);
    let mut publ = server.spawn(&key, &["pub", "-c", "cut"]);
    let mut input = publ.stdin.take().unwrap();
    let part = random_bytes(100_000, 14);
    input.write_all(&part).unwrap();
    input.flush().unwrap();
    wait_until("the sub to receive the first part", || {
        got.lock().unwrap().len() >= part.len()
    });
    kill(&publ, "-KILL");
    let _ = publ.wait();
    let status = wait_child(&mut sub, "sub after its sender vanished");
    assert_eq!(status.code(), Some(1), "sub exit status");
    wait_until("the sub's stderr line", || {
        sub_err
            .lock()
            .unwrap()
            .contains("sender disconnected before the end of its data")
    });
    assert!(*got.lock().unwrap() == part, "what did arrive is intact");
    drop(input);
}

#[test]
fn the_waiting_line_is_printed_at_every_wait() {
    let server = TestServer::start();
    let key = server.key("again");
    let topic = format!("{}/again", key.anonymous_name());
    let mut publ = server.spawn(&key, &["pub", "again"]);
    let pub_err = stderr_of(&mut publ);
    let mut input = publ.stdin.take().unwrap();
    server.wait_waiting_pubs(&topic, 1);
    let mut first = server.spawn(&key, &["sub", "-k", "again"]);
    let first_lines = lines_of(&mut first);
    input.write_all(b"one\n").unwrap();
    input.flush().unwrap();
    wait_until("the first sub to get a line", || {
        first_lines.lock().unwrap().iter().any(|l| l == "one")
    });
    first.kill().unwrap();
    let _ = first.wait();
    wait_until("the pub to wait again", || {
        pub_err
            .lock()
            .unwrap()
            .matches("no subs found ... waiting")
            .count()
            == 2
    });
    let second = server.spawn(&key, &["sub", "again"]);
    server.wait_receivers(&topic, 1);
    input.write_all(b"two\n").unwrap();
    drop(input);
    let got = collect(second, "second sub");
    got.expect_code(0);
    assert_eq!(got.stdout_str(), "two\n");
    assert!(wait_child(&mut publ, "pub").success());
    let err = pub_err.lock().unwrap().clone();
    assert_eq!(err.matches("sending msg ...").count(), 2, "{err}");
    assert!(err.ends_with("msg sent!\n"), "{err}");
}

#[test]
fn hundreds_of_requests_before_exec_do_not_stall_the_connection() {
    let server = TestServer::start();
    let key = server.key("envs");
    let envs: Vec<String> = (0..200).map(|i| format!("V{i}=x")).collect();
    let set_env = format!("SetEnv={}", envs.join(" "));
    let out = run_with(&server, &key, &["-o", &set_env], &["whoami"]);
    out.expect_code(0);
    assert!(out.stdout_str().starts_with("user: "));
}

#[test]
fn a_connection_gets_ten_session_channels() {
    let server = TestServer::start();
    let key = server.key("chans");
    let topic = format!("{}/chans", key.anonymous_name());
    let (mut master, path) = control_master(&server, &key);
    let mux = ["-o", "ControlMaster=no", "-o", path.as_str()];
    let mut subs: Vec<Child> = (0..10)
        .map(|_| {
            server
                .ssh_with(&key, &mux, &["sub", "-k", "chans"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    server.wait_receivers(&topic, 10);
    let opts = [&["-o", "LogLevel=INFO"], &mux[..]].concat();
    let whoami = || run_with(&server, &key, &opts, &["whoami"]);
    // OpenSSH falls back to a connection of its own when the shared one
    // refuses a session, so the refusal shows on stderr, not in the status.
    let refused = whoami();
    assert!(
        refused.stderr.contains("Session open refused by peer"),
        "an 11th channel was not refused: {}",
        refused.stderr
    );
    let mut one = subs.pop().unwrap();
    one.kill().unwrap();
    let _ = one.wait();
    server.wait_counts(&topic, "9 receivers", |c| c.receivers == 9);
    let accepted = whoami();
    accepted.expect_code(0);
    assert!(
        !accepted.stderr.contains("Session open refused"),
        "a 10th channel was refused: {}",
        accepted.stderr
    );
    for mut s in subs {
        let _ = s.kill();
        let _ = s.wait();
    }
    master.kill().unwrap();
    let _ = master.wait();
}

/// paramiko is there (CI installs it); elsewhere a test that needs it says
/// it is skipped.
fn paramiko_ready(test: &str) -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import paramiko"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: paramiko is missing (pip install paramiko)"
        );
        eprintln!("{test}: skipped, paramiko is not installed (pip install paramiko)");
    }
    ok
}

/// A client whose window is shut still hears why it was cut at shutdown:
/// stdout leaves room in the window for the stderr line (SPEC §9).
#[test]
fn shutdown_reaches_a_client_that_stopped_reading() {
    if !paramiko_ready("shutdown_reaches_a_client_that_stopped_reading") {
        return;
    }
    let server = TestServer::start();
    let key = server.key("stalled");
    let topic = format!("{}/stall", key.anonymous_name());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/flow/stalled_reader.py");
    let mut reader = std::process::Command::new("python3")
        .arg(script)
        .arg(server.addr.port().to_string())
        .arg(&key.path)
        .args(["sub", "stall"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut reader);
    server.wait_receivers(&topic, 1);
    let mut publ = server.spawn(&key, &["pub", "-c", "stall"]);
    let _writer = feed(&mut publ, Arc::new(random_bytes(4 << 20, 15)));
    wait_until("the reader's window to fill", || {
        lines.lock().unwrap().iter().any(|l| l == "stalled")
    });
    server.stop();
    let status = wait_child(&mut reader, "the stalled reader");
    let mut err = String::new();
    if let Some(mut e) = reader.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "stalled reader failed: {err}");
    let last = lines.lock().unwrap().last().cloned().unwrap_or_default();
    let report: serde_json::Value = serde_json::from_str(&last).unwrap();
    assert_eq!(report["status"], 1, "{report}");
    assert_eq!(report["stderr"], "server shutting down\n", "{report}");
    let _ = publ.kill();
    let _ = publ.wait();
}

/// Over HTTP a cut stream must not look whole either: the GET response is
/// aborted (no final chunk) and SSE ends with an `error` event (SPEC §5.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_subs_whose_sender_vanished_are_not_ended_cleanly() {
    let server = TestServer::with(Config {
        http: true,
        ..Config::default()
    });
    let key = server.key("cut-http");
    let base = format!("http://{}", server.http_addr.unwrap());
    let client = reqwest::Client::new();
    let mut get = client
        .get(format!("{base}/topic/cut"))
        .send()
        .await
        .unwrap();
    let mut sse = client.get(format!("{base}/sse/cut")).send().await.unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(sse.status(), 200);
    server.wait_receivers("public/cut", 2);
    let mut publ = server.spawn(&key, &["pub", "-p", "-c", "cut"]);
    let mut input = publ.stdin.take().unwrap();
    input.write_all(b"line one\n").unwrap();
    input.flush().unwrap();
    let within = |what: &'static str| {
        move |r: Result<_, tokio::time::error::Elapsed>| r.unwrap_or_else(|_| panic!("{what}"))
    };
    let mut body = Vec::new();
    while body.len() < 9 {
        let chunk = tokio::time::timeout(WAIT, get.chunk()).await;
        body.extend_from_slice(&within("GET chunk")(chunk).unwrap().unwrap());
    }
    assert_eq!(body, b"line one\n");
    let mut events = String::new();
    while !events.contains("data: line one\n") {
        let chunk = tokio::time::timeout(WAIT, sse.chunk()).await;
        let chunk = within("SSE chunk")(chunk).unwrap().unwrap();
        events.push_str(&String::from_utf8_lossy(&chunk));
    }
    kill(&publ, "-KILL");
    let _ = publ.wait();
    let end = tokio::time::timeout(WAIT, get.chunk()).await;
    assert!(
        within("GET end")(end).is_err(),
        "the GET of a cut stream ended cleanly"
    );
    loop {
        let chunk = tokio::time::timeout(WAIT, sse.chunk()).await;
        match within("SSE end")(chunk).unwrap() {
            Some(c) => events.push_str(&String::from_utf8_lossy(&c)),
            None => break,
        }
    }
    assert!(
        events.contains("event: error\ndata: sender disconnected before the end of its data\n"),
        "{events}"
    );
    drop(input);
}

/// Key re-exchange mid-stream, both directions, several times per
/// connection (the client asks every 256 KiB): every byte arrives, and a
/// channel opened after the rekeys still works. Covers the vendor patch
/// that empties the kex leftovers (`Encrypted::drop_exchange_leftovers`)
/// after each exchange and the boxed channel state inside `server::Msg`
/// (issue 17).
#[test]
fn rekeys_mid_stream_lose_nothing() {
    let server = TestServer::start();
    let key = server.key("rekey");
    let topic = format!("{}/rekey", key.anonymous_name());
    let rekey = ["-o", "RekeyLimit=256K", "-o", "LogLevel=DEBUG1"];
    let mut sub = server
        .ssh_with(&key, &rekey, &["sub", "rekey"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let got = stdout_of(&mut sub);
    let sub_err = stderr_of(&mut sub);
    server.wait_receivers(&topic, 1);
    let data = Arc::new(random_bytes(4 << 20, 17));
    let mut publ = server
        .ssh_with(&key, &rekey, &["pub", "rekey"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pub_err = stderr_of(&mut publ);
    let writer = feed(&mut publ, Arc::clone(&data));
    assert!(wait_child(&mut publ, "pub with rekeys").success());
    assert!(wait_child(&mut sub, "sub with rekeys").success());
    writer.join().unwrap();
    assert!(*got.lock().unwrap() == *data, "the sub got every byte");
    // Key exchanges after the first one: the client's KEXINIT count.
    let kexes = |e: &Mutex<String>| e.lock().unwrap().matches("SSH2_MSG_KEXINIT sent").count();
    wait_until("the clients' logs", || {
        kexes(&pub_err) >= 4 && kexes(&sub_err) >= 4
    });
    // A new channel on a rekeyed server still works.
    let out = server.run(&key, &["whoami"], b"");
    out.expect_code(0);
}
