//! Building responses: JSON bodies, the error shape, and the headers every response carries.

use shared::ApiError;
use worker::{Headers, Response};

/// A JSON response with `body` already serialized.
pub fn json(status: u16, body: String) -> Response {
    let headers = Headers::new();
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    Response::from_bytes(body.into_bytes()).map(|r| r.with_status(status).with_headers(headers)).unwrap_or_else(|_| fallback())
}

/// The response for an [`ApiError`].
pub fn error(err: &ApiError) -> Response {
    let resp = json(err.status, err.body());
    if let Some(secs) = err.retry_after {
        let _ = resp.headers().set("retry-after", &secs.to_string());
    }
    resp
}

fn fallback() -> Response {
    Response::empty().map(|r| r.with_status(500)).expect("an empty response can always be built")
}
