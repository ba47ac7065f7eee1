//! A child process's stdin fed with the pattern and its stdout checked
//! against it, for the scenarios that drive real clients (`ssh`, `curl`).

use std::io::{Read, Write};
use std::process::Child;

use anyhow::{Context, Result};

use crate::data::Pattern;

/// Bytes written to a child's stdin at a time.
const WRITE_CHUNK: usize = 1 << 20;

/// Writes `bytes` of the pattern to the child's stdin from a thread.
pub(super) fn feed(
    child: &mut Child,
    bytes: u64,
    p: &Pattern,
) -> Result<std::thread::JoinHandle<Result<()>>> {
    let mut stdin = child.stdin.take().context("no stdin")?;
    let p = p.clone();
    Ok(std::thread::spawn(move || {
        let mut sent = 0u64;
        while sent < bytes {
            let n = WRITE_CHUNK.min((bytes - sent) as usize);
            stdin.write_all(&p.chunk(sent, n))?;
            sent += n as u64;
        }
        Ok(())
    }))
}

/// Reads the child's stdout to its end and checks it byte for byte.
pub(super) fn drain(child: &mut Child, bytes: u64, p: &Pattern, what: &str) -> Result<bool> {
    let mut stdout = child.stdout.take().context("no stdout")?;
    let mut check = p.checker();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break;
        }
        check.feed(&buf[..n]);
    }
    if !check.exact(bytes) {
        eprintln!(
            "{what}: received {} of {bytes} bytes, first mismatch at {:?}",
            check.received(),
            check.mismatch()
        );
    }
    Ok(check.exact(bytes))
}
