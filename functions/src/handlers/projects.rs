//! The caller's projects: `GET /v1/projects` (keyset pagination, newest first),
//! `GET /v1/projects/{id}` (with its newest jobs), `PATCH /v1/projects/{id}` and
//! `DELETE /v1/projects/{id}`. Every call carries the caller's own token, so RLS and `auth.uid()`
//! decide; another user's project is a 404, exactly like an unknown one.
//!
//! Idempotency: none of these takes an `Idempotency-Key`. A PATCH sets fields to given values,
//! so repeating it ends in the same project; a DELETE of a deleted project answers the same
//! result with `replayed: true`.
//!
//! Deleting a project returns the R2 keys of its assets (`storage_keys`); the database has queued
//! every key in `storage_deletions`, and the Worker deletes the queued objects from the `OUTPUTS`
//! bucket right after (`storage::release`; the cron retries what fails).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::log;
use serde::Deserialize;
use serde_json::json;
use shared::ApiError;
use web_sys::Response;

/// The largest `PATCH /v1/projects/{id}` body: the database's own cap on the changes (256 KiB),
/// which leaves room for a 50,000-character transcript.
const MAX_PATCH_BYTES: usize = 256 * 1024;

/// The fields a PATCH may carry. Read for their names and JSON types only: the body itself goes
/// to `update_project` as sent (so `null`, which clears a field, is not lost), and the database
/// checks lengths, ranges and presets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code, reason = "the fields are read for their names and types only")]
struct Changes {
    title: Option<String>,
    prompt: Option<String>,
    niche_preset: Option<String>,
    target_minutes: Option<i64>,
    voice_profile_id: Option<String>,
    transcript_source: Option<String>,
    transcript_text: Option<String>,
}

/// The `{id}` of the path when it is a UUID; anything else cannot name a project.
fn project_id(cx: &Cx) -> Result<&str, ApiError> {
    let id = cx.params.first().map(String::as_str).unwrap_or_default();
    if shared::jwt::is_uuid(id) {
        Ok(id)
    } else {
        Err(ApiError::new(404, "not_found", "No such project."))
    }
}

/// The database names its parameters (`p_limit`); the client sent `limit`.
pub(crate) fn client_field(err: ApiError) -> ApiError {
    match err.field.as_deref().and_then(|f| f.strip_prefix("p_")) {
        Some(f @ ("limit" | "before" | "status")) => {
            let f = f.to_owned();
            err.with_field(f)
        }
        _ => err,
    }
}

pub async fn list(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let url = cx.req.url();
    let page = shared::input::page(&url, false)?;
    let args = json!({ "p_before": page.before, "p_limit": page.limit }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "list_projects", &args, 200).await.map_err(client_field)
}

pub async fn get(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let id = project_id(&cx)?;
    let args = json!({ "p_project_id": id }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_project", &args, 200).await
}

pub async fn update(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let id = project_id(&cx)?.to_owned();
    shared::input::require_json(cx.header("content-type").as_deref())?;
    let text = shared::input::body_text_max(cx.body_bytes(MAX_PATCH_BYTES).await?, MAX_PATCH_BYTES)?;
    let _: Changes = shared::input::body(&text)?;
    let changes = shared::input::raw_object(&text)?;
    let args = json!({ "p_project_id": id, "p_changes": changes }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "update_project", &args, 200).await
}

/// What `delete_project` answers, as far as the Worker reads it.
#[derive(Deserialize)]
struct Deleted {
    #[serde(default)]
    storage_keys: Vec<String>,
}

pub async fn delete(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let id = project_id(&cx)?;
    let args = json!({ "p_project_id": id }).to_string();
    let body = db::rpc(&cx.cfg, Caller::User(&user.token), "delete_project", &args).await?;
    let keys = storage_keys("project_deleted", &body);
    crate::storage::release(&cx.cfg, &cx.env, &keys).await;
    Ok(crate::respond::json(200, body))
}

/// The R2 keys an RPC queued in `storage_deletions` (its answer's `storage_keys`), which the
/// request then deletes (`storage::release`); logs how many (never the keys: they name the user's
/// files).
pub(crate) fn storage_keys(event: &str, body: &str) -> Vec<String> {
    let keys = serde_json::from_str::<Deleted>(body).map(|d| d.storage_keys).unwrap_or_default();
    log_queued(event, keys.len());
    keys
}

/// Logs how many R2 objects a deletion queued (never the keys: they name the user's files).
pub(crate) fn log_queued(event: &str, keys: usize) {
    if keys > 0 {
        log::info(log::event(event).int("storage_keys", keys as i64).str("storage", "queued in storage_deletions"));
    }
}
