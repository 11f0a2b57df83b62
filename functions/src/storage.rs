//! Generated files in the `OUTPUTS` R2 bucket: streaming an upload in, streaming a download (or a
//! byte range of it) out, and deleting what the database queued in `storage_deletions`.
//!
//! The bucket is a JS binding whose methods are called directly (`bindings::call`), so a file's
//! bytes go from the request's stream to R2 and from R2 to the response's stream without ever
//! entering wasm memory.

use crate::bindings;
use crate::db::{self, Caller};
use crate::log;
use js_sys::{Array, Object, Reflect};
use serde::Deserialize;
use shared::config::Config;
use wasm_bindgen::{JsCast, JsValue};
use worker::Env;

/// The binding's name in wrangler.toml and the test stack.
pub const BUCKET: &str = "OUTPUTS";

/// Keys per `list_storage_deletions` batch, and batches per drain (bounds its subrequests).
const DRAIN_BATCH: usize = 100;
const DRAIN_MAX_BATCHES: usize = 10;

fn set(target: &Object, k: &str, v: &JsValue) {
    let _ = Reflect::set(target, &JsValue::from_str(k), v);
}

fn get(target: &JsValue, k: &str) -> JsValue {
    Reflect::get(target, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// Why a put failed.
pub enum PutError {
    /// R2 refused the bytes: their SHA-256 is not the declared one.
    Checksum,
    /// The body ended before its Content-Length, or the stream failed.
    Body,
    /// The binding is missing or R2 failed.
    Storage(String),
}

/// Streams `body` (of exactly `length` bytes) into R2 under `key`, which R2 refuses unless the
/// bytes' SHA-256 is `sha256_hex`. The stream is piped through a `FixedLengthStream`, so R2 knows the
/// length up front and a body shorter or longer than declared fails instead of being stored.
pub async fn put(
    env: &Env,
    key: &str,
    body: &web_sys::ReadableStream,
    length: u64,
    content_type: &str,
    sha256_hex: &str,
) -> Result<(), PutError> {
    let ctor: js_sys::Function = get(&js_sys::global(), "FixedLengthStream")
        .dyn_into()
        .map_err(|_| PutError::Storage("FixedLengthStream is missing".into()))?;
    let fixed = Reflect::construct(&ctor, &Array::of1(&JsValue::from_f64(length as f64)))
        .map_err(|_| PutError::Storage("FixedLengthStream".into()))?;
    let writable = get(&fixed, "writable");
    let readable = get(&fixed, "readable");
    // The pipe runs while R2 reads the other end; its failure shows up as the put's.
    let pipe_to: js_sys::Function =
        get(body, "pipeTo").dyn_into().map_err(|_| PutError::Storage("pipeTo is missing".into()))?;
    let piped = pipe_to.call1(body, &writable).map_err(|_| PutError::Body)?;
    let piped = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(piped));

    let http = Object::new();
    set(&http, "contentType", &JsValue::from_str(content_type));
    let options = Object::new();
    set(&options, "httpMetadata", &http);
    set(&options, "sha256", &JsValue::from_str(sha256_hex));
    let args = [JsValue::from_str(key), readable, options.into()];
    let put = bindings::call_raw(env, BUCKET, "put", &args);
    let (put, piped) = futures_util::future::join(put, piped).await;
    match put {
        Ok(_) if piped.is_ok() => Ok(()),
        // R2 stored something while the body failed: that object is never recorded, so it goes now.
        Ok(_) => {
            if let Err(why) = delete(env, &[key.to_string()]).await {
                crate::log::error(crate::log::event("upload_cleanup_failed").str("reason", why));
            }
            Err(PutError::Body)
        }
        Err(err) => {
            let message = err
                .dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .or_else(|| err.as_string())
                .unwrap_or_default();
            let lower = message.to_ascii_lowercase();
            if lower.contains("checksum") || lower.contains("digest") {
                Err(PutError::Checksum)
            } else if piped.is_err() {
                Err(PutError::Body)
            } else {
                Err(PutError::Storage(message.chars().take(200).collect()))
            }
        }
    }
}

/// An object read from R2: its bytes (or the range asked for), size, ETag and upload time (an
/// HTTP date, for `Last-Modified`).
pub struct StoredObject {
    pub body: Option<web_sys::ReadableStream>,
    pub size: u64,
    pub etag: String,
    pub uploaded: Option<String>,
}

/// Reads `key` (`range`: offset and length), or only its metadata when `head`; `None` when absent.
pub async fn read(env: &Env, key: &str, range: Option<(u64, u64)>, head: bool) -> Result<Option<StoredObject>, String> {
    let found = if head {
        bindings::call(env, BUCKET, "head", &[JsValue::from_str(key)]).await
    } else {
        let options = Object::new();
        if let Some((offset, length)) = range {
            let r = Object::new();
            set(&r, "offset", &JsValue::from_f64(offset as f64));
            set(&r, "length", &JsValue::from_f64(length as f64));
            set(&options, "range", &r);
        }
        bindings::call(env, BUCKET, "get", &[JsValue::from_str(key), options.into()]).await
    }
    .map_err(str::to_owned)?;
    if found.is_null() || found.is_undefined() {
        return Ok(None);
    }
    let body = if head { None } else { get(&found, "body").dyn_into::<web_sys::ReadableStream>().ok() };
    Ok(Some(StoredObject {
        body,
        size: get(&found, "size").as_f64().unwrap_or(0.0) as u64,
        etag: get(&found, "httpEtag").as_string().unwrap_or_default(),
        uploaded: get(&found, "uploaded")
            .dyn_into::<js_sys::Date>()
            .ok()
            .filter(|d| !d.get_time().is_nan())
            .map(|d| String::from(d.to_utc_string())),
    }))
}

/// Deletes `keys` from R2 (a missing key is fine).
pub async fn delete(env: &Env, keys: &[String]) -> Result<(), &'static str> {
    if keys.is_empty() {
        return Ok(());
    }
    let list: Array = keys.iter().map(|k| JsValue::from_str(k)).collect();
    bindings::call(env, BUCKET, "delete", &[list.into()]).await.map(|_| ())
}

#[derive(Deserialize)]
struct Queued {
    keys: Vec<String>,
}

/// Most keys one `confirm_storage_deletions` call takes.
const CONFIRM_MAX: usize = 1000;

/// Deletes `keys` from R2, then confirms them in `storage_deletions`; `false` (logged) when a step
/// failed, which leaves the keys queued for the cron.
/// `failed` names the log event of a failure.
async fn delete_and_confirm(cfg: &Config, env: &Env, keys: &[String], failed: &str) -> bool {
    if let Err(why) = delete(env, keys).await {
        log::error(log::event(failed).str("step", "delete").str("reason", why));
        return false;
    }
    let args = serde_json::json!({ "p_keys": keys }).to_string();
    if let Err(e) = db::rpc(cfg, Caller::Service, "confirm_storage_deletions", &args).await {
        log::error(log::event(failed).str("step", "confirm").str("code", &e.code));
        return false;
    }
    true
}

/// Deletes the objects a request freed: `keys` are the ones its own RPC queued in `storage_deletions`
/// (a deleted project's or a closed account's files, a refused upload). Only these: a user request
/// never waits on other users' queued deletions, which the cron drains ([`drain`]). Returns how
/// many objects were deleted.
pub async fn release(cfg: &Config, env: &Env, keys: &[String]) -> usize {
    let mut deleted = 0;
    for chunk in keys.chunks(CONFIRM_MAX) {
        if !delete_and_confirm(cfg, env, chunk, "storage_delete_failed").await {
            break;
        }
        deleted += chunk.len();
    }
    if deleted > 0 {
        log::info(log::event("storage_deleted").int("objects", deleted as i64));
    }
    deleted
}

/// Deletes the objects queued in `storage_deletions`, oldest first, at most [`DRAIN_MAX_BATCHES`]
/// batches of [`DRAIN_BATCH`]: `list_storage_deletions` -> R2 delete -> `confirm_storage_deletions`.
/// Run by the cron (which also covers deletions made outside the Worker, such as `auth.users`
/// rows, and any delete that failed) and by the pipeline's recorded upload, for the object it
/// replaced, which only the queue names; never by a user's request ([`release`]). A failure leaves
/// the keys queued for the next run. Returns how many objects were deleted.
pub async fn drain(cfg: &Config, env: &Env) -> usize {
    let mut deleted = 0;
    for _ in 0..DRAIN_MAX_BATCHES {
        let args = format!(r#"{{"p_limit":{DRAIN_BATCH}}}"#);
        let queued = match db::rpc(cfg, Caller::Service, "list_storage_deletions", &args).await {
            Ok(body) => serde_json::from_str::<Queued>(&body).map(|q| q.keys).unwrap_or_default(),
            Err(e) => {
                log::error(log::event("storage_drain_failed").str("step", "list").str("code", &e.code));
                break;
            }
        };
        if queued.is_empty() || !delete_and_confirm(cfg, env, &queued, "storage_drain_failed").await {
            break;
        }
        deleted += queued.len();
        if queued.len() < DRAIN_BATCH {
            break;
        }
    }
    if deleted > 0 {
        log::info(log::event("storage_deleted").int("objects", deleted as i64));
    }
    deleted
}
