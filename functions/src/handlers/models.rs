//! `GET /v1/models` (public, cacheable): the generation models on offer and their prices in
//! credits (`cost_per_generation + cost_per_minute x target_minutes`), as `list_models` answers
//! them to the anonymous role. Shaped like `GET /v1/packages`.

use crate::context::Cx;
use crate::db::{self, Caller};
use shared::ApiError;
use web_sys::Response;

pub async fn list(cx: Cx) -> Result<Response, ApiError> {
    let resp = db::rpc_response(&cx.cfg, Caller::Anon, "list_models", "{}", 200).await?;
    let _ = resp.headers().set("cache-control", "public, max-age=300");
    Ok(resp)
}
