//! Configuration read once per isolate from the Worker's bindings.
//!
//! Non-secrets come from `[vars]` in `wrangler.toml`, secrets from `wrangler secret put` (locally
//! `.dev.vars`). Parsing takes a lookup function so it is tested natively without a runtime.

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
}

/// Binding names, in one place so `wrangler.toml`, `.dev.vars.example` and the code agree.
pub mod names {
    pub const POSTGREST_URL: &str = "POSTGREST_URL";
    pub const SUPABASE_URL: &str = "SUPABASE_URL";
    pub const SUPABASE_ANON_KEY: &str = "SUPABASE_ANON_KEY";
    pub const SUPABASE_JWT_SECRET: &str = "SUPABASE_JWT_SECRET";
}

impl Config {
    /// Builds the configuration from a lookup of binding names; names the binding at fault.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let required = |name: &str| {
            get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()).ok_or_else(|| format!("binding {name} is not set"))
        };
        let optional = |name: &str| get(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let postgrest_url = required(names::POSTGREST_URL)?.trim_end_matches('/').to_owned();
        let supabase_url = required(names::SUPABASE_URL)?.trim_end_matches('/').to_owned();
        for (name, url) in [(names::POSTGREST_URL, &postgrest_url), (names::SUPABASE_URL, &supabase_url)] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("binding {name} must be an http(s) URL"));
            }
        }
        let jwt_secret = optional(names::SUPABASE_JWT_SECRET).map(String::into_bytes);
        if let Some(secret) = &jwt_secret {
            if secret.len() < 32 {
                return Err(format!("binding {} must be at least 32 bytes", names::SUPABASE_JWT_SECRET));
            }
        }
        Ok(Config { postgrest_url, supabase_url, anon_key: optional(names::SUPABASE_ANON_KEY), jwt_secret })
    }

    /// The `iss` claim Supabase Auth puts in this project's access tokens.
    pub fn issuer(&self) -> String {
        format!("{}/auth/v1", self.supabase_url)
    }
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
    }

    #[test]
    fn names_the_binding_at_fault() {
        let err = Config::from_lookup(lookup(&[("SUPABASE_URL", "https://x")])).unwrap_err();
        assert!(err.contains("POSTGREST_URL"), "{err}");
        let err = Config::from_lookup(lookup(&[("POSTGREST_URL", "ftp://x"), ("SUPABASE_URL", "https://x")])).unwrap_err();
        assert!(err.contains("http(s)"), "{err}");
        let err = Config::from_lookup(lookup(&[
            ("POSTGREST_URL", "http://x"),
            ("SUPABASE_URL", "https://x"),
            ("SUPABASE_JWT_SECRET", "short"),
        ]))
        .unwrap_err();
        assert!(err.contains("SUPABASE_JWT_SECRET"), "{err}");
    }
}
