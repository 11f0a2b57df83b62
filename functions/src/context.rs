//! Per-request context: the request, its bindings, the isolate's parsed config, route params.

use shared::config::Config;
use std::cell::RefCell;
use std::rc::Rc;
use worker::{Env, Request};

thread_local! {
    /// Parsed once per isolate; bindings do not change during an isolate's life.
    static CONFIG: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
}

/// Everything a handler gets.
pub struct Cx {
    pub req: Request,
    pub env: Env,
    pub cfg: Rc<Config>,
    /// Values of `{name}` segments of the matched route, in order.
    pub params: Vec<String>,
}

/// Returns the isolate's configuration, parsing the bindings on first use.
pub fn config(env: &Env) -> Result<Rc<Config>, String> {
    if let Some(cfg) = CONFIG.with(|c| c.borrow().clone()) {
        return Ok(cfg);
    }
    let cfg = Rc::new(Config::from_lookup(|name| {
        env.var(name).map(|v| v.to_string()).ok().or_else(|| env.secret(name).map(|v| v.to_string()).ok())
    })?);
    CONFIG.with(|c| *c.borrow_mut() = Some(cfg.clone()));
    Ok(cfg)
}
