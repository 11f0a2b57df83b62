//! Verifying the caller's Supabase access token at the edge.
//!
//! This is an early reject: PostgREST verifies the same token again and RLS decides what it may
//! touch. The rules themselves live in `shared::jwt`; this module supplies the keys and the clock.
//! HS256 is checked in Rust against `SUPABASE_JWT_SECRET`; ES256 and RS256 through WebCrypto
//! against the project's JWKS ([`crate::crypto`]). Which of the two systems is on comes from the
//! configuration only (`shared::config`): a token's header picks among the enabled ones, never
//! enables one, and never supplies a key (`jku`, `x5u`, `jwk`, `x5c` are not read).

use crate::context::Cx;
use crate::crypto;
use crate::db::Caller;
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
pub async fn authenticate(cx: &Cx, anonymous: Anonymous) -> Result<User, ApiError> {
    let header = cx.header("authorization");
    let token = jwt::bearer(header.as_deref()).map_err(AuthError::to_api)?;
    let claims = verify(cx, token).await.map_err(|e| {
        crate::log::info(crate::log::event("auth_rejected").str("reason", e.reason()));
        e.to_api()
    })?;
    if claims.is_anonymous && anonymous == Anonymous::Refused {
        return Err(AuthError::AnonymousNotAllowed.to_api());
    }
    Ok(User { claims, token: token.to_owned() })
}

/// Who may use the admin API: a verified user whose token carries `app_metadata.role = "admin"`,
/// or the service key itself. The database checks the same again in every admin RPC.
pub enum Admin {
    User(User),
    Service,
}

impl Admin {
    /// The authority the admin's RPC is sent with: the admin's own token, or the service key.
    pub fn caller(&self) -> Caller<'_> {
        match self {
            Admin::User(user) => Caller::User(&user.token),
            Admin::Service => Caller::Service,
        }
    }
}

/// Verifies an admin API caller. The service key is compared in constant time (it is a secret of
/// this deployment, not a token the edge verifies); any other bearer token must be a valid user
/// token (not an anonymous sign-in) with the admin claim, else 403 `forbidden`.
pub async fn authenticate_admin(cx: &Cx) -> Result<Admin, ApiError> {
    let header = cx.header("authorization");
    let token = jwt::bearer(header.as_deref()).map_err(AuthError::to_api)?;
    if let Some(key) = cx.cfg.service_role_key.as_deref() {
        if shared::input::constant_time_eq(token.as_bytes(), key.as_bytes()) {
            return Ok(Admin::Service);
        }
    }
    let user = authenticate(cx, Anonymous::Refused).await?;
    if !user.claims.is_admin() {
        crate::log::info(crate::log::event("admin_refused").str("sub", &user.claims.sub));
        return Err(ApiError::new(403, "forbidden", "This operation is reserved for admins."));
    }
    Ok(Admin::User(user))
}

/// Signature first, with the key the configuration designates for the header's `alg`; claims
/// after, so nothing about an unsigned token's claims is revealed by the error code.
async fn verify(cx: &Cx, token: &str) -> Result<Claims, AuthError> {
    let rules = Rules::for_issuer(cx.cfg.issuer());
    let parsed = jwt::parse(token, &rules)?;
    match (parsed.alg, cx.cfg.jwt_secret.as_deref(), cx.cfg.jwks.as_ref()) {
        (Alg::HS256, Some(secret), _) => jwt::verify_hs256(&parsed, secret, now())?,
        (Alg::ES256 | Alg::RS256, _, Some(keys)) => {
            // `parse` guarantees a bounded, non-empty kid for asymmetric algorithms.
            let kid = parsed.kid.as_deref().ok_or(AuthError::Malformed)?;
            let key = crypto::key_for(keys, kid, parsed.alg).await?;
            crypto::verify(&key, parsed.alg, parsed.signing_input.as_bytes(), &parsed.signature).await?;
        }
        // The header names a signing system this deployment does not use.
        _ => return Err(AuthError::BadSignature),
    }
    // The clock is read after any fetch, so a slow JWKS answer cannot stretch `exp`.
    jwt::validate(&parsed, &rules, now())
}

fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}
