//! Shutdown (SPEC §2): every connected client hears `server shutting down`
//! and exits 1 — in-process through `TestServer::stop`, and for the real
//! binary on SIGTERM, which must itself exit 0 within 10 s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::*;

const LINE: &str = "server shutting down";

#[test]
fn stopping_the_server_tells_every_kind_of_client() {
    let server = TestServer::start();
    let key = server.key("stay");
    let name = key.anonymous_name();
    let sub = server.spawn(&key, &["sub", "-k", "news"]);
    let publ = server.spawn(&key, &["pub", "nobody-listens"]);
    let pipe = server.spawn(&key, &["pipe", "chat"]);
    server.wait_receivers(&format!("{name}/news"), 1);
    server.wait_waiting_pubs(&format!("{name}/nobody-listens"), 1);
    server.wait_receivers(&format!("{name}/chat"), 1);
    server.stop();
    for (child, what) in [(sub, "sub -k"), (publ, "waiting pub"), (pipe, "pipe")] {
        let out = collect(child, what);
        out.expect_code(1);
        assert!(
            out.stderr.lines().any(|l| l == LINE),
            "{what} stderr: {:?}",
            out.stderr
        );
    }
}

#[test]
fn the_binary_exits_0_on_sigterm_and_its_client_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_sshpipe"))
        .args(["--ssh-listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", "off", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server's log, line by line, to wait on what it says.
    let (tx, log) = mpsc::channel();
    let stderr = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_log = |what: &str| loop {
        let line = log
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("server never logged {what:?}"));
        if line.contains(what) {
            return;
        }
    };
    wait_log("sshpipe listening");
    let key = Key::new(dir.path(), "client");
    let client = Command::new("ssh")
        .args(CLIENT_OPTS)
        .args(["-o", "LogLevel=ERROR", "-i"])
        .arg(&key.path)
        .args([
            "-p",
            &port.to_string(),
            "tester@127.0.0.1",
            "sub",
            "-k",
            "t",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_log("session start");
    let kill = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = wait_child_within(
        &mut server,
        "sshpipe after SIGTERM",
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(0), "server exit status");
    let out = collect(client, "sub -k");
    out.expect_code(1);
    assert!(
        out.stderr.lines().any(|l| l == LINE),
        "stderr: {:?}",
        out.stderr
    );
}
