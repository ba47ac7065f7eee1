//! One error type for everything a command can fail with, whatever the
//! front end: the line a client reads is the same over SSH and HTTP, and
//! each failure says once which exit status (SPEC §4.3), HTTP status and
//! WebSocket close code it gets.

use crate::broker::{BrokerError, QueueError, ReadError};
use crate::topic::TopicError;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The request itself is wrong: a bad topic name, access list or flag
    /// value. SSH adds the command's usage and exits 2.
    #[error("{0}")]
    BadArgument(String),
    #[error("access denied")]
    AccessDenied,
    /// HTTP: no token where one is needed, or a wrong, expired or revoked
    /// one (401).
    #[error("{0}")]
    Unauthorized(String),
    /// HTTP: a valid token (or none) that may not do this: out of scope,
    /// read-only, an access list without a token (403).
    #[error("{0}")]
    Forbidden(String),
    /// The server cannot take it now (too many topics, the store failed).
    #[error("{0}")]
    Unavailable(String),
    /// `queue full: …`, or queued messages are off.
    #[error("{0}")]
    Queue(QueueError),
    /// A blocking pub waited its timeout for a receiver and none came.
    #[error("timeout reached, exiting")]
    Timeout,
    #[error("server shutting down")]
    ShuttingDown,
    /// A sub's stream is not whole (a sender vanished, a stored message
    /// could not be read).
    #[error("{0}")]
    Read(ReadError),
    /// The client's input broke off.
    #[error("reading the request body: {0}")]
    Body(std::io::Error),
}

impl Failure {
    /// The SSH exit status (SPEC §4.3): 2 for usage errors, 1 for the rest.
    pub fn exit_code(&self) -> u32 {
        match self {
            Failure::BadArgument(_) => 2,
            _ => 1,
        }
    }

    /// The HTTP status: 400 the request is wrong, 403 the topic is not
    /// yours, 503 try later, 504 nobody came, 507 the queue is full.
    pub fn http_status(&self) -> u16 {
        match self {
            Failure::BadArgument(_) | Failure::Body(_) => 400,
            Failure::AccessDenied | Failure::Forbidden(_) => 403,
            Failure::Unauthorized(_) => 401,
            Failure::Queue(QueueError::Full(_)) => 507,
            Failure::Unavailable(_)
            | Failure::ShuttingDown
            | Failure::Queue(_)
            | Failure::Read(_) => 503,
            Failure::Timeout => 504,
        }
    }

    /// The WebSocket close code: 1008 policy (denied, bad request), 1001
    /// going away (shutdown), 1013 try again later, 1011 the rest.
    pub fn close_code(&self) -> u16 {
        match self {
            Failure::AccessDenied
            | Failure::BadArgument(_)
            | Failure::Unauthorized(_)
            | Failure::Forbidden(_) => 1008,
            Failure::ShuttingDown => 1001,
            Failure::Unavailable(_) | Failure::Queue(_) | Failure::Timeout => 1013,
            Failure::Read(_) | Failure::Body(_) => 1011,
        }
    }
}

/// Every monitor failure (too many, none there, not stored) is exit 1.
impl From<crate::monitor::MonitorError> for Failure {
    fn from(e: crate::monitor::MonitorError) -> Self {
        Failure::Unavailable(e.to_string())
    }
}

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::AccessDenied => Failure::AccessDenied,
            e => Failure::Unavailable(e.to_string()),
        }
    }
}

impl From<TopicError> for Failure {
    fn from(e: TopicError) -> Self {
        Failure::BadArgument(e.to_string())
    }
}

impl From<QueueError> for Failure {
    fn from(e: QueueError) -> Self {
        Failure::Queue(e)
    }
}

impl From<ReadError> for Failure {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Join(e) => e.into(),
            e => Failure::Read(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_codes() {
        let table: Vec<(Failure, u32, u16, u16)> = vec![
            (Failure::BadArgument("x".into()), 2, 400, 1008),
            (Failure::AccessDenied, 1, 403, 1008),
            (Failure::Unauthorized("x".into()), 1, 401, 1008),
            (Failure::Forbidden("x".into()), 1, 403, 1008),
            (Failure::Unavailable("x".into()), 1, 503, 1013),
            (Failure::Queue(QueueError::Full("x".into())), 1, 507, 1013),
            (Failure::Timeout, 1, 504, 1013),
            (Failure::ShuttingDown, 1, 503, 1001),
            (Failure::Read(ReadError::SenderVanished), 1, 503, 1011),
        ];
        for (f, exit, http, close) in table {
            assert_eq!(
                (f.exit_code(), f.http_status(), f.close_code()),
                (exit, http, close),
                "{f}"
            );
        }
    }

    #[test]
    fn broker_errors_keep_their_lines() {
        let f = Failure::from(BrokerError::TooManyTopics(3));
        assert_eq!(
            f.to_string(),
            "too many topics on this server (3); try again later"
        );
        assert!(matches!(
            Failure::from(BrokerError::AccessDenied),
            Failure::AccessDenied
        ));
    }
}
