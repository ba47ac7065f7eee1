//! Scenario 6, the HTTP relay: `curl` POSTs a body to `/topic/{t}` while a
//! second `curl` GETs it, through sshpipe and, in the same run, through
//! npm's `piping-server` (Node), the best-known relay of this shape. Loopback
//! HTTP has no crypto, so this measures the data path itself: body chunks
//! between hyper and the broker, copies and wakeups.
//!
//! piping-server is found on `PATH` (CI installs it with `npm install -g`)
//! or installed once with npm into a cache directory under the system temp
//! dir. Without Node and npm, or when the install fails (no network), the
//! baseline is skipped with a line saying why, and sshpipe is measured alone.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::child_io::{drain, feed};
use crate::Ctx;
use crate::data::Pattern;
use crate::procfs;
use crate::report::{Section, Target, median, mib_per_s};
use crate::server::{Server, must_usage};

/// The package, as `npm install` names it.
const PACKAGE: &str = "piping-server";

/// How long an `npm install` may take before we give up on the baseline.
const NPM_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let (bytes, rounds) = if ctx.quick {
        (16u64 << 20, 1)
    } else {
        (512u64 << 20, 3)
    };
    // One transfer may take this long before curl gives up (a hung relay
    // fails the run instead of holding it).
    let curl_limit = if ctx.quick { 60 } else { 600 };
    let server = match ctx.addr {
        Some(_) => bail!("the http scenario starts its own server (no --addr)"),
        None => Server::start_with_http()?,
    };
    let http = server
        .http
        .context("the server did not say its HTTP address")?;
    let piping = tokio::task::block_in_place(Piping::start);
    let (piping, skipped) = match piping {
        Ok(p) => (Some(p), None),
        Err(e) => {
            println!("http: piping-server baseline skipped: {e:#}");
            (None, Some(format!("{e:#}")))
        }
    };
    let pattern = Pattern::new(6);
    let (mut pipe, mut base) = (Vec::new(), Vec::new());
    let (mut pipe_cpu, mut base_cpu) = (Vec::new(), Vec::new());
    // CPU of the load side (the two curls, reaped, plus this process's
    // pattern writing and checking), per GiB: what bounds the relay here.
    let mut client_cpu = Vec::new();
    let me = std::process::id();
    let mut exact = true;
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for base_turn in order {
            let path = format!("/topic/http-{round}");
            let clients_before = procfs::usage(me);
            if base_turn {
                let Some(p) = &piping else { continue };
                let before = procfs::usage(p.child.id());
                let r = tokio::task::block_in_place(|| {
                    relay(p.addr, &path, bytes, &pattern, curl_limit)
                })?;
                let after = procfs::usage(p.child.id());
                client_cpu.extend(client_share(clients_before, procfs::usage(me), bytes));
                exact &= r.exact;
                base.push(r.secs);
                base_cpu.extend(
                    before
                        .zip(after)
                        .map(|(b, a)| per_gib(a.cpu - b.cpu, bytes)),
                );
            } else {
                let before = must_usage(&server)?;
                let r = tokio::task::block_in_place(|| {
                    relay(http, &path, bytes, &pattern, curl_limit)
                })?;
                let after = must_usage(&server)?;
                client_cpu.extend(client_share(clients_before, procfs::usage(me), bytes));
                exact &= r.exact;
                pipe.push(r.secs);
                pipe_cpu.extend(
                    before
                        .zip(after)
                        .map(|(b, a)| per_gib(a.cpu - b.cpu, bytes)),
                );
            }
        }
    }
    let rate = |secs: &[f64]| -> Vec<f64> { secs.iter().map(|s| mib_per_s(bytes, *s)).collect() };
    let (pipe_rates, base_rates) = (rate(&pipe), rate(&base));
    let mut s = Section::new(
        "http",
        format!(
            "6. HTTP relay, curl POST → curl GET ({} MiB, {} run{})",
            bytes >> 20,
            rounds,
            if rounds == 1 { "" } else { "s" }
        ),
        vec![
            "relay",
            "MiB/s per run",
            "median MiB/s",
            "server CPU s per GiB (median)",
        ],
    );
    let fmt_runs = |r: &[f64]| {
        r.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cpu_cell = |c: &[f64]| {
        if c.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", median(c.to_vec()))
        }
    };
    s.rows.push(vec![
        "sshpipe /topic/{t}".into(),
        fmt_runs(&pipe_rates),
        format!("{:.0}", median(pipe_rates.clone())),
        cpu_cell(&pipe_cpu),
    ]);
    let ratio = match &piping {
        None => {
            s.notes.push(format!(
                "piping-server baseline skipped: {} (install it with `npm install -g {PACKAGE}`)",
                skipped.as_deref().unwrap_or("?")
            ));
            None
        }
        Some(p) => {
            s.rows.push(vec![
                format!("piping-server {}", p.version),
                fmt_runs(&base_rates),
                format!("{:.0}", median(base_rates.clone())),
                cpu_cell(&base_cpu),
            ]);
            Some(median(pipe_rates.clone()) / median(base_rates.clone()))
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ceiling = (!client_cpu.is_empty()).then(|| {
        let per_gib = median(client_cpu.clone());
        (per_gib, cores / per_gib * 1024.0)
    });
    if let Some((per_gib, mib_s)) = ceiling {
        s.notes.push(format!(
            "load side (two curls, pattern writing and checking): {per_gib:.2} CPU s per GiB, \
             so even a relay that cost nothing would move at most {mib_s:.0} MiB/s on these \
             {cores:.0} cores{}",
            if base_rates.is_empty() {
                String::new()
            } else {
                format!(
                    " = {:.2}× piping-server's median",
                    mib_s / median(base_rates.clone())
                )
            }
        ));
    }
    s.targets.push(Target::new(
        "HTTP relay vs piping-server",
        ratio.map_or("-".into(), |r| format!("{r:.2}×")),
        "≥ 3.0×",
        ratio.map(|r| r >= 3.0),
    ));
    s.exact = exact;
    s.data = serde_json::json!({
        "bytes": bytes,
        "sshpipe_mib_s": pipe_rates,
        "piping_server_mib_s": base_rates,
        "sshpipe_cpu_s_per_gib": pipe_cpu,
        "piping_server_cpu_s_per_gib": base_cpu,
        "piping_server_version": piping.as_ref().map(|p| p.version.clone()),
        "client_cpu_s_per_gib": client_cpu,
        "ceiling_mib_s": ceiling.map(|c| c.1),
        "ratio": ratio,
    });
    Ok(s)
}

/// The load side's CPU seconds per GiB between two samples of this
/// process: its own threads plus the children it reaped (the curls).
fn client_share(
    before: Option<procfs::Usage>,
    after: Option<procfs::Usage>,
    bytes: u64,
) -> Option<f64> {
    let (b, a) = (before?, after?);
    Some(per_gib(a.cpu_with_children - b.cpu_with_children, bytes))
}

/// CPU seconds per GiB relayed.
fn per_gib(cpu: Duration, bytes: u64) -> f64 {
    cpu.as_secs_f64() / (bytes as f64 / (1u64 << 30) as f64)
}

struct Relay {
    secs: f64,
    exact: bool,
}

/// A GET of `path`, then a streamed POST of `bytes` to it; the time from
/// the POST's start to the GET's last byte.
fn relay(addr: SocketAddr, path: &str, bytes: u64, p: &Pattern, limit: u64) -> Result<Relay> {
    let url = format!("http://{addr}{path}");
    let mut get = curl(limit)
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run curl")?;
    let start = Instant::now();
    // `-T -`: stream stdin as a chunked body (`--data-binary @-` would read
    // it all into memory first); `Expect:` off, so no 100-continue wait.
    let mut post = curl(limit)
        .args(["-X", "POST", "-T", "-", "-H", "Expect:", "-o", "/dev/null"])
        .arg(&url)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot run curl")?;
    let writer = feed(&mut post, bytes, p)?;
    let exact = drain(&mut get, bytes, p, "http");
    let secs = start.elapsed().as_secs_f64();
    let written = writer.join();
    let (ps, gs) = (post.wait()?, get.wait()?);
    let exact = exact?;
    match written {
        Ok(r) => r.context("writing to curl")?,
        Err(_) => bail!("the writer thread panicked"),
    }
    if !ps.success() || !gs.success() {
        bail!("curl POST exited with {ps}, curl GET with {gs} ({url})");
    }
    Ok(Relay { secs, exact })
}

fn curl(limit: u64) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--fail", "--no-buffer", "--max-time"])
        .arg(limit.to_string())
        .stderr(Stdio::inherit());
    cmd
}

/// npm's piping-server on a free loopback port.
struct Piping {
    addr: SocketAddr,
    version: String,
    child: Child,
}

impl Piping {
    fn start() -> Result<Self> {
        let bin = locate()?;
        let version = Command::new(&bin)
            .arg("--version")
            .stderr(Stdio::null())
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "?".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("cannot find a free port")?
            .port();
        let child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--http-port"])
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot run {}", bin.display()))?;
        let me = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            version,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(me.addr).is_err() {
            if Instant::now() > deadline {
                bail!("piping-server did not listen on {} within 20 s", me.addr);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(me)
    }
}

impl Drop for Piping {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `piping-server` on PATH, or in our npm cache dir (installed there now if
/// need be).
fn locate() -> Result<PathBuf> {
    if let Some(p) = on_path(PACKAGE) {
        return Ok(p);
    }
    let dir = std::env::temp_dir().join("sshpipe-bench-npm");
    let bin = dir.join("node_modules/.bin").join(PACKAGE);
    if bin.exists() {
        return Ok(bin);
    }
    if on_path("node").is_none() || on_path("npm").is_none() {
        bail!("Node.js and npm are not installed (`apt-get install nodejs npm`)");
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
    eprintln!(
        "sshpipe-bench: installing {PACKAGE} with npm into {}",
        dir.display()
    );
    let mut npm = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--fetch-retries=1"])
        .args(["--loglevel=error", "--prefix"])
        .arg(&dir)
        .arg(PACKAGE)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run npm")?;
    let deadline = Instant::now() + NPM_LIMIT;
    let status = loop {
        if let Some(st) = npm.try_wait()? {
            break st;
        }
        if Instant::now() > deadline {
            let _ = npm.kill();
            let _ = npm.wait();
            bail!(
                "`npm install {PACKAGE}` did not finish within {} s (no network?)",
                NPM_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    if !status.success() || !bin.exists() {
        bail!("`npm install {PACKAGE}` failed ({status}; no network?)");
    }
    Ok(bin)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
