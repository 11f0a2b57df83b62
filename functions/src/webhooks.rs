//! Delivery of the webhook outbox to the app's backend (issue 13; rules in migrations/README.md,
//! "Webhooks"), run by the cron trigger after the sweepers.
//!
//! `claim_webhook_deliveries` leases a bounded batch of due events (SKIP LOCKED, so two runs never
//! send one event at once); each is POSTed to `WEBHOOK_URL` with the Standard Webhooks headers
//! (`webhook-id` = the event's id, the same on every retry so the receiver deduplicates by it,
//! `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` keyed with the `whsec_`
//! secret `WEBHOOK_SECRET`), within `WEBHOOK_TIMEOUT_MS` (default 5000); a 2xx is delivered,
//! anything else (an error status, a timeout, a refused connection) is reported as failed and
//! retried by the database's back-off. Without both settings nothing is claimed (the events wait).

use crate::context;
use crate::db::{self, Caller};
use crate::log;
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use shared::config::Config;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

/// Events a batch claims, and batches a run sends at most.
const BATCH: u32 = 20;
/// Deliveries in flight at once (a Worker's limit of simultaneous open connections).
const IN_FLIGHT: usize = 6;
const MAX_BATCHES: usize = 5;

#[derive(Deserialize)]
struct Claimed<'a> {
    #[serde(borrow)]
    items: Vec<Item<'a>>,
    more: bool,
}

#[derive(Deserialize)]
struct Item<'a> {
    id: String,
    attempt: i64,
    event_type: String,
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// What one attempt came to: delivered, or the status (if any) and why not.
struct Outcome {
    delivered: bool,
    status: Option<u16>,
    error: Option<String>,
}

pub async fn run(env: &Env, cfg: &Config) {
    let (Some(url), Some(secret)) = (context::binding(env, "WEBHOOK_URL"), context::binding(env, "WEBHOOK_SECRET"))
    else {
        return;
    };
    let Some(key) = shared::webhook::secret_key(&secret) else {
        log::error(log::event("config_error").str("error", "WEBHOOK_SECRET is not a whsec_<base64> secret"));
        return;
    };
    let timeout_ms = context::binding(env, "WEBHOOK_TIMEOUT_MS")
        .and_then(|t| t.parse::<u32>().ok())
        .unwrap_or(5000)
        .clamp(100, 30_000);
    let args = json!({ "p_limit": BATCH, "p_lease_seconds": timeout_ms / 1000 + 30 }).to_string();
    for _ in 0..MAX_BATCHES {
        let raw = match db::rpc(cfg, Caller::Service, "claim_webhook_deliveries", &args).await {
            Ok(raw) => raw,
            Err(e) => {
                log::error(log::event("webhooks_claim_failed").str("code", &e.code));
                return;
            }
        };
        let Ok(claimed) = serde_json::from_str::<Claimed<'_>>(&raw) else {
            log::error(log::event("webhooks_claim_failed").str("code", "unexpected_answer"));
            return;
        };
        // At most six at a time: a Worker keeps six connections open at once, and a request queued
        // behind them would spend its deadline waiting and be recorded as failed without being sent.
        for chunk in claimed.items.chunks(IN_FLIGHT) {
            join_all(chunk.iter().map(|item| deliver(cfg, &url, &key, timeout_ms, item))).await;
        }
        if !claimed.more {
            return;
        }
    }
}

/// Sends one event and records the outcome.
async fn deliver(cfg: &Config, url: &str, key: &[u8], timeout_ms: u32, item: &Item<'_>) {
    let body = item.payload.get();
    let timestamp = (js_sys::Date::now() / 1000.0) as i64;
    let signature = shared::webhook::sign(key, &item.id, timestamp, body);
    let outcome = post(url, &item.id, timestamp, &signature, body, timeout_ms).await;
    log::info(
        log::event("webhook_attempt")
            .str("id", &item.id)
            .str("type", &item.event_type)
            .int("attempt", item.attempt)
            .bool("delivered", outcome.delivered)
            .int("status", outcome.status.map_or(0, i64::from)),
    );
    let args = json!({
        "p_id": item.id, "p_attempt": item.attempt, "p_delivered": outcome.delivered,
        "p_status": outcome.status, "p_error": outcome.error,
    })
    .to_string();
    if let Err(e) = db::rpc(cfg, Caller::Service, "record_webhook_delivery", &args).await {
        // The lease lapses and the event is sent again: the receiver deduplicates by webhook-id.
        log::error(log::event("webhook_record_failed").str("id", &item.id).str("code", &e.code));
    }
}

async fn post(url: &str, id: &str, timestamp: i64, signature: &str, body: &str, timeout_ms: u32) -> Outcome {
    let failed = |error: &str| Outcome { delivered: false, status: None, error: Some(error.to_owned()) };
    let Ok(headers) = web_sys::Headers::new() else {
        return failed("headers could not be built");
    };
    for (k, v) in [
        ("content-type", "application/json"),
        ("webhook-id", id),
        ("webhook-timestamp", &timestamp.to_string()),
        ("webhook-signature", signature),
    ] {
        if headers.set(k, v).is_err() {
            return failed("a header could not be set");
        }
    }
    let signal = web_sys::AbortSignal::timeout_with_u32(timeout_ms);
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(body));
    init.set_signal(Some(&signal));
    let Ok(req) = web_sys::Request::new_with_str_and_init(url, &init) else {
        return failed("WEBHOOK_URL is not a valid URL");
    };
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    match JsFuture::from(global.fetch_with_request(&req)).await {
        Ok(resp) => {
            let resp: web_sys::Response = resp.unchecked_into();
            let status = resp.status();
            // The body is not needed: cancelling it releases the connection without reading it.
            if let Some(body) = resp.body() {
                let _ = JsFuture::from(body.cancel()).await;
            }
            let delivered = (200..300).contains(&status);
            Outcome { delivered, status: Some(status), error: (!delivered).then(|| format!("HTTP {status}")) }
        }
        Err(_) if signal.aborted() => failed(&format!("no answer within {timeout_ms} ms")),
        Err(e) => {
            let message = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
            failed(&format!("unreachable: {}", message.chars().take(200).collect::<String>()))
        }
    }
}
