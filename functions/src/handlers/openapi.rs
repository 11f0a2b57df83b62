//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of every endpoint, request, response and
//! error code. The document is `functions/openapi.json`, embedded minified at build time (build.rs); the end-to-end
//! suite validates the responses it sees against it (tests/e2e/zz-openapi.test.mjs).

use crate::context::Cx;
use crate::respond;
use shared::ApiError;
use web_sys::Response;

const DOCUMENT: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.min.json"));

pub async fn handle(_cx: Cx) -> Result<Response, ApiError> {
    let resp = respond::json(200, DOCUMENT.to_owned());
    let _ = resp.headers().set("cache-control", "public, max-age=300");
    Ok(resp)
}
