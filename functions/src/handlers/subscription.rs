//! Subscriptions (migrations/README.md, "The subscription rules").
//!
//! - `POST /v1/subscription/checkout` (user, not anonymous; `Idempotency-Key` required; body
//!   `{"plan_id"}`): `begin_subscription_checkout` checks the plan and that the caller has no
//!   subscription yet (it writes nothing); a Checkout Session in `subscription` mode is created
//!   with an idempotency key derived from the caller and their key, so a retry gets the same
//!   session and the same key for another plan is 422. Answers `{"session_id", "checkout_url"}`.
//!   Credits come only from the signed `invoice.paid` events, never from here.
//! - `POST /v1/subscription/cancel` (user): cancels the caller's Stripe subscription at the period
//!   end (`POST /v1/subscriptions/{id}` with `cancel_at_period_end=true`), records Stripe's answer
//!   as the subscription's state at once, and answers `{"subscription"}`. Idempotent: Stripe sets
//!   the same flag again. No subscription: 404; an App Store one is cancelled in the App Store
//!   (409 `managed_by_app_store`); an ended one: 409 `subscription_ended`.
//! - `GET /v1/subscription` (user): `{"subscription": ... or null}`: plan, status, current period,
//!   credits left in this period, what renews.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::handlers::purchase::setting_or;
use crate::{respond, stripe};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::stripe::Action;
use shared::stripe_billing::{cancel_form, parse_subscription, subscription_state, SubscriptionCheckout};
use shared::ApiError;
use web_sys::Response;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutRequest {
    plan_id: String,
}

fn json_of(text: &str, rpc: &str) -> Result<Value, ApiError> {
    serde_json::from_str(text).map_err(|e| ApiError::internal().because(format!("{rpc} answered non-JSON: {e}")))
}

pub async fn checkout(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Refused).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    let text = cx.body_text().await?;
    let body: CheckoutRequest = shared::input::body(&text)?;
    let id = body.plan_id.as_str();
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(ApiError::invalid_field("plan_id", "plan_id must be the id of a plan on sale."));
    }
    // Every setting is read before anything is asked of Stripe.
    let secret_key = cx.setting("STRIPE_SECRET_KEY")?;
    let success_url = cx.setting("CHECKOUT_SUCCESS_URL")?;
    let cancel_url = cx.setting("CHECKOUT_CANCEL_URL")?;
    let base = setting_or(&cx, "STRIPE_API_BASE", "https://api.stripe.com");
    let args = json!({ "p_plan_id": id }).to_string();
    let begun = json_of(
        &db::rpc(&cx.cfg, Caller::User(&user.token), "begin_subscription_checkout", &args).await?,
        "begin_subscription_checkout",
    )?;
    let price_id = begun
        .pointer("/plan/stripe_price_id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::internal().because("begin_subscription_checkout answered no stripe_price_id"))?;
    let checkout = SubscriptionCheckout {
        user_id: &user.claims.sub,
        plan_id: id,
        price_id,
        success_url: &success_url,
        cancel_url: &cancel_url,
        key: &key,
    };
    let answer =
        stripe::post_form(&base, &secret_key, "/v1/checkout/sessions", &checkout.form(), &checkout.idempotency_key())
            .await?;
    let (session_id, url) = stripe::session_of(&answer)?;
    Ok(respond::json(200, json!({ "session_id": session_id, "checkout_url": url }).to_string()))
}

pub async fn get(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_subscription", "{}", 200).await
}

pub async fn cancel(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let secret_key = cx.setting("STRIPE_SECRET_KEY")?;
    let base = setting_or(&cx, "STRIPE_API_BASE", "https://api.stripe.com");
    let current =
        json_of(&db::rpc(&cx.cfg, Caller::User(&user.token), "get_subscription", "{}").await?, "get_subscription")?;
    let Some(sub) = current.get("subscription").filter(|s| s.is_object()) else {
        return Err(ApiError::new(404, "not_found", "You have no subscription.").with_field("subscription"));
    };
    if sub.get("provider").and_then(Value::as_str) != Some("stripe") {
        return Err(ApiError::new(
            409,
            "managed_by_app_store",
            "This subscription is billed by the App Store; cancel it in the App Store's subscription settings.",
        ));
    }
    if sub.get("status").and_then(Value::as_str) == Some("ended") {
        return Err(ApiError::new(409, "subscription_ended", "This subscription has already ended."));
    }
    let id = sub
        .get("provider_subscription_id")
        .and_then(Value::as_str)
        .filter(|s| is_subscription_id(s))
        .ok_or_else(|| ApiError::internal().because("get_subscription answered no Stripe subscription id"))?;
    // A key of its own per request: setting the flag is idempotent at Stripe anyway, and a fixed
    // key would, within Stripe's 24 h, replay an earlier cancel's answer without cancelling again
    // (a cancel, a resume in the portal, a cancel: nothing cancelled, yet recorded as cancelled).
    let once = crate::crypto::random_uuid()?;
    let answer = stripe::post_form(
        &base,
        &secret_key,
        &format!("/v1/subscriptions/{id}"),
        &cancel_form(),
        &format!("cancel-{id}-{once}"),
    )
    .await?;
    record_answer(&cx, &answer, &format!("api-cancel-{id}-{once}")).await?;
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_subscription", "{}", 200).await
}

/// Whether `id` has the shape of a Stripe subscription id (it goes into an API path).
pub fn is_subscription_id(id: &str) -> bool {
    id.starts_with("sub_") && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Records Stripe's answer to a cancel (a `subscription` object) as the subscription's state now,
/// under `event_id`; customer.subscription.updated/.deleted brings the same later. An answer that
/// is not a subscription is a 502.
pub async fn record_answer(cx: &Cx, answer: &str, event_id: &str) -> Result<(), ApiError> {
    let object: Value = serde_json::from_str(answer).unwrap_or(Value::Null);
    let stripe_sub = parse_subscription(&object).ok_or_else(|| {
        crate::log::error(crate::log::event("stripe_bad_answer"));
        ApiError::new(502, "payment_provider_error", "The payment provider gave an unexpected answer.")
    })?;
    let now = (js_sys::Date::now() / 1000.0) as i64;
    if let Action::Rpc { name, args } =
        subscription_state(&stripe_sub, event_id, "api.subscription.cancel", now, false)?
    {
        db::rpc(&cx.cfg, Caller::Service, name, &args).await?;
    }
    Ok(())
}
