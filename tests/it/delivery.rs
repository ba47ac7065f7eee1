//! Delivery rules of SPEC §5 with the real `ssh` client: multicast, late
//! joiners, blocking and timeouts, triggers, when each client ends, pipes,
//! line framing with several senders, and byte-exactness (also under a PTY).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
use crate::common;
use common::*;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use sha2::{Digest, Sha256};

const MIB: usize = 1024 * 1024;

/// What a client's stdout reader keeps: everything, or a running hash.
enum Stdout {
    Collect(Arc<Mutex<Vec<u8>>>, JoinHandle<()>),
    Hash(JoinHandle<(u64, String)>),
}

/// A background ssh client: stdin under the test's control, stdout and
/// stderr read on threads so the client never blocks on a full pipe.
struct Client {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<Stdout>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

/// The end of a client: its status and output.
struct Done {
    out: Out,
    /// With a hashing reader: bytes seen and their sha256.
    hashed: Option<(u64, String)>,
}

fn read_into(mut from: impl Read + Send + 'static, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap().extend_from_slice(&buf[..n]),
            }
        }
    })
}

fn hash_reader(mut from: impl Read + Send + 'static) -> JoinHandle<(u64, String)> {
    thread::spawn(move || {
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
        }
        (total, format!("{:x}", hasher.finalize()))
    })
}

impl Client {
    fn spawn(server: &TestServer, key: &Key, args: &[&str]) -> Client {
        Client::start(server.spawn(key, args), args, false)
    }

    /// Like `spawn`, but stdout is hashed on the fly instead of kept.
    fn spawn_hashing(server: &TestServer, key: &Key, args: &[&str]) -> Client {
        Client::start(server.spawn(key, args), args, true)
    }

    fn start(mut child: Child, args: &[&str], hash: bool) -> Client {
        let out = child.stdout.take().expect("stdout piped");
        let stdout = if hash {
            Stdout::Hash(hash_reader(out))
        } else {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let reader = read_into(out, Arc::clone(&buf));
            Stdout::Collect(buf, reader)
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_reader = read_into(
            child.stderr.take().expect("stderr piped"),
            Arc::clone(&stderr),
        );
        Client {
            what: format!("ssh {args:?}"),
            stdin: child.stdin.take(),
            child,
            stdout: Some(stdout),
            stderr,
            stderr_reader: Some(stderr_reader),
        }
    }

    fn write(&mut self, data: &[u8]) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(data).expect("write to client stdin");
        stdin.flush().expect("flush client stdin");
    }

    /// Feeds `data` from a thread, then closes stdin (the writer may block on
    /// flow control for as long as the server reads nothing).
    fn feed(&mut self, data: Arc<Vec<u8>>) -> JoinHandle<()> {
        let mut stdin = self.stdin.take().expect("stdin still open");
        thread::spawn(move || {
            for chunk in data.chunks(256 * 1024) {
                if stdin.write_all(chunk).is_err() {
                    return;
                }
            }
        })
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn stdout_now(&self) -> Vec<u8> {
        match &self.stdout {
            Some(Stdout::Collect(buf, _)) => buf.lock().unwrap().clone(),
            _ => panic!("{}: stdout is not collected", self.what),
        }
    }

    fn stderr_now(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until stdout holds exactly `expected` so far (fails at once on
    /// anything else than a prefix of it).
    fn wait_stdout(&self, expected: &[u8]) {
        wait_until(
            &format!(
                "{} to print {:?}",
                self.what,
                String::from_utf8_lossy(expected)
            ),
            || {
                let now = self.stdout_now();
                assert!(
                    expected.starts_with(&now),
                    "{}: unexpected stdout {:?}, expected {:?}",
                    self.what,
                    String::from_utf8_lossy(&now),
                    String::from_utf8_lossy(expected)
                );
                now.len() == expected.len()
            },
        );
    }

    fn wait_stderr_contains(&self, text: &str) {
        wait_until(&format!("{} stderr to contain {text:?}", self.what), || {
            self.stderr_now().contains(text)
        });
    }

    fn wait_stdout_len(&self, len: usize) {
        wait_until(&format!("{} to print {len} bytes", self.what), || {
            self.stdout_now().len() >= len
        });
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    fn assert_alive(&mut self, why: &str) {
        if let Some(st) = self.child.try_wait().expect("try_wait") {
            panic!(
                "{} exited ({st}) but {why}; stderr: {}",
                self.what,
                self.stderr_now()
            );
        }
    }

    /// Kills the ssh client (the connection drops) and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Closes stdin, waits (bounded) for the exit and gathers the output.
    fn finish(mut self) -> Done {
        self.close_stdin();
        self.wait_exit()
    }

    /// Waits (bounded) for the exit without touching stdin.
    fn wait_exit(mut self) -> Done {
        let status = wait_child(&mut self.child, &self.what);
        self.close_stdin();
        let (stdout, hashed) = match self.stdout.take() {
            Some(Stdout::Collect(buf, reader)) => {
                reader.join().expect("stdout reader");
                (buf.lock().unwrap().clone(), None)
            }
            Some(Stdout::Hash(reader)) => (Vec::new(), Some(reader.join().expect("hasher"))),
            None => (Vec::new(), None),
        };
        if let Some(r) = self.stderr_reader.take() {
            r.join().expect("stderr reader");
        }
        Done {
            out: Out {
                status,
                stdout,
                stderr: self.stderr_now(),
            },
            hashed,
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A failing test must not leave ssh clients behind.
        if self.alive() {
            self.kill();
        }
    }
}

/// Full name of a private topic of `key`'s anonymous user.
fn full(key: &Key, name: &str) -> String {
    format!("{}/{name}", key.anonymous_name())
}

/// The status lines a pub prints (SPEC §4.2) for its own topic `name`.
fn hint(server: &TestServer, name: &str) -> String {
    format!(
        "subscribe to this channel:\n  ssh -p {} testhost sub {name}\n",
        server.addr.port()
    )
}

#[test]
fn multicast_24_mib_reaches_three_subs_byte_exact() {
    let server = TestServer::start();
    let key = server.key("caster");
    let topic = full(&key, "big");
    let data = Arc::new(random_bytes(24 * MIB, 0x5eed_0001));
    let want = sha256(&data);

    let subs: Vec<Client> = (0..3)
        .map(|_| Client::spawn_hashing(&server, &key, &["sub", "big"]))
        .collect();
    server.wait_receivers(&topic, 3);
    let mut publ = Client::spawn(&server, &key, &["pub", "big"]);
    let writer = publ.feed(Arc::clone(&data));

    let p = publ.wait_exit();
    writer.join().unwrap();
    p.out.expect_code(0);
    assert_eq!(
        p.out.stderr,
        format!("{}sending msg ...\nmsg sent!\n", hint(&server, "big"))
    );
    for (i, sub) in subs.into_iter().enumerate() {
        let s = sub.wait_exit();
        s.out.expect_code(0);
        assert_eq!(s.out.stderr, "", "sub {i} stderr");
        let (len, hash) = s.hashed.unwrap();
        assert_eq!(len, data.len() as u64, "sub {i} byte count");
        assert_eq!(hash, want, "sub {i} sha256");
    }
}

#[test]
fn late_receiver_gets_only_later_data() {
    let server = TestServer::start();
    let key = server.key("late");
    let topic = full(&key, "news");
    let a = Client::spawn(&server, &key, &["sub", "news"]);
    server.wait_receivers(&topic, 1);
    let mut publ = Client::spawn(&server, &key, &["pub", "-b=false", "news"]);
    server.wait_senders(&topic, 1);
    publ.write(b"first\n");
    a.wait_stdout(b"first\n");

    let b = Client::spawn(&server, &key, &["sub", "news"]);
    server.wait_receivers(&topic, 2);
    publ.write(b"second\n");
    let p = publ.finish();
    p.out.expect_code(0);
    assert!(p.out.stderr.ends_with("msg sent!\n"), "{}", p.out.stderr);

    let a = a.wait_exit();
    a.out.expect_code(0);
    assert_eq!(a.out.stdout_str(), "first\nsecond\n");
    assert_eq!(a.out.stderr, "");
    let b = b.wait_exit();
    b.out.expect_code(0);
    assert_eq!(
        b.out.stdout_str(),
        "second\n",
        "a late sub gets only later data"
    );
    assert_eq!(b.out.stderr, "");
}

#[test]
fn blocking_pub_reads_nothing_until_a_receiver_joins() {
    let server = TestServer::start();
    let key = server.key("blocker");
    let topic = full(&key, "wait");
    // More than an SSH window, written while the pub waits: none of it may
    // be read and dropped before the sub is there.
    let data = Arc::new(random_bytes(3 * MIB, 0x5eed_0002));
    let mut publ = Client::spawn(&server, &key, &["pub", "wait"]);
    server.wait_waiting_pubs(&topic, 1);
    publ.wait_stderr_contains("no subs found ... waiting 720h0m0s\n");
    let writer = publ.feed(Arc::clone(&data));
    publ.assert_alive("it must wait for a receiver");
    assert!(
        !publ.stderr_now().contains("sending msg"),
        "{}",
        publ.stderr_now()
    );

    let sub = Client::spawn_hashing(&server, &key, &["sub", "wait"]);
    let s = sub.wait_exit();
    let p = publ.wait_exit();
    writer.join().unwrap();
    p.out.expect_code(0);
    assert_eq!(
        p.out.stderr,
        format!(
            "{}no subs found ... waiting 720h0m0s\nsending msg ...\nmsg sent!\n",
            hint(&server, "wait")
        )
    );
    s.out.expect_code(0);
    assert_eq!(s.out.stderr, "");
    assert_eq!(s.hashed.unwrap(), (data.len() as u64, sha256(&data)));
}

#[test]
fn pub_waits_again_when_all_receivers_left_and_loses_nothing() {
    let server = TestServer::start();
    let key = server.key("again");
    let topic = full(&key, "again");
    let mut first = Client::spawn(&server, &key, &["sub", "again"]);
    server.wait_receivers(&topic, 1);
    let mut publ = Client::spawn(&server, &key, &["pub", "again"]);
    publ.write(b"part one\n");
    first.wait_stdout(b"part one\n");

    first.kill();
    server.wait_counts(&topic, "the killed sub to leave", |c| c.receivers == 0);
    // Written while nobody listens: a blocking pub must keep it (SPEC §5.2).
    publ.write(b"part two\n");
    server.wait_waiting_pubs(&topic, 1);
    publ.assert_alive("a pub with no receivers waits, it does not exit");
    let c = server.counts(&topic).expect("topic still there");
    assert_eq!((c.senders, c.receivers), (1, 0));

    let second = Client::spawn(&server, &key, &["sub", "again"]);
    server.wait_receivers(&topic, 1);
    second.wait_stdout(b"part two\n");
    publ.write(b"part three\n");
    let p = publ.finish();
    p.out.expect_code(0);
    assert!(
        p.out.stderr.ends_with("sending msg ...\nmsg sent!\n"),
        "{}",
        p.out.stderr
    );
    let s = second.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stdout_str(), "part two\npart three\n");
    assert_eq!(s.out.stderr, "");
}

#[test]
fn non_blocking_pub_without_receivers_drops_data_and_exits_zero() {
    let server = TestServer::start();
    let key = server.key("dropper");
    let topic = full(&key, "void");
    let p = server.run(&key, &["pub", "-b=false", "void"], b"nobody hears this\n");
    p.expect_code(0);
    assert_eq!(
        p.stderr,
        format!("{}sending msg ...\nmsg sent!\n", hint(&server, "void"))
    );
    // The dropped data is not kept for a later receiver.
    let sub = Client::spawn(&server, &key, &["sub", "void"]);
    server.wait_receivers(&topic, 1);
    server
        .run(&key, &["pub", "-c", "void"], b"later\n")
        .expect_code(0);
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stdout_str(), "later\n");
}

#[test]
fn pub_timeout_on_the_first_wait_exits_one() {
    let server = TestServer::start();
    let key = server.key("impatient");
    let p = server.run(&key, &["pub", "-t", "500ms", "nobody"], b"x\n");
    p.expect_code(1);
    assert_eq!(
        p.stderr,
        format!(
            "{}no subs found ... waiting 500ms\ntimeout reached, exiting\n",
            hint(&server, "nobody")
        )
    );
    // -c hides the status lines, not the error.
    let p = server.run(&key, &["pub", "-c", "-t=300ms", "nobody"], b"x\n");
    p.expect_code(1);
    assert_eq!(p.stderr, "timeout reached, exiting\n");
}

#[test]
fn pub_timeout_on_a_later_wait_exits_one() {
    let server = TestServer::start();
    let key = server.key("later");
    let topic = full(&key, "later");
    let mut sub = Client::spawn(&server, &key, &["sub", "later"]);
    server.wait_receivers(&topic, 1);
    let mut publ = Client::spawn(&server, &key, &["pub", "-t", "500ms", "later"]);
    publ.write(b"one\n");
    sub.wait_stdout(b"one\n");
    sub.kill();
    server.wait_counts(&topic, "the sub to leave", |c| c.receivers == 0);
    publ.write(b"two\n");
    let p = publ.wait_exit();
    p.out.expect_code(1);
    assert!(
        p.out.stderr.ends_with("timeout reached, exiting\n"),
        "{}",
        p.out.stderr
    );
    assert!(!p.out.stderr.contains("msg sent!"), "{}", p.out.stderr);
}

#[test]
fn trigger_pub_e_releases_a_waiting_sub() {
    let server = TestServer::start();
    let key = server.key("trigger");
    let topic = full(&key, "go");
    let mut sub = Client::spawn(&server, &key, &["sub", "go"]);
    server.wait_receivers(&topic, 1);
    sub.assert_alive("sub waits for a sender without limit");
    let p = server.run(&key, &["pub", "-e", "go"], b"");
    p.expect_code(0);
    assert_eq!(
        p.stderr,
        format!("{}sending msg ...\nmsg sent!\n", hint(&server, "go"))
    );
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stdout, b"");
    assert_eq!(s.out.stderr, "");
}

#[test]
fn trigger_echo_into_pub_releases_a_waiting_sub() {
    let server = TestServer::start();
    let key = server.key("echo");
    let topic = full(&key, "go");
    let sub = Client::spawn(&server, &key, &["sub", "go"]);
    server.wait_receivers(&topic, 1);
    server.run(&key, &["pub", "go"], b"\n").expect_code(0);
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stdout, b"\n");
    assert_eq!(s.out.stderr, "");
}

#[test]
fn sub_ends_after_its_pub_leaves_with_all_data() {
    let server = TestServer::start();
    let key = server.key("ender");
    let topic = full(&key, "end");
    let data = random_bytes(300 * 1024, 0x5eed_0003);
    let sub = Client::spawn(&server, &key, &["sub", "end"]);
    server.wait_receivers(&topic, 1);
    server
        .run(&key, &["pub", "-c", "end"], &data)
        .expect_code(0);
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stderr, "");
    assert_eq!(sha256(&s.out.stdout), sha256(&data));
}

#[test]
fn other_receivers_joining_or_leaving_never_end_a_sub() {
    let server = TestServer::start();
    let key = server.key("bystander");
    let topic = full(&key, "t");
    let mut a = Client::spawn(&server, &key, &["sub", "t"]);
    server.wait_receivers(&topic, 1);
    let mut b = Client::spawn(&server, &key, &["sub", "t"]);
    server.wait_receivers(&topic, 2);
    a.assert_alive("another receiver joined");
    b.kill();
    server.wait_counts(&topic, "sub B to leave", |c| c.receivers == 1);
    a.assert_alive("another receiver left");
    let c = server.counts(&topic).expect("topic still there");
    assert_eq!((c.senders, c.receivers), (0, 1));
    // A is still a working receiver, and ends with its sender.
    server
        .run(&key, &["pub", "-c", "t"], b"for A\n")
        .expect_code(0);
    let a = a.wait_exit();
    a.out.expect_code(0);
    assert_eq!(a.out.stdout_str(), "for A\n");
    assert_eq!(a.out.stderr, "");
}

#[test]
fn keep_alive_sub_stays_after_its_pub_leaves() {
    let server = TestServer::start();
    let key = server.key("keeper");
    let topic = full(&key, "k");
    let mut sub = Client::spawn(&server, &key, &["sub", "-k", "k"]);
    server.wait_receivers(&topic, 1);
    server
        .run(&key, &["pub", "-c", "k"], b"one\n")
        .expect_code(0);
    sub.wait_stdout(b"one\n");
    server.wait_counts(&topic, "the pub to leave", |c| c.senders == 0);
    sub.assert_alive("sub -k does not end when its senders leave");
    assert_eq!(server.counts(&topic).map(|c| c.receivers), Some(1));
    // Still receiving from the next sender.
    server
        .run(&key, &["pub", "-c", "k"], b"two\n")
        .expect_code(0);
    sub.wait_stdout(b"one\ntwo\n");
    sub.assert_alive("sub -k does not end when its senders leave");
    assert_eq!(server.counts(&topic).map(|c| c.receivers), Some(1));
    sub.kill();
    server.wait_counts(&topic, "the killed sub -k to leave", |c| c.receivers == 0);
}

#[test]
fn sub_with_two_pubs_ends_only_after_both_leave() {
    let server = TestServer::start();
    let key = server.key("twopubs");
    let topic = full(&key, "two");
    let mut p1 = Client::spawn(&server, &key, &["pub", "-c", "two"]);
    let mut p2 = Client::spawn(&server, &key, &["pub", "-c", "two"]);
    server.wait_senders(&topic, 2);
    server.wait_waiting_pubs(&topic, 2);
    let mut sub = Client::spawn(&server, &key, &["sub", "two"]);
    server.wait_receivers(&topic, 1);

    p1.write(b"from one\n");
    sub.wait_stdout(b"from one\n");
    let r1 = p1.finish();
    r1.out.expect_code(0);
    assert_eq!(r1.out.stderr, "");
    server.wait_counts(&topic, "pub 1 to leave", |c| c.senders == 1);
    sub.assert_alive("one of its two senders is still there");

    // Still receiving: it did not end when the first pub left.
    p2.write(b"from two\n");
    sub.wait_stdout(b"from one\nfrom two\n");
    let r2 = p2.finish();
    r2.out.expect_code(0);
    assert_eq!(r2.out.stderr, "");
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stdout_str(), "from one\nfrom two\n");
    assert_eq!(s.out.stderr, "");
}

#[test]
fn two_pipes_chat_in_both_directions() {
    let server = TestServer::start();
    let key = server.key("chatter");
    let topic = full(&key, "chat");
    let mut a = Client::spawn(&server, &key, &["pipe", "chat"]);
    let mut b = Client::spawn(&server, &key, &["pipe", "chat"]);
    server.wait_counts(&topic, "two pipes", |c| c.senders == 2 && c.receivers == 2);

    b.write(b"hello\n");
    a.wait_stdout(b"hello\n");
    a.write(b"hi back\n");
    b.wait_stdout(b"hi back\n");

    let a = a.finish();
    a.out.expect_code(0);
    assert_eq!(
        a.out.stdout_str(),
        "hello\n",
        "a pipe gets no echo of itself"
    );
    assert_eq!(a.out.stderr, "");
    b.assert_alive("a pipe is not ended by the other one leaving");
    let b = b.finish();
    b.out.expect_code(0);
    assert_eq!(
        b.out.stdout_str(),
        "hi back\n",
        "a pipe gets no echo of itself"
    );
    assert_eq!(b.out.stderr, "");
}

#[test]
fn pipe_gets_its_own_bytes_only_with_replay() {
    let server = TestServer::start();
    let key = server.key("echoer");
    let p = server.run(&key, &["pipe", "t"], b"x\n");
    p.expect_code(0);
    assert_eq!(p.stdout, b"", "no echo without -r");
    assert_eq!(p.stderr, "");
    let p = server.run(&key, &["pipe", "-r", "t"], b"x\n");
    p.expect_code(0);
    assert_eq!(p.stdout, b"x\n", "-r echoes the pipe's own data");
    assert_eq!(p.stderr, "");
}

#[test]
fn lone_pipe_is_never_kicked() {
    let server = TestServer::start();
    let key = server.key("loner");
    let topic = full(&key, "alone");
    let mut pipe = Client::spawn(&server, &key, &["pipe", "alone"]);
    server.wait_counts(&topic, "the pipe", |c| c.senders == 1 && c.receivers == 1);

    // A sender comes and goes; the pipe receives and stays.
    let p = server.run(&key, &["pub", "-b=false", "-c", "alone"], b"passing by\n");
    p.expect_code(0);
    pipe.wait_stdout(b"passing by\n");
    server.wait_counts(&topic, "the pub to leave", |c| c.senders == 1);
    pipe.assert_alive("a pipe left alone on a topic is not ended");
    assert_eq!(server.counts(&topic).map(|c| c.receivers), Some(1));

    // And it still works as a sender.
    let sub = Client::spawn(&server, &key, &["sub", "alone"]);
    server.wait_receivers(&topic, 2);
    pipe.write(b"still here\n");
    let done = pipe.finish();
    done.out.expect_code(0);
    assert_eq!(done.out.stdout_str(), "passing by\n");
    assert_eq!(done.out.stderr, "");
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stdout_str(), "still here\n");
}

#[test]
fn pipe_eof_exits_zero_after_delivering_to_a_sub() {
    let server = TestServer::start();
    let key = server.key("piper");
    let topic = full(&key, "p");
    let data = random_bytes(2 * MIB + 123, 0x5eed_0004);
    let sub = Client::spawn_hashing(&server, &key, &["sub", "p"]);
    server.wait_receivers(&topic, 1);
    let p = server.run(&key, &["pipe", "p"], &data);
    p.expect_code(0);
    assert_eq!(p.stdout, b"");
    assert_eq!(p.stderr, "");
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stderr, "");
    assert_eq!(s.hashed.unwrap(), (data.len() as u64, sha256(&data)));
}

const LINES_PER_SENDER: usize = 2000;

/// Line `i` of sender `who`: `who:i:` then a payload of varying length
/// (up to ~3 KiB, so many lines are longer than 1 KiB).
fn line(who: char, i: usize) -> Vec<u8> {
    let len = (i * 7919 + (who as usize) * 31) % 3000;
    let mut v = format!("{who}:{i}:").into_bytes();
    v.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
    v.push(b'\n');
    v
}

#[test]
fn two_senders_never_interleave_inside_a_line() {
    let server = TestServer::start();
    let key = server.key("mixer");
    let topic = full(&key, "mix");
    let mut sub = Client::spawn(&server, &key, &["sub", "-k", "mix"]);
    server.wait_receivers(&topic, 1);
    let mut pubs: Vec<Client> = (0..2)
        .map(|_| Client::spawn(&server, &key, &["pub", "-c", "mix"]))
        .collect();
    // Both are on the topic before either writes a byte.
    server.wait_senders(&topic, 2);

    let mut total = 0;
    let writers: Vec<JoinHandle<()>> = pubs
        .iter_mut()
        .zip(['A', 'B'])
        .map(|(p, who)| {
            let mut data = Vec::new();
            for i in 0..LINES_PER_SENDER {
                data.extend(line(who, i));
            }
            total += data.len();
            p.feed(Arc::new(data))
        })
        .collect();
    for p in pubs {
        let r = p.wait_exit();
        r.out.expect_code(0);
        assert_eq!(r.out.stderr, "");
    }
    for w in writers {
        w.join().unwrap();
    }
    sub.wait_stdout_len(total);
    let got = sub.stdout_now();
    sub.kill();

    assert_eq!(got.len(), total, "byte count");
    assert_eq!(got.last(), Some(&b'\n'));
    let mut next = [0usize; 2];
    for l in got[..got.len() - 1].split(|&b| b == b'\n') {
        let text = String::from_utf8_lossy(l);
        let mut parts = text.splitn(3, ':');
        let who = parts.next().unwrap_or_default();
        let idx = match who {
            "A" => 0,
            "B" => 1,
            _ => panic!("line from no sender (cut or glued): {:.80}", text),
        };
        let i: usize = parts
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("mangled line: {:.80}", text));
        assert_eq!(i, next[idx], "sender {who}: lines out of order or lost");
        let mut want = line(if idx == 0 { 'A' } else { 'B' }, i);
        want.pop();
        assert!(
            l == want.as_slice(),
            "line {who}:{i} was cut or mixed: {:.80}",
            text
        );
        next[idx] += 1;
    }
    assert_eq!(next, [LINES_PER_SENDER, LINES_PER_SENDER], "lines lost");
}

#[test]
fn a_single_senders_data_is_never_cut() {
    let server = TestServer::start();
    let key = server.key("whole");
    let topic = full(&key, "w");
    // No newline anywhere, longer than the 64 KiB line hold.
    let mut data = vec![b'z'; 200 * 1024];
    data.extend_from_slice(b"and no newline at the end");
    let sub = Client::spawn(&server, &key, &["sub", "w"]);
    server.wait_receivers(&topic, 1);
    server.run(&key, &["pub", "-c", "w"], &data).expect_code(0);
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert!(
        s.out.stdout == data,
        "data changed ({} bytes)",
        s.out.stdout.len()
    );
}

/// Bytes terminals and line-oriented code like to change.
fn awkward_payload() -> Vec<u8> {
    let mut data = b"crlf\r\nlone cr\rnul\0nul\0\xff\xfe\xff\n~.\n~?\x03\x04\x1a".to_vec();
    data.extend((0..=255u8).cycle().take(4096));
    data.extend(random_bytes(256 * 1024, 0x5eed_0005));
    data.extend_from_slice(b"\r\n\0\xff");
    data
}

#[test]
fn binary_payload_passes_unchanged() {
    let server = TestServer::start();
    let key = server.key("binary");
    let topic = full(&key, "bin");
    let data = awkward_payload();
    let sub = Client::spawn(&server, &key, &["sub", "bin"]);
    server.wait_receivers(&topic, 1);
    server
        .run(&key, &["pub", "-c", "bin"], &data)
        .expect_code(0);
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stderr, "");
    assert_eq!(s.out.stdout.len(), data.len());
    assert_eq!(sha256(&s.out.stdout), sha256(&data));
}

/// `ssh -tt` (a PTY for the remote side) with the harness's options; stdin
/// stays a pipe, so the local terminal is not touched.
fn ssh_tt(server: &TestServer, key: &Key, args: &[&str]) -> Child {
    server
        .ssh_with(key, &["-tt"], args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ssh -tt")
}

#[test]
fn binary_payload_passes_unchanged_to_a_sub_with_a_pty() {
    let server = TestServer::start();
    let key = server.key("pty");
    let topic = full(&key, "tty");
    let data = awkward_payload();
    let sub = Client::start(
        ssh_tt(&server, &key, &["sub", "tty"]),
        &["-tt", "sub"],
        false,
    );
    server.wait_receivers(&topic, 1);
    server
        .run(&key, &["pub", "-c", "tty"], &data)
        .expect_code(0);
    // stdin stays open until the sub has ended on its own.
    let s = sub.wait_exit();
    s.out.expect_code(0);
    assert_eq!(s.out.stderr, "");
    assert_eq!(s.out.stdout.len(), data.len(), "byte count under a PTY");
    assert_eq!(sha256(&s.out.stdout), sha256(&data));
}
