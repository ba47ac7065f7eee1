//! HTTP answers for the shared `front::Failure`: its status, and as the
//! body the same one-line message an SSH client would see on stderr, so the
//! two front ends never drift apart.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use crate::front::Failure as HttpError;

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = format!("{self}\n");
        let mut response = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
