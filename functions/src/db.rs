//! Calling Postgres RPCs through PostgREST.
//!
//! One function, [`rpc`], used by every handler: `POST {POSTGREST_URL}/rpc/{name}` with the
//! caller's token, so the database sees the same user the edge verified. Serialization failures
//! and deadlocks are retried a bounded number of times; an unreachable or failing PostgREST is a
//! 503 with `Retry-After`, never a success. The `postgrest` crate was measured as an alternative;
//! see ARCHITECTURE.md for why this thin client over `fetch` is used instead.

use shared::config::Config;
use shared::postgrest::{map_error, Outcome};
use shared::ApiError;
use worker::{Fetch, Headers, Method, Request, RequestInit};

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

/// Calls `public.<name>(args)` and returns the raw JSON body of a 2xx answer.
pub async fn rpc(cfg: &Config, caller: Caller<'_>, name: &str, args: &str) -> Result<String, ApiError> {
    let url = format!("{}/rpc/{}", cfg.postgrest_url, name);
    for attempt in 1..=MAX_ATTEMPTS {
        let (status, body) = send(cfg, &caller, &url, args).await?;
        if (200..300).contains(&status) {
            return Ok(String::from_utf8(body).map_err(|_| ApiError::internal())?);
        }
        match map_error(status, &body) {
            Outcome::Retry if attempt < MAX_ATTEMPTS => continue,
            Outcome::Retry => return Err(ApiError::unavailable()),
            Outcome::Fail(err) => {
                if err.status >= 500 {
                    worker::console_error!(
                        "{{\"event\":\"postgrest_error\",\"rpc\":\"{}\",\"status\":{},\"body\":{:?}}}",
                        name,
                        status,
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    );
                }
                return Err(err);
            }
        }
    }
    Err(ApiError::unavailable())
}

async fn send(cfg: &Config, caller: &Caller<'_>, url: &str, args: &str) -> Result<(u16, Vec<u8>), ApiError> {
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|_| ApiError::internal());
    set("content-type", "application/json")?;
    set("accept", "application/json")?;
    if let Some(key) = &cfg.anon_key {
        set("apikey", key)?;
    }
    match caller {
        Caller::User(token) => set("authorization", &format!("Bearer {token}"))?,
        Caller::Service => {
            let key = cfg.service_role_key.as_deref().ok_or_else(|| {
                worker::console_error!("{{\"event\":\"config_error\",\"error\":\"SUPABASE_SERVICE_ROLE_KEY is not set\"}}");
                ApiError::internal()
            })?;
            set("authorization", &format!("Bearer {key}"))?;
            set("apikey", key)?;
        }
        Caller::Anon => {}
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_headers(headers).with_body(Some(args.into()));
    let req = Request::new_with_init(url, &init).map_err(|_| ApiError::internal())?;
    // One deadline for the whole exchange, headers and body.
    let signal = worker::AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(cfg.postgrest_timeout_ms));
    let failed = |signal: &worker::AbortSignal| {
        worker::console_error!("{{\"event\":\"postgrest_unreachable\",\"timeout\":{}}}", signal.aborted());
        if signal.aborted() {
            ApiError::timeout()
        } else {
            ApiError::unavailable()
        }
    };
    let mut resp = Fetch::Request(req).send_with_signal(&signal).await.map_err(|_| failed(&signal))?;
    let body = resp.bytes().await.map_err(|_| failed(&signal))?;
    Ok((resp.status_code(), body))
}

/// Whether PostgREST and the database answer (for `/health`).
pub async fn ping(cfg: &Config) -> bool {
    matches!(rpc(cfg, Caller::Anon, "health", "{}").await, Ok(body) if body.contains("true"))
}
