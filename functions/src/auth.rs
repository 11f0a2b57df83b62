//! Verifying the caller's Supabase access token at the edge.
//!
//! This is an early reject: PostgREST verifies the same token again and RLS decides what it may
//! touch. The rules themselves live in `shared::jwt`; this module supplies the key and the clock.

use crate::context::Cx;
use shared::jwt::{self, Alg, AuthError, Claims, Rules};
use shared::ApiError;

/// A verified caller: the claims and the token to forward to PostgREST.
pub struct User {
    pub claims: Claims,
    pub token: String,
}

/// Whether a route accepts Supabase anonymous sign-ins (`is_anonymous: true`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Anonymous {
    Allowed,
    Refused,
}

/// Verifies the `Authorization: Bearer` token of the request.
pub fn authenticate(cx: &Cx, anonymous: Anonymous) -> Result<User, ApiError> {
    let header = cx.req.headers().get("authorization").ok().flatten();
    let token = jwt::bearer(header.as_deref()).map_err(AuthError::to_api)?;
    let rules = Rules::for_issuer(cx.cfg.issuer());
    let now = (js_sys::Date::now() / 1000.0) as i64;
    let verified = jwt::parse(token, &rules).and_then(|parsed| {
        match (parsed.alg, cx.cfg.jwt_secret.as_deref()) {
            (Alg::HS256, Some(secret)) => jwt::verify_hs256(&parsed, secret)?,
            _ => return Err(AuthError::BadSignature),
        }
        jwt::validate(&parsed, &rules, now)
    });
    let claims = verified.map_err(|e| {
        worker::console_log!("{{\"event\":\"auth_rejected\",\"reason\":\"{}\"}}", e.reason());
        e.to_api()
    })?;
    if claims.is_anonymous && anonymous == Anonymous::Refused {
        return Err(AuthError::AnonymousNotAllowed.to_api());
    }
    Ok(User { claims, token: token.to_owned() })
}
