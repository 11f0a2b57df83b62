//! Timestamped HMAC-SHA256 request signatures: `t=<unix seconds>,v1=<hex>` over `"{t}.{raw body}"`.
//!
//! This is Stripe's webhook scheme, used for the generation pipeline's callbacks as well, so one
//! verifier serves both: several `v1` values may be present and several secrets configured (secret
//! rotation), any match passes; the comparison is constant-time; a timestamp outside the
//! tolerance window (either direction) is refused, so a captured request cannot be replayed later.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a signature was refused (logged; clients see one code per endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No header, no `t`, no `v1`, or a value that is not what the scheme allows.
    Malformed,
    /// `t` is further than the tolerance from now.
    Stale,
    /// No `v1` matches any configured secret.
    Mismatch,
}

impl SignatureError {
    /// A short reason for the log line.
    pub fn reason(self) -> &'static str {
        match self {
            SignatureError::Malformed => "malformed",
            SignatureError::Stale => "stale",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// The hex HMAC-SHA256 of `"{t}.{body}"` with `secret` (for signing, e.g. in tests and tools).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

/// Verifies `header` against the raw `body`, any of `secrets`, at time `now` (unix seconds).
/// Returns the signed timestamp.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &[&[u8]],
    now: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let header = header.filter(|h| h.len() <= 1024).ok_or(SignatureError::Malformed)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let (k, v) = part.trim().split_once('=').ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                if t.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 12 {
                    return Err(SignatureError::Malformed);
                }
                t = v.parse::<i64>().ok();
            }
            // Only v1 (HMAC-SHA256) counts; other schemes (Stripe's v0 test scheme) are ignored.
            "v1" => candidates.push(unhex(v).ok_or(SignatureError::Malformed)?),
            _ => {}
        }
    }
    let t = t.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() || secrets.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - t).abs() > tolerance_secs {
        return Err(SignatureError::Stale);
    }
    for secret in secrets {
        for candidate in &candidates {
            let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| SignatureError::Mismatch)?;
            mac.update(t.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            // verify_slice compares in constant time.
            if mac.verify_slice(candidate).is_ok() {
                return Ok(t);
            }
        }
    }
    Err(SignatureError::Mismatch)
}

/// Splits a comma-separated secrets binding (several during rotation).
pub fn secrets(binding: &str) -> Vec<&[u8]> {
    binding.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::as_bytes).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const BODY: &[u8] = br#"{"id":"evt_1","type":"x"}"#;

    fn header(secret: &[u8], t: i64, body: &[u8]) -> String {
        format!("t={t},v1={}", sign(secret, t, body))
    }

    #[test]
    fn accepts_a_current_signature_from_any_configured_secret() {
        let old: &[u8] = b"whsec_old";
        let new: &[u8] = b"whsec_new";
        assert_eq!(verify(Some(&header(new, NOW, BODY)), BODY, &[old, new], NOW, 300), Ok(NOW));
        // Several v1 values (the sender signs with each of its secrets during rotation).
        let both = format!("t={NOW},v1={},v1={},v0=abc", sign(b"other", NOW, BODY), sign(old, NOW, BODY));
        assert_eq!(verify(Some(&both), BODY, &[old], NOW, 300), Ok(NOW));
        assert_eq!(verify(Some(&header(old, NOW - 299, BODY)), BODY, &[old], NOW, 300), Ok(NOW - 299));
    }

    #[test]
    fn refuses_every_bad_signature() {
        let s: &[u8] = b"whsec_test";
        let good = header(s, NOW, BODY);
        let cases: Vec<(&str, Option<String>, &[u8], SignatureError)> = vec![
            ("missing header", None, BODY, SignatureError::Malformed),
            ("empty", Some(String::new()), BODY, SignatureError::Malformed),
            ("no t", Some(format!("v1={}", sign(s, NOW, BODY))), BODY, SignatureError::Malformed),
            ("no v1", Some(format!("t={NOW}")), BODY, SignatureError::Malformed),
            ("two t", Some(format!("{good},t={NOW}")), BODY, SignatureError::Malformed),
            ("short v1", Some(format!("t={NOW},v1=abcd")), BODY, SignatureError::Malformed),
            ("stale", Some(header(s, NOW - 301, BODY)), BODY, SignatureError::Stale),
            ("future", Some(header(s, NOW + 301, BODY)), BODY, SignatureError::Stale),
            ("changed byte", Some(good.clone()), br#"{"id":"evt_2","type":"x"}"#, SignatureError::Mismatch),
            ("re-serialized body", Some(good.clone()), br#"{"id": "evt_1", "type": "x"}"#, SignatureError::Mismatch),
            ("wrong secret", Some(header(b"whsec_other", NOW, BODY)), BODY, SignatureError::Mismatch),
        ];
        for (name, h, body, want) in cases {
            assert_eq!(verify(h.as_deref(), body, &[s], NOW, 300), Err(want), "{name}");
        }
        assert_eq!(secrets(" a, ,b "), vec![&b"a"[..], &b"b"[..]]);
    }
}
