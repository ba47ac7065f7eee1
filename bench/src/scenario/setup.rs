//! Scenario 5, session set-up rate: connect, ed25519 auth, exec `whoami`,
//! read its answer, disconnect — by several clients at once for a fixed
//! time. The server's CPU time per session comes from /proc; for sshd it
//! includes the per-connection processes it has reaped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::Ctx;
use crate::client::{self, Identity};
use crate::procfs::{self, Usage};
use crate::report::{Section, Target};
use crate::server::must_usage;

/// Clients at once: enough to keep two cores busy, well under the
/// server's per-IP handshake cap.
const WORKERS: usize = 16;

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let secs = if ctx.quick { 1 } else { 10 };
    let server = ctx.server()?;
    let me = std::process::id();
    let (before, load_before) = (must_usage(&server)?, procfs::usage(me));
    let pipe = hammer(&ctx.id, server.addr, Duration::from_secs(secs)).await;
    let (after, load_after) = (must_usage(&server)?, procfs::usage(me));
    let pipe_cpu_ms = cpu_ms_per(before, after, pipe.ok, |u| u.cpu);
    // The load generator (russh clients in this process) does the other
    // half of every handshake's crypto on the same cores, so it bounds the
    // rate: even a server that cost nothing could not go past this.
    let load_cpu_ms = cpu_ms_per(load_before, load_after, pipe.ok, |u| u.cpu);
    drop(server);

    let base = match ctx.sshd()? {
        None => None,
        Some(d) => {
            let id = ctx.id.as_user(&d.user);
            let before = d.usage();
            let r = hammer(&id, d.addr, Duration::from_secs(secs)).await;
            let after = d.usage();
            Some((r, cpu_ms_per(before, after, r.ok, |u| u.cpu_with_children)))
        }
    };

    let mut s = Section::new(
        "setup",
        format!("5. Session set-up: connect, auth, `whoami`, exit ({WORKERS} clients, {secs} s)"),
        vec![
            "server",
            "sessions",
            "failed",
            "sessions/s",
            "server CPU ms per session",
        ],
    );
    let row = |name: &str, r: &Rate, cpu: Option<f64>| {
        vec![
            name.to_string(),
            r.ok.to_string(),
            r.failed.to_string(),
            format!("{:.0}", r.per_sec),
            cpu.map_or("-".into(), |c| format!("{c:.2}")),
        ]
    };
    s.rows.push(row("sshpipe", &pipe, pipe_cpu_ms));
    match &base {
        Some((r, cpu)) => {
            s.rows.push(row("sshd (CPU: a lower bound)", r, *cpu));
            s.notes.push(
                "sshd's CPU counts only processes its listener reaped; the unprivileged \
                 session child is not waited for, so its time is missing"
                    .into(),
            );
        }
        None => s.notes.push(crate::sshd::MISSING.into()),
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ceilings = load_cpu_ms.map(|load| {
        let with_server = pipe_cpu_ms.map(|server| cores * 1000.0 / (load + server));
        (load, cores * 1000.0 / load, with_server)
    });
    if let Some((load, free, with_server)) = ceilings {
        s.notes.push(format!(
            "load side (russh clients in this process): {load:.2} ms CPU per session, so \
             even a server that cost nothing would reach at most {free:.0}/s on these \
             {cores:.0} cores{}",
            with_server.map_or(String::new(), |w| format!(
                ", and one costing what this one does at most {w:.0}/s"
            ))
        ));
    }
    s.exact = pipe.failed == 0;
    s.targets.push(Target::new(
        "sessions per second",
        format!("{:.0}/s", pipe.per_sec),
        "≥ 2,000/s",
        Some(pipe.per_sec >= 2000.0),
    ));
    s.targets.push(Target::new(
        "server CPU per session",
        pipe_cpu_ms.map_or("-".into(), |c| format!("{c:.2} ms")),
        "≤ 0.5 ms",
        pipe_cpu_ms.map(|c| c <= 0.5),
    ));
    s.data = serde_json::json!({
        "workers": WORKERS,
        "secs": secs,
        "sshpipe": { "sessions": pipe.ok, "failed": pipe.failed, "per_sec": pipe.per_sec, "cpu_ms_per_session": pipe_cpu_ms },
        "load_cpu_ms_per_session": load_cpu_ms,
        "ceiling_per_sec": ceilings.map(|c| c.1),
        "sshd": base.map(|(r, cpu)| serde_json::json!({
            "sessions": r.ok, "failed": r.failed, "per_sec": r.per_sec,
            "cpu_ms_per_session_lower_bound": cpu
        })),
    });
    Ok(s)
}

#[derive(Debug, Clone, Copy)]
struct Rate {
    ok: usize,
    failed: usize,
    per_sec: f64,
}

fn cpu_ms_per(
    before: Option<Usage>,
    after: Option<Usage>,
    n: usize,
    f: impl Fn(&Usage) -> Duration,
) -> Option<f64> {
    let (b, a) = before.zip(after)?;
    (n > 0).then(|| (f(&a) - f(&b)).as_secs_f64() * 1000.0 / n as f64)
}

async fn hammer(id: &Identity, addr: SocketAddr, time: Duration) -> Rate {
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + time;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (id, ok, failed) = (id.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match one(&id, addr).await {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("setup: first failure: {e:#}");
                        }
                        0
                    }
                };
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let ok = ok.load(Ordering::Relaxed);
    Rate {
        ok,
        failed: failed.load(Ordering::Relaxed),
        per_sec: ok as f64 / secs,
    }
}

async fn one(id: &Identity, addr: SocketAddr) -> Result<()> {
    let conn = id.connect(addr).await?;
    let mut ch = client::exec(&conn, "whoami").await?;
    let out = client::finish(&mut ch, Duration::from_secs(30)).await?;
    client::bye(conn).await;
    if out.status != Some(0) || out.stdout.is_empty() {
        anyhow::bail!("whoami ended with {:?}", out.status);
    }
    Ok(())
}
