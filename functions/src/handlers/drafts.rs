//! `POST /v1/drafts` (a visitor saves a prompt before signing in) and `POST /v1/drafts/claim`
//! (after sign-in, the one-time claim token attaches the draft to the user).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use shared::input::{field_error, fields, parse};
use shared::json::Obj;
use shared::ApiError;
use web_sys::Response;

/// Name of the rate-limiting binding for draft creation (per client IP).
const DRAFTS_RATE_LIMITER: &str = "DRAFTS_RATE_LIMITER";

pub async fn create(mut cx: Cx) -> Result<Response, ApiError> {
    require_anon_key(&cx)?;
    rate_limit(&cx).await?;
    let text = cx.body_text().await?;
    let body = parse(&text)?;
    // `options` is passed through as JSON; the RPC checks its size, the edge that it is an object.
    let f = fields(&body, &["prompt", "template", "options"])?;
    let args = Obj::new()
        .str("p_prompt", f.str("prompt").map_err(field_error)?)
        .opt_str("p_template", f.opt_str("template").map_err(field_error)?)
        .raw("p_options", f.opt_object("options").map_err(field_error)?.unwrap_or("{}"))
        .finish();
    db::rpc_response(&cx.cfg, Caller::Anon, "create_draft", &args, 201).await
}

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let text = cx.body_text().await?;
    let body = parse(&text)?;
    let token = fields(&body, &["claim_token"])?.str("claim_token").map_err(field_error)?;
    let args = Obj::new().str("p_claim_token", token).finish();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "claim_draft", &args, 200).await
}

/// Visitors have no token; they must present the project's anon (publishable) key in `apikey`,
/// as Supabase client libraries do.
fn require_anon_key(cx: &Cx) -> Result<(), ApiError> {
    let expected = cx.cfg.anon_key.as_deref().ok_or_else(|| {
        crate::log::error(crate::log::event("config_error").str("error", "SUPABASE_ANON_KEY is not set"));
        ApiError::internal()
    })?;
    let given = cx.header("apikey").unwrap_or_default();
    if !shared::input::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized("invalid_api_key", "Send the project's anon key in the apikey header."));
    }
    Ok(())
}

/// Per client IP, through the Workers rate-limiting binding.
async fn rate_limit(cx: &Cx) -> Result<(), ApiError> {
    let ip = cx.header("cf-connecting-ip").unwrap_or_else(|| "unknown".into());
    let arg = crate::bindings::object(&Obj::new().str("key", &ip).finish());
    match crate::bindings::call(&cx.env, DRAFTS_RATE_LIMITER, "limit", &[arg]).await {
        Ok(outcome) if js_sys::Reflect::get(&outcome, &"success".into()).ok().and_then(|v| v.as_bool()) == Some(false) => {
            let mut err = ApiError::new(429, "rate_limited", "Too many drafts from this address; retry in a minute.");
            err.retry_after = Some(60);
            Err(err)
        }
        Ok(_) => Ok(()),
        // A missing or failing limiter does not block visitors (drafts cost no credits); it is logged.
        Err(why) => {
            crate::log::error(crate::log::event("rate_limiter_unavailable").str("binding", DRAFTS_RATE_LIMITER).str("reason", why));
            Ok(())
        }
    }
}
