//! The sending half of a link: drains the slot queue a topic gave another
//! node and carries it there over core NATS, inside the credit window.
//!
//! The topic's senders pace on the slot queue exactly as on a local
//! receiver's; the forwarder takes from it only while the window is open,
//! so the remote node's slowest receiver paces them (SPEC §14). A `Flush`
//! is answered once the remote node has handed everything before it to its
//! receivers, so `msg sent!` means the same across nodes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::names::data_subject;
use super::window::Window;
use super::wire::{Credit, Frame, Kind};
use super::{Core, loose};
use crate::broker::link::Item;

/// Frames out unprocessed per link: 32 × 32 KiB = 1 MiB in flight, about
/// one SSH window; well under nats-server's 64 MiB per-connection bound.
pub const WINDOW: u64 = 32;

/// Silence from the receiving node this long, with frames outstanding,
/// sends the ones it has not confirmed again (doubling up to `RESEND_MAX`).
const RESEND_FIRST: Duration = Duration::from_millis(300);
const RESEND_MAX: Duration = Duration::from_secs(5);

pub(super) struct Forwarder {
    pub core: Arc<Core>,
    pub to: String,
    pub topic: String,
    pub stream: u64,
    pub rx: mpsc::Receiver<Item>,
    pub credits: watch::Receiver<Credit>,
    pub stop: CancellationToken,
}

impl Forwarder {
    pub async fn run(mut self) {
        let subject = data_subject(&self.to);
        let mut window = Window::new(WINDOW);
        let mut flushes: VecDeque<(u64, oneshot::Sender<()>)> = VecDeque::new();
        let mut heard = Instant::now();
        let mut resend_after = RESEND_FIRST;
        let mut input_open = true;
        loop {
            if !input_open && window.idle() {
                break;
            }
            let quiet_until = heard + resend_after;
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                changed = self.credits.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let c = *self.credits.borrow_and_update();
                    heard = Instant::now();
                    if window.credit(c.processed, c.received) {
                        resend_after = RESEND_FIRST;
                    }
                    while flushes.front().is_some_and(|(s, _)| *s <= window.processed()) {
                        if let Some((_, done)) = flushes.pop_front() {
                            let _ = done.send(());
                        }
                    }
                    if c.resend {
                        self.resend(&subject, &window).await;
                    }
                }
                item = self.rx.recv(), if input_open && window.open() => {
                    let Some(item) = item else {
                        input_open = false;
                        continue;
                    };
                    let seq = window.next_seq();
                    let (kind, body) = match item {
                        Item::Data(b) => (Kind::Data, b),
                        Item::Line(b, _) => (Kind::Line, b),
                        Item::Flush(done) => {
                            flushes.push_back((seq, done));
                            (Kind::Flush, bytes::Bytes::new())
                        }
                    };
                    if window.idle() {
                        // The receiver's silence counts from the first frame out.
                        heard = Instant::now();
                    }
                    let frame = self.frame(kind, seq, body).encode();
                    // A publish fails only once the client is closed for
                    // good; a frame lost otherwise is sent again.
                    let _ = self.core.client.publish(subject.clone(), frame.clone()).await;
                    window.sent(frame);
                }
                () = tokio::time::sleep_until(quiet_until), if !window.idle() => {
                    tracing::debug!(stream = self.stream, to = %self.to, processed = window.processed(), next = window.next_seq(), "no word from the receiving node; sending again");
                    self.resend(&subject, &window).await;
                    heard = Instant::now();
                    resend_after = (resend_after * 2).min(RESEND_MAX);
                }
            }
        }
        // Best effort: lets the receiving node forget the stream at once
        // (it also forgets idle streams on its own).
        let end = self.frame(Kind::End, window.next_seq(), bytes::Bytes::new());
        let _ = self.core.client.publish(subject, end.encode()).await;
        self.core.forget_stream(self.stream);
        self.give_back_lines();
    }

    /// Round-robin lines still queued for a link that closed go to
    /// another receiver of the topic (`loose`); senders still holding the
    /// slot move on to another receiver once it is closed.
    fn give_back_lines(&mut self) {
        self.rx.close();
        let mut lines = Vec::new();
        while let Ok(item) = self.rx.try_recv() {
            if let Item::Line(line, _) = item {
                lines.push(line);
            }
        }
        if lines.is_empty() {
            return;
        }
        let (core, topic) = (Arc::clone(&self.core), self.topic.clone());
        tokio::spawn(async move {
            for line in lines {
                loose::place(&core, &topic, line, 0).await;
            }
        });
    }

    fn frame(&self, kind: Kind, seq: u64, body: bytes::Bytes) -> Frame {
        Frame {
            kind,
            stream: self.stream,
            seq,
            from: self.core.node.clone(),
            topic: self.topic.clone(),
            body,
        }
    }

    async fn resend(&self, subject: &str, window: &Window) {
        for frame in window.missing() {
            let _ = self
                .core
                .client
                .publish(subject.to_string(), frame.clone())
                .await;
        }
    }
}
