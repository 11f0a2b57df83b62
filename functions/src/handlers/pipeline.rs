//! The generation pipeline's side of the edge: `POST /v1/pipeline/claim` (lease the next runnable
//! jobs) and `POST /v1/pipeline/events` (progress, success with the actual cost, failure).
//!
//! Both are signed by the pipeline with `Pipeline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "{t}.{raw body}">` (the Stripe scheme, `shared::signature`) under `PIPELINE_SIGNING_SECRET`
//! (comma-separated during rotation), within 5 minutes. The RPCs run as service_role. Every event
//! is idempotent and safe out of order in the database: a duplicate or late event answers 200 with
//! `"applied": false` and changes nothing.

use crate::context::Cx;
use crate::db::{self, Caller};
use crate::respond;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::signature::{self, SignatureError};
use shared::ApiError;
use worker::Response;

const TOLERANCE_SECS: i64 = 300;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimRequest {
    worker_id: String,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    visibility_timeout_seconds: Option<u32>,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Event {
    #[serde(rename = "job.progress")]
    Progress(Progress),
    #[serde(rename = "job.succeeded")]
    Succeeded(Succeeded),
    #[serde(rename = "job.failed")]
    Failed(Failed),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    event_id: String,
    job_id: String,
    worker_id: String,
    status: String,
    #[serde(default)]
    progress: Option<u8>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Succeeded {
    event_id: String,
    job_id: String,
    worker_id: String,
    actual_cost: u32,
    #[serde(default)]
    output_url: Option<String>,
    #[serde(default)]
    manifest: Option<Value>,
    #[serde(default)]
    assets: Option<Vec<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Failed {
    event_id: String,
    job_id: String,
    worker_id: String,
    error_code: String,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    retryable: Option<bool>,
}

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let body = signed_body(&mut cx).await?;
    let req: ClaimRequest = shared::input::parse_json(&body)?;
    let args = json!({
        "p_worker_id": req.worker_id,
        "p_limit": req.limit.unwrap_or(1),
        "p_visibility_timeout_seconds": req.visibility_timeout_seconds.unwrap_or(300),
    });
    let out = db::rpc(&cx.cfg, Caller::Service, "claim_next_jobs", &args.to_string()).await?;
    Ok(respond::json(200, out))
}

pub async fn events(mut cx: Cx) -> Result<Response, ApiError> {
    let body = signed_body(&mut cx).await?;
    let event: Event = shared::input::parse_json(&body)?;
    let (rpc, event_id, job_id, args) = match event {
        Event::Progress(e) => (
            "report_job_progress",
            e.event_id,
            e.job_id.clone(),
            json!({ "p_job_id": e.job_id, "p_worker_id": e.worker_id, "p_status": e.status, "p_progress": e.progress, "p_message": e.message }),
        ),
        Event::Succeeded(e) => (
            "complete_job",
            e.event_id,
            e.job_id.clone(),
            json!({ "p_job_id": e.job_id, "p_worker_id": e.worker_id, "p_actual_cost": e.actual_cost, "p_output_url": e.output_url,
                    "p_manifest": e.manifest, "p_assets": e.assets.unwrap_or_default() }),
        ),
        Event::Failed(e) => (
            "fail_job",
            e.event_id,
            e.job_id.clone(),
            json!({ "p_job_id": e.job_id, "p_worker_id": e.worker_id, "p_error_code": e.error_code,
                    "p_error_message": e.error_message, "p_retryable": e.retryable.unwrap_or(true) }),
        ),
    };
    if event_id.is_empty() || event_id.len() > 255 {
        return Err(ApiError::invalid_field("event_id", "event_id must be 1 to 255 characters."));
    }
    if !shared::jwt::is_uuid(&job_id) {
        return Err(ApiError::invalid_field("job_id", "job_id must be a UUID."));
    }
    let out = db::rpc(&cx.cfg, Caller::Service, rpc, &args.to_string()).await?;
    worker::console_log!("{{\"event\":\"pipeline_event\",\"event_id\":{:?},\"rpc\":\"{}\"}}", event_id, rpc);
    Ok(respond::json(200, out))
}

/// Reads the raw body (capped) and verifies its signature before anything parses it.
async fn signed_body(cx: &mut Cx) -> Result<Vec<u8>, ApiError> {
    shared::input::require_json(cx.header("content-type").as_deref())?;
    let secrets_binding = cx.setting("PIPELINE_SIGNING_SECRET")?;
    let body = cx.req.bytes().await.map_err(|_| ApiError::new(400, "invalid_json", "The body could not be read."))?;
    if body.len() > shared::input::MAX_BODY_BYTES {
        return Err(shared::input::too_large());
    }
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let header = cx.header("pipeline-signature");
    signature::verify(header.as_deref(), &body, &signature::secrets(&secrets_binding), now, TOLERANCE_SECS).map_err(|e| {
        worker::console_log!("{{\"event\":\"signature_rejected\",\"reason\":\"{:?}\"}}", e);
        match e {
            SignatureError::Stale => ApiError::unauthorized("signature_expired", "The signature timestamp is outside the 5-minute window."),
            _ => ApiError::unauthorized("invalid_signature", "The Pipeline-Signature header does not verify."),
        }
    })?;
    Ok(body)
}
