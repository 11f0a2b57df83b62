//! Request input rules shared by every endpoint: JSON bodies and idempotency keys.
//!
//! A body must be `application/json`, at most a fixed size, valid UTF-8 JSON without NUL, and
//! match the endpoint's derived type exactly (`deny_unknown_fields`, read with [`body`]). Failures
//! are 4xx [`ApiError`]s naming the field where one is at fault; nothing reaches the database before these checks pass.

use crate::{strict, ApiError};
use serde::Deserialize;

/// The largest request body any endpoint accepts (drafts and prompts included).
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Checks the `Content-Type` header: JSON, any charset parameter, nothing else.
pub fn require_json(content_type: Option<&str>) -> Result<(), ApiError> {
    let media = content_type.unwrap_or("").split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ApiError::new(415, "unsupported_media_type", "Send the body as Content-Type: application/json."))
    }
}

/// 413 for a body over [`MAX_BODY_BYTES`].
pub fn too_large() -> ApiError {
    too_large_for(MAX_BODY_BYTES)
}

/// 413 for a body over `max` bytes.
pub fn too_large_for(max: usize) -> ApiError {
    ApiError::new(413, "payload_too_large", format!("The body must be at most {max} bytes."))
}

/// Checks a body's size, encoding and NUL escapes and returns it as text.
pub fn body_text(bytes: Vec<u8>) -> Result<String, ApiError> {
    body_text_max(bytes, MAX_BODY_BYTES)
}

/// [`body_text`] with another size cap, for the one endpoint whose fields are larger than
/// [`MAX_BODY_BYTES`] (a project's transcript, up to 50,000 characters).
pub fn body_text_max(bytes: Vec<u8>, max: usize) -> Result<String, ApiError> {
    if bytes.len() > max {
        return Err(too_large_for(max));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| ApiError::new(400, "invalid_json", "The body is not valid UTF-8."))?;
    if text.trim().is_empty() {
        return Err(ApiError::new(400, "invalid_json", "A JSON body is required."));
    }
    // Postgres text cannot hold NUL; refuse it here with a clear message rather than at the database.
    if has_nul_escape(&text) {
        return Err(ApiError::new(400, "invalid_request", "Strings must not contain NUL (\\u0000) characters."));
    }
    Ok(text)
}

/// 400 for a body that is not JSON.
pub fn syntax_error() -> ApiError {
    ApiError::new(400, "invalid_json", "The body is not valid JSON (or repeats a key, or nests too deep).")
}

/// 400 for a body that is JSON but not an object.
pub fn not_object() -> ApiError {
    ApiError::new(400, "invalid_request", "The body must be a JSON object.")
}

/// Reads a request body into its derived type (`#[serde(deny_unknown_fields)]`): first the
/// strict shape check (a repeated key or too deep nesting is `invalid_json`), then serde, whose
/// error is turned into a 400 naming the field at fault (unknown, missing or mistyped). `null`
/// counts as absent for `Option` fields.
pub fn body<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, ApiError> {
    strict::check(text).map_err(|_| syntax_error())?;
    // A derived struct also accepts an array (its fields in order); a body must be an object.
    if !text.trim_start().starts_with('{') {
        return Err(not_object());
    }
    let mut de = serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        field_error(&path, &e.into_inner())
    })
}

/// A body the database validates, checked here for shape only (strict JSON, an object) and
/// passed on as its text.
pub fn raw_object(text: &str) -> Result<&serde_json::value::RawValue, ApiError> {
    strict::check(text).map_err(|_| syntax_error())?;
    if !text.trim_start().starts_with('{') {
        return Err(not_object());
    }
    serde_json::from_str(text).map_err(|_| syntax_error())
}

/// The 400 for serde's error at `path` (`.` for the body itself).
fn field_error(path: &str, e: &serde_json::Error) -> ApiError {
    if !e.is_data() {
        return syntax_error();
    }
    let text = e.to_string();
    // serde names the field of an unknown or missing member in backticks, in its message.
    let quoted = || text.split('`').nth(1).map(|k| k.chars().take(64).collect::<String>());
    if text.starts_with("unknown field") {
        let k = quoted().unwrap_or_default();
        return ApiError::invalid_field(k.clone(), format!("Unknown field {k}."));
    }
    if text.starts_with("missing field") {
        let k = quoted().unwrap_or_default();
        return ApiError::invalid_field(k.clone(), format!("{k} is required."));
    }
    if path == "." || path.is_empty() {
        return not_object();
    }
    let field = path.split(['.', '[']).next().unwrap_or(path).chars().take(64).collect::<String>();
    // "invalid type: string \"3\", expected i64 at line 1 column 9": keep what was expected.
    let expected = text.split(" at line ").next().unwrap_or(&text).rsplit("expected ").next().unwrap_or("another type");
    ApiError::invalid_field(field.clone(), format!("{field} must be {expected}."))
}

/// The query of a list endpoint: `limit` (1..=100, default 20), `before` (the `next_before` id
/// of the previous page) and, where `status_allowed`, a `status` filter. The values are read
/// unescaped: none of them has a character that needs percent-encoding. Any other parameter,
/// a repeated one or a malformed value is a 400 naming it.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<'a> {
    pub limit: i64,
    pub before: Option<&'a str>,
    pub status: Option<&'a str>,
}

/// Reads a [`Page`] from a request URL.
pub fn page(url: &str, status_allowed: bool) -> Result<Page<'_>, ApiError> {
    let query = url.split('#').next().unwrap_or("").split_once('?').map_or("", |(_, q)| q);
    let mut page = Page { limit: 20, before: None, status: None };
    let mut seen = Vec::new();
    for (k, v) in query.split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, ""))) {
        if seen.contains(&k) {
            return Err(ApiError::invalid_field(field_name(k), "Give each query parameter at most once."));
        }
        seen.push(k);
        match k {
            "limit" => {
                page.limit =
                    v.parse().ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| {
                        ApiError::invalid_field("limit", "limit must be a whole number from 1 to 100.")
                    })?
            }
            "before" if crate::jwt::is_uuid(v) => page.before = Some(v),
            "before" => {
                return Err(ApiError::invalid_field(
                    "before",
                    "before must be an id (next_before of the previous page).",
                ))
            }
            "status"
                if status_allowed
                    && !v.is_empty()
                    && v.len() <= 32
                    && v.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') =>
            {
                page.status = Some(v)
            }
            "status" if status_allowed => {
                return Err(ApiError::invalid_field("status", "status must be a job state, such as QUEUED or READY."))
            }
            _ => {
                let known = if status_allowed { "status, limit and before" } else { "limit and before" };
                return Err(ApiError::invalid_field("query", format!("Unknown query parameter; use {known}.")));
            }
        }
    }
    Ok(page)
}

fn field_name(k: &str) -> String {
    k.chars().take(64).collect()
}

/// A whole-number field checked against its range.
pub fn range(field: &str, value: i64, min: i64, max: i64) -> Result<i64, ApiError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid_field(field, format!("{field} must be a whole number from {min} to {max}.")))
    }
}

/// Whether the JSON text has a `\u0000` escape (an odd run of backslashes before `u0000`).
fn has_nul_escape(text: &str) -> bool {
    text.match_indices("u0000")
        .any(|(i, _)| text.as_bytes()[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1)
}

/// The path of a serialized WHATWG URL (`Request.url`): from the first `/` after the host up to
/// `?` or `#`, which are always percent-encoded inside a path.
pub fn path_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[after_scheme..];
    let path = rest.find('/').map_or("/", |i| &rest[i..]);
    path.split(['?', '#']).next().unwrap_or("/")
}

/// Validates an `Idempotency-Key` header: 1 to 255 visible ASCII characters.
pub fn idempotency_key(header: Option<&str>) -> Result<&str, ApiError> {
    let key = header.ok_or_else(|| {
        ApiError::new(400, "idempotency_key_required", "An Idempotency-Key header is required for this operation.")
    })?;
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            400,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters.",
        ));
    }
    Ok(key)
}

/// Compares two secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_list_queries() {
        let id = "0b6c2f4e-1d2a-4c3b-9e8f-0123456789ab";
        assert_eq!(page("https://x/v1/projects", false).unwrap(), Page { limit: 20, before: None, status: None });
        let url = format!("https://x/v1/jobs?status=QUEUED&limit=5&before={id}#f");
        assert_eq!(page(&url, true).unwrap(), Page { limit: 5, before: Some(id), status: Some("QUEUED") });
        let field = |u: &str, st: bool| page(u, st).unwrap_err().field;
        for (u, f) in [
            ("https://x/p?limit=0", "limit"),
            ("https://x/p?limit=101", "limit"),
            ("https://x/p?limit=abc", "limit"),
            ("https://x/p?limit=1&limit=2", "limit"),
            ("https://x/p?before=nope", "before"),
            ("https://x/p?status=QUEUED", "query"),
            ("https://x/p?x=1", "query"),
        ] {
            assert_eq!(field(u, false).as_deref(), Some(f), "{u}");
        }
        assert_eq!(field("https://x/j?status=queued", true).as_deref(), Some("status"));
        assert_eq!(field("https://x/j?status=", true).as_deref(), Some("status"));
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Generate {
        model_id: String,
        target_minutes: i64,
        prompt: Option<String>,
    }

    fn read(text: &[u8]) -> Result<(), ApiError> {
        let text = body_text(text.to_vec())?;
        let g: Generate = body(&text)?;
        range("target_minutes", g.target_minutes, 1, 600)?;
        Ok(())
    }

    #[test]
    fn reads_bodies_and_names_the_field_at_fault() {
        assert!(read(br#"{"model_id":"m","target_minutes":3}"#).is_ok());
        assert!(read(br#"{"model_id":"\\u0000","target_minutes":3}"#).is_ok(), "a literal backslash then u0000");
        let cases: &[(&[u8], u16, &str, Option<&str>)] = &[
            (br#"{"model_id":"m","target_minutes":3,"admin":true}"#, 400, "invalid_request", Some("admin")),
            (br#"{"target_minutes":3}"#, 400, "invalid_request", Some("model_id")),
            (br#"{"model_id":"m","target_minutes":-1}"#, 400, "invalid_request", Some("target_minutes")),
            (
                br#"{"model_id":"m","target_minutes":99999999999999999999}"#,
                400,
                "invalid_request",
                Some("target_minutes"),
            ),
            (br#"{"model_id":7,"target_minutes":3}"#, 400, "invalid_request", Some("model_id")),
            (br#"{"model_id":"m","target_minutes":1.5}"#, 400, "invalid_request", Some("target_minutes")),
            (br#"{"model_id":"m","target_minutes":"3"}"#, 400, "invalid_request", Some("target_minutes")),
            (br#"{"model_id":"m","model_id":"n","target_minutes":3}"#, 400, "invalid_json", None),
            (br#"{"model_id":"m""#, 400, "invalid_json", None),
            (br#"{"unknown": "#, 400, "invalid_json", None),
            (b"", 400, "invalid_json", None),
            (b"\xff\xfe", 400, "invalid_json", None),
            (br#"[1,2]"#, 400, "invalid_request", None),
            (br#"{"model_id":"a\u0000b","target_minutes":1}"#, 400, "invalid_request", None),
        ];
        for (body, status, code, field) in cases {
            let e = read(body).unwrap_err();
            assert_eq!(
                (e.status, e.code.as_str(), e.field.as_deref()),
                (*status, *code, *field),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(body_text(vec![b' '; MAX_BODY_BYTES + 1]).unwrap_err().status, 413);
    }

    #[test]
    fn paths_of_urls() {
        assert_eq!(path_of("https://api.example/v1/jobs/abc?x=1#f"), "/v1/jobs/abc");
        assert_eq!(path_of("http://127.0.0.1:8787/health"), "/health");
        assert_eq!(path_of("http://127.0.0.1:8787"), "/");
        assert_eq!(path_of("http://h/v1/ledger?before=3"), "/v1/ledger");
    }

    #[test]
    fn content_type_and_idempotency_key_rules() {
        assert!(require_json(Some("application/json; charset=utf-8")).is_ok());
        assert_eq!(require_json(Some("text/plain")).unwrap_err().status, 415);
        assert_eq!(require_json(None).unwrap_err().status, 415);
        assert_eq!(idempotency_key(Some("abc-123")), Ok("abc-123"));
        assert!(constant_time_eq(b"key", b"key"));
        assert!(!constant_time_eq(b"key", b"kez"));
        assert!(!constant_time_eq(b"key", b"key2"));
        assert_eq!(idempotency_key(None).unwrap_err().code, "idempotency_key_required");
        for bad in ["", "has space", "ünïcode", &"k".repeat(256)] {
            assert_eq!(idempotency_key(Some(bad)).unwrap_err().code, "invalid_idempotency_key", "{bad:?}");
        }
    }
}
