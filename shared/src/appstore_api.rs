//! The App Store Server API as the Worker calls it: "Send Consumption Information" (v2), its
//! request body, its URL, and the API token, without a runtime (the Worker signs through
//! WebCrypto; the unit tests sign with RustCrypto's p256).
//!
//! - Endpoint: `PUT {base}/inApps/v2/transactions/consumption/{transactionId}`, base
//!   `https://api.storekit.apple.com` (Production) or `https://api.storekit-sandbox.apple.com`
//!   (Sandbox), as the notification's environment says. Apple answers 202 when it took the
//!   information. (The v1 endpoint with `consumptionStatus`, `accountTenure`, ... is documented
//!   by Apple now only for Advanced Commerce API transactions.)
//! - Body ([`ConsumptionRequest`]): `customerConsented` (must be `true`: Apple refuses anything
//!   else, and without consent the request is not answered at all), `deliveryStatus` (one of
//!   [`DeliveryStatus`]), `sampleContentProvided`, optional `consumptionPercentage` (int, the
//!   consumed share in milliunits: 0..=100000; 0 whenever not delivered; never for an
//!   auto-renewable subscription) and optional `refundPreference`.
//! - Token: a JWT signed ES256 with the team's In-App Purchase key: header `{alg: ES256, kid, typ:
//!   JWT}`, claims `{iss: issuer id, iat, exp (at most 60 minutes after iat; we use 5), aud:
//!   appstoreconnect-v1, bid: bundle id}`.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// Production and sandbox bases of the App Store Server API.
pub const PRODUCTION_BASE: &str = "https://api.storekit.apple.com";
pub const SANDBOX_BASE: &str = "https://api.storekit-sandbox.apple.com";
/// Lifetime of one API token, seconds (Apple allows up to 3600).
pub const TOKEN_SECONDS: i64 = 300;
/// `consumptionPercentage` of a fully consumed purchase (100% in milliunits).
pub const FULLY_CONSUMED: u32 = 100_000;

/// Whether the app delivered a working purchase (`deliveryStatus`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliveryStatus {
    Delivered,
    UndeliveredQualityIssue,
    UndeliveredWrongItem,
    UndeliveredServerOutage,
    UndeliveredOther,
}

/// The preferred outcome of the refund request (`refundPreference`).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RefundPreference {
    Decline,
    GrantFull,
    GrantProrated,
}

/// The `ConsumptionRequest` body. The database computes it; the Worker reads it into this type
/// (unknown fields refused) and checks Apple's rules before sending it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsumptionRequest {
    pub customer_consented: bool,
    pub delivery_status: DeliveryStatus,
    pub sample_content_provided: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumption_percentage: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_preference: Option<RefundPreference>,
}

impl ConsumptionRequest {
    /// Apple's rules for the body; the reason when it breaks one (then it is not sent).
    pub fn check(&self) -> Result<(), &'static str> {
        if !self.customer_consented {
            return Err("customerConsented must be true (without consent nothing is sent)");
        }
        match self.consumption_percentage {
            Some(p) if p > FULLY_CONSUMED => Err("consumptionPercentage is above 100000"),
            Some(p) if p != 0 && self.delivery_status != DeliveryStatus::Delivered => {
                Err("consumptionPercentage must be 0 when not delivered")
            }
            _ => Ok(()),
        }
    }
}

/// The API base for a notification's environment, or the configured override (tests).
pub fn base_url<'a>(environment: &str, override_base: Option<&'a str>) -> Option<&'a str> {
    match (override_base, environment) {
        (Some(base), _) => Some(base.trim_end_matches('/')),
        (None, "Production") => Some(PRODUCTION_BASE),
        (None, "Sandbox") => Some(SANDBOX_BASE),
        _ => None,
    }
}

/// `PUT` URL of Send Consumption Information for a transaction id (digits, letters, `._-` only:
/// anything else is refused rather than escaped).
pub fn consumption_url(base: &str, transaction_id: &str) -> Option<String> {
    let ok = !transaction_id.is_empty()
        && transaction_id.len() <= 64
        && transaction_id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then(|| format!("{}/inApps/v2/transactions/consumption/{transaction_id}", base.trim_end_matches('/')))
}

/// The API credentials: key id, issuer id, bundle id (the key itself stays in WebCrypto).
pub struct Credentials<'a> {
    pub key_id: &'a str,
    pub issuer_id: &'a str,
    pub bundle_id: &'a str,
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'static str,
    kid: &'a str,
    typ: &'static str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
    exp: i64,
    aud: &'static str,
    bid: &'a str,
}

/// The token's signing input, `base64url(header).base64url(claims)`, for a token issued at `now`.
pub fn signing_input(c: &Credentials<'_>, now: i64) -> String {
    let header = Header { alg: "ES256", kid: c.key_id, typ: "JWT" };
    let claims =
        Claims { iss: c.issuer_id, iat: now, exp: now + TOKEN_SECONDS, aud: "appstoreconnect-v1", bid: c.bundle_id };
    let part = |v: Vec<u8>| URL_SAFE_NO_PAD.encode(v);
    // Serializing these plain structs cannot fail.
    format!(
        "{}.{}",
        part(serde_json::to_vec(&header).unwrap_or_default()),
        part(serde_json::to_vec(&claims).unwrap_or_default())
    )
}

/// The compact JWS from its signing input and the raw `r || s` ES256 signature (what WebCrypto's
/// ECDSA sign returns).
pub fn token(signing_input: &str, signature: &[u8]) -> String {
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// The DER of a PKCS#8 private key in PEM (`-----BEGIN PRIVATE KEY-----`, Apple's `.p8` file);
/// `\n` written as the two characters `\` `n` (a secret pasted on one line) is accepted too.
pub fn pkcs8_der(pem: &str) -> Option<Vec<u8>> {
    let pem = pem.replace("\\n", "\n");
    let body = pem.trim().strip_prefix("-----BEGIN PRIVATE KEY-----")?.strip_suffix("-----END PRIVATE KEY-----")?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(compact).ok().filter(|der| !der.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey};
    use serde_json::{json, Value};

    fn body(v: Value) -> Result<ConsumptionRequest, serde_json::Error> {
        serde_json::from_value(v)
    }

    #[test]
    fn reads_and_writes_the_v2_body_with_apples_names_and_values() {
        let b = body(json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true,
            "consumptionPercentage": 30000}))
        .unwrap();
        assert_eq!(b.check(), Ok(()));
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true,
                "consumptionPercentage": 30000})
        );
        let sub =
            body(json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": false}))
                .unwrap();
        assert_eq!(sub.consumption_percentage, None);
        assert!(!serde_json::to_string(&sub).unwrap().contains("consumptionPercentage"), "left out, not null");
        let undelivered = json!({"customerConsented": true, "deliveryStatus": "UNDELIVERED_OTHER",
            "sampleContentProvided": true, "consumptionPercentage": 0, "refundPreference": "GRANT_FULL"});
        assert_eq!(body(undelivered).unwrap().check(), Ok(()));
    }

    #[test]
    fn refuses_what_apple_refuses() {
        for (v, why) in [
            (
                json!({"customerConsented": false, "deliveryStatus": "DELIVERED", "sampleContentProvided": true}),
                "consent",
            ),
            (
                json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true,
                "consumptionPercentage": 100001}),
                "range",
            ),
            (
                json!({"customerConsented": true, "deliveryStatus": "UNDELIVERED_OTHER", "sampleContentProvided": true,
                "consumptionPercentage": 5}),
                "undelivered",
            ),
        ] {
            assert!(body(v).unwrap().check().is_err(), "{why}");
        }
        for v in [
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED_AND_WORKING_PROPERLY",
                "sampleContentProvided": true}),
            json!({"customerConsented": true, "deliveryStatus": 0, "sampleContentProvided": true}),
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED"}),
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true,
                "playTime": 1}),
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true,
                "consumptionPercentage": -1}),
            json!({"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true,
                "refundPreference": "MAYBE"}),
        ] {
            assert!(body(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn urls_by_environment_and_override() {
        assert_eq!(base_url("Production", None), Some(PRODUCTION_BASE));
        assert_eq!(base_url("Sandbox", None), Some(SANDBOX_BASE));
        assert_eq!(base_url("Xcode", None), None);
        assert_eq!(base_url("Production", Some("http://127.0.0.1:9/")), Some("http://127.0.0.1:9"));
        assert_eq!(
            consumption_url(SANDBOX_BASE, "2000000123").as_deref(),
            Some("https://api.storekit-sandbox.apple.com/inApps/v2/transactions/consumption/2000000123")
        );
        for bad in ["", "1/2", "1?x", "a b", &"1".repeat(65)] {
            assert_eq!(consumption_url(PRODUCTION_BASE, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_token_is_an_es256_jwt_apple_can_verify() {
        let key = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let creds =
            Credentials { key_id: "2X9R4HXF34", issuer_id: "57246542-96fe-1a63-e053-0824d011072a", bundle_id: "com.x" };
        let input = signing_input(&creds, 1_800_000_000);
        let sig: Signature = key.sign(input.as_bytes());
        let jwt = token(&input, &sig.to_bytes());
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let part = |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
        assert_eq!(part(parts[0]), json!({"alg": "ES256", "kid": "2X9R4HXF34", "typ": "JWT"}));
        assert_eq!(
            part(parts[1]),
            json!({"iss": "57246542-96fe-1a63-e053-0824d011072a", "iat": 1_800_000_000i64, "exp": 1_800_000_300i64,
                "aud": "appstoreconnect-v1", "bid": "com.x"})
        );
        let raw = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(raw.len(), 64, "raw r || s, not DER");
        let verifying = key.verifying_key();
        assert!(verifying.verify(input.as_bytes(), &Signature::from_slice(&raw).unwrap()).is_ok());
    }

    #[test]
    fn reads_a_p8_key_file() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIGTAgEA\nAAAA\n-----END PRIVATE KEY-----\n";
        assert_eq!(pkcs8_der(pem).map(|d| d.len()), Some(9));
        assert_eq!(pkcs8_der(&pem.replace('\n', "\\n")).map(|d| d.len()), Some(9), "pasted on one line");
        assert_eq!(pkcs8_der("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----"), None);
        assert_eq!(pkcs8_der("not a key"), None);
    }
}
