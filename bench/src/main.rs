//! sshpipe-bench: measures sshpipe beside OpenSSH's own sshd in one run.
//!
//! These machines are shared and noisy, so no absolute figure means much on
//! its own: every figure stands beside a baseline measured in the same run
//! (OpenSSH's sshd doing the same work), or beside itself at another size. The server runs as a
//! child process (this binary re-executes itself as the real sshpipe
//! program) so its CPU time and memory are read apart from the load
//! generator's.
#![forbid(unsafe_code)]

mod client;
mod data;
mod procfs;
mod report;
mod scenario;
mod server;
mod sshd;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::client::Identity;
use crate::report::Section;
use crate::server::Server;

#[derive(Debug, Parser)]
#[command(
    name = "sshpipe-bench",
    about = "Benchmark sshpipe beside OpenSSH's sshd"
)]
struct Args {
    /// Which scenario to run.
    #[arg(value_enum)]
    scenario: Which,
    /// A seconds-long smoke version of each scenario (small sizes).
    #[arg(long)]
    quick: bool,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/sshpipe-bench.json")]
    json: PathBuf,
    /// Benchmark an sshpipe already running there instead of starting one
    /// (its CPU and memory are then not measured).
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Cipher for the OpenSSH clients of `throughput` (`ssh -c`), on both
    /// relays; default: whatever the client and server negotiate.
    #[arg(long)]
    cipher: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Which {
    All,
    /// 1. single-stream throughput, OpenSSH clients, beside sshd `cat`
    Throughput,
    /// 2. one pub to 1, 10, 100, 1,000 subs
    Fanout,
    /// 3. one-way latency of 100-byte lines at 1,000/s
    Latency,
    /// 4. 10,000 idle `sub -k` sessions
    Idle,
    /// 5. authenticated sessions set up per second
    Setup,
    /// 6. HTTP relay, curl POST → GET, beside npm's piping-server
    Http,
    /// 7. pub on node A → sub on node B over NATS, beside one node
    Cluster,
}

/// What every scenario shares: options, the client key, the baseline.
pub struct Ctx {
    pub quick: bool,
    pub addr: Option<SocketAddr>,
    pub cipher: Option<String>,
    pub id: Identity,
    /// The client key as an OpenSSH file, for the real `ssh` client.
    pub key_file: PathBuf,
    pub sshd_bin: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Ctx {
    /// A fresh server for one scenario (or the one at `--addr`).
    pub fn server(&self) -> Result<Server> {
        match self.addr {
            Some(addr) => Ok(Server::external(addr)),
            None => Server::start(),
        }
    }

    /// The baseline sshd, or why there is none.
    pub fn sshd(&self) -> Result<Option<sshd::Sshd>> {
        match &self.sshd_bin {
            None => Ok(None),
            Some(bin) => Ok(Some(sshd::Sshd::start(bin, &self.id.authorized_key()?)?)),
        }
    }
}

fn main() -> ExitCode {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    if argv.get(1).is_some_and(|a| a == server::SERVE_ARG) {
        argv.remove(1);
        return sshpipe::cli::main_with_args(argv);
    }
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sshpipe-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "sshpipe-bench: a check failed: a copy was not byte-exact or a session failed (see above)"
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("sshpipe-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the scenarios; true when every byte-exact check passed.
async fn run(args: Args) -> Result<bool> {
    let dir = tempfile::tempdir().context("cannot make a temp dir")?;
    let id = Identity::generate("bench")?;
    let key_file = dir.path().join("id_ed25519");
    id.write_openssh(&key_file)?;
    let ctx = Ctx {
        quick: args.quick,
        addr: args.addr,
        cipher: args.cipher,
        id,
        key_file,
        sshd_bin: sshd::locate(),
        _dir: dir,
    };
    let machine = machine();
    println!("# sshpipe-bench{}", if ctx.quick { " --quick" } else { "" });
    println!("machine: {}", machine["summary"].as_str().unwrap_or("?"));
    match &ctx.sshd_bin {
        Some(bin) => println!(
            "baseline: {} ({})",
            bin.display(),
            machine["openssh"].as_str().unwrap_or("?")
        ),
        None => println!("baseline: {}", sshd::MISSING),
    }
    let which = match args.scenario {
        Which::All => vec![
            Which::Throughput,
            Which::Fanout,
            Which::Latency,
            Which::Idle,
            Which::Setup,
            Which::Http,
            Which::Cluster,
        ],
        one => vec![one],
    };
    let mut sections: Vec<Section> = Vec::new();
    for w in which {
        let section = match w {
            Which::Throughput => scenario::throughput::run(&ctx).await,
            Which::Fanout => scenario::fanout::run(&ctx).await,
            Which::Latency => scenario::latency::run(&ctx).await,
            Which::Idle => scenario::idle::run(&ctx).await,
            Which::Setup => scenario::setup::run(&ctx).await,
            Which::Http => scenario::http::run(&ctx).await,
            Which::Cluster => scenario::cluster::run(&ctx).await,
            Which::All => continue,
        }
        .with_context(|| format!("scenario {w:?}"))?;
        section.print();
        sections.push(section);
    }
    println!("\n## Targets\n");
    let rows: Vec<Vec<String>> = sections
        .iter()
        .flat_map(|s| s.targets.iter())
        .map(|t| {
            vec![
                t.what.clone(),
                t.measured.clone(),
                t.goal.clone(),
                t.verdict().to_string(),
            ]
        })
        .collect();
    report::print_table(&["target", "measured", "goal", "verdict"], &rows);
    let exact = sections.iter().all(|s| s.exact);
    let json = serde_json::json!({
        "quick": ctx.quick,
        "machine": machine,
        "baseline": ctx.sshd_bin.as_ref().map(|p| p.display().to_string()),
        "exact": exact,
        "scenarios": sections,
    });
    if let Some(parent) = args.json.parent() {
        std::fs::create_dir_all(parent).ok();
    }
    std::fs::write(&args.json, serde_json::to_vec_pretty(&json)?)
        .with_context(|| format!("cannot write {}", args.json.display()))?;
    println!("\nJSON: {}", args.json.display());
    Ok(exact)
}

/// What the figures were measured on.
fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let openssh = std::process::Command::new("ssh")
        .arg("-V")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
        .unwrap_or_else(|_| "ssh not found".into());
    serde_json::json!({
        "summary": format!("{cores} cores ({cpu}), {mem_gib:.0} GiB, Linux {kernel}"),
        "cpu": cpu,
        "cores": cores,
        "mem_gib": mem_gib,
        "kernel": kernel,
        "openssh": openssh,
        "unix_time": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    })
}
