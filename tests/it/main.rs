//! The integration tests, as one test binary: every file here is a module,
//! so `tests/common` and the crate are compiled and linked once, not once
//! per file. Each module runs the real server on 127.0.0.1 port 0 and
//! drives it with real clients.
//!
//! `tests/logs.rs` stays a binary of its own: it installs this process's
//! tracing subscriber, which would otherwise see every other test's server.
//! Run one file's tests with `cargo test --test it MODULE::`.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod attacks;
mod bench_quick;
mod cluster;
mod cluster_delivery;
mod cluster_failures;
mod cluster_lists;
mod cluster_login;
mod cluster_monitors;
mod cluster_queue;
mod cluster_tls;
mod commands;
mod conformance;
mod delivery;
mod durability;
mod flow_control;
mod host_key;
mod http;
mod http_limits;
mod interop;
mod keepalive;
mod keys;
mod lossy;
mod metrics;
mod monitors;
mod nats_cluster;
mod patterns;
mod queue;
mod round_robin;
mod security;
mod shutdown;
mod slow_receivers;
mod smoke;
mod ssh_behaviour;
mod store_integrity;
mod tokens;
