//! The caller's consent to share consumption data with the App Store when they ask Apple for a
//! refund (`customerConsented` of "Send Consumption Information"; migrations/README.md, "App Store
//! consumption requests"). The app asks the user and stores the answer here; without a `true`
//! answer a consumption request of theirs is recorded but never answered (Apple: "If not, don't
//! respond to the CONSUMPTION_REQUEST notification").
//!
//! - `GET /v1/account/consumption-consent` -> `{"consented", "updated_at"}` (`false`, `null` until set).
//! - `PUT /v1/account/consumption-consent` `{"consented": true | false}` -> the same; idempotent by
//!   nature (no `Idempotency-Key`).

use crate::auth::{authenticate, Anonymous};
use crate::context::Cx;
use crate::db::{self, Caller};
use serde::Deserialize;
use serde_json::json;
use shared::ApiError;
use web_sys::Response;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentBody {
    consented: bool,
}

pub async fn get(cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "get_consumption_consent", "{}", 200).await
}

pub async fn put(mut cx: Cx) -> Result<Response, ApiError> {
    let user = authenticate(&cx, Anonymous::Allowed).await?;
    let text = cx.body_text().await?;
    let body: ConsentBody = shared::input::body(&text)?;
    let args = json!({ "p_consented": body.consented }).to_string();
    db::rpc_response(&cx.cfg, Caller::User(&user.token), "set_consumption_consent", &args, 200).await
}
