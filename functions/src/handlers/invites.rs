//! Invites (issue 13; rules in migrations/README.md, "Invites").
//!
//! - `GET /v1/invites` (user): the caller's invite code, tier, successful invitees, the next reward,
//!   the monthly cap and what was rewarded this month, the invite the caller redeemed, and its
//!   invitees' status (never their ids).
//! - `POST /v1/invites/redeem` (user; `Idempotency-Key` required; body `{"code"}`): redeems a code
//!   once, within 7 days of sign-up. The same code again answers the same redemption with
//!   `Idempotent-Replayed: true`; every refusal (own code, a loop, a second code, after a purchase,
//!   after the window) is a stable error code and writes nothing. The inviter is rewarded later,
//!   by the database, when this user's first purchase is paid.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::respond;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::ApiError;
use web_sys::Response;

/// `POST /v1/invites/redeem`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeemRequest {
    code: String,
}

pub async fn get(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_invites", "{}", 200).await
}

pub async fn redeem(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    let text = cx.body_text().await?;
    let body: RedeemRequest = shared::input::body(&text)?;
    // The format rule lives in the RPC; the edge only keeps absurd input away from it.
    if body.code.is_empty() || body.code.len() > 64 {
        return Err(ApiError::invalid_field("code", "code must be an invite code (8 letters and digits)."));
    }
    let args = json!({ "p_code": body.code, "p_idempotency_key": key }).to_string();
    let raw = db::rpc(&cx.cfg, Caller::User(&user.token), "redeem_invite", &args).await?;
    let answer: Value = serde_json::from_str(&raw)
        .map_err(|e| ApiError::internal().because(format!("redeem_invite answered non-JSON: {e}")))?;
    let replayed = answer.get("replayed").and_then(Value::as_bool).unwrap_or(false);
    let resp = respond::json(200, raw);
    if replayed {
        let _ = resp.headers().set("idempotent-replayed", "true");
    }
    Ok(resp)
}
