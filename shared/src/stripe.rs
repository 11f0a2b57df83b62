//! Stripe, without a runtime: webhook signatures, the Checkout Session request, and what each
//! webhook event means for the ledger.
//!
//! Signatures use the timestamped HMAC-SHA256 scheme of [`crate::signature`] (`Stripe-Signature:
//! t=...,v1=...`): any `v1` matching any configured endpoint secret passes (several during secret
//! rotation), compared in constant time, with Stripe's default tolerance of 300 seconds. Events are
//! checked by `crate::strict` (a repeated key anywhere refuses the event) and read as a
//! `serde_json::Value`: Stripe's objects carry dozens of members of which a handful matter, and
//! which of them exist depends on the event type. Amounts, currency and metadata ids go to the
//! database as the JSON values Stripe sent; the RPCs validate them. An event type not listed in
//! [`parse_event`] is acknowledged and ignored, as Stripe recommends.

use crate::signature::{self, SignatureError};
use crate::{strict, ApiError};
use serde_json::{json, Map, Value};

/// The string member `key` of an object.
fn str_at<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// Stripe's default signature tolerance (its libraries use 300 s).
pub const TOLERANCE_SECS: i64 = 300;

/// The largest webhook body accepted. Stripe's events for the types handled here are a few KB.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

/// Verifies `Stripe-Signature` over the raw body against the comma-separated secrets binding.
/// Every refusal is a 400 with a stable code: a non-2xx makes Stripe retry, which is harmless for
/// a signature that will never verify, and it shows up in the dashboard's delivery log.
pub fn verify_signature(header: Option<&str>, body: &[u8], secrets_binding: &str, now: i64) -> Result<(), ApiError> {
    let secrets = signature::secrets(secrets_binding);
    if secrets.is_empty() {
        return Err(ApiError::internal().because("STRIPE_WEBHOOK_SECRET lists no secret"));
    }
    signature::verify(header, body, &secrets, now, TOLERANCE_SECS).map(|_| ()).map_err(|e| match e {
        SignatureError::Malformed => {
            ApiError::new(400, "invalid_signature_header", "The Stripe-Signature header is missing or malformed.")
        }
        SignatureError::Stale => {
            ApiError::new(400, "signature_expired", "The Stripe-Signature timestamp is outside the tolerance.")
        }
        SignatureError::Mismatch => ApiError::new(400, "invalid_signature", "No Stripe-Signature v1 value matches."),
    })
}

/// `application/x-www-form-urlencoded`, as Stripe's API takes it. Keys keep their `[` `]`
/// (Stripe's nested-parameter syntax, as curl sends them in Stripe's reference); everything else
/// outside the unreserved set is percent-encoded.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    fn push(out: &mut String, s: &str, brackets: bool) {
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (brackets && (b == b'[' || b == b']')) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        push(&mut out, k, true);
        out.push('=');
        push(&mut out, v, false);
    }
    out
}

/// What a Checkout Session is made from.
pub struct Checkout<'a> {
    pub purchase_id: &'a str,
    pub user_id: &'a str,
    pub package_id: &'a str,
    pub price_id: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

impl Checkout<'_> {
    /// The form body of `POST /v1/checkout/sessions`: one-time payment of one unit of the
    /// package's price, tied to the purchase by `client_reference_id` and metadata (on the session
    /// and on its PaymentIntent, so charge and dispute events carry it too).
    pub fn form(&self) -> String {
        form_encode(&[
            ("mode", "payment"),
            ("line_items[0][price]", self.price_id),
            ("line_items[0][quantity]", "1"),
            ("success_url", self.success_url),
            ("cancel_url", self.cancel_url),
            ("client_reference_id", self.purchase_id),
            ("metadata[purchase_id]", self.purchase_id),
            ("metadata[user_id]", self.user_id),
            ("metadata[package_id]", self.package_id),
            ("payment_intent_data[metadata][purchase_id]", self.purchase_id),
        ])
    }

    /// Stripe's `Idempotency-Key`, derived from the purchase: every retry for one purchase asks
    /// for the same session, so a lost answer never makes a second one.
    pub fn idempotency_key(&self) -> String {
        format!("checkout-{}", self.purchase_id)
    }
}

/// Reads `id` and `url` from a `checkout.session` answer.
pub fn parse_session(body: &[u8]) -> Option<(String, String)> {
    let v: Value = strict::parse_slice(body)?;
    if str_at(&v, "object") != Some("checkout.session") {
        return None;
    }
    let id = str_at(&v, "id").filter(|s| s.starts_with("cs_") && s.len() <= 255)?;
    let url = str_at(&v, "url").filter(|s| s.starts_with("https://") || s.starts_with("http://"))?;
    Some((id.to_owned(), url.to_owned()))
}

/// What an event asks of the database: one service-role RPC and its JSON arguments, or nothing.
#[derive(Debug, PartialEq)]
pub enum Action {
    Rpc {
        name: &'static str,
        args: String,
    },
    /// A subscription invoice paid with no PaymentIntent in the payload (API 2025-03-31.basil and
    /// later: `payments` is not in webhook payloads): first ask Stripe which PaymentIntent paid
    /// `invoice` (`GET /v1/invoice_payments`, [`crate::stripe_billing::invoice_payments_path`]),
    /// then call `name` with `args` keyed by it ([`crate::stripe_billing::keyed_by`]); `args` are
    /// keyed by the invoice id until then, which stays the key when no PaymentIntent paid it.
    RpcKeyedByInvoicePayment {
        name: &'static str,
        args: String,
        invoice: String,
    },
    Ignore(&'static str),
}

/// A member's JSON value as Stripe sent it, for the database to validate, or `null`.
fn raw_at(v: &Value, key: &str) -> Value {
    v.get(key).cloned().unwrap_or(Value::Null)
}

fn id_of(v: Option<&Value>) -> Option<&str> {
    // An expandable field is either an id or the expanded object.
    let v = v?;
    v.as_str().or_else(|| str_at(v, "id")).filter(|s| !s.is_empty() && s.len() <= 255)
}

fn bad_event(what: &str) -> ApiError {
    ApiError::new(400, "invalid_event", format!("The event is not a Stripe event this endpoint understands: {what}."))
}

/// The arguments every payment RPC starts with.
fn payment_args(payment: &str, event_id: &str, kind: &str) -> Map<String, Value> {
    let args =
        json!({"p_provider": "stripe", "p_provider_payment_id": payment, "p_event_id": event_id, "p_event_type": kind});
    match args {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

/// Adds members to RPC arguments.
fn with(mut args: Map<String, Value>, more: &[(&str, Value)]) -> Map<String, Value> {
    for (k, v) in more {
        args.insert((*k).to_owned(), v.clone());
    }
    args
}

/// The dispute statuses the payment rule ranks (migrations/README.md, "The payment rule table"):
/// `prevented` (stopped before it became a chargeback, API 2025-08-27) is closed like `won`.
const DISPUTE_STATUSES: &[&str] = &[
    "warning_needs_response",
    "warning_under_review",
    "warning_closed",
    "needs_response",
    "under_review",
    "won",
    "prevented",
    "lost",
];

/// Maps a verified event to what it does. Payment ids are PaymentIntent ids throughout, so a
/// refund or dispute seen before the payment is matched to it when the payment arrives.
pub fn parse_event(body: &[u8]) -> Result<Action, ApiError> {
    let text = std::str::from_utf8(body).map_err(|_| bad_event("not JSON"))?;
    let event: Value = strict::parse(text).map_err(|_| bad_event("not JSON"))?;
    let id = str_at(&event, "id").filter(|s| s.starts_with("evt_") && s.len() <= 255).ok_or_else(|| bad_event("id"))?;
    let kind = str_at(&event, "type").filter(|s| s.len() <= 255).ok_or_else(|| bad_event("type"))?;
    let object = event
        .get("data")
        .and_then(|d| d.get("object"))
        .filter(|o| o.is_object())
        .ok_or_else(|| bad_event("data.object"))?;
    let rpc = |name, args: Map<String, Value>| Ok(Action::Rpc { name, args: Value::Object(args).to_string() });
    match kind {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            // `unpaid` means a delayed payment method: the async_payment_* event decides later.
            let paid = matches!(str_at(object, "payment_status"), Some("paid" | "no_payment_required"));
            if !paid {
                return Ok(Action::Ignore("awaiting_payment"));
            }
            let Some(purchase_id) = str_at(object, "client_reference_id") else {
                return Ok(Action::Ignore("not_ours"));
            };
            let Some(meta) = object.get("metadata").filter(|m| str_at(m, "purchase_id") == Some(purchase_id)) else {
                return Ok(Action::Ignore("not_ours"));
            };
            // A session with nothing to pay has no PaymentIntent; its own id is the payment then.
            let payment = id_of(object.get("payment_intent"))
                .or_else(|| id_of(object.get("id")))
                .ok_or_else(|| bad_event("payment_intent"))?;
            rpc(
                "fulfill_purchase",
                with(
                    payment_args(payment, id, kind),
                    &[
                        ("p_user_id", raw_at(meta, "user_id")),
                        ("p_package_id", raw_at(meta, "package_id")),
                        ("p_amount_cents", raw_at(object, "amount_total")),
                        ("p_currency", raw_at(object, "currency")),
                        ("p_purchase_id", purchase_id.into()),
                    ],
                ),
            )
        }
        "checkout.session.async_payment_failed" => {
            let Some(purchase_id) = str_at(object, "client_reference_id") else {
                return Ok(Action::Ignore("not_ours"));
            };
            // As for a completion: `client_reference_id` can be set by anyone (Payment Links), so the
            // purchase must also be named in the metadata our own Checkout Session carries.
            if object.get("metadata").and_then(|m| str_at(m, "purchase_id")) != Some(purchase_id) {
                return Ok(Action::Ignore("not_ours"));
            }
            let payment = id_of(object.get("payment_intent"))
                .or_else(|| id_of(object.get("id")))
                .ok_or_else(|| bad_event("payment_intent"))?;
            rpc("fail_purchase", with(payment_args(payment, id, kind), &[("p_purchase_id", purchase_id.into())]))
        }
        "charge.refunded" => {
            let Some(payment) = id_of(object.get("payment_intent")) else {
                return Ok(Action::Ignore("no_payment_intent"));
            };
            // Cumulative: `amount_refunded` is the total refunded so far, so a repeated or
            // reordered event never takes back more than the refunds add up to.
            rpc(
                "refund_purchase_amount",
                with(
                    payment_args(payment, id, kind),
                    &[
                        ("p_amount_refunded_cents", raw_at(object, "amount_refunded")),
                        ("p_amount_cents", raw_at(object, "amount")),
                    ],
                ),
            )
        }
        "charge.dispute.created"
        | "charge.dispute.updated"
        | "charge.dispute.funds_withdrawn"
        | "charge.dispute.funds_reinstated"
        | "charge.dispute.closed" => {
            // Every dispute event names its dispute, status and amount: the database keeps the
            // highest-ranked status per dispute id and the payment keeps what the payment rule
            // says (migrations/README.md), so one closed inquiry never hides a later chargeback.
            let Some(payment) = id_of(object.get("payment_intent")) else {
                return Ok(Action::Ignore("no_payment_intent"));
            };
            let dispute = id_of(object.get("id")).ok_or_else(|| bad_event("dispute id"))?;
            // A status the payment rule does not rank (one Stripe adds later) is acknowledged and
            // logged, not refused: a 400 would only make Stripe retry the same event for days.
            if !matches!(str_at(object, "status"), Some(s) if DISPUTE_STATUSES.contains(&s)) {
                return Ok(Action::Ignore("dispute_status"));
            }
            rpc(
                "dispute_purchase",
                with(
                    payment_args(payment, id, kind),
                    &[
                        ("p_dispute_id", dispute.into()),
                        ("p_dispute_status", raw_at(object, "status")),
                        ("p_dispute_amount_cents", raw_at(object, "amount")),
                    ],
                ),
            )
        }
        _ => {
            // Subscriptions (invoices and subscription objects): crate::stripe_billing.
            let created = event.get("created").and_then(Value::as_i64);
            crate::stripe_billing::parse_billing_event(kind, id, created, object)
                .unwrap_or(Ok(Action::Ignore("event_type")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn verifies_signatures_with_rotation_and_tolerance() {
        let body = br#"{"id":"evt_1"}"#;
        let good = format!("t={NOW},v1={}", sign(b"whsec_b", NOW, body));
        assert!(verify_signature(Some(&good), body, "whsec_a, whsec_b", NOW).is_ok());
        let two = format!("t={NOW},v1={},v1={}", sign(b"whsec_x", NOW, body), sign(b"whsec_a", NOW, body));
        assert!(verify_signature(Some(&two), body, "whsec_a", NOW).is_ok());
        let cases = [
            (None, "invalid_signature_header"),
            (Some("t=1,v1=zz".to_owned()), "invalid_signature_header"),
            (Some(format!("t={},v1={}", NOW - 301, sign(b"whsec_a", NOW - 301, body))), "signature_expired"),
            (Some(format!("t={NOW},v1={}", sign(b"whsec_c", NOW, body))), "invalid_signature"),
        ];
        for (h, code) in cases {
            let e = verify_signature(h.as_deref(), body, "whsec_a,whsec_b", NOW).unwrap_err();
            assert_eq!((e.status, e.code.as_str()), (400, code), "{h:?}");
        }
        assert_eq!(verify_signature(Some(&good), body, " , ", NOW).unwrap_err().status, 500);
    }

    #[test]
    fn encodes_the_checkout_form() {
        assert_eq!(
            form_encode(&[("a[0][b]", "x y&z=é"), ("c", "https://e.test/?s={CHECKOUT_SESSION_ID}")]),
            "a[0][b]=x%20y%26z%3D%C3%A9&c=https%3A%2F%2Fe.test%2F%3Fs%3D%7BCHECKOUT_SESSION_ID%7D"
        );
        let c = Checkout {
            purchase_id: "p1",
            user_id: "u1",
            package_id: "starter",
            price_id: "price_1",
            success_url: "https://s",
            cancel_url: "https://c",
        };
        let form = c.form();
        assert!(form.starts_with("mode=payment&line_items[0][price]=price_1&line_items[0][quantity]=1&"), "{form}");
        assert!(form.contains("client_reference_id=p1") && form.contains("metadata[user_id]=u1"), "{form}");
        assert_eq!(c.idempotency_key(), "checkout-p1");
        let session =
            br#"{"object":"checkout.session","id":"cs_test_1","url":"https://checkout.stripe.com/c/pay/cs_test_1"}"#;
        assert_eq!(
            parse_session(session),
            Some(("cs_test_1".into(), "https://checkout.stripe.com/c/pay/cs_test_1".into()))
        );
        assert_eq!(parse_session(br#"{"object":"payment_intent","id":"pi_1"}"#), None);
    }

    fn event(kind: &str, object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"id": "evt_1", "object": "event", "type": kind, "data": {"object": object}}))
            .unwrap()
    }

    fn rpc_name(a: Action) -> String {
        match a {
            Action::Rpc { name, .. } | Action::RpcKeyedByInvoicePayment { name, .. } => name.into(),
            Action::Ignore(why) => format!("ignore:{why}"),
        }
    }

    #[test]
    fn maps_each_event_type() {
        let session = json!({"id": "cs_1", "object": "checkout.session", "payment_status": "paid",
            "payment_intent": "pi_1",
            "client_reference_id": "p1", "metadata": {"purchase_id": "p1", "user_id": "u1", "package_id": "starter"},
            "amount_total": 499, "currency": "usd"});
        match parse_event(&event("checkout.session.completed", session.clone())).unwrap() {
            Action::Rpc { name, args } => {
                let args: Value = serde_json::from_str(&args).unwrap();
                assert_eq!(name, "fulfill_purchase");
                assert_eq!(args["p_provider_payment_id"], "pi_1");
                assert_eq!(args["p_purchase_id"], "p1");
                assert_eq!(args["p_amount_cents"], 499);
                assert_eq!(args["p_event_id"], "evt_1");
            }
            other => panic!("{other:?}"),
        }
        let mut unpaid = session.clone();
        unpaid["payment_status"] = json!("unpaid");
        let mut foreign = session.clone();
        foreign["metadata"] = json!({});
        let charge = json!({"id": "ch_1", "payment_intent": "pi_1", "amount": 499, "amount_refunded": 200});
        let dispute =
            |status: &str| json!({"id": "dp_1", "payment_intent": {"id": "pi_1"}, "status": status, "amount": 499});
        let cases = [
            (event("checkout.session.completed", unpaid), "ignore:awaiting_payment"),
            (event("checkout.session.completed", foreign.clone()), "ignore:not_ours"),
            (event("checkout.session.async_payment_succeeded", session.clone()), "fulfill_purchase"),
            (event("checkout.session.async_payment_failed", session), "fail_purchase"),
            (event("checkout.session.async_payment_failed", foreign.clone()), "ignore:not_ours"),
            (event("charge.refunded", charge), "refund_purchase_amount"),
            (event("charge.dispute.created", dispute("warning_needs_response")), "dispute_purchase"),
            (event("charge.dispute.created", dispute("needs_response")), "dispute_purchase"),
            (event("charge.dispute.funds_withdrawn", dispute("needs_response")), "dispute_purchase"),
            (event("charge.dispute.funds_reinstated", dispute("under_review")), "dispute_purchase"),
            (event("charge.dispute.closed", dispute("won")), "dispute_purchase"),
            (event("charge.dispute.closed", dispute("warning_closed")), "dispute_purchase"),
            (event("charge.dispute.closed", dispute("lost")), "dispute_purchase"),
            (event("charge.dispute.closed", dispute("prevented")), "dispute_purchase"),
            (event("charge.dispute.closed", dispute("charge_refunded")), "ignore:dispute_status"),
            (event("customer.created", json!({"id": "cus_1"})), "ignore:event_type"),
        ];
        for (body, want) in cases {
            assert_eq!(rpc_name(parse_event(&body).unwrap()), want, "{}", String::from_utf8_lossy(&body));
        }
        // A dispute event carries its dispute id, status and amount to the database as Stripe sent them.
        let Action::Rpc { args, .. } = parse_event(&event("charge.dispute.closed", dispute("lost"))).unwrap() else {
            panic!("a dispute event is an RPC");
        };
        let args: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(
            (
                &args["p_dispute_id"],
                &args["p_dispute_status"],
                &args["p_dispute_amount_cents"],
                &args["p_provider_payment_id"]
            ),
            (&json!("dp_1"), &json!("lost"), &json!(499), &json!("pi_1"))
        );
        for bad in [
            &b"nope"[..],
            br#"{"id":"x","type":"charge.refunded","data":{"object":{}}}"#,
            br#"{"id":"evt_1","type":"charge.refunded","data":{}}"#,
            concat!(
                r#"{"id":"evt_1","type":"charge.refunded","#,
                r#""data":{"object":{"payment_intent":"pi_1","payment_intent":"pi_2"}}}"#
            )
            .as_bytes(),
        ] {
            assert_eq!(parse_event(bad).unwrap_err().code, "invalid_event");
        }
    }
}
