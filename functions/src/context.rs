//! Per-request context: the request, its bindings, the isolate's parsed config, route params.

use shared::config::Config;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen_futures::JsFuture;
use web_sys::Request;
use worker::Env;

thread_local! {
    /// Parsed once per isolate; bindings do not change during an isolate's life.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// Everything a handler gets.
pub struct Cx {
    pub req: Request,
    /// The request's headers, taken from it once.
    pub headers: web_sys::Headers,
    pub env: Env,
    pub cfg: Rc<Config>,
    /// Values of `{name}` segments of the matched route, in order.
    pub params: Vec<String>,
}

/// A string binding: a `[vars]` value or a secret (both are strings on `env`), read in this one
/// order everywhere. Blank counts as absent.
pub fn binding(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .ok()
        .or_else(|| env.secret(name).map(|v| v.to_string()).ok())
        .filter(|v| !v.trim().is_empty())
}

/// Returns the isolate's configuration, parsing the bindings on first use.
pub fn config(env: &Env) -> Result<Rc<Config>, String> {
    if let Some(cfg) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(cfg);
    }
    let cfg = Rc::new(Config::from_lookup(|name| binding(env, name))?);
    CONFIG.with(|c| *c.borrow_mut() = Some(cfg.clone()));
    Ok(cfg)
}

impl Cx {
    /// Reads the JSON body as text: content type, size cap, UTF-8, no NUL. Read it into its
    /// derived type with `shared::input::body`.
    pub async fn body_text(&mut self) -> Result<String, shared::ApiError> {
        shared::input::require_json(self.header("content-type").as_deref())?;
        shared::input::body_text(self.body_bytes(shared::input::MAX_BODY_BYTES).await?)
    }

    /// The raw request body, at most `max` bytes. A declared `Content-Length` over the cap is
    /// refused before reading; a body without one (chunked) is read chunk by chunk and the read is
    /// cancelled as soon as it passes the cap, so an oversized body is never held whole, neither in
    /// JavaScript nor in wasm memory (which never shrinks once grown).
    pub async fn body_bytes(&mut self, max: usize) -> Result<Vec<u8>, shared::ApiError> {
        // A Content-Length that does not parse frames nothing: the body is read chunk by chunk.
        let declared = self.header("content-length").and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > max) {
            return Err(shared::input::too_large_for(max));
        }
        let unreadable = || shared::ApiError::new(400, "invalid_json", "The body could not be read.");
        // A body framed by a declared Content-Length (no Transfer-Encoding) is at most that long:
        // read it in one step, as the TypeScript Worker's `req.text()` does (the chunk-by-chunk
        // read below cost ~0.1 ms of CPU per request more; ARCHITECTURE.md, Performance).
        if declared.is_some() && self.header("transfer-encoding").is_none() {
            let promise = self.req.array_buffer().map_err(|_| unreadable())?;
            let buffer = JsFuture::from(promise).await.map_err(|_| unreadable())?;
            let bytes = js_sys::Uint8Array::new(&buffer);
            if bytes.length() as usize > max {
                return Err(shared::input::too_large_for(max));
            }
            return Ok(bytes.to_vec());
        }
        let Some(stream) = self.req.body() else { return Ok(Vec::new()) };
        read_capped(&stream, max).await.map_err(|e| match e {
            Some(()) => shared::input::too_large_for(max),
            None => unreadable(),
        })
    }

    /// A request header's value, if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).ok().flatten()
    }

    /// A binding that only some handlers need (payment and pipeline secrets, URLs). A missing
    /// one is a deployment fault: logged by name, answered as a generic 500.
    pub fn setting(&self, name: &str) -> Result<String, shared::ApiError> {
        binding(&self.env, name)
            .ok_or_else(|| shared::ApiError::internal().because(format!("binding {name} is not set")))
    }
}

/// Reads a body stream chunk by chunk, at most `max` bytes. The read is cancelled as soon as the
/// body passes the cap, so an oversized body (a client's, or an upstream answer such as a JWKS) is
/// never held whole, neither in JavaScript nor in wasm memory. `Err(None)` means the stream failed,
/// `Err(Some(()))` that it was over the cap.
pub async fn read_capped(stream: &web_sys::ReadableStream, max: usize) -> Result<Vec<u8>, Option<()>> {
    let reader = stream.get_reader();
    let read = js_sys::Function::from(js_sys::Reflect::get(&reader, &"read".into()).map_err(|_| None)?);
    let mut out = Vec::new();
    loop {
        let promise = js_sys::Promise::from(read.call0(&reader).map_err(|_| None)?);
        let step = JsFuture::from(promise).await.map_err(|_| None)?;
        if js_sys::Reflect::get(&step, &"done".into()).ok().and_then(|d| d.as_bool()) == Some(true) {
            return Ok(out);
        }
        let chunk = js_sys::Uint8Array::new(&js_sys::Reflect::get(&step, &"value".into()).map_err(|_| None)?);
        if out.len() + chunk.length() as usize > max {
            if let Ok(cancel) = js_sys::Reflect::get(&reader, &"cancel".into()) {
                let _ = js_sys::Function::from(cancel).call0(&reader);
            }
            return Err(Some(()));
        }
        let at = out.len();
        out.resize(at + chunk.length() as usize, 0);
        chunk.copy_to(&mut out[at..]);
    }
}
