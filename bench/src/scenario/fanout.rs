//! Scenario 2, fan-out: one pub → 1, 10, 100, 1,000 subs (russh clients in-
//! process). Aggregate delivered MiB/s and the server's CPU seconds per GiB
//! delivered; every copy is checked byte for byte.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use russh::ChannelMsg;

use super::{open_many, wait_subs};
use crate::Ctx;
use crate::client;
use crate::data::Pattern;
use crate::report::{Section, Target, mib_per_s};
use crate::server::must_usage;

const SEND_CHUNK: usize = 256 << 10;
const GIB: f64 = (1u64 << 30) as f64;

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let sizes: &[usize] = if ctx.quick {
        &[1, 10]
    } else {
        &[1, 10, 100, 1000]
    };
    let server = ctx.server()?;
    let pattern = Pattern::new(2);
    let mut s = Section::new(
        "fanout",
        "2. Fan-out: one pub → N subs".into(),
        vec![
            "subs",
            "MiB per copy",
            "GiB delivered",
            "aggregate MiB/s",
            "server CPU s",
            "CPU s per GiB",
            "exact copies",
        ],
    );
    let mut per_gib = Vec::new();
    let mut data = Vec::new();
    for &n in sizes {
        let per_copy: u64 = if ctx.quick {
            8 << 20
        } else {
            ((1u64 << 30) / n as u64).max(4 << 20)
        };
        let r = one(ctx, &server, server.addr, n, per_copy, &pattern).await?;
        let delivered = per_copy * n as u64;
        let cpu_per_gib = r.cpu.map(|c| c / (delivered as f64 / GIB));
        s.exact &= r.exact == n;
        s.rows.push(vec![
            n.to_string(),
            format!("{}", per_copy >> 20),
            format!("{:.2}", delivered as f64 / GIB),
            format!("{:.0}", mib_per_s(delivered, r.secs)),
            r.cpu.map_or("-".into(), |c| format!("{c:.2}")),
            cpu_per_gib.map_or("-".into(), |c| format!("{c:.2}")),
            format!("{}/{n}", r.exact),
        ]);
        per_gib.push((n, cpu_per_gib));
        data.push(serde_json::json!({
            "subs": n, "bytes_per_copy": per_copy, "secs": r.secs,
            "server_cpu_s": r.cpu, "cpu_s_per_gib": cpu_per_gib, "exact": r.exact,
        }));
    }
    let wide = if ctx.quick { 10 } else { 1000 };
    let cost = |n: usize| per_gib.iter().find(|(k, _)| *k == n).and_then(|(_, c)| *c);
    let ratio = cost(wide).zip(cost(1)).map(|(w, one)| w / one);
    s.targets.push(Target::new(
        &format!("fan-out cost per GiB, {wide} subs vs 1"),
        ratio.map_or("-".into(), |r| format!("{r:.2}×")),
        "≤ 1.0×",
        ratio.map(|r| r <= 1.0),
    ));
    s.data = serde_json::json!({ "runs": data, "cost_ratio": ratio });
    Ok(s)
}

struct Fan {
    secs: f64,
    cpu: Option<f64>,
    exact: usize,
}

async fn one(
    ctx: &Ctx,
    server: &crate::server::Server,
    addr: SocketAddr,
    n: usize,
    per_copy: u64,
    p: &Pattern,
) -> Result<Fan> {
    let topic = format!("fan-{n}");
    let subs = open_many(&ctx.id, addr, n, |_| format!("sub {topic}")).await?;
    wait_subs(ctx, addr, &topic, n).await?;
    let mut readers = Vec::with_capacity(n);
    for (handle, mut channel) in subs {
        let mut check = p.checker();
        readers.push(tokio::spawn(async move {
            let mut status = None;
            while let Some(msg) = channel.wait().await {
                match msg {
                    ChannelMsg::Data { data } => check.feed(&data),
                    ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                    _ => {}
                }
            }
            client::bye(handle).await;
            check.exact(per_copy) && status == Some(0)
        }));
    }
    let publisher = ctx.id.connect(addr).await?;
    let before = must_usage(server)?;
    let start = Instant::now();
    let mut channel = client::exec(&publisher, &format!("pub {topic}")).await?;
    let mut sent = 0u64;
    while sent < per_copy {
        let len = SEND_CHUNK.min((per_copy - sent) as usize);
        channel
            .data_bytes(p.chunk(sent, len))
            .await
            .context("pub: send")?;
        sent += len as u64;
    }
    channel.eof().await.context("pub: eof")?;
    let done = client::finish(&mut channel, Duration::from_secs(600)).await?;
    if done.status != Some(0) {
        bail!(
            "pub exited with {:?}: {}",
            done.status,
            String::from_utf8_lossy(&done.stderr)
        );
    }
    let mut exact = 0;
    for r in readers {
        // The pub has ended; a sub that still hasn't is a bug to report,
        // not a reason to hang the run.
        let done = tokio::time::timeout(Duration::from_secs(120), r)
            .await
            .context("a sub did not end within 120 s of the pub")?;
        exact += usize::from(done.context("a sub reader died")?);
    }
    let secs = start.elapsed().as_secs_f64();
    let after = must_usage(server)?;
    client::bye(publisher).await;
    let cpu = before
        .zip(after)
        .map(|(b, a)| (a.cpu - b.cpu).as_secs_f64());
    Ok(Fan { secs, cpu, exact })
}
