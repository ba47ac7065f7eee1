//! SSH-level behaviour (SPEC §2, §3, §9): authentication methods, users-file
//! modes, refused forwarding and subsystems, PTY transparency, the host key,
//! algorithms, and the real binary's start-up (options, env, errors).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use sshpipe::identity::AuthMode;

/// "Promptly": a refusal must come well before any test bound.
const PROMPT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// An `ssh` command to `127.0.0.1:port` with `key`. `opts` come first, so
/// they win over the defaults here (ssh keeps the first value it sees).
/// Logging stays at ssh's default level so refusals are visible.
fn ssh_cmd(port: u16, key: &Key, opts: &[&str], args: &[&str]) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(opts)
        .args(CLIENT_OPTS)
        .args(["-o", "ConnectTimeout=20", "-i"])
        .arg(&key.path)
        .args(["-p", &port.to_string(), "tester@127.0.0.1"])
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_cmd(mut cmd: Command, stdin: &[u8], what: &str) -> (Out, Duration) {
    let start = Instant::now();
    let child = cmd.spawn().expect("spawn");
    let out = finish(child, stdin, what);
    (out, start.elapsed())
}

fn ssh_run(server: &TestServer, key: &Key, opts: &[&str], args: &[&str]) -> (Out, Duration) {
    run_cmd(
        ssh_cmd(server.addr.port(), key, opts, args),
        b"",
        &format!("ssh {opts:?} {args:?}"),
    )
}

fn assert_whoami_works(out: &Out, key: &Key, ctx: &str) {
    assert_eq!(out.code(), 0, "{ctx}: stderr: {}", out.stderr);
    assert_eq!(
        out.stdout_str(),
        format!(
            "user: {}\nfingerprint: {}\nadmin: no\n",
            key.anonymous_name(),
            key.fingerprint
        ),
        "{ctx}"
    );
}

/// A free local port (bind :0, read, drop).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_tcp(port: u16, what: &str) {
    wait_until(what, || TcpStream::connect(("127.0.0.1", port)).is_ok());
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The SHA256 fingerprint of the ed25519 host key at 127.0.0.1:port, as the
/// real `ssh-keyscan` sees it.
fn keyscan_fingerprint(port: u16) -> String {
    let out = Command::new("ssh-keyscan")
        .args([
            "-T",
            "10",
            "-p",
            &port.to_string(),
            "-t",
            "ed25519",
            "127.0.0.1",
        ])
        .stderr(Stdio::null())
        .output()
        .expect("ssh-keyscan");
    assert!(out.status.success(), "ssh-keyscan failed");
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), &out.stdout).unwrap();
    let o = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(tmp.path())
        .output()
        .expect("ssh-keygen -lf");
    assert!(o.status.success(), "ssh-keygen -lf failed");
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("(ED25519)"), "ed25519 host key: {text}");
    text.split_whitespace()
        .nth(1)
        .expect("fingerprint field")
        .to_string()
}

// ---- the real binary

/// The `sshpipe` binary with a clean environment for its own variables.
fn sshpipe() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshpipe"));
    for var in [
        "SSHPIPE_SSH_LISTEN",
        "SSHPIPE_HTTP_LISTEN",
        "SSHPIPE_DATA_DIR",
        "SSHPIPE_USERS",
        "SSHPIPE_AUTH",
        "SSHPIPE_DOMAIN",
        "SSHPIPE_ADVERTISE_PORT",
        "SSHPIPE_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs the binary expecting it to fail at start-up.
fn sshpipe_fails(args: &[&str]) -> Out {
    let child = sshpipe().args(args).spawn().expect("spawn sshpipe");
    let out = finish(child, b"", &format!("sshpipe {args:?}"));
    assert!(
        !out.status.success(),
        "sshpipe {args:?} should fail; stderr: {}",
        out.stderr
    );
    out
}

/// Asserts a start-up error: one non-empty stderr line containing each of
/// `needles`.
fn assert_one_line_naming(out: &Out, needles: &[&str], ctx: &str) {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "{ctx}: one line on stderr, got:\n{}",
        out.stderr
    );
    for n in needles {
        assert!(lines[0].contains(n), "{ctx}: {n:?} named in: {}", lines[0]);
    }
}

/// A running `sshpipe` process, killed when dropped. Its stderr lines arrive
/// on `lines`.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    port: u16,
}

impl Proc {
    fn start(mut cmd: Command, port: u16) -> Proc {
        let mut child = cmd.spawn().expect("spawn sshpipe");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("stdout");
        thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = stdout.read_to_end(&mut sink);
        });
        Proc {
            child,
            lines: rx,
            port,
        }
    }

    /// Waits (bounded) for a stderr line containing `needle`.
    fn wait_line(&mut self, needle: &str) -> String {
        let start = Instant::now();
        let mut seen = Vec::new();
        while start.elapsed() < WAIT {
            if let Some(st) = self.child.try_wait().unwrap() {
                // Drain what is left, then fail.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    seen.push(l);
                }
                panic!(
                    "sshpipe exited ({st}) before printing {needle:?}; stderr:\n{}",
                    seen.join("\n")
                );
            }
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(l) if l.contains(needle) => return l,
                Ok(l) => seen.push(l),
                Err(_) => {}
            }
        }
        panic!(
            "timed out waiting for {needle:?} on sshpipe's stderr:\n{}",
            seen.join("\n")
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- §3 auth

#[test]
fn password_and_keyboard_interactive_are_never_offered() {
    let server = TestServer::start();
    let key = server.key("k");
    let (out, took) = ssh_run(
        &server,
        &key,
        &[
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=keyboard-interactive,password,publickey",
        ],
        &["whoami"],
    );
    assert_eq!(out.code(), 255, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("Permission denied (publickey)."),
        "only publickey listed: {}",
        out.stderr
    );
    assert!(out.stdout.is_empty());
    assert!(took < PROMPT, "fails fast, took {took:?}");
}

#[test]
fn verbose_ssh_sees_only_publickey_can_continue() {
    let server = TestServer::start();
    let key = server.key("k");
    let (out, _) = ssh_run(&server, &key, &["-v"], &["whoami"]);
    out.expect_code(0);
    let lists: Vec<&str> = out
        .stderr
        .lines()
        .filter_map(|l| l.split_once("Authentications that can continue: "))
        .map(|(_, methods)| methods.trim())
        .collect();
    assert!(
        !lists.is_empty(),
        "ssh -v shows the methods:\n{}",
        out.stderr
    );
    for methods in lists {
        assert_eq!(methods, "publickey", "methods offered");
    }
}

#[test]
fn users_mode_refuses_unlisted_keys_and_admits_listed_ones() {
    let keys = tempfile::tempdir().unwrap();
    let alice = Key::new(keys.path(), "alice");
    let stranger = Key::new(keys.path(), "stranger");
    let server = TestServer::with(Config {
        users_toml: Some(users_toml(&[("alice", &alice)])),
        auth: AuthMode::Users,
        ..Config::default()
    });
    let (out, took) = ssh_run(&server, &stranger, &[], &["whoami"]);
    assert_eq!(out.code(), 255, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{}",
        out.stderr
    );
    assert!(took < PROMPT, "refused promptly: {took:?}");

    let (out, _) = ssh_run(&server, &alice, &[], &["whoami"]);
    out.expect_code(0);
    assert_eq!(
        out.stdout_str(),
        format!(
            "user: alice\nfingerprint: {}\nadmin: no\n",
            alice.fingerprint
        )
    );
}

#[test]
fn open_mode_makes_unlisted_keys_anonymous() {
    let keys = tempfile::tempdir().unwrap();
    let alice = Key::new(keys.path(), "alice");
    let stranger = Key::new(keys.path(), "stranger");
    let server = TestServer::with(Config {
        users_toml: Some(users_toml(&[("alice", &alice)])),
        auth: AuthMode::Open,
        ..Config::default()
    });
    let (out, _) = ssh_run(&server, &stranger, &[], &["whoami"]);
    assert_whoami_works(&out, &stranger, "unlisted key in open mode");
    assert!(stranger.anonymous_name().starts_with("fp-"));
    let (out, _) = ssh_run(&server, &alice, &[], &["whoami"]);
    out.expect_code(0);
    assert!(
        out.stdout_str().starts_with("user: alice\n"),
        "{}",
        out.stdout_str()
    );
}

// ---------------------------------------------------------------- §9 refusals

#[test]
fn stdio_forwarding_is_refused_promptly() {
    let server = TestServer::start();
    let key = server.key("k");
    let (out, took) = ssh_run(&server, &key, &["-W", "127.0.0.1:1"], &[]);
    assert_ne!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(took < PROMPT, "not a hang: {took:?}");
    assert!(
        out.stderr.contains("open failed") || out.stderr.contains("forwarding failed"),
        "refusal reported: {}",
        out.stderr
    );
}

#[test]
fn local_port_forwarding_is_refused() {
    let server = TestServer::start();
    let key = server.key("k");
    let local = free_port();
    let forward = format!("127.0.0.1:{local}:127.0.0.1:{}", server.addr.port());
    let mut ssh = ssh_cmd(server.addr.port(), &key, &["-N", "-L", &forward], &[])
        .spawn()
        .expect("spawn ssh -L");
    // ssh listens locally once it has authenticated.
    let mut conn = None;
    wait_until("ssh -L listening", || {
        if let Some(st) = ssh.try_wait().unwrap() {
            panic!("ssh -L exited early: {st}");
        }
        conn = TcpStream::connect(("127.0.0.1", local)).ok();
        conn.is_some()
    });
    let mut conn = conn.unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = conn.read(&mut buf);
    let closed = match &n {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    };
    assert!(closed, "forwarded connection is closed, not served: {n:?}");
    assert!(
        start.elapsed() < PROMPT,
        "closed promptly: {:?}",
        start.elapsed()
    );
    let _ = ssh.kill();
    let out = collect(ssh, "ssh -L");
    assert!(
        out.stderr.contains("open failed") || out.stderr.contains("administratively prohibited"),
        "ssh reports the refusal: {}",
        out.stderr
    );
}

#[test]
fn remote_port_forwarding_is_refused() {
    let server = TestServer::start();
    let key = server.key("k");
    let (out, took) = ssh_run(
        &server,
        &key,
        &[
            "-o",
            "ExitOnForwardFailure=yes",
            "-N",
            "-R",
            "127.0.0.1:0:127.0.0.1:1",
        ],
        &[],
    );
    assert_ne!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("remote port forwarding failed"),
        "{}",
        out.stderr
    );
    assert!(took < PROMPT, "{took:?}");
}

#[test]
fn sftp_subsystem_is_refused_promptly() {
    let server = TestServer::start();
    let key = server.key("k");
    let (out, took) = ssh_run(&server, &key, &["-s"], &["sftp"]);
    assert_ne!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("subsystem request failed"),
        "{}",
        out.stderr
    );
    assert!(took < PROMPT, "{took:?}");
}

#[test]
fn sftp_client_is_refused_promptly() {
    // openssh-client (installed by .ci/run) ships sftp: a missing one is a
    // broken set-up, not a reason to pass without checking anything.
    assert!(Path::new("/usr/bin/sftp").exists(), "sftp client missing");
    let server = TestServer::start();
    let key = server.key("k");
    let mut cmd = Command::new("/usr/bin/sftp");
    cmd.args(CLIENT_OPTS)
        .arg("-i")
        .arg(&key.path)
        .args(["-P", &server.addr.port().to_string(), "tester@127.0.0.1"])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let (out, took) = run_cmd(cmd, b"ls\n", "sftp");
    assert_ne!(out.code(), 0, "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("subsystem request failed"),
        "{}",
        out.stderr
    );
    assert!(took < PROMPT, "{took:?}");
}

/// Kills a helper process when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_and_x11_forwarding_requests_do_not_break_a_command() {
    let server = TestServer::start();
    let key = server.key("k");
    // ssh asks for agent forwarding only when it has an agent: run one.
    let agent_dir = tempfile::tempdir().unwrap();
    let sock = agent_dir.path().join("agent.sock");
    let _agent = KillOnDrop(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    wait_until("ssh-agent socket", || sock.exists());
    let with_forwarding = |args: &[&str]| {
        let mut cmd = ssh_cmd(
            server.addr.port(),
            &key,
            &["-v", "-A", "-X", "-o", "ForwardX11Trusted=yes"],
            args,
        );
        // A DISPLAY so ssh really sends x11-req; the agent for auth-agent-req.
        cmd.env("DISPLAY", "127.0.0.1:77")
            .env("SSH_AUTH_SOCK", &sock);
        cmd
    };
    let (out, took) = run_cmd(with_forwarding(&["whoami"]), b"", "ssh -A -X whoami");
    assert_whoami_works(&out, &key, "-A -X");
    assert!(took < PROMPT, "{took:?}");
    assert!(
        out.stderr
            .contains("Requesting authentication agent forwarding"),
        "agent forwarding was asked for: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("Requesting X11 forwarding"),
        "X11 forwarding was asked for: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("X11 forwarding request failed"),
        "and refused with a failure reply: {}",
        out.stderr
    );

    // A pub/sub with both still works end to end.
    let full = format!("{}/t", key.anonymous_name());
    let sub = with_forwarding(&["sub", "t"]).spawn().unwrap();
    server.wait_receivers(&full, 1);
    let (p, _) = run_cmd(
        with_forwarding(&["pub", "-c", "t"]),
        b"forwarded?\n",
        "pub -A -X",
    );
    p.expect_code(0);
    let s = collect(sub, "sub -A -X");
    s.expect_code(0);
    assert_eq!(s.stdout, b"forwarded?\n");
}

#[test]
fn env_requests_are_ignored() {
    let server = TestServer::start();
    let key = server.key("k");
    let mut cmd = ssh_cmd(
        server.addr.port(),
        &key,
        &[
            "-v",
            "-o",
            "SendEnv=FOO LANG",
            "-o",
            "SetEnv=BAR=baz SSHPIPE_X=1",
        ],
        &["whoami"],
    );
    cmd.env("FOO", "bar").env("LANG", "C.UTF-8");
    let (out, _) = run_cmd(cmd, b"", "ssh SendEnv/SetEnv whoami");
    assert_whoami_works(&out, &key, "SendEnv/SetEnv");
    assert!(
        out.stderr.contains("setting env FOO") && out.stderr.contains("setting env BAR"),
        "the env requests were sent: {}",
        out.stderr
    );
}

// ---------------------------------------------------------------- §9 PTY

#[test]
fn pty_pub_to_pty_sub_is_byte_exact() {
    let server = TestServer::start();
    let key = server.key("k");
    let full = format!("{}/bin", key.anonymous_name());
    let data = random_bytes(1 << 20, 0x5eed);
    // -e none: the client's `~.` escape would otherwise act on the data.
    let sub = ssh_cmd(
        server.addr.port(),
        &key,
        &["-tt", "-e", "none"],
        &["sub", "bin"],
    )
    .spawn()
    .unwrap();
    server.wait_receivers(&full, 1);
    let (p, _) = run_cmd(
        ssh_cmd(
            server.addr.port(),
            &key,
            &["-tt", "-e", "none"],
            &["pub", "bin"],
        ),
        &data,
        "pub -tt",
    );
    p.expect_code(0);
    assert!(
        p.stderr.contains("msg sent!\r\n"),
        "status under a PTY: {:?}",
        p.stderr
    );
    let s = collect(sub, "sub -tt");
    s.expect_code(0);
    assert_eq!(s.stdout.len(), data.len(), "length");
    assert_eq!(sha256(&s.stdout), sha256(&data), "bytes unchanged");
}

#[test]
fn help_under_a_pty_has_crlf_line_ends() {
    let server = TestServer::start();
    let key = server.key("k");
    let (plain, _) = ssh_run(&server, &key, &[], &["help"]);
    plain.expect_code(0);
    let (tty, _) = ssh_run(&server, &key, &["-tt"], &["help"]);
    tty.expect_code(0);
    let text = tty.stdout_str();
    assert!(text.contains("\r\n"), "{text:?}");
    assert!(
        !text.replace("\r\n", "").contains('\n'),
        "every line ends CRLF: {text:?}"
    );
    assert_eq!(text, plain.stdout_str().replace('\n', "\r\n"));
}

// ---------------------------------------------------------------- host key

#[test]
fn host_key_is_made_once_with_safe_modes_and_reused() {
    let outer = tempfile::tempdir().unwrap();
    let data_dir = outer.path().join("data");
    assert!(!data_dir.exists());

    let first = TestServer::from_options(options_for(&data_dir), tempfile::tempdir().unwrap());
    assert!(first.host_key_fingerprint.starts_with("SHA256:"));
    assert_eq!(mode(&data_dir), 0o700, "data dir mode");
    // The key file: an OpenSSH private key in the data dir, mode 0600.
    let key_files: Vec<PathBuf> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.is_file()
                && std::fs::read_to_string(p).is_ok_and(|t| t.contains("BEGIN OPENSSH PRIVATE KEY"))
        })
        .collect();
    assert_eq!(key_files.len(), 1, "one host key file: {key_files:?}");
    assert_eq!(mode(&key_files[0]), 0o600, "host key mode");
    // The store holds everyone's queued data: server-only, like the key.
    assert_eq!(mode(&data_dir.join("sshpipe.redb")), 0o600, "store mode");
    let before = std::fs::read(&key_files[0]).unwrap();
    let scanned = keyscan_fingerprint(first.addr.port());
    assert_eq!(scanned, first.host_key_fingerprint, "keyscan agrees");
    first.stop();

    let second = TestServer::from_options(options_for(&data_dir), tempfile::tempdir().unwrap());
    assert_eq!(
        second.host_key_fingerprint, scanned,
        "a restart reuses the host key"
    );
    assert_eq!(keyscan_fingerprint(second.addr.port()), scanned);
    assert_eq!(
        std::fs::read(&key_files[0]).unwrap(),
        before,
        "file untouched"
    );
    assert_eq!(mode(&key_files[0]), 0o600);

    // A client that pinned the first key connects without complaint.
    let key = second.key("k");
    let known = outer.path().join("known_hosts");
    let out = Command::new("ssh-keyscan")
        .args([
            "-p",
            &second.addr.port().to_string(),
            "-t",
            "ed25519",
            "127.0.0.1",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    std::fs::write(&known, &out.stdout).unwrap();
    let known_opt = format!("UserKnownHostsFile={}", known.display());
    let (o, _) = ssh_run(
        &second,
        &key,
        &["-o", "StrictHostKeyChecking=yes", "-o", &known_opt],
        &["whoami"],
    );
    assert_whoami_works(&o, &key, "pinned host key");
}

// ---------------------------------------------------------------- algorithms

#[test]
fn weak_algorithms_fail_to_negotiate() {
    let server = TestServer::start();
    let key = server.key("k");
    let cases: &[(&[&str], &str)] = &[
        (&["-o", "Ciphers=aes128-cbc"], "no matching cipher"),
        (&["-o", "Ciphers=3des-cbc"], "no matching cipher"),
        (
            &["-o", "KexAlgorithms=diffie-hellman-group14-sha1"],
            "no matching key exchange method",
        ),
        (
            &["-o", "KexAlgorithms=diffie-hellman-group1-sha1"],
            "no matching key exchange method",
        ),
        (
            &["-o", "MACs=hmac-sha1", "-o", "Ciphers=aes128-ctr"],
            "no matching MAC",
        ),
        (
            &["-o", "MACs=hmac-sha2-256", "-o", "Ciphers=aes128-ctr"],
            "no matching MAC",
        ),
        (
            &["-o", "HostKeyAlgorithms=ssh-rsa"],
            "no matching host key type",
        ),
    ];
    for (opts, why) in cases {
        let (out, took) = ssh_run(&server, &key, opts, &["whoami"]);
        assert_eq!(out.code(), 255, "{opts:?} should fail: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{opts:?}");
        assert!(
            out.stderr.contains("Unable to negotiate") && out.stderr.contains(why),
            "{opts:?}: {}",
            out.stderr
        );
        assert!(took < PROMPT, "{opts:?}: {took:?}");
    }
}

#[test]
fn strong_algorithms_work() {
    let server = TestServer::start();
    let key = server.key("k");
    for opts in [
        &["-o", "Ciphers=chacha20-poly1305@openssh.com"][..],
        &["-o", "Ciphers=aes256-gcm@openssh.com"][..],
        &["-o", "Ciphers=aes128-gcm@openssh.com"][..],
        &[
            "-o",
            "Ciphers=aes256-ctr",
            "-o",
            "MACs=hmac-sha2-256-etm@openssh.com",
        ][..],
        &["-o", "KexAlgorithms=curve25519-sha256"][..],
        &["-o", "HostKeyAlgorithms=ssh-ed25519"][..],
    ] {
        let (out, _) = ssh_run(&server, &key, opts, &["whoami"]);
        assert_whoami_works(&out, &key, &format!("{opts:?}"));
    }
}

// ---------------------------------------------------------------- start-up

#[test]
fn port_in_use_is_one_line_naming_the_address() {
    let tmp = tempfile::tempdir().unwrap();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = held.local_addr().unwrap();
    let data = tmp.path().join("data");
    let out = sshpipe_fails(&[
        "--ssh-listen",
        &addr.to_string(),
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen",
        "off",
    ]);
    assert_one_line_naming(&out, &[&addr.to_string()], "port in use");
    drop(held);
}

#[test]
fn missing_or_unreadable_users_file_is_a_start_up_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let missing = tmp.path().join("nope.toml");
    let out = sshpipe_fails(&[
        "--ssh-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen",
        "off",
        "--users",
        missing.to_str().unwrap(),
    ]);
    assert_one_line_naming(&out, &[missing.to_str().unwrap()], "missing users file");

    // A directory cannot be read as a file (mode bits do not stop root).
    let dir_as_file = tmp.path().join("users-dir");
    std::fs::create_dir(&dir_as_file).unwrap();
    let out = sshpipe_fails(&[
        "--ssh-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen",
        "off",
        "--users",
        dir_as_file.to_str().unwrap(),
    ]);
    assert_one_line_naming(
        &out,
        &[dir_as_file.to_str().unwrap()],
        "unreadable users file",
    );
}

fn users_file_fails(text: &str) -> Out {
    let tmp = tempfile::tempdir().unwrap();
    let users = tmp.path().join("users.toml");
    std::fs::write(&users, text).unwrap();
    let data = tmp.path().join("data");
    sshpipe_fails(&[
        "--ssh-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen",
        "off",
        "--users",
        users.to_str().unwrap(),
    ])
}

#[test]
fn malformed_users_file_names_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Key::new(tmp.path(), "k");
    let text = format!(
        "[users.alice]\nkeys = [\"{}\"]\nthis is not toml\n",
        key.public
    );
    let out = users_file_fails(&text);
    assert_one_line_naming(&out, &["line 3"], "malformed users file");

    // A bad user name: also a start-up error.
    let out = users_file_fails(&format!("[users.Bad]\nkeys = [\"{}\"]\n", key.public));
    assert_one_line_naming(&out, &["Bad"], "bad user name");
    // Reserved names.
    let out = users_file_fails(&format!("[users.public]\nkeys = [\"{}\"]\n", key.public));
    assert_one_line_naming(&out, &["public"], "reserved name");
}

#[test]
fn duplicate_key_in_users_file_is_a_start_up_error() {
    let tmp = tempfile::tempdir().unwrap();
    let key = Key::new(tmp.path(), "k");
    let text = format!(
        "[users.alice]\nkeys = [\"{0}\"]\n\n[users.bob]\nkeys = [\"{0}\"]\n",
        key.public
    );
    let out = users_file_fails(&text);
    assert_one_line_naming(&out, &[], "duplicate key");
    let line = out.stderr.trim();
    assert!(
        line.contains(&key.fingerprint) || line.contains("twice") || line.contains("duplicate"),
        "names the duplicate: {line}"
    );
}

#[test]
fn users_auth_without_users_file_is_a_start_up_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = sshpipe_fails(&[
        "--ssh-listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--http-listen",
        "off",
        "--auth",
        "users",
    ]);
    assert_one_line_naming(&out, &["users"], "--auth users without --users");
}

#[test]
fn bad_option_value_is_a_start_up_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for args in [
        &["--log-format", "xml"][..],
        &["--auth", "maybe"][..],
        &["--ssh-listen", "not-an-address"][..],
        &["--advertise-port", "99999"][..],
    ] {
        let mut all = vec!["--data-dir", data.to_str().unwrap(), "--http-listen", "off"];
        all.extend_from_slice(args);
        let out = sshpipe_fails(&all);
        assert_eq!(
            out.stderr.lines().count(),
            1,
            "{args:?}: one line: {}",
            out.stderr
        );
        let first = out.stderr.lines().next().unwrap_or("");
        assert!(
            first.contains(args[1]) && first.contains(args[0]),
            "{args:?}: the line names the option and value: {}",
            out.stderr
        );
    }
}

#[test]
fn help_flags_exit_zero() {
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let child = sshpipe().args(args).spawn().unwrap();
        let out = finish(child, b"", &format!("sshpipe {args:?}"));
        out.expect_code(0);
        let text = out.stdout_str();
        for opt in [
            "--ssh-listen",
            "--data-dir",
            "--users",
            "--auth",
            "--domain",
            "--advertise-port",
        ] {
            assert!(text.contains(opt), "{args:?} lists {opt}:\n{text}");
        }
    }
}

#[test]
fn every_option_also_reads_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("envdata");
    let port = free_port();
    let mut cmd = sshpipe();
    cmd.env("SSHPIPE_SSH_LISTEN", format!("127.0.0.1:{port}"))
        .env("SSHPIPE_DATA_DIR", &data)
        .env("SSHPIPE_DOMAIN", "envhost")
        .env("SSHPIPE_ADVERTISE_PORT", "22")
        .env("SSHPIPE_HTTP_LISTEN", "off")
        .env("SSHPIPE_LOG_FORMAT", "json");
    let mut srv = Proc::start(cmd, port);
    let start = srv.wait_line("sshpipe listening");
    assert!(
        start.starts_with('{') && start.ends_with('}'),
        "JSON log line: {start}"
    );
    assert!(
        start.contains(&format!("\"127.0.0.1:{}\"", srv.port)),
        "start line names the SSH address: {start}"
    );
    assert!(
        start.contains("SHA256:"),
        "start line names the host key: {start}"
    );
    wait_tcp(srv.port, "sshpipe (env) accepting");
    assert_eq!(mode(&data), 0o700, "SSHPIPE_DATA_DIR used and created 0700");

    let keys = tempfile::tempdir().unwrap();
    let key = Key::new(keys.path(), "k");
    let (out, _) = run_cmd(
        ssh_cmd(
            srv.port,
            &key,
            &["-o", "LogLevel=ERROR"],
            &["pub", "-b=false", "t"],
        ),
        b"",
        "pub via env-configured server",
    );
    out.expect_code(0);
    assert_eq!(
        out.stderr,
        "subscribe to this channel:\n  ssh envhost sub t\nsending msg ...\nmsg sent!\n"
    );
}

#[test]
fn users_and_auth_also_read_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let alice = Key::new(tmp.path(), "alice");
    let stranger = Key::new(tmp.path(), "stranger");
    let users = tmp.path().join("users.toml");
    std::fs::write(&users, users_toml(&[("alice", &alice)])).unwrap();
    let port = free_port();
    let mut cmd = sshpipe();
    cmd.env("SSHPIPE_SSH_LISTEN", format!("127.0.0.1:{port}"))
        .env("SSHPIPE_DATA_DIR", tmp.path().join("data"))
        .env("SSHPIPE_HTTP_LISTEN", "off")
        .env("SSHPIPE_USERS", &users)
        .env("SSHPIPE_AUTH", "users");
    let mut srv = Proc::start(cmd, port);
    srv.wait_line("sshpipe listening");
    wait_tcp(port, "sshpipe accepting");
    let (out, _) = run_cmd(ssh_cmd(port, &alice, &[], &["whoami"]), b"", "alice");
    out.expect_code(0);
    assert!(out.stdout_str().starts_with("user: alice\n"));
    let (out, _) = run_cmd(ssh_cmd(port, &stranger, &[], &["whoami"]), b"", "stranger");
    assert_eq!(out.code(), 255, "{}", out.stderr);
    assert!(
        out.stderr.contains("Permission denied (publickey)"),
        "{}",
        out.stderr
    );
}

#[test]
fn advertise_port_flag_shapes_the_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let key = Key::new(keys.path(), "k");
    for (advertise, expected) in [
        ("22", "  ssh flaghost sub t"),
        ("2200", "  ssh -p 2200 flaghost sub t"),
    ] {
        let port = free_port();
        let mut cmd = sshpipe();
        cmd.args([
            "--ssh-listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            tmp.path().join("data").to_str().unwrap(),
            "--http-listen",
            "off",
            "--domain",
            "flaghost",
            "--advertise-port",
            advertise,
        ]);
        let mut srv = Proc::start(cmd, port);
        srv.wait_line("sshpipe listening");
        wait_tcp(port, "sshpipe accepting");
        let (out, _) = run_cmd(
            ssh_cmd(
                port,
                &key,
                &["-o", "LogLevel=ERROR"],
                &["pub", "-b=false", "t"],
            ),
            b"",
            "pub",
        );
        out.expect_code(0);
        assert_eq!(
            out.stderr,
            format!("subscribe to this channel:\n{expected}\nsending msg ...\nmsg sent!\n"),
            "--advertise-port {advertise}"
        );
        drop(srv);
    }
}

#[test]
fn log_lines_to_a_pipe_have_no_colour_and_values_as_typed() {
    // stderr is a pipe here, as under `docker logs` or journald, and
    // NO_COLOR is unset, so only the terminal check can keep colour out.
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = sshpipe();
    cmd.env_remove("NO_COLOR")
        .args(["--ssh-listen", "127.0.0.1:0", "--http-listen", "off"])
        .arg("--data-dir")
        .arg(tmp.path().join("data"));
    let mut srv = Proc::start(cmd, 0);
    let start = srv.wait_line("sshpipe listening");
    assert!(!start.contains("\x1b["), "no ANSI escapes: {start:?}");
    assert!(start.contains("auth=open"), "auth as typed: {start}");
    assert!(start.contains("kex=compat"), "kex as typed: {start}");
}
