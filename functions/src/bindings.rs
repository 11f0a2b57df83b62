//! Calling a binding's method (queue producer, rate limiter) straight through JavaScript.
//!
//! `worker`'s wrappers for these convert their arguments and answers with serde_wasm_bindgen,
//! which links serde's deserializer and float formatting into the bundle for one boolean; a
//! binding is a JS object, so its method is called as one.

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

/// `await env[binding][method](...args)`; `Err` names what failed, for the log line.
pub async fn call(env: &Env, binding: &str, method: &str, args: &[JsValue]) -> Result<JsValue, &'static str> {
    let target = Reflect::get(env, &binding.into()).ok().filter(|b| !b.is_undefined()).ok_or("binding_missing")?;
    let f: Function = Reflect::get(&target, &method.into()).ok().and_then(|f| f.dyn_into().ok()).ok_or("method_missing")?;
    let ret = match args {
        [] => f.call0(&target),
        [a] => f.call1(&target, a),
        [a, b, ..] => f.call2(&target, a, b),
    }
    .map_err(|_| "call_failed")?;
    JsFuture::from(Promise::resolve(&ret)).await.map_err(|_| "rejected")
}

/// A JS object from JSON text written by `shared::json::Obj`.
pub fn object(json: &str) -> JsValue {
    js_sys::JSON::parse(json).unwrap_or(JsValue::UNDEFINED)
}
