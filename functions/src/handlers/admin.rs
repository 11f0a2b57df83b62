//! The admin API (`/v1/admin/...`): support and administration for the team running the app.
//!
//! Allowed for users whose token carries `app_metadata.role = "admin"` and for the service key
//! ([`authenticate_admin`]); every RPC checks the same again in the database, so a user calling it
//! through PostgREST directly is refused too. Every action takes a `reason` and is written to the
//! append-only audit log (`GET /v1/admin/audit`). The changing actions (POST) require an
//! `Idempotency-Key`: the same key with the same request answers the stored result with
//! `Idempotent-Replayed: true` and changes nothing; with another request it is 422. Reads (a
//! user's look-up, the ledger export) take `reason` in the query and are audited too.

use crate::auth::{authenticate_admin, Admin};
use crate::context::Cx;
use crate::db;
use crate::respond;
use serde::{Deserialize, Serialize};
use serde_json::json;
use shared::admin::{self as rules, AdjustBody, GrantBody, ReasonBody, RefundBody, SpendCapBody};
use shared::ApiError;
use web_sys::Response;

/// The `{id}` of the path when it is a UUID; anything else names nothing (404).
fn path_id<'a>(cx: &'a Cx, what: &str) -> Result<&'a str, ApiError> {
    let id = cx.params.first().map(String::as_str).unwrap_or_default();
    if shared::jwt::is_uuid(id) {
        Ok(id)
    } else {
        Err(ApiError::new(404, "not_found", format!("No such {what}.")))
    }
}

/// The database names its parameters after what they are (`user_id`, `amount`); a client field
/// the RPC reports under another name is renamed here.
fn client_field(err: ApiError, from: &str, to: &str) -> ApiError {
    if err.field.as_deref() == Some(from) {
        err.with_field(to)
    } else {
        err
    }
}

/// What every changing action answers: the RPC's JSON, 200, `Idempotent-Replayed` on a replay.
#[derive(Deserialize)]
struct Replayed {
    #[serde(default)]
    replayed: bool,
}

/// A changing action: admin check, idempotency key, body, then one RPC with `args(key, body)`.
async fn action<T, F>(cx: Cx, rpc: &str, args: F) -> Result<Response, ApiError>
where
    T: for<'de> Deserialize<'de>,
    F: FnOnce(&str, T) -> Result<serde_json::Value, ApiError>,
{
    action_naming(cx, rpc, args, None).await
}

/// [`action`], naming `db_field` in the database's `invalid_request` errors that name no field
/// (the edge's own errors keep theirs).
async fn action_naming<T, F>(mut cx: Cx, rpc: &str, args: F, db_field: Option<&str>) -> Result<Response, ApiError>
where
    T: for<'de> Deserialize<'de>,
    F: FnOnce(&str, T) -> Result<serde_json::Value, ApiError>,
{
    let admin = authenticate_admin(&cx).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    let text = cx.body_text().await?;
    let body: T = shared::input::body(&text)?;
    let args = args(&key, body)?.to_string();
    let raw = db::rpc(&cx.cfg, admin.caller(), rpc, &args).await.map_err(|e| match db_field {
        Some(field) if e.code == "invalid_request" && e.field.is_none() => e.with_field(field),
        _ => e,
    })?;
    let replayed = serde_json::from_str::<Replayed>(&raw)
        .map_err(|e| ApiError::internal().because(format!("{rpc} answered unexpected JSON: {e}")))?
        .replayed;
    let resp = respond::json(200, raw);
    if replayed {
        let _ = resp.headers().set("idempotent-replayed", "true");
    }
    Ok(resp)
}

/// `GET /v1/admin/users/{id}?reason=&ledger_before=&ledger_limit=`
pub async fn lookup_user(cx: Cx) -> Result<Response, ApiError> {
    let admin = authenticate_admin(&cx).await?;
    let id = path_id(&cx, "user")?;
    let q = rules::query(&cx.req.url(), &["reason", "ledger_before", "ledger_limit"])?;
    let args = json!({
        "p_target_user_id": id,
        "p_reason": rules::param(&q, "reason"),
        "p_ledger_before": rules::int_param(&q, "ledger_before", 1, i64::MAX)?,
        "p_ledger_limit": rules::int_param(&q, "ledger_limit", 1, 100)?,
    });
    db::rpc_response(&cx.cfg, admin.caller(), "admin_lookup_user", &args.to_string(), 200)
        .await
        .map_err(|e| client_field(e, "user_id", "id"))
}

/// `POST /v1/admin/users/{id}/grants` `{amount, expires_at?, reason}`: promotional credits.
pub async fn grant(cx: Cx) -> Result<Response, ApiError> {
    let id = path_id(&cx, "user")?.to_owned();
    let args = |key: &str, b: GrantBody| {
        shared::input::range("amount", b.amount, 1, 1_000_000)?;
        b.check()?;
        Ok(json!({"p_idempotency_key": key, "p_target_user_id": id, "p_amount": b.amount,
                  "p_expires_at": b.expires_at, "p_reason": b.reason}))
    };
    // The one free-form value Postgres parses itself: a bad timestamp is a data exception without a field.
    action_naming(cx, "admin_grant_credits", args, Some("expires_at"))
        .await
        .map_err(|e| client_field(e, "user_id", "id"))
}

/// `POST /v1/admin/users/{id}/adjustments` `{amount (signed), reason}`.
pub async fn adjust(cx: Cx) -> Result<Response, ApiError> {
    let id = path_id(&cx, "user")?.to_owned();
    action(cx, "admin_adjust_credits", |key, b: AdjustBody| {
        shared::input::range("amount", b.amount, -1_000_000, 1_000_000)?;
        Ok(json!({"p_idempotency_key": key, "p_target_user_id": id, "p_amount": b.amount, "p_reason": b.reason}))
    })
    .await
    .map_err(|e| client_field(e, "user_id", "id"))
}

/// `POST /v1/admin/grants/{id}/void` `{reason}`: voids what remains of one grant.
pub async fn void_grant(cx: Cx) -> Result<Response, ApiError> {
    let id = path_id(&cx, "grant")?.to_owned();
    action(cx, "admin_void_grant", |key, b: ReasonBody| {
        Ok(json!({"p_idempotency_key": key, "p_grant_id": id, "p_reason": b.reason}))
    })
    .await
    .map_err(|e| client_field(e, "grant_id", "id"))
}

/// `POST /v1/admin/jobs/{id}/refund` `{amount?, reason}`: all or part of a job's captured credits.
pub async fn refund_job(cx: Cx) -> Result<Response, ApiError> {
    let id = path_id(&cx, "job")?.to_owned();
    action(cx, "admin_refund_job", |key, b: RefundBody| {
        if let Some(amount) = b.amount {
            shared::input::range("amount", amount, 1, 1_000_000)?;
        }
        Ok(json!({"p_idempotency_key": key, "p_job_id": id, "p_reason": b.reason, "p_amount": b.amount}))
    })
    .await
    .map_err(|e| client_field(e, "job_id", "id"))
}

async fn set_suspension(cx: Cx, suspended: bool) -> Result<Response, ApiError> {
    let id = path_id(&cx, "user")?.to_owned();
    action(cx, "admin_set_suspension", |key, b: ReasonBody| {
        Ok(json!({"p_idempotency_key": key, "p_target_user_id": id, "p_suspended": suspended, "p_reason": b.reason}))
    })
    .await
    .map_err(|e| client_field(e, "user_id", "id"))
}

/// `POST /v1/admin/users/{id}/suspend` `{reason}`.
pub async fn suspend(cx: Cx) -> Result<Response, ApiError> {
    set_suspension(cx, true).await
}

/// `POST /v1/admin/users/{id}/unsuspend` `{reason}`.
pub async fn unsuspend(cx: Cx) -> Result<Response, ApiError> {
    set_suspension(cx, false).await
}

/// `POST /v1/admin/users/{id}/spend-cap` `{daily_spend_cap: n | null, reason}`.
pub async fn spend_cap(cx: Cx) -> Result<Response, ApiError> {
    let id = path_id(&cx, "user")?.to_owned();
    action(cx, "admin_set_spend_cap", |key, b: SpendCapBody| {
        let cap = b.cap()?;
        Ok(json!({"p_idempotency_key": key, "p_target_user_id": id, "p_daily_spend_cap": cap, "p_reason": b.reason}))
    })
    .await
    .map_err(|e| client_field(e, "user_id", "id"))
}

/// What `admin_export_ledger` answers.
#[derive(Deserialize)]
struct LedgerPage {
    items: Vec<rules::LedgerRow>,
    next_after: Option<i64>,
}

#[derive(Serialize)]
struct ExportArgs<'a> {
    p_target_user_id: &'a str,
    p_reason: Option<&'a str>,
    p_after: Option<i64>,
    p_limit: Option<i64>,
}

/// `GET /v1/admin/users/{id}/ledger.csv?reason=&after=&limit=`: one page of the ledger, oldest
/// first, as a CSV document with its header row; `X-Next-After` names the `after` of the next page.
pub async fn ledger_csv(cx: Cx) -> Result<Response, ApiError> {
    let admin = authenticate_admin(&cx).await?;
    let id = path_id(&cx, "user")?;
    let q = rules::query(&cx.req.url(), &["reason", "after", "limit"])?;
    let args = ExportArgs {
        p_target_user_id: id,
        p_reason: rules::param(&q, "reason"),
        p_after: rules::int_param(&q, "after", 1, i64::MAX)?,
        p_limit: rules::int_param(&q, "limit", 1, 1000)?,
    };
    let args = serde_json::to_string(&args).map_err(|e| ApiError::internal().because(e.to_string()))?;
    let raw = db::rpc(&cx.cfg, admin.caller(), "admin_export_ledger", &args)
        .await
        .map_err(|e| client_field(e, "user_id", "id"))?;
    let page: LedgerPage = serde_json::from_str(&raw)
        .map_err(|e| ApiError::internal().because(format!("admin_export_ledger answered unexpected JSON: {e}")))?;
    let resp = respond::json(200, rules::ledger_csv(&page.items)?);
    let headers = resp.headers();
    let _ = headers.set("content-type", "text/csv; charset=utf-8");
    let _ = headers.set("content-disposition", &format!("attachment; filename=\"ledger-{id}.csv\""));
    if let Some(next) = page.next_after {
        let _ = headers.set("x-next-after", &next.to_string());
    }
    Ok(resp)
}

/// `GET /v1/admin/audit?before=&limit=&user_id=`: the audit log, newest first.
pub async fn audit(cx: Cx) -> Result<Response, ApiError> {
    let admin: Admin = authenticate_admin(&cx).await?;
    let q = rules::query(&cx.req.url(), &["before", "limit", "user_id"])?;
    let user_id = rules::param(&q, "user_id");
    if user_id.is_some_and(|u| !shared::jwt::is_uuid(u)) {
        return Err(ApiError::invalid_field("user_id", "user_id must be a user id."));
    }
    let args = json!({
        "p_before": rules::int_param(&q, "before", 1, i64::MAX)?,
        "p_limit": rules::int_param(&q, "limit", 1, 100)?,
        "p_target_user_id": user_id,
    });
    db::rpc_response(&cx.cfg, admin.caller(), "admin_list_audit", &args.to_string(), 200).await
}

/// `GET /v1/admin/webhooks?before=&limit=&status=&event_type=&user_id=`: webhook events with their
/// delivery state, newest first; `next_before` names the next page.
pub async fn webhooks(cx: Cx) -> Result<Response, ApiError> {
    let admin: Admin = authenticate_admin(&cx).await?;
    let q = rules::query(&cx.req.url(), &["before", "limit", "status", "event_type", "user_id"])?;
    let user_id = rules::param(&q, "user_id");
    if user_id.is_some_and(|u| !shared::jwt::is_uuid(u)) {
        return Err(ApiError::invalid_field("user_id", "user_id must be a user id."));
    }
    let args = json!({
        "p_before": rules::param(&q, "before"),
        "p_limit": rules::int_param(&q, "limit", 1, 100)?,
        "p_status": rules::param(&q, "status"),
        "p_event_type": rules::param(&q, "event_type"),
        "p_target_user_id": user_id,
    });
    db::rpc_response(&cx.cfg, admin.caller(), "admin_list_webhook_deliveries", &args.to_string(), 200).await
}
