//! Stripe's API from the Worker: the one call the edge makes, creating a Checkout Session.
//!
//! Form-encoded body (`shared::stripe::Checkout::form`), the secret key as Bearer, an
//! `Idempotency-Key` derived from the purchase, a 10-second deadline. Stripe unreachable, timing
//! out, rate limiting or failing (429, 5xx) is a 503 with `Retry-After`: the purchase stays pending
//! and the client's retry with the same `Idempotency-Key` finds it again and asks Stripe with the
//! same key, so at most one session ever exists per purchase. Any other refusal (a wrong key, an
//! unknown price) is a configuration fault: logged with Stripe's error type and code only, answered
//! 502. The base URL is `STRIPE_API_BASE` so tests can use a local stand-in.

use shared::stripe::{parse_session, Checkout};
use shared::ApiError;
use worker::{Fetch, Headers, Method, Request, RequestInit};

const TIMEOUT_MS: u32 = 10_000;

fn unavailable() -> ApiError {
    ApiError { retry_after: Some(5), ..ApiError::new(503, "payment_provider_unavailable", "The payment provider is unavailable; retry with the same Idempotency-Key.") }
}

/// Creates (or, for a repeated key, finds again) the Checkout Session; returns its id and URL.
pub async fn create_checkout_session(base: &str, secret_key: &str, checkout: &Checkout<'_>) -> Result<(String, String), ApiError> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|_| ApiError::internal());
    set("authorization", &format!("Bearer {secret_key}"))?;
    set("content-type", "application/x-www-form-urlencoded")?;
    set("idempotency-key", &checkout.idempotency_key())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(checkout.form().into()));
    let url = format!("{}/v1/checkout/sessions", base.trim_end_matches('/'));
    let req = Request::new_with_init(&url, &init).map_err(|_| ApiError::internal())?;
    let signal = worker::AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(TIMEOUT_MS));
    let mut resp = Fetch::Request(req).send_with_signal(&signal).await.map_err(|e| {
        worker::console_error!("{{\"event\":\"stripe_unreachable\",\"error\":{:?}}}", e.to_string());
        unavailable()
    })?;
    let status = resp.status_code();
    let body = resp.bytes().await.map_err(|_| unavailable())?;
    if status == 200 {
        return parse_session(&body).ok_or_else(|| {
            worker::console_error!("{{\"event\":\"stripe_bad_answer\"}}");
            ApiError::new(502, "payment_provider_error", "The payment provider gave an unexpected answer.")
        });
    }
    let err: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    worker::console_error!(
        "{{\"event\":\"stripe_error\",\"status\":{},\"type\":{},\"code\":{}}}",
        status,
        err["error"]["type"],
        err["error"]["code"]
    );
    if status == 429 || status >= 500 {
        return Err(unavailable());
    }
    Err(ApiError::new(502, "payment_provider_error", "The payment provider refused the request; it has been logged."))
}
