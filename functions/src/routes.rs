//! The route table: the only place where paths meet handlers.
//!
//! Paths are matched segment by segment; `{name}` matches one segment and is passed to the
//! handler in `Cx::params`. A path that exists with another method is a 405, an unknown path a
//! 404, both in the JSON error shape. Every request ends with one structured log line (request
//! id, route, status, duration), never with tokens or request bodies.
//!
//! CORS is answered here too: a preflight (`OPTIONS`) for a known path is a 204 listing that
//! path's methods; every response to an allowed `Origin` (`CORS_ALLOWED_ORIGINS`) carries the
//! CORS headers. An origin that is not allowed gets no CORS headers, so browsers refuse it.

use crate::context::{self, Cx};
use crate::handlers::{
    account, admin, balance, consent, drafts, generate, health, invites, models, openapi, outputs, pipeline, projects,
    purchase, purchase_app_store, purchase_stripe, subscription,
};
use crate::respond;
use shared::ApiError;
use web_sys::{Request, Response};
use worker::{Env, Method};

/// The operations, one per handler.
#[derive(Clone, Copy, Debug)]
enum Op {
    Health,
    OpenApi,
    Balance,
    Ledger,
    Job,
    Jobs,
    CancelJob,
    Projects,
    Project,
    UpdateProject,
    DeleteProject,
    DeleteAccount,
    ConsumptionConsent,
    SetConsumptionConsent,
    CreateDraft,
    ClaimDraft,
    Generate,
    PipelineClaim,
    PipelineEvents,
    UploadAsset,
    DownloadAsset,
    Checkout,
    StripeWebhook,
    AppStore,
    AppStoreNotifications,
    Purchases,
    Packages,
    Models,
    AdminUser,
    AdminGrant,
    AdminAdjust,
    AdminVoidGrant,
    AdminRefundJob,
    AdminSuspend,
    AdminUnsuspend,
    AdminSpendCap,
    AdminLedgerCsv,
    AdminAudit,
    AdminWebhooks,
    SubscriptionCheckout,
    SubscriptionCancel,
    Subscription,
    Invites,
    RedeemInvite,
}

/// The methods the route table knows; any other method is a 405 before routing.
const KNOWN_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Whether `method` is one the route table knows (matched on the method string, exactly).
fn known_method(method: &str) -> bool {
    KNOWN_METHODS.contains(&method)
}

/// Method, path pattern, operation.
const ROUTES: &[(Method, &str, Op)] = &[
    (Method::Get, "/health", Op::Health),
    (Method::Get, "/v1/openapi.json", Op::OpenApi),
    (Method::Get, "/v1/balance", Op::Balance),
    (Method::Get, "/v1/ledger", Op::Ledger),
    (Method::Get, "/v1/jobs/{id}", Op::Job),
    (Method::Get, "/v1/jobs", Op::Jobs),
    (Method::Post, "/v1/jobs/{id}/cancel", Op::CancelJob),
    (Method::Get, "/v1/jobs/{id}/assets/{asset_id}", Op::DownloadAsset),
    (Method::Get, "/v1/projects", Op::Projects),
    (Method::Get, "/v1/projects/{id}", Op::Project),
    (Method::Patch, "/v1/projects/{id}", Op::UpdateProject),
    (Method::Delete, "/v1/projects/{id}", Op::DeleteProject),
    (Method::Delete, "/v1/account", Op::DeleteAccount),
    (Method::Get, "/v1/account/consumption-consent", Op::ConsumptionConsent),
    (Method::Put, "/v1/account/consumption-consent", Op::SetConsumptionConsent),
    (Method::Post, "/v1/drafts", Op::CreateDraft),
    (Method::Post, "/v1/drafts/claim", Op::ClaimDraft),
    (Method::Post, "/v1/generate", Op::Generate),
    (Method::Post, "/v1/pipeline/claim", Op::PipelineClaim),
    (Method::Post, "/v1/pipeline/events", Op::PipelineEvents),
    (Method::Put, "/v1/pipeline/jobs/{id}/assets/{name}", Op::UploadAsset),
    (Method::Post, "/v1/purchase/checkout", Op::Checkout),
    (Method::Post, "/v1/purchase/stripe-webhook", Op::StripeWebhook),
    (Method::Post, "/v1/purchase/app-store", Op::AppStore),
    (Method::Post, "/v1/purchase/app-store/notifications", Op::AppStoreNotifications),
    (Method::Get, "/v1/purchases", Op::Purchases),
    (Method::Get, "/v1/packages", Op::Packages),
    (Method::Get, "/v1/models", Op::Models),
    (Method::Get, "/v1/admin/users/{id}", Op::AdminUser),
    (Method::Post, "/v1/admin/users/{id}/grants", Op::AdminGrant),
    (Method::Post, "/v1/admin/users/{id}/adjustments", Op::AdminAdjust),
    (Method::Post, "/v1/admin/users/{id}/suspend", Op::AdminSuspend),
    (Method::Post, "/v1/admin/users/{id}/unsuspend", Op::AdminUnsuspend),
    (Method::Post, "/v1/admin/users/{id}/spend-cap", Op::AdminSpendCap),
    (Method::Get, "/v1/admin/users/{id}/ledger.csv", Op::AdminLedgerCsv),
    (Method::Post, "/v1/admin/grants/{id}/void", Op::AdminVoidGrant),
    (Method::Post, "/v1/admin/jobs/{id}/refund", Op::AdminRefundJob),
    (Method::Get, "/v1/admin/audit", Op::AdminAudit),
    (Method::Get, "/v1/admin/webhooks", Op::AdminWebhooks),
    (Method::Post, "/v1/subscription/checkout", Op::SubscriptionCheckout),
    (Method::Post, "/v1/subscription/cancel", Op::SubscriptionCancel),
    (Method::Get, "/v1/subscription", Op::Subscription),
    (Method::Get, "/v1/invites", Op::Invites),
    (Method::Post, "/v1/invites/redeem", Op::RedeemInvite),
];

async fn dispatch(op: Op, cx: Cx) -> Result<Response, ApiError> {
    match op {
        Op::Health => health::handle(cx).await,
        Op::OpenApi => openapi::handle(cx).await,
        Op::Balance => balance::handle(cx).await,
        Op::Ledger => account::ledger(cx).await,
        Op::Job => account::job(cx).await,
        Op::Jobs => account::jobs(cx).await,
        Op::CancelJob => account::cancel_job(cx).await,
        Op::Projects => projects::list(cx).await,
        Op::Project => projects::get(cx).await,
        Op::UpdateProject => projects::update(cx).await,
        Op::DeleteProject => projects::delete(cx).await,
        Op::DeleteAccount => account::delete_account(cx).await,
        Op::ConsumptionConsent => consent::get(cx).await,
        Op::SetConsumptionConsent => consent::put(cx).await,
        Op::CreateDraft => drafts::create(cx).await,
        Op::ClaimDraft => drafts::claim(cx).await,
        Op::Generate => generate::handle(cx).await,
        Op::PipelineClaim => pipeline::claim(cx).await,
        Op::PipelineEvents => pipeline::events(cx).await,
        Op::UploadAsset => outputs::upload(cx).await,
        Op::DownloadAsset => outputs::download(cx).await,
        Op::Checkout => purchase::checkout(cx).await,
        Op::StripeWebhook => purchase_stripe::handle(cx).await,
        Op::AppStore => purchase_app_store::transaction(cx).await,
        Op::AppStoreNotifications => purchase_app_store::notification(cx).await,
        Op::Purchases => purchase::list_purchases(cx).await,
        Op::Packages => purchase::list_packages(cx).await,
        Op::Models => models::list(cx).await,
        Op::AdminUser => admin::lookup_user(cx).await,
        Op::AdminGrant => admin::grant(cx).await,
        Op::AdminAdjust => admin::adjust(cx).await,
        Op::AdminVoidGrant => admin::void_grant(cx).await,
        Op::AdminRefundJob => admin::refund_job(cx).await,
        Op::AdminSuspend => admin::suspend(cx).await,
        Op::AdminUnsuspend => admin::unsuspend(cx).await,
        Op::AdminSpendCap => admin::spend_cap(cx).await,
        Op::AdminLedgerCsv => admin::ledger_csv(cx).await,
        Op::AdminAudit => admin::audit(cx).await,
        Op::AdminWebhooks => admin::webhooks(cx).await,
        Op::SubscriptionCheckout => subscription::checkout(cx).await,
        Op::SubscriptionCancel => subscription::cancel(cx).await,
        Op::Subscription => subscription::get(cx).await,
        Op::Invites => invites::get(cx).await,
        Op::RedeemInvite => invites::redeem(cx).await,
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

/// The methods a path accepts (for 405s and CORS preflights).
fn methods_for(path: &str) -> Vec<&'static str> {
    ROUTES.iter().filter(|(_, pattern, _)| matches(pattern, path).is_some()).map(|(m, _, _)| m.as_ref()).collect()
}

/// Handles one request end to end; never fails (every error becomes a JSON response).
pub async fn handle(req: Request, env: Env) -> Response {
    let started = js_sys::Date::now();
    let method_name = req.method();
    // `Method::from` reads any method it does not know as GET; only these seven are routed at all.
    let known = known_method(&method_name);
    let method = Method::from(method_name.clone());
    let url = req.url();
    let path = shared::input::path_of(&url);
    // Cloudflare's ray id when it is one (the edge sets it; a client-sent one is only trusted in shape).
    let req_headers = req.headers();
    let request_id = req_headers
        .get("cf-ray")
        .ok()
        .flatten()
        .filter(|r| !r.is_empty() && r.len() <= 64 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or_else(new_request_id);
    let cfg = context::config(&env);
    // Read only where it is used: when CORS origins are configured.
    let origin = match &cfg {
        Ok(cfg) if !cfg.cors_origins.is_empty() => req_headers.get("origin").ok().flatten(),
        _ => None,
    };
    let resolved = if known { resolve(&method, path) } else { Err(ApiError::method_not_allowed()) };
    let (route, result) = match (&cfg, resolved) {
        (Err(why), _) => ("-", Err(ApiError::internal().because(format!("configuration: {why}")))),
        (Ok(_), Err(e)) if !known => ("-", Err(e)),
        (Ok(_), Err(_)) if method == Method::Options && !methods_for(path).is_empty() => {
            ("preflight", Ok(preflight(path)))
        }
        (Ok(_), Err(e)) => ("-", Err(e)),
        (Ok(cfg), Ok((op, pattern, params))) => {
            (pattern, dispatch(op, Cx { req, headers: req_headers, env, cfg: cfg.clone(), params }).await)
        }
    };
    let resp = match result {
        Ok(resp) => resp,
        Err(err) => {
            crate::log::cause(&err, &request_id);
            respond::error(&err)
        }
    };
    let headers = resp.headers();
    let _ = headers.set("x-request-id", &request_id);
    if let Ok(cfg) = &cfg {
        if !cfg.cors_origins.is_empty() {
            // Answers differ by origin, so caches must key on it, allowed or not.
            let _ = headers.append("vary", "Origin");
        }
        if let Some(origin) = origin.as_deref().filter(|o| cfg.origin_allowed(o)) {
            let _ = headers.set("access-control-allow-origin", origin);
            let _ = headers.set("access-control-expose-headers", EXPOSED_HEADERS);
        }
    }
    let method_end = method_name.char_indices().nth(16).map_or(method_name.len(), |(at, _)| at);
    crate::log::access(&crate::log::Access {
        duration_ms: (js_sys::Date::now() - started) as i64,
        method: &method_name[..method_end],
        request_id: &request_id,
        route,
        status: resp.status(),
    });
    resp
}

/// Response headers a browser app may read (besides the CORS-safelisted ones).
const EXPOSED_HEADERS: &str = "location, idempotent-replayed, retry-after, x-request-id, x-next-after, \
     content-range, content-length, accept-ranges, etag";

/// A CORS preflight for a known path. The allow-origin header is added by `handle` only for an
/// allowed origin.
fn preflight(path: &str) -> Response {
    let resp = respond::json(204, String::new());
    let headers = resp.headers();
    let _ = headers.set("access-control-allow-methods", &methods_for(path).join(", "));
    let _ = headers.set(
        "access-control-allow-headers",
        "authorization, content-type, idempotency-key, apikey, x-client-info, range",
    );
    let _ = headers.set("access-control-max-age", "600");
    let _ = headers.delete("content-type");
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
        assert!(matches!(resolve(&Method::Get, "/v1/jobs/0b6c"), Ok((Op::Job, _, p)) if p == vec!["0b6c".to_string()]));
        assert_eq!(methods_for("/v1/drafts"), vec!["POST"]);
        assert_eq!(methods_for("/v1/projects/0b6c"), vec!["GET", "PATCH", "DELETE"]);
        assert!(matches!(resolve(&Method::Post, "/v1/jobs/0b6c/cancel"), Ok((Op::CancelJob, _, _))));
        assert_eq!(resolve(&Method::Put, "/v1/account").unwrap_err().status, 405);
        assert!(matches!(
            resolve(&Method::Put, "/v1/pipeline/jobs/j/assets/final.mp4"),
            Ok((Op::UploadAsset, _, p)) if p == vec!["j".to_string(), "final.mp4".to_string()]
        ));
        assert!(matches!(resolve(&Method::Head, "/v1/jobs/j/assets/a"), Ok((Op::DownloadAsset, _, _))));
        assert!(methods_for("/v1/none").is_empty());
        assert!(matches!(resolve(&Method::Get, "/v1/admin/users/0b6c/ledger.csv"), Ok((Op::AdminLedgerCsv, _, _))));
        assert!(matches!(resolve(&Method::Post, "/v1/admin/jobs/0b6c/refund"), Ok((Op::AdminRefundJob, _, _))));
        assert_eq!(resolve(&Method::Get, "/v1/admin/users/0b6c/grants").unwrap_err().status, 405);
        // `Method::from` maps any unknown method to GET; the gate in front of routing does not.
        assert!(matches!(Method::from("PROPFIND".to_string()), Method::Get), "why the gate exists");
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(known_method(m), "{m}");
        }
        for m in ["PROPFIND", "get", "TRACE", "CONNECT", "put", ""] {
            assert!(!known_method(m), "{m}");
        }
    }
}
