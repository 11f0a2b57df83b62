//! The credits edge Worker.
//!
//! `#[event(fetch)]` does nothing but hand the request to the route table in [`routes`]; every
//! operation lives in its own module under [`handlers`] and calls one Postgres RPC through
//! PostgREST ([`db`]) with the caller's own token, so RLS and `auth.uid()` apply in the database.

mod appstore;
mod appstore_api;
mod auth;
mod bindings;
mod context;
mod crypto;
mod db;
mod handlers;
mod log;
mod respond;
mod routes;
mod storage;
mod stripe;
mod sweep;
mod webhooks;

use wasm_bindgen::JsValue;
use worker::{event, Context, Env, Result, ScheduleContext, ScheduledEvent};

/// Runs once per isolate, when the module is instantiated, before any request.
///
/// The executor of Rust futures (wasm-bindgen-futures, in js-sys) wakes its tasks with the global
/// `queueMicrotask` when there is one, else with `Promise.prototype.then`. In workerd each
/// `queueMicrotask` call goes through the runtime's own wrapper (a C++ binding that wraps the
/// callback), which the CPU profile showed as the biggest single cost of a request that awaits a
/// subrequest (tests/bench/profile.mjs; ARCHITECTURE.md, Performance). The executor reads which
/// to use once, when it is first used; so it is first used here with `queueMicrotask` hidden, and
/// the global is put back at once: nothing else sees the difference, and microtask order is
/// the same (both are microtasks).
#[wasm_bindgen::prelude::wasm_bindgen(start)]
fn start() {
    let global = js_sys::global();
    let key = JsValue::from_str("queueMicrotask");
    let Ok(saved) = js_sys::Reflect::get(&global, &key) else { return };
    let own = js_sys::Object::get_own_property_descriptor(&global, &key);
    if js_sys::Reflect::set(&global, &key, &JsValue::UNDEFINED) != Ok(true) {
        return;
    }
    // Creates the executor's queue now, while `queueMicrotask` is not a function.
    wasm_bindgen_futures::spawn_local(async {});
    if own.is_undefined() {
        let _ = js_sys::Reflect::delete_property(&global, &key);
    }
    if !js_sys::Reflect::get(&global, &key).is_ok_and(|f| f.is_function()) {
        let _ = js_sys::Reflect::set(&global, &key, &saved);
    }
}

/// Takes and answers the runtime's own `Request`/`Response` objects: converting them to and from
/// `worker::Request`/`worker::Response` costs a dozen wasm/JS crossings per request for nothing
/// the handlers use (ARCHITECTURE.md, Performance).
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, _ctx: Context) -> Result<web_sys::Response> {
    Ok(routes::handle(req, env).await)
}

/// The cron trigger (`[triggers]` in wrangler.toml): the database sweepers, then the webhook outbox.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    sweep::run(&env).await;
}
