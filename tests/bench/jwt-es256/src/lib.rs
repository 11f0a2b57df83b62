//! Bench only: verifies an ES256 JWT with jwt-simple (pure Rust, p256) from JavaScript, so that
//! tests/bench/es256.mjs can time it against WebCrypto's ECDSA P-256 in the same workerd isolate.
use jwt_simple::prelude::*;
use wasm_bindgen::prelude::*;

/// A public key imported once (SEC1 bytes: 0x04 || x || y), as the Worker would cache it.
#[wasm_bindgen]
pub struct Es256 {
    key: ES256PublicKey,
}

#[wasm_bindgen]
impl Es256 {
    /// Imports the key; throws on a malformed point.
    #[wasm_bindgen(constructor)]
    pub fn new(sec1: &[u8]) -> Result<Es256, JsError> {
        Ok(Es256 { key: ES256PublicKey::from_bytes(sec1).map_err(|e| JsError::new(&e.to_string()))? })
    }

    /// Verifies `token` `n` times (signature, header, claims, expiry); answers how many verified.
    pub fn verify(&self, token: &str, n: u32) -> u32 {
        (0..n).filter(|_| self.key.verify_token::<NoCustomClaims>(token, None).is_ok()).count() as u32
    }
}
