//! `GET /sse/{t}`: `sub -p t` as Server-Sent Events for browsers'
//! `EventSource`, one `data:` event per line.
//!
//! Chunks do not respect lines, so a partial line is held until its newline
//! arrives (or the stream ends, or the queued message it belongs to: a
//! message's last line is its own, and the message is removed only once
//! every event of it went out). Empty lines are skipped: an event with
//! empty data is never dispatched by browsers anyway.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, stream};
use tokio_util::sync::CancellationToken;

use super::caller::identify;
use super::error::HttpError;
use super::query::Params;
use super::topic::next_piece;
use super::{HttpState, subscribe};
use crate::app::App;
use crate::broker::{Delivery, LineSplitter, Piece, Reader};

/// `GET /sse/{t}`; `?persist=true` → `-k`. Keep-alive comments every 15 s
/// stop proxies from cutting an idle stream.
pub async fn handler(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(typed): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let params = Params::parse(query.as_deref())?;
    let caller = identify(&state.app, &headers, &params)?;
    let (_, reader) = subscribe(
        &state,
        &caller,
        peer,
        &typed,
        &params,
        params.flag("persist")?,
    )
    .await?;
    // Ends with the server, or at once when the token is revoked.
    let events = events(reader, caller.stop.clone(), Arc::clone(&state.app));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The longest event: a longer line is sent as several events. Browsers
/// buffer a whole event before dispatching it, and every SSE client would
/// otherwise be able to make the server hold a partial line of 16 MiB.
const MAX_EVENT: usize = 1 << 20;

/// An event's text: the line without its `\n` or `\r\n`.
fn line_text(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    String::from_utf8_lossy(line).into_owned()
}

struct Cursor {
    sub: Reader,
    stop: CancellationToken,
    /// Holds a partial line until its newline, but never more than
    /// `MAX_EVENT`: a stream without newlines goes out in pieces rather
    /// than growing this buffer without bound.
    lines: LineSplitter,
    ready: VecDeque<Event>,
    /// A queued message whose events are in `ready`: removed once they
    /// went out (see `topic::next_chunk`).
    written: Option<Delivery>,
    ended: bool,
    /// Counts the bytes sent (`sshpipe_bytes_total`).
    app: Arc<App>,
}

fn events(
    sub: Reader,
    stop: CancellationToken,
    app: Arc<App>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send {
    let start = Cursor {
        sub,
        stop,
        lines: LineSplitter::with_limit(MAX_EVENT),
        ready: VecDeque::new(),
        written: None,
        ended: false,
        app,
    };
    stream::unfold(start, |mut st| async move {
        loop {
            if let Some(event) = st.ready.pop_front() {
                return Some((Ok(event), st));
            }
            if let Some(delivery) = st.written.take() {
                delivery.confirm().await.run().await;
            }
            if st.ended {
                return None;
            }
            let next = tokio::select! {
                biased;
                () = st.stop.cancelled() => Ok(None),
                c = next_piece(&mut st.sub) => c,
            };
            let (lines, failed) = match next {
                Ok(Some(Piece::Data(chunk))) => {
                    st.app.metrics.add_bytes(0, chunk.len() as u64);
                    (st.lines.push(chunk), None)
                }
                Ok(Some(Piece::Written(delivery))) => {
                    st.written = Some(delivery);
                    (st.lines.finish().into_iter().collect(), None)
                }
                Ok(None) => {
                    st.ended = true;
                    (st.lines.finish().into_iter().collect(), None)
                }
                Err(e) => {
                    st.ended = true;
                    (st.lines.finish().into_iter().collect(), Some(e))
                }
            };
            st.ready.extend(
                lines
                    .iter()
                    .map(|l| line_text(l))
                    .filter(|l| !l.is_empty())
                    .map(|l| Event::default().data(l)),
            );
            // What arrived went out first; an `error` event then says the
            // stream is not whole (SPEC §5.3).
            if let Some(e) = failed {
                st.ready
                    .push_back(Event::default().event("error").data(e.to_string()));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::line_text;
    use crate::broker::LineSplitter;
    use bytes::Bytes;

    fn events(l: &mut LineSplitter, chunk: &'static [u8]) -> Vec<String> {
        l.push(Bytes::from_static(chunk))
            .iter()
            .map(|b| line_text(b))
            .collect()
    }

    #[test]
    fn holds_partial_lines_and_drops_line_ends() {
        let mut l = LineSplitter::default();
        assert_eq!(events(&mut l, b"a\nb"), vec!["a"]);
        assert_eq!(events(&mut l, b"c\r\n\nd"), vec!["bc", ""]);
        assert_eq!(l.finish().map(|b| line_text(&b)).as_deref(), Some("d"));
        assert_eq!(l.finish(), None);
    }

    #[test]
    fn a_stream_without_newlines_goes_out_in_max_event_pieces() {
        let mut l = LineSplitter::with_limit(super::MAX_EVENT);
        let chunk = Bytes::from(vec![b'x'; 64 << 10]);
        let mut sizes = Vec::new();
        for _ in 0..(3 * super::MAX_EVENT / chunk.len()) {
            sizes.extend(l.push(chunk.clone()).iter().map(|b| b.len()));
        }
        assert_eq!(sizes, vec![super::MAX_EVENT; 3]);
        assert_eq!(l.finish(), None);
    }
}
