//! The scenarios (issue 5's five, issue 17's `http`, issue 16's `cluster`),
//! and what they share.

mod child_io;
pub mod cluster;
pub mod fanout;
pub mod http;
pub mod idle;
pub mod latency;
pub mod setup;
pub mod throughput;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use russh::Channel;
use russh::client::{Handle, Msg};
use tokio::sync::Semaphore;

use crate::Ctx;
use crate::client::{self, Identity, Trusting};

/// Connections in key exchange at once: under the server's per-IP
/// handshake cap (64), which a benchmark must not trip.
pub const CONNECT_CONCURRENCY: usize = 32;

/// The real OpenSSH client, as a user runs it, with the bench key.
pub fn openssh(ctx: &Ctx, addr: SocketAddr, user: &str, remote: &str) -> Command {
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "/dev/null", "-i"])
        .arg(&ctx.key_file)
        .args([
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-p",
        ])
        .arg(addr.port().to_string());
    if let Some(cipher) = &ctx.cipher {
        cmd.args(["-c", cipher]);
    }
    cmd.arg(format!("{user}@{}", addr.ip())).arg(remote);
    cmd
}

/// Waits until `ls` counts at least `n` subs over the topics it lists whose
/// names start with `prefix`.
pub async fn wait_subs(ctx: &Ctx, addr: SocketAddr, prefix: &str, n: usize) -> Result<()> {
    let handle = ctx.id.connect(addr).await?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut ch = client::exec(&handle, "ls").await?;
        let out = client::finish(&mut ch, Duration::from_secs(30)).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        if count_subs(&text, prefix) >= n {
            client::bye(handle).await;
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} subs on {prefix}* after 120 s",
                count_subs(&text, prefix)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sums the `  subs: N` lines of the topics named `prefix…` in `ls` output.
fn count_subs(listing: &str, prefix: &str) -> usize {
    let mut in_topic = false;
    let mut total = 0;
    for line in listing.lines() {
        if !line.starts_with(' ') {
            in_topic = line.starts_with(prefix);
        } else if in_topic && let Some(rest) = line.trim_start().strip_prefix("subs: ") {
            total += rest
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(0);
        }
    }
    total
}

/// Opens `n` sessions running `command(i)`, `CONNECT_CONCURRENCY` at a time.
pub async fn open_many(
    id: &Identity,
    addr: SocketAddr,
    n: usize,
    command: impl Fn(usize) -> String,
) -> Result<Vec<(Handle<Trusting>, Channel<Msg>)>> {
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let id = id.clone();
        let cmd = command(i);
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await?;
            let handle = id.connect(addr).await?;
            let channel = client::exec(&handle, &cmd).await?;
            anyhow::Ok((handle, channel))
        }));
    }
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.context("a connect task died")??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::count_subs;

    #[test]
    fn counts_subs_of_matching_topics_only() {
        let ls =
            "fan-1\n  subs: 2 (a, b)\n  pubs: 1 (c)\nother\n  subs: 5 (x)\nfan-2\n  subs: 1 (d)\n";
        assert_eq!(count_subs(ls, "fan-"), 3);
        assert_eq!(count_subs(ls, "other"), 5);
        assert_eq!(count_subs("no topics\n", "fan-"), 0);
    }
}
