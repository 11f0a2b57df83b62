//! `POST /v1/purchase/stripe-webhook`: Stripe's events, verified, applied exactly once.
//!
//! No user token: the proof is `Stripe-Signature` (HMAC-SHA256 over `"{t}.{raw body}"` with the
//! endpoint secret; `STRIPE_WEBHOOK_SECRET` may list several, comma-separated, during rotation;
//! 300 s tolerance). The raw bytes are verified before anything parses them. Status policy:
//! - a missing, malformed, stale or non-matching signature: 400 (`invalid_signature_header`,
//!   `signature_expired`, `invalid_signature`); nothing is read or written;
//! - an event type this endpoint does not handle, or a session that is not one of ours: 200,
//!   acknowledged and ignored (Stripe's advice);
//! - a handled event: one service-role RPC (`shared::stripe::parse_event` says which), answered
//!   200 only after it committed. The database records each `event.id` once and serialises every
//!   change to one payment, so Stripe's retries (up to three days), duplicates and reordering grant
//!   at most once; a retry of an event that already committed answers 200 again;
//! - a subscription invoice paid without its PaymentIntent in the payload (API 2025-03-31.basil
//!   and later): `GET /v1/invoice_payments?invoice=..&status=paid` first, so the period is keyed by
//!   the PaymentIntent that refunds and disputes name; Stripe unreachable: 503;
//! - the database unreachable: 503, so Stripe retries; a signed event the database refuses (unknown
//!   purchase, another user or package than the purchase): its 4xx, nothing recorded, so the
//!   delivery shows as failed in Stripe's dashboard and is retried.

use crate::context::Cx;
use crate::db::{self, Caller};
use crate::handlers::purchase::setting_or;
use crate::respond;
use shared::stripe::{self, Action, MAX_EVENT_BYTES};
use shared::stripe_billing::{invoice_payments_path, keyed_by, paid_payment_intent};
use shared::ApiError;
use web_sys::Response;

pub async fn handle(mut cx: Cx) -> Result<Response, ApiError> {
    let secrets = cx.setting("STRIPE_WEBHOOK_SECRET")?;
    shared::input::require_json(cx.header("content-type").as_deref())?;
    let body = cx.body_bytes(MAX_EVENT_BYTES).await?;
    let now = (js_sys::Date::now() / 1000.0) as i64;
    stripe::verify_signature(cx.header("stripe-signature").as_deref(), &body, &secrets, now).inspect_err(|e| {
        crate::log::info(crate::log::event("stripe_signature_rejected").str("reason", &e.code));
    })?;
    match stripe::parse_event(&body)? {
        Action::Ignore(why) => {
            Ok(respond::json(200, serde_json::json!({ "received": true, "ignored": why }).to_string()))
        }
        Action::Rpc { name, args } => apply(&cx, name, &args).await,
        Action::RpcKeyedByInvoicePayment { name, args, invoice } => {
            // Which PaymentIntent paid the invoice (refunds and disputes name it): Stripe unreachable
            // is a 503, so Stripe delivers the event again later.
            let secret_key = cx.setting("STRIPE_SECRET_KEY")?;
            let base = setting_or(&cx, "STRIPE_API_BASE", "https://api.stripe.com");
            let answer = crate::stripe::get(&base, &secret_key, &invoice_payments_path(&invoice)).await?;
            let args = match paid_payment_intent(&answer)? {
                Some(intent) => keyed_by(&args, &intent)?,
                None => args,
            };
            apply(&cx, name, &args).await
        }
    }
}

async fn apply(cx: &Cx, name: &'static str, args: &str) -> Result<Response, ApiError> {
    db::rpc(&cx.cfg, Caller::Service, name, args).await.inspect_err(|e| {
        crate::log::error(crate::log::event("stripe_event_failed").str("rpc", name).str("code", &e.code));
    })?;
    Ok(respond::json(200, r#"{"received":true}"#.into()))
}
