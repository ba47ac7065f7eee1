use std::collections::VecDeque;
use std::sync::Arc;

use bytes::BytesMut;
use log::debug;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::{ReadCredit, WindowSizeRef};
use crate::ChannelMsg;

/// Requests (`env`, `window-change`, …) held for a reader that is not
/// reading, past which their informational copies are dropped: the handler
/// callbacks still see every request, so only the copy is lost, and a peer
/// cannot grow this without bound (sshpipe patch).
const MAX_BACKLOG_REQUESTS: usize = 64;

/// Held data packets smaller than this are merged into one message, so a
/// peer sending tiny packets costs the backlog little more than its bytes.
const MERGE_BELOW: usize = 8 * 1024;

/// A handle to the [`super::Channel`]'s to be able to transmit messages
/// to it and update it's `window_size`.
#[derive(Debug)]
pub struct ChannelRef {
    pub(super) sender: Sender<ChannelMsg>,
    pub(super) window_size: WindowSizeRef,
    pub(super) credit: Arc<ReadCredit>,
    /// Boxed so that a `ChannelRef` stays small: it travels inside
    /// `server::Msg`, and every session's two `Msg` queues allocate 32
    /// slots of the largest variant up front (sshpipe patch, issue 17).
    held: Box<Held>,
}

/// What waits for a reader whose queue is full (sshpipe patch).
#[derive(Debug, Default)]
struct Held {
    /// Messages that found the channel's queue full, oldest first, then
    /// `merging`. Data is bounded by the receive window granted to the peer;
    /// requests by `MAX_BACKLOG_REQUESTS`.
    backlog: VecDeque<ChannelMsg>,
    /// Small data held after `backlog`, merged as it arrives.
    merging: Option<(Option<u32>, BytesMut)>,
    backlog_requests: usize,
}

impl ChannelRef {
    pub fn new(sender: Sender<ChannelMsg>) -> Self {
        Self::with_credit(sender, WindowSizeRef::new(0), Arc::default())
    }

    pub(crate) fn with_credit(
        sender: Sender<ChannelMsg>,
        window_size: WindowSizeRef,
        credit: Arc<ReadCredit>,
    ) -> Self {
        Self {
            sender,
            window_size,
            credit,
            held: Box::default(),
        }
    }

    pub(crate) fn window_size(&self) -> &WindowSizeRef {
        &self.window_size
    }

    pub(crate) fn credit(&self) -> &Arc<ReadCredit> {
        &self.credit
    }

    /// Hands `msg` to the channel's reader without ever waiting, so the
    /// session loop keeps serving every other channel, keepalives and key
    /// re-exchange while this reader is busy. What does not fit the queue
    /// waits in order in the backlog, which `pump` moves on as the reader
    /// takes messages. Data for a reader that is gone is counted as
    /// consumed, so its peer is never stalled by a closed queue.
    pub(crate) fn deliver(&mut self, msg: ChannelMsg) {
        if self.held.backlog.is_empty() && self.held.merging.is_none() {
            match self.sender.try_send(msg) {
                Ok(()) => return,
                Err(TrySendError::Closed(msg)) => {
                    self.credit.discard(data_len(&msg));
                    return;
                }
                Err(TrySendError::Full(msg)) => self.hold(msg),
            }
            // The reader may have emptied the queue before it could see the
            // backlog flag: look again, so nothing waits for a wake-up that
            // never comes.
            self.pump();
        } else {
            self.hold(msg);
            self.pump();
        }
    }

    fn hold(&mut self, msg: ChannelMsg) {
        self.credit.set_backlogged(true);
        // Whoever dequeues after this sees the flag and wakes the session;
        // whoever dequeued before left room that the next `pump` finds.
        let (ext, data) = match msg {
            ChannelMsg::Data { data } if data.len() < MERGE_BELOW => (None, data),
            ChannelMsg::ExtendedData { data, ext } if data.len() < MERGE_BELOW => (Some(ext), data),
            msg => {
                self.seal();
                if is_request(&msg) {
                    if self.held.backlog_requests >= MAX_BACKLOG_REQUESTS {
                        debug!("channel queue full: dropping the copy of a request");
                        return;
                    }
                    self.held.backlog_requests += 1;
                }
                self.held.backlog.push_back(msg);
                return;
            }
        };
        match &mut self.held.merging {
            Some((open_ext, buf)) if *open_ext == ext => buf.extend_from_slice(&data),
            _ => {
                self.seal();
                let mut buf = BytesMut::with_capacity(MERGE_BELOW);
                buf.extend_from_slice(&data);
                self.held.merging = Some((ext, buf));
            }
        }
    }

    /// Ends the run of small data being merged: it becomes one message.
    fn seal(&mut self) {
        if let Some((ext, buf)) = self.held.merging.take() {
            let data = buf.freeze();
            self.held.backlog.push_back(match ext {
                None => ChannelMsg::Data { data },
                Some(ext) => ChannelMsg::ExtendedData { data, ext },
            });
        }
    }

    /// Moves held messages into the channel's queue while it has room.
    pub(crate) fn pump(&mut self) {
        loop {
            if self.held.backlog.is_empty() {
                self.seal();
            }
            let Some(msg) = self.held.backlog.pop_front() else {
                break;
            };
            let request = is_request(&msg);
            match self.sender.try_send(msg) {
                Ok(()) => {}
                Err(TrySendError::Closed(msg)) => self.credit.discard(data_len(&msg)),
                Err(TrySendError::Full(msg)) => {
                    self.held.backlog.push_front(msg);
                    return;
                }
            }
            if request {
                self.held.backlog_requests -= 1;
            }
        }
        self.credit.set_backlogged(false);
    }

    /// Ends the channel: the reader gets what is held, then `Close`. When
    /// that has to wait for the reader, a task waits instead of the session.
    pub(crate) fn close(mut self) {
        self.seal();
        self.held.backlog.push_back(ChannelMsg::Close);
        self.pump();
        if self.held.backlog.is_empty() {
            return;
        }
        let Self { sender, held, .. } = self;
        let backlog = held.backlog;
        russh_util::runtime::spawn(async move {
            for msg in backlog {
                if sender.send(msg).await.is_err() {
                    break;
                }
            }
        });
    }
}

fn data_len(msg: &ChannelMsg) -> usize {
    match msg {
        ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. } => data.len(),
        _ => 0,
    }
}

fn is_request(msg: &ChannelMsg) -> bool {
    !matches!(
        msg,
        ChannelMsg::Data { .. }
            | ChannelMsg::ExtendedData { .. }
            | ChannelMsg::Eof
            | ChannelMsg::Close
    )
}

impl std::ops::Deref for ChannelRef {
    type Target = Sender<ChannelMsg>;

    fn deref(&self) -> &Self::Target {
        &self.sender
    }
}
