//! The real `sshpipe` binary as a child process, for tests that restart
//! it, kill it with SIGKILL or read its start-up errors: an in-process
//! server cannot show what a crash leaves behind.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{CLIENT_OPTS, Key, Out, finish, wait_child};

/// The release or debug binary on an ephemeral port, logging JSON; its log
/// lines are kept for the test to read.
pub struct Binary {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

pub fn binary(data_dir: &Path) -> Command {
    binary_with_http(data_dir, "off")
}

/// `binary`, with HTTP on `http` (`off`, or `127.0.0.1:0`: the port is in
/// the start-up line, `Binary::http_port`).
pub fn binary_with_http(data_dir: &Path, http: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshpipe"));
    cmd.args(["--ssh-listen", "127.0.0.1:0", "--http-listen", http])
        .args(["--log-format", "json", "--data-dir"])
        .arg(data_dir)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    cmd
}

impl Binary {
    pub fn start(data_dir: &Path) -> Binary {
        Binary::spawn(binary(data_dir))
    }

    /// Starts `cmd`, a `binary(..)` command with options of its own.
    pub fn spawn(mut cmd: Command) -> Binary {
        let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let port = loop {
            let line = lines.next().expect("a start-up line").unwrap();
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("\"ssh\":\"").nth(1) {
                let addr = rest.split('"').next().unwrap();
                break addr.rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Binary { child, port, log }
    }

    pub fn ssh(&self, key: &Key, args: &[&str]) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.args(CLIENT_OPTS)
            .args(["-o", "LogLevel=ERROR", "-i"])
            .arg(&key.path)
            .args(["-p", &self.port.to_string(), "tester@127.0.0.1"])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    pub fn run(&self, key: &Key, args: &[&str], stdin: &[u8]) -> Out {
        finish(self.ssh(key, args).spawn().unwrap(), stdin, "ssh")
    }

    /// The HTTP port from the start-up line (started with HTTP on).
    pub fn http_port(&self) -> Option<u16> {
        let log = self.log.lock().unwrap();
        let line = log.iter().find(|l| l.contains("\"sshpipe listening\""))?;
        let rest = line.split("\"http\":\"").nth(1)?;
        rest.split('"').next()?.rsplit(':').next()?.parse().ok()
    }

    pub fn log_lines(&self, containing: &str) -> usize {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(containing)).count()
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }
}

/// A server a test did not kill (it passed, or failed first) goes with it,
/// instead of running on after the test binary.
impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` (the binary, which must refuse to start) and returns its
/// stderr, asserting it exited 1 (not a panic's 101).
pub fn refused_start(cmd: &mut Command, what: &str) -> String {
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn sshpipe");
    let status = wait_child(&mut child, what);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("piped stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    assert_eq!(status.code(), Some(1), "{what}: {stderr}");
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    stderr
}

/// `refused_start`, asserting the refusal is one line, which is returned.
pub fn refused_line(cmd: &mut Command, what: &str) -> String {
    let stderr = refused_start(cmd, what);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one line: {stderr}");
    lines[0].to_string()
}
