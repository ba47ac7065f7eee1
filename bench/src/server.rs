//! The sshpipe server under test: the real program (`sshpipe::cli`) in a
//! child process of its own, so its CPU time and memory are read apart from
//! the load generator's; or a server someone else started (`--addr`).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};

use crate::procfs::{self, Usage};

/// The first argument that makes `sshpipe-bench` run the server instead.
pub const SERVE_ARG: &str = "__serve-sshpipe";

pub struct Server {
    pub addr: SocketAddr,
    /// The HTTP listener, when started with one (`start_with_http`).
    pub http: Option<SocketAddr>,
    child: Option<Child>,
    _data_dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts the server on a free loopback port with its defaults, except
    /// the limits a benchmark must pass (10,000 idle sessions from one key).
    pub fn start() -> Result<Self> {
        Self::launch(false, &[])
    }

    /// As `start`, with the HTTP listener on a free loopback port too.
    pub fn start_with_http() -> Result<Self> {
        Self::launch(true, &[])
    }

    /// As `start`, as a node of the cluster on `broker` (`nats://…,…`).
    pub fn start_node(broker: &str) -> Result<Self> {
        Self::launch(false, &["--broker", broker])
    }

    fn launch(http: bool, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::tempdir().context("cannot make a data dir")?;
        let exe = std::env::current_exe().context("cannot find our own binary")?;
        let mut child = Command::new(exe)
            .arg(SERVE_ARG)
            .args(["--ssh-listen", "127.0.0.1:0", "--http-listen"])
            .arg(if http { "127.0.0.1:0" } else { "off" })
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--log-format", "json"])
            .args(["--max-connections", "20000"])
            .args(["--max-sessions-per-user", "20000"])
            .args(["--max-topics", "20000"])
            // The harness's one key is anonymous: give it a user's whole
            // share (its scenarios use more than 100 topics).
            .args(["--max-topics-per-user", "20000"])
            .args(["--anonymous-divisor", "1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the server")?;
        let stderr = child.stderr.take().context("no server stderr")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
                if let Some(addr) = listening_addr(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(addr));
                    }
                } else if line.contains("\"ERROR\"") || line.contains("\"WARN\"") {
                    eprintln!("server: {line}");
                }
                if let Some(t) = &tx
                    && !line.starts_with('{')
                {
                    let _ = t.send(Err(line));
                }
            }
        });
        let (addr, http) = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addrs)) => addrs,
            Ok(Err(line)) => bail!("the server failed to start: {line}"),
            Err(_) => bail!("the server did not say where it listens within 30 s"),
        };
        Ok(Self {
            addr,
            http,
            child: Some(child),
            _data_dir: Some(dir),
        })
    }

    /// A server already running elsewhere; its usage can't be measured.
    pub fn external(addr: SocketAddr) -> Self {
        Self {
            addr,
            http: None,
            child: None,
            _data_dir: None,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn usage(&self) -> Option<Usage> {
        procfs::usage(self.pid()?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `{"fields":{"message":"sshpipe listening","ssh":"127.0.0.1:1234",
/// "http":"127.0.0.1:1235" (or "off"),...}}`: the SSH and HTTP addresses.
fn listening_addr(line: &str) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = v.get("fields")?;
    if fields.get("message")?.as_str()? != "sshpipe listening" {
        return None;
    }
    let ssh = fields.get("ssh")?.as_str()?.parse().ok()?;
    let http = fields
        .get("http")
        .and_then(|h| h.as_str())
        .and_then(|h| h.parse().ok());
    Some((ssh, http))
}

/// Fails unless usage could be read (a server we started must be alive).
pub fn must_usage(server: &Server) -> Result<Option<Usage>> {
    match server.pid() {
        None => Ok(None),
        Some(pid) => procfs::usage(pid)
            .map(Some)
            .ok_or_else(|| anyhow!("the server (pid {pid}) is gone")),
    }
}
