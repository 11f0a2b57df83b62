//! `GET /v1/balance`: the caller's available, held and soon-expiring credits.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::respond;
use shared::ApiError;
use worker::Response;

pub async fn handle(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let body = db::rpc(&cx.cfg, Caller::User(&user.token), "get_balance", "{}").await?;
    Ok(respond::json(200, body))
}
