//! Calling Postgres through PostgREST, with the `postgrest` crate (postgrest-rs).
//!
//! Every handler makes one `POST {POSTGREST_URL}/rpc/{name}` with the caller's token, so the
//! database sees the same user the edge verified; [`client`] is the one place a `Postgrest` client
//! is made for a caller, for RPCs and for table reads (`client(..).from("table")`) alike.
//!
//! What the crate does not do is wrapped here, with today's semantics:
//! - a deadline: postgrest-rs (on reqwest's wasm backend) has no timeout, so the whole exchange,
//!   answer and body, is raced against `POSTGREST_TIMEOUT_MS`; the losing fetch is dropped, which
//!   aborts it (reqwest's `AbortGuard`), and the client gets 504 `upstream_timeout`;
//! - an unreachable PostgREST is a 503 with `Retry-After`;
//! - serialization failures and deadlocks are retried at most [`MAX_ATTEMPTS`] times, then 503;
//! - every other answer is mapped once, by `shared::postgrest::map_error`.

use futures_util::future::{select, Either};
use postgrest::Postgrest;
use shared::config::Config;
use shared::postgrest::{map_error, Outcome};
use shared::ApiError;
use std::time::Duration;
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
    let client = client(cfg, &caller)?;
    for attempt in 1..=MAX_ATTEMPTS {
        let (status, body) = send(cfg, &client, name, args).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        match map_error(status, body.as_bytes()) {
            Outcome::Retry if attempt < MAX_ATTEMPTS => continue,
            Outcome::Retry => return Err(ApiError::unavailable()),
            Outcome::Fail(err) => {
                if err.status >= 500 {
                    crate::log::error(
                        crate::log::event("postgrest_error")
                            .str("rpc", name)
                            .int("status", i64::from(status))
                            .str("body", body.get(..body.len().min(300)).unwrap_or("")),
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

/// Calls `public.<name>(args)` and answers the client with its JSON.
pub async fn rpc_response(
    cfg: &Config,
    caller: Caller<'_>,
    name: &str,
    args: &str,
    status: u16,
) -> Result<Response, ApiError> {
    let body = rpc(cfg, caller, name, args).await?;
    Ok(crate::respond::json(status, body))
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
        let (status, body) = within_deadline(cfg, query(client.from(table))).await?;
        if (200..300).contains(&status) {
            return Ok(body);
        }
        match map_error(status, body.as_bytes()) {
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

/// One exchange within the deadline: the status and the body text.
async fn send(cfg: &Config, client: &Postgrest, name: &str, args: &str) -> Result<(u16, String), ApiError> {
    within_deadline(cfg, client.rpc(name, args)).await
}

/// Executes one PostgREST request, answer and body, within `POSTGREST_TIMEOUT_MS`.
async fn within_deadline(cfg: &Config, request: postgrest::Builder) -> Result<(u16, String), ApiError> {
    let exchange = async {
        let resp = request.execute().await?;
        let status = resp.status().as_u16();
        Ok::<_, reqwest::Error>((status, resp.text().await?))
    };
    let deadline = worker::Delay::from(Duration::from_millis(u64::from(cfg.postgrest_timeout_ms)));
    match select(Box::pin(exchange), Box::pin(deadline)).await {
        Either::Left((Ok(answer), _)) => Ok(answer),
        Either::Left((Err(e), _)) => {
            crate::log::error(
                crate::log::event("postgrest_unreachable").bool("timeout", false).str("error", &e.to_string()),
            );
            Err(ApiError::unavailable())
        }
        // Dropping the exchange aborts its fetch.
        Either::Right(_) => {
            crate::log::error(crate::log::event("postgrest_unreachable").bool("timeout", true));
            Err(ApiError::timeout())
        }
    }
}

/// Whether PostgREST and the database answer (for `/health`).
pub async fn ping(cfg: &Config) -> bool {
    matches!(rpc(cfg, Caller::Anon, "health", "{}").await, Ok(body) if body.contains("true"))
}
