//! Request input rules shared by every endpoint: JSON bodies and idempotency keys.
//!
//! A body must be `application/json`, at most a fixed size, valid UTF-8 JSON without NUL, and
//! match the endpoint's fields exactly (read with [`crate::jsonr::Fields`], which refuses unknown
//! members). Failures are 4xx [`ApiError`]s naming the field where one is at fault; nothing
//! reaches the database before these checks pass.

use crate::jsonr::{self, FieldError, Fields, Value};
use crate::ApiError;

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
    if bytes.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let text = String::from_utf8(bytes).map_err(|_| ApiError::new(400, "invalid_json", "The body is not valid UTF-8."))?;
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

/// 400 naming the field at fault.
pub fn field_error(e: FieldError) -> ApiError {
    match e {
        FieldError::NotObject => ApiError::new(400, "invalid_request", "The body must be a JSON object."),
        FieldError::Unknown(k) => ApiError::invalid_field(k.clone(), format!("Unknown field {k}.")),
        FieldError::Missing(k) => ApiError::invalid_field(k, format!("{k} is required.")),
        FieldError::Invalid(k, want) => ApiError::invalid_field(k, format!("{k} must be {want}.")),
    }
}

/// Parses JSON text.
pub fn parse(text: &str) -> Result<Value<'_>, ApiError> {
    jsonr::parse(text).map_err(|_| syntax_error())
}

/// The members of a request object, refusing any not in `allowed`.
pub fn fields<'v, 'a>(v: &'v Value<'a>, allowed: &[&str]) -> Result<Fields<'v, 'a>, ApiError> {
    Fields::new(v, allowed).map_err(field_error)
}

/// Whether the JSON text has a `\u0000` escape (an odd run of backslashes before `u0000`).
fn has_nul_escape(text: &str) -> bool {
    text.match_indices("u0000").any(|(i, _)| text.as_bytes()[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 1)
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
        return Err(ApiError::new(400, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 visible ASCII characters."));
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

    fn read(body: &[u8], allowed: &[&str]) -> Result<(), ApiError> {
        let text = body_text(body.to_vec())?;
        let v = parse(&text)?;
        let f = fields(&v, allowed)?;
        f.str("model_id").map_err(field_error)?;
        f.int("target_minutes", 1, 600).map_err(field_error)?;
        Ok(())
    }

    #[test]
    fn reads_bodies_and_names_the_field_at_fault() {
        let allowed = &["model_id", "target_minutes"];
        assert!(read(br#"{"model_id":"m","target_minutes":3}"#, allowed).is_ok());
        assert!(read(br#"{"model_id":"\\u0000","target_minutes":3}"#, allowed).is_ok(), "a literal backslash then u0000");
        let cases: &[(&[u8], u16, &str, Option<&str>)] = &[
            (br#"{"model_id":"m","target_minutes":3,"admin":true}"#, 400, "invalid_request", Some("admin")),
            (br#"{"target_minutes":3}"#, 400, "invalid_request", Some("model_id")),
            (br#"{"model_id":"m","target_minutes":-1}"#, 400, "invalid_request", Some("target_minutes")),
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
            let e = read(body, allowed).unwrap_err();
            assert_eq!((e.status, e.code.as_str(), e.field.as_deref()), (*status, *code, *field), "{:?}", String::from_utf8_lossy(body));
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
