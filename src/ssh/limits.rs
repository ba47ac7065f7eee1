//! The SSH limits of SPEC §9 and the counters that enforce them.
//!
//! Every limit is checked as early and as cheaply as possible: a connection
//! over a cap is closed before any crypto runs, a session over a cap is
//! answered with one line before any broker work. The counters are plain
//! maps behind a mutex held for a few instructions; a guard gives its slot
//! back when dropped, so no error path can leak a count.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Limits of SPEC §9 that the SSH side enforces.
#[derive(Debug, Clone)]
pub struct SshLimits {
    /// Open SSH connections, authenticated or not.
    pub max_connections: usize,
    /// Connections per source IP that have not finished authentication.
    pub max_handshakes_per_ip: usize,
    /// From TCP accept to successful authentication.
    pub auth_timeout: Duration,
    pub max_auth_attempts: usize,
    /// Longest exec string, in bytes.
    pub max_exec_bytes: usize,
    /// Commands one user may run at once, over all connections.
    pub max_sessions_per_user: usize,
    /// Session channels open at once on one connection.
    pub max_channels_per_connection: usize,
    /// Requests a channel may send before its command (SPEC §9).
    pub max_channel_requests: usize,
    pub keepalive_interval: Duration,
    pub keepalive_max: usize,
}

impl SshLimits {
    /// The SSH limits a command line sets.
    pub fn from_args(a: &crate::config::ServeArgs) -> Self {
        SshLimits {
            max_connections: a.max_connections,
            max_handshakes_per_ip: a.max_handshakes_per_ip,
            auth_timeout: a.auth_timeout,
            max_auth_attempts: a.max_auth_attempts,
            max_exec_bytes: a.max_exec_bytes,
            max_sessions_per_user: a.max_sessions_per_user,
            max_channels_per_connection: a.max_channels_per_connection,
            max_channel_requests: a.max_channel_requests,
            keepalive_interval: a.keepalive_interval,
            keepalive_max: a.keepalive_max as usize,
        }
    }
}

/// The command line's defaults: written once, in `config`'s attributes.
impl Default for SshLimits {
    fn default() -> Self {
        SshLimits::from_args(&crate::config::ServeArgs::defaults())
    }
}

/// Live counts per key (source IP, user name) with a cap.
#[derive(Debug)]
pub struct Counter<K: Eq + Hash + Clone> {
    max: usize,
    live: Mutex<HashMap<K, usize>>,
}

/// One counted slot; dropping it gives the slot back.
#[derive(Debug)]
pub struct Slot<K: Eq + Hash + Clone> {
    counter: Arc<Counter<K>>,
    key: K,
}

impl<K: Eq + Hash + Clone> Counter<K> {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Counter {
            max,
            live: Mutex::new(HashMap::new()),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A slot for `key`, or `None` when `key` already holds `max`.
    pub fn try_acquire(self: &Arc<Self>, key: K) -> Option<Slot<K>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let n = live.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Slot {
            counter: Arc::clone(self),
            key,
        })
    }

    /// Slots now held for `key`.
    #[cfg(test)]
    pub fn count(&self, key: &K) -> usize {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(key).copied().unwrap_or(0)
    }
}

impl<K: Eq + Hash + Clone> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut live = self.counter.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = live.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                // Keep the map as small as the set of live keys.
                live.remove(&self.key);
            }
        }
    }
}

/// The counters every connection shares.
#[derive(Debug)]
pub struct Shared {
    pub limits: SshLimits,
    pub handshakes: Arc<Counter<IpAddr>>,
    pub sessions: Arc<Counter<String>>,
    /// Log lines for refused or dropped connections (see `loglimit`).
    pub refusal_logs: super::loglimit::LogLimit,
}

impl Shared {
    pub fn new(limits: SshLimits) -> Arc<Self> {
        Arc::new(Shared {
            handshakes: Counter::new(limits.max_handshakes_per_ip),
            sessions: Counter::new(limits.max_sessions_per_user),
            refusal_logs: super::loglimit::LogLimit::per_second(),
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_per_key_and_given_back_on_drop() {
        let c = Counter::new(2);
        let a1 = c.try_acquire("a");
        let a2 = c.try_acquire("a");
        assert!(a1.is_some() && a2.is_some());
        assert!(c.try_acquire("a").is_none());
        assert!(c.try_acquire("b").is_some(), "other keys are independent");
        drop(a1);
        assert_eq!(c.count(&"a"), 1);
        assert!(c.try_acquire("a").is_some());
        drop(a2);
        assert_eq!(c.count(&"a"), 0);
    }
}
