//! Answers to App Store consumption requests (issue 13; rules in migrations/README.md, "App Store
//! consumption requests"): the Worker's side of the App Store Server API "Send Consumption
//! Information" (v2).
//!
//! The notification handler records each `CONSUMPTION_REQUEST` in the database and then calls
//! [`send_one`] for it; the cron calls [`run`] for whatever is still due (Apple was down, the
//! Worker died). Either way `claim_app_store_consumption_requests` leases the request (SKIP
//! LOCKED, so the handler and the cron never send one request at once) and hands out its body,
//! computed by the database from the ledger at that moment; the body is read into
//! `shared::appstore_api::ConsumptionRequest` and checked; the API token is signed ES256 through
//! WebCrypto with the In-App Purchase key (`APPLE_API_PRIVATE_KEY`, PKCS#8 PEM, imported as a
//! non-extractable key); the `PUT` has a deadline of [`TIMEOUT_MS`]; Apple's status goes to
//! `record_app_store_consumption_attempt`, which decides sent / rejected / retry.
//!
//! Without `APPLE_API_KEY_ID`, `APPLE_API_ISSUER_ID` and `APPLE_API_PRIVATE_KEY` nothing is sent:
//! the requests stay recorded (`pending`) and expire after their 12 hours.

use crate::context;
use crate::db::{self, Caller};
use crate::log;
use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::Deserialize;
use serde_json::json;
use shared::appstore_api::{self as api, ConsumptionRequest, Credentials};
use shared::config::Config;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::CryptoKey;
use worker::Env;

/// Requests a cron batch claims, and batches a run sends at most.
const BATCH: u32 = 10;
const MAX_BATCHES: usize = 5;
/// How long Apple may take to answer one request.
pub const TIMEOUT_MS: u32 = 5000;
/// The lease of a claimed request: longer than one attempt can take.
const LEASE_SECONDS: u32 = 30;

#[derive(Deserialize)]
struct Claimed {
    items: Vec<Item>,
    more: bool,
}

#[derive(Deserialize)]
struct Item {
    id: String,
    attempt: i64,
    transaction_id: String,
    environment: String,
    body: serde_json::Value,
}

/// The API settings: who signs, for which app, where to.
struct Settings {
    key_id: String,
    issuer_id: String,
    bundle_id: String,
    key_der: Vec<u8>,
    base_override: Option<String>,
}

/// `Ok(None)` when the API is not configured (nothing is sent); `Err` when it is, wrongly.
fn settings(env: &Env) -> Result<Option<Settings>, &'static str> {
    let (Some(key_id), Some(issuer_id), Some(pem)) = (
        context::binding(env, "APPLE_API_KEY_ID"),
        context::binding(env, "APPLE_API_ISSUER_ID"),
        context::binding(env, "APPLE_API_PRIVATE_KEY"),
    ) else {
        return Ok(None);
    };
    let bundle_id = context::binding(env, "APPLE_BUNDLE_ID").ok_or("APPLE_BUNDLE_ID is not set")?;
    let key_der = api::pkcs8_der(&pem).ok_or("APPLE_API_PRIVATE_KEY is not a PKCS#8 PEM private key")?;
    Ok(Some(Settings {
        key_id: key_id.trim().to_owned(),
        issuer_id: issuer_id.trim().to_owned(),
        bundle_id: bundle_id.trim().to_owned(),
        key_der,
        base_override: context::binding(env, "APPLE_API_BASE"),
    }))
}

fn object(pairs: &[(&str, &str)]) -> Object {
    let o = Object::new();
    for (k, v) in pairs {
        let _ = Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v));
    }
    o
}

/// Imports the In-App Purchase key (P-256, PKCS#8) for signing, not extractable.
async fn import_key(der: &[u8]) -> Result<CryptoKey, JsValue> {
    let subtle = crate::crypto::subtle()?;
    let usages = Array::of1(&JsValue::from_str("sign"));
    let algorithm = object(&[("name", "ECDSA"), ("namedCurve", "P-256")]);
    let promise = subtle.import_key_with_object("pkcs8", &Uint8Array::from(der), &algorithm, false, &usages)?;
    Ok(JsFuture::from(promise).await?.unchecked_into())
}

/// A fresh API token: the claims of `shared::appstore_api`, signed ES256 by WebCrypto (whose
/// ECDSA signature is already the raw `r || s` a JWS carries).
async fn api_token(s: &Settings, key: &CryptoKey) -> Result<String, JsValue> {
    let creds = Credentials { key_id: &s.key_id, issuer_id: &s.issuer_id, bundle_id: &s.bundle_id };
    let input = api::signing_input(&creds, (js_sys::Date::now() / 1000.0) as i64);
    let algorithm = object(&[("name", "ECDSA"), ("hash", "SHA-256")]);
    let data = Uint8Array::from(input.as_bytes());
    let promise = crate::crypto::subtle()?.sign_with_object_and_buffer_source(&algorithm, key, &data)?;
    let signature = Uint8Array::new(&JsFuture::from(promise).await?).to_vec();
    Ok(api::token(&input, &signature))
}

/// The cron: sends what is due, in batches; unconfigured, only expires what is past its deadline.
pub async fn run(env: &Env, cfg: &Config) {
    deliver(env, cfg, None).await;
}

/// Right after a notification was recorded: sends that one request now.
pub async fn send_one(env: &Env, cfg: &Config, id: &str) {
    deliver(env, cfg, Some(id)).await;
}

async fn deliver(env: &Env, cfg: &Config, only: Option<&str>) {
    let configured = match settings(env) {
        Ok(s) => s,
        Err(why) => {
            log::error(log::event("config_error").str("error", why));
            None
        }
    };
    let Some(s) = configured else {
        if only.is_none() {
            // Not sent; requests past their deadline are marked expired.
            if let Err(e) =
                db::rpc(cfg, Caller::Service, "claim_app_store_consumption_requests", r#"{"p_limit":0}"#).await
            {
                log::error(log::event("consumption_claim_failed").str("code", &e.code));
            }
        }
        return;
    };
    let key = match import_key(&s.key_der).await {
        Ok(key) => key,
        Err(_) => {
            log::error(log::event("config_error").str("error", "APPLE_API_PRIVATE_KEY is not a P-256 key"));
            return;
        }
    };
    for _ in 0..MAX_BATCHES {
        let args = json!({
            "p_limit": if only.is_some() { 1 } else { BATCH },
            "p_lease_seconds": LEASE_SECONDS,
            "p_request_id": only,
        })
        .to_string();
        let claimed = match db::rpc(cfg, Caller::Service, "claim_app_store_consumption_requests", &args).await {
            Ok(raw) => serde_json::from_str::<Claimed>(&raw).map_err(|_| "unexpected_answer".to_owned()),
            Err(e) => Err(e.code),
        };
        let claimed = match claimed {
            Ok(c) => c,
            Err(code) => {
                log::error(log::event("consumption_claim_failed").str("code", &code));
                return;
            }
        };
        for item in &claimed.items {
            send(cfg, &s, &key, item).await;
        }
        if !claimed.more || only.is_some() {
            return;
        }
    }
}

/// Sends one request and records Apple's answer (or that there was none).
async fn send(cfg: &Config, s: &Settings, key: &CryptoKey, item: &Item) {
    let (status, error) = match attempt(s, key, item).await {
        Ok(status) => (Some(status), (status != 202).then(|| format!("HTTP {status}"))),
        Err(why) => (None, Some(why)),
    };
    log::info(
        log::event("consumption_attempt")
            .str("id", &item.id)
            .int("attempt", item.attempt)
            .int("status", status.map_or(0, i64::from)),
    );
    let args = json!({ "p_id": item.id, "p_attempt": item.attempt, "p_status": status, "p_error": error }).to_string();
    if let Err(e) = db::rpc(cfg, Caller::Service, "record_app_store_consumption_attempt", &args).await {
        // The lease lapses and the request is sent again: Apple takes the same facts twice.
        log::error(log::event("consumption_record_failed").str("id", &item.id).str("code", &e.code));
    }
}

/// One `PUT`: Apple's status, or why nothing was sent or answered.
async fn attempt(s: &Settings, key: &CryptoKey, item: &Item) -> Result<u16, String> {
    let body: ConsumptionRequest =
        serde_json::from_value(item.body.clone()).map_err(|e| format!("not sent: the body is not Apple's: {e}"))?;
    body.check().map_err(|why| format!("not sent: {why}"))?;
    let base = api::base_url(&item.environment, s.base_override.as_deref()).ok_or("not sent: unknown environment")?;
    let url = api::consumption_url(base, &item.transaction_id).ok_or("not sent: not a transaction id")?;
    let body = serde_json::to_string(&body).map_err(|e| format!("not sent: {e}"))?;
    let token = api_token(s, key).await.map_err(|_| "not sent: the token could not be signed".to_owned())?;
    let headers = web_sys::Headers::new().map_err(|_| "not sent: headers")?;
    for (k, v) in [("authorization", format!("Bearer {token}")), ("content-type", "application/json".to_owned())] {
        headers.set(k, &v).map_err(|_| "not sent: a header could not be set")?;
    }
    let signal = web_sys::AbortSignal::timeout_with_u32(TIMEOUT_MS);
    let init = web_sys::RequestInit::new();
    init.set_method("PUT");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body));
    init.set_signal(Some(&signal));
    let req = web_sys::Request::new_with_str_and_init(&url, &init).map_err(|_| "not sent: not a valid URL")?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    match JsFuture::from(global.fetch_with_request(&req)).await {
        Ok(resp) => {
            let resp: web_sys::Response = resp.unchecked_into();
            if let Some(body) = resp.body() {
                let _ = JsFuture::from(body.cancel()).await;
            }
            Ok(resp.status())
        }
        Err(_) if signal.aborted() => Err(format!("no answer within {TIMEOUT_MS} ms")),
        Err(e) => {
            let message = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
            Err(format!("unreachable: {}", message.chars().take(200).collect::<String>()))
        }
    }
}
