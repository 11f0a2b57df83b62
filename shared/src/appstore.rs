//! App Store signed data (StoreKit 2 transactions, Server Notifications V2), without a runtime.
//!
//! Apple signs with ES256 and puts the signing chain in the JWS header (`x5c`: leaf, intermediate,
//! root). This module decides everything that is not elliptic-curve arithmetic: the JWS shape, the
//! three certificates (parsed by RustCrypto's `x509-cert`/`der`: TBS bytes, names, validity, public
//! key, signature algorithm and value, extensions), the chain rules, and the payload rules. What it cannot do
//! without a curve implementation it returns as [`Check`]s (key, curve, hash, message, raw `r||s`
//! signature) for the Worker to run through WebCrypto; every one of them must pass.
//!
//! Chain rules (as Apple's App Store Server Library applies them): exactly three certificates;
//! the last is byte-for-byte the configured Apple root; each is issued by the next (names match and
//! the issuer's key verifies the signature); the intermediate is a CA (basicConstraints) whose
//! keyUsage allows keyCertSign, carrying Apple's marker extension 1.2.840.113635.100.6.2.1; the
//! leaf is not a CA, its keyUsage allows digitalSignature, and it carries 1.2.840.113635.100.6.11.1
//! and a P-256 key; no certificate has a critical extension not understood here; all three are
//! valid at the payload's `signedDate` (transactions outlive their certificates, so the signing
//! date is the effective date, and it may not lie in the future). The header's
//! `alg` must be ES256; keys never come from anywhere but `x5c` checked against the root.

use crate::{strict, ApiError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use der::asn1::{ObjectIdentifier, UintRef};
use der::flagset::FlagSet;
use der::{Decode, Encode};
use serde::Deserialize;
use serde_json::Value;
use x509_cert::certificate::Version;
use x509_cert::ext::pkix::{BasicConstraints, KeyUsage, KeyUsages};
use x509_cert::Certificate;

/// The string member `key` of an object.
fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// The JWS header members read here; keys come only from `x5c`, checked against the root.
#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
    x5c: Option<Vec<String>>,
    #[serde(default, deserialize_with = "strict::present")]
    crit: bool,
}

/// Longest signed payload accepted (a notification embeds a signed transaction).
pub const MAX_JWS_LEN: usize = 48 * 1024;

const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// 1.2.840.113635.100.6.11.1: Apple's marker on App Store receipt-signing leaf certificates.
pub const OID_LEAF_MARKER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113635.100.6.11.1");
/// 1.2.840.113635.100.6.2.1: Apple's marker on the WWDR intermediate certificate.
pub const OID_INTERMEDIATE_MARKER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113635.100.6.2.1");
/// Extensions this module understands (RFC 5280 section 4.2 and Apple's markers): a certificate
/// with any other extension marked critical is refused, as RFC 5280 requires.
const UNDERSTOOD: &[ObjectIdentifier] = &[
    ObjectIdentifier::new_unwrap("2.5.29.19"), // basicConstraints
    ObjectIdentifier::new_unwrap("2.5.29.15"), // keyUsage
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    OID_LEAF_MARKER,
    OID_INTERMEDIATE_MARKER,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

impl Curve {
    /// WebCrypto's `namedCurve`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
        }
    }
    fn scalar_len(self) -> usize {
        match self {
            Curve::P256 => 32,
            Curve::P384 => 48,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    /// WebCrypto's hash name.
    pub fn name(self) -> &'static str {
        match self {
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
        }
    }
}

/// Why signed data was refused (logged; the client sees one code per endpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwsError {
    Malformed,
    Algorithm,
    ChainLength,
    UnknownRoot,
    Certificate,
    Chain,
    Marker,
    /// An extension marked critical that is not understood here.
    UnknownCriticalExtension,
    /// keyUsage absent or without keyCertSign (intermediate) or digitalSignature (leaf).
    KeyUsageMissing,
    NotValidAtSigningDate,
    BadSignature,
}

// ---- X.509 (x509-cert) ---------------------------------------------------------------------------

/// One X.509 certificate, reduced to what the chain rules look at.
#[derive(Debug, Clone)]
pub struct Cert {
    /// The whole `TBSCertificate` encoding: what the issuer signed.
    pub tbs: Vec<u8>,
    pub issuer: Vec<u8>,
    pub subject: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    /// The whole `SubjectPublicKeyInfo` (WebCrypto imports it as `spki`).
    pub spki: Vec<u8>,
    pub curve: Curve,
    /// The hash of the issuer's signature over `tbs`.
    pub hash: Hash,
    /// The issuer's signature, DER `Ecdsa-Sig-Value`.
    pub signature: Vec<u8>,
    /// basicConstraints: `None` when absent, else its `cA`.
    pub ca: Option<bool>,
    /// keyUsage, when present.
    pub key_usage: Option<FlagSet<KeyUsages>>,
    pub extensions: Vec<ObjectIdentifier>,
    /// An extension marked critical that this module does not understand.
    pub unknown_critical: bool,
}

impl Cert {
    /// A CA by basicConstraints.
    pub fn is_ca(&self) -> bool {
        self.ca == Some(true)
    }
}

fn signature_hash(alg: &x509_cert::spki::AlgorithmIdentifierOwned) -> Option<Hash> {
    // ecdsa-with-SHA* has no parameters.
    if alg.parameters.is_some() {
        return None;
    }
    match alg.oid {
        OID_ECDSA_SHA256 => Some(Hash::Sha256),
        OID_ECDSA_SHA384 => Some(Hash::Sha384),
        _ => None,
    }
}

/// Parses a DER certificate (strict DER, X.509 v3, RFC 5280 profile, by x509-cert) with an EC key
/// and an ECDSA signature; anything else is `None`.
pub fn parse_cert(der: &[u8]) -> Option<Cert> {
    let cert = Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    if tbs.version() != Version::V3 {
        return None;
    }
    let hash = signature_hash(cert.signature_algorithm())?;
    if tbs.signature() != cert.signature_algorithm() {
        return None;
    }
    let spki = tbs.subject_public_key_info();
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY {
        return None;
    }
    let curve_oid = ObjectIdentifier::from_der(&spki.algorithm.parameters.as_ref()?.to_der().ok()?).ok()?;
    let curve = match curve_oid {
        OID_P256 => Curve::P256,
        OID_P384 => Curve::P384,
        _ => return None,
    };
    // An uncompressed point.
    let point = spki.subject_public_key.as_bytes()?;
    if point.len() != 1 + 2 * curve.scalar_len() || point[0] != 4 {
        return None;
    }
    let ca = tbs.get_extension::<BasicConstraints>().ok()?.map(|(_, bc)| bc.ca);
    let key_usage = tbs.get_extension::<KeyUsage>().ok()?.map(|(_, ku)| ku.0);
    let exts = tbs.extensions().map(|e| e.as_slice()).unwrap_or(&[]);
    let validity = tbs.validity();
    let secs = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).ok();
    Some(Cert {
        tbs: tbs.to_der().ok()?,
        issuer: tbs.issuer().to_der().ok()?,
        subject: tbs.subject().to_der().ok()?,
        not_before: secs(validity.not_before)?,
        not_after: secs(validity.not_after)?,
        spki: spki.to_der().ok()?,
        curve,
        hash,
        signature: cert.signature().as_bytes()?.to_vec(),
        ca,
        key_usage,
        extensions: exts.iter().map(|e| e.extn_id).collect(),
        unknown_critical: exts.iter().any(|e| e.critical && !UNDERSTOOD.contains(&e.extn_id)),
    })
}

/// DER `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
#[derive(der::Sequence)]
struct EcdsaSig<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// DER `Ecdsa-Sig-Value` to the fixed-size `r || s` that WebCrypto (and JWS) use, for a curve
/// whose scalars are `n` bytes. The `der` crate refuses negative and non-minimal integers.
pub fn ecdsa_raw(der: &[u8], n: usize) -> Option<Vec<u8>> {
    let sig = EcdsaSig::from_der(der).ok()?;
    let mut out = vec![0u8; 2 * n];
    for (half, int) in [sig.r, sig.s].iter().enumerate() {
        let digits = int.as_bytes();
        if digits.len() > n || digits.is_empty() {
            return None;
        }
        out[half * n + n - digits.len()..(half + 1) * n].copy_from_slice(digits);
    }
    Some(out)
}

// ---- JWS ----------------------------------------------------------------------------------------

/// One ECDSA verification the caller must run: `signature` (raw `r || s`) over `message` with the
/// `spki` key on `curve`, hashing with `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub spki: Vec<u8>,
    pub curve: Curve,
    pub hash: Hash,
    pub message: Vec<u8>,
    pub signature: Vec<u8>,
}

/// A JWS whose structure and chain passed every rule here; trusted only after all `checks` pass.
#[derive(Debug)]
pub struct Signed {
    /// The payload's JSON text: an object without repeated keys (read it with `serde_json`).
    pub payload: String,
    pub checks: Vec<Check>,
}

/// Decodes one base64url JWS part as text.
fn text_part(part: &str) -> Option<String> {
    String::from_utf8(crate::jwt::b64url(part)?).ok()
}

/// Parses a signed transaction or notification and applies the chain rules with `root` (the
/// configured Apple root, DER) at the payload's signing date; `now` (unix seconds) bounds that date.
pub fn parse_jws(token: &str, root: &[u8], now: i64) -> Result<Signed, JwsError> {
    use JwsError::*;
    if token.len() > MAX_JWS_LEN {
        return Err(Malformed);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Malformed);
    };
    let header_text = text_part(h).ok_or(Malformed)?;
    let payload_text = text_part(p).ok_or(Malformed)?;
    // A repeated key anywhere in the header or the payload refuses the whole JWS.
    let header: Header = strict::parse(&header_text).map_err(|_| Malformed)?;
    let payload: Value = strict::parse(&payload_text).map_err(|_| Malformed)?;
    let signature = crate::jwt::b64url(s).ok_or(Malformed)?;
    if header.alg.as_deref() != Some("ES256") {
        return Err(Algorithm);
    }
    if header.crit || !payload.is_object() {
        return Err(Malformed);
    }
    let x5c = header.x5c.ok_or(Malformed)?;
    if x5c.len() != 3 {
        return Err(ChainLength);
    }
    let ders = x5c.iter().map(|c| STANDARD.decode(c).ok()).collect::<Option<Vec<Vec<u8>>>>().ok_or(Malformed)?;
    if ders[2] != root {
        return Err(UnknownRoot);
    }
    let certs = ders.iter().map(|d| parse_cert(d)).collect::<Option<Vec<_>>>().ok_or(Certificate)?;
    let (leaf, intermediate, root) = (&certs[0], &certs[1], &certs[2]);
    if certs.iter().any(|c| c.unknown_critical) {
        return Err(UnknownCriticalExtension);
    }
    if leaf.issuer != intermediate.subject
        || intermediate.issuer != root.subject
        || !intermediate.is_ca()
        || !root.is_ca()
        || leaf.is_ca()
    {
        return Err(Chain);
    }
    // The intermediate signs certificates; the leaf signs data (RFC 5280 section 4.2.1.3).
    let uses = |c: &Cert, usage: KeyUsages| c.key_usage.is_some_and(|ku| ku.contains(usage));
    if !uses(intermediate, KeyUsages::KeyCertSign) || !uses(leaf, KeyUsages::DigitalSignature) {
        return Err(KeyUsageMissing);
    }
    if !leaf.extensions.contains(&OID_LEAF_MARKER) || !intermediate.extensions.contains(&OID_INTERMEDIATE_MARKER) {
        return Err(Marker);
    }
    if leaf.curve != Curve::P256 || signature.len() != 64 {
        return Err(Algorithm);
    }
    let signed_ms = payload.get("signedDate").and_then(Value::as_i64).ok_or(Malformed)?;
    let at = signed_ms.div_euclid(1000);
    if at > now + 300 || certs.iter().any(|c| at < c.not_before || at > c.not_after) {
        return Err(NotValidAtSigningDate);
    }
    let link = |subject: &Cert, issuer: &Cert| -> Result<Check, JwsError> {
        Ok(Check {
            spki: issuer.spki.clone(),
            curve: issuer.curve,
            hash: subject.hash,
            message: subject.tbs.clone(),
            signature: ecdsa_raw(&subject.signature, issuer.curve.scalar_len()).ok_or(Certificate)?,
        })
    };
    let checks = vec![
        link(intermediate, root)?,
        link(leaf, intermediate)?,
        Check {
            spki: leaf.spki.clone(),
            curve: Curve::P256,
            hash: Hash::Sha256,
            message: token.as_bytes()[..h.len() + 1 + p.len()].to_vec(),
            signature,
        },
    ];
    drop(payload);
    Ok(Signed { payload: payload_text, checks })
}

/// Decodes the configured root (`APPLE_ROOT_CERT`: standard base64 of the DER, whitespace
/// allowed) and checks that it is a certificate this module can use as a trust anchor.
pub fn decode_root(binding: &str) -> Option<Vec<u8>> {
    let compact: String = binding.chars().filter(|c| !c.is_whitespace()).collect();
    let der = STANDARD.decode(&compact).ok()?;
    parse_cert(&der).filter(Cert::is_ca)?;
    Some(der)
}

// ---- payloads ------------------------------------------------------------------------------------

/// What the App Store settings require of every payload.
pub struct Expect<'a> {
    pub bundle_id: &'a str,
    pub environment: &'a str,
}

/// An auto-renewable subscription's transaction: which subscription and which period it paid.
#[derive(Debug, PartialEq, Eq)]
pub struct Period {
    /// The subscription's id at the App Store (`originalTransactionId`).
    pub original_transaction_id: String,
    /// `purchaseDate` and `expiresDate`, Unix milliseconds.
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A verified consumable or auto-renewable subscription transaction, ready for
/// `fulfill_purchase` or `fulfill_subscription_payment`.
#[derive(Debug, PartialEq, Eq)]
pub struct Transaction {
    pub transaction_id: String,
    pub product_id: String,
    /// The app account token, lower-cased (a UUID the app sets to the buyer's user id).
    pub app_account_token: Option<String>,
    /// In the currency's minor units (Apple gives milliunits, see [`minor_units`]); 0 when the
    /// transaction carries no price or no ISO 4217 currency with an exponent.
    pub amount_cents: i64,
    /// ISO 4217, lower case; `xxx` ("no currency") when the transaction carries none.
    pub currency: String,
    pub revoked: bool,
    /// `revocationPercentage` (milliunits: 40000 is 40%) when `revocationType` is
    /// `REFUND_PRORATED`: the share of the price the App Store refunded, based on consumption (a
    /// consumable) or the time left (a subscription period). `None` for a full refund or none.
    pub prorated_refund_milli: Option<i64>,
    /// Set for an auto-renewable subscription (the period it paid); `None` for a consumable.
    pub subscription: Option<Period>,
}

impl Transaction {
    /// What a prorated refund gave back, in minor units: `ceil(amount x percentage)`, as Stripe's
    /// partial refunds are counted. `None` when the refund is to count in full: not prorated, no
    /// price to take a share of, or a share that rounds up to the whole price.
    pub fn prorated_refund_cents(&self) -> Option<i64> {
        let milli = self.prorated_refund_milli?;
        if self.amount_cents <= 0 {
            return None;
        }
        let refunded =
            (self.amount_cents * milli).div_euclid(100_000) + i64::from((self.amount_cents * milli) % 100_000 != 0);
        (refunded < self.amount_cents).then_some(refunded)
    }
}

fn refuse(code: &str, message: &str) -> ApiError {
    ApiError::new(400, code, message)
}

/// Applies the bundle, environment and shape rules to a verified transaction payload.
pub fn transaction(payload: &Value, expect: &Expect<'_>) -> Result<Transaction, ApiError> {
    if str_at(payload, "bundleId") != Some(expect.bundle_id) {
        return Err(refuse("wrong_bundle", "The transaction belongs to another app."));
    }
    if str_at(payload, "environment") != Some(expect.environment) {
        return Err(refuse("wrong_environment", "The transaction comes from another App Store environment."));
    }
    let text = |k: &str, max: usize| {
        str_at(payload, k).filter(|s| !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic()))
    };
    let transaction_id = text("transactionId", 64)
        .ok_or_else(|| refuse("invalid_transaction", "The transaction has no valid transactionId."))?;
    let product_id = text("productId", 255)
        .ok_or_else(|| refuse("invalid_transaction", "The transaction has no valid productId."))?;
    let subscription = match str_at(payload, "type") {
        Some("Consumable") => None,
        Some("Auto-Renewable Subscription") => {
            let ms = |k: &str| payload.get(k).and_then(Value::as_i64).filter(|t| *t > 0);
            let bad = || refuse("invalid_transaction", "The subscription transaction has no valid period.");
            let (start_ms, end_ms) = (ms("purchaseDate").ok_or_else(bad)?, ms("expiresDate").ok_or_else(bad)?);
            if end_ms <= start_ms {
                return Err(bad());
            }
            Some(Period {
                original_transaction_id: text("originalTransactionId", 64).ok_or_else(bad)?.to_owned(),
                start_ms,
                end_ms,
            })
        }
        _ => {
            return Err(refuse(
                "unsupported_product_type",
                "Only consumable credit packages and auto-renewable subscriptions can be redeemed.",
            ))
        }
    };
    let currency = text("currency", 3)
        .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase);
    let price = payload.get("price").and_then(Value::as_i64).filter(|p| (0..=10_000_000_000).contains(p));
    let (amount_cents, currency) = match (price, currency) {
        (Some(p), Some(c)) => match minor_units(p, &c) {
            Some(minor) => (minor, c),
            None => (0, "xxx".to_owned()),
        },
        _ => (0, "xxx".to_owned()),
    };
    Ok(Transaction {
        transaction_id: transaction_id.to_owned(),
        product_id: product_id.to_owned(),
        app_account_token: text("appAccountToken", 36).map(str::to_ascii_lowercase),
        amount_cents,
        currency,
        revoked: payload.get("revocationDate").is_some_and(|v| !v.is_null()),
        prorated_refund_milli: (str_at(payload, "revocationType") == Some("REFUND_PRORATED"))
            .then(|| payload.get("revocationPercentage").and_then(Value::as_i64))
            .flatten()
            .filter(|m| (0..=100_000).contains(m)),
        subscription,
    })
}

/// Converts Apple's `price` ("the price, in milliunits, of the In-App Purchase") to minor units of
/// `currency` with its ISO 4217 exponent `e`: `price / 10^(3 - e)` (USD 4990 -> 499 cents, JPY
/// 120000 -> 120 yen, KWD 1250 -> 1250 fils), `price * 10^(e - 3)` for the rare exponent above 3.
/// Rule when the division is not exact (a price finer than the currency's minor unit, which Apple
/// does not publish): rounded half up, so the recorded amount is the nearest one the currency can
/// express. `None` for a code that is not ISO 4217 or has no exponent (`XXX`, funds without one).
pub fn minor_units(milliunits: i64, currency: &str) -> Option<i64> {
    let exponent = iso_currency::Currency::from_code(&currency.to_ascii_uppercase())?.exponent()?;
    let exponent = u32::from(exponent);
    if exponent <= 3 {
        let divisor = 10i64.pow(3 - exponent);
        Some(milliunits.checked_add(divisor / 2)? / divisor)
    } else {
        milliunits.checked_mul(10i64.checked_pow(exponent - 3)?)
    }
}

/// A verified App Store Server Notification V2, reduced to what the ledger cares about.
#[derive(Debug, PartialEq, Eq)]
pub struct Notification<'a> {
    pub notification_type: &'a str,
    /// `subtype` (`UPGRADE`, `DOWNGRADE`, `INITIAL_BUY`, ...); `None` when absent.
    pub subtype: Option<&'a str>,
    pub notification_uuid: &'a str,
    /// The embedded signed transaction (verified separately, like a submitted one).
    pub signed_transaction: Option<&'a str>,
    /// The embedded signed renewal info of a subscription (verified separately).
    pub signed_renewal_info: Option<&'a str>,
    /// `signedDate`, Unix milliseconds: the order of subscription state events.
    pub signed_ms: i64,
    /// `data.environment` (`Production`, `Sandbox`), checked against the settings; `None` for a
    /// notification without app data.
    pub environment: Option<&'a str>,
    /// `data.consumptionRequestReason` of a `CONSUMPTION_REQUEST` (the customer's stated reason).
    pub consumption_request_reason: Option<&'a str>,
}

/// Applies the bundle, environment and shape rules to a verified notification payload.
pub fn notification<'a>(payload: &'a Value, expect: &Expect<'_>) -> Result<Notification<'a>, ApiError> {
    let bad = || refuse("invalid_notification", "The notification is not a valid App Store Server Notification V2.");
    let notification_type = str_at(payload, "notificationType").filter(|s| s.len() <= 64).ok_or_else(bad)?;
    let notification_uuid = str_at(payload, "notificationUUID").filter(|s| crate::jwt::is_uuid(s)).ok_or_else(bad)?;
    // TEST and a few summary notifications carry no app data to check.
    let signed_ms = payload.get("signedDate").and_then(Value::as_i64).ok_or_else(bad)?;
    let subtype = str_at(payload, "subtype").filter(|s| s.len() <= 64);
    let Some(data) = payload.get("data").filter(|d| d.is_object()) else {
        return Ok(Notification {
            notification_type,
            subtype,
            notification_uuid,
            signed_transaction: None,
            signed_renewal_info: None,
            signed_ms,
            environment: None,
            consumption_request_reason: None,
        });
    };
    if str_at(data, "bundleId") != Some(expect.bundle_id) {
        return Err(refuse("wrong_bundle", "The notification belongs to another app."));
    }
    if str_at(data, "environment") != Some(expect.environment) {
        return Err(refuse("wrong_environment", "The notification comes from another App Store environment."));
    }
    Ok(Notification {
        notification_type,
        subtype,
        notification_uuid,
        signed_transaction: str_at(data, "signedTransactionInfo"),
        signed_renewal_info: str_at(data, "signedRenewalInfo"),
        signed_ms,
        environment: str_at(data, "environment"),
        consumption_request_reason: str_at(data, "consumptionRequestReason").filter(|r| r.len() <= 64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Runs a payload rule over a test payload, as the Worker runs it over verified JSON text.
    fn tx(p: &Value, expect: &Expect<'_>) -> Result<Transaction, ApiError> {
        transaction(p, expect)
    }

    fn notif(n: &Value, expect: &Expect<'_>) -> Result<(String, Option<String>), ApiError> {
        notification(n, expect).map(|n| (n.notification_type.to_owned(), n.signed_transaction.map(str::to_owned)))
    }

    #[test]
    fn converts_der_signatures_to_raw() {
        // r = 0x80.. (needs a leading zero), s = 0x01 (short): padded to the scalar size.
        let mut der = vec![0x30, 0x00, 0x02, 0x21, 0x00, 0x80];
        der.extend([0x11u8; 31]);
        der.extend([0x02, 0x01, 0x01]);
        der[1] = (der.len() - 2) as u8;
        let raw = ecdsa_raw(&der, 32).unwrap();
        assert_eq!(raw.len(), 64);
        assert_eq!(raw[0], 0x80);
        assert_eq!(&raw[32..63], &[0u8; 31]);
        assert_eq!(raw[63], 1);
        assert!(ecdsa_raw(&der, 16).is_none(), "too long for the curve");
        assert!(ecdsa_raw(&[0x30, 0x06, 0x02, 0x01, 0x80, 0x02, 0x01, 0x01], 32).is_none(), "negative");
        assert!(ecdsa_raw(&[0x30, 0x07, 0x02, 0x02, 0x00, 0x01, 0x02, 0x01, 0x01], 32).is_none(), "non-minimal");
    }

    /// Builds DER for the tests: a tiny encoder, enough to make certificates.
    pub(crate) mod der {
        pub fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            let n = content.len();
            if n < 0x80 {
                v.push(n as u8);
            } else if n < 0x100 {
                v.extend([0x81, n as u8]);
            } else {
                v.extend([0x82, (n >> 8) as u8, n as u8]);
            }
            v.extend(content);
            v
        }
        pub fn seq(items: &[Vec<u8>]) -> Vec<u8> {
            tlv(0x30, &items.concat())
        }
        pub fn oid(bytes: &[u8]) -> Vec<u8> {
            tlv(0x06, bytes)
        }
        pub fn name(cn: &str) -> Vec<u8> {
            seq(&[tlv(0x31, &seq(&[oid(&[0x55, 0x04, 0x03]), tlv(0x0c, cn.as_bytes())]))])
        }
    }

    use p256::ecdsa::signature::Signer;
    use p256::ecdsa::{Signature, SigningKey};

    fn spki_of(key: &SigningKey) -> Vec<u8> {
        use der::*;
        let point = key.verifying_key().to_encoded_point(false);
        let mut bits = vec![0];
        bits.extend(point.as_bytes());
        seq(&[seq(&[oid(OID_EC_PUBLIC_KEY.as_bytes()), oid(OID_P256.as_bytes())]), tlv(0x03, &bits)])
    }

    fn sig_der(sig: &Signature) -> Vec<u8> {
        let raw = sig.to_bytes();
        let int = |b: &[u8]| {
            let mut d: Vec<u8> = b.iter().copied().skip_while(|&x| x == 0).collect();
            if d.first().is_none_or(|&x| x & 0x80 != 0) {
                d.insert(0, 0);
            }
            der::tlv(0x02, &d)
        };
        der::seq(&[int(&raw[..32]), int(&raw[32..])])
    }

    struct Ca {
        key: SigningKey,
        name: &'static str,
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_slice(&[seed; 32]).unwrap()
    }

    const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    const OID_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];

    /// What a test certificate carries besides its key and names.
    #[derive(Clone, Copy)]
    struct Profile<'a> {
        ca: bool,
        marker: Option<&'a [u8]>,
        /// keyUsage as DER BIT STRING content (unused-bits byte, then the bits); `None` leaves it out.
        key_usage: Option<&'a [u8]>,
        /// An extra extension OID, marked critical.
        critical_extra: Option<&'a [u8]>,
    }

    /// keyCertSign | cRLSign, and digitalSignature.
    const KU_CA: &[u8] = &[0x01, 0x06];
    const KU_SIGN: &[u8] = &[0x07, 0x80];

    /// A P-256 certificate for `subject_key`, signed by `issuer` (ECDSA with SHA-256).
    fn cert(subject: &str, subject_key: &SigningKey, issuer: &Ca, p: Profile<'_>, validity: (&str, &str)) -> Vec<u8> {
        use der::*;
        let alg = seq(&[oid(OID_ECDSA_SHA256.as_bytes())]);
        let spki = spki_of(subject_key);
        let bc = if p.ca { seq(&[tlv(0x01, &[0xff])]) } else { seq(&[]) };
        let mut exts = vec![seq(&[oid(OID_BASIC_CONSTRAINTS), tlv(0x01, &[0xff]), tlv(0x04, &bc)])];
        if let Some(bits) = p.key_usage {
            exts.push(seq(&[oid(OID_KEY_USAGE), tlv(0x01, &[0xff]), tlv(0x04, &tlv(0x03, bits))]));
        }
        if let Some(m) = p.marker {
            exts.push(seq(&[oid(m), tlv(0x04, &[0x05, 0x00])]));
        }
        if let Some(extra) = p.critical_extra {
            exts.push(seq(&[oid(extra), tlv(0x01, &[0xff]), tlv(0x04, &[0x05, 0x00])]));
        }
        let tbs = seq(&[
            tlv(0xa0, &tlv(0x02, &[2])),
            tlv(0x02, &[0x01, 0x23]),
            alg.clone(),
            name(issuer.name),
            seq(&[tlv(0x17, validity.0.as_bytes()), tlv(0x17, validity.1.as_bytes())]),
            name(subject),
            spki,
            tlv(0xa3, &seq(&exts)),
        ]);
        let sig: Signature = issuer.key.sign(&tbs);
        let mut bits = vec![0];
        bits.extend(sig_der(&sig));
        seq(&[tbs, alg, tlv(0x03, &bits)])
    }

    const VALID: (&str, &str) = ("200101000000Z", "400101000000Z");
    const SIGNED_MS: i64 = 1_800_000_000_000;

    struct Chain {
        certs: [Vec<u8>; 3],
        leaf_key: SigningKey,
    }

    /// A good chain, after `tweak` changed the leaf's and the intermediate's profiles or validity.
    fn chain(tweak: impl FnOnce(&mut [Profile<'static>; 2], &mut [(&str, &str); 3])) -> Chain {
        let root = Ca { key: key(1), name: "Test Root" };
        let inter = Ca { key: key(2), name: "Test WWDR" };
        let leaf_key = key(3);
        let mut profiles = [
            Profile {
                ca: false,
                marker: Some(OID_LEAF_MARKER.as_bytes()),
                key_usage: Some(KU_SIGN),
                critical_extra: None,
            },
            Profile {
                ca: true,
                marker: Some(OID_INTERMEDIATE_MARKER.as_bytes()),
                key_usage: Some(KU_CA),
                critical_extra: None,
            },
        ];
        let mut validity = [VALID; 3];
        tweak(&mut profiles, &mut validity);
        let root_profile = Profile { ca: true, marker: None, key_usage: Some(KU_CA), critical_extra: None };
        Chain {
            certs: [
                cert("Test Leaf", &leaf_key, &inter, profiles[0], validity[0]),
                cert(inter.name, &inter.key, &root, profiles[1], validity[1]),
                cert(root.name, &root.key, &root, root_profile, validity[2]),
            ],
            leaf_key,
        }
    }

    fn jws(c: &Chain, header: Value, payload: Value) -> String {
        let h = crate::jwt::tests::b64(header.to_string().as_bytes());
        let p = crate::jwt::tests::b64(payload.to_string().as_bytes());
        let sig: Signature = c.leaf_key.sign(format!("{h}.{p}").as_bytes());
        format!("{h}.{p}.{}", crate::jwt::tests::b64(&sig.to_bytes()))
    }

    fn header(c: &Chain) -> Value {
        let std = |d: &Vec<u8>| STANDARD.encode(d);
        serde_json::json!({"alg": "ES256", "x5c": c.certs.iter().map(std).collect::<Vec<_>>()})
    }

    fn payload() -> Value {
        serde_json::json!({"transactionId": "2000000123", "productId": "com.example.credits.starter",
            "bundleId": "com.example.app", "environment": "Sandbox", "type": "Consumable", "signedDate": SIGNED_MS,
            "price": 4990, "currency": "USD",
            "appAccountToken": "0B7C3F0E-6B57-4D1E-9A4B-1C2D3E4F5A6B"})
    }

    /// Runs the checks natively, as the Worker runs them through WebCrypto.
    fn run_checks(checks: &[Check]) -> bool {
        use p256::ecdsa::signature::Verifier;
        checks.iter().all(|c| {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&c.spki[c.spki.len() - 65..]).unwrap();
            let sig = Signature::from_slice(&c.signature).unwrap();
            c.curve == Curve::P256 && c.hash == Hash::Sha256 && key.verify(&c.message, &sig).is_ok()
        })
    }

    const NOW: i64 = SIGNED_MS / 1000 + 60;

    #[test]
    fn accepts_a_good_chain_and_every_check_verifies() {
        let c = chain(|_, _| {});
        let leaf = parse_cert(&c.certs[0]).unwrap();
        assert_eq!((leaf.curve, leaf.hash, leaf.is_ca()), (Curve::P256, Hash::Sha256, false));
        assert!(leaf.key_usage.is_some_and(|ku| ku.contains(KeyUsages::DigitalSignature)));
        assert!(!leaf.unknown_critical);
        assert_eq!((leaf.not_before, leaf.not_after), (1577836800, 2208988800));
        assert!(leaf.extensions.contains(&OID_LEAF_MARKER));
        let root_b64 = STANDARD.encode(&c.certs[2]);
        assert_eq!(
            decode_root(&format!(" {}\n{} ", &root_b64[..10], &root_b64[10..])).as_deref(),
            Some(&c.certs[2][..])
        );
        assert_eq!(decode_root(&STANDARD.encode(&c.certs[0])), None, "a leaf is no root");
        let signed = parse_jws(&jws(&c, header(&c), payload()), &c.certs[2], NOW).unwrap();
        assert_eq!(signed.checks.len(), 3);
        assert!(run_checks(&signed.checks));
        let tx = transaction(
            &serde_json::from_str(&signed.payload).unwrap(),
            &Expect { bundle_id: "com.example.app", environment: "Sandbox" },
        )
        .unwrap();
        assert_eq!(tx.transaction_id, "2000000123");
        assert_eq!((tx.amount_cents, tx.currency.as_str()), (499, "usd"));
        assert_eq!(tx.app_account_token.as_deref(), Some("0b7c3f0e-6b57-4d1e-9a4b-1c2d3e4f5a6b"));
        assert!(!tx.revoked);
    }

    #[test]
    fn a_forged_signature_fails_its_check() {
        let c = chain(|_, _| {});
        let token = jws(&c, header(&c), payload());
        let (rest, _) = token.rsplit_once('.').unwrap();
        let other = jws(&c, header(&c), serde_json::json!({"signedDate": SIGNED_MS, "x": 1}));
        let forged = format!("{rest}.{}", other.rsplit_once('.').unwrap().1);
        let signed = parse_jws(&forged, &c.certs[2], NOW).unwrap();
        assert!(!run_checks(&signed.checks));
        // A leaf signed by a key other than the intermediate's fails the chain check.
        let mut c2 = chain(|_, _| {});
        let stranger = Ca { key: key(9), name: "Test WWDR" };
        let leaf_profile = Profile {
            ca: false,
            marker: Some(OID_LEAF_MARKER.as_bytes()),
            key_usage: Some(KU_SIGN),
            critical_extra: None,
        };
        c2.certs[0] = cert("Test Leaf", &c2.leaf_key, &stranger, leaf_profile, VALID);
        let signed = parse_jws(&jws(&c2, header(&c2), payload()), &c2.certs[2], NOW).unwrap();
        assert!(!run_checks(&signed.checks));
    }

    #[test]
    fn refuses_every_broken_rule() {
        let good = chain(|_, _| {});
        let root = good.certs[2].clone();
        let t = |c: &Chain, h: Value, p: Value| parse_jws(&jws(c, h, p), &root, NOW).map(|_| ()).unwrap_err();
        let mut h = header(&good);
        h["alg"] = "HS256".into();
        assert_eq!(t(&good, h, payload()), JwsError::Algorithm);
        let mut h = header(&good);
        h["x5c"].as_array_mut().unwrap().pop();
        assert_eq!(t(&good, h, payload()), JwsError::ChainLength);
        let mut h = header(&good);
        h["x5c"][2] = h["x5c"][1].clone();
        assert_eq!(t(&good, h, payload()), JwsError::UnknownRoot);
        let no_leaf_marker = chain(|p, _| p[0].marker = None);
        assert_eq!(t(&no_leaf_marker, header(&no_leaf_marker), payload()), JwsError::Marker);
        let swapped = chain(|p, _| {
            p[0].marker = Some(OID_INTERMEDIATE_MARKER.as_bytes());
            p[1].marker = Some(OID_LEAF_MARKER.as_bytes());
        });
        assert_eq!(t(&swapped, header(&swapped), payload()), JwsError::Marker);
        let not_ca = chain(|p, _| p[1].ca = false);
        assert_eq!(t(&not_ca, header(&not_ca), payload()), JwsError::Chain);
        let leaf_ca = chain(|p, _| p[0].ca = true);
        assert_eq!(t(&leaf_ca, header(&leaf_ca), payload()), JwsError::Chain);
        // What the DER walker skipped: keyUsage on the intermediate and the leaf, critical extensions.
        for (name, broken) in [
            ("intermediate without keyUsage", chain(|p, _| p[1].key_usage = None)),
            ("intermediate that may not sign certificates", chain(|p, _| p[1].key_usage = Some(KU_SIGN))),
            ("leaf without keyUsage", chain(|p, _| p[0].key_usage = None)),
            ("leaf that may not sign data", chain(|p, _| p[0].key_usage = Some(KU_CA))),
        ] {
            assert_eq!(t(&broken, header(&broken), payload()), JwsError::KeyUsageMissing, "{name}");
        }
        for at in 0..2 {
            let critical = chain(|p, _| p[at].critical_extra = Some(&[0x2a, 0x03, 0x04]));
            assert_eq!(t(&critical, header(&critical), payload()), JwsError::UnknownCriticalExtension, "cert {at}");
        }
        let expired = chain(|_, v| v[0] = ("200101000000Z", "260101000000Z"));
        assert_eq!(t(&expired, header(&expired), payload()), JwsError::NotValidAtSigningDate);
        let mut future = payload();
        future["signedDate"] = (NOW * 1000 + 600_000).into();
        assert_eq!(t(&good, header(&good), future), JwsError::NotValidAtSigningDate);
        // A repeated key in the payload (the reader could take either value) is refused.
        let p = format!(r#"{{"signedDate":{SIGNED_MS},"signedDate":0}}"#);
        let dup = format!(
            "{}.{}.{}",
            crate::jwt::tests::b64(header(&good).to_string().as_bytes()),
            crate::jwt::tests::b64(p.as_bytes()),
            crate::jwt::tests::b64(&[1u8; 64])
        );
        assert_eq!(parse_jws(&dup, &root, NOW).unwrap_err(), JwsError::Malformed);
        for bad in ["", "a.b", "a.b.c.d", &"a".repeat(MAX_JWS_LEN + 1)] {
            assert_eq!(parse_jws(bad, &root, NOW).unwrap_err(), JwsError::Malformed, "{bad:.20}");
        }
    }

    #[test]
    fn prices_are_milliunits_converted_with_the_iso_4217_exponent() {
        for (price, currency, minor) in [
            (4990, "USD", Some(499)),
            (120000, "JPY", Some(120)),
            (1250, "KWD", Some(1250)),
            (4990, "usd", Some(499)),
            (0, "EUR", Some(0)),
        ] {
            assert_eq!(minor_units(price, currency), minor, "{price} {currency}");
        }
        assert_eq!(minor_units(4995, "USD"), Some(500), "half a cent rounds up");
        assert_eq!(minor_units(4994, "USD"), Some(499));
        assert_eq!(minor_units(120499, "JPY"), Some(120));
        assert_eq!(minor_units(12345, "CLF"), Some(123450), "exponent 4: multiplied");
        assert_eq!(minor_units(100, "XXX"), None, "no exponent");
        assert_eq!(minor_units(100, "ABC"), None, "not ISO 4217");
        let expect = Expect { bundle_id: "com.example.app", environment: "Sandbox" };
        for (price, currency, amount) in [(120000, "JPY", 120), (1250, "KWD", 1250), (4990, "USD", 499)] {
            let mut p = payload();
            p["price"] = price.into();
            p["currency"] = currency.into();
            let t = tx(&p, &expect).unwrap();
            assert_eq!(
                (t.amount_cents, t.currency.as_str()),
                (amount, currency.to_ascii_lowercase().as_str()),
                "{currency}"
            );
        }
    }

    #[test]
    fn a_prorated_refund_is_its_share_of_the_price_rounded_up() {
        let expect = Expect { bundle_id: "com.example.app", environment: "Sandbox" };
        let refunded = |kind: Option<&str>, milli: Option<i64>, price: i64| {
            let mut p = payload();
            p["price"] = price.into();
            p["currency"] = "USD".into();
            p["revocationDate"] = SIGNED_MS.into();
            if let Some(k) = kind {
                p["revocationType"] = k.into();
            }
            if let Some(m) = milli {
                p["revocationPercentage"] = m.into();
            }
            tx(&p, &expect).unwrap().prorated_refund_cents()
        };
        // 40% of 4.99: 199.6 cents, rounded up; 67.932% of 9.99: 678.64..., 679.
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(40_000), 4990), Some(200));
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(67_932), 9990), Some(679));
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(15), 4990), Some(1));
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(0), 4990), Some(0));
        // In full: the whole price, a share that rounds up to it, no share, or not prorated.
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(100_000), 4990), None);
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(99_999), 4990), None);
        assert_eq!(refunded(Some("REFUND_PRORATED"), None, 4990), None);
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(100_001), 4990), None);
        assert_eq!(refunded(Some("REFUND_FULL"), Some(40_000), 4990), None);
        assert_eq!(refunded(None, None, 4990), None);
        assert_eq!(refunded(Some("REFUND_PRORATED"), Some(40_000), 0), None, "no price: nothing to share");
    }

    #[test]
    fn checks_transaction_and_notification_payloads() {
        let expect = Expect { bundle_id: "com.example.app", environment: "Sandbox" };
        for (field, value, code) in [
            ("bundleId", "com.other.app", "wrong_bundle"),
            ("environment", "Production", "wrong_environment"),
            ("transactionId", "", "invalid_transaction"),
            ("type", "Non-Consumable", "unsupported_product_type"),
            ("type", "Auto-Renewable Subscription", "invalid_transaction"),
        ] {
            let mut p = payload();
            p[field] = value.into();
            assert_eq!(tx(&p, &expect).unwrap_err().code, code, "{field}");
        }
        let mut p = payload();
        p["revocationDate"] = SIGNED_MS.into();
        p.as_object_mut().unwrap().remove("price");
        let tx = tx(&p, &expect).unwrap();
        assert!(tx.revoked);
        assert_eq!((tx.amount_cents, tx.currency.as_str()), (0, "xxx"));

        let mut sub = payload();
        sub["type"] = "Auto-Renewable Subscription".into();
        sub["originalTransactionId"] = "1000".into();
        sub["purchaseDate"] = SIGNED_MS.into();
        sub["expiresDate"] = (SIGNED_MS + 30 * 86_400_000).into();
        let period = transaction(&sub, &expect).unwrap().subscription.unwrap();
        assert_eq!(
            (period.original_transaction_id.as_str(), period.end_ms - period.start_ms),
            ("1000", 30 * 86_400_000)
        );
        sub["expiresDate"] = SIGNED_MS.into();
        assert_eq!(
            transaction(&sub, &expect).unwrap_err().code,
            "invalid_transaction",
            "a period must end after it starts"
        );

        let n = serde_json::json!({"notificationType": "REFUND",
            "notificationUUID": "0b7c3f0e-6b57-4d1e-9a4b-1c2d3e4f5a6b",
            "data": {"bundleId": "com.example.app", "environment": "Sandbox", "signedTransactionInfo": "x.y.z"},
            "signedDate": SIGNED_MS});
        let parsed = notif(&n, &expect).unwrap();
        assert_eq!((parsed.0.as_str(), parsed.1.as_deref()), ("REFUND", Some("x.y.z")));
        let mut wrong = n.clone();
        wrong["data"]["environment"] = "Production".into();
        assert_eq!(notif(&wrong, &expect).unwrap_err().code, "wrong_environment");
        let mut no_uuid = n.clone();
        no_uuid["notificationUUID"] = "nope".into();
        assert_eq!(notif(&no_uuid, &expect).unwrap_err().code, "invalid_notification");
        // The subtype (an UPGRADE pays the new period it starts): read when present and bounded.
        assert_eq!(notification(&n, &expect).unwrap().subtype, None);
        let mut upgrade = n.clone();
        upgrade["notificationType"] = "DID_CHANGE_RENEWAL_PREF".into();
        upgrade["subtype"] = "UPGRADE".into();
        assert_eq!(notification(&upgrade, &expect).unwrap().subtype, Some("UPGRADE"));
        upgrade["subtype"] = "U".repeat(65).into();
        assert_eq!(notification(&upgrade, &expect).unwrap().subtype, None);
    }
}
