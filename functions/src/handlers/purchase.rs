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
use shared::json::Obj;
use shared::jsonr;
use shared::stripe::Checkout;
use shared::ApiError;
use web_sys::Response;

/// A string at `path` in a JSON document (`None` if any step is missing or not an object).
/// A setting with a default (`Cx::setting` is for required ones).
pub fn setting_or(cx: &Cx, name: &str, default: &str) -> String {
    cx.env
        .var(name)
        .map(|v| v.to_string())
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub async fn checkout(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Refused).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    let text = cx.body_text().await?;
    let body = shared::input::parse(&text)?;
    let id = shared::input::fields(&body, &["package_id"])?.str("package_id").map_err(shared::input::field_error)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
        return Err(ApiError::invalid_field("package_id", "package_id must be a package id from GET /v1/packages."));
    }
    // Every setting is read before anything is written: a deployment fault writes nothing.
    let secret_key = cx.setting("STRIPE_SECRET_KEY")?;
    let success_url = cx.setting("CHECKOUT_SUCCESS_URL")?;
    let cancel_url = cx.setting("CHECKOUT_CANCEL_URL")?;
    let base = setting_or(&cx, "STRIPE_API_BASE", "https://api.stripe.com");

    let args = Obj::new().str("p_package_id", id).str("p_idempotency_key", &key).finish();
    let begun = db::rpc(&cx.cfg, Caller::User(&user.token), "begin_purchase", &args).await?;
    let begun = jsonr::parse(&begun).map_err(|_| ApiError::internal())?;
    let purchase_id = begun.str_at(&["purchase", "id"]).ok_or_else(ApiError::internal)?;
    let Some(price_id) = begun.str_at(&["package", "stripe_price_id"]) else {
        return Err(ApiError::new(409, "not_sold_on_stripe", "This package is not sold through Stripe.").with_field("package_id"));
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
    let args = Obj::new().str("p_purchase_id", purchase_id).str("p_session_id", &session_id).finish();
    db::rpc(&cx.cfg, Caller::Service, "attach_checkout_session", &args).await?;
    let body = Obj::new().str("purchase_id", purchase_id).str("session_id", &session_id).str("checkout_url", &url).finish();
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
