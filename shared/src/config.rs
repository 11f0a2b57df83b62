//! Configuration read once per isolate from the Worker's bindings.
//!
//! Non-secrets come from `[vars]` in `wrangler.toml`, secrets from `wrangler secret put` (locally
//! `.dev.vars`). Parsing takes a lookup function so it is tested natively without a runtime.
//!
//! Which token signing systems the edge accepts is derived, not listed:
//! - HS256 (Supabase's legacy shared secret) is on exactly when `SUPABASE_JWT_SECRET` is set;
//! - ES256 and RS256 (Supabase's signing keys) are on unless `SUPABASE_JWT_KEYS` is `none`
//!   (its default is `jwks`): keys come from `SUPABASE_JWKS_URL`, by default
//!   `<SUPABASE_URL>/auth/v1/.well-known/jwks.json`, cached `JWKS_CACHE_TTL_SECS` (600), refetched
//!   for an unknown `kid` at most once per `JWKS_COOLDOWN_SECS` (30), each fetch bounded by
//!   `JWKS_FETCH_TIMEOUT_MS` (3000). A project that still signs with the legacy secret only
//!   publishes an empty key set, which refuses every asymmetric token, so leaving the default on
//!   is safe; `none` also removes the fetch.
//!
//! With neither system on, every token would be refused: that is a configuration error.

use crate::jwks::Timings;

/// Everything the handlers need to know about their environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// PostgREST base URL without a trailing slash: `https://<ref>.supabase.co/rest/v1` in
    /// production, the local PostgREST in development and tests.
    pub postgrest_url: String,
    /// Supabase project URL; the expected token issuer is `<supabase_url>/auth/v1`.
    pub supabase_url: String,
    /// The project's anon (publishable) key, sent as `apikey` to the Supabase gateway.
    pub anon_key: Option<String>,
    /// Legacy HS256 signing secret; absent on projects that only use asymmetric keys.
    pub jwt_secret: Option<Vec<u8>>,
    /// Where and how the asymmetric signing keys are fetched; `None` when they are switched off.
    pub jwks: Option<JwksConfig>,
    /// The project's service_role key, used only for the back-office RPCs (pipeline events,
    /// payment fulfilment, sweepers), never for a user's request.
    pub service_role_key: Option<String>,
    /// Browser origins allowed by CORS (`CORS_ALLOWED_ORIGINS`, comma-separated; `*` for any).
    pub cors_origins: Vec<String>,
    /// How long one PostgREST call may take before the client gets a 504 (`POSTGREST_TIMEOUT_MS`).
    pub postgrest_timeout_ms: u32,
}

/// The asymmetric signing keys' source and cache timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// `https://`, or `http://` to a loopback address for the local stack and tests only.
    pub url: String,
    pub timings: Timings,
}

/// Binding names, in one place so `wrangler.toml`, `.dev.vars.example` and the code agree.
pub mod names {
    pub const POSTGREST_URL: &str = "POSTGREST_URL";
    pub const SUPABASE_URL: &str = "SUPABASE_URL";
    pub const SUPABASE_ANON_KEY: &str = "SUPABASE_ANON_KEY";
    pub const SUPABASE_JWT_SECRET: &str = "SUPABASE_JWT_SECRET";
    pub const SUPABASE_SERVICE_ROLE_KEY: &str = "SUPABASE_SERVICE_ROLE_KEY";
    pub const CORS_ALLOWED_ORIGINS: &str = "CORS_ALLOWED_ORIGINS";
    pub const POSTGREST_TIMEOUT_MS: &str = "POSTGREST_TIMEOUT_MS";
    pub const SUPABASE_JWT_KEYS: &str = "SUPABASE_JWT_KEYS";
    pub const SUPABASE_JWKS_URL: &str = "SUPABASE_JWKS_URL";
    pub const JWKS_CACHE_TTL_SECS: &str = "JWKS_CACHE_TTL_SECS";
    pub const JWKS_COOLDOWN_SECS: &str = "JWKS_COOLDOWN_SECS";
    pub const JWKS_FETCH_TIMEOUT_MS: &str = "JWKS_FETCH_TIMEOUT_MS";
}

impl Config {
    /// Builds the configuration from a lookup of binding names; names the binding at fault.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let required = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("binding {name} is not set"))
        };
        let optional = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let postgrest_url = required(names::POSTGREST_URL)?.trim_end_matches('/').to_owned();
        let supabase_url = required(names::SUPABASE_URL)?.trim_end_matches('/').to_owned();
        for (name, url) in [(names::POSTGREST_URL, &postgrest_url), (names::SUPABASE_URL, &supabase_url)] {
            // A URL `fetch` cannot send to (no host, a space, a bad port) is a deployment fault
            // found here, once, rather than a 503 "unavailable" on every request. The text itself is
            // what is used (the issuer is built from it), so it must already have the form the
            // parser would give it: a lower-case scheme followed by `//`.
            let parsed = (url.starts_with("https://") || url.starts_with("http://"))
                .then(|| url::Url::parse(url).ok())
                .flatten();
            let usable = parsed.as_ref().is_some_and(|u| {
                matches!(u.scheme(), "https" | "http")
                    && u.host_str().is_some_and(|h| !h.is_empty())
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none()
            });
            if !usable {
                return Err(format!("binding {name} must be an http(s) URL with a host"));
            }
        }
        let jwt_secret = optional(names::SUPABASE_JWT_SECRET).map(String::into_bytes);
        if let Some(secret) = &jwt_secret {
            if secret.len() < 32 {
                return Err(format!("binding {} must be at least 32 bytes", names::SUPABASE_JWT_SECRET));
            }
        }
        let jwks = match optional(names::SUPABASE_JWT_KEYS).as_deref().unwrap_or("jwks") {
            "none" => None,
            "jwks" => {
                let url = optional(names::SUPABASE_JWKS_URL)
                    .unwrap_or_else(|| format!("{supabase_url}/auth/v1/.well-known/jwks.json"));
                if !is_trusted_key_url(&url) {
                    return Err(format!(
                        "binding {} must be an https URL (http only to a loopback address), or set {}=none",
                        names::SUPABASE_JWKS_URL,
                        names::SUPABASE_JWT_KEYS
                    ));
                }
                let number = |name: &str, default: u64, min: u64, max: u64| -> Result<u64, String> {
                    match optional(name) {
                        None => Ok(default),
                        Some(v) => v
                            .parse::<u64>()
                            .ok()
                            .filter(|n| (min..=max).contains(n))
                            .ok_or_else(|| format!("binding {name} must be a whole number from {min} to {max}")),
                    }
                };
                let ttl = number(names::JWKS_CACHE_TTL_SECS, 600, 1, 3600)?;
                let cooldown = number(names::JWKS_COOLDOWN_SECS, 30, 1, 300)?;
                if cooldown > ttl {
                    return Err(format!(
                        "binding {} must not exceed {}",
                        names::JWKS_COOLDOWN_SECS,
                        names::JWKS_CACHE_TTL_SECS
                    ));
                }
                let timeout = number(names::JWKS_FETCH_TIMEOUT_MS, 3000, 100, 10_000)?;
                Some(JwksConfig {
                    url,
                    timings: Timings { ttl_ms: ttl * 1000, cooldown_ms: cooldown * 1000, fetch_timeout_ms: timeout },
                })
            }
            _ => return Err(format!("binding {} must be jwks or none", names::SUPABASE_JWT_KEYS)),
        };
        if jwt_secret.is_none() && jwks.is_none() {
            return Err(format!(
                "no token signing system: set {} or leave {} at jwks",
                names::SUPABASE_JWT_SECRET,
                names::SUPABASE_JWT_KEYS
            ));
        }
        Ok(Config {
            postgrest_url,
            supabase_url,
            anon_key: optional(names::SUPABASE_ANON_KEY),
            jwt_secret,
            jwks,
            service_role_key: optional(names::SUPABASE_SERVICE_ROLE_KEY),
            cors_origins: optional(names::CORS_ALLOWED_ORIGINS)
                .map(|v| {
                    v.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).filter(|o| !o.is_empty()).collect()
                })
                .unwrap_or_default(),
            postgrest_timeout_ms: match optional(names::POSTGREST_TIMEOUT_MS) {
                None => 8000,
                Some(v) => v.parse::<u32>().ok().filter(|n| (100..=30_000).contains(n)).ok_or_else(|| {
                    format!("binding {} must be a whole number from 100 to 30000", names::POSTGREST_TIMEOUT_MS)
                })?,
            },
        })
    }

    /// Whether a browser `Origin` may call the API (CORS).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.cors_origins.iter().any(|o| o == "*" || o == origin)
    }

    /// The `iss` claim Supabase Auth puts in this project's access tokens.
    pub fn issuer(&self) -> String {
        format!("{}/auth/v1", self.supabase_url)
    }
}

/// Whether signing keys may be fetched from `url`: over TLS, or in the clear only from this machine
/// (a network attacker who can answer the JWKS fetch can sign any token).
fn is_trusted_key_url(url: &str) -> bool {
    if url.starts_with("https://") {
        return url.len() > "https://".len() && !url.contains(char::is_whitespace);
    }
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = if authority == "[::1]" || authority.starts_with("[::1]:") {
        "[::1]"
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_and_normalises_bindings() {
        let cfg = Config::from_lookup(lookup(&[
            ("POSTGREST_URL", "http://127.0.0.1:3000/"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ]))
        .unwrap();
        assert_eq!(cfg.postgrest_url, "http://127.0.0.1:3000");
        assert_eq!(cfg.issuer(), "https://abc.supabase.co/auth/v1");
        assert_eq!(cfg.jwt_secret.as_deref(), Some(&b"0123456789abcdef0123456789abcdef"[..]));
        assert_eq!(cfg.anon_key, None);
        let jwks = cfg.jwks.unwrap();
        assert_eq!(jwks.url, "https://abc.supabase.co/auth/v1/.well-known/jwks.json");
        assert_eq!(jwks.timings, Timings { ttl_ms: 600_000, cooldown_ms: 30_000, fetch_timeout_ms: 3000 });
        assert!(cfg.cors_origins.is_empty(), "no CORS origin unless configured");
        assert_eq!(cfg.postgrest_timeout_ms, 8000);
    }

    #[test]
    fn cors_origins_are_an_exact_list() {
        let cfg = Config::from_lookup(lookup(&[
            ("POSTGREST_URL", "http://127.0.0.1:3000"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("CORS_ALLOWED_ORIGINS", "https://app.example/, http://localhost:5173"),
        ]))
        .unwrap();
        assert!(cfg.origin_allowed("https://app.example"));
        assert!(cfg.origin_allowed("http://localhost:5173"));
        assert!(!cfg.origin_allowed("https://app.example.evil"));
        assert!(!cfg.origin_allowed("null"));
    }

    const BASE: [(&str, &str); 2] =
        [("POSTGREST_URL", "http://127.0.0.1:3000"), ("SUPABASE_URL", "https://abc.supabase.co")];

    fn with(extra: &[(&'static str, &'static str)]) -> Result<Config, String> {
        let mut pairs = BASE.to_vec();
        pairs.extend_from_slice(extra);
        Config::from_lookup(lookup(&pairs))
    }

    #[test]
    fn signing_systems_are_derived_from_the_bindings() {
        let legacy_only =
            with(&[("SUPABASE_JWT_SECRET", "0123456789abcdef0123456789abcdef"), ("SUPABASE_JWT_KEYS", "none")])
                .unwrap();
        assert!(legacy_only.jwks.is_none() && legacy_only.jwt_secret.is_some());
        let keys_only = with(&[
            ("SUPABASE_JWKS_URL", "http://127.0.0.1:45678/jwks.json"),
            ("JWKS_CACHE_TTL_SECS", "2"),
            ("JWKS_COOLDOWN_SECS", "1"),
            ("JWKS_FETCH_TIMEOUT_MS", "500"),
        ])
        .unwrap();
        assert!(keys_only.jwt_secret.is_none());
        assert_eq!(
            keys_only.jwks,
            Some(JwksConfig {
                url: "http://127.0.0.1:45678/jwks.json".into(),
                timings: Timings { ttl_ms: 2000, cooldown_ms: 1000, fetch_timeout_ms: 500 }
            })
        );
        let err = with(&[("SUPABASE_JWT_KEYS", "none")]).unwrap_err();
        assert!(err.contains("no token signing system"), "{err}");
        for (extra, name) in [
            (("SUPABASE_JWT_KEYS", "JWKS"), "SUPABASE_JWT_KEYS"),
            (("JWKS_CACHE_TTL_SECS", "0"), "JWKS_CACHE_TTL_SECS"),
            (("JWKS_CACHE_TTL_SECS", "10"), "JWKS_COOLDOWN_SECS"),
            (("JWKS_COOLDOWN_SECS", "-1"), "JWKS_COOLDOWN_SECS"),
            (("JWKS_FETCH_TIMEOUT_MS", "60000"), "JWKS_FETCH_TIMEOUT_MS"),
        ] {
            let err = with(&[extra]).unwrap_err();
            assert!(err.contains(name), "{extra:?}: {err}");
        }
    }

    #[test]
    fn keys_are_fetched_over_tls_or_from_loopback_only() {
        for ok in [
            "https://abc.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1:54321/x",
            "http://localhost/x",
            "http://[::1]:80/x",
        ] {
            assert!(is_trusted_key_url(ok), "{ok}");
        }
        for bad in [
            "http://abc.supabase.co/x",
            "http://127.0.0.1.evil.com/x",
            "http://127.0.0.1@evil.com/x",
            "http://[::1].evil.com/x",
            "ftp://x",
            "https://",
            "//x",
        ] {
            assert!(!is_trusted_key_url(bad), "{bad}");
        }
        let err =
            Config::from_lookup(lookup(&[("POSTGREST_URL", "http://x"), ("SUPABASE_URL", "http://supabase.internal")]))
                .unwrap_err();
        assert!(err.contains("SUPABASE_JWKS_URL"), "{err}");
    }

    #[test]
    fn names_the_binding_at_fault() {
        let err = Config::from_lookup(lookup(&[("SUPABASE_URL", "https://x")])).unwrap_err();
        assert!(err.contains("POSTGREST_URL"), "{err}");
        let err =
            Config::from_lookup(lookup(&[("POSTGREST_URL", "ftp://x"), ("SUPABASE_URL", "https://x")])).unwrap_err();
        assert!(err.contains("http(s)"), "{err}");
        // URLs `fetch` could not send to: each is a configuration error naming its binding.
        for bad in [
            "http://",
            "https://",
            "http://exa mple.test",
            "http://x:99999",
            "http://u:p@x",
            "http://x/?a=1",
            "http://x/#f",
            // The parser would accept these, but the text would not be the URL it means.
            "HTTPS://x",
            "https:x",
            r"https:\\x",
            "ftp://x",
        ] {
            let err =
                Config::from_lookup(lookup(&[("POSTGREST_URL", bad), ("SUPABASE_URL", "https://x")])).unwrap_err();
            assert!(err.contains("POSTGREST_URL") && err.contains("with a host"), "{bad}: {err}");
            let err = Config::from_lookup(lookup(&[("POSTGREST_URL", "http://x"), ("SUPABASE_URL", bad)])).unwrap_err();
            assert!(err.contains("SUPABASE_URL") && err.contains("with a host"), "{bad}: {err}");
        }
        for good in ["http://127.0.0.1:3000", "https://abc.supabase.co/rest/v1/", "http://[::1]:3000"] {
            let cfg = Config::from_lookup(lookup(&[("POSTGREST_URL", good), ("SUPABASE_URL", "https://x")])).unwrap();
            assert_eq!(cfg.postgrest_url, good.trim_end_matches('/'));
        }
        let err = Config::from_lookup(lookup(&[
            ("POSTGREST_URL", "http://x"),
            ("SUPABASE_URL", "https://x"),
            ("SUPABASE_JWT_SECRET", "short"),
        ]))
        .unwrap_err();
        assert!(err.contains("SUPABASE_JWT_SECRET"), "{err}");
    }
}
