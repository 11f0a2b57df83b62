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
use crate::db::{self, Caller};
use crate::log;
use crate::respond;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use shared::ApiError;
use web_sys::Response;

#[derive(Serialize)]
struct Args<'a> {
    p_idempotency_key: &'a str,
    /// The client's request as it sent it: the RPC validates every field.
    p_request: &'a RawValue,
}

/// What the `generate` RPC answers: `{"replayed", "response": {"job": {"id", ...}, ...}}`.
#[derive(Deserialize)]
struct Generated<'a> {
    replayed: bool,
    #[serde(borrow)]
    response: &'a RawValue,
}

#[derive(Deserialize)]
struct Answer {
    job: Job,
}

#[derive(Deserialize)]
struct Job {
    id: String,
}

/// The queue producer binding the generation pipeline consumes.
pub const JOBS_QUEUE: &str = "JOBS_QUEUE";

pub async fn handle(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let key = shared::input::idempotency_key(cx.header("idempotency-key").as_deref())?.to_owned();
    // The field rules live in the RPC (one source of truth); the edge checks the envelope.
    let text = cx.body_text().await?;
    let request = shared::input::raw_object(&text)?;
    let args = serde_json::to_string(&Args { p_idempotency_key: &key, p_request: request })
        .map_err(|e| ApiError::internal().because(e.to_string()))?;
    let raw = db::rpc(&cx.cfg, Caller::User(&user.token), "generate", &args).await?;
    let unexpected =
        |e: serde_json::Error| ApiError::internal().because(format!("generate answered unexpected JSON: {e}"));
    let generated: Generated<'_> = serde_json::from_str(&raw).map_err(unexpected)?;
    let replayed = generated.replayed;
    let response = generated.response;
    let job_id = serde_json::from_str::<Answer>(response.get()).map_err(unexpected)?.job.id;
    if !replayed {
        enqueue(&cx, &job_id).await;
    }
    let resp = respond::json(202, response.get().to_owned());
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
    let message = bindings::object(&json!({ "type": "job.created", "job_id": job_id }));
    let options = bindings::object(&json!({ "contentType": "json" }));
    if let Err(why) = bindings::call(&cx.env, JOBS_QUEUE, "send", &[message, options]).await {
        log::error(log::event("enqueue_failed").str("job_id", job_id).str("reason", why));
    }
}
