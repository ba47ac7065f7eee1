//! `GET /rss/{token}` (SPEC §11.1, §13): a user's monitor feed for feed
//! readers, which cannot send an `Authorization` header, so the token is
//! the path. Any live token of the user may read it, scoped or read-only:
//! the feed holds monitor names and health changes, never topic data.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::monitor;

pub(super) async fn handler(State(state): State<HttpState>, Path(token): Path<String>) -> Response {
    let Ok(grant) = state.app.tokens.authenticate(&token) else {
        return (
            StatusCode::UNAUTHORIZED,
            "invalid, expired or revoked token\n",
        )
            .into_response();
    };
    let link = format!("ssh://{}:{}", state.app.domain, state.app.advertise_port);
    match monitor::feed(&state.app.monitors, &grant.record.user, &link).await {
        Ok(feed) => (
            [(header::CONTENT_TYPE, "application/rss+xml; charset=utf-8")],
            feed,
        )
            .into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
    }
}
