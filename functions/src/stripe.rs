//! Stripe's API from the Worker: creating Checkout Sessions (packs, subscriptions), cancelling a
//! subscription at its period end (or at once, when its account closes), and listing an invoice's
//! payments (which PaymentIntent paid a subscription invoice delivered without one, API
//! 2025-03-31.basil and later).
//!
//! Form-encoded body (`shared::stripe::Checkout::form`), the secret key as Bearer, an
//! `Idempotency-Key` derived from the purchase, a 10-second deadline. Stripe unreachable, timing
//! out, rate limiting or failing (429, 5xx) is a 503 with `Retry-After`: the purchase stays pending
//! and the client's retry with the same `Idempotency-Key` finds it again and asks Stripe with the
//! same key, so at most one session ever exists per purchase. Any other refusal (a wrong key, an
//! unknown price) is a configuration fault: logged with Stripe's error type and code only, answered
//! 502. The base URL is `STRIPE_API_BASE` so tests can use a local stand-in.
//!
//! The subrequest is built with `web_sys` and the global `fetch`, as `crate::db` does:
//! `worker::Request`/`RequestInit` cost wasm size for nothing one POST needs.

use serde_json::Value;
use shared::stripe::{parse_session, Checkout};
use shared::ApiError;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

const TIMEOUT_MS: u32 = 10_000;

fn unavailable() -> ApiError {
    ApiError {
        retry_after: Some(5),
        ..ApiError::new(
            503,
            "payment_provider_unavailable",
            "The payment provider is unavailable; retry with the same Idempotency-Key.",
        )
    }
}

/// A string member of Stripe's `error` object for the log, or `null`.
fn error_member(err: &Option<Value>, key: &str) -> Value {
    match err.as_ref().and_then(|e| e.get("error")).and_then(|e| e.get(key)).and_then(Value::as_str) {
        Some(s) => Value::from(s),
        None => Value::Null,
    }
}

/// Creates (or, for a repeated key, finds again) the Checkout Session; returns its id and URL.
pub async fn create_checkout_session(
    base: &str,
    secret_key: &str,
    checkout: &Checkout<'_>,
) -> Result<(String, String), ApiError> {
    let body =
        post_form(base, secret_key, "/v1/checkout/sessions", &checkout.form(), &checkout.idempotency_key()).await?;
    session_of(&body)
}

/// Reads a `checkout.session` answer.
pub fn session_of(body: &str) -> Result<(String, String), ApiError> {
    parse_session(body.as_bytes()).ok_or_else(|| {
        crate::log::error(crate::log::event("stripe_bad_answer"));
        ApiError::new(502, "payment_provider_error", "The payment provider gave an unexpected answer.")
    })
}

/// One form-encoded `POST {base}{path}` to Stripe's API with an `Idempotency-Key`; the body of a
/// 200. Stripe refusing the key for other parameters (`idempotency_error`) is 422
/// `idempotency_key_reused` (the client reused its key for another request); Stripe's 409 (another
/// request with the key is still being processed) is 409 `idempotency_in_flight`; 429 and 5xx are 503.
pub async fn post_form(base: &str, secret_key: &str, path: &str, form: &str, key: &str) -> Result<String, ApiError> {
    send(base, secret_key, path, Call::Post { form, key }, None).await.map(|(_, body)| body)
}

/// One `DELETE {base}{path}` to Stripe's API (cancelling a subscription at once): the body of a
/// 200, or `None` when Stripe has no such object (404: already gone). No `Idempotency-Key`: Stripe
/// ignores it on DELETE, which is idempotent by definition. Other errors as for [`post_form`].
pub async fn delete(base: &str, secret_key: &str, path: &str) -> Result<Option<String>, ApiError> {
    match send(base, secret_key, path, Call::Delete, None).await? {
        (404, body) => {
            let err: Option<Value> = serde_json::from_str(&body).ok();
            if error_member(&err, "code") == "resource_missing" {
                return Ok(None);
            }
            crate::log::error(
                crate::log::event("stripe_error").int("status", 404).json("code", error_member(&err, "code")),
            );
            Err(ApiError::new(
                502,
                "payment_provider_error",
                "The payment provider refused the request; it has been logged.",
            ))
        }
        (_, body) => Ok(Some(body)),
    }
}

/// The API version whose shapes [`get`] reads (the Invoice Payments API exists from it on).
pub const API_VERSION: &str = "2025-03-31.basil";

/// One `GET {base}{path_and_query}` to Stripe's API pinned to [`API_VERSION`]; the body of a 200.
/// Errors as for [`post_form`] (429 and 5xx: 503, so a webhook delivery waiting on it is retried).
pub async fn get(base: &str, secret_key: &str, path_and_query: &str) -> Result<String, ApiError> {
    send(base, secret_key, path_and_query, Call::Get, Some(API_VERSION)).await.map(|(_, body)| body)
}

/// The request [`send`] makes.
enum Call<'a> {
    Get,
    Post { form: &'a str, key: &'a str },
    Delete,
}

/// The status and body of a 200, or of a 404 for [`Call::Delete`]; every other answer is an error.
async fn send(
    base: &str,
    secret_key: &str,
    path: &str,
    call: Call<'_>,
    version: Option<&str>,
) -> Result<(u16, String), ApiError> {
    let deleting = matches!(call, Call::Delete);
    let headers = web_sys::Headers::new().map_err(|_| ApiError::internal().because("Headers could not be built"))?;
    let set = |k: &str, v: &str| {
        headers.set(k, v).map_err(|_| ApiError::internal().because(format!("header {k} could not be set")))
    };
    set("authorization", &format!("Bearer {secret_key}"))?;
    if let Some(version) = version {
        set("stripe-version", version)?;
    }
    // One deadline for the whole exchange, headers and body.
    let signal = web_sys::AbortSignal::timeout_with_u32(TIMEOUT_MS);
    let init = web_sys::RequestInit::new();
    match call {
        Call::Post { form, key } => {
            set("content-type", "application/x-www-form-urlencoded")?;
            set("idempotency-key", key)?;
            init.set_method("POST");
            init.set_body(&JsValue::from_str(form));
        }
        Call::Get => init.set_method("GET"),
        Call::Delete => init.set_method("DELETE"),
    }
    init.set_headers(&headers);
    init.set_signal(Some(&signal));
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let req = web_sys::Request::new_with_str_and_init(&url, &init)
        .map_err(|_| ApiError::internal().because(format!("STRIPE_API_BASE gives no valid URL: {url}")))?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: web_sys::Response = JsFuture::from(global.fetch_with_request(&req))
        .await
        .map_err(|e| {
            let error = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
            crate::log::error(
                crate::log::event("stripe_unreachable").bool("timeout", signal.aborted()).str("error", &error),
            );
            unavailable()
        })?
        .unchecked_into();
    let status = resp.status();
    let body = match resp.text() {
        Ok(p) => JsFuture::from(p).await.ok().and_then(|v| v.as_string()).ok_or_else(unavailable)?,
        Err(_) => return Err(unavailable()),
    };
    if status == 200 || (status == 404 && deleting) {
        return Ok((status, body));
    }
    let err: Option<Value> = serde_json::from_str(&body).ok();
    crate::log::error(
        crate::log::event("stripe_error")
            .int("status", i64::from(status))
            .json("type", error_member(&err, "type"))
            .json("code", error_member(&err, "code")),
    );
    if status == 429 || status >= 500 {
        return Err(unavailable());
    }
    // Stripe answers 409 while another request with the same Idempotency-Key is still being
    // processed (nothing is saved for this one): the same request may be retried as it is.
    if status == 409 {
        return Err(ApiError::new(
            409,
            "idempotency_in_flight",
            "A request with this idempotency key is still being processed.",
        ));
    }
    if error_member(&err, "type") == "idempotency_error" {
        return Err(ApiError::new(
            422,
            "idempotency_key_reused",
            "This Idempotency-Key was used for another request; use a new key.",
        ));
    }
    Err(ApiError::new(502, "payment_provider_error", "The payment provider refused the request; it has been logged."))
}
