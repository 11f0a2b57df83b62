//! `POST /v1/drafts` (a visitor saves a prompt before signing in) and `POST /v1/drafts/claim`
//! (after sign-in, the one-time claim token attaches the draft to the user).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::respond;
use serde::Deserialize;
use serde_json::value::RawValue;
use shared::json::Obj;
use shared::ApiError;
use worker::Response;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewDraft {
    prompt: String,
    #[serde(default)]
    template: Option<String>,
    /// Passed through as JSON; the RPC checks its size, the edge that it is an object.
    #[serde(default)]
    options: Option<Box<RawValue>>,
}

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
    let draft: NewDraft = cx.json_body().await?;
    let options = draft.options.as_deref().map_or("{}", RawValue::get);
    if !options.starts_with('{') {
        return Err(ApiError::invalid_field("options", "options must be a JSON object."));
    }
    let args = Obj::new().str("p_prompt", &draft.prompt).opt_str("p_template", draft.template.as_deref()).raw("p_options", options).finish();
    let body = db::rpc(&cx.cfg, Caller::Anon, "create_draft", &args).await?;
    Ok(respond::json(201, body))
}

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let claim: Claim = cx.json_body().await?;
    let args = Obj::new().str("p_claim_token", &claim.claim_token).finish();
    let body = db::rpc(&cx.cfg, Caller::User(&user.token), "claim_draft", &args).await?;
    Ok(respond::json(200, body))
}

/// Visitors have no token; they must present the project's anon (publishable) key in `apikey`,
/// as Supabase client libraries do.
fn require_anon_key(cx: &Cx) -> Result<(), ApiError> {
    let expected = cx.cfg.anon_key.as_deref().ok_or_else(|| {
        worker::console_error!("{{\"event\":\"config_error\",\"error\":\"SUPABASE_ANON_KEY is not set\"}}");
        ApiError::internal()
    })?;
    let given = cx.header("apikey").unwrap_or_default();
    if !shared::input::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(ApiError::unauthorized("invalid_api_key", "Send the project's anon key in the apikey header."));
    }
    Ok(())
}

/// Per client IP, through the Workers rate-limiting binding. Without the binding (a deployment
/// that has not configured one) drafts are not rate limited, which is logged.
async fn rate_limit(cx: &Cx) -> Result<(), ApiError> {
    let Ok(limiter) = cx.env.rate_limiter(DRAFTS_RATE_LIMITER) else {
        worker::console_log!("{{\"event\":\"rate_limiter_missing\",\"binding\":\"{}\"}}", DRAFTS_RATE_LIMITER);
        return Ok(());
    };
    let ip = cx.header("cf-connecting-ip").unwrap_or_else(|| "unknown".into());
    match limiter.limit(ip).await {
        Ok(outcome) if !outcome.success => {
            let mut err = ApiError::new(429, "rate_limited", "Too many drafts from this address; retry in a minute.");
            err.retry_after = Some(60);
            Err(err)
        }
        // A limiter failure does not block visitors: drafts cost no credits.
        _ => Ok(()),
    }
}
