//! Structured log lines: one JSON object per line, written with `shared::json::Obj`, so values
//! are escaped as JSON (never Rust's `Debug`, which would also pull its Unicode tables into the
//! bundle). Lines carry ids, codes and reasons; never tokens, prompts or request bodies.

use shared::json::Obj;

/// An informational line (`console.log`).
pub fn info(line: Obj) {
    web_sys::console::log_1(&line.finish().into());
}

/// A line about a fault (`console.error`).
pub fn error(line: Obj) {
    web_sys::console::error_1(&line.finish().into());
}

/// The start of a line for `event`.
pub fn event(name: &str) -> Obj {
    Obj::new().str("event", name)
}
