//! The sending side of a topic: blocking waits, line framing, fan-out and
//! the final flush that makes `msg sent!` true.
//!
//! The pump reads from any `ByteSource` (an SSH channel, an HTTP body), so
//! both front ends get exactly the same delivery rules. It reads a chunk
//! only when it can deliver it: while a blocking pub waits for receivers it
//! reads nothing, and the front end's own flow control holds the client back,
//! so nothing is lost and server memory does not grow.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

use super::framer::{Framer, LineSplitter};
use super::link::{Registration, SenderCounts, TopicPort, dispatch_line};

/// A partial line is sent after this long without new data (SPEC §5.5).
const LINE_HOLD: Duration = Duration::from_millis(100);

/// Where a sender's bytes come from. `Ok(None)` is end of input.
/// `next_chunk` must be cancel-safe: the pump races it against a timer.
pub trait ByteSource: Send {
    fn next_chunk(&mut self) -> impl Future<Output = std::io::Result<Option<Bytes>>> + Send;
}

/// Stages a pub reports on its way (SPEC §4.2), for the status lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PubStage {
    /// No receiver: waiting up to this long.
    Waiting(Duration),
    /// A receiver is there (or the pub does not block): sending.
    Sending,
}

/// Receives stage reports; the SSH side turns them into stderr lines.
pub trait StageSink: Send {
    fn stage(&mut self, stage: PubStage) -> impl Future<Output = ()> + Send;
}

/// A sink for senders that print nothing (pipes, `-c`).
impl StageSink for () {
    async fn stage(&mut self, _stage: PubStage) {}
}

#[derive(Debug, Clone, Copy)]
pub struct PumpOptions {
    /// Wait for a receiver before sending, and whenever none is left.
    pub block: bool,
    /// Bound on each such wait.
    pub timeout: Duration,
    /// Send nothing; only wait as `block` says (a trigger).
    pub empty: bool,
    /// Each line to exactly one receiver, rotating (SPEC §7), instead of
    /// every chunk to every receiver.
    pub round_robin: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error("timeout reached, exiting")]
    Timeout,
    /// An access-list change took this sender off its topic (SPEC §6).
    #[error("access denied")]
    AccessDenied,
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
}

/// A sender's handle on its topic.
pub struct Publisher {
    registration: Arc<Registration>,
    receivers: watch::Receiver<usize>,
    senders: watch::Receiver<SenderCounts>,
    /// A pipe with `-r` also receives its own data.
    replay: bool,
    framer: Framer,
    /// Whole lines for round-robin dispatch.
    lines: LineSplitter,
    /// Bytes handed to receivers so far.
    pub sent: u64,
}

impl Publisher {
    pub(crate) fn new(registration: Arc<Registration>, replay: bool) -> Self {
        Publisher {
            receivers: registration.port.receiver_count(),
            senders: registration.port.senders(),
            registration,
            replay,
            framer: Framer::default(),
            lines: LineSplitter::default(),
            sent: 0,
        }
    }

    /// Receivers on the topic. Only pubs block, and a pub is not a receiver,
    /// so this never counts the sender itself.
    fn receivers(&self) -> usize {
        *self.receivers.borrow()
    }

    fn port(&self) -> &Arc<dyn TopicPort> {
        &self.registration.port
    }

    /// Waits (up to `timeout`) until someone can receive, reporting the
    /// wait; true when it had to wait.
    async fn await_receivers(
        &mut self,
        timeout: Duration,
        sink: &mut impl StageSink,
    ) -> Result<bool, PumpError> {
        if self.receivers() > 0 {
            return Ok(false);
        }
        sink.stage(PubStage::Waiting(timeout)).await;
        let port = Arc::clone(self.port());
        port.waiting(1);
        let _waiting = WaitingGuard(&*port);
        let mut counts = port.receiver_count();
        let wait = async {
            loop {
                if *counts.borrow_and_update() > 0 {
                    return;
                }
                if counts.changed().await.is_err() {
                    // The topic's sender side is gone: cannot happen while we
                    // hold it, but never spin if it does.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| PumpError::Timeout)?;
        Ok(true)
    }

    /// A wait in mid-stream, after every receiver left: reported like the
    /// first one, and the resumption too (SPEC §4.2).
    async fn await_again(
        &mut self,
        timeout: Duration,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        if self.await_receivers(timeout, sink).await? {
            sink.stage(PubStage::Sending).await;
        }
        Ok(())
    }

    /// Sends one chunk to every receiver connected now, pacing on the
    /// slowest. Returns how many receivers took it.
    pub async fn deliver(&mut self, chunk: &Bytes) -> usize {
        if chunk.is_empty() {
            return 0;
        }
        let me = self.registration.id;
        let mut reached = 0;
        for slot in self.port().receivers().iter() {
            if slot.member == me && !self.replay {
                continue;
            }
            if slot.deliver(chunk).await {
                reached += 1;
            }
        }
        if reached > 0 {
            self.sent += chunk.len() as u64;
        }
        reached
    }

    /// Delivers a chunk; a blocking sender keeps it until some receiver took
    /// it, so a receiver leaving at the wrong moment never loses data.
    async fn deliver_or_wait(
        &mut self,
        chunk: Bytes,
        opts: PumpOptions,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        loop {
            if opts.block {
                self.await_again(opts.timeout, sink).await?;
            }
            let taken = if opts.round_robin {
                self.dispatch_line(&chunk).await
            } else {
                self.deliver(&chunk).await > 0
            };
            if taken || !opts.block {
                return Ok(());
            }
        }
    }

    /// Gives one line to exactly one receiver (not this sender, unless it
    /// replays its own data).
    async fn dispatch_line(&mut self, line: &Bytes) -> bool {
        let me = self.registration.id;
        let exclude: &[u64] = if self.replay { &[] } else { &[me] };
        let taken = dispatch_line(self.port(), line, exclude).await;
        if taken {
            self.sent += line.len() as u64;
        }
        taken
    }

    /// Hands a chunk to the framer (or the line splitter), delivering what
    /// it releases.
    async fn send(
        &mut self,
        chunk: Bytes,
        opts: PumpOptions,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        if opts.round_robin {
            for line in self.lines.push(chunk) {
                self.deliver_or_wait(line, opts, sink).await?;
            }
            return Ok(());
        }
        let shared = self.senders.borrow().senders >= 2;
        match self.framer.push(chunk, shared) {
            Some(out) => self.deliver_or_wait(out, opts, sink).await,
            None => Ok(()),
        }
    }

    /// Delivers a held partial line (after the idle pause or at the end).
    async fn release_held(
        &mut self,
        opts: PumpOptions,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        let held = match opts.round_robin {
            true => self.lines.finish(),
            false => self.framer.take_held(),
        };
        match held {
            Some(rest) => self.deliver_or_wait(rest, opts, sink).await,
            None => Ok(()),
        }
    }

    /// Waits until every lossless receiver has handed all it was given to
    /// its client.
    async fn flush(&mut self) {
        let skip = (!self.replay).then_some(self.registration.id);
        super::link::flush_slots(&self.port().receivers(), skip).await;
    }

    /// Runs a whole sender: wait, read, frame, deliver, flush — cut short
    /// with `AccessDenied` the moment a list change takes it off its topic,
    /// whether it is waiting or streaming.
    pub async fn pump(
        &mut self,
        source: &mut impl ByteSource,
        opts: PumpOptions,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        let revoked = self.registration.revoked.clone();
        tokio::select! {
            biased;
            () = revoked.cancelled() => Err(PumpError::AccessDenied),
            r = self.pump_all(source, opts, sink) => r,
        }
    }

    async fn pump_all(
        &mut self,
        source: &mut impl ByteSource,
        opts: PumpOptions,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        if opts.block {
            self.await_receivers(opts.timeout, sink).await?;
        }
        sink.stage(PubStage::Sending).await;
        if !opts.empty {
            self.pump_input(source, opts, sink).await?;
        }
        self.release_held(opts, sink).await?;
        self.flush().await;
        self.registration
            .finished
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    async fn pump_input(
        &mut self,
        source: &mut impl ByteSource,
        opts: PumpOptions,
        sink: &mut impl StageSink,
    ) -> Result<(), PumpError> {
        loop {
            if opts.block {
                // Read nothing while nobody listens (SPEC §5.2).
                self.await_again(opts.timeout, sink).await?;
            }
            // A partial line waits at most LINE_HOLD (not for round-robin,
            // where a line is only ever sent whole).
            let hold = !opts.round_robin && self.framer.has_held();
            let port = Arc::clone(self.port());
            tokio::select! {
                next = source.next_chunk() => match next? {
                    Some(chunk) => self.send(chunk, opts, sink).await?,
                    None => return Ok(()),
                },
                () = tokio::time::sleep(LINE_HOLD), if hold => self.release_held(opts, sink).await?,
                // Every receiver left while stdin was quiet: go back to the
                // bounded wait at the top instead of reading on (SPEC §5.2).
                () = receivers_gone(&*port), if opts.block => {}
            }
        }
    }
}

/// Resolves once the topic has no receiver (cancel-safe).
async fn receivers_gone(port: &dyn TopicPort) {
    let mut counts = port.receiver_count();
    // An error means the topic is gone, which also means no receiver.
    let _ = counts.wait_for(|n| *n == 0).await;
}

/// Keeps `ls`'s count of waiting pubs right however the wait ends.
struct WaitingGuard<'a>(&'a dyn TopicPort);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting(-1);
    }
}
