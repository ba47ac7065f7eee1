//! Slow and dead receivers (SPEC §5.4): a slow subscriber paces the topic
//! without the server buffering the difference, and a killed subscriber
//! releases a pub blocked on it at once.
//!
//! The server runs inside this test process, so its memory is this
//! process's VmRSS. Keep heavy work out of this file, and the two tests
//! apart (they take `SERIAL`), so the measurement sees only its own run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// This process's resident set size in bytes (`VmRSS`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kb * 1024
}

/// Samples RSS every few milliseconds until stopped; returns the maximum.
struct RssSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl RssSampler {
    fn start() -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut max = rss();
            while !flag.load(Ordering::Relaxed) {
                max = max.max(rss());
                thread::sleep(Duration::from_millis(5));
            }
            max.max(rss())
        });
        RssSampler { stop, thread }
    }

    fn max(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("rss sampler")
    }
}

/// A deterministic pseudo-random stream, generated chunk by chunk.
struct Stream {
    x: u64,
}

impl Stream {
    fn new(seed: u64) -> Stream {
        Stream { x: seed | 1 }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            word.copy_from_slice(&self.x.to_le_bytes()[..word.len()]);
        }
    }
}

/// `sha256sum` as a child process: hashing at native speed keeps this
/// (debug-built) test process from being the bottleneck it measures.
struct Sha256Sum {
    child: Child,
}

impl Sha256Sum {
    fn spawn(input: Stdio) -> Sha256Sum {
        let child = Command::new("sha256sum")
            .stdin(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn sha256sum");
        Sha256Sum { child }
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("sha256sum stdin")
    }

    /// Waits for end of input and returns the hex digest.
    fn digest(mut self) -> String {
        let mut out = String::new();
        self.child
            .stdout
            .take()
            .expect("sha256sum stdout")
            .read_to_string(&mut out)
            .expect("sha256sum output");
        let st = wait_child(&mut self.child, "sha256sum");
        assert!(st.success(), "sha256sum failed");
        out.split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// How long the slow reader sleeps after each read of up to 64 KiB: about
/// 10 MiB/s, several times slower than the rest of the path even in a debug
/// build, so a server that buffered instead of pacing would grow by far
/// more than the bound the test checks.
const SLOW_PAUSE: Duration = Duration::from_millis(6);

/// Reads a sub's stdout slowly (64 KiB, then `SLOW_PAUSE`) into `sha256sum`.
/// Returns the byte count and the digest.
fn slow_reader(mut from: ChildStdout) -> JoinHandle<(u64, String)> {
    thread::spawn(move || {
        let mut hasher = Sha256Sum::spawn(Stdio::piped());
        let mut sink = hasher.stdin();
        let mut total = 0u64;
        let mut reads = 0u64;
        let mut blocked = Duration::ZERO;
        let started = Instant::now();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let t = Instant::now();
            let r = from.read(&mut buf);
            blocked += t.elapsed();
            match r {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    sink.write_all(&buf[..n]).expect("to sha256sum");
                    total += n as u64;
                    reads += 1;
                }
            }
            // Pacing of a slow reader, not a wait for a condition.
            thread::sleep(SLOW_PAUSE);
        }
        drop(sink);
        eprintln!(
            "slow reader: {total} bytes in {reads} reads, {:?}, {:?} of it blocked in read",
            started.elapsed(),
            blocked
        );
        (total, hasher.digest())
    })
}

fn stderr_reader(mut from: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut s = Vec::new();
        let _ = from.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    })
}

#[test]
fn slow_subscriber_paces_the_topic_with_bounded_server_memory() {
    let _serial = serial();
    const TOTAL: u64 = 128 * MIB;
    let server = TestServer::start();
    let key = server.key("slowpoke");
    let topic = format!("{}/t", key.anonymous_name());

    let mut slow = server.spawn(&key, &["sub", "t"]);
    let mut fast = server.spawn(&key, &["sub", "t"]);
    server.wait_receivers(&topic, 2);
    let slow_out = slow_reader(slow.stdout.take().unwrap());
    // The fast sub's stdout goes straight into its hasher.
    let fast_hash = Sha256Sum::spawn(Stdio::from(fast.stdout.take().unwrap()));
    let slow_err = stderr_reader(slow.stderr.take().unwrap());
    let fast_err = stderr_reader(fast.stderr.take().unwrap());

    let before = rss();
    let sampler = RssSampler::start();
    let started = Instant::now();

    let mut publ = server.spawn(&key, &["pub", "-c", "t"]);
    let mut stdin = publ.stdin.take().unwrap();
    let pub_err = stderr_reader(publ.stderr.take().unwrap());
    let writer = thread::spawn(move || {
        let mut hasher = Sha256Sum::spawn(Stdio::piped());
        let mut sink = hasher.stdin();
        let mut stream = Stream::new(0x510e_5eed);
        let mut buf = vec![0u8; 64 * 1024];
        let mut left = TOTAL;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            stream.fill(&mut buf[..n]);
            sink.write_all(&buf[..n]).expect("to sha256sum");
            stdin.write_all(&buf[..n]).expect("feed pub");
            left -= n as u64;
        }
        drop(stdin);
        drop(sink);
        hasher.digest()
    });

    let status = wait_child_long(&mut publ, "pub of 128 MiB");
    let pub_done = started.elapsed();
    let want = writer.join().unwrap();
    let pub_err = pub_err.join().unwrap();
    assert_eq!(status.code(), Some(0), "pub exit; stderr: {pub_err}");
    assert_eq!(pub_err, "");
    let fast_status = wait_child_long(&mut fast, "fast sub");
    let slow_status = wait_child_long(&mut slow, "slow sub");
    let fast_hash = fast_hash.digest();
    let (slow_len, slow_hash) = slow_out.join().unwrap();
    let elapsed = started.elapsed();
    let max = sampler.max();
    eprintln!(
        "128 MiB to a slow and a fast sub: pub done in {pub_done:?}, all in {elapsed:?}; \
         VmRSS {} MiB before, max {} MiB",
        before / MIB,
        max / MIB
    );

    assert_eq!(fast_status.code(), Some(0), "fast sub exit");
    assert_eq!(fast_err.join().unwrap(), "");
    assert_eq!(slow_status.code(), Some(0), "slow sub exit");
    assert_eq!(slow_err.join().unwrap(), "");
    assert_eq!(want.len(), 64, "sha256sum digest: {want:?}");
    assert_eq!(
        (slow_len, slow_hash),
        (TOTAL, want.clone()),
        "slow sub data"
    );
    assert_eq!(fast_hash, want, "fast sub data");
    assert!(
        max.saturating_sub(before) < 64 * MIB,
        "server memory grew by {} MiB (from {} to {} MiB) while a slow sub paced 128 MiB",
        max.saturating_sub(before) / MIB,
        before / MIB,
        max / MIB
    );
}

/// Like `wait_child`, with room for 128 MiB through a debug build.
fn wait_child_long(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    wait_child_within(child, what, WAIT * 4)
}

/// Fixed-width numbered records: byte `i` of the stream is known without
/// keeping the stream, and any suffix tells where it starts.
const RECORD: u64 = 16;

fn record(n: u64) -> [u8; RECORD as usize] {
    let mut r = [0u8; RECORD as usize];
    r.copy_from_slice(format!("{n:015}\n").as_bytes());
    r
}

/// Checks, chunk by chunk, that a reader got one contiguous run of the
/// record stream ending at its end; returns (first offset, bytes).
fn suffix_checker(mut from: ChildStdout) -> JoinHandle<(u64, u64)> {
    thread::spawn(move || {
        let mut head = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // Enough to hold one whole record after a cut one.
        while head.len() < 2 * RECORD as usize {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        if head.is_empty() {
            return (0, 0);
        }
        let nl = head
            .iter()
            .position(|&b| b == b'\n')
            .expect("a newline in the first 32 bytes");
        let rec = std::str::from_utf8(&head[nl + 1..nl + 1 + RECORD as usize - 1])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("not a record: {:?}", String::from_utf8_lossy(&head)));
        let start = rec * RECORD - (nl as u64 + 1);
        let mut pos = start;
        let check = |data: &[u8], pos: &mut u64| {
            for &b in data {
                let want = record(*pos / RECORD)[(*pos % RECORD) as usize];
                assert_eq!(
                    b, want,
                    "byte at stream offset {} (reader started at {start})",
                    *pos
                );
                *pos += 1;
            }
        };
        check(&head, &mut pos);
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => check(&buf[..n], &mut pos),
            }
        }
        (start, pos - start)
    })
}

#[test]
fn killed_subscriber_releases_its_blocked_pub_at_once() {
    let _serial = serial();
    const TOTAL: u64 = 16 * MIB;
    let server = TestServer::start();
    let key = server.key("victim");
    let topic = format!("{}/t", key.anonymous_name());

    // A sub whose stdout nobody reads: it fills, and the pub blocks on it.
    let mut stuck = server.spawn(&key, &["sub", "t"]);
    server.wait_receivers(&topic, 1);
    let stuck_stdout = stuck.stdout.take().unwrap();

    let mut publ = server.spawn(&key, &["pub", "t"]);
    let mut stdin = publ.stdin.take().unwrap();
    let pub_err = stderr_reader(publ.stderr.take().unwrap());
    let written = Arc::new(AtomicU64::new(0));
    let progress = Arc::clone(&written);
    let writer = thread::spawn(move || {
        let mut n = 0u64;
        let mut chunk = Vec::with_capacity(64 * 1024);
        while n * RECORD < TOTAL {
            chunk.clear();
            while chunk.len() < 64 * 1024 && n * RECORD < TOTAL {
                chunk.extend_from_slice(&record(n));
                n += 1;
            }
            stdin.write_all(&chunk).expect("feed pub");
            progress.store(n * RECORD, Ordering::Relaxed);
        }
    });

    // Blocked: the writer made no progress for a while, well short of the end.
    let mut last = (0, Instant::now());
    wait_until("the pub to block on the unread sub", || {
        let now = written.load(Ordering::Relaxed);
        if now != last.0 {
            last = (now, Instant::now());
        }
        now > 0 && last.1.elapsed() > Duration::from_millis(300)
    });
    let at_kill = written.load(Ordering::Relaxed);
    assert!(
        at_kill < TOTAL,
        "the pub never blocked: all {TOTAL} bytes went into the unread sub"
    );
    assert_eq!(server.app.broker.waiting_pubs(&topic), 0);

    stuck.kill().unwrap();
    let _ = stuck.wait();
    drop(stuck_stdout);
    let killed = Instant::now();
    server.wait_waiting_pubs(&topic, 1);
    let released = killed.elapsed();
    assert!(
        released < Duration::from_secs(10),
        "a killed sub held its pub for {released:?} (keepalive window is 75 s)"
    );
    assert!(
        publ.try_wait().unwrap().is_none(),
        "the pub must wait for a new receiver, not exit"
    );
    assert_eq!(
        server.counts(&topic).map(|c| (c.senders, c.receivers)),
        Some((1, 0))
    );

    let mut fresh = server.spawn(&key, &["sub", "t"]);
    let checker = suffix_checker(fresh.stdout.take().unwrap());
    let fresh_err = stderr_reader(fresh.stderr.take().unwrap());
    let status = wait_child(&mut publ, "pub after the new sub joined");
    writer.join().unwrap();
    let pub_err = pub_err.join().unwrap();
    assert_eq!(status.code(), Some(0), "pub exit; stderr: {pub_err}");
    assert!(
        pub_err.ends_with("sending msg ...\nmsg sent!\n"),
        "{pub_err}"
    );
    let st = wait_child(&mut fresh, "new sub");
    assert_eq!(st.code(), Some(0), "new sub exit");
    assert_eq!(fresh_err.join().unwrap(), "");
    let (start, len) = checker.join().unwrap();
    eprintln!(
        "killed sub released its pub in {released:?}; writer was at {at_kill}, new sub got {len} bytes from offset {start}"
    );
    assert!(len > 0, "the new sub got nothing");
    assert_eq!(start + len, TOTAL, "the new sub got the rest up to the end");
    assert!(
        start <= at_kill,
        "data written after the kill is missing: new sub starts at {start}, writer was at {at_kill}"
    );
}
