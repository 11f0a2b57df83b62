//! The credits edge Worker.
//!
//! `#[event(fetch)]` does nothing but hand the request to the route table in [`routes`]; every
//! operation lives in its own module under [`handlers`] and calls one Postgres RPC through
//! PostgREST ([`db`]) with the caller's own token, so RLS and `auth.uid()` apply in the database.

mod appstore;
mod auth;
mod bindings;
mod context;
mod crypto;
mod db;
mod handlers;
mod log;
mod respond;
mod routes;
mod stripe;
mod sweep;
mod webhooks;

use worker::{event, Context, Env, Result, ScheduleContext, ScheduledEvent};

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
