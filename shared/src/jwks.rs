//! The project's JSON Web Key Set: strict parsing and the per-isolate cache rules.
//!
//! Supabase publishes its asymmetric signing keys (ES256, RS256) at
//! `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`. The Worker fetches that document, keeps the keys
//! for a bounded time, and picks one by the token's `kid`. Everything that decides *when* to fetch
//! lives here, runtime-free and driven by an injected clock (milliseconds), so the rules are unit
//! tested natively; the Worker (`functions/src/crypto.rs`) only performs the fetch and turns each
//! [`PublicKey`] into a WebCrypto `CryptoKey`, which is what the cache holds.
//!
//! The rules, after jose's `createRemoteJWKSet` and Supabase's own 10-minute cache:
//! - a fetched key set is used for `ttl`; after that it is never used again until a refetch
//!   succeeds (a removed key stops verifying at most `ttl` after it left the JWKS);
//! - a refetch starts at most once per `cooldown`, counted from the start of the previous attempt,
//!   whether it succeeded or not, so a burst of tokens with random `kid`s, or an unreachable JWKS,
//!   costs one fetch per cooldown per isolate;
//! - while a fetch is in flight other requests wait for it instead of starting their own; a fetch
//!   whose request was cancelled is forgotten after the fetch timeout plus a grace period;
//! - a failed fetch fails closed: tokens whose key is not in a fresh set are refused with 503
//!   until a later fetch succeeds. An empty key set is a valid answer (a legacy-only project):
//!   every asymmetric token is then refused, never "decoded without verifying".

use crate::jwt::{b64url, Alg};
use crate::strict;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// A JWKS document larger than this is refused (Supabase's holds a handful of keys, < 2 KB).
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// More usable keys than this is refused as a whole rather than truncated.
pub const MAX_KEYS: usize = 16;
/// Longest accepted `kid`, in the JWKS and in token headers.
pub const MAX_KID_LEN: usize = 128;
/// How long past the fetch timeout an in-flight fetch still makes other requests wait.
pub const IN_FLIGHT_GRACE_MS: u64 = 1000;

/// A public verification key from the JWKS, reduced to the members that define it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kid: String,
    pub alg: Alg,
    pub material: Material,
}

/// The key material, decoded and size-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// P-256 point coordinates, 32 bytes each.
    Ec { x: Vec<u8>, y: Vec<u8> },
    /// RSA modulus (2048 to 4096 bits) and public exponent.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

impl PublicKey {
    /// A minimal JWK for WebCrypto's `importKey("jwk", ...)`: only the members that define the
    /// public key, re-encoded canonically, so nothing else from the fetched document (private
    /// members, `key_ops`, `ext`, `x5c`) reaches the import.
    pub fn jwk_json(&self) -> String {
        let jwk = match &self.material {
            Material::Ec { x, y } => {
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
            }
            Material::Rsa { n, e } => {
                serde_json::json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)})
            }
        };
        jwk.to_string()
    }
}

/// Why a fetched JWKS document was refused as a whole (the fetch then counts as failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksError {
    TooLarge,
    NotAKeySet,
    TooManyKeys,
}

/// One entry of `keys`, every member optional so an unusable key is skipped, not fatal; a member
/// of the wrong JSON type, a repeated member (refused by the strict check) or an entry that is not
/// an object makes the whole document unusable (fail closed). `null` counts as absent.
#[derive(Deserialize)]
struct RawKey {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

#[derive(Deserialize)]
struct KeySet {
    keys: Vec<RawKey>,
}

/// Parses a JWKS document. The document must be a JSON object with a `keys` array of objects; each
/// entry that is not a usable signature-verification key (symmetric `oct` keys, other curves or
/// algorithms, encryption keys, RSA keys under 2048 bits, no `kid`) is skipped, and a `kid` that
/// appears twice, usable or not, is dropped altogether rather than guessed at.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<PublicKey>, JwksError> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| JwksError::NotAKeySet)?;
    if !text.trim_start().starts_with('{') {
        return Err(JwksError::NotAKeySet);
    }
    let doc: KeySet = strict::parse(text).map_err(|_| JwksError::NotAKeySet)?;
    let all_kids: Vec<Option<String>> = doc.keys.iter().map(|k| k.kid.clone()).collect();
    let mut keys: Vec<PublicKey> = doc.keys.into_iter().filter_map(usable_key).collect();
    keys.retain(|k| all_kids.iter().filter(|kid| kid.as_deref() == Some(k.kid.as_str())).count() == 1);
    if keys.len() > MAX_KEYS {
        return Err(JwksError::TooManyKeys);
    }
    Ok(keys)
}

fn usable_key(raw: RawKey) -> Option<PublicKey> {
    let kid = raw.kid.filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    if raw.key_ops.as_ref().is_some_and(|ops| !ops.iter().any(|o| o == "verify")) {
        return None;
    }
    let decode = |v: Option<String>| v.as_deref().and_then(b64url);
    let (alg, material) = match raw.kty.as_deref().unwrap_or("") {
        "EC" => {
            if raw.crv.as_deref() != Some("P-256") || raw.alg.as_deref().is_some_and(|a| a != "ES256") {
                return None;
            }
            let (x, y) = (decode(raw.x)?, decode(raw.y)?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            (Alg::ES256, Material::Ec { x, y })
        }
        "RSA" => {
            if raw.alg.as_deref().is_some_and(|a| a != "RS256") {
                return None;
            }
            let (n, e) = (decode(raw.n)?, decode(raw.e)?);
            let bits_ok = (256..=512).contains(&n.len()) && n[0] != 0;
            let e_ok = !e.is_empty() && e.len() <= 4 && e[0] != 0 && e[e.len() - 1] & 1 == 1 && e != [1];
            if !bits_ok || !e_ok {
                return None;
            }
            (Alg::RS256, Material::Rsa { n, e })
        }
        // `oct` (a shared secret published by mistake) and anything else never verifies a token.
        _ => return None,
    };
    Some(PublicKey { kid, alg, material })
}

/// Cache timings, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// How long a fetched key set is used.
    pub ttl_ms: u64,
    /// Minimum time between the starts of two fetches.
    pub cooldown_ms: u64,
    /// Longest a fetch (connection and body) may take.
    pub fetch_timeout_ms: u64,
}

impl Default for Timings {
    fn default() -> Self {
        Timings { ttl_ms: 600_000, cooldown_ms: 30_000, fetch_timeout_ms: 3_000 }
    }
}

/// What the caller should do for a token's (`kid`, `alg`).
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a, K> {
    /// Verify with this key.
    Hit(&'a K),
    /// Start a fetch: call [`KeyCache::begin_fetch`], fetch, then [`KeyCache::finish_fetch`].
    Fetch,
    /// Another request is fetching: wait a little and look up again.
    Wait,
    /// No such key in a fresh set and no refetch allowed yet: 401.
    Unknown,
    /// No usable key set because the last fetch failed: 503, fail closed.
    Unavailable,
}

/// Keys of one isolate, generic over what is cached per key (a `CryptoKey` in the Worker).
#[derive(Debug)]
pub struct KeyCache<K> {
    timings: Timings,
    /// At most [`MAX_KEYS`]: a linear search is as fast as a map and smaller in wasm.
    keys: Vec<(String, Alg, K)>,
    /// When the current key set was received.
    fetched_at: Option<u64>,
    /// Start of the last completed fetch attempt, successful or not.
    attempted_at: Option<u64>,
    last_failed: bool,
    /// The fetch in flight: its ticket and start time.
    in_flight: Option<(u64, u64)>,
    tickets: u64,
}

impl<K> KeyCache<K> {
    pub fn new(timings: Timings) -> Self {
        KeyCache {
            timings,
            keys: Vec::new(),
            fetched_at: None,
            attempted_at: None,
            last_failed: false,
            in_flight: None,
            tickets: 0,
        }
    }

    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Decides what to do for a token signed with `alg` under `kid`, at time `now` (ms).
    pub fn lookup(&self, kid: &str, alg: Alg, now: u64) -> Lookup<'_, K> {
        let fresh = self.fetched_at.is_some_and(|t| now < t.saturating_add(self.timings.ttl_ms));
        if fresh {
            if let Some((_, key_alg, key)) = self.keys.iter().find(|(k, _, _)| k == kid) {
                // A known kid with another algorithm is a relabelled header: refused, no refetch.
                return if *key_alg == alg { Lookup::Hit(key) } else { Lookup::Unknown };
            }
        }
        if let Some((_, started)) = self.in_flight {
            let deadline = started.saturating_add(self.timings.fetch_timeout_ms + IN_FLIGHT_GRACE_MS);
            if now < deadline {
                return Lookup::Wait;
            }
            // Past the deadline the fetch was abandoned (its request was cancelled): forget it.
        }
        let cooled = self.attempted_at.is_none_or(|t| now >= t.saturating_add(self.timings.cooldown_ms));
        if cooled {
            Lookup::Fetch
        } else if fresh && !self.last_failed {
            Lookup::Unknown
        } else {
            Lookup::Unavailable
        }
    }

    /// Records the start of a fetch; returns the ticket to hand to [`KeyCache::finish_fetch`].
    pub fn begin_fetch(&mut self, now: u64) -> u64 {
        self.tickets += 1;
        self.in_flight = Some((self.tickets, now));
        self.tickets
    }

    /// Records the outcome of a fetch. A success replaces the whole key set (removed keys are
    /// gone at once); a failure keeps a still-fresh set until its TTL. The outcome of a fetch
    /// that was abandoned and superseded by a newer one is ignored.
    pub fn finish_fetch(&mut self, ticket: u64, outcome: Result<Vec<(String, Alg, K)>, ()>, now: u64) {
        let Some((current, started)) = self.in_flight else { return };
        if current != ticket {
            return;
        }
        self.in_flight = None;
        self.attempted_at = Some(started);
        match outcome {
            Ok(keys) => {
                self.keys = keys;
                self.fetched_at = Some(now);
                self.last_failed = false;
            }
            Err(()) => self.last_failed = true,
        }
    }

    /// Number of keys in the current set (fresh or not).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timings = Timings { ttl_ms: 600_000, cooldown_ms: 30_000, fetch_timeout_ms: 3_000 };

    fn keys(kids: &[&str]) -> Vec<(String, Alg, &'static str)> {
        kids.iter().map(|k| (k.to_string(), Alg::ES256, "key")).collect()
    }

    /// Runs a fetch to completion at `now`, as the Worker does.
    fn fetch(cache: &mut KeyCache<&'static str>, outcome: Result<Vec<(String, Alg, &'static str)>, ()>, now: u64) {
        let ticket = cache.begin_fetch(now);
        cache.finish_fetch(ticket, outcome, now + 5);
    }

    #[test]
    fn first_use_fetches_then_hits_until_the_ttl() {
        let mut cache = KeyCache::new(T);
        assert_eq!(cache.lookup("k1", Alg::ES256, 0), Lookup::Fetch);
        fetch(&mut cache, Ok(keys(&["k1"])), 0);
        assert_eq!(cache.lookup("k1", Alg::ES256, 10), Lookup::Hit(&"key"));
        assert_eq!(cache.lookup("k1", Alg::ES256, 600_004), Lookup::Hit(&"key"));
        assert_eq!(cache.lookup("k1", Alg::ES256, 600_005), Lookup::Fetch, "stale after the TTL: refetch");
    }

    #[test]
    fn a_known_kid_under_another_alg_is_refused_without_refetch() {
        let mut cache = KeyCache::new(T);
        fetch(&mut cache, Ok(keys(&["k1"])), 0);
        assert_eq!(cache.lookup("k1", Alg::RS256, 60_000), Lookup::Unknown);
        assert_eq!(cache.lookup("k1", Alg::HS256, 60_000), Lookup::Unknown);
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_cooldown() {
        let mut cache = KeyCache::new(T);
        fetch(&mut cache, Ok(keys(&["k1"])), 0);
        let mut fetches = 0;
        // A burst of random kids for two minutes, one every 100 ms.
        for i in 0..1200u64 {
            let now = 1_000 + i * 100;
            match cache.lookup(&format!("random-{i}"), Alg::ES256, now) {
                Lookup::Fetch => {
                    fetches += 1;
                    fetch(&mut cache, Ok(keys(&["k1"])), now);
                }
                Lookup::Unknown => {}
                other => panic!("unexpected {other:?} at {now}"),
            }
        }
        assert_eq!(fetches, 4, "one refetch per 30 s cooldown over 120 s");
    }

    #[test]
    fn rotation_new_kid_after_refetch_removed_kid_after_ttl() {
        let mut cache = KeyCache::new(T);
        fetch(&mut cache, Ok(keys(&["old"])), 0);
        // A token signed with the new key arrives after the cooldown: one refetch picks it up,
        // and the refetched set (which no longer has "old") replaces the cached one.
        assert_eq!(cache.lookup("new", Alg::ES256, 40_000), Lookup::Fetch);
        fetch(&mut cache, Ok(keys(&["new"])), 40_000);
        assert_eq!(cache.lookup("new", Alg::ES256, 40_010), Lookup::Hit(&"key"));
        assert_eq!(cache.lookup("old", Alg::ES256, 40_010), Lookup::Unknown);
        // Without an unknown kid to trigger a refetch, a removed key lives until the TTL.
        let mut cache = KeyCache::new(T);
        fetch(&mut cache, Ok(keys(&["old"])), 0);
        assert_eq!(cache.lookup("old", Alg::ES256, 599_000), Lookup::Hit(&"key"));
        assert_eq!(cache.lookup("old", Alg::ES256, 600_010), Lookup::Fetch);
        fetch(&mut cache, Ok(keys(&["new"])), 600_010);
        assert_eq!(cache.lookup("old", Alg::ES256, 600_020), Lookup::Unknown);
    }

    #[test]
    fn failures_fail_closed_and_are_not_retried_within_the_cooldown() {
        let mut cache: KeyCache<&'static str> = KeyCache::new(T);
        fetch(&mut cache, Err(()), 0);
        assert_eq!(cache.lookup("k1", Alg::ES256, 100), Lookup::Unavailable);
        assert_eq!(cache.lookup("k1", Alg::ES256, 29_999), Lookup::Unavailable);
        assert_eq!(cache.lookup("k1", Alg::ES256, 30_000), Lookup::Fetch);
        fetch(&mut cache, Ok(keys(&["k1"])), 30_000);
        assert_eq!(cache.lookup("k1", Alg::ES256, 30_010), Lookup::Hit(&"key"));
        // A failed refetch for an unknown kid keeps the fresh keys but answers 503 for the kid.
        assert_eq!(cache.lookup("k2", Alg::ES256, 70_000), Lookup::Fetch);
        fetch(&mut cache, Err(()), 70_000);
        assert_eq!(cache.lookup("k1", Alg::ES256, 70_010), Lookup::Hit(&"key"));
        assert_eq!(cache.lookup("k2", Alg::ES256, 70_010), Lookup::Unavailable);
        // Once the TTL runs out the old keys are not used, even though the JWKS is down.
        assert_eq!(cache.lookup("k1", Alg::ES256, 630_010), Lookup::Fetch);
        fetch(&mut cache, Err(()), 630_010);
        assert_eq!(cache.lookup("k1", Alg::ES256, 630_020), Lookup::Unavailable);
    }

    #[test]
    fn an_empty_key_set_refuses_every_kid() {
        let mut cache: KeyCache<&'static str> = KeyCache::new(T);
        fetch(&mut cache, Ok(vec![]), 0);
        assert!(cache.is_empty());
        assert_eq!(cache.lookup("k1", Alg::ES256, 10), Lookup::Unknown);
    }

    #[test]
    fn concurrent_requests_wait_for_the_fetch_in_flight() {
        let mut cache = KeyCache::new(T);
        let ticket = cache.begin_fetch(0);
        assert_eq!(cache.lookup("k1", Alg::ES256, 1), Lookup::Wait);
        assert_eq!(cache.lookup("k1", Alg::ES256, 3_999), Lookup::Wait);
        cache.finish_fetch(ticket, Ok(keys(&["k1"])), 50);
        assert_eq!(cache.lookup("k1", Alg::ES256, 51), Lookup::Hit(&"key"));
    }

    #[test]
    fn an_abandoned_fetch_is_forgotten_and_its_late_result_ignored() {
        let mut cache = KeyCache::new(T);
        let abandoned = cache.begin_fetch(0);
        assert_eq!(cache.lookup("k1", Alg::ES256, 4_000), Lookup::Fetch, "timeout + grace passed");
        let ticket = cache.begin_fetch(4_000);
        cache.finish_fetch(abandoned, Ok(keys(&["evil"])), 4_100);
        assert_eq!(cache.lookup("evil", Alg::ES256, 4_100), Lookup::Wait);
        cache.finish_fetch(ticket, Ok(keys(&["k1"])), 4_200);
        assert_eq!(cache.lookup("k1", Alg::ES256, 4_300), Lookup::Hit(&"key"));
        assert_eq!(cache.lookup("evil", Alg::ES256, 4_300), Lookup::Unknown);
    }

    // JWKS documents. The EC point is the one of `jwt::tests::es256_key`.
    fn ec(kid: &str) -> serde_json::Value {
        let (x, y) = crate::jwt::tests::es256_public_xy();
        serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig", "x": x, "y": y,
                           "key_ops": ["verify"], "ext": true})
    }

    fn rsa(kid: &str, bits: usize) -> serde_json::Value {
        let mut n = vec![0xc3u8; bits / 8];
        n[bits / 8 - 1] = 0x01;
        serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256", "n": crate::jwt::tests::b64(&n), "e": "AQAB"})
    }

    fn parse(keys: Vec<serde_json::Value>) -> Vec<(String, Alg)> {
        parse_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes())
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.alg))
            .collect()
    }

    #[test]
    fn parses_supabase_key_sets() {
        assert_eq!(parse(vec![ec("e1"), rsa("r1", 2048)]), vec![("e1".into(), Alg::ES256), ("r1".into(), Alg::RS256)]);
        assert_eq!(parse(vec![]), vec![], "legacy-only project: no keys, not an error");
        let key = &parse_jwks(serde_json::json!({ "keys": [ec("e1")] }).to_string().as_bytes()).unwrap()[0];
        let jwk: serde_json::Value = serde_json::from_str(&key.jwk_json()).unwrap();
        assert_eq!(jwk.as_object().unwrap().len(), 4, "only kty, crv, x, y reach importKey: {jwk}");
        assert_eq!(jwk["x"], ec("e1")["x"]);
    }

    #[test]
    fn null_members_are_absent() {
        let mut k = ec("n");
        k["use"] = serde_json::Value::Null;
        k["key_ops"] = serde_json::Value::Null;
        k["alg"] = serde_json::Value::Null;
        assert_eq!(parse(vec![k]), vec![("n".to_string(), Alg::ES256)]);
    }

    #[test]
    fn skips_keys_that_must_never_verify() {
        let mut wrong_curve = ec("c");
        wrong_curve["crv"] = "P-384".into();
        let mut enc = ec("u");
        enc["use"] = "enc".into();
        let mut no_verify = ec("o");
        no_verify["key_ops"] = serde_json::json!(["sign"]);
        let mut relabelled = ec("a");
        relabelled["alg"] = "HS256".into();
        let mut short_x = ec("x");
        short_x["x"] = crate::jwt::tests::b64(&[1u8; 31]).into();
        let mut padded = ec("p");
        padded["y"] = format!("{}=", padded["y"].as_str().unwrap()).into();
        let mut no_kid = ec("n");
        no_kid.as_object_mut().unwrap().remove("kid");
        let k = crate::jwt::tests::b64(b"0123456789abcdef0123456789abcdef");
        let oct = serde_json::json!({"kty": "oct", "kid": "s", "alg": "HS256", "k": k});
        let mut ps256 = rsa("ps", 2048);
        ps256["alg"] = "PS256".into();
        let mut e_one = rsa("e1", 2048);
        e_one["e"] = "AQ".into();
        let got = parse(vec![
            wrong_curve,
            enc,
            no_verify,
            relabelled,
            short_x,
            padded,
            no_kid,
            oct,
            ps256,
            e_one,
            rsa("small", 1024),
            rsa("huge", 8192),
            ec("dup"),
            ec("dup"),
            ec("ok"),
        ]);
        assert_eq!(got, vec![("ok".to_string(), Alg::ES256)]);
    }

    #[test]
    fn refuses_documents_that_are_not_key_sets() {
        let not_an_object = br#"{"keys":["not an object"]}"#;
        let wrong_type = br#"{"keys":[{"kty":"EC","kid":7}]}"#;
        let repeated_member = br#"{"keys":[{"kty":"EC","kid":"a","kid":"b"}]}"#;
        for bad in [
            &b"<html>502 Bad Gateway</html>"[..],
            b"",
            b"{}",
            b"[]",
            br#"{"keys":{}}"#,
            br#"{"keys":[],"keys":[]}"#,
            b"null",
            not_an_object,
            wrong_type,
            repeated_member,
        ] {
            assert_eq!(parse_jwks(bad), Err(JwksError::NotAKeySet), "{:?}", String::from_utf8_lossy(bad));
        }
        for bad in [
            &br#"{"keys":null}"#[..],
            br#"{"keys":[{"kty":"EC","key_ops":"verify"}]}"#,
            br#"{"keys":[{"kty":"EC","key_ops":[1]}]}"#,
            br#"{"keys":[null]}"#,
            b"{\"keys\":[],\"x\":\"\xff\"}",
        ] {
            assert_eq!(parse_jwks(bad), Err(JwksError::NotAKeySet), "{:?}", String::from_utf8_lossy(bad));
        }
        let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "a".repeat(MAX_JWKS_BYTES));
        assert_eq!(parse_jwks(big.as_bytes()), Err(JwksError::TooLarge));
        let many: Vec<_> = (0..=MAX_KEYS).map(|i| ec(&format!("k{i}"))).collect();
        assert_eq!(parse_jwks(serde_json::json!({ "keys": many }).to_string().as_bytes()), Err(JwksError::TooManyKeys));
    }
}
