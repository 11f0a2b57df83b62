//! A small JSON object writer for RPC arguments.
//!
//! Building arguments with `serde_json::json!` creates a `Value` tree and links its whole
//! serializer and map code into the Worker; arguments are flat objects of strings, numbers,
//! booleans and already-validated raw JSON, so they are written directly. Strings are escaped
//! as RFC 8259 requires (quote, backslash, control characters).

use std::fmt::Write;

/// Writes `{"k": v, ...}` one member at a time.
pub struct Obj {
    buf: String,
}

impl Default for Obj {
    fn default() -> Self {
        Obj::new()
    }
}

impl Obj {
    pub fn new() -> Obj {
        Obj { buf: String::from("{") }
    }

    fn key(&mut self, k: &str) {
        if self.buf.len() > 1 {
            self.buf.push(',');
        }
        escape_into(&mut self.buf, k);
        self.buf.push(':');
    }

    /// A string member.
    pub fn str(mut self, k: &str, v: &str) -> Obj {
        self.key(k);
        escape_into(&mut self.buf, v);
        self
    }

    /// A string member, or `null`.
    pub fn opt_str(self, k: &str, v: Option<&str>) -> Obj {
        match v {
            Some(v) => self.str(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// An integer member.
    pub fn int(mut self, k: &str, v: i64) -> Obj {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }

    /// An integer member, or `null`.
    pub fn opt_int(self, k: &str, v: Option<i64>) -> Obj {
        match v {
            Some(v) => self.int(k, v),
            None => self.raw(k, "null"),
        }
    }

    /// A boolean member.
    pub fn bool(self, k: &str, v: bool) -> Obj {
        self.raw(k, if v { "true" } else { "false" })
    }

    /// A member whose value is already valid JSON (e.g. a `serde_json::value::RawValue`).
    pub fn raw(mut self, k: &str, json: &str) -> Obj {
        self.key(k);
        self.buf.push_str(json);
        self
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

/// Appends `s` as a JSON string literal.
pub fn escape_into(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_for_any_string() {
        let nasty = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} emoji 🎬 ' ; drop table";
        let out = Obj::new().str("a", nasty).opt_str("b", None).int("c", -42).opt_int("d", Some(7)).bool("e", true).raw("f", r#"{"x":[1]}"#).finish();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["a"], nasty);
        assert!(v["b"].is_null());
        assert_eq!(v["c"], -42);
        assert_eq!(v["d"], 7);
        assert_eq!(v["e"], true);
        assert_eq!(v["f"]["x"][0], 1);
        assert_eq!(Obj::new().finish(), "{}");
    }
}
