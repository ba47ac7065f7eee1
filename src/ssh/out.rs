//! Writing to a client: stdout, stderr lines, and the exit sequence.
//!
//! A write blocked on a full SSH window is not woken when the client dies,
//! so every write races the connection's cancellation token; a dead
//! subscriber therefore never strands its task or its sender.

use std::time::Duration;

use bytes::Bytes;
use russh::ChannelWriteHalf;
use russh::server::Msg;
use tokio_util::sync::CancellationToken;

use crate::broker::Delivery;

/// Window kept for stderr lines: several of our longest status lines.
const STDERR_RESERVE: u32 = 1024;

/// How long the exit status waits for a client that acknowledges nothing
/// more, and at most in all (see `Out::finish`).
const ACK_IDLE: Duration = Duration::from_millis(250);
const ACK_WAIT_MAX: Duration = Duration::from_secs(5);

/// The client went away; nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

pub struct Out {
    write: ChannelWriteHalf<Msg>,
    /// Cancelled when the connection ends.
    conn: CancellationToken,
    /// The client asked for a PTY: its terminal is raw, so our own text
    /// (help, status lines) ends lines with CRLF. Data is never changed.
    crlf: bool,
    /// Bytes written to stdout.
    pub bytes_out: u64,
}

impl Out {
    pub fn new(write: ChannelWriteHalf<Msg>, conn: CancellationToken, crlf: bool) -> Self {
        // Stdout never takes the last of the client's window, so a status
        // line (`server shutting down`, `sender disconnected …`) still
        // reaches a client that stopped reading its stdout.
        write.keep_window_for_extended_data(STDERR_RESERVE);
        Out {
            write,
            conn,
            crlf,
            bytes_out: 0,
        }
    }

    /// Our own text as bytes, with CRLF line ends under a PTY.
    fn render(&self, text: &str) -> Bytes {
        if self.crlf {
            Bytes::from(text.replace('\n', "\r\n"))
        } else {
            Bytes::copy_from_slice(text.as_bytes())
        }
    }

    /// Writes data to the client's stdout, waiting for its window.
    pub async fn stdout(&mut self, data: Bytes) -> Result<(), Gone> {
        let len = data.len() as u64;
        tokio::select! {
            r = self.write.data_bytes(data) => r.map_err(|_| Gone)?,
            () = self.conn.cancelled() => return Err(Gone),
        }
        self.bytes_out += len;
        Ok(())
    }

    /// Writes one line (a newline is added) to the client's stderr.
    pub async fn line(&mut self, text: &str) -> Result<(), Gone> {
        let bytes = self.render(&format!("{text}\n"));
        tokio::select! {
            r = self.write.extended_data_bytes(1, bytes) => r.map_err(|_| Gone),
            () = self.conn.cancelled() => Err(Gone),
        }
    }

    /// Text on stdout (help, whoami, ls).
    pub async fn text(&mut self, text: &str) -> Result<(), Gone> {
        let bytes = self.render(text);
        self.stdout(bytes).await
    }

    /// Waits until the client has acknowledged nearly all of its stdout:
    /// `Ok(true)` it caught up, `Ok(false)` it stopped acknowledging (or
    /// was slow about it) and was not waited for longer. OpenSSH
    /// acknowledges data once it has written it out, but leaves its last
    /// three packets unacknowledged while nothing more arrives, hence the
    /// slack; a client that stops acknowledging is given `ACK_IDLE`, and
    /// no client more than `ACK_WAIT_MAX`. Nothing may write meanwhile (the
    /// wait shares the window's wake-ups with writers).
    pub async fn acknowledged(&self) -> Result<bool, Gone> {
        let slack = self
            .write
            .max_packet_size()
            .saturating_mul(3)
            .saturating_add(STDERR_RESERVE);
        let caught_up = self.write.wait_acknowledged(slack, ACK_IDLE);
        tokio::select! {
            r = tokio::time::timeout(ACK_WAIT_MAX, caught_up) => Ok(r.unwrap_or(false)),
            () = self.conn.cancelled() => Err(Gone),
        }
    }

    /// Exit status, then EOF and close: OpenSSH exits 255 without a status.
    /// Everything written before is already queued ahead of these.
    ///
    /// The status waits until the client has acknowledged nearly all of its
    /// stdout (`acknowledged`). A client that has its exit status when the
    /// connection then breaks (a server killed with SIGKILL) exits with that
    /// status and throws away what it still held: up to a whole window, so
    /// `sub f > file && use file` would use a truncated file.
    ///
    /// A queued message the command handed out whole (`delivery`) is
    /// removed between that wait and the status — only then, and only if
    /// the client is still there; gone, the message goes back to the head
    /// of its queue. If the server is killed
    /// - before the removal: the message stays and the client, without a
    ///   status, exits 255; the next sub gets it whole. Nothing lost,
    ///   nothing twice (an exit-255 sub did not deliver: `sub f > file &&
    ///   use file` never uses it).
    /// - once the status is out: the client exits 0 with the message, which
    ///   is gone. Exactly once.
    /// - in between: the client holds the message's bytes but exits 255,
    ///   and the message is gone. That window runs from the store's commit
    ///   returning to the connection's task writing the status to the
    ///   socket: no disk I/O in it.
    ///
    /// The other order (status, then removal) has no such loss window but
    /// a duplicate one instead, and a longer one: a kill during the
    /// removal's commit (fsync) leaves a message that one client already
    /// has with exit 0 to be served, with exit 0, again. A lost message
    /// shows (exit 255, the data is at hand); a repeated one does not — a
    /// job queue would run a job twice — and SPEC §8 gives each message to
    /// exactly one receiver. So: wait, remove, status.
    ///
    /// A client that stopped acknowledging still gets its message removed
    /// and its status: exit 0 says it has the message, and keeping one that
    /// a client may well hold whole would serve it twice.
    pub async fn finish(self, status: u32, delivery: Option<Delivery>) {
        if self.acknowledged().await.is_err() {
            return;
        }
        let mut tidy = None;
        if let Some(delivery) = delivery {
            if self.conn.is_cancelled() {
                return;
            }
            tidy = Some(delivery.confirm().await);
        }
        let seq = async {
            self.write.exit_status(status).await?;
            self.write.eof().await?;
            self.write.close().await
        };
        tokio::select! {
            _ = seq => {}
            () = self.conn.cancelled() => {}
        }
        // After the status: nothing but the removal sits between the
        // client having its message and knowing it succeeded.
        if let Some(tidy) = tidy {
            tidy.run().await;
        }
    }
}
