//! The HTTP limits of SPEC §11.2 and the open-files budget behind them.
//!
//! Every HTTP connection costs a file descriptor, and so does every SSH
//! connection: if HTTP could take them all, an HTTP flood would stop SSH
//! from accepting (EMFILE) and the store from opening files. So at start
//! the soft `RLIMIT_NOFILE` is raised to the hard limit, and HTTP may hold
//! at most half of it, whatever `--max-http-connections` says; the other
//! half is SSH's, the store's and the process's own.

use std::time::Duration;

/// TCP keepalive on every HTTP connection: first probe after this much
/// silence, then every `KEEPALIVE_INTERVAL`, `KEEPALIVE_RETRIES` times, so
/// a peer that vanished without a FIN is gone within about a minute.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_RETRIES: u32 = 3;

/// The HTTP side's limits, from the command line.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// `--max-http-connections`.
    pub max_connections: usize,
    /// `--http-header-timeout`: connect to a complete first request head.
    pub header_timeout: Duration,
    /// `--http-idle-timeout`: between requests on a kept-alive connection.
    pub idle_timeout: Duration,
    /// `--http-anonymous`; `None`: true under `--auth open`, false under
    /// `--auth users`.
    pub anonymous: Option<bool>,
}

impl HttpLimits {
    pub fn from_args(a: &crate::config::ServeArgs) -> Self {
        HttpLimits {
            max_connections: usize::try_from(a.max_http_connections).unwrap_or(usize::MAX),
            header_timeout: a.http_header_timeout,
            idle_timeout: a.http_idle_timeout,
            anonymous: a.http_anonymous,
        }
    }
}

impl Default for HttpLimits {
    /// What an empty command line gives: the defaults live once, in the
    /// clap attributes of `ServeArgs` (the environment applies, as it
    /// would for the program).
    fn default() -> Self {
        use clap::Parser as _;
        HttpLimits::from_args(&crate::config::Cli::parse_from(["sshpipe"]).into_serve())
    }
}

/// Raises the soft open-files limit to the hard one (SPEC §2) and returns
/// the soft limit now in force (`None` if it cannot be read).
pub fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    // An unlimited hard limit cannot be the soft one for files (Linux caps
    // it at fs.nr_open); 2^20 is the usual nr_open.
    let target = hard.min(1 << 20);
    if soft >= target {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
        Ok(()) => Some(target),
        Err(e) => {
            tracing::warn!(error = %e, soft, hard, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

/// How many connections HTTP may hold with `open_files` descriptors:
/// `--max-http-connections`, but never more than half of them.
pub fn connection_budget(max_connections: usize, open_files: Option<u64>) -> usize {
    let half = open_files.map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX));
    max_connections.min(half).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_never_gets_more_than_half_the_descriptors() {
        let table = [
            (10_000, Some(1_048_576), 10_000),
            (10_000, Some(1024), 512),
            (500, Some(20_000), 500),
            (10_000, None, 10_000),
            (10, Some(1), 1),
        ];
        for (max, files, want) in table {
            assert_eq!(connection_budget(max, files), want, "{max} {files:?}");
        }
    }

    #[test]
    fn raising_keeps_a_limit_at_least_as_high() {
        use nix::sys::resource::{Resource, getrlimit};
        let before = getrlimit(Resource::RLIMIT_NOFILE)
            .map(|(s, _)| s)
            .unwrap_or(0);
        let after = raise_open_files_limit().unwrap_or(0);
        assert!(after >= before);
    }
}
