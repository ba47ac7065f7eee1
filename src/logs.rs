//! `ssh host logs` (SPEC §12): the server's own log lines, live, as JSON,
//! for the user they concern.
//!
//! The server already says what happens through `tracing` events (session
//! start and end, refused keys, limits). Rather than a second, parallel way
//! of reporting, a tracing [`Layer`](tracing_subscriber::Layer) sees every
//! event once, finds whose it is (its `user` field, on the event or on a
//! span it happens in), and hands the rendered line to the readers of that
//! user — and to admins reading `--all`.
//!
//! The one rule that shapes it: a reader must never slow the server. An
//! event is emitted on whatever thread did the work (often inside a lock or
//! the SSH read loop), so the layer never waits: each reader has a small
//! bounded queue, a line that does not fit is dropped and counted, and the
//! reader is told `skipped N lines` at the point where they went missing.
//! When nobody reads, an event costs one atomic load.
//!
//! - `hub`: who reads which lines; the bounded queues and skip counts.
//! - `layer`: the tracing layer: fields from the event and its spans.
//! - `line`: one event as one JSON object with an RFC 3339 time.

mod hub;
mod layer;
mod line;

pub use hub::{LogHub, LogItem, LogStream, QUEUE_LINES, Scope};
pub use layer::{LogLayer, layer};
