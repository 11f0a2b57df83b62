//! `GET /v1/balance`: the caller's available, held and soon-expiring credits.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use shared::ApiError;
use web_sys::Response;

pub async fn handle(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_balance", "{}", 200).await
}
