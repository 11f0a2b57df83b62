//! `GET /health`: whether the Worker, PostgREST and the database answer. No internals leak.

use crate::context::Cx;
use crate::{db, respond};
use shared::ApiError;
use web_sys::Response;

pub async fn handle(cx: Cx) -> Result<Response, ApiError> {
    let database = db::ping(&cx.cfg).await;
    let body = format!(r#"{{"status":"{}","database":{}}}"#, if database { "ok" } else { "degraded" }, database);
    Ok(respond::json(if database { 200 } else { 503 }, body))
}
