//! Scenario 3, latency: 100-byte lines at 1,000 msg/s, pub → sub one way,
//! beside the same lines echoed by sshd's `cat` (one server hop each way
//! there too: client → server → client). Sender and receiver share this
//! process's clock, so one-way times need no clock sync.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use russh::ChannelMsg;
use tokio::sync::oneshot;

use super::wait_subs;
use crate::Ctx;
use crate::client;
use crate::report::{Section, Target, percentile};

const LINE_LEN: usize = 100;
const RATE_PER_SEC: u64 = 1000;

fn clock() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let secs = if ctx.quick { 1 } else { 10 };
    let count = (secs * RATE_PER_SEC) as usize;
    let server = ctx.server()?;
    let pipe = sshpipe_latency(ctx, server.addr, count).await?;
    let sshd = ctx.sshd()?;
    let base = match &sshd {
        Some(d) => Some(cat_latency(ctx, d.addr, &d.user, count).await?),
        None => None,
    };
    let mut s = Section::new(
        "latency",
        format!("3. Latency: {count} lines of {LINE_LEN} bytes at {RATE_PER_SEC}/s"),
        vec!["path", "received", "p50 ms", "p99 ms", "p99.9 ms", "max ms"],
    );
    let row = |name: &str, l: &Lat| {
        vec![
            name.to_string(),
            format!("{}/{count}", l.sorted_ms.len()),
            format!("{:.3}", l.p(50.0)),
            format!("{:.3}", l.p(99.0)),
            format!("{:.3}", l.p(99.9)),
            format!("{:.3}", l.p(100.0)),
        ]
    };
    s.rows.push(row("sshpipe pub → sub", &pipe));
    s.exact = pipe.sorted_ms.len() == count && pipe.in_order;
    if let Some(b) = &base {
        s.rows.push(row("sshd `cat` echo", b));
        s.exact &= b.sorted_ms.len() == count && b.in_order;
    } else {
        s.notes.push(crate::sshd::MISSING.into());
    }
    let p99 = pipe.p(99.0);
    s.targets.push(Target::new(
        "latency p99",
        format!("{p99:.3} ms"),
        "≤ 2 ms",
        Some(p99 <= 2.0),
    ));
    s.data = serde_json::json!({
        "count": count,
        "sshpipe_ms": { "p50": pipe.p(50.0), "p99": p99, "p99_9": pipe.p(99.9), "max": pipe.p(100.0) },
        "sshd_ms": base.as_ref().map(|b| serde_json::json!({
            "p50": b.p(50.0), "p99": b.p(99.0), "p99_9": b.p(99.9), "max": b.p(100.0)
        })),
    });
    Ok(s)
}

struct Lat {
    sorted_ms: Vec<f64>,
    in_order: bool,
}

impl Lat {
    fn p(&self, p: f64) -> f64 {
        percentile(&self.sorted_ms, p)
    }
}

/// A line: sequence number, send time in ns, padding, newline.
fn line(seq: usize) -> Vec<u8> {
    let mut l = format!("{seq:010} {:020} ", clock().as_nanos()).into_bytes();
    l.resize(LINE_LEN - 1, b'x');
    l.push(b'\n');
    l
}

/// Collects one-way times from the lines in a received byte stream.
struct Receiver {
    pending: Vec<u8>,
    ms: Vec<f64>,
    next_seq: usize,
    in_order: bool,
}

impl Receiver {
    fn new(count: usize) -> Self {
        Self {
            pending: Vec::new(),
            ms: Vec::with_capacity(count),
            next_seq: 0,
            in_order: true,
        }
    }

    fn feed(&mut self, data: &[u8]) {
        let now = clock().as_nanos();
        self.pending.extend_from_slice(data);
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let l: Vec<u8> = self.pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&l);
            let mut parts = text.split(' ');
            let seq = parts.next().and_then(|s| s.parse::<usize>().ok());
            let sent = parts.next().and_then(|s| s.parse::<u128>().ok());
            match (seq, sent) {
                (Some(seq), Some(sent)) if l.len() == LINE_LEN => {
                    self.in_order &= seq == self.next_seq;
                    self.next_seq = seq + 1;
                    self.ms.push(now.saturating_sub(sent) as f64 / 1e6);
                }
                _ => self.in_order = false,
            }
        }
    }

    fn finish(mut self) -> Lat {
        self.ms.sort_by(f64::total_cmp);
        Lat {
            sorted_ms: self.ms,
            in_order: self.in_order && self.pending.is_empty(),
        }
    }
}

/// Sends `count` lines at the fixed rate through `send`.
async fn paced<F, Fut>(count: usize, mut send: F) -> Result<()>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / RATE_PER_SEC));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for seq in 0..count {
        tick.tick().await;
        send(line(seq)).await?;
    }
    Ok(())
}

async fn sshpipe_latency(ctx: &Ctx, addr: SocketAddr, count: usize) -> Result<Lat> {
    let sub_conn = ctx.id.connect(addr).await?;
    let mut sub = client::exec(&sub_conn, "sub latency").await?;
    wait_subs(ctx, addr, "latency", 1).await?;
    let (tx, rx) = oneshot::channel();
    let reader = tokio::spawn(async move {
        let mut r = Receiver::new(count);
        while let Some(msg) = sub.wait().await {
            if let ChannelMsg::Data { data } = msg {
                r.feed(&data);
            }
        }
        let _ = tx.send(());
        r.finish()
    });
    let pub_conn = ctx.id.connect(addr).await?;
    let publ = client::exec(&pub_conn, "pub latency").await?;
    paced(count, |l| {
        let publ = &publ;
        async move { publ.data_bytes(l).await.context("pub: send") }
    })
    .await?;
    publ.eof().await?;
    if tokio::time::timeout(Duration::from_secs(30), rx)
        .await
        .is_err()
    {
        bail!("the sub did not end within 30 s of the pub's end");
    }
    let lat = reader.await?;
    client::bye(pub_conn).await;
    client::bye(sub_conn).await;
    Ok(lat)
}

async fn cat_latency(ctx: &Ctx, addr: SocketAddr, user: &str, count: usize) -> Result<Lat> {
    let mut id = ctx.id.clone();
    id.user = user.to_string();
    let conn = id.connect(addr).await?;
    let channel = client::exec(&conn, "cat").await?;
    let (mut read, write) = channel.split();
    let reader = tokio::spawn(async move {
        let mut r = Receiver::new(count);
        while let Some(msg) = read.wait().await {
            if let ChannelMsg::Data { data } = msg {
                r.feed(&data);
                if r.ms.len() == count {
                    break;
                }
            }
        }
        r.finish()
    });
    paced(count, |l| {
        let write = &write;
        async move { write.data_bytes(l).await.context("cat: send") }
    })
    .await?;
    let lat = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .context("sshd's cat did not echo everything within 30 s")??;
    write.eof().await.ok();
    client::bye(conn).await;
    Ok(lat)
}
