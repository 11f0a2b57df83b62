//! The admin API's request rules, runtime-free: query strings (free text such as `reason`,
//! percent-decoded by `form_urlencoded`), the bodies of the admin actions, and the ledger export's
//! CSV (written by the `csv` crate, so quoting follows RFC 4180).
//!
//! Who may call is decided twice: at the edge (`Claims::is_admin`, or the service key) and in the
//! database (`app.require_admin` in every admin RPC). The field rules (amount ranges, the reason's
//! length) are the database's; the edge checks types and the ranges it needs to name the field.

use crate::ApiError;
use serde::Deserialize;

/// The decoded query of a request URL: each name at most once, only names in `allowed`.
pub fn query(url: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let query = url.split('#').next().unwrap_or("").split_once('?').map_or("", |(_, q)| q);
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        let name: String = k.chars().take(64).collect();
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::invalid_field(
                "query",
                format!("Unknown query parameter {name}; use {}.", allowed.join(", ")),
            ));
        }
        if out.iter().any(|(seen, _)| *seen == name) {
            return Err(ApiError::invalid_field(name, "Give each query parameter at most once."));
        }
        out.push((name, v.into_owned()));
    }
    Ok(out)
}

/// The value of `name` in a decoded query.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A whole-number query parameter within `min..=max`, if present.
pub fn int_param(pairs: &[(String, String)], name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
    match param(pairs, name) {
        None => Ok(None),
        Some(v) => v.parse::<i64>().ok().filter(|n| (min..=max).contains(n)).map(Some).ok_or_else(|| {
            ApiError::invalid_field(name, format!("{name} must be a whole number from {min} to {max}."))
        }),
    }
}

/// `POST /v1/admin/users/{id}/grants`: promotional credits.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    pub amount: i64,
    /// RFC 3339; absent or null: the credits never expire.
    #[serde(default)]
    pub expires_at: Option<String>,
    pub reason: String,
}

impl GrantBody {
    /// `expires_at` must be an RFC 3339 date-time: Postgres alone would also take `tomorrow`,
    /// `now` or `infinity` for a timestamptz.
    pub fn check(&self) -> Result<(), ApiError> {
        match self.expires_at.as_deref() {
            Some(t) if !rfc3339(t) => Err(ApiError::invalid_field(
                "expires_at",
                "expires_at must be an RFC 3339 date-time, such as 2030-01-31T00:00:00Z.",
            )),
            _ => Ok(()),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` with plausible field ranges (the database
/// checks the calendar).
pub fn rfc3339(t: &str) -> bool {
    let b = t.as_bytes();
    let num = |i: usize, n: usize| -> Option<u32> {
        let part = b.get(i..i + n)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
    };
    let date_time = || -> Option<usize> {
        let (mo, d, h, mi, s) = (num(5, 2)?, num(8, 2)?, num(11, 2)?, num(14, 2)?, num(17, 2)?);
        num(0, 4)?;
        let seps = b[4] == b'-' && b[7] == b'-' && matches!(b[10], b'T' | b't') && b[13] == b':' && b[16] == b':';
        let ranges = (1..=12).contains(&mo) && (1..=31).contains(&d) && h < 24 && mi < 60 && s < 61;
        let mut i = 19;
        if b.get(i) == Some(&b'.') {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 || digits > 9 {
                return None;
            }
            i += 1 + digits;
        }
        (seps && ranges).then_some(i)
    };
    let Some(i) = (b.len() >= 20).then(date_time).flatten() else { return false };
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', ..] if b.len() == i + 6 => {
            b[i + 3] == b':' && num(i + 1, 2).is_some_and(|h| h < 24) && num(i + 4, 2).is_some_and(|m| m < 60)
        }
        _ => false,
    }
}

/// `POST /v1/admin/users/{id}/adjustments`: a signed adjustment.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    pub amount: i64,
    pub reason: String,
}

/// An action whose only input is why (void a grant, suspend, unsuspend).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    pub reason: String,
}

/// `POST /v1/admin/jobs/{id}/refund`: all (no amount) or part of a job's captured credits.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    #[serde(default)]
    pub amount: Option<i64>,
    pub reason: String,
}

/// `POST /v1/admin/users/{id}/spend-cap`: `daily_spend_cap` is required, `null` meaning the default.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SpendCapBody {
    pub daily_spend_cap: serde_json::Value,
    pub reason: String,
}

impl SpendCapBody {
    /// The cap, or `None` for the default; anything but null or a whole number is a 400.
    pub fn cap(&self) -> Result<Option<i64>, ApiError> {
        match &self.daily_spend_cap {
            serde_json::Value::Null => Ok(None),
            v => v.as_i64().filter(|n| (0..=100_000_000).contains(n)).map(Some).ok_or_else(|| {
                ApiError::invalid_field(
                    "daily_spend_cap",
                    "daily_spend_cap must be a whole number from 0 to 100000000, or null for the default.",
                )
            }),
        }
    }
}

/// One ledger entry as `admin_export_ledger` answers it.
#[derive(Deserialize, Debug)]
pub struct LedgerRow {
    pub id: i64,
    pub created_at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub delta_available: i64,
    pub delta_held: i64,
    pub delta_debt: i64,
    pub balance_available_after: i64,
    pub balance_held_after: i64,
    pub balance_debt_after: i64,
    pub grant_id: Option<String>,
    pub hold_id: Option<String>,
    pub job_id: Option<String>,
    pub purchase_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub description: Option<String>,
}

/// The CSV columns, in order.
pub const LEDGER_CSV_COLUMNS: [&str; 15] = [
    "id",
    "created_at",
    "type",
    "delta_available",
    "delta_held",
    "delta_debt",
    "balance_available_after",
    "balance_held_after",
    "balance_debt_after",
    "grant_id",
    "hold_id",
    "job_id",
    "purchase_id",
    "idempotency_key",
    "description",
];

/// Free text for a spreadsheet: a cell that starts like a formula (`=`, `+`, `-`, `@`, tab, CR)
/// gets a leading `'`, so opening the export cannot run what a user put in an idempotency key.
fn text_cell(value: Option<&str>) -> String {
    match value {
        None => String::new(),
        Some(v) if v.starts_with(['=', '+', '-', '@', '\t', '\r']) => format!("'{v}"),
        Some(v) => v.to_owned(),
    }
}

/// The CSV document of one page of ledger rows, header first.
pub fn ledger_csv(rows: &[LedgerRow]) -> Result<String, ApiError> {
    let fail = |e: csv::Error| ApiError::internal().because(format!("ledger csv: {e}"));
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(Vec::new());
    w.write_record(LEDGER_CSV_COLUMNS).map_err(fail)?;
    for r in rows {
        let ids = [&r.grant_id, &r.hold_id, &r.job_id, &r.purchase_id].map(|v| v.clone().unwrap_or_default());
        w.write_record([
            r.id.to_string(),
            r.created_at.clone(),
            r.kind.clone(),
            r.delta_available.to_string(),
            r.delta_held.to_string(),
            r.delta_debt.to_string(),
            r.balance_available_after.to_string(),
            r.balance_held_after.to_string(),
            r.balance_debt_after.to_string(),
            ids[0].clone(),
            ids[1].clone(),
            ids[2].clone(),
            ids[3].clone(),
            text_cell(r.idempotency_key.as_deref()),
            text_cell(r.description.as_deref()),
        ])
        .map_err(fail)?;
    }
    let bytes = w.into_inner().map_err(|e| ApiError::internal().because(format!("ledger csv: {e}")))?;
    String::from_utf8(bytes).map_err(|e| ApiError::internal().because(format!("ledger csv: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_queries_with_free_text() {
        let url = "https://x/v1/admin/users/u?reason=Ticket+%2342%3A+refund%20%26+more&ledger_limit=5#frag";
        let q = query(url, &["reason", "ledger_limit"]).unwrap();
        assert_eq!(param(&q, "reason"), Some("Ticket #42: refund & more"));
        assert_eq!(int_param(&q, "ledger_limit", 1, 100).unwrap(), Some(5));
        assert_eq!(int_param(&q, "missing", 1, 100).unwrap(), None);
        assert_eq!(int_param(&q, "reason", 1, 100).unwrap_err().field.as_deref(), Some("reason"));
        assert_eq!(query("https://x/p?nope=1", &["reason"]).unwrap_err().field.as_deref(), Some("query"));
        assert_eq!(query("https://x/p?reason=a&reason=b", &["reason"]).unwrap_err().field.as_deref(), Some("reason"));
        assert!(query("https://x/p", &["reason"]).unwrap().is_empty());
    }

    #[test]
    fn expiry_is_rfc3339() {
        for good in [
            "2030-01-31T00:00:00Z",
            "2030-01-31t23:59:60.123456z",
            "2030-12-01T10:00:00+05:30",
            "2030-06-01T00:00:00.5-08:00",
        ] {
            assert!(rfc3339(good), "{good}");
        }
        for bad in [
            "tomorrow",
            "now",
            "infinity",
            "2030-01-31",
            "2030-01-31 00:00:00Z",
            "2030-13-01T00:00:00Z",
            "2030-01-31T24:00:00Z",
            "2030-01-31T00:00:00",
            "2030-01-31T00:00:00.Z",
            "2030-01-31T00:00:00+0530",
            "2030-01-31T00:00:00Zjunk",
            "2030-01-31T00:00:00+05:30x",
            "",
        ] {
            assert!(!rfc3339(bad), "{bad}");
        }
        let body = |t: &str| GrantBody { amount: 1, expires_at: Some(t.into()), reason: "r".into() };
        assert_eq!(body("tomorrow").check().unwrap_err().field.as_deref(), Some("expires_at"));
        assert!(body("2030-01-31T00:00:00Z").check().is_ok());
    }

    #[test]
    fn bodies_refuse_unknown_fields_and_bad_caps() {
        assert!(crate::input::body::<GrantBody>(r#"{"amount": 5, "reason": "r", "extra": 1}"#).is_err());
        let g = crate::input::body::<GrantBody>(r#"{"amount": 5, "reason": "r"}"#).unwrap();
        assert_eq!((g.amount, g.expires_at), (5, None));
        let missing = crate::input::body::<SpendCapBody>(r#"{"reason": "r"}"#).unwrap_err();
        assert_eq!(missing.field.as_deref(), Some("daily_spend_cap"), "the cap must be given, null for the default");
        let cap = |v: &str| {
            crate::input::body::<SpendCapBody>(&format!(r#"{{"daily_spend_cap": {v}, "reason": "r"}}"#)).unwrap().cap()
        };
        assert_eq!(cap("null").unwrap(), None);
        assert_eq!(cap("50").unwrap(), Some(50));
        for bad in ["-1", "1.5", "\"5\"", "100000001"] {
            assert!(cap(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn writes_quoted_csv_without_formulas() {
        let row = |key: Option<&str>, description: Option<&str>| LedgerRow {
            id: 7,
            created_at: "2030-01-01T00:00:00+00:00".into(),
            kind: "adjustment".into(),
            delta_available: -3,
            delta_held: 0,
            delta_debt: 0,
            balance_available_after: 2,
            balance_held_after: 0,
            balance_debt_after: 0,
            grant_id: None,
            hold_id: None,
            job_id: Some("j".into()),
            purchase_id: None,
            idempotency_key: key.map(Into::into),
            description: description.map(Into::into),
        };
        let csv =
            ledger_csv(&[row(Some("=HYPERLINK(\"x\")"), Some("Says \"hi\", then\nleaves")), row(None, Some("plain"))])
                .unwrap();
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(lines[0], LEDGER_CSV_COLUMNS.join(","));
        assert_eq!(
            lines[1],
            concat!(
                "7,2030-01-01T00:00:00+00:00,adjustment,-3,0,0,2,0,0,,,j,,",
                "\"'=HYPERLINK(\"\"x\"\")\",\"Says \"\"hi\"\", then\nleaves\""
            )
        );
        assert_eq!(lines[2], "7,2030-01-01T00:00:00+00:00,adjustment,-3,0,0,2,0,0,,,j,,,plain");
        // A reader gets the values back.
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let first = r.records().next().unwrap().unwrap();
        assert_eq!(&first[14], "Says \"hi\", then\nleaves");
        assert_eq!(&first[13], "'=HYPERLINK(\"x\")");
    }
}
