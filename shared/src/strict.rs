//! The strictness serde_json does not give by itself, for the documents where it matters.
//!
//! serde_json keeps the last of two members with the same key when it builds a `Value` or a map,
//! and a derived type without `deny_unknown_fields` ignores members it does not name, repeated or
//! not. For a token's header and claims, a signed payment payload or a request body, a repeated
//! key is an attack surface (two readers may take different values), so every such document is
//! first walked once by [`check`]: a serde visitor over serde_json's own parser that refuses a
//! repeated key in any object, nesting deeper than [`MAX_DEPTH`], and objects of more than
//! [`MAX_MEMBERS`] members. The caller then deserializes the same text into its derived type
//! ([`parse`] does both).

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Deepest nesting accepted (arrays and objects).
pub const MAX_DEPTH: usize = 32;
/// Most members in one object: each new key is compared with the earlier ones, so this bounds the
/// work an unauthenticated body can cause.
pub const MAX_MEMBERS: usize = 256;

/// Checks that `text` is one JSON document (surrounding white space allowed) without repeated
/// keys, nested at most [`MAX_DEPTH`] deep, with objects of at most [`MAX_MEMBERS`] members.
pub fn check(text: &str) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Shape { depth: 0 }.deserialize(&mut de)?;
    de.end()
}

/// [`check`], then deserializes `text` as `T`.
pub fn parse<'a, T: serde::Deserialize<'a>>(text: &'a str) -> Result<T, serde_json::Error> {
    check(text)?;
    serde_json::from_str(text)
}

/// [`parse`] for bytes that must be UTF-8.
pub fn parse_slice<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8]) -> Option<T> {
    parse(std::str::from_utf8(bytes).ok()?).ok()
}

/// A visitor that accepts any JSON value and checks its shape.
struct Shape {
    depth: usize,
}

impl Shape {
    fn inner<E: de::Error>(&self) -> Result<Shape, E> {
        if self.depth >= MAX_DEPTH {
            return Err(E::custom("nested too deep"));
        }
        Ok(Shape { depth: self.depth + 1 })
    }
}

impl<'de> DeserializeSeed<'de> for Shape {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Shape {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(Shape { depth: inner.depth })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        let mut keys: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if keys.len() >= MAX_MEMBERS {
                return Err(de::Error::custom("too many members"));
            }
            if keys.contains(&key) {
                return Err(de::Error::custom(format_args!("repeated key {key:?}")));
            }
            keys.push(key);
            map.next_value_seed(Shape { depth: inner.depth })?;
        }
        Ok(())
    }
}

/// Deserializes any value and answers `true`: with `#[serde(default, deserialize_with =
/// "strict::present")]` on a `bool` field, says whether a member was there at all, even as `null`
/// (serde's `Option` reads `null` as absent).
pub fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_json_allows() {
        assert!(check(r#" {"a": [1, -2.5e3, true, null], "b": {"c": "x\"y\u00e9\ud83c\udfac"}, "d": 0} "#).is_ok());
        let wide = format!("{{{}}}", (0..256).map(|i| format!("\"k{i}\":0")).collect::<Vec<_>>().join(","));
        assert!(check(&wide).is_ok(), "256 members are fine");
        let deep = "[".repeat(32) + &"]".repeat(32);
        assert!(check(&deep).is_ok(), "32 levels are fine");
    }

    #[test]
    fn refuses_what_json_or_the_bundle_does_not_allow() {
        let deep = "[".repeat(33) + &"]".repeat(33);
        let wide = format!("{{{}}}", (0..257).map(|i| format!("\"k{i}\":0")).collect::<Vec<_>>().join(","));
        for bad in [
            "",
            " ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{'a':1}",
            "{\"a\" 1}",
            "01",
            "1.",
            "-",
            "1e",
            "+1",
            ".5",
            "nul",
            "truex",
            "\"unterminated",
            "\"tab\there\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "{\"a\":1}{}",
            "NaN",
            "[1 2]",
            r#"{"a":1,"a":2}"#,
            r#"{"x":{"a":1,"a":1}}"#,
            r#"{"a":1,"\u0061":2}"#,
            &deep,
            &wide,
        ] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn present_tells_null_from_absent() {
        #[derive(Deserialize)]
        struct H {
            #[serde(default, deserialize_with = "present")]
            crit: bool,
        }
        assert!(!parse::<H>("{}").unwrap().crit);
        assert!(parse::<H>(r#"{"crit":null}"#).unwrap().crit);
        assert!(parse::<H>(r#"{"crit":[]}"#).unwrap().crit);
    }
}
