//! The SSH side of the broker's byte traits: a channel's stdin as a
//! `ByteSource`, `pub -e`'s empty input, and the status lines of SPEC §4.2
//! as a `StageSink`. Kept apart so the pub/sub/pipe glue reads as the
//! command's steps, not as adapter code.

use std::io;

use bytes::Bytes;
use russh::{ChannelMsg, ChannelReadHalf};

use super::out::Out;
use crate::broker::{ByteSource, PubStage, StageSink};

/// Stdin of an SSH channel as a stream of chunks (zero-copy `Bytes`).
pub(super) struct ChannelSource<'a>(pub &'a mut ChannelReadHalf);

impl ByteSource for ChannelSource<'_> {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.0.wait().await {
                Some(ChannelMsg::Data { data }) => return Ok(Some(data)),
                Some(ChannelMsg::Eof) => return Ok(None),
                Some(ChannelMsg::Close) | None => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "client gone",
                    ));
                }
                Some(_) => continue,
            }
        }
    }
}

/// Status lines of SPEC §4.2, unless `-c`.
pub(super) struct StatusLines<'a> {
    pub out: &'a mut Out,
    pub clean: bool,
}

impl StageSink for StatusLines<'_> {
    async fn stage(&mut self, stage: PubStage) {
        if self.clean {
            return;
        }
        let line = match stage {
            PubStage::Waiting(t) => {
                format!(
                    "no subs found ... waiting {}",
                    crate::command::format_duration(t)
                )
            }
            PubStage::Sending => "sending msg ...".to_string(),
        };
        let _ = self.out.line(&line).await;
    }
}

/// The input of `pub -e`: nothing at all.
pub(super) struct NoInput;

impl ByteSource for NoInput {
    async fn next_chunk(&mut self) -> io::Result<Option<Bytes>> {
        Ok(None)
    }
}
