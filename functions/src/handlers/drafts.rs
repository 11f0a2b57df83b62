//! `POST /v1/drafts` (a visitor saves a prompt before signing in) and `POST /v1/drafts/claim`
//! (after sign-in, the one-time claim token attaches the draft to the user).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use shared::ApiError;
use web_sys::Response;

/// `POST /v1/drafts`. `options` is passed through as JSON; the RPC checks its size, the edge that
/// it is an object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDraft<'a> {
    prompt: String,
    template: Option<String>,
    #[serde(borrow)]
    options: Option<&'a RawValue>,
}

#[derive(Serialize)]
struct CreateArgs<'a> {
    p_prompt: &'a str,
    p_template: Option<&'a str>,
    p_options: &'a RawValue,
}

/// `POST /v1/drafts/claim`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Claim {
    claim_token: String,
}

/// Name of the rate-limiting binding for draft creation (per client IP).
const DRAFTS_RATE_LIMITER: &str = "DRAFTS_RATE_LIMITER";

pub async fn create(mut cx: Cx) -> Result<Response, ApiError> {
    require_anon_key(&cx)?;
    rate_limit(&cx).await?;
    let text = cx.body_text().await?;
    let body: NewDraft<'_> = shared::input::body(&text)?;
    let empty = RawValue::from_string("{}".to_owned()).map_err(|e| ApiError::internal().because(e.to_string()))?;
    let options = match body.options {
        Some(o) if o.get().starts_with('{') => o,
        Some(_) => return Err(ApiError::invalid_field("options", "options must be an object.")),
        None => &empty,
    };
    let args = CreateArgs { p_prompt: &body.prompt, p_template: body.template.as_deref(), p_options: options };
    let args = serde_json::to_string(&args).map_err(|e| ApiError::internal().because(e.to_string()))?;
    db::rpc_response(&cx.cfg, Caller::Anon, "create_draft", &args, 201).await
}

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let text = cx.body_text().await?;
    let body: Claim = shared::input::body(&text)?;
    let args = json!({ "p_claim_token": body.claim_token }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "claim_draft", &args, 200).await
}

/// Visitors have no token; they must present the project's anon (publishable) key in `apikey`,
/// as Supabase client libraries do.
fn require_anon_key(cx: &Cx) -> Result<(), ApiError> {
    let expected =
        cx.cfg.anon_key.as_deref().ok_or_else(|| ApiError::internal().because("SUPABASE_ANON_KEY is not set"))?;
    let given = cx.header("apikey").unwrap_or_default();
    if !shared::input::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized("invalid_api_key", "Send the project's anon key in the apikey header."));
    }
    Ok(())
}

/// Per client IP, through the Workers rate-limiting binding.
async fn rate_limit(cx: &Cx) -> Result<(), ApiError> {
    let ip = cx.header("cf-connecting-ip").unwrap_or_else(|| "unknown".into());
    let arg = crate::bindings::object(&json!({ "key": ip }));
    match crate::bindings::call(&cx.env, DRAFTS_RATE_LIMITER, "limit", &[arg]).await {
        Ok(outcome)
            if js_sys::Reflect::get(&outcome, &"success".into()).ok().and_then(|v| v.as_bool()) == Some(false) =>
        {
            let mut err = ApiError::new(429, "rate_limited", "Too many drafts from this address; retry in a minute.");
            err.retry_after = Some(60);
            Err(err)
        }
        Ok(_) => Ok(()),
        // A missing or failing limiter does not block visitors (drafts cost no credits); it is logged.
        Err(why) => {
            crate::log::error(
                crate::log::event("rate_limiter_unavailable").str("binding", DRAFTS_RATE_LIMITER).str("reason", why),
            );
            Ok(())
        }
    }
}
