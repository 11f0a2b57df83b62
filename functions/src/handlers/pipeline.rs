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
use crate::log;
use shared::input::{field_error, fields, parse};
use shared::json::Obj;
use shared::signature::{self, SignatureError};
use shared::ApiError;
use web_sys::Response;

const TOLERANCE_SECS: i64 = 300;

/// The members every event has, and those of each type.
const EVENT_FIELDS: &[&str] = &[
    "type", "event_id", "job_id", "worker_id", "attempt", // every event
    "status", "progress", "message", "visibility_timeout_seconds", // job.progress
    "actual_cost", "output_url", "manifest", "assets", // job.succeeded
    "error_code", "error_message", "retryable", // job.failed
];

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let text = signed_body(&mut cx).await?;
    let body = parse(&text)?;
    let f = fields(&body, &["worker_id", "limit", "visibility_timeout_seconds"])?;
    let args = Obj::new()
        .str("p_worker_id", f.str("worker_id").map_err(field_error)?)
        .int("p_limit", f.opt_int("limit", 1, 100).map_err(field_error)?.unwrap_or(1))
        .int("p_visibility_timeout_seconds", f.opt_int("visibility_timeout_seconds", 10, 86_400).map_err(field_error)?.unwrap_or(300))
        .finish();
    db::rpc_response(&cx.cfg, Caller::Service, "claim_next_jobs", &args, 200).await
}

pub async fn events(mut cx: Cx) -> Result<Response, ApiError> {
    let text = signed_body(&mut cx).await?;
    let body = parse(&text)?;
    let f = fields(&body, EVENT_FIELDS)?;
    let event_id = f.str("event_id").map_err(field_error)?;
    let job_id = f.str("job_id").map_err(field_error)?;
    if event_id.is_empty() || event_id.len() > 255 {
        return Err(ApiError::invalid_field("event_id", "event_id must be 1 to 255 characters."));
    }
    if !shared::jwt::is_uuid(job_id) {
        return Err(ApiError::invalid_field("job_id", "job_id must be a UUID."));
    }
    // `attempt` is the job's `attempts` as claim_next_jobs returned it: an event of an earlier
    // attempt changes nothing, even from a worker that reuses its worker_id.
    let base = Obj::new()
        .str("p_job_id", job_id)
        .str("p_worker_id", f.str("worker_id").map_err(field_error)?)
        .int("p_attempt", f.int("attempt", 1, 1000).map_err(field_error)?);
    let kind = f.str("type").map_err(field_error)?;
    let (rpc, args) = match kind {
        "job.progress" => {
            let args = base
                .str("p_status", f.str("status").map_err(field_error)?)
                .opt_int("p_progress", f.opt_int("progress", 0, 100).map_err(field_error)?)
                .opt_str("p_message", f.opt_str("message").map_err(field_error)?);
            // The lease a heartbeat extends to; absent, the database's default (300 s) applies.
            let args = match f.opt_int("visibility_timeout_seconds", 10, 86_400).map_err(field_error)? {
                Some(secs) => args.int("p_visibility_timeout_seconds", secs),
                None => args,
            };
            ("report_job_progress", args)
        }
        "job.succeeded" => (
            "complete_job",
            base.int("p_actual_cost", f.int("actual_cost", 0, i64::from(i32::MAX)).map_err(field_error)?)
                .opt_str("p_output_url", f.opt_str("output_url").map_err(field_error)?)
                .raw("p_manifest", f.opt_raw("manifest").unwrap_or("null"))
                .raw("p_assets", f.opt_raw("assets").unwrap_or("[]")),
        ),
        "job.failed" => (
            "fail_job",
            base.str("p_error_code", f.str("error_code").map_err(field_error)?)
                .opt_str("p_error_message", f.opt_str("error_message").map_err(field_error)?)
                .bool("p_retryable", f.opt_bool("retryable").map_err(field_error)?.unwrap_or(true)),
        ),
        _ => return Err(ApiError::invalid_field("type", "type must be job.progress, job.succeeded or job.failed.")),
    };
    let resp = db::rpc_response(&cx.cfg, Caller::Service, rpc, &args.finish(), 200).await?;
    log::info(log::event("pipeline_event").str("event_id", event_id).str("rpc", rpc));
    Ok(resp)
}

/// Reads the raw body (capped) and verifies its signature before anything parses it.
async fn signed_body(cx: &mut Cx) -> Result<String, ApiError> {
    shared::input::require_json(cx.header("content-type").as_deref())?;
    let secrets_binding = cx.setting("PIPELINE_SIGNING_SECRET")?;
    let body = cx.body_bytes(shared::input::MAX_BODY_BYTES).await?;
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let header = cx.header("pipeline-signature");
    signature::verify(header.as_deref(), &body, &signature::secrets(&secrets_binding), now, TOLERANCE_SECS).map_err(|e| {
        log::info(log::event("signature_rejected").str("reason", e.reason()));
        match e {
            SignatureError::Stale => ApiError::unauthorized("signature_expired", "The signature timestamp is outside the 5-minute window."),
            _ => ApiError::unauthorized("invalid_signature", "The Pipeline-Signature header does not verify."),
        }
    })?;
    shared::input::body_text(body)
}
