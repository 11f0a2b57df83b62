//! Building responses: JSON bodies, the error shape, and the headers every response carries.
//!
//! Responses are made with `web_sys` in one step (status, headers and body together), which
//! crosses from wasm to JavaScript far fewer times than setting each part through `worker`.

use shared::ApiError;
use wasm_bindgen::JsCast;
use web_sys::Response;

/// `init` for a JSON response with `status`.
fn init(status: u16) -> web_sys::ResponseInit {
    let headers = web_sys::Headers::new().expect("Headers can always be constructed");
    let _ = headers.set("content-type", "application/json; charset=utf-8");
    let _ = headers.set("cache-control", "no-store");
    let init = web_sys::ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    init
}

/// A JSON response with `body` already serialized.
pub fn json(status: u16, body: String) -> Response {
    let body = if status == 204 { None } else { Some(body.as_str()) };
    Response::new_with_opt_str_and_init(body, &init(status)).unwrap_or_else(|_| fallback())
}

/// A JSON response whose body is a JavaScript buffer (an upstream answer passed through as is).
pub fn json_buffer(status: u16, body: &js_sys::ArrayBuffer) -> Response {
    let body: Option<&js_sys::Object> = if status == 204 { None } else { Some(body.unchecked_ref()) };
    Response::new_with_opt_buffer_source_and_init(body, &init(status)).unwrap_or_else(|_| fallback())
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
