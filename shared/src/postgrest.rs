//! Mapping of PostgREST answers to the bundle's stable errors.
//!
//! The RPCs raise `errcode = 'PTxxx'` (which PostgREST turns into HTTP status xxx) with a stable
//! snake_case code in `hint` and the field at fault in `detail` (see migrations/README.md).
//! Everything else PostgREST can answer is mapped here once: JWT rejections, privilege errors,
//! unique violations, serialization failures (retryable), and connection failures (503).

use crate::ApiError;

/// What to do with a failed PostgREST call.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answer the client with this error.
    Fail(ApiError),
    /// A serialization failure or deadlock: the transaction rolled back and may be retried.
    Retry,
}

/// The stable codes whose database `detail` object is answered to the client as `details`.
const DETAILED: &[&str] = &["daily_spend_cap_reached", "request_over_limit", "nothing_to_refund"];

/// A stable code is short snake_case ASCII; anything else is not passed to clients.
fn stable_code(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_' || b.is_ascii_digit())
}

/// Maps a non-2xx PostgREST response (status and raw body) to an outcome.
pub fn map_error(status: u16, body: &[u8]) -> Outcome {
    // PostgREST's error body: {"code", "message", "details", "hint"}; anything else reads as empty.
    let err: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let member = |k: &str| err.as_ref().and_then(|e| e.get(k)).and_then(|v| v.as_str());
    let code = member("code").unwrap_or("");
    let hint = member("hint").filter(|h| stable_code(h));
    let message = member("message").unwrap_or_default().to_owned();
    match code {
        "40001" | "40P01" => return Outcome::Retry,
        // PostgREST could not reach or use the database (connection, pool, schema cache).
        "PGRST000" | "PGRST001" | "PGRST002" | "PGRST003" => return Outcome::Fail(ApiError::unavailable()),
        // JWT refused by PostgREST although the edge accepted it: keys out of sync; fail closed.
        c if c.starts_with("PGRST30") => {
            return Outcome::Fail(ApiError::unauthorized(
                "invalid_token",
                "The access token is not valid for this project.",
            ))
        }
        "57014" => return Outcome::Fail(ApiError::unavailable()),
        _ => {}
    }
    // One code per rule: the database's name for "anonymous sessions may not do this"
    // (begin_purchase) is the edge's `anonymous_not_allowed`, with the edge's status.
    if hint == Some("anonymous_user") {
        return Outcome::Fail(crate::jwt::AuthError::AnonymousNotAllowed.to_api());
    }
    if let Some(h) = hint {
        // Our own RPC errors: the status comes from the PTxxx errcode, the code from the hint.
        let status = if (400..500).contains(&status) { status } else { 400 };
        let mut e = ApiError::new(status, h, message);
        if h == "invalid_request" {
            e.field = member("details").filter(|d| d.len() <= 64).map(str::to_owned);
        }
        // Refusals whose facts the client acts on (when a spend cap resets): the detail object.
        if DETAILED.contains(&h) {
            e.details = member("details")
                .filter(|d| d.len() <= 1024)
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .filter(serde_json::Value::is_object)
                .map(Box::new);
        }
        return Outcome::Fail(e);
    }
    Outcome::Fail(match code {
        "42501" => ApiError::new(403, "forbidden", "You are not allowed to do this."),
        "23505" => ApiError::new(409, "conflict", "This conflicts with an existing record."),
        // Data exceptions (class 22: bad text, numbers out of range, ...) and integrity violations
        // (class 23) come from the client's values.
        c if c.starts_with("22") || c.starts_with("23") || c == "P0001" => {
            ApiError::new(400, "invalid_request", "The request is not valid.")
        }
        _ if status >= 500 || status == 0 => ApiError::unavailable(),
        // Anything else (a missing function, a schema mismatch) is a deployment fault, not the client's.
        _ => ApiError::internal().because(format!("PostgREST answered {status} with code {code:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(status: u16, body: &str) -> ApiError {
        match map_error(status, body.as_bytes()) {
            Outcome::Fail(e) => e,
            Outcome::Retry => panic!("expected a failure for {body}"),
        }
    }

    #[test]
    fn maps_rpc_errors_by_errcode_and_hint() {
        let e = fail(
            402,
            r#"{"code":"PT402","message":"Not enough credits.","details":null,"hint":"insufficient_credits"}"#,
        );
        assert_eq!(
            (e.status, e.code.as_str(), e.message.as_str()),
            (402, "insufficient_credits", "Not enough credits.")
        );
        let e = fail(
            400,
            concat!(
                r#"{"code":"22023","message":"target_minutes must be 1 to 60.","#,
                r#""details":"target_minutes","hint":"invalid_request"}"#
            ),
        );
        assert_eq!((e.status, e.code.as_str(), e.field.as_deref()), (400, "invalid_request", Some("target_minutes")));
        let e = fail(410, r#"{"code":"PT410","message":"expired","details":null,"hint":"draft_expired"}"#);
        assert_eq!((e.status, e.code.as_str()), (410, "draft_expired"));
        let e = fail(
            403,
            r#"{"code":"PT403","message":"Anonymous users cannot buy.","details":null,"hint":"anonymous_user"}"#,
        );
        assert_eq!((e.status, e.code.as_str()), (403, "anonymous_not_allowed"), "one code per rule");
        let e = fail(
            429,
            concat!(
                r#"{"code":"PT429","message":"cap","hint":"daily_spend_cap_reached","#,
                r#""details":"{\"resets_at\": \"2030-01-02T00:00:00Z\", \"daily_spend_cap\": 8}"}"#
            ),
        );
        assert_eq!((e.status, e.code.as_str()), (429, "daily_spend_cap_reached"));
        assert_eq!(e.details.as_ref().and_then(|d| d["resets_at"].as_str()), Some("2030-01-02T00:00:00Z"));
        assert!(e.body().contains(r#""details":{"#), "the facts reach the client");
        let e =
            fail(402, r#"{"code":"PT402","message":"m","hint":"insufficient_credits","details":"{\"required\": 3}"}"#);
        assert!(e.details.is_none(), "only the listed codes carry details");
    }

    #[test]
    fn maps_postgrest_and_postgres_errors() {
        assert_eq!(map_error(500, br#"{"code":"40001","message":"could not serialize"}"#), Outcome::Retry);
        assert_eq!(map_error(500, br#"{"code":"40P01","message":"deadlock"}"#), Outcome::Retry);
        assert_eq!(fail(503, r#"{"code":"PGRST001","message":"no connection"}"#).status, 503);
        assert_eq!(fail(502, "<html>bad gateway</html>").status, 503);
        assert_eq!(fail(401, r#"{"code":"PGRST301","message":"JWSError"}"#).code, "invalid_token");
        assert_eq!(fail(403, r#"{"code":"42501","message":"permission denied"}"#).code, "forbidden");
        assert_eq!(fail(409, r#"{"code":"23505","message":"duplicate key"}"#).status, 409);
        assert_eq!(fail(400, r#"{"code":"P0001","message":"raw internal text"}"#).message, "The request is not valid.");
        assert_eq!(
            fail(400, r#"{"code":"22P05","message":"unsupported Unicode escape sequence"}"#).code,
            "invalid_request"
        );
        assert_eq!(fail(400, r#"{"code":"22003","message":"integer out of range"}"#).status, 400);
        assert_eq!(fail(404, r#"{"code":"PGRST202","message":"Could not find the function"}"#).status, 500);
        // A hint that is not a stable code is never passed through.
        assert_eq!(fail(400, r#"{"code":"P0001","message":"x","hint":"Try <script>"}"#).code, "invalid_request");
    }
}
