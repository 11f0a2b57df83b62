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

use worker::{event, Context, Env, Request, Response, Result, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Ok(routes::handle(req, env).await)
}

/// The cron trigger (`[triggers]` in wrangler.toml): the database sweepers.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    sweep::run(&env).await;
}
