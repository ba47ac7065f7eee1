//! sshpipe: networked Unix pipes over SSH.
//!
//! `tail -f app.log | ssh host pub logs` on one machine, `ssh host sub logs`
//! on another. Requests flow down, bytes flow through:
//!
//! ```text
//!   ssh/ (russh)      http/ (axum)        wire formats, status lines
//!        \               /
//!         front/                          names, labels, hints, -a, pipes,
//!           |                             one Failure type (exit/HTTP/close)
//!         broker/  intents: open_pub, open_sub, open_pipe, list, access
//!           |      rules: publisher, subscription, reader (SPEC §5, §8)
//!           |--- link::TopicPort      what a backend keeps: members, slots
//!           |      memory/            the in-memory backend (--broker memory)
//!           '--- stores::{AclStore, MessageStore}   durable state, as traits
//!         store/   redb index + checksummed body files (SPEC §10)
//! ```
//!
//! - `cli`, `config`, `server`: options → a checked, running server.
//! - `command`, `topic`, `identity`: pure logic — exec strings to typed
//!   commands, topic names to namespaces and access decisions, keys to
//!   users. No I/O, tested by tables and properties.
//! - `front`: what both front ends do the same way, once.
//! - `broker`: intent-level async operations whose handles carry every
//!   delivery rule; it knows nothing of SSH or HTTP. Below it a backend,
//!   chosen at start-up, keeps live topics; tests/it/conformance.rs is the
//!   suite any backend must pass unchanged.
//! - `ssh`: a thin russh handler that hands each command to its own task.
//! - `http`: the HTTP/WebSocket/SSE side door on the same intents, so
//!   browsers and `curl` meet SSH users on public topics.
//! - `store`: what must survive a crash (access lists, queued messages,
//!   token hashes, monitors). Everything reaches it through a small trait
//!   a NATS backend can implement instead: `broker::AclStore`,
//!   `broker::MessageStore`, `tokens::TokenStore`, `monitor::MonitorStore`.
//!   With `--broker nats://…` access lists and tokens are kept in KV
//!   buckets every node watches (`broker/nats/acls.rs`, `tokens/shared.rs`).
//! - `tokens`: HTTP access tokens (`ssh host token …`), stored as hashes;
//!   an HTTP request with one acts as its user.
//! - `logs`, `metrics`: what the server tells about itself — each user's
//!   own log lines, live (`ssh host logs`), and `/metrics` for Prometheus.
//! - `monitor`: health monitors (SPEC §13) — pings from `front`, a timer,
//!   alerts published through the broker, state in the store.
#![forbid(unsafe_code)]

pub mod app;
pub mod broker;
mod civil;
pub mod cli;
pub mod command;
pub mod config;
pub(crate) mod front;
pub mod hostkey;
pub mod http;
pub mod identity;
pub mod logs;
pub mod metrics;
pub mod monitor;
pub mod server;
pub mod ssh;
pub mod store;
pub mod tokens;
pub mod topic;
