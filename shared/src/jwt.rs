//! Supabase access tokens: parsing and the claim rules, stricter than a general JWT library.
//!
//! The rules follow RFC 8725 and Supabase's token format (see ../shared/SECURITY.md section 1):
//! the token length is capped before any decoding, the compact form must be canonical, the
//! algorithm comes from the header but the key comes only from configuration (so `jku`, `x5u`,
//! `jwk` and `x5c` headers are never looked at), `crit` is refused, `exp` and `iat` are
//! required with a small skew, the validity window is bounded, and `iss`, `aud`, `role`, `sub` and
//! `session_id` must be what Supabase Auth issues for a signed-in user. HS256 is verified here with
//! jwt-simple; asymmetric signatures are verified by the caller (WebCrypto in the Worker) on the
//! [`Token`] this module parses. Either way the claims are then checked by [`validate`]: one set of
//! rules, written once, for both paths.

use crate::{strict, ApiError};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_simple::prelude::{Duration, HS256Key, MACLike, NoCustomClaims, UnixTimeStamp, VerificationOptions};
use jwt_simple::JWTError;
use serde::Deserialize;

/// Signature algorithms Supabase Auth uses. Anything else, including `none`, is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    HS256,
    ES256,
    RS256,
}

/// Why a token was refused. Each maps to one stable client code; details stay in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Not a canonical compact JWS, too long, bad JSON, duplicate claims, `crit`, unknown `alg`.
    Malformed,
    /// The signature does not verify with the configured key for that algorithm, or no such key.
    BadSignature,
    /// `exp` is in the past beyond the allowed skew.
    Expired,
    /// `iat` or `nbf` is in the future beyond the allowed skew.
    NotYetValid,
    /// A required claim is missing or has the wrong value (the claim is named for logs only).
    Claim(&'static str),
    /// The signing keys could not be fetched: fail closed, with 503.
    KeysUnavailable,
    /// A valid token of an anonymous user on a route that requires a permanent account.
    AnonymousNotAllowed,
}

impl AuthError {
    /// The client-facing error: one shape, nothing that helps an attacker.
    pub fn to_api(self) -> ApiError {
        match self {
            AuthError::Missing => {
                ApiError::unauthorized("missing_token", "An Authorization: Bearer <access token> header is required.")
            }
            AuthError::Expired => {
                ApiError::unauthorized("token_expired", "The access token has expired; refresh the session.")
            }
            AuthError::KeysUnavailable => ApiError::unavailable(),
            AuthError::AnonymousNotAllowed => ApiError::new(
                403,
                "anonymous_not_allowed",
                "This operation needs a permanent account, not an anonymous session.",
            ),
            _ => ApiError::unauthorized("invalid_token", "The access token is not valid for this project."),
        }
    }

    /// A short reason for the structured log line (never sent to the client).
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::Claim(c) => c,
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::AnonymousNotAllowed => "anonymous",
        }
    }
}

/// What is checked besides the signature.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Expected `iss`: `https://<ref>.supabase.co/auth/v1`.
    pub issuer: String,
    /// Allowed clock skew in seconds for `exp`, `iat` and `nbf`.
    pub leeway_secs: i64,
    /// Longest accepted `exp - iat` (Supabase allows at most one week).
    pub max_validity_secs: i64,
    /// Tokens longer than this are refused before any decoding or crypto.
    pub max_token_len: usize,
}

impl Rules {
    pub fn for_issuer(issuer: String) -> Rules {
        Rules { issuer, leeway_secs: 30, max_validity_secs: 7 * 24 * 3600, max_token_len: 4096 }
    }
}

/// A parsed, not yet verified token.
#[derive(Debug)]
pub struct Token<'a> {
    /// The whole compact token.
    pub raw: &'a str,
    pub alg: Alg,
    pub kid: Option<String>,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    payload: Vec<u8>,
}

/// The verified identity of the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub session_id: String,
    pub is_anonymous: bool,
    pub exp: i64,
    /// `app_metadata.role`: set by the team through the Auth admin API (users cannot change
    /// `app_metadata`); `admin` opens the admin API. Absent or not a string: none.
    pub app_role: Option<String>,
}

impl Claims {
    /// Whether the token carries `app_metadata.role = "admin"`.
    pub fn is_admin(&self) -> bool {
        self.app_role.as_deref() == Some("admin")
    }
}

/// The JOSE header members this module reads; key-carrying members (`jku`, `x5u`, `jwk`, `x5c`)
/// are never read, whatever they hold.
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    /// `crit` in any form, even `null` or `[]`, names extensions this code does not implement.
    #[serde(default, deserialize_with = "strict::present")]
    crit: bool,
}

/// `aud`: a string or an array of strings (RFC 7519 section 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims the rules look at. A member of the wrong JSON type (a NumericDate as a string, a
/// fraction, an exponent or a value outside `i64`; a non-boolean `is_anonymous`) makes the whole
/// token malformed; `null` counts as absent except for `is_anonymous`.
#[derive(Deserialize)]
struct RawClaims {
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    iss: Option<String>,
    aud: Option<Audience>,
    role: Option<String>,
    sub: Option<String>,
    session_id: Option<String>,
    #[serde(default)]
    is_anonymous: bool,
    /// Any JSON: only a string `role` member inside an object is read.
    #[serde(default)]
    app_metadata: Option<serde_json::Value>,
}

/// A JSON object of type `T` from base64url-decoded bytes. The strict check refuses a repeated
/// member anywhere, so a token cannot carry two `sub`s, and bounds the nesting.
fn object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, AuthError> {
    let text = std::str::from_utf8(bytes).map_err(|_| AuthError::Malformed)?;
    if !text.trim_start().starts_with('{') {
        return Err(AuthError::Malformed);
    }
    strict::parse(text).map_err(|_| AuthError::Malformed)
}

/// Strict base64url without padding (RFC 7515's compact form): padding, the standard alphabet,
/// white space and non-canonical trailing bits are refused.
pub fn b64url(part: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(part).ok()
}

/// Extracts the token from an `Authorization` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::Malformed);
    }
    Ok(token)
}

/// Parses a compact JWS strictly. Never looks at key-carrying headers.
pub fn parse<'a>(token: &'a str, rules: &Rules) -> Result<Token<'a>, AuthError> {
    if token.len() > rules.max_token_len {
        return Err(AuthError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(AuthError::Malformed);
    };
    let header_json = b64url(h).ok_or(AuthError::Malformed)?;
    let header: Header = object(&header_json)?;
    if header.crit {
        return Err(AuthError::Malformed);
    }
    if header.typ.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("JWT")) {
        return Err(AuthError::Malformed);
    }
    let kid = header.kid;
    let alg = match header.alg.as_str() {
        "HS256" => Alg::HS256,
        "ES256" => Alg::ES256,
        "RS256" => Alg::RS256,
        _ => return Err(AuthError::Malformed),
    };
    // Asymmetric keys are picked by `kid` only, from the configured JWKS: a token that does not
    // name its key is refused rather than tried against every key.
    if alg != Alg::HS256 && !kid.as_deref().is_some_and(|k| !k.is_empty() && k.len() <= crate::jwks::MAX_KID_LEN) {
        return Err(AuthError::Malformed);
    }
    let payload = b64url(p).ok_or(AuthError::Malformed)?;
    let signature = b64url(s).ok_or(AuthError::Malformed)?;
    let sig_ok = match alg {
        Alg::HS256 => signature.len() == 32,
        // Raw `r || s`, as JWS (RFC 7518 section 3.4) and WebCrypto both use; never DER.
        Alg::ES256 => signature.len() == 64,
        // The modulus length of a 2048- to 4096-bit key.
        Alg::RS256 => (256..=512).contains(&signature.len()),
    };
    if !sig_ok {
        return Err(AuthError::BadSignature);
    }
    Ok(Token { raw: token, alg, kid, signing_input: &token[..h.len() + 1 + p.len()], signature, payload })
}

/// Verifies an HS256 signature with jwt-simple (constant-time tag comparison), at `now`.
///
/// jwt-simple checks the tag and then applies its own claim rules, which are looser than ours (15
/// minutes of skew, `exp` optional): here they are set so they can refuse nothing (its clock is
/// `now`, its tolerance reaches back to the epoch, future tokens accepted, no maximum validity) and
/// [`validate`] applies the bundle's rules afterwards, as it does for ES256 and RS256. jwt-simple's
/// claim parsing is also stricter in places the rules are not (`"nbf": null`, negative times); when
/// it fails for such a reason, the tag is checked with jwt-simple's own primitives (the key's
/// HMAC-SHA256 tag, `ct_codecs::verify` in constant time), exactly as its `verify_token` does, so
/// the rules stay the only judge of the claims.
pub fn verify_hs256(token: &Token<'_>, secret: &[u8], now: i64) -> Result<(), AuthError> {
    if token.alg != Alg::HS256 {
        return Err(AuthError::BadSignature);
    }
    let now = u64::try_from(now).unwrap_or(0);
    let options = VerificationOptions {
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        time_tolerance: Some(Duration::from_secs(now)),
        accept_future: true,
        max_validity: None,
        // The length was capped before any decoding (`Rules::max_token_len`).
        max_token_length: None,
        ..VerificationOptions::default()
    };
    match HS256Key::from_bytes(secret).verify_token::<NoCustomClaims>(token.raw, Some(options)) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.downcast_ref::<JWTError>(), Some(JWTError::InvalidAuthenticationTag)) => {
            Err(AuthError::BadSignature)
        }
        Err(_) => {
            let expected = HS256Key::from_bytes(secret).authentication_tag(token.signing_input.as_bytes());
            if jwt_simple::reexports::ct_codecs::verify(&expected, &token.signature) {
                Ok(())
            } else {
                Err(AuthError::BadSignature)
            }
        }
    }
}

/// Checks the claims of a token whose signature has been verified.
pub fn validate(token: &Token<'_>, rules: &Rules, now: i64) -> Result<Claims, AuthError> {
    let raw: RawClaims = object(&token.payload)?;
    let RawClaims { exp, iat, nbf, iss, aud, role, sub, session_id, is_anonymous, app_metadata } = raw;
    let aud_ok = match aud {
        None => false,
        Some(Audience::One(a)) => a == "authenticated",
        Some(Audience::Many(list)) => list.iter().any(|a| a == "authenticated"),
    };
    let exp = exp.ok_or(AuthError::Claim("exp"))?;
    let iat = iat.ok_or(AuthError::Claim("iat"))?;
    if now > exp.saturating_add(rules.leeway_secs) {
        return Err(AuthError::Expired);
    }
    if iat > now.saturating_add(rules.leeway_secs) || nbf.is_some_and(|nbf| nbf > now.saturating_add(rules.leeway_secs))
    {
        return Err(AuthError::NotYetValid);
    }
    // Checked: `exp = i64::MAX, iat = -1` overflows a plain subtraction (a panic in a debug
    // build, a negative and therefore "short" validity in release).
    if exp.checked_sub(iat).is_none_or(|validity| validity <= 0 || validity > rules.max_validity_secs) {
        return Err(AuthError::Claim("validity"));
    }
    if iss.as_deref() != Some(rules.issuer.as_str()) {
        return Err(AuthError::Claim("iss"));
    }
    if !aud_ok {
        return Err(AuthError::Claim("aud"));
    }
    if role.as_deref() != Some("authenticated") {
        return Err(AuthError::Claim("role"));
    }
    let sub = sub.filter(|s| is_uuid(s)).ok_or(AuthError::Claim("sub"))?;
    let session_id = session_id.filter(|s| !s.is_empty() && s.len() <= 64).ok_or(AuthError::Claim("session_id"))?;
    let app_role = app_metadata
        .as_ref()
        .and_then(|m| m.get("role"))
        .and_then(serde_json::Value::as_str)
        .filter(|r| r.len() <= 64)
        .map(str::to_owned);
    Ok(Claims { sub, session_id, is_anonymous, exp, app_role })
}

/// `8-4-4-4-12` hexadecimal, as Postgres prints a uuid.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Verifies an HS256 token end to end (the legacy Supabase configuration).
pub fn verify_hs256_token(token: &str, secret: &[u8], rules: &Rules, now: i64) -> Result<Claims, AuthError> {
    let parsed = parse(token, rules)?;
    verify_hs256(&parsed, secret, now)?;
    validate(&parsed, rules, now)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub const SECRET: &[u8] = b"super-secret-jwt-token-with-at-least-32-characters-long";
    pub const ISS: &str = "http://127.0.0.1:54321/auth/v1";
    pub const NOW: i64 = 1_800_000_000;
    pub const SUB: &str = "3f1c9a52-8d3e-4b8e-9a55-0c5b1f0e7a11";

    pub fn sign_hs256(header: &str, payload: &str, secret: &[u8]) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    pub fn good_claims() -> serde_json::Value {
        json!({"iss": ISS, "aud": "authenticated", "sub": SUB, "role": "authenticated", "exp": NOW + 3600,
               "iat": NOW - 10, "session_id": "8b6a1f4e-2c1d-4d3b-9e0f-aa11bb22cc33", "is_anonymous": false,
               "aal": "aal1"})
    }

    fn with(f: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut c = good_claims();
        f(&mut c);
        sign_hs256(r#"{"alg":"HS256","typ":"JWT"}"#, &c.to_string(), SECRET)
    }

    fn check(token: &str) -> Result<Claims, AuthError> {
        verify_hs256_token(token, SECRET, &Rules::for_issuer(ISS.into()), NOW)
    }

    #[test]
    fn accepts_a_supabase_access_token() {
        let claims = check(&with(|_| {})).unwrap();
        assert_eq!(claims.sub, SUB);
        assert!(!claims.is_anonymous);
        let anon = check(&with(|c| c["is_anonymous"] = json!(true))).unwrap();
        assert!(anon.is_anonymous, "anonymous users are authenticated; routes decide");
        assert!(!claims.is_admin(), "no app_metadata: no admin");
        let admin = check(&with(|c| c["app_metadata"] = json!({"provider": "email", "role": "admin"}))).unwrap();
        assert!(admin.is_admin(), "app_metadata.role = admin");
        for other in [json!({"role": "support"}), json!({"role": ["admin"]}), json!("admin"), json!(null)] {
            let claims = check(&with(|c| c["app_metadata"] = other.clone())).unwrap();
            assert!(!claims.is_admin(), "{other} is not an admin");
        }
        // user_metadata is the user's to write: a role there means nothing.
        assert!(!check(&with(|c| c["user_metadata"] = json!({"role": "admin"}))).unwrap().is_admin());
        assert!(check(&with(|c| c["aud"] = json!(["other", "authenticated"]))).is_ok());
        assert!(
            check(&with(|c| {
                c["exp"] = json!(NOW - 29);
                c["iat"] = json!(NOW - 3000);
            }))
            .is_ok(),
            "within the skew"
        );
    }

    #[test]
    fn refuses_every_bad_claim() {
        let cases: Vec<(&str, String, AuthError)> = vec![
            ("expired beyond skew", with(|c| c["exp"] = json!(NOW - 31)), AuthError::Expired),
            (
                "no exp",
                with(|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                AuthError::Claim("exp"),
            ),
            (
                "no iat",
                with(|c| {
                    c.as_object_mut().unwrap().remove("iat");
                }),
                AuthError::Claim("iat"),
            ),
            ("exp absurdly far", with(|c| c["exp"] = json!(NOW + 365 * 86400)), AuthError::Claim("validity")),
            ("iat in the future", with(|c| c["iat"] = json!(NOW + 120)), AuthError::NotYetValid),
            ("nbf in the future", with(|c| c["nbf"] = json!(NOW + 120)), AuthError::NotYetValid),
            ("other project", with(|c| c["iss"] = json!("https://other.supabase.co/auth/v1")), AuthError::Claim("iss")),
            ("aud anon", with(|c| c["aud"] = json!("anon")), AuthError::Claim("aud")),
            (
                "aud missing",
                with(|c| {
                    c.as_object_mut().unwrap().remove("aud");
                }),
                AuthError::Claim("aud"),
            ),
            ("role anon", with(|c| c["role"] = json!("anon")), AuthError::Claim("role")),
            ("role service_role", with(|c| c["role"] = json!("service_role")), AuthError::Claim("role")),
            (
                "sub missing",
                with(|c| {
                    c.as_object_mut().unwrap().remove("sub");
                }),
                AuthError::Claim("sub"),
            ),
            ("sub not a uuid", with(|c| c["sub"] = json!("admin")), AuthError::Claim("sub")),
            (
                "no session",
                with(|c| {
                    c.as_object_mut().unwrap().remove("session_id");
                }),
                AuthError::Claim("session_id"),
            ),
            ("exp as string", with(|c| c["exp"] = json!("9999999999")), AuthError::Malformed),
            (
                "exp - iat overflows",
                with(|c| {
                    c["exp"] = json!(i64::MAX);
                    c["iat"] = json!(-1);
                }),
                AuthError::Claim("validity"),
            ),
            (
                "exp - iat at the edge",
                with(|c| {
                    c["exp"] = json!(i64::MAX);
                    c["iat"] = json!(i64::MIN);
                }),
                AuthError::Claim("validity"),
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(check(&token), Err(want), "{name}");
        }
    }

    #[test]
    fn refuses_forged_and_malformed_tokens() {
        let good = with(|_| {});
        let (hp, sig) = good.rsplit_once('.').unwrap();
        let claims = good_claims().to_string();
        let dup = claims.replacen('{', &format!("{{\"sub\":\"{SUB}\","), 1);
        let cases: Vec<(&str, String, AuthError)> = vec![
            ("alg none", format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes())), AuthError::Malformed),
            ("alg NoNe", sign_hs256(r#"{"alg":"NoNe"}"#, &claims, SECRET), AuthError::Malformed),
            (
                "wrong secret",
                sign_hs256(r#"{"alg":"HS256"}"#, &claims, b"another-secret-another-secret-another!!"),
                AuthError::BadSignature,
            ),
            ("relabelled ES256", sign_hs256(r#"{"alg":"ES256","kid":"k"}"#, &claims, SECRET), AuthError::BadSignature),
            (
                "tampered payload",
                format!(
                    "{}.{}.{sig}",
                    hp.split('.').next().unwrap(),
                    b64(claims.replace(SUB, "00000000-0000-4000-8000-000000000000").as_bytes())
                ),
                AuthError::BadSignature,
            ),
            ("truncated signature", good[..good.len() - 2].to_string(), AuthError::Malformed),
            ("two segments", hp.to_string(), AuthError::Malformed),
            ("four segments", format!("{good}.x"), AuthError::Malformed),
            ("padding", format!("{good}="), AuthError::Malformed),
            ("stray space", format!(" {good}"), AuthError::Malformed),
            ("crit", sign_hs256(r#"{"alg":"HS256","crit":["exp"]}"#, &claims, SECRET), AuthError::Malformed),
            ("duplicate claim", sign_hs256(r#"{"alg":"HS256"}"#, &dup, SECRET), AuthError::Malformed),
            (
                "oversize",
                sign_hs256(r#"{"alg":"HS256"}"#, &good_claims().to_string().replace("aal1", &"a".repeat(5000)), SECRET),
                AuthError::Malformed,
            ),
            ("typ not JWT", sign_hs256(r#"{"alg":"HS256","typ":"JOSE+JSON"}"#, &claims, SECRET), AuthError::Malformed),
        ];
        for (name, token, want) in cases {
            assert_eq!(check(&token), Err(want), "{name}");
        }
    }

    #[test]
    fn refuses_mistyped_claims_and_headers_as_malformed() {
        // A claim's JSON text, spliced in verbatim so numbers keep their exact form.
        let raw = |claim: &str, json: &str| {
            let mut c = good_claims();
            c.as_object_mut().unwrap().remove(claim);
            let body = c.to_string().replacen('{', &format!("{{\"{claim}\":{json},"), 1);
            sign_hs256(r#"{"alg":"HS256","typ":"JWT"}"#, &body, SECRET)
        };
        for claim in ["exp", "iat", "nbf"] {
            for bad in [
                "1800003600.5",
                "1.8e9",
                "18000036e2",
                "9223372036854775808",
                "-9223372036854775809",
                "\"1800003600\"",
                "true",
                "[1]",
            ] {
                assert_eq!(check(&raw(claim, bad)), Err(AuthError::Malformed), "{claim}: {bad}");
            }
        }
        assert!(check(&raw("nbf", &(NOW - 10).to_string())).is_ok());
        assert!(check(&raw("nbf", "null")).is_ok(), "null is absent");
        assert_eq!(check(&raw("exp", "null")), Err(AuthError::Claim("exp")));
        for (claim, bad) in [
            ("aud", "[\"authenticated\",7]"),
            ("aud", "7"),
            ("aud", "{}"),
            ("sub", "7"),
            ("iss", "[]"),
            ("is_anonymous", "null"),
            ("is_anonymous", "\"false\""),
        ] {
            assert_eq!(check(&raw(claim, bad)), Err(AuthError::Malformed), "{claim}: {bad}");
        }
        let claims = good_claims().to_string();
        for header in [
            r#"{"alg":"HS256","crit":null}"#,
            r#"{"alg":"HS256","crit":[]}"#,
            r#"{"alg":"HS256","typ":7}"#,
            r#"{"alg":7}"#,
            r#"["HS256"]"#,
            r#"{"alg":"HS256","alg":"HS256"}"#,
        ] {
            assert_eq!(check(&sign_hs256(header, &claims, SECRET)), Err(AuthError::Malformed), "{header}");
        }
        assert_eq!(
            check(&sign_hs256(r#"{"alg":"HS256"}"#, "[1]", SECRET)),
            Err(AuthError::Malformed),
            "claims not an object"
        );
        let nested = claims.replacen('{', &format!("{{\"x\":{}1{},", "[".repeat(40), "]".repeat(40)), 1);
        assert_eq!(
            check(&sign_hs256(r#"{"alg":"HS256"}"#, &nested, SECRET)),
            Err(AuthError::Malformed),
            "nested too deep"
        );
    }

    #[test]
    fn supabase_api_keys_are_not_user_tokens() {
        // The anon and service_role keys are HS256 JWTs signed with the same secret.
        for role in ["anon", "service_role"] {
            let key = sign_hs256(
                r#"{"alg":"HS256","typ":"JWT"}"#,
                &json!({"iss": "supabase", "ref": "abc", "role": role, "iat": NOW - 10, "exp": NOW + 3600}).to_string(),
                SECRET,
            );
            assert!(matches!(check(&key), Err(AuthError::Claim(_))), "{role} key must be refused");
        }
    }

    // ES256, as current Supabase projects sign. The Worker verifies through WebCrypto; here p256
    // stands in for it so the parsing, key selection and claim rules are exercised natively.
    use crate::jwks::{self, Material, PublicKey};
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};

    pub const KID: &str = "b3d7a2c4-key-1";

    pub fn es256_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32].into()).unwrap()
    }

    /// The base64url `x` and `y` of [`es256_key`]'s public point.
    pub fn es256_public_xy() -> (String, String) {
        let point = es256_key().verifying_key().to_encoded_point(false);
        (b64(point.x().unwrap()), b64(point.y().unwrap()))
    }

    pub fn sign_es256(header: &str, payload: &str, key: &SigningKey) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let sig: Signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    /// The Worker's path with p256 in place of WebCrypto: parse, pick the key by `kid` from the
    /// configured key set only, verify, then the claims.
    fn check_es256(token: &str, keys: &[PublicKey]) -> Result<Claims, AuthError> {
        let rules = Rules::for_issuer(ISS.into());
        let parsed = parse(token, &rules)?;
        let key = keys
            .iter()
            .find(|k| Some(&k.kid) == parsed.kid.as_ref() && k.alg == parsed.alg)
            .ok_or(AuthError::BadSignature)?;
        let Material::Ec { x, y } = &key.material else { return Err(AuthError::BadSignature) };
        let point = p256::EncodedPoint::from_affine_coordinates(x.as_slice().into(), y.as_slice().into(), false);
        let vk = VerifyingKey::from_encoded_point(&point).map_err(|_| AuthError::BadSignature)?;
        let sig = Signature::from_slice(&parsed.signature).map_err(|_| AuthError::BadSignature)?;
        vk.verify(parsed.signing_input.as_bytes(), &sig).map_err(|_| AuthError::BadSignature)?;
        validate(&parsed, &rules, NOW)
    }

    fn project_keys() -> Vec<PublicKey> {
        let (x, y) = es256_public_xy();
        let doc =
            json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": KID, "alg": "ES256", "use": "sig", "x": x, "y": y}]});
        jwks::parse_jwks(doc.to_string().as_bytes()).unwrap()
    }

    fn es_header(extra: &str) -> String {
        format!(r#"{{"alg":"ES256","typ":"JWT","kid":"{KID}"{extra}}}"#)
    }

    #[test]
    fn accepts_an_es256_token_with_a_known_kid() {
        let token = sign_es256(&es_header(""), &good_claims().to_string(), &es256_key());
        assert_eq!(check_es256(&token, &project_keys()).unwrap().sub, SUB);
    }

    #[test]
    fn refuses_forged_es256_tokens() {
        let claims = good_claims().to_string();
        let good = sign_es256(&es_header(""), &claims, &es256_key());
        let (hp, _) = good.rsplit_once('.').unwrap();
        let attacker = SigningKey::from_bytes(&[9u8; 32].into()).unwrap();
        let attacker_point = attacker.verifying_key().to_encoded_point(false);
        let attacker_jwk = format!(
            r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            b64(attacker_point.x().unwrap()),
            b64(attacker_point.y().unwrap())
        );
        let (x, y) = es256_public_xy();
        let public_jwk = json!({"kty": "EC", "crv": "P-256", "kid": KID, "x": x, "y": y}).to_string();
        let cases: Vec<(&str, String, AuthError)> = vec![
            (
                "unknown kid",
                sign_es256(r#"{"alg":"ES256","kid":"not-in-the-jwks"}"#, &claims, &es256_key()),
                AuthError::BadSignature,
            ),
            ("no kid", sign_es256(r#"{"alg":"ES256"}"#, &claims, &es256_key()), AuthError::Malformed),
            (
                "oversize kid",
                sign_es256(&format!(r#"{{"alg":"ES256","kid":"{}"}}"#, "k".repeat(200)), &claims, &es256_key()),
                AuthError::Malformed,
            ),
            ("all-zero signature", format!("{hp}.{}", b64(&[0u8; 64])), AuthError::BadSignature),
            ("truncated signature", format!("{hp}.{}", b64(&[1u8; 63])), AuthError::BadSignature),
            (
                "DER signature",
                format!("{hp}.{}", b64(Signer::<Signature>::sign(&es256_key(), hp.as_bytes()).to_der().as_bytes())),
                AuthError::BadSignature,
            ),
            ("signed by another key", sign_es256(&es_header(""), &claims, &attacker), AuthError::BadSignature),
            (
                "tampered payload",
                format!(
                    "{}.{}.{}",
                    hp.split('.').next().unwrap(),
                    b64(claims.replace(SUB, "00000000-0000-4000-8000-000000000000").as_bytes()),
                    good.rsplit_once('.').unwrap().1
                ),
                AuthError::BadSignature,
            ),
            (
                "relabelled RS256",
                sign_es256(&format!(r#"{{"alg":"RS256","kid":"{KID}"}}"#), &claims, &es256_key()),
                AuthError::BadSignature,
            ),
            (
                "jwk header",
                sign_es256(&es_header(&format!(r#","jwk":{attacker_jwk}"#)), &claims, &attacker),
                AuthError::BadSignature,
            ),
            (
                "jku header",
                sign_es256(&es_header(r#","jku":"https://evil.example/jwks.json""#), &claims, &attacker),
                AuthError::BadSignature,
            ),
            (
                "x5u header",
                sign_es256(&es_header(r#","x5u":"https://evil.example/cert.pem""#), &claims, &attacker),
                AuthError::BadSignature,
            ),
            ("x5c header", sign_es256(&es_header(r#","x5c":["MIIB"]"#), &claims, &attacker), AuthError::BadSignature),
            ("crit", sign_es256(&es_header(r#","crit":["b64"]"#), &claims, &es256_key()), AuthError::Malformed),
            (
                "alg none with kid",
                format!("{}.{}.", b64(format!(r#"{{"alg":"none","kid":"{KID}"}}"#).as_bytes()), b64(claims.as_bytes())),
                AuthError::Malformed,
            ),
        ];
        for (name, token, want) in cases {
            assert_eq!(check_es256(&token, &project_keys()), Err(want), "{name}");
        }
        // HS256 signed with the public key (as JWK JSON or as raw x||y): the HMAC secret comes only
        // from SUPABASE_JWT_SECRET, so either the legacy secret rejects it or HS256 is off.
        let mut raw_point = b64url(&x).unwrap();
        raw_point.extend(b64url(&y).unwrap());
        for secret in [public_jwk.as_bytes(), raw_point.as_slice()] {
            let forged = sign_hs256(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, secret);
            assert_eq!(check(&forged), Err(AuthError::BadSignature));
            assert_eq!(check_es256(&forged, &project_keys()), Err(AuthError::BadSignature), "no HS256 key in a JWKS");
        }
        // The same claims rules apply to ES256 tokens.
        let mut expired = good_claims();
        expired["exp"] = json!(NOW - 61);
        assert_eq!(
            check_es256(&sign_es256(&es_header(""), &expired.to_string(), &es256_key()), &project_keys()),
            Err(AuthError::Expired)
        );
        assert_eq!(check_es256(&good, &[]), Err(AuthError::BadSignature), "an empty JWKS verifies nothing");
    }

    #[test]
    fn bearer_header_rules() {
        assert_eq!(bearer(None), Err(AuthError::Missing));
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Malformed));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Malformed));
        assert_eq!(AuthError::Expired.to_api().code, "token_expired");
        assert_eq!(AuthError::BadSignature.to_api().status, 401);
        assert_eq!(AuthError::AnonymousNotAllowed.to_api().status, 403);
        assert_eq!(AuthError::KeysUnavailable.to_api().status, 503);
    }
}
