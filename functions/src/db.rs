//! Calling Postgres RPCs through PostgREST.
//!
//! Every handler makes one `POST {POSTGREST_URL}/rpc/{name}` with the caller's token, so the
//! database sees the same user the edge verified. Serialization failures and deadlocks are retried
//! a bounded number of times; an unreachable or failing PostgREST is a 503 with `Retry-After`, one
//! that does not answer within `POSTGREST_TIMEOUT_MS` a 504, never a success.
//!
//! The subrequest is built with `web_sys` and the global `fetch` directly: the `postgrest` crate
//! and `worker::Request` were measured (ARCHITECTURE.md) and cost wasm size and JS crossings for
//! nothing a single POST needs. A successful answer that the handler does not need to read is
//! streamed to the client as is ([`rpc_response`]), never copied into wasm memory.

use shared::config::Config;
use shared::postgrest::{map_error, Outcome};
use shared::ApiError;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

/// Whose authority the call carries.
pub enum Caller<'a> {
    /// A verified user's access token, forwarded as is.
    User(&'a str),
    /// No user: PostgREST's anon role (public reads, visitor drafts).
    Anon,
    /// The service_role key: back-office RPCs only (pipeline, payments, sweepers).
    Service,
}

/// How many times a serialization failure or deadlock is retried before answering 503.
const MAX_ATTEMPTS: u32 = 3;

/// Calls `public.<name>(args)` and returns the JSON text of a 2xx answer.
pub async fn rpc(cfg: &Config, caller: Caller<'_>, name: &str, args: &str) -> Result<String, ApiError> {
    let resp = call(cfg, &caller, name, args).await?;
    let text = JsFuture::from(resp.text().map_err(|_| ApiError::unavailable())?).await.map_err(|_| ApiError::unavailable())?;
    text.as_string().ok_or_else(|| ApiError::internal().because(format!("rpc {name}: the answer is not text")))
}

/// Calls `public.<name>(args)` and answers the client with its JSON, streamed through unchanged.
pub async fn rpc_response(cfg: &Config, caller: Caller<'_>, name: &str, args: &str, status: u16) -> Result<Response, ApiError> {
    let upstream = call(cfg, &caller, name, args).await?;
    Ok(crate::respond::stream(status, upstream.body().as_ref()))
}

/// The call with its retries; returns the 2xx response with its body unread.
async fn call(cfg: &Config, caller: &Caller<'_>, name: &str, args: &str) -> Result<web_sys::Response, ApiError> {
    let url = format!("{}/rpc/{}", cfg.postgrest_url, name);
    for attempt in 1..=MAX_ATTEMPTS {
        let resp = send(cfg, caller, &url, args).await?;
        let status = resp.status();
        if (200..300).contains(&status) {
            return Ok(resp);
        }
        let body = match resp.text().map(JsFuture::from) {
            Ok(f) => f.await.ok().and_then(|v| v.as_string()).unwrap_or_default(),
            Err(_) => String::new(),
        };
        match map_error(status, body.as_bytes()) {
            Outcome::Retry if attempt < MAX_ATTEMPTS => continue,
            Outcome::Retry => return Err(ApiError::unavailable()),
            Outcome::Fail(err) => {
                let err = if err.status == 500 { err.because(format!("rpc {name}: PostgREST answered {status}")) } else { err };
                if err.status >= 500 {
                    crate::log::error(
                        crate::log::event("postgrest_error")
                            .str("rpc", name)
                            .int("status", i64::from(status))
                            .str("body", body.get(..body.len().min(300)).unwrap_or("")),
                    );
                }
                return Err(err);
            }
        }
    }
    Err(ApiError::unavailable())
}

async fn send(cfg: &Config, caller: &Caller<'_>, url: &str, args: &str) -> Result<web_sys::Response, ApiError> {
    let headers = web_sys::Headers::new().map_err(|_| ApiError::internal().because("Headers could not be built"))?;
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|_| ApiError::internal().because(format!("header {k} could not be set")));
    set("content-type", "application/json")?;
    set("accept", "application/json")?;
    if let Some(key) = &cfg.anon_key {
        set("apikey", key)?;
    }
    match caller {
        Caller::User(token) => set("authorization", &format!("Bearer {token}"))?,
        Caller::Service => {
            let key = cfg.service_role_key.as_deref().ok_or_else(|| ApiError::internal().because("SUPABASE_SERVICE_ROLE_KEY is not set"))?;
            set("authorization", &format!("Bearer {key}"))?;
            set("apikey", key)?;
        }
        Caller::Anon => {}
    }
    // One deadline for the whole exchange, headers and body.
    let signal = web_sys::AbortSignal::timeout_with_u32(cfg.postgrest_timeout_ms);
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(args));
    init.set_signal(Some(&signal));
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let failed = |signal: &web_sys::AbortSignal| {
        crate::log::error(crate::log::event("postgrest_unreachable").bool("timeout", signal.aborted()));
        if signal.aborted() {
            ApiError::timeout()
        } else {
            ApiError::unavailable()
        }
    };
    let resp = JsFuture::from(global.fetch_with_str_and_init(url, &init)).await.map_err(|_| failed(&signal))?;
    resp.dyn_into::<web_sys::Response>().map_err(|_| ApiError::internal().because("fetch did not answer a Response"))
}

/// Whether PostgREST and the database answer (for `/health`).
pub async fn ping(cfg: &Config) -> bool {
    matches!(rpc(cfg, Caller::Anon, "health", "{}").await, Ok(body) if body.contains("true"))
}
