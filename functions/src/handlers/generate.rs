//! `POST /v1/generate`: start a generation job. The RPC validates the request, prices it from the
//! catalog, holds the credits and creates the job and its idempotency record in one transaction;
//! the Worker then hands the new job to the pipeline's queue.
//!
//! Idempotency: `Idempotency-Key` is required. A replay of a finished request answers the stored
//! response with `Idempotent-Replayed: true`; the same key with another body is 422; the same key
//! still in flight is 409. The queue message is sent only by the request that created the job.

use crate::auth::{authenticate, Anonymous};
use crate::bindings;
use crate::context::Cx;
use crate::log;
use crate::db::{self, Caller};
use crate::respond;
use shared::json::Obj;
use shared::ApiError;
use web_sys::Response;

/// The queue producer binding the generation pipeline consumes.
pub const JOBS_QUEUE: &str = "JOBS_QUEUE";

pub async fn handle(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    // The field rules live in the RPC (one source of truth); the edge checks the envelope.
    let text = cx.body_text().await?;
    let request = shared::input::parse(&text)?;
    if !request.is_object() {
        return Err(shared::input::field_error(shared::jsonr::FieldError::NotObject));
    }
    let args = Obj::new().str("p_idempotency_key", &key).raw("p_request", request.raw).finish();
    let raw = db::rpc(&cx.cfg, Caller::User(&user.token), "generate", &args).await?;
    // {"replayed": bool, "response": {"job": {"id", ...}, "balance": {...}}}
    let generated = shared::jsonr::parse(&raw).map_err(|_| ApiError::internal())?;
    let replayed = generated.get("replayed").and_then(|v| v.as_bool()).ok_or_else(ApiError::internal)?;
    let response = generated.get("response").ok_or_else(ApiError::internal)?;
    let job_id = response.str_at(&["job", "id"]).ok_or_else(ApiError::internal)?.to_owned();
    if !replayed {
        enqueue(&cx, &job_id).await;
    }
    let resp = respond::json(202, response.raw.to_owned());
    let _ = resp.headers().set("location", &format!("/v1/jobs/{job_id}"));
    if replayed {
        let _ = resp.headers().set("idempotent-replayed", "true");
    }
    Ok(resp)
}

/// Hands the job to the pipeline. The job is already durable in QUEUED state, which is the source
/// of truth (pipeline workers also pull with `claim_next_jobs`), so a failed send is logged and the
/// client still gets its 202.
async fn enqueue(cx: &Cx, job_id: &str) {
    let message = bindings::object(&Obj::new().str("type", "job.created").str("job_id", job_id).finish());
    let options = bindings::object(r#"{"contentType":"json"}"#);
    if let Err(why) = bindings::call(&cx.env, JOBS_QUEUE, "send", &[message, options]).await {
        log::error(log::event("enqueue_failed").str("job_id", job_id).str("reason", why));
    }
}
