//! Generated files: the pipeline's upload, `PUT /v1/pipeline/jobs/{id}/assets/{name}`, and the
//! user's download, `GET /v1/jobs/{id}/assets/{asset_id}` (and HEAD).
//!
//! Upload: the body is streamed from the request into the `OUTPUTS` bucket and never held by the
//! Worker. The pipeline declares the bytes' SHA-256 (`Pipeline-Content-Sha256`), its worker id and
//! attempt in headers and signs them with method, path, Content-Length and Content-Type
//! (`shared::outputs::upload_signing_input`, the `Pipeline-Signature` scheme of its other calls);
//! R2 refuses bytes whose SHA-256 differs. Each upload is stored under a key of its own,
//! `<job id>/<name>/<upload id>`, then recorded with `register_asset`; when the database refuses it
//! (not the pipeline's job, another attempt, a finished job, a deleted project, or a signed upload
//! used before whose file has been replaced since) the object is deleted again and the answer is a
//! 409. Nothing is written for a refused upload. The signed description starts with the domain line
//! `outputs-upload-v1`, so no other pipeline signature passes for an upload's or the reverse.
//!
//! Download: which asset the caller may read is decided by RLS, reading `assets` through PostgREST
//! with the caller's own token; another user's asset is a 404 like an unknown one. The bytes are
//! streamed from R2 with one `Range` (206), or whole (200); the ETag is the recorded SHA-256, and
//! `If-Range` with another ETag (the file was replaced since) gets the whole file.

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::log;
use crate::storage::{self, PutError};
use serde::Deserialize;
use serde_json::json;
use shared::outputs::{self, ByteRange};
use shared::ApiError;
use web_sys::Response;

fn job_not_found() -> ApiError {
    ApiError::new(404, "not_found", "No such job.")
}

/// What `register_asset` answers: whether the upload is recorded, under which key, and whether
/// it was a replay (of a registration or of a signed upload).
#[derive(Deserialize)]
struct Registered {
    applied: bool,
    #[serde(default)]
    replayed: bool,
    #[serde(default)]
    storage_key: Option<String>,
}

pub async fn upload(cx: Cx) -> Result<Response, ApiError> {
    let job_id = cx.params.first().cloned().unwrap_or_default();
    let name = cx.params.get(1).cloned().unwrap_or_default();
    if !shared::jwt::is_uuid(&job_id) {
        return Err(job_not_found());
    }
    if !outputs::valid_name(&name) {
        return Err(ApiError::invalid_field(
            "name",
            "The asset name must be 1-128 characters of A-Z, a-z, 0-9, ., _ and -, not starting with . _ or -.",
        ));
    }
    let length = cx.header("content-length").ok_or_else(|| {
        ApiError::new(411, "length_required", "Send the file with a Content-Length header (no chunked uploads).")
    })?;
    let length: u64 = length
        .trim()
        .parse()
        .map_err(|_| ApiError::new(400, "invalid_request", "Content-Length must be a whole number."))?;
    let content_type_header = cx.header("content-type").unwrap_or_default();
    let (content_type, kind) = outputs::content_type(Some(&content_type_header)).ok_or_else(|| {
        let allowed: Vec<&str> = outputs::CONTENT_TYPES.iter().map(|(ct, _)| *ct).collect();
        ApiError::new(415, "unsupported_media_type", format!("Content-Type must be one of: {}.", allowed.join(", ")))
    })?;
    let sha256 = cx.header("pipeline-content-sha256").unwrap_or_default();
    if !outputs::is_sha256_hex(&sha256) {
        return Err(ApiError::invalid_field(
            "sha256",
            "Pipeline-Content-Sha256 must be the file's SHA-256 in 64 lower-case hex digits.",
        ));
    }
    let worker_id = cx.header("pipeline-worker-id").unwrap_or_default();
    if worker_id.is_empty() || worker_id.len() > 255 {
        return Err(ApiError::invalid_field("worker_id", "Pipeline-Worker-Id must be 1 to 255 characters."));
    }
    let attempt = cx
        .header("pipeline-attempt")
        .and_then(|a| a.trim().parse::<i64>().ok())
        .ok_or_else(|| ApiError::invalid_field("attempt", "Pipeline-Attempt must be a whole number."))?;
    let attempt = shared::input::range("attempt", attempt, 1, 1000)?;
    let url = cx.req.url();
    let path = shared::input::path_of(&url);
    let signed =
        outputs::upload_signing_input(path, length, &content_type_header, &sha256, &worker_id, attempt).into_bytes();
    let t = super::pipeline::verify_signature(&cx, &signed)?;
    // The database takes each signed upload once: a replay within the signature window cannot
    // put an older upload back in place of a newer one.
    let signature_ref = outputs::upload_signature_ref(t, &signed);
    let max = outputs::max_upload_bytes(crate::context::binding(&cx.env, "OUTPUTS_MAX_UPLOAD_BYTES").as_deref())
        .map_err(|why| ApiError::internal().because(why))?;
    if length > max {
        return Err(ApiError::new(413, "payload_too_large", format!("The file must be at most {max} bytes.")));
    }
    if length == 0 {
        return Err(ApiError::invalid_field("body", "An asset cannot be empty."));
    }
    let Some(body) = cx.req.body() else {
        return Err(ApiError::new(400, "incomplete_body", "The body did not have Content-Length bytes."));
    };

    let key = format!("{job_id}/{name}/{}", crate::crypto::random_uuid()?);
    storage::put(&cx.env, &key, &body, length, content_type, &sha256).await.map_err(|e| match e {
        PutError::Checksum => {
            ApiError::new(400, "checksum_mismatch", "The file's SHA-256 is not the one in Pipeline-Content-Sha256.")
        }
        PutError::Body => ApiError::new(400, "incomplete_body", "The body did not have Content-Length bytes."),
        PutError::Storage(why) => ApiError {
            retry_after: Some(2),
            ..ApiError::new(503, "storage_unavailable", "The file store is unavailable; retry shortly.")
        }
        .because(format!("R2 put: {why}")),
    })?;

    let args = json!({
        "p_job_id": job_id, "p_name": name, "p_kind": kind, "p_content_type": content_type,
        "p_size_bytes": length, "p_sha256": sha256, "p_worker_id": worker_id, "p_attempt": attempt,
        "p_storage_key": key, "p_signature_ref": signature_ref,
    })
    .to_string();
    let registered = db::rpc(&cx.cfg, Caller::Service, "register_asset", &args).await;
    let answer = match &registered {
        Ok(body) => serde_json::from_str::<Registered>(body).ok(),
        // No answer (a timeout, PostgREST unreachable, a 5xx): the database may have recorded the
        // upload, so its object stays. The pipeline retries under a new key; an object that was
        // not recorded is an orphan, never a recorded asset without its file.
        Err(e) if e.status >= 500 => {
            log::error(log::event("upload_outcome_unknown").str("job_id", &job_id).str("key", &key));
            return Err(e.clone());
        }
        Err(_) => None,
    };
    let applied = answer.as_ref().is_some_and(|r| r.applied);
    let replayed = answer.as_ref().is_some_and(|r| r.replayed);
    if !applied {
        // Nothing of a refused upload stays: the object goes now and is confirmed in the queue. The
        // database queued it too when it refused the upload (a failed delete is then retried by
        // the cron); a registration that failed queued nothing, and a failed delete is only logged.
        storage::release(&cx.cfg, &cx.env, std::slice::from_ref(&key)).await;
        registered.as_ref().map_err(Clone::clone)?;
        if replayed {
            return Err(ApiError::new(
                409,
                "upload_replayed",
                "This signed upload was used before and the file has been replaced since; sign the upload again.",
            ));
        }
        return Err(ApiError::new(
            409,
            "upload_refused",
            "The job does not take files from this worker and attempt (finished, canceled, or not yours).",
        ));
    }
    if answer.as_ref().and_then(|r| r.storage_key.as_deref()) != Some(key.as_str()) {
        // A replay answered with the record it made before: that object is the file, the one just
        // stored is not (the database queued it too).
        storage::release(&cx.cfg, &cx.env, std::slice::from_ref(&key)).await;
    }
    log::info(log::event("asset_uploaded").str("job_id", &job_id).int("bytes", length as i64));
    // A replaced object of the same name was queued for deletion; only the queue names it, so the
    // queue is drained (this is the pipeline's request, not a user's).
    storage::drain(&cx.cfg, &cx.env).await;
    Ok(crate::respond::json(201, registered.unwrap_or_default()))
}

/// The asset row the download reads (through RLS).
#[derive(Deserialize)]
struct AssetRow {
    name: Option<String>,
    storage_key: Option<String>,
    mime_type: Option<String>,
    size_bytes: Option<i64>,
    sha256: Option<String>,
}

pub async fn download(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let job_id = cx.params.first().map(String::as_str).unwrap_or_default();
    let asset_id = cx.params.get(1).map(String::as_str).unwrap_or_default();
    if !shared::jwt::is_uuid(job_id) || !shared::jwt::is_uuid(asset_id) {
        return Err(outputs::asset_not_found());
    }
    let rows = db::select_rows(&cx.cfg, Caller::User(&user.token), "assets", |q| {
        q.select("name,storage_key,mime_type,size_bytes,sha256").eq("id", asset_id).eq("job_id", job_id)
    })
    .await?;
    let rows: Vec<AssetRow> = serde_json::from_str(&rows)
        .map_err(|e| ApiError::internal().because(format!("assets answered unexpected JSON: {e}")))?;
    let Some(AssetRow { name, storage_key: Some(key), mime_type, size_bytes, sha256 }) = rows.into_iter().next() else {
        // Unknown, another user's, or an external file (its url is in the job).
        return Err(outputs::asset_not_found());
    };
    let size = u64::try_from(size_bytes.unwrap_or(0)).unwrap_or(0);
    let head = cx.req.method() == "HEAD";
    // The strong ETag is the recorded SHA-256 (R2 refused any other bytes under this key), known
    // before the object is read, so `If-Range` decides whether `Range` applies (RFC 9110, 13.1.5):
    // the same ETag serves the range; anything else (another file since, a weak tag, a date) the
    // whole file.
    let etag = sha256.as_deref().map(outputs::strong_etag);
    let range_header = cx.header("range");
    let range = match cx.header("if-range") {
        Some(v) if range_header.is_some() && !outputs::if_range_matches(&v, etag.as_deref()) => ByteRange::Full,
        _ => outputs::byte_range(range_header.as_deref(), size),
    };
    if range == ByteRange::Unsatisfiable {
        let resp = crate::respond::error(&ApiError::new(
            416,
            "range_not_satisfiable",
            format!("The range is outside the file ({size} bytes)."),
        ));
        let _ = resp.headers().set("content-range", &format!("bytes */{size}"));
        return Ok(resp);
    }
    let part = match range {
        ByteRange::Part { start, end } => Some((start, end - start + 1)),
        _ => None,
    };
    let object = storage::read(&cx.env, &key, part, head)
        .await
        .map_err(|why| {
            ApiError {
                retry_after: Some(2),
                ..ApiError::new(503, "storage_unavailable", "The file store is unavailable; retry shortly.")
            }
            .because(format!("R2 get: {why}"))
        })?
        .ok_or_else(|| {
            log::error(log::event("asset_object_missing").str("asset_id", asset_id));
            outputs::asset_not_found()
        })?;

    let headers = web_sys::Headers::new().map_err(|_| ApiError::internal())?;
    let content_type = mime_type.unwrap_or_else(|| "application/octet-stream".to_owned());
    let _ = headers.set("content-type", &content_type);
    let _ = headers.set("accept-ranges", "bytes");
    let _ = headers.set("etag", etag.as_deref().unwrap_or(&object.etag));
    if let Some(uploaded) = &object.uploaded {
        let _ = headers.set("last-modified", uploaded);
    }
    let _ = headers.set("cache-control", "private, no-store");
    let _ = headers.set("x-content-type-options", "nosniff");
    if let Some(name) = name {
        // The name is A-Z a-z 0-9 . _ - only, so it needs no quoting rules beyond the quotes.
        let _ = headers.set("content-disposition", &format!("inline; filename=\"{name}\""));
    }
    let (status, length) = match part {
        Some((start, length)) => {
            let _ = headers.set("content-range", &format!("bytes {start}-{}/{}", start + length - 1, object.size));
            (206, length)
        }
        None => (200, object.size),
    };
    let _ = headers.set("content-length", &length.to_string());
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    let body = if head { None } else { object.body.as_ref() };
    Response::new_with_opt_readable_stream_and_init(body, &init)
        .map_err(|_| ApiError::internal().because("building the download response"))
}
