//! The one error type of the bundle and its JSON shape.
//!
//! Every failure a client can see is an [`ApiError`]: an HTTP status, a stable snake_case `code`
//! that client apps can switch on, and a message a developer can act on. Internal details never
//! reach the body; they are logged by the Worker instead.

/// A failure answered to the client as `{ "error": { "code", "message", "field"? } }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// The request field at fault, for validation errors.
    pub field: Option<String>,
    /// Seconds for a `Retry-After` header (503s).
    pub retry_after: Option<u32>,
    /// Why an internal fault happened: logged by the Worker, never part of the response.
    pub cause: Option<String>,
    /// Machine-readable facts of the refusal (e.g. a spend cap's `resets_at`), answered as `details`.
    pub details: Option<Box<serde_json::Value>>,
}

impl ApiError {
    pub fn new(status: u16, code: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
            field: None,
            retry_after: None,
            cause: None,
            details: None,
        }
    }

    /// 400 for a request that names the field at fault.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError { field: Some(field.into()), ..ApiError::new(400, "invalid_request", message) }
    }

    pub fn unauthorized(code: &str, message: &str) -> Self {
        ApiError::new(401, code, message)
    }

    pub fn not_found() -> Self {
        ApiError::new(404, "not_found", "No such route.")
    }

    pub fn method_not_allowed() -> Self {
        ApiError::new(405, "method_not_allowed", "This route does not accept that method.")
    }

    /// An internal fault: the cause is logged, never answered.
    pub fn internal() -> Self {
        ApiError::new(500, "internal_error", "Something went wrong on our side; it has been logged.")
    }

    /// The database or PostgREST cannot be reached or is overloaded: retry later.
    pub fn unavailable() -> Self {
        ApiError {
            retry_after: Some(2),
            ..ApiError::new(503, "service_unavailable", "The service is temporarily unavailable; retry shortly.")
        }
    }

    /// PostgREST did not answer in time. The call may still commit: clients retry with the same
    /// `Idempotency-Key`, which answers the stored result instead of doing it twice.
    pub fn timeout() -> Self {
        ApiError {
            retry_after: Some(2),
            ..ApiError::new(
                504,
                "upstream_timeout",
                "The database did not answer in time; retry with the same Idempotency-Key.",
            )
        }
    }

    /// Records why this error happened, for the log line only.
    pub fn because(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The JSON body for this error.
    pub fn body(&self) -> String {
        #[derive(serde::Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            details: Option<&'a serde_json::Value>,
        }
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        let inner = Inner {
            code: &self.code,
            message: &self.message,
            field: self.field.as_deref(),
            details: self.details.as_deref(),
        };
        serde_json::to_string(&Body { error: inner }).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_shape() {
        let body: serde_json::Value =
            serde_json::from_str(&ApiError::invalid_field("model_id", "Unknown model.").body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "invalid_request", "message": "Unknown model.", "field": "model_id"}})
        );
        let body: serde_json::Value = serde_json::from_str(&ApiError::internal().body()).unwrap();
        assert!(body["error"].get("field").is_none());
        assert_eq!(ApiError::unavailable().retry_after, Some(2));
        let internal = ApiError::internal().because("PostgREST answered garbage");
        assert!(!internal.body().contains("garbage"), "the cause is never answered");
    }
}
