//! App Store purchases: StoreKit 2 signed transactions and App Store Server Notifications V2.
//!
//! - `POST /v1/purchase/app-store` (user; anonymous sessions allowed, because the payment has
//!   already been taken and a Supabase anonymous user keeps its id when it links an identity):
//!   body `{"signed_transaction"}`. The JWS is verified against `APPLE_ROOT_CERT`
//!   (`crate::appstore`); `bundleId` must be `APPLE_BUNDLE_ID`, `environment` `APPLE_ENVIRONMENT`,
//!   the product an App Store product of an active package, and `appAccountToken` the caller's
//!   user id (the app sets it at purchase), so a transaction bought by user A and presented by user
//!   B is refused (403 `transaction_not_yours`). One grant per `transactionId` (the database's
//!   payment id and event `transaction:<id>`): any number of submissions, in parallel or not, grant
//!   once. Answers `{"purchase", "granted", "replayed"}`.
//! - `POST /v1/purchase/app-store/notifications` (Apple's servers; no user token): body
//!   `{"signedPayload"}`, verified the same way, as is the transaction inside it. `REFUND` takes
//!   the credits back (`refund_purchase`), `REFUND_REVERSED` gives them back
//!   (`reverse_refund_purchase`), `REVOKE` claws them back (`clawback_purchase`); the
//!   `notificationUUID` is the event id, so a repeated notification changes nothing. Subscriptions:
//!   `SUBSCRIBED`, `DID_RENEW`, `DID_FAIL_TO_RENEW`, `EXPIRED`, `DID_CHANGE_RENEWAL_PREF` (an
//!   `UPGRADE` pays the new period it starts; see [`subscription_notification`]); `REFUND`,
//!   `REFUND_REVERSED` and `REVOKE` of a subscription's transaction act on that period's payment as
//!   on a pack's. Other types are acknowledged (200) and ignored. A signature failure is 400; Apple
//!   retries non-2xx answers.
//! - A signed auto-renewable subscription transaction submitted to `POST /v1/purchase/app-store`
//!   pays its period (`fulfill_subscription_payment`), once per `transactionId`.
//! - `CONSUMPTION_REQUEST` is recorded and answered through the App Store Server API
//!   ([`consumption_request`], `crate::appstore_api`).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use crate::{appstore, respond};
use serde::Deserialize;
use serde_json::{json, Value};
use shared::appstore::{self as rules, Expect};
use shared::ApiError;
use web_sys::Response;

/// Notifications embed a signed transaction (and for subscriptions renewal info): larger than
/// the 16 KB of ordinary requests.
const MAX_NOTIFICATION_BYTES: usize = 64 * 1024;

/// `POST /v1/purchase/app-store`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionRequest {
    signed_transaction: String,
}

/// App Store Server Notifications V2: `{"signedPayload"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NotificationRequest {
    signed_payload: String,
}

/// A verified payload's JSON (an object the strict check accepted during verification).
fn payload_json(text: &str) -> Result<Value, ApiError> {
    serde_json::from_str(text)
        .map_err(|e| ApiError::internal().because(format!("verified App Store payload unreadable: {e}")))
}

struct Settings {
    root: Vec<u8>,
    bundle_id: String,
    environment: String,
}

impl Settings {
    fn read(cx: &Cx) -> Result<Settings, ApiError> {
        let root = rules::decode_root(&cx.setting("APPLE_ROOT_CERT")?)
            .ok_or_else(|| ApiError::internal().because("APPLE_ROOT_CERT is not a base64 DER CA certificate"))?;
        Ok(Settings { root, bundle_id: cx.setting("APPLE_BUNDLE_ID")?, environment: cx.setting("APPLE_ENVIRONMENT")? })
    }
    fn expect(&self) -> Expect<'_> {
        Expect { bundle_id: &self.bundle_id, environment: &self.environment }
    }
}

fn now() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// Verifies one signed payload and returns its JSON text (an object without repeated keys, read
/// with `serde_json`); every failure is the same 400 for the client, the reason is logged.
async fn verified(token: &str, settings: &Settings, code: &str) -> Result<String, ApiError> {
    appstore::verify(token, &settings.root, now()).await.map_err(|why| {
        crate::log::info(crate::log::event("app_store_jws_rejected").str("reason", &format!("{why:?}")));
        ApiError::new(400, code, "The signed data is not a valid App Store signature for this app.")
    })
}

pub async fn transaction(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let text = cx.body_text().await?;
    let body: TransactionRequest = shared::input::body(&text)?;
    let settings = Settings::read(&cx)?;
    let payload = verified(&body.signed_transaction, &settings, "invalid_signed_transaction").await?;
    let tx = rules::transaction(&payload_json(&payload)?, &settings.expect())?;
    match tx.app_account_token.as_deref() {
        Some(token) if token == user.claims.sub => {}
        Some(_) => {
            return Err(ApiError::new(403, "transaction_not_yours", "This transaction was bought by another account."))
        }
        None => {
            return Err(ApiError::new(
                400,
                "app_account_token_required",
                "Set appAccountToken to the user's id when purchasing.",
            ))
        }
    }
    if tx.revoked {
        return Err(ApiError::new(409, "transaction_revoked", "This transaction was refunded or revoked."));
    }
    if let Some(period) = &tx.subscription {
        // A subscription's first (or any) transaction: the period it paid (subscription rules).
        let args = subscription_args(
            &tx,
            period,
            &user.claims.sub,
            &format!("transaction:{}", tx.transaction_id),
            "signed_transaction",
        )?;
        return db::rpc_response(&cx.cfg, Caller::Service, "fulfill_subscription_payment", &args, 200).await.map_err(
            |e| match (e.code.as_str(), e.field.as_deref()) {
                ("not_found", Some("plan_id")) => ApiError::new(400, "unknown_product", "The product is not a plan."),
                (_, Some("user_id")) => {
                    ApiError::new(403, "transaction_not_yours", "This transaction was bought by another account.")
                }
                _ => e,
            },
        );
    }
    // The product's package whether or not it is still on sale: the money was already taken.
    let lookup = json!({ "p_product_id": tx.product_id }).to_string();
    let package = db::rpc(&cx.cfg, Caller::Service, "app_store_package", &lookup).await.map_err(|e| {
        if e.code == "unknown_product" {
            ApiError::new(400, "unknown_product", "The product is not a credit package.")
        } else {
            e
        }
    })?;
    let package: Value = serde_json::from_str(&package)
        .map_err(|e| ApiError::internal().because(format!("app_store_package answered non-JSON: {e}")))?;
    let package = package
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::internal().because("app_store_package answered no id"))?;
    let args = json!({
        "p_provider": "app_store",
        "p_provider_payment_id": tx.transaction_id,
        "p_event_id": format!("transaction:{}", tx.transaction_id),
        "p_user_id": user.claims.sub,
        "p_package_id": package,
        "p_amount_cents": tx.amount_cents,
        "p_currency": tx.currency,
        "p_event_type": "signed_transaction",
    })
    .to_string();
    db::rpc_response(&cx.cfg, Caller::Service, "fulfill_purchase", &args, 200).await.map_err(|e| {
        // The transaction id was already redeemed for another user.
        if e.field.as_deref() == Some("user_id") {
            ApiError::new(403, "transaction_not_yours", "This transaction was bought by another account.")
        } else {
            e
        }
    })
}

/// `fulfill_subscription_payment`'s arguments for a subscription transaction.
fn subscription_args(
    tx: &rules::Transaction,
    period: &rules::Period,
    user: &str,
    event_id: &str,
    event_type: &str,
) -> Result<String, ApiError> {
    let iso = |ms: i64| {
        shared::stripe_billing::iso(ms.div_euclid(1000)).ok_or_else(|| {
            ApiError::new(400, "invalid_transaction", "The subscription transaction has no valid period.")
        })
    };
    Ok(json!({
        "p_provider": "app_store",
        "p_provider_payment_id": tx.transaction_id,
        "p_event_id": event_id,
        "p_user_id": user,
        "p_provider_subscription_id": period.original_transaction_id,
        "p_plan_id": tx.product_id,
        "p_period_start": iso(period.start_ms)?,
        "p_period_end": iso(period.end_ms)?,
        "p_amount_cents": tx.amount_cents,
        "p_currency": tx.currency,
        "p_event_type": event_type,
    })
    .to_string())
}

/// Subscription notifications (migrations/README.md, "The subscription rules"): `SUBSCRIBED` and
/// `DID_RENEW` pay the transaction's period (one grant per `transactionId`, whichever of the
/// notification and the app's own submission comes first), as does `DID_CHANGE_RENEWAL_PREF` with
/// subtype `UPGRADE` (the upgrade's new period) after its state; `DID_FAIL_TO_RENEW` makes the
/// subscription `past_due`, `EXPIRED` ends it, `DID_CHANGE_RENEWAL_PREF` records the plan it renews
/// at (from the verified renewal info's `autoRenewProductId`). The user is the transaction's
/// `appAccountToken`; a transaction without one is acknowledged and logged (it cannot be ours).
async fn subscription_notification(
    cx: &Cx,
    settings: &Settings,
    n: &rules::Notification<'_>,
    tx: &rules::Transaction,
    period: &rules::Period,
) -> Result<Response, ApiError> {
    let Some(user) = tx.app_account_token.as_deref() else {
        crate::log::info(crate::log::event("app_store_notification_ignored").str("reason", "no_app_account_token"));
        return Ok(respond::json(200, r#"{"received":true,"ignored":"no_app_account_token"}"#.into()));
    };
    if matches!(n.notification_type, "SUBSCRIBED" | "DID_RENEW") {
        let args = subscription_args(tx, period, user, n.notification_uuid, n.notification_type)?;
        db::rpc(&cx.cfg, Caller::Service, "fulfill_subscription_payment", &args).await?;
        return Ok(respond::json(200, r#"{"received":true}"#.into()));
    }
    let mut pending: Option<String> = None;
    let status = match n.notification_type {
        "DID_FAIL_TO_RENEW" => "past_due",
        "EXPIRED" => "ended",
        _ => {
            if let Some(info) = n.signed_renewal_info {
                let renewal = payload_json(&verified(info, settings, "invalid_notification_signature").await?)?;
                pending = renewal
                    .get("autoRenewProductId")
                    .and_then(Value::as_str)
                    .filter(|p| *p != tx.product_id)
                    .map(str::to_owned);
            }
            "active"
        }
    };
    let at = shared::stripe_billing::iso(n.signed_ms.div_euclid(1000))
        .ok_or_else(|| ApiError::new(400, "invalid_notification", "The notification has no valid signedDate."))?;
    let args = json!({
        "p_provider": "app_store",
        "p_provider_subscription_id": period.original_transaction_id,
        "p_event_id": n.notification_uuid,
        "p_event_at": at,
        "p_user_id": user,
        "p_plan_id": tx.product_id,
        "p_status": status,
        "p_pending_plan_id": pending,
        "p_event_type": n.notification_type,
    })
    .to_string();
    db::rpc(&cx.cfg, Caller::Service, "record_subscription_state", &args).await?;
    // An upgrade starts a new billing period at once, paid by the transaction this notification
    // carries (Apple sends no SUBSCRIBED or DID_RENEW for it): after the state (recorded whatever
    // the payment's answer), that period is paid here, once per transactionId as when the app
    // submits it, and the database counts the period it replaces as refunded by its unused
    // fraction (migrations/README.md, "replaced"). A retry replays the state and pays.
    // A subscription offer redeemed (an offer code) comes as OFFER_REDEEMED, not SUBSCRIBED: the
    // state is recorded as for any other change, then its transaction is paid: subtype INITIAL_BUY
    // or RESUBSCRIBE buys a period, UPGRADE starts the higher plan's period at once (as above), none
    // applies the offer to the active subscription (its transaction already paid: nothing more).
    // DOWNGRADE takes effect at the next renewal: the state only.
    let pays = match n.notification_type {
        "DID_CHANGE_RENEWAL_PREF" => n.subtype == Some("UPGRADE"),
        "OFFER_REDEEMED" => n.subtype != Some("DOWNGRADE"),
        _ => false,
    };
    if pays {
        let args = subscription_args(tx, period, user, n.notification_uuid, n.notification_type)?;
        db::rpc(&cx.cfg, Caller::Service, "fulfill_subscription_payment", &args).await?;
    }
    Ok(respond::json(200, r#"{"received":true}"#.into()))
}

/// What `record_app_store_consumption_request` answers (the parts read here).
#[derive(Deserialize)]
struct Recorded {
    request: RecordedRequest,
    recorded: bool,
}

#[derive(Deserialize)]
struct RecordedRequest {
    id: String,
    status: String,
}

/// `CONSUMPTION_REQUEST` (the customer asked Apple for a refund; migrations/README.md, "App Store
/// consumption requests"): recorded once per `notificationUUID` for the purchase of its
/// transaction, then answered at once through the App Store Server API when the user consented
/// (`crate::appstore_api`; the cron retries until Apple accepts or 12 hours pass). The answer to
/// Apple's notification is 200 once recorded, whatever the App Store Server API said. A
/// transaction of a product type this app does not sell is acknowledged and ignored.
async fn consumption_request(cx: &Cx, settings: &Settings, n: &rules::Notification<'_>) -> Result<Response, ApiError> {
    let signed_tx = n
        .signed_transaction
        .ok_or_else(|| ApiError::new(400, "invalid_notification", "The notification carries no transaction."))?;
    let tx_payload = verified(signed_tx, settings, "invalid_notification_signature").await?;
    let tx = match rules::transaction(&payload_json(&tx_payload)?, &settings.expect()) {
        Ok(tx) => tx,
        Err(e) if e.code == "unsupported_product_type" => {
            crate::log::info(crate::log::event("app_store_notification_ignored").str("reason", "product_type"));
            return Ok(respond::json(200, r#"{"received":true,"ignored":"product_type"}"#.into()));
        }
        Err(e) => return Err(e),
    };
    let signed_at = shared::stripe_billing::iso(n.signed_ms.div_euclid(1000))
        .ok_or_else(|| ApiError::new(400, "invalid_notification", "The notification has no valid signedDate."))?;
    let args = json!({
        "p_notification_uuid": n.notification_uuid,
        "p_transaction_id": tx.transaction_id,
        "p_environment": n.environment.unwrap_or(&settings.environment),
        "p_signed_at": signed_at,
        "p_consumption_request_reason": n.consumption_request_reason,
    })
    .to_string();
    let raw = db::rpc(&cx.cfg, Caller::Service, "record_app_store_consumption_request", &args).await?;
    let recorded: Recorded = serde_json::from_str(&raw).map_err(|e| {
        ApiError::internal().because(format!("record_app_store_consumption_request answered unexpected JSON: {e}"))
    })?;
    if recorded.recorded && recorded.request.status == "pending" {
        crate::appstore_api::send_one(&cx.env, &cx.cfg, &recorded.request.id).await;
    }
    Ok(respond::json(200, r#"{"received":true}"#.into()))
}

pub async fn notification(mut cx: Cx) -> Result<Response, ApiError> {
    let settings = Settings::read(&cx)?;
    shared::input::require_json(cx.header("content-type").as_deref())?;
    let body = cx.body_bytes(MAX_NOTIFICATION_BYTES).await?;
    let not_json = || ApiError::new(400, "invalid_json", "The body is not valid JSON.");
    let text = std::str::from_utf8(&body).map_err(|_| not_json())?;
    shared::strict::check(text).map_err(|_| not_json())?;
    let outer: NotificationRequest = serde_json::from_str(text)
        .map_err(|_| ApiError::invalid_field("signedPayload", "The body must be {\"signedPayload\": \"...\"}."))?;
    let payload = verified(&outer.signed_payload, &settings, "invalid_notification_signature").await?;
    let payload = payload_json(&payload)?;
    let n = rules::notification(&payload, &settings.expect())?;
    if n.notification_type == "CONSUMPTION_REQUEST" {
        return consumption_request(&cx, &settings, &n).await;
    }
    let subscription_event = matches!(
        n.notification_type,
        "SUBSCRIBED" | "DID_RENEW" | "DID_FAIL_TO_RENEW" | "EXPIRED" | "DID_CHANGE_RENEWAL_PREF" | "OFFER_REDEEMED"
    );
    let rpc = match n.notification_type {
        "REFUND" => "refund_purchase",
        "REFUND_REVERSED" => "reverse_refund_purchase",
        "REVOKE" => "clawback_purchase",
        _ if subscription_event => "",
        other => {
            crate::log::info(crate::log::event("app_store_notification_ignored").str("type", other));
            return Ok(respond::json(200, r#"{"received":true,"ignored":"notification_type"}"#.into()));
        }
    };
    let signed_tx = n
        .signed_transaction
        .ok_or_else(|| ApiError::new(400, "invalid_notification", "The notification carries no transaction."))?;
    let tx_payload = verified(signed_tx, &settings, "invalid_notification_signature").await?;
    let tx = rules::transaction(&payload_json(&tx_payload)?, &settings.expect())?;
    if subscription_event {
        let Some(period) = &tx.subscription else {
            return Err(ApiError::new(
                400,
                "invalid_notification",
                "A subscription notification carries no subscription.",
            ));
        };
        return subscription_notification(&cx, &settings, &n, &tx, period).await;
    }
    // A REFUND that is prorated (`revocationType` REFUND_PRORATED: Apple refunded a share of the
    // price, by the consumption this backend reported or the time left in the period) takes back
    // only that share, counted apart so that a REFUND_REVERSED gives it back; any other REFUND
    // counts in full.
    if let (Some(refunded), "REFUND") = (tx.prorated_refund_cents(), n.notification_type) {
        let args = json!({
            "p_provider": "app_store",
            "p_provider_payment_id": tx.transaction_id,
            "p_event_id": n.notification_uuid,
            "p_refunded_cents": refunded,
            "p_amount_cents": tx.amount_cents,
            "p_event_type": "REFUND_PRORATED",
        })
        .to_string();
        db::rpc(&cx.cfg, Caller::Service, "refund_purchase_share", &args).await?;
        return Ok(respond::json(200, r#"{"received":true}"#.into()));
    }
    let args = json!({
        "p_provider": "app_store",
        "p_provider_payment_id": tx.transaction_id,
        "p_event_id": n.notification_uuid,
        "p_event_type": n.notification_type,
    })
    .to_string();
    db::rpc(&cx.cfg, Caller::Service, rpc, &args).await?;
    Ok(respond::json(200, r#"{"received":true}"#.into()))
}
