//! HTTP limits (SPEC §11.2) under attack: a flood of idle connections and
//! slowloris clients must not stop SSH or `/healthz`, slow heads are cut
//! at the header timeout, idle kept-alive connections at the idle timeout,
//! and connections past the cap are closed at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{TestServer, WAIT, wait_until};
use sshpipe::metrics::Transport;

fn server(max: usize, header: Duration, idle: Duration) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = common::options_for(&dir.path().join("data"));
    opts.http_listen = Some("127.0.0.1:0".parse().unwrap());
    opts.http.max_connections = max;
    opts.http.header_timeout = header;
    opts.http.idle_timeout = idle;
    TestServer::from_options(opts, dir)
}

/// One `GET path` on a fresh connection; the status line, or why not.
fn get(addr: SocketAddr, path: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    buf.lines()
        .next()
        .map(str::to_string)
        .ok_or_else(|| "closed".into())
}

/// Has the server closed `s`? Reads until EOF or a reset, within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return true,
        }
    }
    false
}

/// A connection from another loopback address (Linux routes all of 127/8).
fn connect_from(local: &str, to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket
        .bind(&local.parse::<SocketAddr>().unwrap().into())
        .unwrap();
    socket.connect(&to.into()).unwrap();
    socket.into()
}

/// Attack: ~30,000 idle connections once took every descriptor, and SSH
/// and `/healthz` stopped answering. Bounded version: a cap of 100, 600
/// idle connections and 40 slowloris clients from other addresses.
#[test]
fn a_flood_does_not_stop_ssh_or_healthz_and_slowloris_is_cut() {
    let server = server(100, Duration::from_secs(2), Duration::from_secs(60));
    let http = server.http_addr.unwrap();
    let mut slow: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut s = connect_from(&format!("127.0.0.{}:0", 2 + i % 8), http);
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
                .unwrap();
            s
        })
        .collect();
    let idle: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(http).unwrap())
        .collect();
    wait_until("HTTP at its cap", || {
        server.app.metrics.connections(Transport::Http) >= 90
    });
    assert!(server.app.metrics.connections(Transport::Http) <= 100);

    // SSH serves, promptly.
    let key = server.key("k");
    let started = Instant::now();
    server.run(&key, &["whoami"], b"").expect_code(0);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "whoami took {:?}",
        started.elapsed()
    );
    // /healthz answers: a connection that never sent a request makes room.
    let started = Instant::now();
    assert_eq!(get(http, "/healthz").unwrap(), "HTTP/1.1 200 OK");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "/healthz took {:?}",
        started.elapsed()
    );

    // Slowloris keeps sending header lines, never the end: cut after the
    // header timeout (2 s), well before the test's bound.
    let cut = Instant::now();
    for s in &mut slow {
        let _ = s.write_all(b"X-Slow: 1\r\n");
        assert!(
            closed_within(s, WAIT),
            "a slowloris connection is still open"
        );
    }
    assert!(
        cut.elapsed() < Duration::from_secs(15),
        "slowloris cut after {:?}",
        cut.elapsed()
    );
    drop(idle);
    wait_until("idle connections gone", || {
        server.app.metrics.connections(Transport::Http) == 0
    });
}

/// A kept-alive connection idle past `--http-idle-timeout` is closed; one
/// that sends its first head in time is served.
#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = server(100, Duration::from_secs(5), Duration::from_millis(500));
    let mut s = TcpStream::connect(server.http_addr.unwrap()).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    s.set_read_timeout(Some(WAIT)).unwrap();
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200 OK"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(10)),
        "idle connection kept open"
    );
}

/// Past the cap, with every connection busy with a request (none to make
/// room from), a new connection is closed at once; the busy ones go on.
#[test]
fn past_the_cap_new_connections_are_closed_at_once() {
    let server = server(3, Duration::from_secs(10), Duration::from_secs(60));
    let http = server.http_addr.unwrap();
    let mut streams: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(http).unwrap();
            s.write_all(b"GET /topic/busy?persist=true HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    server.wait_receivers("public/busy", 3);
    let mut extra = TcpStream::connect(http).unwrap();
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)),
        "over the cap but served"
    );
    assert_eq!(server.counts("public/busy").map(|c| c.receivers), Some(3));
    for s in &mut streams {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut head = [0u8; 15];
        s.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 200 OK");
    }
}

/// Every HTTP connection has TCP keepalive on, so a client that vanished
/// without a FIN is found (`ss` shows the server side's keepalive timer).
#[test]
fn http_connections_have_tcp_keepalive() {
    let server = server(100, Duration::from_secs(10), Duration::from_secs(60));
    let http = server.http_addr.unwrap();
    let mut s = TcpStream::connect(http).unwrap();
    s.write_all(b"GET /topic/ka?persist=true HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    server.wait_receivers("public/ka", 1);
    let filter = format!("( sport = :{} )", http.port());
    let out = std::process::Command::new("ss")
        .args(["-tnoH", "state", "established", &filter])
        .output()
        .expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("timer:(keepalive"),
        "ss shows no keepalive timer: {text}"
    );
}
