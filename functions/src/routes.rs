//! The route table: the only place where paths meet handlers.
//!
//! Paths are matched segment by segment; `{name}` matches one segment and is passed to the
//! handler in `Cx::params`. A path that exists with another method is a 405, an unknown path a
//! 404, both in the JSON error shape. Every request ends with one structured log line (request
//! id, route, status, duration), never with tokens or request bodies.

use crate::context::{self, Cx};
use crate::handlers::{balance, health};
use crate::respond;
use shared::ApiError;
use worker::{Env, Method, Request, Response};

/// The operations, one per handler.
#[derive(Clone, Copy, Debug)]
enum Op {
    Health,
    Balance,
}

/// Method, path pattern, operation.
const ROUTES: &[(Method, &str, Op)] = &[
    (Method::Get, "/health", Op::Health),
    (Method::Get, "/v1/balance", Op::Balance),
];

async fn dispatch(op: Op, cx: Cx) -> Result<Response, ApiError> {
    match op {
        Op::Health => health::handle(cx).await,
        Op::Balance => balance::handle(cx).await,
    }
}

/// Matches `path` against `pattern`, collecting `{name}` segments.
fn matches(pattern: &str, path: &str) -> Option<Vec<String>> {
    let mut params = Vec::new();
    let mut pat = pattern.split('/');
    let mut segs = path.split('/');
    loop {
        match (pat.next(), segs.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && !s.is_empty() => params.push(s.to_owned()),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

/// Finds the operation for a request, or the 404/405 error.
fn resolve(method: &Method, path: &str) -> Result<(Op, &'static str, Vec<String>), ApiError> {
    let mut path_known = false;
    for (m, pattern, op) in ROUTES {
        if let Some(params) = matches(pattern, path) {
            if m == method || (*m == Method::Get && *method == Method::Head) {
                return Ok((*op, pattern, params));
            }
            path_known = true;
        }
    }
    Err(if path_known { ApiError::method_not_allowed() } else { ApiError::not_found() })
}

/// Handles one request end to end; never fails (every error becomes a JSON response).
pub async fn handle(req: Request, env: Env) -> Response {
    let started = js_sys::Date::now();
    let method = req.method();
    let path = req.path();
    let request_id = req.headers().get("cf-ray").ok().flatten().unwrap_or_else(new_request_id);
    let (route, result) = match resolve(&method, &path) {
        Err(e) => ("-", Err(e)),
        Ok((op, pattern, params)) => match context::config(&env) {
            Err(why) => {
                worker::console_error!("{{\"event\":\"config_error\",\"error\":{:?}}}", why);
                (pattern, Err(ApiError::internal()))
            }
            Ok(cfg) => (pattern, dispatch(op, Cx { req, env, cfg, params }).await),
        },
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(err) => respond::error(&err),
    };
    let _ = resp.headers().set("x-request-id", &request_id);
    worker::console_log!(
        "{{\"request_id\":{:?},\"method\":\"{}\",\"route\":\"{}\",\"status\":{},\"duration_ms\":{}}}",
        request_id,
        method.as_ref(),
        route,
        resp.status_code(),
        (js_sys::Date::now() - started) as u64
    );
    resp
}

fn new_request_id() -> String {
    let a = (js_sys::Math::random() * 4294967296.0) as u32;
    let b = (js_sys::Math::random() * 4294967296.0) as u32;
    format!("{a:08x}{b:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_routes_params_and_errors() {
        assert!(matches("/v1/jobs/{id}", "/v1/jobs/abc") == Some(vec!["abc".into()]));
        assert!(matches("/v1/jobs/{id}", "/v1/jobs/").is_none());
        assert!(matches("/v1/jobs/{id}", "/v1/jobs/a/b").is_none());
        assert!(matches("/health", "/health").is_some());
        assert!(matches!(resolve(&Method::Get, "/v1/balance"), Ok((Op::Balance, _, _))));
        assert_eq!(resolve(&Method::Post, "/v1/balance").unwrap_err().status, 405);
        assert_eq!(resolve(&Method::Get, "/nope").unwrap_err().status, 404);
    }
}
