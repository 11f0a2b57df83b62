//! The scheduled sweepers, run by the cron trigger: holds past their expiry are released (and
//! their jobs failed), expired credits are taken out of balances, and expired idempotency records
//! and long-expired unclaimed drafts are deleted. Job retries need no sweeper: a failed job goes
//! back to QUEUED with its `next_retry_at`, and `claim_next_jobs` hands it out once that passes.
//! Each sweeper is one service-role RPC; one failing does not stop the others.

use crate::context;
use crate::db::{self, Caller};
use crate::log;
use worker::Env;

const SWEEPERS: &[(&str, &str)] =
    &[("expire_stale_holds", "{}"), ("expire_credits", r#"{"p_max_users":1000}"#), ("cleanup_expired", "{}")];

pub async fn run(env: &Env) {
    let cfg = match context::config(env) {
        Ok(cfg) => cfg,
        Err(why) => {
            log::error(log::event("config_error").str("error", &why));
            return;
        }
    };
    for (rpc, args) in SWEEPERS {
        match db::rpc(&cfg, Caller::Service, rpc, args).await {
            Ok(result) => log::info(
                log::event("sweep")
                    .str("rpc", rpc)
                    .json("result", serde_json::from_str(&result).unwrap_or(result.into())),
            ),
            Err(e) => log::error(log::event("sweep_failed").str("rpc", rpc).str("code", &e.code)),
        }
    }
}
