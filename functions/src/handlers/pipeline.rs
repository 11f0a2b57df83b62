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
use serde_json::value::RawValue;
use shared::json::Obj;
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

/// One pipeline event. A flat shape (`type` plus the fields of that type) is parsed without
/// serde's buffering of tagged enums, and each type's required fields are checked by hand.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    event_id: String,
    job_id: String,
    worker_id: String,
    // job.progress
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    progress: Option<u8>,
    #[serde(default)]
    message: Option<String>,
    // job.succeeded
    #[serde(default)]
    actual_cost: Option<u32>,
    #[serde(default)]
    output_url: Option<String>,
    #[serde(default)]
    manifest: Option<Box<RawValue>>,
    #[serde(default)]
    assets: Option<Box<RawValue>>,
    // job.failed
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    retryable: Option<bool>,
}

fn required<T>(v: Option<T>, field: &str) -> Result<T, ApiError> {
    v.ok_or_else(|| ApiError::invalid_field(field, format!("{field} is required for this event type.")))
}

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let body = signed_body(&mut cx).await?;
    let req: ClaimRequest = shared::input::parse_json(&body)?;
    let args = Obj::new()
        .str("p_worker_id", &req.worker_id)
        .int("p_limit", i64::from(req.limit.unwrap_or(1)))
        .int("p_visibility_timeout_seconds", i64::from(req.visibility_timeout_seconds.unwrap_or(300)))
        .finish();
    let out = db::rpc(&cx.cfg, Caller::Service, "claim_next_jobs", &args).await?;
    Ok(respond::json(200, out))
}

pub async fn events(mut cx: Cx) -> Result<Response, ApiError> {
    let body = signed_body(&mut cx).await?;
    let e: Event = shared::input::parse_json(&body)?;
    let base = Obj::new().str("p_job_id", &e.job_id).str("p_worker_id", &e.worker_id);
    let (rpc, args) = match e.kind.as_str() {
        "job.progress" => (
            "report_job_progress",
            base.str("p_status", &required(e.status, "status")?)
                .opt_int("p_progress", e.progress.map(i64::from))
                .opt_str("p_message", e.message.as_deref()),
        ),
        "job.succeeded" => (
            "complete_job",
            base.int("p_actual_cost", i64::from(required(e.actual_cost, "actual_cost")?))
                .opt_str("p_output_url", e.output_url.as_deref())
                .raw("p_manifest", e.manifest.as_deref().map_or("null", RawValue::get))
                .raw("p_assets", e.assets.as_deref().map_or("[]", RawValue::get)),
        ),
        "job.failed" => (
            "fail_job",
            base.str("p_error_code", &required(e.error_code, "error_code")?)
                .opt_str("p_error_message", e.error_message.as_deref())
                .bool("p_retryable", e.retryable.unwrap_or(true)),
        ),
        _ => return Err(ApiError::invalid_field("type", "type must be job.progress, job.succeeded or job.failed.")),
    };
    let (event_id, job_id) = (e.event_id, e.job_id);
    if event_id.is_empty() || event_id.len() > 255 {
        return Err(ApiError::invalid_field("event_id", "event_id must be 1 to 255 characters."));
    }
    if !shared::jwt::is_uuid(&job_id) {
        return Err(ApiError::invalid_field("job_id", "job_id must be a UUID."));
    }
    let out = db::rpc(&cx.cfg, Caller::Service, rpc, &args.finish()).await?;
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
