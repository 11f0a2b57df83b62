//! Asymmetric token signatures (ES256, RS256) through WebCrypto, and the isolate's JWKS cache.
//!
//! `crypto.subtle` in workerd is BoringSSL: an ES256 verification costs a fraction of a
//! millisecond, where pure-Rust P-256 compiled to wasm was measured at ~2.2 ms warm and 8-14 ms on
//! an isolate's first call, and would add tens of KB to the bundle (see ARCHITECTURE.md, "Edge
//! authentication"). HS256 stays in Rust (`shared::jwt`): an HMAC is microseconds either way and
//! needs no await.
//!
//! The keys come only from the configured JWKS URL. When to fetch is decided by
//! `shared::jwks::KeyCache` (TTL, cooldown, in-flight sharing, fail closed); this module performs
//! the fetch with a timeout, imports each key once as a non-extractable `CryptoKey`, and keeps the
//! imported keys in the cache, per `kid`, for the life of the isolate.

use js_sys::{Array, Object, Reflect, Uint8Array, JSON};
use shared::config::JwksConfig;
use shared::jwks::{self, KeyCache, Lookup, PublicKey};
use shared::jwt::{Alg, AuthError};
use std::cell::RefCell;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{CryptoKey, SubtleCrypto};

thread_local! {
    /// The isolate's signing keys. Configuration does not change during an isolate's life, so the
    /// timings given on first use hold for all later requests.
    static KEYS: RefCell<Option<KeyCache<CryptoKey>>> = const { RefCell::new(None) };
}

/// How often a request polls while another request's JWKS fetch is in flight. Polling, rather than
/// awaiting the other request's promise, keeps every request on its own I/O context: workerd never
/// resumes a waiter if the fetching request is cancelled.
const WAIT_STEP: Duration = Duration::from_millis(5);
/// Upper bound on lookups per token; the cache stops answering `Wait` after the fetch timeout
/// plus a grace period (at most 11 s, i.e. 2,200 polls), so this is only a backstop.
const MAX_STEPS: u32 = 3000;

fn now_ms() -> u64 {
    js_sys::Date::now() as u64
}

/// The runtime's `crypto.subtle` (BoringSSL in workerd).
pub(crate) fn subtle() -> Result<SubtleCrypto, JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))?;
    Ok(crypto.unchecked_into::<web_sys::Crypto>().subtle())
}

/// A plain `{ name: value, ... }` object, the shape WebCrypto takes for algorithm parameters.
fn params(pairs: &[(&str, &str)]) -> Object {
    let object = Object::new();
    for (name, value) in pairs {
        let _ = Reflect::set(&object, &JsValue::from_str(name), &JsValue::from_str(value));
    }
    object
}

enum Step {
    Key(CryptoKey),
    Fetch(u64),
    Wait,
    Fail(AuthError),
}

/// Returns the verification key for (`kid`, `alg`), fetching the JWKS when the cache says so.
/// Unknown keys are `BadSignature` (401); a JWKS that cannot be had is `KeysUnavailable` (503).
pub async fn key_for(cfg: &JwksConfig, kid: &str, alg: Alg) -> Result<CryptoKey, AuthError> {
    let mut fetched = false;
    for _ in 0..MAX_STEPS {
        let now = now_ms();
        let step = KEYS.with(|cell| {
            let mut slot = cell.borrow_mut();
            let cache = slot.get_or_insert_with(|| KeyCache::new(cfg.timings));
            match cache.lookup(kid, alg, now) {
                Lookup::Hit(key) => Step::Key(key.clone()),
                // One fetch per request at most; a second `Fetch` means the cooldown ran out while
                // this request's own fetch was failing, which is still a failure.
                Lookup::Fetch if !fetched => Step::Fetch(cache.begin_fetch(now)),
                Lookup::Fetch | Lookup::Unavailable => Step::Fail(AuthError::KeysUnavailable),
                Lookup::Wait => Step::Wait,
                Lookup::Unknown => Step::Fail(AuthError::BadSignature),
            }
        });
        match step {
            Step::Key(key) => return Ok(key),
            Step::Fail(err) => return Err(err),
            Step::Wait => worker::Delay::from(WAIT_STEP).await,
            Step::Fetch(ticket) => {
                fetched = true;
                let outcome = fetch_keys(cfg).await;
                let now = now_ms();
                KEYS.with(|cell| {
                    if let Some(cache) = cell.borrow_mut().as_mut() {
                        cache.finish_fetch(ticket, outcome, now);
                    }
                });
            }
        }
    }
    Err(AuthError::KeysUnavailable)
}

/// Fetches, parses and imports the key set. Every failure is logged and fails closed.
async fn fetch_keys(cfg: &JwksConfig) -> Result<Vec<(String, Alg, CryptoKey)>, ()> {
    let body = fetch_document(cfg).await.map_err(|why| {
        crate::log::error(crate::log::event("jwks_fetch_failed").str("reason", why));
    })?;
    let keys = jwks::parse_jwks(&body).map_err(|why| {
        crate::log::error(crate::log::event("jwks_fetch_failed").str("reason", &format!("{why:?}")));
    })?;
    let mut imported = Vec::with_capacity(keys.len());
    for key in &keys {
        match import(key).await {
            Ok(crypto_key) => imported.push((key.kid.clone(), key.alg, crypto_key)),
            Err(_) => crate::log::error(crate::log::event("jwks_key_skipped").str("kid", &key.kid)),
        }
    }
    crate::log::info(crate::log::event("jwks_refreshed").int("keys", imported.len() as i64));
    Ok(imported)
}

async fn fetch_document(cfg: &JwksConfig) -> Result<Vec<u8>, &'static str> {
    // Built with web-sys and sent through the global `fetch` directly: `worker::RequestInit` and
    // `worker::Request::new_with_init` cost ~9 KB of wasm for this one GET.
    let headers = web_sys::Headers::new().map_err(|_| "request")?;
    headers.set("accept", "application/json").map_err(|_| "request")?;
    // One deadline for connecting, the answer and the body.
    let signal = web_sys::AbortSignal::timeout_with_u32(cfg.timings.fetch_timeout_ms as u32);
    let init = web_sys::RequestInit::new();
    init.set_method("GET");
    init.set_headers(&headers);
    init.set_signal(Some(&signal));
    // A redirect is an error: keys come from the configured URL, not wherever it points.
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let req = web_sys::Request::new_with_str_and_init(&cfg.url, &init).map_err(|_| "request")?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let resp: web_sys::Response =
        JsFuture::from(global.fetch_with_request(&req)).await.map_err(|_| "unreachable_or_timeout")?.unchecked_into();
    if resp.status() != 200 {
        return Err("status");
    }
    let declared = resp.headers().get("content-length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > jwks::MAX_JWKS_BYTES) {
        return Err("too_large");
    }
    // Read chunk by chunk and stopped at the cap: a chunked answer (no Content-Length) over 64 KB
    // is never copied whole into wasm memory.
    let Some(stream) = resp.body() else { return Ok(Vec::new()) };
    crate::context::read_capped(&stream, jwks::MAX_JWKS_BYTES).await.map_err(|e| match e {
        Some(()) => "too_large",
        None => "body_or_timeout",
    })
}

/// Imports one public key as a non-extractable `CryptoKey` usable only to verify.
async fn import(key: &PublicKey) -> Result<CryptoKey, JsValue> {
    let jwk: Object = JSON::parse(&key.jwk_json())?.unchecked_into();
    let algorithm = match key.alg {
        Alg::ES256 => params(&[("name", "ECDSA"), ("namedCurve", "P-256")]),
        Alg::RS256 => params(&[("name", "RSASSA-PKCS1-v1_5"), ("hash", "SHA-256")]),
        Alg::HS256 => return Err(JsValue::NULL),
    };
    let usages = Array::of1(&JsValue::from_str("verify"));
    let promise = subtle()?.import_key_with_object("jwk", &jwk, &algorithm, false, &usages)?;
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

/// Verifies a JWS signature: ES256 as raw `r || s` (what both JWS and WebCrypto use), RS256 as
/// PKCS#1 v1.5 with SHA-256. Any error from WebCrypto counts as a bad signature.
pub async fn verify(key: &CryptoKey, alg: Alg, signing_input: &[u8], signature: &[u8]) -> Result<(), AuthError> {
    let algorithm = match alg {
        Alg::ES256 => params(&[("name", "ECDSA"), ("hash", "SHA-256")]),
        Alg::RS256 => params(&[("name", "RSASSA-PKCS1-v1_5")]),
        Alg::HS256 => return Err(AuthError::BadSignature),
    };
    let subtle = subtle().map_err(|_| AuthError::BadSignature)?;
    // `Uint8Array::from` copies out of wasm memory, so nothing aliases it while WebCrypto works.
    let promise = subtle
        .verify_with_object_and_js_u8_array_and_js_u8_array(
            &algorithm,
            key,
            &Uint8Array::from(signature),
            &Uint8Array::from(signing_input),
        )
        .map_err(|_| AuthError::BadSignature)?;
    match JsFuture::from(promise).await {
        Ok(valid) if valid.as_bool() == Some(true) => Ok(()),
        _ => Err(AuthError::BadSignature),
    }
}

/// A random UUID (the runtime's `crypto.randomUUID()`): upload ids, one-off Stripe idempotency keys.
pub fn random_uuid() -> Result<String, shared::ApiError> {
    let crypto = Reflect::get(&js_sys::global(), &JsValue::from_str("crypto"))
        .map_err(|_| shared::ApiError::internal().because("crypto is missing"))?;
    let f: js_sys::Function = Reflect::get(&crypto, &JsValue::from_str("randomUUID"))
        .ok()
        .and_then(|f| JsCast::dyn_into(f).ok())
        .ok_or_else(|| shared::ApiError::internal().because("crypto.randomUUID is missing"))?;
    f.call0(&crypto)
        .ok()
        .and_then(|v| v.as_string())
        .ok_or_else(|| shared::ApiError::internal().because("crypto.randomUUID failed"))
}
