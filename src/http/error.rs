//! What can go wrong on an HTTP request, and the status each failure gets.
//!
//! One enum so every route answers the same way: the status says what kind
//! of failure it was (400 the request is wrong, 403 the topic is not yours,
//! 504 nobody came), and the body is the same one-line message an SSH client
//! would see on stderr, so the two front ends never drift apart.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::broker::BrokerError;
use crate::topic::TopicError;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The topic name is not valid (SPEC §7); never silently rewritten.
    #[error(transparent)]
    Topic(#[from] TopicError),
    /// A bad query parameter (`?timeout=`, `?access=`, a boolean, `?mime=`).
    #[error("{0}")]
    BadRequest(String),
    #[error("access denied")]
    AccessDenied,
    /// The server is full (too many topics): try again later.
    #[error("{0}")]
    Unavailable(String),
    /// A blocking POST waited `?timeout=` for a receiver and none came.
    #[error("timeout reached, exiting")]
    Timeout,
    #[error("server shutting down")]
    ShuttingDown,
    /// The request body broke off (the client went away or sent garbage).
    #[error("reading the request body: {0}")]
    Body(std::io::Error),
}

impl HttpError {
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::Topic(_) | HttpError::BadRequest(_) | HttpError::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::AccessDenied => StatusCode::FORBIDDEN,
            HttpError::Unavailable(_) | HttpError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            HttpError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl From<BrokerError> for HttpError {
    fn from(e: BrokerError) -> Self {
        match e {
            BrokerError::AccessDenied => HttpError::AccessDenied,
            // Too many topics, or anything a newer broker adds: try later.
            e => HttpError::Unavailable(e.to_string()),
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = format!("{self}\n");
        (
            self.status(),
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    }
}
