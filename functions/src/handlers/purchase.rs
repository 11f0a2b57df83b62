//! Buying credits with Stripe Checkout, and reading purchases and packages.
//!
//! - `POST /v1/purchase/checkout` (user, not anonymous; `Idempotency-Key` required; body
//!   `{"package_id"}`): `begin_purchase` makes (or, for a repeated key, finds) the caller's pending
//!   purchase; a Checkout Session is created for it with an idempotency key derived from the
//!   purchase, and attached to it (`attach_checkout_session`). Answers
//!   `{"purchase_id", "session_id", "checkout_url"}`, the same for every retry with the same key.
//!   Credits are granted only by the signed webhook (`purchase_stripe`), never here.
//! - `GET /v1/purchases` (user): the caller's purchases with status and credits granted.
//! - `GET /v1/packages` (public, cacheable): the packages on sale.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::{respond, stripe};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::stripe::Checkout;
use shared::ApiError;
use web_sys::Response;

/// `POST /v1/purchase/checkout`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckoutRequest {
    package_id: String,
}

/// A setting with a default (`Cx::setting` is for required ones).
pub fn setting_or(cx: &Cx, name: &str, default: &str) -> String {
    crate::context::binding(&cx.env, name).unwrap_or_else(|| default.to_owned())
}

/// The string at `path` in a JSON document.
fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k)).and_then(Value::as_str)
}

pub async fn checkout(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Refused).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    let text = cx.body_text().await?;
    let body: CheckoutRequest = shared::input::body(&text)?;
    let id = body.package_id.as_str();
    if id.is_empty()
        || id.len() > 64
        || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(ApiError::invalid_field("package_id", "package_id must be a package id from GET /v1/packages."));
    }
    // Every setting is read before anything is written: a deployment fault writes nothing.
    let secret_key = cx.setting("STRIPE_SECRET_KEY")?;
    let success_url = cx.setting("CHECKOUT_SUCCESS_URL")?;
    let cancel_url = cx.setting("CHECKOUT_CANCEL_URL")?;
    let base = setting_or(&cx, "STRIPE_API_BASE", "https://api.stripe.com");

    let args = json!({ "p_package_id": id, "p_idempotency_key": key }).to_string();
    let begun = db::rpc(&cx.cfg, Caller::User(&user.token), "begin_purchase", &args).await?;
    let begun: Value = serde_json::from_str(&begun)
        .map_err(|e| ApiError::internal().because(format!("begin_purchase answered non-JSON: {e}")))?;
    let purchase_id = str_at(&begun, &["purchase", "id"])
        .ok_or_else(|| ApiError::internal().because("begin_purchase answered no purchase.id"))?;
    let Some(price_id) = str_at(&begun, &["package", "stripe_price_id"]) else {
        return Err(ApiError::new(409, "not_sold_on_stripe", "This package is not sold through Stripe.")
            .with_field("package_id"));
    };
    let checkout = Checkout {
        purchase_id,
        user_id: &user.claims.sub,
        package_id: id,
        price_id,
        success_url: &success_url,
        cancel_url: &cancel_url,
    };
    let (session_id, url) = stripe::create_checkout_session(&base, &secret_key, &checkout).await?;
    let args = json!({ "p_purchase_id": purchase_id, "p_session_id": session_id }).to_string();
    db::rpc(&cx.cfg, Caller::Service, "attach_checkout_session", &args).await?;
    let body = json!({ "purchase_id": purchase_id, "session_id": session_id, "checkout_url": url }).to_string();
    Ok(respond::json(200, body))
}

pub async fn list_purchases(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "list_purchases", "{}", 200).await
}

pub async fn list_packages(cx: Cx) -> Result<Response, ApiError> {
    let resp = db::rpc_response(&cx.cfg, Caller::Anon, "list_packages", "{}", 200).await?;
    let _ = resp.headers().set("cache-control", "public, max-age=300");
    Ok(resp)
}
