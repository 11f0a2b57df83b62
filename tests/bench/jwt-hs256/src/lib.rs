//! Bench only: the Worker's HS256 verification (`shared::jwt::verify_hs256_token`: parse with the
//! strict JSON checks, jwt-simple's HMAC-SHA256 tag check, then the bundle's claim rules), called
//! from JavaScript so tests/bench/hs256.mjs can time it inside workerd.
use shared::jwt::{verify_hs256_token, Rules};
use wasm_bindgen::prelude::*;

/// Verifies `token` `n` times against `secret` and `issuer` at `now` (Unix seconds), as the
/// Worker does per request; answers how many verified.
#[wasm_bindgen]
pub fn verify(token: &str, secret: &str, issuer: &str, now: f64, n: u32) -> u32 {
    let rules = Rules::for_issuer(issuer.to_owned());
    (0..n).filter(|_| verify_hs256_token(token, secret.as_bytes(), &rules, now as i64).is_ok()).count() as u32
}
