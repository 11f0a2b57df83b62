//! Calling Postgres through PostgREST, with the `postgrest` crate (postgrest-rs).
//!
//! Every handler makes one `POST {POSTGREST_URL}/rpc/{name}` with the caller's token, so the
//! database sees the same user the edge verified; [`client`] is the one place a `Postgrest` client
//! is made for a caller, for RPCs and for table reads (`client(..).from("table")`) alike.
//!
//! What the crate does not do is wrapped here, with today's semantics:
//! - sending: postgrest-rs builds the request (`Builder::build`), the Workers global `fetch` sends
//!   it (reqwest's wasm transport cost more CPU per call; see [`send`]);
//! - a deadline: postgrest-rs has no timeout, so one `AbortSignal.timeout(POSTGREST_TIMEOUT_MS)`
//!   covers the whole exchange, answer and body, and the client gets 504 `upstream_timeout`;
//! - an unreachable PostgREST is a 503 with `Retry-After`;
//! - serialization failures and deadlocks are retried at most [`MAX_ATTEMPTS`] times, then 503;
//! - every other answer is mapped once, by `shared::postgrest::map_error`.

use postgrest::Postgrest;
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

/// Whether `value` may be sent as an HTTP header value (postgrest-rs panics on one that may not).
fn header_safe(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// A PostgREST client carrying `caller`'s authority: the anon key as `apikey` (the Supabase
/// gateway wants it), and the user's own token, or the service_role key, as `Authorization`.
pub fn client(cfg: &Config, caller: &Caller<'_>) -> Result<Postgrest, ApiError> {
    let mut client = Postgrest::new(cfg.postgrest_url.as_str());
    let token = match caller {
        Caller::User(token) => Some(*token),
        Caller::Service => Some(
            cfg.service_role_key
                .as_deref()
                .ok_or_else(|| ApiError::internal().because("SUPABASE_SERVICE_ROLE_KEY is not set"))?,
        ),
        Caller::Anon => None,
    };
    let apikey = match caller {
        Caller::Service => token,
        _ => cfg.anon_key.as_deref(),
    };
    for value in apikey.iter().chain(token.iter()) {
        if !header_safe(value) {
            return Err(ApiError::internal().because("a key or token is not a valid header value"));
        }
    }
    if let Some(key) = apikey {
        client = client.insert_header("apikey", key);
    }
    if let Some(token) = token {
        client = client.insert_header("authorization", format!("Bearer {token}"));
    }
    Ok(client)
}

/// Calls `public.<name>(args)` and returns the JSON text of a 2xx answer.
pub async fn rpc(cfg: &Config, caller: Caller<'_>, name: &str, args: &str) -> Result<String, ApiError> {
    let body = rpc_body(cfg, caller, name, args).await?;
    String::from_utf8(js_sys::Uint8Array::new(&body).to_vec())
        .map_err(|_| ApiError::internal().because(format!("rpc {name}: the answer is not UTF-8")))
}

/// Calls `public.<name>(args)` and answers the client with its JSON. The answer's bytes go from
/// PostgREST's response to the client's without being copied into wasm memory.
pub async fn rpc_response(
    cfg: &Config,
    caller: Caller<'_>,
    name: &str,
    args: &str,
    status: u16,
) -> Result<Response, ApiError> {
    let body = rpc_body(cfg, caller, name, args).await?;
    Ok(crate::respond::json_buffer(status, &body))
}

/// The retry loop and the error mapping: the body of a 2xx answer, as a JavaScript `ArrayBuffer`.
async fn rpc_body(cfg: &Config, caller: Caller<'_>, name: &str, args: &str) -> Result<js_sys::ArrayBuffer, ApiError> {
    let client = client(cfg, &caller)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let (status, body) = send(cfg, &client, name, args).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        // Only a failure's body is read into wasm memory, for the mapping.
        let body = js_sys::Uint8Array::new(&body).to_vec();
        match map_error(status, &body) {
            Outcome::Retry if attempt < MAX_ATTEMPTS => continue,
            Outcome::Retry => return Err(ApiError::unavailable()),
            Outcome::Fail(err) => {
                if err.status >= 500 {
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                    crate::log::error(
                        crate::log::event("postgrest_error")
                            .str("rpc", name)
                            .int("status", i64::from(status))
                            .str("body", &text),
                    );
                }
                let err = if err.status == 500 {
                    err.because(format!("rpc {name}: PostgREST answered {status}"))
                } else {
                    err
                };
                return Err(err);
            }
        }
    }
    Err(ApiError::unavailable())
}

/// Reads rows of a table or view with `caller`'s authority (RLS decides what it sees): `query`
/// adds the filters and columns to `client(..).from(table)`; answers the JSON array's text.
pub async fn select_rows(
    cfg: &Config,
    caller: Caller<'_>,
    table: &str,
    query: impl Fn(postgrest::Builder) -> postgrest::Builder,
) -> Result<String, ApiError> {
    let client = client(cfg, &caller)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let (status, body) = exchange(cfg, query(client.from(table)), table).await?;
        let body = js_sys::Uint8Array::new(&body).to_vec();
        if (200..300).contains(&status) {
            return String::from_utf8(body)
                .map_err(|_| ApiError::internal().because(format!("select {table}: the answer is not UTF-8")));
        }
        match map_error(status, &body) {
            Outcome::Retry if attempt < MAX_ATTEMPTS => continue,
            Outcome::Retry => return Err(ApiError::unavailable()),
            Outcome::Fail(err) if err.status == 500 => {
                return Err(err.because(format!("select {table}: PostgREST answered {status}")))
            }
            Outcome::Fail(err) => return Err(err),
        }
    }
    Err(ApiError::unavailable())
}

/// One exchange within the deadline: the status and the body, read whole (as an `ArrayBuffer`).
///
/// postgrest-rs builds the request (URL and query, method, headers, body: `Builder::build`); it is
/// sent with the Workers global `fetch` rather than reqwest's wasm `send`, which measured more Worker
/// CPU per call (tests/bench/RESULTS.md, ARCHITECTURE.md "Performance"). One `AbortSignal.timeout`
/// covers connecting, the answer and its body; the body is read once.
async fn send(
    cfg: &Config,
    client: &Postgrest,
    name: &str,
    args: &str,
) -> Result<(u16, js_sys::ArrayBuffer), ApiError> {
    exchange(cfg, client.rpc(name, args), name).await
}

/// Sends one request postgrest-rs built (an RPC or a table read), within the deadline.
async fn exchange(
    cfg: &Config,
    request: postgrest::Builder,
    what: &str,
) -> Result<(u16, js_sys::ArrayBuffer), ApiError> {
    let built =
        request.build().build().map_err(|e| ApiError::internal().because(format!("{what}: request not built: {e}")))?;
    let signal = web_sys::AbortSignal::timeout_with_u32(cfg.postgrest_timeout_ms);
    let init = to_fetch_init(&built, &signal).map_err(|why| ApiError::internal().because(why))?;
    let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
    let failed = |e: JsValue| {
        let timeout = signal.aborted();
        let error = e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_default();
        crate::log::error(crate::log::event("postgrest_unreachable").bool("timeout", timeout).str("error", &error));
        if timeout {
            ApiError::timeout()
        } else {
            ApiError::unavailable()
        }
    };
    // `fetch(url, init)`: `fetch` makes its own `Request` from its arguments, so building one first
    // (`fetch(new Request(url, init))`) made two per call (~0.01 ms of CPU each in workerd).
    let sent = global.fetch_with_str_and_init(built.url().as_str(), &init);
    let resp: Response = JsFuture::from(sent).await.map_err(failed)?.unchecked_into();
    let status = resp.status();
    let body = resp.array_buffer().map_err(failed)?;
    let body = JsFuture::from(body).await.map_err(failed)?.unchecked_into();
    Ok((status, body))
}

/// The method, headers and body of the request postgrest-rs built, as the global `fetch`'s `init`.
fn to_fetch_init(built: &reqwest::Request, signal: &web_sys::AbortSignal) -> Result<web_sys::RequestInit, String> {
    let headers = web_sys::Headers::new().map_err(|_| "Headers could not be built".to_string())?;
    for (key, value) in built.headers() {
        let value = value.to_str().map_err(|_| format!("header {key} is not text"))?;
        headers.append(key.as_str(), value).map_err(|_| format!("header {key} could not be set"))?;
    }
    let init = web_sys::RequestInit::new();
    init.set_method(built.method().as_str());
    init.set_headers(&headers);
    init.set_signal(Some(signal));
    if let Some(body) = built.body().and_then(|b| b.as_bytes()).filter(|b| !b.is_empty()) {
        let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
        init.set_body(&JsValue::from_str(text));
    }
    Ok(init)
}

/// Whether PostgREST and the database answer (for `/health`).
pub async fn ping(cfg: &Config) -> bool {
    matches!(rpc(cfg, Caller::Anon, "health", "{}").await, Ok(body) if body.contains("true"))
}
