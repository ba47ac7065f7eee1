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

    /// Exit status, then EOF and close: OpenSSH exits 255 without a status.
    /// Everything written before is already queued ahead of these.
    ///
    /// The status waits until the client has acknowledged nearly all of its
    /// stdout. OpenSSH acknowledges data once it has written it out, and a
    /// client that has its exit status when the connection then breaks (a
    /// server killed with SIGKILL) exits with that status and throws away
    /// what it still held: up to a whole window, so `sub f > file && use
    /// file` would use a truncated file. OpenSSH leaves the last three
    /// packets unacknowledged, hence the slack; a client that stops
    /// acknowledging, or is slow about it, is not waited for long.
    pub async fn finish(self, status: u32) {
        let slack = self
            .write
            .max_packet_size()
            .saturating_mul(3)
            .saturating_add(STDERR_RESERVE);
        let seq = async {
            let caught_up = self.write.wait_acknowledged(slack, ACK_IDLE);
            let _ = tokio::time::timeout(ACK_WAIT_MAX, caught_up).await;
            self.write.exit_status(status).await?;
            self.write.eof().await?;
            self.write.close().await
        };
        tokio::select! {
            _ = seq => {}
            () = self.conn.cancelled() => {}
        }
    }
}
