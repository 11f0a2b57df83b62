//! Stripe Billing: subscription events for the ledger, the subscription-mode Checkout Session and
//! the cancel-at-period-end request (migrations/README.md, "The subscription rules").
//!
//! The members read are derived serde types (Stripe objects carry dozens of members, so unknown
//! ones are allowed here; [`crate::strict`] has already refused a repeated key). Both invoice
//! shapes are read: the current API's (`parent.subscription_details`, `lines.data[].pricing
//! .price_details.price`, `lines.data[].parent.subscription_item_details.proration`, `payments`)
//! and the one before 2025-03-31 (`subscription`, `subscription_details`, `lines.data[].price`,
//! `lines.data[].proration`, `payment_intent`). Subscriptions likewise: the period on the item
//! (current API) or on the subscription (earlier).
//!
//! - `invoice.paid` with `billing_reason` `subscription_create` or `subscription_cycle`: one paid
//!   period (`fulfill_subscription_payment`): the plan from the subscription line's price, the
//!   period from that line, keyed by the invoice's PaymentIntent (so `charge.refunded` and
//!   `charge.dispute.*` of it find it), or the invoice id when it has none (nothing charged).
//!   The PaymentIntent is read from the payload (`payment_intent` before 2025-03-31, an expanded
//!   `payments` list after); a basil (or later) payload has neither, so for an invoice with
//!   `amount_paid > 0` the Worker asks Stripe first: `GET /v1/invoice_payments?invoice=..&status=paid`
//!   ([`Action::RpcKeyedByInvoicePayment`]). Refunds and disputes carry the PaymentIntent, so
//!   whichever arrives first, both name the same payment.
//! - `invoice.paid` with `subscription_update`: a mid-period upgrade, the proration lines naming
//!   the new price (positive) and the old one (negative); the database grants the difference of
//!   the two plans' credits (nothing if not an upgrade). Or a change that resets the billing period
//!   (another interval, free to paid: Stripe credits the unused time and invoices the new price's
//!   whole period at once): that line, not a proration, is a period of the new plan, and with the
//!   credit (a negative proration line) it is sent with `p_replaces_unused`, which cuts the
//!   payments of the period it ends by their unused fraction.
//! - `invoice.payment_failed`: the subscription is `past_due` (`record_subscription_state`).
//! - `customer.subscription.updated` / `.deleted`: the state (status, plan, period, cancel at
//!   period end) at the event's time.
//!
//! The user comes from the subscription's metadata (`user_id`), which our Checkout Session sets
//! (`subscription_data[metadata]`) and every invoice snapshots; a subscription without it is not
//! ours and is acknowledged and ignored.

use crate::stripe::{form_encode, Action};
use crate::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// An expandable field: an id, or the expanded object with its id.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Expandable {
    Id(String),
    Object { id: String },
}

impl Expandable {
    fn id(&self) -> &str {
        match self {
            Expandable::Id(id) | Expandable::Object { id } => id,
        }
    }
}

#[derive(Deserialize, Debug, Default)]
struct SubscriptionDetails {
    subscription: Option<Expandable>,
    metadata: Option<HashMap<String, String>>,
}

#[derive(Deserialize, Debug, Default)]
struct InvoiceParent {
    subscription_details: Option<SubscriptionDetails>,
}

#[derive(Deserialize, Debug)]
struct Period {
    start: i64,
    end: i64,
}

#[derive(Deserialize, Debug)]
struct PriceDetails {
    price: Option<Expandable>,
}

#[derive(Deserialize, Debug)]
struct Pricing {
    price_details: Option<PriceDetails>,
}

#[derive(Deserialize, Debug)]
struct ItemDetails {
    #[serde(default)]
    proration: bool,
}

#[derive(Deserialize, Debug)]
struct LineParent {
    #[serde(rename = "type")]
    kind: Option<String>,
    subscription_item_details: Option<ItemDetails>,
}

#[derive(Deserialize, Debug)]
struct Line {
    #[serde(default)]
    amount: i64,
    period: Option<Period>,
    pricing: Option<Pricing>,
    price: Option<Expandable>,
    parent: Option<LineParent>,
    #[serde(default)]
    proration: bool,
    /// `subscription` or `invoiceitem` (the API before 2025-03-31; `parent.type` after).
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl Line {
    fn price(&self) -> Option<&str> {
        self.pricing
            .as_ref()
            .and_then(|p| p.price_details.as_ref())
            .and_then(|d| d.price.as_ref())
            .or(self.price.as_ref())
            .map(Expandable::id)
    }
    /// A one-off invoice item on the invoice (`add_invoice_items`, pending items), not a line of
    /// the subscription's own items: never a plan's period.
    fn is_invoice_item(&self) -> bool {
        self.kind.as_deref() == Some("invoiceitem")
            || self.parent.as_ref().and_then(|p| p.kind.as_deref()) == Some("invoice_item_details")
    }
    fn is_proration(&self) -> bool {
        self.proration
            || self.parent.as_ref().and_then(|p| p.subscription_item_details.as_ref()).is_some_and(|d| d.proration)
    }
}

#[derive(Deserialize, Debug)]
struct List<T> {
    data: Vec<T>,
}

#[derive(Deserialize, Debug)]
struct InvoicePaymentRef {
    payment_intent: Option<Expandable>,
}

#[derive(Deserialize, Debug)]
struct InvoicePayment {
    payment: Option<InvoicePaymentRef>,
}

#[derive(Deserialize, Debug)]
struct Invoice {
    id: String,
    billing_reason: Option<String>,
    amount_paid: Option<Value>,
    currency: Option<Value>,
    parent: Option<InvoiceParent>,
    subscription: Option<Expandable>,
    subscription_details: Option<SubscriptionDetails>,
    payment_intent: Option<Expandable>,
    payments: Option<List<InvoicePayment>>,
    lines: Option<List<Line>>,
}

#[derive(Deserialize, Debug)]
struct SubscriptionItemPrice {
    id: String,
}

#[derive(Deserialize, Debug)]
struct SubscriptionItem {
    price: Option<SubscriptionItemPrice>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
}

/// The members of a `subscription` object that matter here.
#[derive(Deserialize, Debug)]
pub struct Subscription {
    id: String,
    status: String,
    #[serde(default)]
    cancel_at_period_end: bool,
    metadata: Option<HashMap<String, String>>,
    current_period_start: Option<i64>,
    current_period_end: Option<i64>,
    items: Option<List<SubscriptionItem>>,
}

/// RFC 3339 text of a Unix time, for the database's `timestamptz`.
pub fn iso(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0).map(|t| t.to_rfc3339())
}

fn bad(what: &str) -> ApiError {
    ApiError::new(400, "invalid_event", format!("The event is not a Stripe event this endpoint understands: {what}."))
}

fn rpc(name: &'static str, args: Value) -> Result<Action, ApiError> {
    Ok(Action::Rpc { name, args: args.to_string() })
}

/// The subscription state a `subscription` object gives: our status, or `None` for one the
/// rules do not know (Stripe's `paused`, or a status Stripe adds later).
fn state_of(s: &Subscription, deleted: bool) -> Option<&'static str> {
    if deleted {
        return Some("ended");
    }
    Some(match s.status.as_str() {
        "active" | "trialing" if s.cancel_at_period_end => "canceled",
        "active" | "trialing" => "active",
        "past_due" | "unpaid" | "incomplete" => "past_due",
        "canceled" | "incomplete_expired" => "ended",
        _ => return None,
    })
}

/// `record_subscription_state`'s arguments for a subscription object at `at` (Unix seconds).
pub fn subscription_state(
    s: &Subscription,
    event_id: &str,
    event_type: &str,
    at: i64,
    deleted: bool,
) -> Result<Action, ApiError> {
    let Some(user) = s.metadata.as_ref().and_then(|m| m.get("user_id")) else {
        return Ok(Action::Ignore("not_ours"));
    };
    let Some(status) = state_of(s, deleted) else {
        return Ok(Action::Ignore("subscription_status"));
    };
    let item = s.items.as_ref().and_then(|l| l.data.first());
    let start = item.and_then(|i| i.current_period_start).or(s.current_period_start);
    let end = item.and_then(|i| i.current_period_end).or(s.current_period_end);
    rpc(
        "record_subscription_state",
        json!({
            "p_provider": "stripe", "p_provider_subscription_id": s.id, "p_event_id": event_id,
            "p_event_at": iso(at).ok_or_else(|| bad("created"))?, "p_user_id": user,
            "p_plan_id": item.and_then(|i| i.price.as_ref()).map(|p| p.id.as_str()),
            "p_status": status,
            "p_current_period_start": start.and_then(iso), "p_current_period_end": end.and_then(iso),
            "p_cancel_at_period_end": s.cancel_at_period_end, "p_event_type": event_type,
        }),
    )
}

/// Reads a `subscription` object (Stripe's answer to the cancel request, or an event's object).
pub fn parse_subscription(object: &Value) -> Option<Subscription> {
    Subscription::deserialize(object).ok()
}

/// Maps a verified Billing event; `None` for an event type this module does not handle.
/// `created` is the event's time (Unix seconds), the order of state events.
pub fn parse_billing_event(
    kind: &str,
    id: &str,
    created: Option<i64>,
    object: &Value,
) -> Option<Result<Action, ApiError>> {
    let Some(created) = created else {
        return matches!(
            kind,
            "invoice.paid"
                | "invoice.payment_failed"
                | "customer.subscription.updated"
                | "customer.subscription.deleted"
        )
        .then(|| Err(bad("created")));
    };
    Some(match kind {
        "invoice.paid" | "invoice.payment_failed" => invoice_event(kind, id, created, object),
        "customer.subscription.updated" | "customer.subscription.deleted" => match parse_subscription(object) {
            Some(s) => subscription_state(&s, id, kind, created, kind == "customer.subscription.deleted"),
            None => Err(bad("subscription")),
        },
        _ => return None,
    })
}

fn invoice_event(kind: &str, id: &str, created: i64, object: &Value) -> Result<Action, ApiError> {
    let invoice = Invoice::deserialize(object).map_err(|_| bad("invoice"))?;
    let details = invoice.parent.as_ref().and_then(|p| p.subscription_details.as_ref());
    let subscription =
        details.and_then(|d| d.subscription.as_ref()).or(invoice.subscription.as_ref()).map(Expandable::id);
    let Some(subscription) = subscription else {
        return Ok(Action::Ignore("not_a_subscription"));
    };
    let user = details
        .or(invoice.subscription_details.as_ref())
        .and_then(|d| d.metadata.as_ref())
        .and_then(|m| m.get("user_id"));
    let Some(user) = user else {
        return Ok(Action::Ignore("not_ours"));
    };
    let lines: &[Line] = invoice.lines.as_ref().map(|l| l.data.as_slice()).unwrap_or(&[]);
    let period_line = lines.iter().find(|l| !l.is_proration() && !l.is_invoice_item() && l.price().is_some());
    if kind == "invoice.payment_failed" {
        return rpc(
            "record_subscription_state",
            json!({
                "p_provider": "stripe", "p_provider_subscription_id": subscription, "p_event_id": id,
                "p_event_at": iso(created).ok_or_else(|| bad("created"))?, "p_user_id": user,
                "p_plan_id": period_line.and_then(Line::price), "p_status": "past_due", "p_event_type": kind,
            }),
        );
    }
    let credit = lines.iter().find(|l| l.is_proration() && l.amount < 0);
    let (plan_line, from_plan, replaces_unused) = match invoice.billing_reason.as_deref() {
        Some("subscription_create" | "subscription_cycle") => (period_line, None, false),
        Some("subscription_update") => {
            let new = lines.iter().find(|l| l.is_proration() && l.amount > 0 && l.price().is_some());
            match (new, credit.and_then(Line::price), period_line) {
                // A plan change within the period: the new price's and the old one's proration lines.
                (Some(new), Some(old), _) => (Some(new), Some(old), false),
                // A change that resets the billing period (another interval, free to paid): the new
                // price's whole period is invoiced, not prorated: a period of that plan. A credit
                // for the unused time of the period it ends (a negative proration line) cuts that
                // period's payments (`p_replaces_unused`).
                (None, _, Some(line)) => (Some(line), None, credit.is_some()),
                _ => return Ok(Action::Ignore("no_plan_change")),
            }
        }
        _ => return Ok(Action::Ignore("billing_reason")),
    };
    let Some(line) = plan_line else {
        return Ok(Action::Ignore("no_subscription_line"));
    };
    let period = line.period.as_ref().ok_or_else(|| bad("lines.data.period"))?;
    let intent = invoice
        .payments
        .as_ref()
        .and_then(|p| p.data.iter().find_map(|x| x.payment.as_ref().and_then(|r| r.payment_intent.as_ref())))
        .or(invoice.payment_intent.as_ref())
        .map(Expandable::id);
    let charged = invoice.amount_paid.as_ref().and_then(Value::as_i64).is_some_and(|a| a > 0);
    let payment = intent.unwrap_or(invoice.id.as_str());
    let mut args = json!({
            "p_provider": "stripe", "p_provider_payment_id": payment, "p_event_id": id, "p_event_type": kind,
            "p_user_id": user, "p_provider_subscription_id": subscription, "p_plan_id": line.price(),
            "p_period_start": iso(period.start).ok_or_else(|| bad("period.start"))?,
            "p_period_end": iso(period.end).ok_or_else(|| bad("period.end"))?,
            "p_amount_cents": invoice.amount_paid, "p_currency": invoice.currency, "p_from_plan_id": from_plan,
    });
    // Sent only when true, so every other invoice's call is the same as before the argument existed.
    if replaces_unused {
        args["p_replaces_unused"] = Value::Bool(true);
    }
    if intent.is_none() && charged {
        if !valid_invoice_id(&invoice.id) {
            return Err(bad("id"));
        }
        return Ok(Action::RpcKeyedByInvoicePayment {
            name: "fulfill_subscription_payment",
            args: args.to_string(),
            invoice: invoice.id,
        });
    }
    rpc("fulfill_subscription_payment", args)
}

fn valid_invoice_id(id: &str) -> bool {
    id.starts_with("in_") && id.len() <= 255 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The path and query of `GET /v1/invoice_payments` listing an invoice's paid payments (Stripe's
/// Invoice Payments API, 2025-03-31.basil and later).
pub fn invoice_payments_path(invoice: &str) -> String {
    format!("/v1/invoice_payments?{}", form_encode(&[("invoice", invoice), ("status", "paid")]))
}

#[derive(Deserialize, Debug)]
struct InvoicePaymentObject {
    #[serde(default)]
    is_default: bool,
    status: Option<String>,
    payment: Option<InvoicePaymentDetails>,
}

#[derive(Deserialize, Debug)]
struct InvoicePaymentDetails {
    #[serde(rename = "type")]
    kind: Option<String>,
    payment_intent: Option<Expandable>,
}

#[derive(Deserialize, Debug)]
struct InvoicePaymentList {
    object: String,
    data: Vec<InvoicePaymentObject>,
}

/// The PaymentIntent that paid the invoice, from a `GET /v1/invoice_payments` answer: among the
/// `paid` payments of type `payment_intent`, the default one, else the oldest (Stripe lists newest
/// first). `Ok(None)`: nothing was paid by a PaymentIntent (out of band, customer balance), so the
/// invoice id stays the key. `Err`: not a list of invoice payments.
pub fn paid_payment_intent(body: &str) -> Result<Option<String>, ApiError> {
    let unexpected = || ApiError::new(502, "payment_provider_error", "The payment provider gave an unexpected answer.");
    let list: InvoicePaymentList = serde_json::from_str(body).map_err(|_| unexpected())?;
    if list.object != "list" {
        return Err(unexpected());
    }
    let paid: Vec<(&InvoicePaymentObject, &str)> = list
        .data
        .iter()
        .filter(|p| p.status.as_deref() == Some("paid"))
        .filter_map(|p| {
            let d = p.payment.as_ref()?;
            (d.kind.as_deref() == Some("payment_intent")).then_some(())?;
            Some((p, d.payment_intent.as_ref()?.id()))
        })
        .filter(|(_, id)| id.starts_with("pi_") && id.len() <= 255)
        .collect();
    let chosen = paid.iter().find(|(p, _)| p.is_default).or(paid.last());
    Ok(chosen.map(|(_, id)| (*id).to_owned()))
}

/// `args` (an RPC's JSON arguments) keyed by `payment` (`p_provider_payment_id`).
pub fn keyed_by(args: &str, payment: &str) -> Result<String, ApiError> {
    let mut v: Value =
        serde_json::from_str(args).map_err(|e| ApiError::internal().because(format!("RPC arguments: {e}")))?;
    v["p_provider_payment_id"] = Value::from(payment);
    Ok(v.to_string())
}

/// What a subscription-mode Checkout Session is made from.
pub struct SubscriptionCheckout<'a> {
    pub user_id: &'a str,
    pub plan_id: &'a str,
    pub price_id: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
    /// The caller's `Idempotency-Key`.
    pub key: &'a str,
}

impl SubscriptionCheckout<'_> {
    /// The form body of `POST /v1/checkout/sessions` in `subscription` mode: one unit of the plan's
    /// recurring price; the user and plan in the session's metadata and in the subscription's
    /// (`subscription_data[metadata]`), which every invoice of it snapshots.
    pub fn form(&self) -> String {
        form_encode(&[
            ("mode", "subscription"),
            ("line_items[0][price]", self.price_id),
            ("line_items[0][quantity]", "1"),
            ("success_url", self.success_url),
            ("cancel_url", self.cancel_url),
            ("client_reference_id", self.user_id),
            ("metadata[user_id]", self.user_id),
            ("metadata[plan_id]", self.plan_id),
            ("subscription_data[metadata][user_id]", self.user_id),
            ("subscription_data[metadata][plan_id]", self.plan_id),
        ])
    }

    /// Stripe's `Idempotency-Key`: the caller's key scoped to the caller (SHA-256, so any key of
    /// 1-255 characters fits Stripe's 255). A retry asks Stripe for the same session; the same
    /// key for another plan is refused by Stripe (`idempotency_error`).
    pub fn idempotency_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("{}\n{}", self.user_id, self.key).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("subscription-checkout-{hex}")
    }
}

/// The form body of `POST /v1/subscriptions/{id}` that cancels at the period end.
pub fn cancel_form() -> String {
    form_encode(&[("cancel_at_period_end", "true")])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: Result<Action, ApiError>) -> (String, Value) {
        match a.unwrap() {
            Action::Rpc { name, args } => (name.into(), serde_json::from_str(&args).unwrap()),
            Action::RpcKeyedByInvoicePayment { name, args, invoice } => {
                (format!("{name} after invoice_payments of {invoice}"), serde_json::from_str(&args).unwrap())
            }
            Action::Ignore(why) => (format!("ignore:{why}"), Value::Null),
        }
    }

    fn line(price: &str, amount: i64, proration: bool, start: i64, end: i64) -> Value {
        json!({"object": "line_item", "amount": amount, "period": {"start": start, "end": end},
            "pricing": {"type": "price_details", "price_details": {"price": price, "product": "prod_1"}},
            "parent": {"type": "subscription_item_details",
                "subscription_item_details": {"proration": proration, "subscription": "sub_1"}}})
    }

    fn invoice(reason: &str, lines: Vec<Value>) -> Value {
        json!({"id": "in_1", "object": "invoice", "billing_reason": reason, "amount_paid": 2999, "currency": "usd",
            "parent": {"type": "subscription_details",
                "subscription_details": {"subscription": "sub_1", "metadata": {"user_id": "u1"}}},
            "payments": {"object": "list", "data": [{"object": "invoice_payment",
                "payment": {"type": "payment_intent", "payment_intent": "pi_9"}}]},
            "lines": {"object": "list", "data": lines}})
    }

    #[test]
    fn maps_invoices() {
        let (name, a) = args(
            parse_billing_event(
                "invoice.paid",
                "evt_1",
                Some(1),
                &invoice("subscription_cycle", vec![line("price_pro", 2999, false, 1_900_000_000, 1_902_592_000)]),
            )
            .unwrap(),
        );
        assert_eq!(name, "fulfill_subscription_payment");
        assert_eq!(
            (&a["p_provider_payment_id"], &a["p_plan_id"], &a["p_user_id"]),
            (&json!("pi_9"), &json!("price_pro"), &json!("u1"))
        );
        assert_eq!(a["p_period_start"], "2030-03-17T17:46:40+00:00");
        assert_eq!(a["p_from_plan_id"], Value::Null);
        let up = invoice(
            "subscription_update",
            vec![line("price_basic", -500, true, 1, 2), line("price_pro", 1500, true, 1, 2)],
        );
        let (_, a) = args(parse_billing_event("invoice.paid", "evt_2", Some(1), &up).unwrap());
        assert_eq!((&a["p_plan_id"], &a["p_from_plan_id"]), (&json!("price_pro"), &json!("price_basic")));
        // The API before 2025-03-31: subscription, subscription_details, price, proration and
        // payment_intent at the top.
        let old = json!({"id": "in_2", "billing_reason": "subscription_create", "amount_paid": 999, "currency": "usd",
            "subscription": "sub_2", "subscription_details": {"metadata": {"user_id": "u2"}}, "payment_intent": "pi_2",
            "lines": {"data": [{"amount": 999, "proration": false, "price": {"id": "price_basic"},
                "period": {"start": 1, "end": 2}}]}});
        let (_, a) = args(parse_billing_event("invoice.paid", "evt_3", Some(1), &old).unwrap());
        assert_eq!(
            (&a["p_provider_payment_id"], &a["p_provider_subscription_id"], &a["p_plan_id"]),
            (&json!("pi_2"), &json!("sub_2"), &json!("price_basic"))
        );
        let (name, a) = args(parse_billing_event("invoice.payment_failed", "evt_4", Some(1), &old).unwrap());
        assert_eq!((name.as_str(), &a["p_status"]), ("record_subscription_state", &json!("past_due")));
        let mut foreign = invoice("subscription_cycle", vec![line("price_pro", 1, false, 1, 2)]);
        foreign["parent"]["subscription_details"]["metadata"] = json!({});
        assert_eq!(args(parse_billing_event("invoice.paid", "e", Some(1), &foreign).unwrap()).0, "ignore:not_ours");
        let one_off = json!({"id": "in_3", "billing_reason": "manual", "lines": {"data": []}});
        assert_eq!(
            args(parse_billing_event("invoice.paid", "e", Some(1), &one_off).unwrap()).0,
            "ignore:not_a_subscription"
        );
        assert_eq!(
            args(parse_billing_event("invoice.paid", "e", Some(1), &invoice("manual", vec![])).unwrap()).0,
            "ignore:billing_reason"
        );
        assert!(parse_billing_event("invoice.created", "e", Some(1), &one_off).is_none());
        assert_eq!(
            parse_billing_event("invoice.paid", "e", Some(1), &json!({"id": 5})).unwrap().unwrap_err().code,
            "invalid_event"
        );
    }

    #[test]
    fn a_billing_period_reset_is_a_period_of_the_new_plan() {
        // Monthly to yearly: the unused month credited, the year invoiced whole (not a proration).
        let reset = invoice(
            "subscription_update",
            vec![line("price_basic", -666, true, 10, 20), line("price_year", 29999, false, 10, 400)],
        );
        let (name, a) = args(parse_billing_event("invoice.paid", "evt_5", Some(1), &reset).unwrap());
        assert_eq!(name, "fulfill_subscription_payment");
        assert_eq!(
            (&a["p_plan_id"], &a["p_from_plan_id"], &a["p_replaces_unused"]),
            (&json!("price_year"), &Value::Null, &json!(true))
        );
        assert_eq!((&a["p_period_start"], &a["p_period_end"]), (&json!(iso(10).unwrap()), &json!(iso(400).unwrap())));
        // Free to paid (or proration_behavior none): no credit, so nothing is cut.
        let free = invoice("subscription_update", vec![line("price_year", 29999, false, 10, 400)]);
        let (_, a) = args(parse_billing_event("invoice.paid", "evt_6", Some(1), &free).unwrap());
        assert_eq!((&a["p_plan_id"], a.get("p_replaces_unused")), (&json!("price_year"), None));
        // A plan change within the period still names both plans and replaces nothing.
        let up = invoice(
            "subscription_update",
            vec![line("price_basic", -500, true, 1, 2), line("price_pro", 1500, true, 1, 2)],
        );
        let (_, a) = args(parse_billing_event("invoice.paid", "evt_7", Some(1), &up).unwrap());
        assert_eq!((&a["p_from_plan_id"], a.get("p_replaces_unused")), (&json!("price_basic"), None));
        // An invoice item added to the change (before the year's line) is not the plan's period.
        let mut item = line("price_setup_fee", 500, false, 10, 10);
        item["parent"] = json!({"type": "invoice_item_details", "invoice_item_details": {"invoice_item": "ii_1"}});
        let with_item = invoice(
            "subscription_update",
            vec![item, line("price_basic", -666, true, 10, 20), line("price_year", 29999, false, 10, 400)],
        );
        let (_, a) = args(parse_billing_event("invoice.paid", "evt_9", Some(1), &with_item).unwrap());
        assert_eq!((&a["p_plan_id"], &a["p_replaces_unused"]), (&json!("price_year"), &json!(true)));
        let fee = json!({"type": "invoiceitem", "amount": 100, "proration": false, "price": {"id": "price_fee"},
            "period": {"start": 1, "end": 1}});
        let plan = json!({"type": "subscription", "amount": 999, "proration": false, "price": {"id": "price_basic"},
            "period": {"start": 1, "end": 2}});
        let old_item = json!({"id": "in_4", "billing_reason": "subscription_cycle", "amount_paid": 999,
            "currency": "usd", "subscription": "sub_2", "subscription_details": {"metadata": {"user_id": "u2"}},
            "payment_intent": "pi_4", "lines": {"data": [fee, plan]}});
        let (_, a) = args(parse_billing_event("invoice.paid", "evt_10", Some(1), &old_item).unwrap());
        assert_eq!(a["p_plan_id"], "price_basic");
        // Only a credit: nothing to record.
        let credit = invoice("subscription_update", vec![line("price_pro", -1333, true, 1, 2)]);
        assert_eq!(
            args(parse_billing_event("invoice.paid", "evt_8", Some(1), &credit).unwrap()).0,
            "ignore:no_plan_change"
        );
    }

    #[test]
    fn keys_a_basil_invoice_by_the_payment_intent_stripe_names() {
        // A basil payload: no payment_intent, no payments list.
        let mut basil = invoice("subscription_cycle", vec![line("price_pro", 2999, false, 1, 2)]);
        basil.as_object_mut().unwrap().remove("payments");
        let (name, a) = args(parse_billing_event("invoice.paid", "evt_1", Some(1), &basil).unwrap());
        assert_eq!(name, "fulfill_subscription_payment after invoice_payments of in_1");
        assert_eq!(a["p_provider_payment_id"], "in_1", "keyed by the invoice until Stripe names the PaymentIntent");
        assert_eq!(invoice_payments_path("in_1"), "/v1/invoice_payments?invoice=in_1&status=paid");
        // Nothing charged: no look-up, the invoice id is the key.
        basil["amount_paid"] = json!(0);
        let (name, a) = args(parse_billing_event("invoice.paid", "evt_1", Some(1), &basil).unwrap());
        assert_eq!((name.as_str(), &a["p_provider_payment_id"]), ("fulfill_subscription_payment", &json!("in_1")));
        basil["amount_paid"] = json!(2999);
        basil["id"] = json!("in_1&status=open");
        assert_eq!(
            parse_billing_event("invoice.paid", "e", Some(1), &basil).unwrap().unwrap_err().code,
            "invalid_event"
        );

        let pay = |pi: &str, status: &str, default: bool| {
            json!({"id": "inpay_1", "object": "invoice_payment", "invoice": "in_1", "is_default": default,
                "status": status, "payment": {"type": "payment_intent", "payment_intent": pi}})
        };
        let list = |data: Vec<Value>| {
            json!({"object": "list", "url": "/v1/invoice_payments", "has_more": false, "data": data}).to_string()
        };
        assert_eq!(paid_payment_intent(&list(vec![pay("pi_a", "paid", true)])).unwrap().as_deref(), Some("pi_a"));
        assert_eq!(
            paid_payment_intent(&list(vec![pay("pi_new", "paid", false), pay("pi_old", "paid", false)]))
                .unwrap()
                .as_deref(),
            Some("pi_old"),
            "without a default, the oldest paid payment"
        );
        assert_eq!(
            paid_payment_intent(&list(vec![pay("pi_x", "paid", false), pay("pi_d", "paid", true)])).unwrap().as_deref(),
            Some("pi_d")
        );
        assert_eq!(paid_payment_intent(&list(vec![pay("pi_o", "open", true)])).unwrap(), None);
        let record = json!({"object": "invoice_payment", "status": "paid", "is_default": true,
            "payment": {"type": "payment_record", "payment_record": "prec_1"}});
        assert_eq!(paid_payment_intent(&list(vec![record])).unwrap(), None, "paid out of band");
        assert_eq!(
            paid_payment_intent("{\"object\": \"invoice\", \"data\": []}").unwrap_err().code,
            "payment_provider_error"
        );
        assert_eq!(paid_payment_intent("nope").unwrap_err().code, "payment_provider_error");
        let keyed: Value =
            serde_json::from_str(&keyed_by(r#"{"p_provider_payment_id":"in_1","p_x":1}"#, "pi_a").unwrap()).unwrap();
        assert_eq!(keyed, json!({"p_provider_payment_id": "pi_a", "p_x": 1}));
    }

    #[test]
    fn maps_subscriptions() {
        let sub = |status: &str, cancel: bool| {
            json!({"id": "sub_1", "object": "subscription", "status": status,
            "cancel_at_period_end": cancel, "metadata": {"user_id": "u1"},
            "items": {"data": [{"price": {"id": "price_pro"}, "current_period_start": 1, "current_period_end": 2}]}})
        };
        let state =
            |kind: &str, v: Value| args(parse_billing_event(kind, "evt_1", Some(5), &v).unwrap()).1["p_status"].clone();
        assert_eq!(state("customer.subscription.updated", sub("active", false)), "active");
        assert_eq!(state("customer.subscription.updated", sub("active", true)), "canceled");
        assert_eq!(state("customer.subscription.updated", sub("past_due", false)), "past_due");
        assert_eq!(state("customer.subscription.updated", sub("canceled", false)), "ended");
        assert_eq!(state("customer.subscription.deleted", sub("active", false)), "ended");
        let (_, a) = args(
            parse_billing_event("customer.subscription.updated", "evt_1", Some(5), &sub("active", false)).unwrap(),
        );
        assert_eq!(
            (&a["p_plan_id"], &a["p_current_period_end"], &a["p_event_at"]),
            (&json!("price_pro"), &json!("1970-01-01T00:00:02+00:00"), &json!("1970-01-01T00:00:05+00:00"))
        );
        assert_eq!(
            args(parse_billing_event("customer.subscription.updated", "e", Some(1), &sub("paused", false)).unwrap()).0,
            "ignore:subscription_status"
        );
    }

    #[test]
    fn builds_the_checkout_and_cancel_forms() {
        let c = SubscriptionCheckout {
            user_id: "u1",
            plan_id: "pro",
            price_id: "price_pro",
            success_url: "https://s",
            cancel_url: "https://c",
            key: "k1",
        };
        let form = c.form();
        assert!(
            form.starts_with("mode=subscription&line_items[0][price]=price_pro&line_items[0][quantity]=1&"),
            "{form}"
        );
        assert!(form.contains("subscription_data[metadata][user_id]=u1"), "{form}");
        assert_eq!(c.idempotency_key().len(), "subscription-checkout-".len() + 64);
        assert_ne!(c.idempotency_key(), SubscriptionCheckout { key: "k2", ..c }.idempotency_key());
        assert_eq!(cancel_form(), "cancel_at_period_end=true");
    }
}
