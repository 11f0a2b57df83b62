//! Building responses: JSON bodies, the error shape, and the headers every response carries.
//!
//! Responses are made with `web_sys` in one step (status, headers and body together), which
//! crosses from wasm to JavaScript far fewer times than setting each part through `worker`.

use shared::ApiError;
use std::cell::RefCell;
use wasm_bindgen::JsCast;
use web_sys::Response;

thread_local! {
    /// The `ResponseInit` of each status answered so far, made once per isolate: the `Response`
    /// constructor copies an init's headers into the response's own, so one init serves every
    /// response with that status, and a response's headers set afterwards never reach it. Saves
    /// six wasm/JS crossings per response (a `Headers`, two `set`s, the init and its two fields).
    static INITS: RefCell<Vec<(u16, web_sys::ResponseInit)>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with the `init` of a JSON response with `status`.
fn with_init<T>(status: u16, f: impl FnOnce(&web_sys::ResponseInit) -> T) -> T {
    let cached = INITS.with(|inits| inits.borrow().iter().find(|(s, _)| *s == status).map(|(_, init)| init.clone()));
    let init = cached.unwrap_or_else(|| {
        let headers = web_sys::Headers::new().expect("Headers can always be constructed");
        let _ = headers.set("content-type", "application/json; charset=utf-8");
        let _ = headers.set("cache-control", "no-store");
        let init = web_sys::ResponseInit::new();
        init.set_status(status);
        init.set_headers(&headers);
        INITS.with(|inits| inits.borrow_mut().push((status, init.clone())));
        init
    });
    f(&init)
}

/// A JSON response with `body` already serialized.
pub fn json(status: u16, body: String) -> Response {
    let body = if status == 204 { None } else { Some(body.as_str()) };
    with_init(status, |init| Response::new_with_opt_str_and_init(body, init)).unwrap_or_else(|_| fallback())
}

/// A JSON response whose body is a JavaScript buffer (an upstream answer passed through as is).
pub fn json_buffer(status: u16, body: &js_sys::ArrayBuffer) -> Response {
    let body: Option<&js_sys::Object> = if status == 204 { None } else { Some(body.unchecked_ref()) };
    with_init(status, |init| Response::new_with_opt_buffer_source_and_init(body, init)).unwrap_or_else(|_| fallback())
}

/// The response for an [`ApiError`].
pub fn error(err: &ApiError) -> Response {
    let resp = json(err.status, err.body());
    if let Some(secs) = err.retry_after {
        let _ = resp.headers().set("retry-after", &secs.to_string());
    }
    resp
}

fn fallback() -> Response {
    Response::new().expect("an empty response can always be built")
}
