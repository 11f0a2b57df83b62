//! The generation pipeline's side of the edge: `POST /v1/pipeline/claim` (lease the next runnable
//! jobs) and `POST /v1/pipeline/events`: `job.progress` (heartbeat and state), `job.step` (one
//! step's status, progress, error, log excerpt and artifacts), `job.succeeded` (the actual cost and
//! the assets, listed by the names they were uploaded under), `job.failed`, and `job.canceled`
//! (the pipeline stopped a job whose cancel the user requested, reporting what it spent).
//! `job.progress` and `job.step` answer `cancel_requested`: when true, the pipeline stops and sends
//! `job.canceled` (a `job.succeeded` or `job.failed` then also ends the job CANCELED).
//!
//! Both are signed by the pipeline with `Pipeline-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
//! "{t}.{raw body}">` (the Stripe scheme, `shared::signature`) under `PIPELINE_SIGNING_SECRET`
//! (comma-separated during rotation), within 5 minutes. The RPCs run as service_role. Every event
//! is idempotent and safe out of order in the database: a duplicate or late event answers 200 with
//! `"applied": false` and changes nothing.

use crate::context::Cx;
use crate::db::{self, Caller};
use crate::log;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use shared::input::range;
use shared::signature::{self, SignatureError};
use shared::ApiError;
use std::collections::BTreeMap;
use web_sys::Response;

const TOLERANCE_SECS: i64 = 300;

/// `POST /v1/pipeline/claim`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClaimRequest {
    worker_id: String,
    limit: Option<i64>,
    visibility_timeout_seconds: Option<i64>,
}

/// `POST /v1/pipeline/events`: the members every event has, and those of each type.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Event<'a> {
    // Every event.
    #[serde(rename = "type")]
    kind: String,
    event_id: String,
    job_id: String,
    worker_id: String,
    attempt: i64,
    // job.progress
    status: Option<String>,
    progress: Option<i64>,
    message: Option<String>,
    visibility_timeout_seconds: Option<i64>,
    // job.succeeded
    actual_cost: Option<i64>,
    output_url: Option<String>,
    #[serde(borrow)]
    manifest: Option<&'a RawValue>,
    #[serde(borrow)]
    assets: Option<&'a RawValue>,
    // job.failed
    error_code: Option<String>,
    error_message: Option<String>,
    retryable: Option<bool>,
    // job.step (with status and progress)
    step: Option<String>,
    error: Option<String>,
    log_excerpt: Option<String>,
    #[serde(borrow)]
    artifacts: Option<&'a RawValue>,
    // job.canceled
    spent: Option<i64>,
}

fn required<T>(field: &str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| ApiError::invalid_field(field, format!("{field} is required.")))
}

/// RPC arguments whose members keep the client's JSON text where it is passed through.
#[derive(Default)]
struct Args(BTreeMap<&'static str, Box<RawValue>>);

impl Args {
    fn set(&mut self, k: &'static str, v: Value) {
        if let Ok(raw) = serde_json::value::to_raw_value(&v) {
            self.0.insert(k, raw);
        }
    }
    /// A member passed through as the client sent it (the RPC validates it), or `default`.
    fn raw(&mut self, k: &'static str, v: Option<&RawValue>, default: &str) {
        let raw = v.map(RawValue::to_owned).or_else(|| RawValue::from_string(default.to_owned()).ok());
        if let Some(raw) = raw {
            self.0.insert(k, raw);
        }
    }
    fn text(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_default()
    }
}

pub async fn claim(mut cx: Cx) -> Result<Response, ApiError> {
    let text = signed_body(&mut cx).await?;
    let body: ClaimRequest = shared::input::body(&text)?;
    let limit = body.limit.map(|n| range("limit", n, 1, 100)).transpose()?.unwrap_or(1);
    let lease = body
        .visibility_timeout_seconds
        .map(|n| range("visibility_timeout_seconds", n, 10, 86_400))
        .transpose()?
        .unwrap_or(300);
    let args = json!({ "p_worker_id": body.worker_id, "p_limit": limit, "p_visibility_timeout_seconds": lease });
    db::rpc_response(&cx.cfg, Caller::Service, "claim_next_jobs", &args.to_string(), 200).await
}

pub async fn events(mut cx: Cx) -> Result<Response, ApiError> {
    let text = signed_body(&mut cx).await?;
    let e: Event<'_> = shared::input::body(&text)?;
    if e.event_id.is_empty() || e.event_id.len() > 255 {
        return Err(ApiError::invalid_field("event_id", "event_id must be 1 to 255 characters."));
    }
    if !shared::jwt::is_uuid(&e.job_id) {
        return Err(ApiError::invalid_field("job_id", "job_id must be a UUID."));
    }
    // `attempt` is the job's `attempts` as claim_next_jobs returned it: an event of an earlier
    // attempt changes nothing, even from a worker that reuses its worker_id.
    let mut args = Args::default();
    args.set("p_job_id", e.job_id.clone().into());
    args.set("p_worker_id", e.worker_id.clone().into());
    args.set("p_attempt", range("attempt", e.attempt, 1, 1000)?.into());
    let rpc = match e.kind.as_str() {
        "job.progress" => {
            args.set("p_status", required("status", e.status)?.into());
            args.set("p_progress", e.progress.map(|n| range("progress", n, 0, 100)).transpose()?.into());
            args.set("p_message", e.message.into());
            // The lease a heartbeat extends to; absent, the database's default (300 s) applies.
            if let Some(secs) = e.visibility_timeout_seconds {
                args.set("p_visibility_timeout_seconds", range("visibility_timeout_seconds", secs, 10, 86_400)?.into());
            }
            "report_job_progress"
        }
        "job.succeeded" => {
            args.set(
                "p_actual_cost",
                range("actual_cost", required("actual_cost", e.actual_cost)?, 0, i64::from(i32::MAX))?.into(),
            );
            args.set("p_output_url", e.output_url.into());
            args.raw("p_manifest", e.manifest, "null");
            args.raw("p_assets", e.assets, "[]");
            "complete_job"
        }
        "job.failed" => {
            args.set("p_error_code", required("error_code", e.error_code)?.into());
            args.set("p_error_message", e.error_message.into());
            args.set("p_retryable", e.retryable.unwrap_or(true).into());
            "fail_job"
        }
        "job.step" => {
            args.set("p_step", required("step", e.step)?.into());
            args.set("p_status", required("status", e.status)?.into());
            args.set("p_progress", e.progress.map(|n| range("progress", n, 0, 100)).transpose()?.into());
            args.set("p_error", e.error.into());
            args.set("p_log_excerpt", e.log_excerpt.into());
            args.raw("p_artifacts", e.artifacts, "null");
            "report_job_step"
        }
        "job.canceled" => {
            args.set("p_spent", range("spent", e.spent.unwrap_or(0), 0, i64::from(i32::MAX))?.into());
            "finish_canceled_job"
        }
        _ => {
            return Err(ApiError::invalid_field(
                "type",
                "type must be job.progress, job.step, job.succeeded, job.failed or job.canceled.",
            ))
        }
    };
    let resp = db::rpc_response(&cx.cfg, Caller::Service, rpc, &args.text(), 200).await?;
    log::info(log::event("pipeline_event").str("event_id", &e.event_id).str("rpc", rpc));
    Ok(resp)
}

/// Reads the raw body (capped) and verifies its signature before anything parses it.
async fn signed_body(cx: &mut Cx) -> Result<String, ApiError> {
    shared::input::require_json(cx.header("content-type").as_deref())?;
    // The secret is checked before the body is read: a missing one is a deployment fault.
    cx.setting("PIPELINE_SIGNING_SECRET")?;
    let body = cx.body_bytes(shared::input::MAX_BODY_BYTES).await?;
    verify_signature(cx, &body)?;
    shared::input::body_text(body)
}

/// Verifies the `Pipeline-Signature` header over `signed` (the raw body of a JSON call, or an
/// upload's canonical description, `shared::outputs::upload_signing_input`); answers the signed
/// timestamp.
pub(crate) fn verify_signature(cx: &Cx, signed: &[u8]) -> Result<i64, ApiError> {
    let secrets_binding = cx.setting("PIPELINE_SIGNING_SECRET")?;
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let header = cx.header("pipeline-signature");
    let t = signature::verify(header.as_deref(), signed, &signature::secrets(&secrets_binding), now, TOLERANCE_SECS)
        .map_err(|e| {
            log::info(log::event("signature_rejected").str("reason", e.reason()));
            match e {
                // One status per code: a bad or stale signature is 400 wherever it is checked
                // (Stripe's webhook too); a retry with the same signature cannot succeed.
                SignatureError::Stale => {
                    ApiError::new(400, "signature_expired", "The signature timestamp is outside the 5-minute window.")
                }
                _ => ApiError::new(400, "invalid_signature", "The Pipeline-Signature header does not verify."),
            }
        })?;
    Ok(t)
}
