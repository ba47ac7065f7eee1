//! Client processes for the interop tests: every wait bounded, output read
//! on threads so a client never blocks on a full pipe, and a client still
//! running when a test fails is killed.

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::common::{Out, finish, wait_child_within, wait_until};

/// Starts `cmd` with piped stdio and runs it to completion (bounded by the
/// harness wait, killed after it); `Err` when it cannot be started.
pub fn run_bounded(cmd: &mut Command, what: &str) -> Result<Out, String> {
    let child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{what}` cannot be run: {e}"))?;
    Ok(finish(child, b"", what))
}

/// Runs a key tool and fails the test unless it succeeds.
pub fn run_tool(cmd: &mut Command, what: &str) -> Out {
    let out = run_bounded(cmd, what).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{what}: {}; stderr: {}; stdout: {}",
        out.status,
        out.stderr,
        out.stdout_str()
    );
    out
}

/// What a process's stdin gets.
pub enum Stdin {
    /// Held open and never written, as a terminal nobody types into, until
    /// the process has exited.
    Open,
    /// Written from a thread (the pipe may block on flow control), then
    /// closed.
    Feed(Arc<Vec<u8>>),
}

/// A running client process.
pub struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    feeder: Option<JoinHandle<()>>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

fn read_all(mut from: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = from.read_to_end(&mut buf);
        buf
    })
}

/// Joins a reader or writer thread, bounded: a pipe some other process
/// still holds open fails the test instead of hanging it.
fn join_bounded<R>(handle: JoinHandle<R>, what: &str) -> R {
    wait_until(what, || handle.is_finished());
    handle.join().expect("pipe thread")
}

impl Proc {
    /// Starts `cmd`; `what` names it in failures.
    pub fn spawn(mut cmd: Command, what: String, stdin: Stdin) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
        let mut input = child.stdin.take();
        let feeder = match stdin {
            Stdin::Open => None,
            Stdin::Feed(data) => {
                let mut pipe = input.take().expect("stdin piped");
                Some(thread::spawn(move || {
                    for chunk in data.chunks(256 * 1024) {
                        if pipe.write_all(chunk).is_err() {
                            return;
                        }
                    }
                }))
            }
        };
        Proc {
            stdout: Some(read_all(child.stdout.take().expect("stdout piped"))),
            stderr: Some(read_all(child.stderr.take().expect("stderr piped"))),
            what,
            child,
            stdin: input,
            feeder,
        }
    }

    /// Waits up to `limit` for the exit (else kills the process and fails),
    /// then gathers its output.
    pub fn wait(mut self, limit: Duration) -> Out {
        let status = wait_child_within(&mut self.child, &self.what, limit);
        self.stdin = None;
        let what = self.what.clone();
        if let Some(feeder) = self.feeder.take() {
            join_bounded(feeder, &format!("{what}: stdin writer to end"));
        }
        let stdout = join_bounded(
            self.stdout.take().expect("stdout reader"),
            &format!("{what}: stdout to close"),
        );
        let stderr = join_bounded(
            self.stderr.take().expect("stderr reader"),
            &format!("{what}: stderr to close"),
        );
        Out {
            status,
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A failing test must not leave clients behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
