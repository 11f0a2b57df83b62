//! A small, strict JSON reader, so the Worker carries no serde_json.
//!
//! Every JSON the bundle reads is small (request bodies are capped at 16 KiB, tokens at 4 KiB) and
//! is read field by field, so a tree of borrowed values is enough. Compared with serde's derive,
//! it costs a fraction of the wasm size (no per-type visitors, no float parsing or formatting:
//! numbers stay as their text until a field asks for an integer), and it is stricter where the
//! bundle needs it: a repeated key anywhere is an error (JWT claims, webhook events), nesting and
//! members per object are capped, and [`Fields`] names the unknown, missing or mistyped field for the client.
//!
//! Grammar: RFC 8259. Strings are unescaped (surrogate pairs joined; lone surrogates refused).

use std::borrow::Cow;

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 32;
/// Most members in one object: repeated keys are found by comparing each new key with the earlier
/// ones, so this bounds the work an unauthenticated body can cause (bodies are small anyway).
const MAX_MEMBERS: usize = 256;

/// A parsed value and the exact text it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Value<'a> {
    /// The value's source text (for passing sub-documents through unchanged).
    pub raw: &'a str,
    pub kind: Kind<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind<'a> {
    Null,
    Bool(bool),
    /// A number, kept as its text.
    Num,
    Str(Cow<'a, str>),
    Arr(Vec<Value<'a>>),
    Obj(Vec<(Cow<'a, str>, Value<'a>)>),
}

/// Not JSON (or nested too deep, or with a repeated key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntaxError;

/// Parses a whole document (surrounding white space allowed, nothing else).
pub fn parse(text: &str) -> Result<Value<'_>, SyntaxError> {
    let mut p = Parser { s: text, b: text.as_bytes(), i: 0 };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.b.len() {
        return Err(SyntaxError);
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn lit(&mut self, word: &str) -> Result<(), SyntaxError> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(SyntaxError)
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(SyntaxError);
        }
        self.ws();
        let start = self.i;
        let kind = match self.b.get(self.i).ok_or(SyntaxError)? {
            b'n' => self.lit("null").map(|_| Kind::Null)?,
            b't' => self.lit("true").map(|_| Kind::Bool(true))?,
            b'f' => self.lit("false").map(|_| Kind::Bool(false))?,
            b'"' => Kind::Str(self.string()?),
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(SyntaxError);
                        }
                    }
                }
                Kind::Arr(items)
            }
            b'{' => {
                self.i += 1;
                let mut members: Vec<(Cow<'a, str>, Value<'a>)> = Vec::new();
                self.ws();
                if !self.eat(b'}') {
                    loop {
                        self.ws();
                        if self.b.get(self.i) != Some(&b'"') {
                            return Err(SyntaxError);
                        }
                        let key = self.string()?;
                        if members.len() >= MAX_MEMBERS || members.iter().any(|(k, _)| *k == key) {
                            return Err(SyntaxError);
                        }
                        self.ws();
                        if !self.eat(b':') {
                            return Err(SyntaxError);
                        }
                        let v = self.value(depth + 1)?;
                        members.push((key, v));
                        self.ws();
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err(SyntaxError);
                        }
                    }
                }
                Kind::Obj(members)
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
                Kind::Num
            }
            _ => return Err(SyntaxError),
        };
        Ok(Value { raw: &self.s[start..self.i], kind })
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<(), SyntaxError> {
        self.eat(b'-');
        if self.eat(b'0') {
            if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                return Err(SyntaxError);
            }
        } else if self.digits() == 0 {
            return Err(SyntaxError);
        }
        if self.eat(b'.') && self.digits() == 0 {
            return Err(SyntaxError);
        }
        if self.eat(b'e') || self.eat(b'E') {
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return Err(SyntaxError);
            }
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let h = self.s.get(self.i..self.i + 4).ok_or(SyntaxError)?;
        if !h.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(SyntaxError);
        }
        self.i += 4;
        u32::from_str_radix(h, 16).map_err(|_| SyntaxError)
    }

    fn string(&mut self) -> Result<Cow<'a, str>, SyntaxError> {
        self.i += 1; // the opening quote
        let start = self.i;
        // Fast path: no escapes.
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'"' => {
                    let s = &self.s[start..self.i];
                    self.i += 1;
                    return Ok(Cow::Borrowed(s));
                }
                b'\\' => break,
                c if c < 0x20 => return Err(SyntaxError),
                _ => self.i += 1,
            }
        }
        let mut out = String::from(&self.s[start..self.i]);
        loop {
            let c = *self.b.get(self.i).ok_or(SyntaxError)?;
            match c {
                b'"' => {
                    self.i += 1;
                    return Ok(Cow::Owned(out));
                }
                b'\\' => {
                    self.i += 1;
                    let e = *self.b.get(self.i).ok_or(SyntaxError)?;
                    self.i += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&hi) {
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return Err(SyntaxError);
                                }
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(SyntaxError);
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(code).ok_or(SyntaxError)?);
                        }
                        _ => return Err(SyntaxError),
                    }
                }
                c if c < 0x20 => return Err(SyntaxError),
                _ => {
                    // Copy one UTF-8 character (the input is a &str, so boundaries are valid).
                    let ch = self.s[self.i..].chars().next().ok_or(SyntaxError)?;
                    out.push(ch);
                    self.i += ch.len_utf8();
                }
            }
        }
    }
}

impl<'a> Value<'a> {
    /// A member of an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        match &self.kind {
            Kind::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string at a path of object members (`&["job", "id"]`).
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        path.iter().try_fold(self, |v, k| v.get(k)).and_then(Value::as_str)
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer written without fraction or exponent, in range.
    pub fn as_i64(&self) -> Option<i64> {
        match self.kind {
            Kind::Num => self.raw.parse().ok(),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            Kind::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.kind == Kind::Null
    }

    pub fn is_object(&self) -> bool {
        matches!(self.kind, Kind::Obj(_))
    }

    pub fn as_array(&self) -> Option<&[Value<'a>]> {
        match &self.kind {
            Kind::Arr(items) => Some(items),
            _ => None,
        }
    }

    pub fn members(&self) -> &[(Cow<'a, str>, Value<'a>)] {
        match &self.kind {
            Kind::Obj(m) => m,
            _ => &[],
        }
    }
}

/// The string member `key` of an object.
pub fn str_at<'v>(v: &'v Value<'_>, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Why a field of a request object was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldError {
    /// The document is not an object.
    NotObject,
    Unknown(String),
    Missing(&'static str),
    /// Present with the wrong type or out of range; `expected` says what was wanted.
    Invalid(&'static str, &'static str),
}

/// Typed access to the members of a request object, refusing members not in `allowed`.
/// `null` counts as absent for optional fields.
pub struct Fields<'v, 'a> {
    v: &'v Value<'a>,
}

impl<'v, 'a> Fields<'v, 'a> {
    pub fn new(v: &'v Value<'a>, allowed: &[&str]) -> Result<Self, FieldError> {
        let Kind::Obj(members) = &v.kind else { return Err(FieldError::NotObject) };
        if let Some((k, _)) = members.iter().find(|(k, _)| !allowed.contains(&k.as_ref())) {
            return Err(FieldError::Unknown(k.chars().take(64).collect()));
        }
        Ok(Fields { v })
    }

    fn present(&self, k: &str) -> Option<&'v Value<'a>> {
        self.v.get(k).filter(|v| !v.is_null())
    }

    pub fn opt_str(&self, k: &'static str) -> Result<Option<&'v str>, FieldError> {
        self.present(k).map(|v| v.as_str().ok_or(FieldError::Invalid(k, "a string"))).transpose()
    }

    pub fn str(&self, k: &'static str) -> Result<&'v str, FieldError> {
        self.opt_str(k)?.ok_or(FieldError::Missing(k))
    }

    /// A whole number within `min..=max`.
    pub fn opt_int(&self, k: &'static str, min: i64, max: i64) -> Result<Option<i64>, FieldError> {
        self.present(k)
            .map(|v| v.as_i64().filter(|n| (min..=max).contains(n)).ok_or(FieldError::Invalid(k, "a whole number in range")))
            .transpose()
    }

    pub fn int(&self, k: &'static str, min: i64, max: i64) -> Result<i64, FieldError> {
        self.opt_int(k, min, max)?.ok_or(FieldError::Missing(k))
    }

    pub fn opt_bool(&self, k: &'static str) -> Result<Option<bool>, FieldError> {
        self.present(k).map(|v| v.as_bool().ok_or(FieldError::Invalid(k, "true or false"))).transpose()
    }

    /// Any JSON value, passed on as its text.
    pub fn opt_raw(&self, k: &'static str) -> Option<&'a str> {
        self.present(k).map(|v| v.raw)
    }

    /// An object, passed on as its text.
    pub fn opt_object(&self, k: &'static str) -> Result<Option<&'a str>, FieldError> {
        self.present(k).map(|v| if v.is_object() { Ok(v.raw) } else { Err(FieldError::Invalid(k, "an object")) }).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_json_allows_and_keeps_the_source_text() {
        let v = parse(r#" {"a": [1, -2.5e3, true, null], "b": {"c": "x\"y\u00e9\ud83c\udfac"}, "d": 0} "#).unwrap();
        assert_eq!(v.get("a").unwrap().raw, "[1, -2.5e3, true, null]");
        assert_eq!(v.get("a").unwrap().as_array().unwrap()[0].as_i64(), Some(1));
        assert_eq!(v.get("a").unwrap().as_array().unwrap()[1].as_i64(), None, "not a whole number");
        assert_eq!(v.get("b").unwrap().get("c").unwrap().as_str(), Some("x\"yé🎬"));
        assert_eq!(v.str_at(&["b", "c"]), Some("x\"yé🎬"));
        assert_eq!(v.str_at(&["b", "nope"]), None);
        assert_eq!(v.get("d").unwrap().as_i64(), Some(0));
        assert_eq!(parse("\"\\u0041\\n\"").unwrap().as_str(), Some("A\n"));
        assert_eq!(parse("[]").unwrap().as_array().map(<[_]>::len), Some(0));
        assert!(parse("{}").unwrap().is_object());
    }

    #[test]
    fn refuses_what_json_does_not_allow() {
        let deep = "[".repeat(40) + &"]".repeat(40);
        let wide = format!("{{{}}}", (0..257).map(|i| format!("\"k{i}\":0")).collect::<Vec<_>>().join(","));
        assert!(parse(&wide.replace(",\"k256\":0", "")).is_ok(), "256 members are fine");
        for bad in [
            "", " ", "{", "[1,]", "{\"a\":1,}", "{'a':1}", "{\"a\" 1}", "01", "1.", "-", "1e", "+1", ".5", "nul", "truex",
            "\"unterminated", "\"tab\there\"", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "{\"a\":1}{}", "NaN", "[1 2]",
            r#"{"a":1,"a":2}"#, r#"{"x":{"a":1,"a":1}}"#, &deep, &wide,
        ] {
            assert_eq!(parse(bad), Err(SyntaxError), "{bad:?}");
        }
    }

    #[test]
    fn fields_name_what_is_wrong() {
        let v = parse(r#"{"model_id":"m","target_minutes":3,"opts":{"a":1},"flag":true,"gone":null}"#).unwrap();
        let f = Fields::new(&v, &["model_id", "target_minutes", "opts", "flag", "gone", "prompt"]).unwrap();
        assert_eq!(f.str("model_id"), Ok("m"));
        assert_eq!(f.int("target_minutes", 1, 60), Ok(3));
        assert_eq!(f.int("target_minutes", 4, 60), Err(FieldError::Invalid("target_minutes", "a whole number in range")));
        assert_eq!(f.opt_object("opts"), Ok(Some(r#"{"a":1}"#)));
        assert_eq!(f.opt_bool("flag"), Ok(Some(true)));
        assert_eq!(f.opt_str("gone"), Ok(None), "null is absent");
        assert_eq!(f.str("prompt"), Err(FieldError::Missing("prompt")));
        assert_eq!(f.opt_str("target_minutes"), Err(FieldError::Invalid("target_minutes", "a string")));
        assert!(matches!(Fields::new(&v, &["model_id"]), Err(FieldError::Unknown(_))));
        assert_eq!(Fields::new(&parse("[1]").unwrap(), &[]).err(), Some(FieldError::NotObject));
        let big = parse(r#"{"n": 99999999999999999999}"#).unwrap();
        assert_eq!(Fields::new(&big, &["n"]).unwrap().opt_int("n", 0, i64::MAX), Err(FieldError::Invalid("n", "a whole number in range")));
    }
}
