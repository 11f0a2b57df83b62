//! The caller's own jobs, ledger and account: `GET /v1/jobs/{id}` (with steps and assets),
//! `GET /v1/jobs?status=&before=&limit=` and `GET /v1/ledger?before=&limit=` (keyset pagination,
//! newest first), `POST /v1/jobs/{id}/cancel` and `DELETE /v1/account`.
//!
//! Cancel and account closing take no `Idempotency-Key`: both are idempotent in the database
//! (a second cancel answers `outcome: unchanged` with the same job; a second close answers
//! `replayed: true`), so a retry after a lost answer is safe as it is.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::handlers::purchase::setting_or;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::ApiError;
use web_sys::Response;

/// Before an account closes, each of its Stripe subscriptions that has not ended is cancelled at
/// once (Stripe's `DELETE /v1/subscriptions/{id}`: "the customer won't be charged again"), and
/// Stripe's answer recorded as its state: a closed account can no longer reach
/// `/v1/subscription/cancel`, and every renewal after closing would be charged and parked for a
/// refund. All of them, not only the one `get_subscription` shows (two checkouts completed at once
/// make two; an App Store subscription may be the newer). Read from the `subscriptions` table with
/// the caller's own token (RLS: own rows). If Stripe cannot be reached the account is not closed
/// (503), so a retry does both. One Stripe no longer has (404) needs no cancelling. An App Store
/// subscription cannot be cancelled by the developer: it is left to the App Store (README).
async fn end_stripe_subscriptions(cx: &Cx, token: &str) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct Live {
        provider_subscription_id: String,
    }
    let rows = db::select_rows(&cx.cfg, Caller::User(token), "subscriptions", |q| {
        q.select("provider_subscription_id").eq("provider", "stripe").neq("status", "ended")
    })
    .await?;
    let live: Vec<Live> = serde_json::from_str(&rows)
        .map_err(|e| ApiError::internal().because(format!("subscriptions answered unexpected JSON: {e}")))?;
    if live.is_empty() {
        return Ok(());
    }
    let secret_key = cx.setting("STRIPE_SECRET_KEY")?;
    let base = setting_or(cx, "STRIPE_API_BASE", "https://api.stripe.com");
    for Live { provider_subscription_id: id } in live {
        if !super::subscription::is_subscription_id(&id) {
            return Err(ApiError::internal().because("a Stripe subscription id is not one"));
        }
        let Some(answer) = crate::stripe::delete(&base, &secret_key, &format!("/v1/subscriptions/{id}")).await? else {
            continue;
        };
        super::subscription::record_answer(cx, &answer, &format!("api-close-{id}")).await?;
    }
    Ok(())
}

pub async fn job(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let id = cx.params.first().map(String::as_str).unwrap_or_default();
    if !shared::jwt::is_uuid(id) {
        return Err(ApiError::new(404, "not_found", "No such job."));
    }
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_job", &json!({ "p_job_id": id }).to_string(), 200).await
}

pub async fn ledger(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    // The query is read from the raw URL: `Request::url()` would pull the `url` crate and its
    // IDNA tables (about 100 KB gzip) into the bundle for two numeric parameters.
    let raw = cx.req.url();
    let query = raw.split_once('?').map(|(_, q)| q.split('#').next().unwrap_or("")).unwrap_or("");
    let (mut before, mut limit) = (None::<i64>, 50i64);
    for (k, v) in query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))) {
        match k {
            "before" => {
                before = Some(v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    ApiError::invalid_field(
                        "before",
                        "before must be a positive ledger entry id (next_before of the previous page).",
                    )
                })?)
            }
            "limit" => {
                limit =
                    v.parse().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                        ApiError::invalid_field("limit", "limit must be a whole number from 1 to 100.")
                    })?
            }
            _ => return Err(ApiError::invalid_field("query", "Unknown query parameter; use before and limit.")),
        }
    }
    let args = json!({ "p_before": before, "p_limit": limit }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "list_ledger", &args, 200).await
}

pub async fn jobs(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let url = cx.req.url();
    let page = shared::input::page(&url, true)?;
    let args = json!({ "p_status": page.status, "p_before": page.before, "p_limit": page.limit }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "list_jobs", &args, 200)
        .await
        .map_err(super::projects::client_field)
}

pub async fn cancel_job(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let id = cx.params.first().map(String::as_str).unwrap_or_default();
    if !shared::jwt::is_uuid(id) {
        return Err(ApiError::new(404, "not_found", "No such job."));
    }
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "cancel_job", &json!({ "p_job_id": id }).to_string(), 200)
        .await
}

/// What `delete_account` answers. The R2 keys are not passed on: they are the closed user's file
/// names, and the client has nothing to do with them; it gets their count.
#[derive(Deserialize)]
struct Closed {
    closed: bool,
    replayed: bool,
    canceled_jobs: i64,
    released_holds: i64,
    #[serde(default)]
    storage_keys: Vec<String>,
}

#[derive(Serialize)]
struct ClosedAnswer {
    closed: bool,
    replayed: bool,
    canceled_jobs: i64,
    released_holds: i64,
    /// Stored files of the account queued for deletion; the Worker deletes them from R2 before it
    /// answers (the cron retries any it could not).
    files_queued_for_deletion: usize,
}

pub async fn delete_account(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    end_stripe_subscriptions(&cx, &user.token).await?;
    let body = db::rpc(&cx.cfg, Caller::User(&user.token), "delete_account", "{}").await?;
    let c: Closed = serde_json::from_str(&body)
        .map_err(|e| ApiError::internal().because(format!("delete_account answered unexpected JSON: {e}")))?;
    super::projects::log_queued("account_closed", c.storage_keys.len());
    crate::storage::release(&cx.cfg, &cx.env, &c.storage_keys).await;
    let answer = ClosedAnswer {
        closed: c.closed,
        replayed: c.replayed,
        canceled_jobs: c.canceled_jobs,
        released_holds: c.released_holds,
        files_queued_for_deletion: c.storage_keys.len(),
    };
    let text = serde_json::to_string(&answer).map_err(|e| ApiError::internal().because(e.to_string()))?;
    Ok(crate::respond::json(200, text))
}
