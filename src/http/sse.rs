//! `GET /sse/{t}`: `sub -p t` as Server-Sent Events for browsers'
//! `EventSource`, one `data:` event per line.
//!
//! Chunks do not respect lines, so a partial line is held until its newline
//! arrives (or the stream ends). Empty lines are skipped: an event with
//! empty data is never dispatched by browsers anyway.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, stream};
use tokio_util::sync::CancellationToken;

use super::error::HttpError;
use super::query::Params;
use super::topic::next_chunk;
use super::{HttpState, subscribe};
use crate::broker::Reader;

/// `GET /sse/{t}`; `?persist=true` → `-k`. Keep-alive comments every 15 s
/// stop proxies from cutting an idle stream.
pub async fn handler(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(typed): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let params = Params::parse(query.as_deref())?;
    let reader = subscribe(&state, peer, &typed, &params)?;
    let events = events(reader, state.app.shutdown.clone());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Cuts a byte stream into lines.
#[derive(Debug, Default)]
pub struct Lines {
    partial: Vec<u8>,
}

impl Lines {
    /// The complete lines in `chunk` (with what was held before), without
    /// their `\n` or `\r\n`; the rest is held.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            out.push(line_text(&std::mem::take(&mut self.partial)));
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        out
    }

    /// What is held, as a last line (at the end of the stream).
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| line_text(&std::mem::take(&mut self.partial)))
    }
}

fn line_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

struct Cursor {
    sub: Reader,
    stop: CancellationToken,
    lines: Lines,
    ready: VecDeque<String>,
    ended: bool,
}

fn events(
    sub: Reader,
    stop: CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let start = Cursor {
        sub,
        stop,
        lines: Lines::default(),
        ready: VecDeque::new(),
        ended: false,
    };
    stream::unfold(start, |mut st| async move {
        loop {
            if let Some(line) = st.ready.pop_front() {
                return Some((Ok(Event::default().data(line)), st));
            }
            if st.ended {
                return None;
            }
            let next = tokio::select! {
                biased;
                () = st.stop.cancelled() => None,
                c = next_chunk(&mut st.sub) => c,
            };
            let lines = match next {
                Some(chunk) => st.lines.push(&chunk),
                None => {
                    st.ended = true;
                    st.lines.finish().into_iter().collect()
                }
            };
            st.ready.extend(lines.into_iter().filter(|l| !l.is_empty()));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::Lines;

    #[test]
    fn holds_partial_lines() {
        let mut l = Lines::default();
        assert_eq!(l.push(b"a\nb"), vec!["a"]);
        assert_eq!(l.push(b"c\r\n\nd"), vec!["bc", ""]);
        assert_eq!(l.finish().as_deref(), Some("d"));
        assert_eq!(l.finish(), None);
    }
}
