//! Hostile and greedy clients (SPEC §9): connections that never finish
//! authentication are dropped by the deadline, a flood of them neither
//! blocks real clients nor disturbs connected ones, and the per-IP,
//! per-user and exec-size limits refuse early with a clear answer.
//!
//! Everything runs on loopback and is bounded in count and time. Extra
//! source addresses come from 127.0.0.0/8, which Linux routes to lo.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use sshpipe::ssh::SshLimits;

const AUTH: Duration = Duration::from_secs(1);
/// Slack on top of the auth deadline for scheduling on a busy machine.
const MARGIN: Duration = Duration::from_secs(3);

fn server_with(limits: SshLimits) -> TestServer {
    TestServer::with(Config {
        ssh_limits: limits,
        ..Config::default()
    })
}

/// Opens TCP connections to `to` from the given local address.
fn connect_from(from: IpAddr, to: SocketAddr, n: usize) -> Vec<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.bind(SocketAddr::new(from, 0)).unwrap();
            let stream = sock.connect(to).await.unwrap();
            let std = stream.into_std().unwrap();
            std.set_nonblocking(false).unwrap();
            out.push(std);
        }
        out
    })
}

/// Reads until the server closes the connection; fails the test if it is
/// still open after `limit`.
fn assert_closed_within(stream: &mut TcpStream, limit: Duration, what: &str) {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "{what}: still open after {limit:?}");
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return, // reset: closed too
        }
    }
}

/// Reads the server's identification line: proof it accepted the socket
/// and is running a handshake on it.
fn read_banner(stream: &mut TcpStream) {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") {
        let n = stream.read(&mut byte).expect("server banner");
        assert_eq!(n, 1, "closed before the banner");
        got.push(byte[0]);
    }
    assert!(got.starts_with(b"SSH-2.0-"), "banner: {got:?}");
}

#[test]
fn silent_garbage_and_stalled_clients_are_dropped_by_the_auth_deadline() {
    let server = server_with(SshLimits {
        auth_timeout: AUTH,
        ..SshLimits::default()
    });
    let opened = Instant::now();
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage.write_all(&random_bytes(8192, 7)).unwrap();
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    stalled.write_all(b"SSH-2.0-OpenSSH_9.6\r\n").unwrap();
    read_banner(&mut stalled);
    for (s, what) in [
        (&mut silent, "silent client"),
        (&mut garbage, "garbage client"),
        (&mut stalled, "banner-then-stall client"),
    ] {
        let left = (AUTH + MARGIN).saturating_sub(opened.elapsed());
        assert_closed_within(s, left, what);
    }
}

#[test]
fn a_thousand_silent_connections_do_not_slow_a_real_pub_sub() {
    let server = server_with(SshLimits::default());
    // 20 source addresses x 50 connections: under the per-IP cap, so all
    // 1,000 sit in handshake together (each holds two fds in this process,
    // well under `ulimit -n`).
    let mut silent = Vec::new();
    for i in 0..20u8 {
        let from = IpAddr::from([127, 0, 1, i + 1]);
        silent.extend(connect_from(from, server.addr, 50));
    }
    for s in &mut silent {
        read_banner(s);
    }
    let key = server.key("real");
    let topic = format!("{}/busy", key.anonymous_name());
    let started = Instant::now();
    let sub = server.spawn(&key, &["sub", "busy"]);
    server.wait_receivers(&topic, 1);
    server
        .run(&key, &["pub", "busy"], b"through the crowd\n")
        .expect_code(0);
    let out = collect(sub, "sub");
    out.expect_code(0);
    assert_eq!(out.stdout, b"through the crowd\n");
    assert!(
        started.elapsed() < WAIT,
        "pub/sub took {:?}",
        started.elapsed()
    );
    assert_eq!(silent.len(), 1000);
}

#[test]
fn the_65th_handshake_from_one_ip_is_refused_and_connected_clients_go_on() {
    let server = server_with(SshLimits::default());
    let key = server.key("steady");
    let topic = format!("{}/chat", key.anonymous_name());
    let mut a = server.spawn(&key, &["pipe", "chat"]);
    let mut b = server.spawn(&key, &["pipe", "chat"]);
    server.wait_receivers(&topic, 2);
    let b_lines = lines_of(&mut b);

    let local = IpAddr::from([127, 0, 0, 1]);
    let mut held = connect_from(local, server.addr, 64);
    for s in &mut held {
        read_banner(s);
    }
    let mut refused = connect_from(local, server.addr, 1).remove(0);
    refused.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 64];
    let got = refused.read(&mut buf).unwrap_or(0);
    assert_eq!(got, 0, "the 65th handshake got a banner instead of a close");

    // Authenticated clients are not disturbed.
    let mut a_in = a.stdin.take().unwrap();
    a_in.write_all(b"still talking\n").unwrap();
    wait_until("b hears a", || {
        b_lines.lock().unwrap().iter().any(|l| l == "still talking")
    });
    // Another address is not affected by this one's cap.
    server
        .ssh_with(&key, &["-b", "127.0.0.2"], &["whoami"])
        .output()
        .map(|o| assert!(o.status.success(), "{o:?}"))
        .unwrap();
    // Once the stalled handshakes go, the address may connect again.
    drop(held);
    wait_until("127.0.0.1 accepted again", || {
        let o = server.ssh(&key, &["whoami"]).output().unwrap();
        o.status.success()
    });
    drop(a_in);
    a.kill().unwrap();
    b.kill().unwrap();
    let _ = (a.wait(), b.wait());
}

#[test]
fn sessions_per_user_are_capped_with_one_line_and_exit_1() {
    let server = server_with(SshLimits {
        max_sessions_per_user: 2,
        ..SshLimits::default()
    });
    let key = server.key("greedy");
    let name = key.anonymous_name();
    let mut subs = vec![
        server.spawn(&key, &["sub", "-k", "one"]),
        server.spawn(&key, &["sub", "-k", "two"]),
    ];
    server.wait_receivers(&format!("{name}/one"), 1);
    server.wait_receivers(&format!("{name}/two"), 1);
    let out = server.run(&key, &["whoami"], b"");
    out.expect_code(1);
    assert_eq!(
        out.stderr.trim_end(),
        format!("too many sessions for {name} (limit 2)")
    );
    // Another user is not affected.
    let other = server.key("modest");
    server.run(&other, &["whoami"], b"").expect_code(0);
    // A session that ends frees its slot.
    let mut first = subs.remove(0);
    first.kill().unwrap();
    let _ = first.wait();
    wait_until("a slot is free again", || {
        server.run(&key, &["whoami"], b"").code() == 0
    });
    for mut s in subs {
        s.kill().unwrap();
        let _ = s.wait();
    }
}

#[test]
fn an_exec_string_over_the_limit_is_a_usage_error() {
    let server = server_with(SshLimits {
        max_exec_bytes: 100,
        ..SshLimits::default()
    });
    let key = server.key("verbose");
    let long = "x".repeat(200);
    let out = server.run(&key, &["pub", &long], b"");
    out.expect_code(2);
    assert!(
        out.stderr
            .lines()
            .any(|l| l == "command too long: 204 bytes (max 100)"),
        "stderr: {}",
        out.stderr
    );
    // At the limit is fine (help for a 100-byte string of spaces).
    let at = format!("whoami{}", " ".repeat(94));
    server.run(&key, &[&at], b"").expect_code(0);
    // The default is SPEC §9's 4 KiB.
    let default = server_with(SshLimits::default());
    let out = default.run(&key, &["pub", &"y".repeat(5000)], b"");
    out.expect_code(2);
    assert!(out.stderr.contains("(max 4096)"), "stderr: {}", out.stderr);
}

#[test]
fn every_limit_option_is_read_from_its_environment_variable() {
    for (var, option) in [
        ("SSHPIPE_MAX_CONNECTIONS", "--max-connections"),
        ("SSHPIPE_MAX_HANDSHAKES_PER_IP", "--max-handshakes-per-ip"),
        ("SSHPIPE_AUTH_TIMEOUT", "--auth-timeout"),
        ("SSHPIPE_MAX_AUTH_ATTEMPTS", "--max-auth-attempts"),
        ("SSHPIPE_MAX_EXEC_BYTES", "--max-exec-bytes"),
        ("SSHPIPE_MAX_TOPICS", "--max-topics"),
        ("SSHPIPE_MAX_SESSIONS_PER_USER", "--max-sessions-per-user"),
    ] {
        // A bad value in the variable must be rejected, naming the option.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sshpipe"))
            .env(var, "lots")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.contains(option), "{var}: {stderr}");
    }
}
