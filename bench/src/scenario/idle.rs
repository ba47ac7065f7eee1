//! Scenario 4, idle scale: 10,000 concurrent idle `sub -k` sessions, one TCP
//! connection each. The server's RSS per session, and how promptly another
//! client is still served meanwhile. Beside it, sshd's memory per idle
//! session (PSS of its process tree; it forks per connection, so it gets a
//! smaller count).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use russh::ChannelMsg;

use super::{open_many, wait_subs};
use crate::Ctx;
use crate::client;
use crate::report::{Section, Target};
use crate::server::must_usage;

const TOPICS: usize = 100;
const KIB: f64 = 1024.0;

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let n = if ctx.quick { 200 } else { 10_000 };
    let server = ctx.server()?;
    let addr = server.addr;
    // One session first, so the runtime's one-off allocations are in the
    // starting figure rather than charged to the idle sessions.
    probe(ctx, addr).await?;
    let before = must_usage(&server)?;
    let start = Instant::now();
    let sessions = open_many(&ctx.id, addr, n, |i| format!("sub -k idle-{}", i % TOPICS)).await?;
    wait_subs(ctx, addr, "idle-", n).await?;
    let setup_secs = start.elapsed().as_secs_f64();
    // Let connection set-up buffers be released before reading RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = must_usage(&server)?;
    let probe_ms = probe(ctx, addr).await?;
    let per_session = before
        .zip(after)
        .map(|(b, a)| (a.rss as f64 - b.rss as f64) / n as f64);
    drop(sessions);

    let base_n = if ctx.quick { 20 } else { 200 };
    let base = match ctx.sshd()? {
        None => None,
        Some(d) => {
            let id = ctx.id.as_user(&d.user);
            let before = d.tree_pss();
            let idle = open_many(&id, d.addr, base_n, |_| "cat".to_string()).await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let after = d.tree_pss();
            drop(idle);
            before
                .zip(after)
                .map(|(b, a)| (a as f64 - b as f64) / base_n as f64)
        }
    };

    let mut s = Section::new(
        "idle",
        format!("4. Idle scale: {n} idle `sub -k` sessions"),
        vec![
            "server",
            "sessions",
            "memory per session KiB",
            "set-up s",
            "probe while loaded ms",
        ],
    );
    s.rows.push(vec![
        "sshpipe (RSS)".into(),
        n.to_string(),
        per_session.map_or("-".into(), |b| format!("{:.1}", b / KIB)),
        format!("{setup_secs:.1}"),
        format!("{:.1}", probe_ms),
    ]);
    match base {
        Some(b) => s.rows.push(vec![
            "sshd `cat` (PSS of its processes)".into(),
            base_n.to_string(),
            format!("{:.1}", b / KIB),
            "-".into(),
            "-".into(),
        ]),
        None => s.notes.push(crate::sshd::MISSING.into()),
    }
    s.notes
        .push("probe: connect + `whoami`, then a line pub → sub on another topic".into());
    s.targets.push(Target::new(
        &format!("server RSS per idle session at {n}"),
        per_session.map_or("-".into(), |b| format!("{:.1} KiB", b / KIB)),
        "≤ 32 KiB",
        per_session.map(|b| b <= 32.0 * KIB),
    ));
    s.data = serde_json::json!({
        "sessions": n,
        "rss_before": before.map(|u| u.rss),
        "rss_after": after.map(|u| u.rss),
        "bytes_per_session": per_session,
        "setup_secs": setup_secs,
        "probe_ms": probe_ms,
        "sshd_sessions": base_n,
        "sshd_pss_bytes_per_session": base,
    });
    Ok(s)
}

/// A new client's experience: connect + `whoami`, then one line pub → sub.
/// Returns milliseconds for the whole.
async fn probe(ctx: &Ctx, addr: SocketAddr) -> Result<f64> {
    let start = Instant::now();
    let conn = ctx.id.connect(addr).await?;
    let mut who = client::exec(&conn, "whoami").await?;
    let out = client::finish(&mut who, Duration::from_secs(30)).await?;
    if out.status != Some(0) || out.stdout.is_empty() {
        bail!("whoami failed while loaded: {:?}", out.status);
    }
    let mut sub = client::exec(&conn, "sub probe").await?;
    let publ = client::exec(&conn, "pub probe").await?;
    publ.data_bytes(&b"ping\n"[..]).await?;
    publ.eof().await?;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(msg) = sub.wait().await {
            if let ChannelMsg::Data { data } = msg {
                got.extend_from_slice(&data);
            }
        }
    })
    .await
    .ok();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    client::bye(conn).await;
    if got != b"ping\n" {
        bail!("the probe line did not arrive: {got:?}");
    }
    Ok(ms)
}
