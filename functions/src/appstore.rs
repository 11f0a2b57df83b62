//! App Store signed data in the Worker: the chain and payload rules of `shared::appstore`, and
//! the three ECDSA verifications they ask for, run through WebCrypto.
//!
//! WebCrypto (`crypto.subtle`, BoringSSL in workerd) does the curve arithmetic: the certificates'
//! signatures with P-256 or P-384 and SHA-256 or SHA-384 as each certificate says, the JWS with
//! P-256/SHA-256. Keys are imported from the certificates' `SubjectPublicKeyInfo` (`spki`), so no
//! elliptic-curve code is linked into the wasm; signatures are raw `r || s`, converted from DER by
//! `shared::appstore::ecdsa_raw`. Any WebCrypto error counts as a bad signature.

use js_sys::{Array, Object, Reflect, Uint8Array};
use shared::appstore::{parse_jws, Check, JwsError};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::CryptoKey;

fn ecdsa(second: (&str, &str)) -> Object {
    let o = Object::new();
    let _ = Reflect::set(&o, &"name".into(), &"ECDSA".into());
    let _ = Reflect::set(&o, &second.0.into(), &second.1.into());
    o
}

async fn run(check: &Check) -> Result<bool, JsValue> {
    let subtle = crate::crypto::subtle()?;
    let usages = Array::of1(&JsValue::from_str("verify"));
    let spki = Uint8Array::from(&check.spki[..]);
    let key: CryptoKey = JsFuture::from(subtle.import_key_with_object(
        "spki",
        &spki,
        &ecdsa(("namedCurve", check.curve.name())),
        false,
        &usages,
    )?)
    .await?
    .unchecked_into();
    let ok = JsFuture::from(subtle.verify_with_object_and_js_u8_array_and_js_u8_array(
        &ecdsa(("hash", check.hash.name())),
        &key,
        &Uint8Array::from(&check.signature[..]),
        &Uint8Array::from(&check.message[..]),
    )?)
    .await?;
    Ok(ok.as_bool() == Some(true))
}

/// Verifies a signed transaction or notification against the configured root and returns its
/// payload's JSON text (an object without repeated keys); `now` is unix seconds.
pub async fn verify(token: &str, root: &[u8], now: i64) -> Result<String, JwsError> {
    let signed = parse_jws(token, root, now)?;
    for check in &signed.checks {
        if !matches!(run(check).await, Ok(true)) {
            return Err(JwsError::BadSignature);
        }
    }
    Ok(signed.payload)
}
