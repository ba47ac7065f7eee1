//! Test harness: the real server in-process on 127.0.0.1:0, driven by the
//! real OpenSSH `ssh` binary with keys made per test by `ssh-keygen`.
//!
//! Waits are on conditions (a topic's counts, output seen), each bounded by a
//! timeout that fails the test with context — never fixed sleeps.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sshpipe::app::App;
use sshpipe::broker::{BrokerConfig, Counts};
use sshpipe::config::KexPolicy;
use sshpipe::identity::AuthMode;
use sshpipe::server::{self, Options};
use sshpipe::ssh::SshLimits;
use tokio_util::sync::CancellationToken;

mod binary;
pub mod nats;
#[allow(unused_imports)] // tests/logs.rs has no use for them
pub use binary::{Binary, binary, binary_with_http, refused_line, refused_start};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// Client options every test client uses: a fresh server key each run, no
/// user config, no agent keys, never a prompt.
pub const CLIENT_OPTS: &[&str] = &[
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-F",
    "/dev/null",
];

/// A key pair made with `ssh-keygen`.
#[derive(Debug, Clone)]
pub struct Key {
    pub path: PathBuf,
    /// The `.pub` line, for users files.
    pub public: String,
    /// `SHA256:...` as `ssh-keygen -lf` prints it.
    pub fingerprint: String,
}

impl Key {
    /// An ed25519 key.
    pub fn new(dir: &Path, name: &str) -> Key {
        Key::generate(dir, name, &["-t", "ed25519"])
    }

    /// A key of the type `keygen` asks `ssh-keygen` for (`-t rsa -b 2048`).
    pub fn generate(dir: &Path, name: &str, keygen: &[&str]) -> Key {
        let path = dir.join(name);
        let st = Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", name])
            .args(keygen)
            .arg("-f")
            .arg(&path)
            .status()
            .expect("ssh-keygen runs");
        assert!(st.success(), "ssh-keygen failed");
        let public = std::fs::read_to_string(path.with_extension("pub"))
            .expect("public key")
            .trim()
            .to_string();
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(path.with_extension("pub"))
            .output()
            .expect("ssh-keygen -lf");
        let fingerprint = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(1)
            .expect("fingerprint field")
            .to_string();
        Key {
            path,
            public,
            fingerprint,
        }
    }

    /// The anonymous user name an unlisted key gets (SPEC §3).
    pub fn anonymous_name(&self) -> String {
        let b64 = self.fingerprint.trim_start_matches("SHA256:");
        let head: String = b64.chars().take(16).collect();
        format!("fp-{}", head.replace('+', "-").replace('/', "_"))
    }
}

/// Builder for a test server.
pub struct Config {
    pub users_toml: Option<String>,
    pub auth: AuthMode,
    pub domain: String,
    pub ssh_limits: SshLimits,
    /// Also serve HTTP (on 127.0.0.1:0; see `TestServer::http_addr`).
    pub http: bool,
    /// `--kex`.
    pub kex: KexPolicy,
    /// Contents of the `--trusted-user-ca` file, if any.
    pub trusted_user_ca: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            users_toml: None,
            auth: AuthMode::Open,
            domain: "testhost".to_string(),
            ssh_limits: SshLimits::default(),
            http: false,
            kex: KexPolicy::default(),
            trusted_user_ca: None,
        }
    }
}

/// Options for an in-process server on `data_dir`: loopback, port 0, open
/// auth, domain `testhost`, no HTTP, default limits.
/// The broker of test servers: the server's defaults, except that
/// anonymous keys (every test key not in a users file) get a user's whole
/// quota rather than a tenth. Most tests are about per-user rules and use
/// anonymous keys; tests/it/security.rs sets the tenth itself.
pub fn test_broker() -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config.queue.anonymous_divisor = 1;
    config
}

pub fn options_for(data_dir: &Path) -> Options {
    Options {
        ssh_listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data_dir.to_path_buf(),
        host_key: None,
        users: None,
        auth: AuthMode::Open,
        domain: "testhost".to_string(),
        advertise_port: None,
        http_listen: None,
        ssh_limits: SshLimits::default(),
        broker: test_broker(),
        kex: KexPolicy::default(),
        trusted_user_ca: None,
        metrics_listen: Default::default(),
        http: Default::default(),
    }
}

/// A running server; shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP address, when started with `Config { http: true, .. }`.
    pub http_addr: Option<SocketAddr>,
    /// `--metrics-listen ADDR`'s address, when the options name one.
    pub metrics_addr: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub app: Arc<App>,
    pub host_key_fingerprint: String,
    shutdown: CancellationToken,
    thread: Option<thread::JoinHandle<()>>,
}

impl TestServer {
    pub fn start() -> TestServer {
        TestServer::with(Config::default())
    }

    pub fn with(cfg: Config) -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = cfg.users_toml.as_ref().map(|text| {
            let p = dir.path().join("users.toml");
            std::fs::write(&p, text).expect("write users file");
            p
        });
        let trusted_user_ca = cfg.trusted_user_ca.as_ref().map(|text| {
            let p = dir.path().join("trusted_user_ca");
            std::fs::write(&p, text).expect("write trusted CA file");
            p
        });
        let opts = Options {
            ssh_listen: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().join("data"),
            host_key: None,
            users,
            auth: cfg.auth,
            domain: cfg.domain,
            advertise_port: None,
            http_listen: cfg.http.then(|| "127.0.0.1:0".parse().expect("addr")),
            ssh_limits: cfg.ssh_limits,
            broker: test_broker(),
            kex: cfg.kex,
            trusted_user_ca,
            metrics_listen: Default::default(),
            http: Default::default(),
        };
        TestServer::from_options(opts, dir)
    }

    pub fn from_options(opts: Options, dir: tempfile::TempDir) -> TestServer {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                match server::start(opts).await {
                    Ok(running) => {
                        let shutdown = running.shutdown.clone();
                        tx.send(Ok((
                            running.ssh_addr,
                            running.http_addr,
                            running.metrics_addr,
                            Arc::clone(&running.app),
                            running.host_key_fingerprint.clone(),
                            shutdown,
                        )))
                        .ok();
                        let _ = running.join.await;
                    }
                    Err(e) => {
                        tx.send(Err(format!("{e:#}"))).ok();
                    }
                }
            });
        });
        let (addr, http_addr, metrics_addr, app, fp, shutdown) = rx
            .recv_timeout(WAIT)
            .expect("server start reported")
            .unwrap_or_else(|e| panic!("server failed to start: {e}"));
        TestServer {
            addr,
            http_addr,
            metrics_addr,
            dir,
            app,
            host_key_fingerprint: fp,
            shutdown,
            thread: Some(thread),
        }
    }

    pub fn key(&self, name: &str) -> Key {
        Key::new(self.dir.path(), name)
    }

    /// An `ssh` command for this server, authenticating with `key`.
    pub fn ssh(&self, key: &Key, args: &[&str]) -> Command {
        self.ssh_with(key, &[], args)
    }

    /// Like `ssh`, with extra client options first (`-tt`, `-o ...`): ssh
    /// keeps the first value it sees, so these win over the defaults.
    pub fn ssh_with(&self, key: &Key, opts: &[&str], args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(opts)
            .args(CLIENT_OPTS)
            .args(["-o", "LogLevel=ERROR", "-i"])
            .arg(&key.path)
            .args(["-p", &self.addr.port().to_string(), "tester@127.0.0.1"])
            .args(args);
        cmd
    }

    /// Runs an ssh command to completion with the given stdin.
    pub fn run(&self, key: &Key, args: &[&str], stdin: &[u8]) -> Out {
        let child = self
            .ssh(key, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh");
        finish(child, stdin, &format!("ssh {args:?}"))
    }

    /// Starts an ssh command in the background with piped stdio.
    pub fn spawn(&self, key: &Key, args: &[&str]) -> Child {
        self.ssh(key, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ssh")
    }

    /// Live counts of a topic by full name.
    pub fn counts(&self, full: &str) -> Option<Counts> {
        self.app.broker.counts(full)
    }

    /// Waits until the topic's counts satisfy `pred`.
    pub fn wait_counts(&self, full: &str, what: &str, pred: impl Fn(Counts) -> bool) {
        let c = Counts::default();
        wait_until(what, || pred(self.counts(full).unwrap_or(c)));
    }

    /// Waits until the topic has at least `n` receivers.
    pub fn wait_receivers(&self, full: &str, n: usize) {
        self.wait_counts(full, &format!("{n} receivers on {full}"), |c| {
            c.receivers >= n
        });
    }

    /// Waits until the topic has at least `n` senders.
    pub fn wait_senders(&self, full: &str, n: usize) {
        self.wait_counts(full, &format!("{n} senders on {full}"), |c| c.senders >= n);
    }

    /// Waits until `n` pubs are waiting for a receiver on the topic.
    pub fn wait_waiting_pubs(&self, full: &str, n: usize) {
        wait_until(&format!("{n} waiting pubs on {full}"), || {
            self.app.broker.waiting_pubs(full) >= n
        });
    }

    /// Stops the server and waits for it.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// A server that probes every 300 ms and drops a client after two
/// unanswered probes, so keepalive tests take seconds, not minutes.
pub fn fast_keepalive_server() -> TestServer {
    TestServer::with(Config {
        ssh_limits: SshLimits {
            keepalive_interval: Duration::from_millis(300),
            keepalive_max: 2,
            ..SshLimits::default()
        },
        ..Config::default()
    })
}

/// Polls `cond` until true; fails the test after `WAIT`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(2);
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for: {what}");
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Out {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    /// Asserts the exit code, showing stderr when it is wrong.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "exit status; stderr: {}\nstdout: {}",
            self.stderr,
            String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(2000)])
        );
        self
    }
}

/// Feeds stdin (then closes it), collects stdout/stderr, and waits with a
/// bound; a hung client fails the test instead of hanging it.
pub fn finish(mut child: Child, stdin: &[u8], what: &str) -> Out {
    let input = child.stdin.take();
    let data = stdin.to_vec();
    let writer = thread::spawn(move || {
        if let Some(mut input) = input {
            let _ = input.write_all(&data);
        }
    });
    let mut stdout = child.stdout.take().expect("stdout piped");
    let mut stderr = child.stderr.take().expect("stderr piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    });
    let status = wait_child(&mut child, what);
    let _ = writer.join();
    Out {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Waits for a child with the test bound; kills it and fails on timeout.
pub fn wait_child(child: &mut Child, what: &str) -> ExitStatus {
    wait_child_within(child, what, WAIT)
}

/// Waits for a child up to `limit`; kills it and fails on timeout.
pub fn wait_child_within(child: &mut Child, what: &str, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("timed out waiting for {what} to exit");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Collects a background child's output once it has exited.
pub fn collect(child: Child, what: &str) -> Out {
    finish(child, b"", what)
}

/// A users file (SPEC §3) listing each key under its name.
pub fn users_toml(entries: &[(&str, &Key)]) -> String {
    entries
        .iter()
        .map(|(name, key)| format!("[users.{name}]\nkeys = [\"{}\"]\n\n", key.public))
        .collect()
}

/// Lines a running client printed so far.
pub type Lines = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Collects a running client's stdout lines as they arrive (takes stdout).
pub fn lines_of(child: &mut Child) -> Lines {
    use std::io::BufRead;
    let lines = Lines::default();
    let out = child.stdout.take().expect("stdout piped");
    let sink = std::sync::Arc::clone(&lines);
    thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            sink.lock().expect("lines lock").push(line);
        }
    });
    lines
}

/// Deterministic pseudo-random bytes (xorshift), for byte-exact checks.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(data))
}
