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
/// more once it holds little enough (see `Out::acknowledged`).
const ACK_IDLE: Duration = Duration::from_millis(250);

/// "For ever" for `wait_acknowledged`: the connection's end or the
/// server's shutdown ends such a wait first.
const ACK_FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// How a client acknowledges the stdout it has written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// OpenSSH (`channel_check_window`): as soon as it has written
    /// anything while more than three packets of its window are in use.
    Packets,
    /// Anyone else: by the time half its window is used, at the latest.
    HalfWindow,
}

impl Cadence {
    /// The cadence of a client by its version line (`SSH-2.0-OpenSSH_9.2p1
    /// Debian-2`).
    pub fn of(sshid: &[u8]) -> Cadence {
        match sshid.starts_with(b"SSH-2.0-OpenSSH_") {
            true => Cadence::Packets,
            false => Cadence::HalfWindow,
        }
    }
}

/// How a wait for the client's acknowledgement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// It holds at most its last few packets.
    CaughtUp,
    /// It holds little enough and acknowledged nothing for `ACK_IDLE`: a
    /// client that keeps its last acknowledgement back.
    Quiet,
    /// The server is shutting down.
    Shutdown,
}

/// The client went away; nothing more can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

pub struct Out {
    write: ChannelWriteHalf<Msg>,
    /// Cancelled when the connection ends.
    conn: CancellationToken,
    /// Cancelled when the server shuts down.
    shutdown: CancellationToken,
    cadence: Cadence,
    /// `server shutting down` was written (it is written once).
    told_shutdown: bool,
    /// The client asked for a PTY: its terminal is raw, so our own text
    /// (help, status lines) ends lines with CRLF. Data is never changed.
    crlf: bool,
    /// Bytes written to stdout.
    pub bytes_out: u64,
}

impl Out {
    pub fn new(
        write: ChannelWriteHalf<Msg>,
        conn: CancellationToken,
        shutdown: CancellationToken,
        cadence: Cadence,
        crlf: bool,
    ) -> Self {
        // Stdout never takes the last of the client's window, so a status
        // line (`server shutting down`, `sender disconnected …`) still
        // reaches a client that stopped reading its stdout.
        write.keep_window_for_extended_data(STDERR_RESERVE);
        Out {
            write,
            conn,
            shutdown,
            cadence,
            told_shutdown: false,
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

    /// Tells the client the server is shutting down, once.
    pub async fn shutting_down(&mut self) -> Result<(), Gone> {
        if std::mem::replace(&mut self.told_shutdown, true) {
            return Ok(());
        }
        self.line("server shutting down").await
    }

    /// Waits until the client has acknowledged nearly all of its stdout.
    ///
    /// OpenSSH acknowledges data once it has written it out, and leaves at
    /// most its last three packets unacknowledged while nothing more
    /// arrives (hence the slack). Other clients acknowledge in bigger
    /// steps, but every one by the time half its window is used. So, with
    /// `patient` the slack for OpenSSH and half the window for others:
    /// - while the client holds more than `patient`, its silence means its
    ///   consumer is slow (`sub f | slow`), and it is waited for as a
    ///   pipe's writer waits: until it catches up, goes away or the server
    ///   shuts down;
    /// - from there on it is given `ACK_IDLE` of silence before the wait
    ///   settles for `Ack::Quiet`.
    ///
    /// What a killed server can still cut off from a client that has its
    /// exit 0 is therefore the unacknowledged rest: three packets (96 KiB)
    /// for OpenSSH, half a window for others, and only while its consumer
    /// stalls with that much left.
    ///
    /// Nothing may write meanwhile (the wait shares the window's wake-ups
    /// with writers).
    pub async fn acknowledged(&self) -> Result<Ack, Gone> {
        let slack = self
            .write
            .max_packet_size()
            .saturating_mul(3)
            .saturating_add(STDERR_RESERVE);
        let patient = match self.cadence {
            Cadence::Packets => slack,
            Cadence::HalfWindow => (self.write.window_peak() / 2).max(slack),
        };
        let wait = async {
            self.write.wait_acknowledged(patient, ACK_FOREVER).await;
            match self.write.wait_acknowledged(slack, ACK_IDLE).await {
                true => Ack::CaughtUp,
                false => Ack::Quiet,
            }
        };
        tokio::select! {
            biased;
            ack = wait => Ok(ack),
            () = self.conn.cancelled() => Err(Gone),
            () = self.shutdown.cancelled() => Ok(Ack::Shutdown),
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
    /// A client that keeps its last acknowledgement back (`Ack::Quiet`)
    /// still gets its message removed and its status: it holds at most
    /// the unacknowledged rest, and keeping a message it most likely has whole
    /// would serve it twice. At shutdown the wait ends: the client gets
    /// `server shutting down` and exit 1, and its message stays queued.
    pub async fn finish(mut self, status: u32, delivery: Option<Delivery>) {
        let status = match self.acknowledged().await {
            Err(Gone) => return,
            Ok(Ack::Shutdown) => {
                let _ = self.shutting_down().await;
                return self.exit(1).await;
            }
            Ok(Ack::CaughtUp | Ack::Quiet) => status,
        };
        let mut tidy = None;
        if let Some(delivery) = delivery {
            if self.conn.is_cancelled() {
                return;
            }
            tidy = Some(delivery.confirm().await);
        }
        self.exit(status).await;
        // After the status: nothing but the removal sits between the
        // client having its message and knowing it succeeded.
        if let Some(tidy) = tidy {
            tidy.run().await;
        }
    }

    async fn exit(&self, status: u32) {
        let seq = async {
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

#[cfg(test)]
mod tests {
    use super::Cadence;

    #[test]
    fn cadence_by_version_line() {
        for (id, want) in [
            (
                &b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"[..],
                Cadence::Packets,
            ),
            (b"SSH-2.0-OpenSSH_10.0", Cadence::Packets),
            (b"SSH-2.0-paramiko_3.5.1", Cadence::HalfWindow),
            (b"SSH-2.0-dropbear_2022.83", Cadence::HalfWindow),
            (b"SSH-2.0-PuTTY_Release_0.78", Cadence::HalfWindow),
            (b"SSH-2.0-OpenSSH", Cadence::HalfWindow),
            (b"", Cadence::HalfWindow),
        ] {
            assert_eq!(Cadence::of(id), want, "{}", String::from_utf8_lossy(id));
        }
    }
}
