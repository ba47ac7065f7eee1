//! Health monitors (SPEC §13): a dead man's switch per topic. A `pub` or
//! `pipe` that ends well is a ping; a monitor whose window passes without
//! one turns unhealthy, and its owner hears of it on `monitor-alerts`.
//!
//! - `health`, `uptime`, `render`, `time`: pure logic — the verdict from a
//!   window and a ping, the share of a range that was healthy, the status
//!   table, alert line and RSS feed, and the calendar. No I/O, tested by
//!   tables (and a property for uptime).
//! - `service`: the running part — state in memory, the timer, and the
//!   worker that stores changes and publishes alerts through the broker.
//! - `store`: the small trait durable storage implements (the embedded
//!   store's tables are in `store/monitors.rs`).
//! - `shared`: that trait on the NATS KV bucket every node shares, and its
//!   watch (SPEC §14).
//!
//! Front ends reach it through `App::monitors`: the commands in `ssh/`, the
//! ping hook in `front/`, the feed for `GET /rss/{token}` ([`feed`]).

mod health;
mod render;
mod service;
pub mod shared;
mod store;
pub mod time;
mod uptime;

pub use health::{Verdict, evaluate, next_check};
pub use render::{FeedItem, StatusRow, alert_line, rss, status_table};
pub use service::{
    ALERTS_TOPIC, Clock, HISTORY_KEEP, MAX_WINDOW, MIN_WINDOW, MonitorError, MonitorLimits,
    Monitors, PING_WRITE_EVERY, typed_name,
};
pub use store::{MemoryMonitors, MonitorStore, Put};
pub use uptime::{Uptime, render as render_uptime, uptime};

/// `owner`'s RSS 2.0 feed of health changes, as `rss` prints it and as
/// `GET /rss/{token}` will serve it once a token names its user. `link`
/// is the channel's link (the server's address).
pub async fn feed(monitors: &Monitors, owner: &str, link: &str) -> Result<String, MonitorError> {
    let items = monitors.feed_items(owner).await?;
    Ok(rss(owner, link, &items))
}

#[cfg(test)]
mod race_tests;
#[cfg(test)]
mod tests;
