//! Structured log lines: one JSON object per line, built as a `serde_json` map and written by
//! serde_json, so values are always escaped as JSON. Lines carry ids, codes and reasons; never
//! tokens, prompts or request bodies.

use serde_json::{Map, Value};

/// One log line under construction.
pub struct Line(Map<String, Value>);

impl Line {
    /// A string member.
    pub fn str(self, k: &str, v: &str) -> Line {
        self.json(k, Value::from(v))
    }

    /// An integer member.
    pub fn int(self, k: &str, v: i64) -> Line {
        self.json(k, Value::from(v))
    }

    /// A boolean member.
    pub fn bool(self, k: &str, v: bool) -> Line {
        self.json(k, Value::from(v))
    }

    /// Any JSON member.
    pub fn json(mut self, k: &str, v: Value) -> Line {
        self.0.insert(k.to_owned(), v);
        self
    }
}

/// An empty line (the per-request access line has no `event`).
pub fn line() -> Line {
    Line(Map::new())
}

/// The start of a line for `event`.
pub fn event(name: &str) -> Line {
    line().str("event", name)
}

/// An informational line (`console.log`).
pub fn info(line: Line) {
    web_sys::console::log_1(&Value::Object(line.0).to_string().into());
}

/// The access line every request ends with, written by serde_json from a derived type: the same
/// text as a [`line`] with these members (serde_json's map orders keys, so the fields are in that
/// order), without building a map of owned keys and values per request.
#[derive(serde::Serialize)]
pub struct Access<'a> {
    pub duration_ms: i64,
    pub method: &'a str,
    pub request_id: &'a str,
    pub route: &'a str,
    pub status: u16,
}

/// Writes the access line (`console.log`).
pub fn access(line: &Access<'_>) {
    if let Ok(text) = serde_json::to_string(line) {
        web_sys::console::log_1(&text.into());
    }
}

/// A line about a fault (`console.error`).
pub fn error(line: Line) {
    web_sys::console::error_1(&Value::Object(line.0).to_string().into());
}

/// Logs why an internal fault (a 5xx with a recorded cause) happened; the client never sees it.
pub fn cause(err: &shared::ApiError, request_id: &str) {
    if let Some(cause) = &err.cause {
        error(
            event("internal_error")
                .str("request_id", request_id)
                .str("code", &err.code)
                .int("status", i64::from(err.status))
                .str("cause", cause),
        );
    }
}
