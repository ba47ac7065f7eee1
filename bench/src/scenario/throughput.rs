//! Scenario 1, single-stream throughput: `pub` → `sub` through sshpipe with
//! the real OpenSSH client on both ends, beside OpenSSH's sshd relaying the
//! same bytes through `ssh host cat`. Both servers decrypt every byte once
//! and encrypt it once; the clients negotiate their default cipher.
//!
//! The load side is measured too: the OpenSSH clients (reaped children of
//! this process) and this process, which feeds and checks every byte. On a
//! 2-core machine they take most of the CPU, so the ratio to sshd has a
//! ceiling no server can pass: the rate at which the load side alone would
//! fill every core. The scenario prints it beside the ratio.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::child_io::{drain, feed};
use super::{openssh, wait_subs};
use crate::Ctx;
use crate::data::Pattern;
use crate::procfs::Usage;
use crate::report::{Section, Target, median, mib_per_s};
use crate::server::must_usage;

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let (bytes, rounds) = if ctx.quick {
        (32u64 << 20, 1)
    } else {
        (1u64 << 30, 3)
    };
    let server = ctx.server()?;
    let sshd = ctx.sshd()?;
    let pattern = Pattern::new(1);
    let mut pipe = Vec::new();
    let mut base = Vec::new();
    let (mut pipe_cpu, mut base_cpu) = (Vec::new(), Vec::new());
    let (mut pipe_load, mut base_load) = (Vec::new(), Vec::new());
    let mut exact = true;
    for round in 0..rounds {
        // Alternate which goes first, so drift on a shared machine does not
        // favour one side.
        let order = if round % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for sshd_turn in order {
            if sshd_turn {
                if let Some(sshd) = &sshd {
                    let cpu = sshd.sample_cpu();
                    // Child processes and pipes: blocking work, kept off
                    // the runtime's workers as relay_sshpipe's is.
                    let r = tokio::task::block_in_place(|| {
                        relay_cat(ctx, sshd.addr, &sshd.user, bytes, &pattern)
                    })?;
                    // Let the session's processes finish before the last sample.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    exact &= r.exact;
                    base.push(r.secs);
                    base_load.extend(r.load.map(|l| l.per_gib(bytes)));
                    base_cpu.extend(cpu.finish().map(|c| per_gib(c, bytes)));
                }
            } else {
                let before = must_usage(&server)?;
                let r =
                    relay_sshpipe(ctx, server.addr, server.addr, bytes, &pattern, round).await?;
                let after = must_usage(&server)?;
                exact &= r.exact;
                pipe.push(r.secs);
                pipe_load.extend(r.load.map(|l| l.per_gib(bytes)));
                pipe_cpu.extend(
                    before
                        .zip(after)
                        .map(|(b, a)| per_gib(a.cpu - b.cpu, bytes)),
                );
            }
        }
    }
    let rate = |secs: &[f64]| -> Vec<f64> { secs.iter().map(|s| mib_per_s(bytes, *s)).collect() };
    let pipe_rates = rate(&pipe);
    let base_rates = rate(&base);
    let mut s = Section::new(
        "throughput",
        format!(
            "1. Single-stream throughput ({} MiB, {} run{}, OpenSSH clients, cipher: {})",
            bytes >> 20,
            rounds,
            if rounds == 1 { "" } else { "s" },
            ctx.cipher.as_deref().unwrap_or("negotiated")
        ),
        vec![
            "relay",
            "MiB/s per run",
            "median MiB/s",
            "server CPU s per GiB (median)",
        ],
    );
    let cpu_cell = |c: &[f64]| {
        if c.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", median(c.to_vec()))
        }
    };
    let fmt_runs = |r: &[f64]| {
        r.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    s.rows.push(vec![
        "sshpipe pub → sub".into(),
        fmt_runs(&pipe_rates),
        format!("{:.0}", median(pipe_rates.clone())),
        cpu_cell(&pipe_cpu),
    ]);
    s.notes.push(
        "server CPU: sshpipe's process from /proc; sshd's whole process tree (session, \
         its child, `sh`, `cat`), sampled every 20 ms"
            .into(),
    );
    // The load side's CPU per GiB (clients, this harness), medians.
    let load_cells = |l: &[(f64, f64)]| -> Option<(f64, f64)> {
        (!l.is_empty()).then(|| {
            (
                median(l.iter().map(|x| x.0).collect()),
                median(l.iter().map(|x| x.1).collect()),
            )
        })
    };
    let (pipe_side, base_side) = (load_cells(&pipe_load), load_cells(&base_load));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // GiB/s at which the load side alone fills every core, in MiB/s.
    let ceiling = pipe_side.map(|(c, h)| cores / (c + h) * 1024.0);
    let ratio = if base_rates.is_empty() {
        s.notes.push(crate::sshd::MISSING.into());
        None
    } else {
        s.rows.push(vec![
            "sshd `ssh host cat`".into(),
            fmt_runs(&base_rates),
            format!("{:.0}", median(base_rates.clone())),
            cpu_cell(&base_cpu),
        ]);
        Some(median(pipe_rates.clone()) / median(base_rates.clone()))
    };
    let ceiling_ratio = ceiling
        .zip((!base_rates.is_empty()).then(|| median(base_rates.clone())))
        .map(|(c, b)| c / b);
    if let (Some((c, h)), Some(top)) = (pipe_side, ceiling) {
        let base = base_side.map_or(String::new(), |(cb, hb)| {
            format!(" (`ssh host cat`: {cb:.2} + {hb:.2})")
        });
        let vs = ceiling_ratio.map_or(String::new(), |r| format!(" = {r:.2}× sshd's median"));
        s.notes.push(format!(
            "load side: the OpenSSH clients {c:.2} + this harness {h:.2} CPU s per GiB for \
             pub → sub{base}; on {cores:.0} cores no server could relay pub → sub faster than \
             {top:.0} MiB/s{vs}; sshpipe reached {:.0} % of that",
            100.0 * median(pipe_rates.clone()) / top
        ));
    }
    s.targets.push(Target::new(
        "throughput vs OpenSSH relay",
        ratio.map_or("-".into(), |r| match ceiling_ratio {
            Some(c) => format!("{r:.2}× (load-side ceiling {c:.2}×)"),
            None => format!("{r:.2}×"),
        }),
        "≥ 1.5×",
        ratio.map(|r| r >= 1.5),
    ));
    s.exact = exact;
    s.data = serde_json::json!({
        "bytes": bytes,
        "cipher": ctx.cipher,
        "sshpipe_mib_s": pipe_rates,
        "sshd_mib_s": base_rates,
        "sshpipe_cpu_s_per_gib": pipe_cpu,
        "sshd_cpu_s_per_gib": base_cpu,
        "ratio": ratio,
        "load_cpu_s_per_gib": {
            "sshpipe": pipe_side.map(|(c, h)| serde_json::json!({"clients": c, "harness": h})),
            "sshd": base_side.map(|(c, h)| serde_json::json!({"clients": c, "harness": h})),
        },
        "ceiling_mib_s": ceiling,
        "ceiling_ratio": ceiling_ratio,
    });
    Ok(s)
}

/// CPU seconds per GiB relayed.
pub fn per_gib(cpu: Duration, bytes: u64) -> f64 {
    cpu.as_secs_f64() / (bytes as f64 / (1u64 << 30) as f64)
}

pub struct Relay {
    pub secs: f64,
    pub exact: bool,
    /// What the load side used during the relay (None without /proc).
    pub load: Option<LoadCpu>,
}

/// CPU of a relay's load side: the OpenSSH clients it ran (reaped by the
/// end) and this process (feeding and checking the bytes).
#[derive(Debug, Clone, Copy)]
pub struct LoadCpu {
    pub clients: Duration,
    pub harness: Duration,
}

impl LoadCpu {
    fn between(before: Option<Usage>, after: Option<Usage>) -> Option<LoadCpu> {
        let (b, a) = (before?, after?);
        let reaped = |u: Usage| u.cpu_with_children.saturating_sub(u.cpu);
        Some(LoadCpu {
            clients: reaped(a).saturating_sub(reaped(b)),
            harness: a.cpu.saturating_sub(b.cpu),
        })
    }

    /// (clients, harness) in CPU seconds per GiB relayed.
    pub fn per_gib(self, bytes: u64) -> (f64, f64) {
        (per_gib(self.clients, bytes), per_gib(self.harness, bytes))
    }
}

fn own_usage() -> Option<Usage> {
    crate::procfs::usage(std::process::id())
}

/// `ssh host cat` on the baseline sshd: the client sends and receives.
fn relay_cat(ctx: &Ctx, addr: SocketAddr, user: &str, bytes: u64, p: &Pattern) -> Result<Relay> {
    let before = own_usage();
    let start = Instant::now();
    let mut cat = openssh(ctx, addr, user, "cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run ssh")?;
    let writer = feed(&mut cat, bytes, p)?;
    let exact = drain(&mut cat, bytes, p, "throughput")?;
    join(writer)?;
    let st = cat.wait()?;
    let secs = start.elapsed().as_secs_f64();
    let load = LoadCpu::between(before, own_usage());
    if !st.success() {
        bail!("ssh … cat exited with {st}");
    }
    Ok(Relay { secs, exact, load })
}

/// `ssh sub_addr sub t` and, once `pub_addr` lists it, `ssh pub_addr pub t`
/// (the same server, or two nodes of a cluster).
pub async fn relay_sshpipe(
    ctx: &Ctx,
    pub_addr: SocketAddr,
    sub_addr: SocketAddr,
    bytes: u64,
    p: &Pattern,
    round: usize,
) -> Result<Relay> {
    let topic = format!("throughput-{round}");
    let mut sub = openssh(ctx, sub_addr, &ctx.id.user, &format!("sub {topic}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run ssh")?;
    wait_subs(ctx, pub_addr, &topic, 1).await?;
    tokio::task::block_in_place(|| {
        // The sub's client started before this; its whole CPU is counted
        // when it is reaped below.
        let before = own_usage();
        let start = Instant::now();
        let mut publ = openssh(ctx, pub_addr, &ctx.id.user, &format!("pub {topic}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot run ssh")?;
        let writer = feed(&mut publ, bytes, p)?;
        let exact = drain(&mut sub, bytes, p, "throughput")?;
        join(writer)?;
        let (ps, ss) = (publ.wait()?, sub.wait()?);
        let secs = start.elapsed().as_secs_f64();
        let load = LoadCpu::between(before, own_usage());
        if !ps.success() || !ss.success() {
            bail!("pub exited with {ps}, sub with {ss}");
        }
        Ok(Relay { secs, exact, load })
    })
}

fn join(writer: std::thread::JoinHandle<Result<()>>) -> Result<()> {
    match writer.join() {
        Ok(r) => r.context("writing to ssh"),
        Err(_) => bail!("the writer thread panicked"),
    }
}
