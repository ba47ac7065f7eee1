//! sshpipe: networked Unix pipes over SSH.
//!
//! `tail -f app.log | ssh host pub logs` on one machine, `ssh host sub logs`
//! on another. The crate is split so that each part has one job:
//!
//! - `cli`, `config`, `server`: options → a checked, running server.
//! - `command`, `topic`, `identity`: pure logic — exec strings to typed
//!   commands, topic names to namespaces and access decisions, keys to
//!   users. No I/O, tested by tables and properties.
//! - `broker`: moves bytes between senders and receivers with the delivery
//!   rules of SPEC §5. It knows nothing of SSH or HTTP, so another front end
//!   or a multi-node backend can sit on the same API.
//! - `ssh`: a thin russh handler that hands each command to its own task.
//! - `http`: the HTTP/WebSocket/SSE side door (axum) on the same broker
//!   API, so browsers and `curl` meet SSH users on public topics.
//! - `store`: the embedded durable store (redb): access lists and queued
//!   messages that must survive a crash. Only the broker talks to it.
//! - `logs`, `metrics`: what the server tells about itself — each user's
//!   own log lines, live (`ssh host logs`), and `/metrics` for Prometheus.
#![forbid(unsafe_code)]

pub mod app;
pub mod broker;
pub mod cli;
pub mod command;
pub mod config;
pub mod front;
pub mod hostkey;
pub mod http;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod server;
pub mod ssh;
pub mod store;
pub mod topic;
