//! The delivery rules of SPEC §5 and §7 across two nodes (SPEC §14), each
//! driven with the real `ssh` against two sshpipe nodes on a real 3-server
//! NATS cluster: the ending rules, line atomicity with senders on both
//! nodes, pattern subs, round-robin exactly once over workers on both
//! nodes, and a slow sub on one node pacing a fast pub on the other with
//! bounded memory on both.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::cluster::{node, receivers};
use super::cluster_failures::process_node;
use crate::common;
use common::nats::NatsCluster;
use common::{Key, Lines, TestServer, lines_of, wait_child, wait_child_within, wait_until};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// A 3-server NATS cluster and two nodes on different servers of it;
/// `None` where nats-server is missing (outside CI).
fn two_nodes() -> Option<(NatsCluster, TestServer, TestServer)> {
    let nats = NatsCluster::start(3)?;
    let (a, b) = (node(&nats, 0, 3), node(&nats, 1, 3));
    Some((nats, a, b))
}

/// What a running client wrote to stdout so far.
type Received = Arc<Mutex<Vec<u8>>>;

/// Everything a running client writes to stdout, as it arrives.
fn bytes_of(child: &mut Child) -> Received {
    let mut out = child.stdout.take().expect("stdout piped");
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    got
}

/// A running client's stderr, read to its end in the background.
fn stderr_of(child: &mut Child) -> JoinHandle<String> {
    let mut err = child.stderr.take().expect("stderr piped");
    thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    })
}

/// A `sub` (with `args` before the topic) whose stdout lines are collected.
fn sub_lines(on: &TestServer, key: &Key, args: &[&str]) -> (Child, Lines) {
    let mut child = on
        .ssh(key, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut child);
    (child, lines)
}

/// A sender (`pub …`) whose stdin the test writes.
fn sender(on: &TestServer, key: &Key, args: &[&str]) -> (Child, ChildStdin) {
    let mut child = on
        .ssh(key, args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

fn has(lines: &Lines, want: &str) -> bool {
    lines.lock().unwrap().iter().any(|l| l == want)
}

#[test]
fn a_sub_ends_when_the_last_sender_on_the_other_node_ends_and_not_before() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    let key = Key::new(a.dir.path(), "ender");
    let full = format!("{}/end", key.anonymous_name());
    let (mut sub, got) = sub_lines(&b, &key, &["sub", "end"]);
    let (mut keep, kept) = sub_lines(&b, &key, &["sub", "-k", "end"]);
    receivers(&b, &full, 2);
    let (mut p1, mut in1) = sender(&a, &key, &["pub", "-c", "end"]);
    let (mut p2, mut in2) = sender(&a, &key, &["pub", "-c", "end"]);
    a.wait_senders(&full, 2);
    b.wait_senders(&full, 2);

    in1.write_all(b"one\n").unwrap();
    drop(in1);
    assert!(wait_child(&mut p1, "first pub").success());
    wait_until("the sub on B to get the first line", || has(&got, "one"));

    // A receiver joining and leaving on A ends nothing on B.
    let (mut extra, _) = sub_lines(&a, &key, &["sub", "end"]);
    receivers(&b, &full, 3);
    extra.kill().unwrap();
    let _ = extra.wait();
    receivers(&b, &full, 2);
    b.wait_counts(&full, "one sender left", |c| c.senders == 1);
    assert!(sub.try_wait().unwrap().is_none(), "sub ended too early");

    in2.write_all(b"two\n").unwrap();
    drop(in2);
    assert!(wait_child(&mut p2, "second pub").success());
    let status = wait_child(&mut sub, "sub after the last sender on A ended");
    assert_eq!(status.code(), Some(0), "sub exit");
    assert_eq!(*got.lock().unwrap(), vec!["one", "two"]);

    // `-k` stays: a later pub on A still reaches it.
    assert!(keep.try_wait().unwrap().is_none(), "sub -k ended");
    a.run(&key, &["pub", "-c", "end"], b"three\n")
        .expect_code(0);
    wait_until("sub -k to get a later line", || has(&kept, "three"));
    assert!(keep.try_wait().unwrap().is_none(), "sub -k ended");
    keep.kill().unwrap();
    let _ = keep.wait();
}

#[test]
fn a_sender_killed_on_one_node_makes_subs_on_both_fail_with_intact_data() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    let key = Key::new(a.dir.path(), "vanish");
    let full = format!("{}/cut", key.anonymous_name());
    let mut subs: Vec<(Child, Received, JoinHandle<String>)> = [&a, &b]
        .into_iter()
        .map(|on| {
            let mut c = on
                .ssh(&key, &["sub", "cut"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let (out, err) = (bytes_of(&mut c), stderr_of(&mut c));
            (c, out, err)
        })
        .collect();
    receivers(&a, &full, 2);
    let (mut publ, mut input) = sender(&a, &key, &["pub", "-c", "cut"]);
    let part = common::random_bytes(100_000, 16);
    input.write_all(&part).unwrap();
    input.flush().unwrap();
    for (_, got, _) in &subs {
        wait_until("each sub to get the first part", || {
            got.lock().unwrap().len() >= part.len()
        });
    }
    publ.kill().unwrap(); // SIGKILL: the client vanishes without EOF
    let _ = publ.wait();
    for (child, got, err) in subs.iter_mut() {
        let status = wait_child(child, "sub after its sender vanished");
        assert_eq!(status.code(), Some(1), "sub exit status");
        let err = std::mem::replace(err, thread::spawn(String::new));
        let err = err.join().unwrap();
        assert!(
            err.contains("sender disconnected before the end of its data"),
            "{err}"
        );
        assert!(*got.lock().unwrap() == part, "what did arrive is intact");
    }
    drop(input);
}

#[test]
fn a_trigger_pub_on_one_node_releases_a_sub_on_the_other() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    let key = Key::new(a.dir.path(), "trigger");
    let full = format!("{}/go", key.anonymous_name());
    let (mut sub, got) = sub_lines(&b, &key, &["sub", "go"]);
    receivers(&b, &full, 1);
    let out = a.run(&key, &["pub", "-e", "go"], b"");
    out.expect_code(0);
    assert!(out.stderr.contains("msg sent!"), "{}", out.stderr);
    let status = wait_child(&mut sub, "sub released by pub -e");
    assert_eq!(status.code(), Some(0));
    assert!(got.lock().unwrap().is_empty());
}

/// `n` numbered lines of varied length from `tag`, as one sender writes them.
fn tagged_lines(tag: char, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..n {
        let pad = "x".repeat(i * 7 % 150);
        writeln!(out, "{tag} {i:06} {pad}").unwrap();
    }
    out
}

/// `data` in pieces of at most about `max` bytes, each ending at a newline.
fn whole_line_pieces(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let window = &rest[..rest.len().min(max)];
        let cut = window
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(rest.len().min(max), |i| i + 1);
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    out
}

/// Checks one receiver's bytes: whole lines only, each sender's lines once
/// each and in order. Returns how many lines came from each tag.
fn check_lines(who: &str, data: &[u8], tags: &[char], n: usize) -> HashMap<char, usize> {
    assert!(
        data.is_empty() || data.ends_with(b"\n"),
        "{who}: cut at the end"
    );
    let mut next: HashMap<char, usize> = tags.iter().map(|t| (*t, 0)).collect();
    for line in String::from_utf8(data.to_vec()).unwrap().lines() {
        let mut parts = line.splitn(3, ' ');
        let (tag, num, pad) = (parts.next(), parts.next(), parts.next());
        let tag = tag.and_then(|t| t.chars().next()).unwrap();
        let i: usize = num.unwrap_or("?").parse().unwrap_or(usize::MAX);
        assert_eq!(
            pad.map(str::len),
            Some(i.wrapping_mul(7) % 150),
            "{who}: a line was cut or glued: {line:?}"
        );
        let want = next
            .get_mut(&tag)
            .unwrap_or_else(|| panic!("{who}: {line:?}"));
        assert_eq!(i, *want, "{who}: {tag}'s lines out of order or twice");
        *want += 1;
    }
    for (tag, got) in &next {
        assert!(*got <= n, "{who}: {tag}");
    }
    next
}

#[test]
fn lines_from_senders_on_both_nodes_arrive_whole_once_and_in_order() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    const N: usize = 20_000;
    let key = Key::new(a.dir.path(), "lines");
    let full = format!("{}/mix", key.anonymous_name());
    let mut subs: Vec<(Child, Received)> = [&a, &b]
        .into_iter()
        .map(|on| {
            let mut c = on
                .ssh(&key, &["sub", "mix"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let out = bytes_of(&mut c);
            (c, out)
        })
        .collect();
    receivers(&a, &full, 2);
    receivers(&b, &full, 2);
    let (mut pa, ia) = sender(&a, &key, &["pub", "-c", "mix"]);
    let (mut pb, ib) = sender(&b, &key, &["pub", "-c", "mix"]);
    // Line framing starts once each node knows of both senders (SPEC §5.5:
    // "when the topic has two or more senders").
    a.wait_senders(&full, 2);
    b.wait_senders(&full, 2);
    let feeders: Vec<_> = [('a', ia), ('b', ib)]
        .into_iter()
        .map(|(tag, mut stdin)| {
            thread::spawn(move || {
                // Writes of whole lines, each small enough to reach ssh at
                // once: a writer stalled between two writes by a busy
                // machine must not look like a partial line held for
                // 100 ms (SPEC §5.5). ssh still cuts its packets anywhere.
                for piece in whole_line_pieces(&tagged_lines(tag, N), 4000) {
                    stdin.write_all(piece).unwrap();
                }
            })
        })
        .collect();
    for f in feeders {
        f.join().unwrap();
    }
    assert!(wait_child(&mut pa, "pub on A").success());
    assert!(wait_child(&mut pb, "pub on B").success());
    for (i, (child, got)) in subs.iter_mut().enumerate() {
        let who = ["sub on A", "sub on B"][i];
        assert!(wait_child(child, who).success(), "{who} exit");
        let counts = check_lines(who, &got.lock().unwrap(), &['a', 'b'], N);
        assert_eq!(counts[&'a'], N, "{who}: lines from A");
        assert_eq!(counts[&'b'], N, "{who}: lines from B");
    }
}

#[test]
fn a_pattern_sub_on_one_node_receives_and_releases_pubs_on_the_other() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    let key = Key::new(a.dir.path(), "pattern");
    let me = key.anonymous_name();
    // A blocking pub on A waits: nobody matches yet.
    let (mut api, mut api_in) = sender(&a, &key, &["pub", "logs-api"]);
    api_in.write_all(b"from api\n").unwrap();
    drop(api_in);
    let api_err = stderr_of(&mut api);
    a.wait_waiting_pubs(&format!("{me}/logs-api"), 1);

    // A pattern sub on B releases it (a topic live only on A when it joins).
    let (mut pat, got) = sub_lines(&b, &key, &["sub", "logs-*"]);
    assert!(wait_child(&mut api, "pub released by a pattern sub").success());
    assert!(api_err.join().unwrap().contains("msg sent!"));
    wait_until("the pattern sub to get api's line", || {
        has(&got, "from api")
    });

    // A topic that starts on A later reaches it too; a non-matching one not.
    a.run(&key, &["pub", "logs-db"], b"from db\n")
        .expect_code(0);
    a.run(&key, &["pub", "-b=false", "other"], b"from other\n")
        .expect_code(0);
    a.run(&key, &["pub", "logs-db"], b"from db again\n")
        .expect_code(0);
    wait_until("the pattern sub to get db's lines", || {
        has(&got, "from db again")
    });
    assert_eq!(
        *got.lock().unwrap(),
        vec!["from api", "from db", "from db again"]
    );
    // While a pub on A is on a topic the pattern takes, A's `ls` lists
    // the pattern sub on B under its pattern, once, as B's own does.
    let (mut live, live_in) = sender(&a, &key, &["pub", "logs-live"]);
    for on in [&a, &b] {
        wait_until("ls to list the pattern sub under its pattern", || {
            let ls = on.run(&key, &["ls"], b"").stdout_str();
            ls.contains(&format!("logs-*\n  pubs: 0\n  subs: 1 ({me}@127.0.0.1:"))
                && ls.contains("logs-live\n  pubs: 1 (")
        });
    }
    drop(live_in);
    assert!(wait_child(&mut live, "the live pub").success());
    // Patterns do not end when senders leave.
    assert!(pat.try_wait().unwrap().is_none(), "pattern sub ended");

    // Gone, it holds nothing here and releases no one any more.
    pat.kill().unwrap();
    let _ = pat.wait();
    let db = format!("{me}/logs-db");
    wait_until("B to let go of the topics it kept for the pattern", || {
        b.counts(&db).is_none() && b.counts(&format!("{me}/logs-api")).is_none()
    });
    let out = a.run(&key, &["pub", "-t", "1s", "logs-db"], b"nobody\n");
    out.expect_code(1);
    assert!(out.stderr.contains("timeout reached"), "{}", out.stderr);
}

/// Which worker got which lines, by the sender's tag.
fn numbered(lines: &Lines) -> Vec<(char, usize)> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| {
            let (tag, n) = l.split_once(' ').unwrap();
            (tag.chars().next().unwrap(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn round_robin_lines_go_to_exactly_one_worker_over_both_nodes() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    const N: usize = 1000;
    let key = Key::new(a.dir.path(), "rr");
    let full = format!("{}/jobs", key.anonymous_name());
    let mut workers: Vec<(char, Child, Lines)> = Vec::new();
    for (node, on) in [('a', &a), ('a', &a), ('b', &b), ('b', &b)] {
        let (c, l) = sub_lines(on, &key, &["sub", "jobs"]);
        workers.push((node, c, l));
    }
    receivers(&a, &full, 4);
    receivers(&b, &full, 4);
    // A round-robin sender on each node, both known on both nodes before
    // either sends: otherwise one could come and go before the other node
    // hears of the other, and the workers end with it (SPEC §5.3).
    let pubs: Vec<_> = [('a', &a), ('b', &b)]
        .into_iter()
        .map(|(tag, on)| {
            let (child, stdin) = sender(on, &key, &["pub", "-c", "-d", "round-robin", "jobs"]);
            (tag, child, stdin)
        })
        .collect();
    a.wait_senders(&full, 2);
    b.wait_senders(&full, 2);
    let pubs: Vec<_> = pubs
        .into_iter()
        .map(|(tag, child, mut stdin)| {
            let feed = thread::spawn(move || {
                let mut text = String::new();
                for i in 0..N {
                    text.push_str(&format!("{tag} {i}\n"));
                }
                stdin.write_all(text.as_bytes()).unwrap();
            });
            (child, feed)
        })
        .collect();
    for (mut child, feed) in pubs {
        feed.join().unwrap();
        assert!(wait_child(&mut child, "round-robin pub").success());
    }
    let mut seen: HashMap<(char, usize), usize> = HashMap::new();
    let mut per_node: HashMap<(char, char), usize> = HashMap::new();
    for (node, child, lines) in workers.iter_mut() {
        assert!(wait_child(child, "worker").success(), "worker exit");
        let got = numbered(lines);
        for tag in ['a', 'b'] {
            let mine: Vec<usize> = got
                .iter()
                .filter(|(t, _)| *t == tag)
                .map(|(_, n)| *n)
                .collect();
            assert!(
                mine.windows(2).all(|w| w[0] < w[1]),
                "{tag}'s lines in order"
            );
        }
        for line in got {
            *seen.entry(line).or_default() += 1;
            *per_node.entry((*node, line.0)).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "lines sent twice: {twice:?}");
    assert_eq!(seen.len(), 2 * N, "lines lost: {}", 2 * N - seen.len());
    eprintln!("round-robin lines per (worker node, sender node): {per_node:?}");
    // The rotation is per worker wherever the workers are: each node's two
    // workers get about half of each sender's lines.
    for key in [('a', 'a'), ('a', 'b'), ('b', 'a'), ('b', 'b')] {
        let n = per_node.get(&key).copied().unwrap_or(0);
        assert!((N * 4 / 10..=N * 6 / 10).contains(&n), "{per_node:?}");
    }
}

/// A process's resident set size in bytes (`VmRSS`), 0 once it is gone.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// The highest RSS of each pid, sampled every few ms until stopped.
struct RssSampler {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: JoinHandle<Vec<u64>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> RssSampler {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut max: Vec<u64> = pids.iter().map(|p| rss_of(*p)).collect();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (m, p) in max.iter_mut().zip(&pids) {
                    *m = (*m).max(rss_of(*p));
                }
                thread::sleep(Duration::from_millis(5));
            }
            max
        });
        RssSampler { stop, thread }
    }

    fn max(self) -> Vec<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// A slow reader: 64 KiB, then a pause (about 5 MiB/s); byte count and
/// sha256 of what it read, and how long it took.
fn slow_reader(mut from: impl Read + Send + 'static) -> JoinHandle<(u64, String, Duration)> {
    thread::spawn(move || {
        let started = Instant::now();
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    total += n as u64;
                }
            }
            // The reader's own pace, not a wait for a condition.
            thread::sleep(Duration::from_millis(12));
        }
        (total, format!("{:x}", hasher.finalize()), started.elapsed())
    })
}

#[test]
fn a_slow_sub_on_one_node_paces_a_fast_pub_on_the_other_with_bounded_memory() {
    let Some(nats) = NatsCluster::start(3) else {
        return;
    };
    const TOTAL: u64 = 64 * MIB;
    // Nodes as processes of their own, so each one's memory is measured.
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = process_node(&nats, 0, da.path());
    let b = process_node(&nats, 1, db.path());
    let key = Key::new(da.path(), "slowpoke");
    let mut sub = b.ssh(&key, &["sub", "-c", "slow"]).spawn().unwrap();
    let slow = slow_reader(sub.stdout.take().unwrap());
    let sub_err = stderr_of(&mut sub);
    let pids = vec![a.child.id(), b.child.id()];
    let before: Vec<u64> = pids.iter().map(|p| rss_of(*p)).collect();
    let sampler = RssSampler::start(pids);
    let started = Instant::now();
    // The pub blocks until it sees the sub on B, then sends as fast as
    // the pacing lets it.
    let mut publ = a.ssh(&key, &["pub", "-c", "slow"]).spawn().unwrap();
    let mut stdin = publ.stdin.take().unwrap();
    let pub_err = stderr_of(&mut publ);
    let writer = thread::spawn(move || {
        let data = common::random_bytes(4 * MIB as usize, 0x510e);
        let mut hasher = Sha256::new();
        for _ in 0..TOTAL / (4 * MIB) {
            hasher.update(&data);
            stdin.write_all(&data).unwrap();
        }
        (format!("{:x}", hasher.finalize()), started.elapsed())
    });
    let limit = Duration::from_secs(120);
    let status = wait_child_within(&mut publ, "pub of 64 MiB to a slow sub", limit);
    let pub_done = started.elapsed();
    let (want, written) = writer.join().unwrap();
    assert_eq!(status.code(), Some(0), "pub: {}", pub_err.join().unwrap());
    let sub_status = wait_child_within(&mut sub, "slow sub", limit);
    let (len, digest, slow_took) = slow.join().unwrap();
    let max = sampler.max();
    eprintln!(
        "64 MiB A→B to a slow sub: input taken in {written:?}, pub done in {pub_done:?}, \
         reader took {slow_took:?}; \
         VmRSS A {} → max {} MiB, B {} → max {} MiB",
        before[0] / MIB,
        max[0] / MIB,
        before[1] / MIB,
        max[1] / MIB
    );
    assert_eq!(
        sub_status.code(),
        Some(0),
        "sub: {}",
        sub_err.join().unwrap()
    );
    assert_eq!((len, digest), (TOTAL, want), "the slow sub's data");
    // Paced: the pub took its input no faster than the slow reader read
    // it, short of what the buffers on the way hold (a few MiB of 64).
    assert!(
        written.as_secs_f64() > slow_took.as_secs_f64() * 0.7,
        "the pub ran ahead: took its input in {written:?}, the reader took {slow_took:?}"
    );
    for (i, name) in ["A", "B"].iter().enumerate() {
        let grew = max[i].saturating_sub(before[i]);
        assert!(
            grew < 24 * MIB,
            "node {name} grew by {} MiB while a slow sub paced 64 MiB",
            grew / MIB
        );
    }
}

#[test]
fn a_worker_on_the_other_node_leaving_midway_loses_and_repeats_nothing() {
    let Some((_nats, a, b)) = two_nodes() else {
        return;
    };
    let key = Key::new(a.dir.path(), "rrleave");
    let full = format!("{}/jobs", key.anonymous_name());
    let (mut wa, la) = sub_lines(&a, &key, &["sub", "-k", "jobs"]);
    let (mut wb, lb) = sub_lines(&b, &key, &["sub", "-k", "jobs"]);
    receivers(&a, &full, 2);
    let (mut publ, mut stdin) = sender(&a, &key, &["pub", "-c", "-d", "round-robin", "jobs"]);
    let numbers = |r: std::ops::RangeInclusive<usize>| {
        r.map(|i| format!("{i}\n")).collect::<String>().into_bytes()
    };
    stdin.write_all(&numbers(1..=500)).unwrap();
    stdin.flush().unwrap();
    let total = || la.lock().unwrap().len() + lb.lock().unwrap().len();
    wait_until("the first 500 lines delivered", || total() >= 500);
    assert!(!lb.lock().unwrap().is_empty(), "B's worker got none");
    // B's only worker leaves: the topic ends there, A's link to B closes,
    // and the rotation goes on over A's worker.
    wb.kill().unwrap();
    let _ = wb.wait();
    a.wait_counts(&full, "B's worker gone", |c| c.receivers == 1);
    let before = lb.lock().unwrap().len();
    stdin.write_all(&numbers(501..=1000)).unwrap();
    drop(stdin);
    assert!(wait_child(&mut publ, "round-robin pub").success());
    wait_until("all 1000 lines delivered", || total() >= 1000);
    assert_eq!(
        lb.lock().unwrap().len(),
        before,
        "the gone worker got lines"
    );
    let mut seen: HashMap<usize, usize> = HashMap::new();
    for l in la.lock().unwrap().iter().chain(lb.lock().unwrap().iter()) {
        *seen.entry(l.parse().unwrap()).or_default() += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "a line twice");
    assert_eq!(seen.len(), 1000, "lines lost");
    wa.kill().unwrap();
    let _ = wa.wait();
}
