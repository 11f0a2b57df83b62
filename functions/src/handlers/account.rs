//! The caller's own reads: `GET /v1/jobs/{id}` (with steps and assets) and
//! `GET /v1/ledger?before=&limit=` (keyset pagination, newest first).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use serde_json::json;
use shared::ApiError;
use web_sys::Response;

pub async fn job(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let id = cx.params.first().map(String::as_str).unwrap_or_default();
    if !shared::jwt::is_uuid(id) {
        return Err(ApiError::new(404, "not_found", "No such job."));
    }
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_job", &json!({ "p_job_id": id }).to_string(), 200).await
}

pub async fn ledger(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    // The query is read from the raw URL: `Request::url()` would pull the `url` crate and its
    // IDNA tables (about 100 KB gzip) into the bundle for two numeric parameters.
    let raw = cx.req.url();
    let query = raw.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or("")).unwrap_or("");
    let (mut before, mut limit) = (None::<i64>, 50i64);
    for (k, v) in query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))) {
        match k {
            "before" => {
                before = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::invalid_field(
                        "before",
                        "before must be a positive ledger entry id (next_before of the previous page).",
                    )
                })?)
            }
            "limit" => {
                limit =
                    v.parse().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                        ApiError::invalid_field("limit", "limit must be a whole number from 1 to 100.")
                    })?
            }
            _ => return Err(ApiError::invalid_field("query", "Unknown query parameter; use before and limit.")),
        }
    }
    let args = json!({ "p_before": before, "p_limit": limit }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "list_ledger", &args, 200).await
}
