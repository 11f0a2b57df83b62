//! Calling a binding's method (queue producer, rate limiter) straight through JavaScript.
//!
//! `worker`'s wrappers for these convert their arguments and answers with serde_wasm_bindgen,
//! which links serde's deserializer and float formatting into the bundle for one boolean; a
//! binding is a JS object, so its method is called as one.

use js_sys::{Array, Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use worker::Env;

/// `await env[binding][method](...args)`; `Err` names what failed, for the log line.
pub async fn call(env: &Env, binding: &str, method: &str, args: &[JsValue]) -> Result<JsValue, &'static str> {
    call_raw(env, binding, method, args).await.map_err(|e| match e.as_string().as_deref() {
        Some("binding_missing") => "binding_missing",
        Some("method_missing") => "method_missing",
        _ => "rejected",
    })
}

/// [`call`], failing with what was thrown or rejected (a string for a missing binding or method).
pub async fn call_raw(env: &Env, binding: &str, method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let target = Reflect::get(env, &binding.into())
        .ok()
        .filter(|b| !b.is_undefined())
        .ok_or_else(|| JsValue::from_str("binding_missing"))?;
    let f: Function = Reflect::get(&target, &method.into())
        .ok()
        .and_then(|f| f.dyn_into().ok())
        .ok_or_else(|| JsValue::from_str("method_missing"))?;
    // Every argument is passed, however many there are.
    let list: Array = args.iter().collect();
    let ret = f.apply(&target, &list)?;
    JsFuture::from(Promise::resolve(&ret)).await
}

/// A JS object from a JSON value (through its text: one crossing, no serde-wasm-bindgen).
pub fn object(json: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&json.to_string()).unwrap_or(JsValue::UNDEFINED)
}
