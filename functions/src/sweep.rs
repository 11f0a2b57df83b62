//! The scheduled sweepers, run by the cron trigger: holds past their expiry are released (and
//! their jobs failed), expired credits are taken out of balances, and expired idempotency records
//! and long-expired unclaimed drafts are deleted. Job retries need no sweeper: a failed job goes
//! back to QUEUED with its `next_retry_at`, and `claim_next_jobs` hands it out once that passes.
//! Each sweeper is a service-role RPC that works in small batches, never waits for a row lock a
//! user request holds, and answers `"more": true` while work is left; it is called again until it
//! answers otherwise, at most `MAX_BATCHES` times a run (the next run, 5 minutes later, goes on).
//! One sweeper failing does not stop the others. Then the R2 objects queued in
//! `storage_deletions` are deleted (`storage::drain`), the webhook outbox is delivered
//! (`crate::webhooks`), and last the App Store consumption requests still due are answered
//! (`crate::appstore_api`).

use crate::context;
use crate::db::{self, Caller};
use crate::log;
use worker::Env;

const SWEEPERS: &[(&str, &str)] =
    &[("expire_stale_holds", "{}"), ("expire_credits", r#"{"p_max_users":1000}"#), ("cleanup_expired", "{}")];

/// Batches of one sweeper per run: bounds a run's subrequests and wall time.
const MAX_BATCHES: usize = 20;

/// Whether a sweeper's answer says that work is left and this batch made progress (a batch that
/// only skipped rows busy with user requests is not repeated at once; the next run goes on).
fn more_left(result: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(result) else {
        return false;
    };
    let more = v.get("more").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let progress = v
        .as_object()
        .is_some_and(|o| o.iter().any(|(k, n)| k != "skipped" && k != "more" && n.as_i64().is_some_and(|n| n > 0)));
    more && progress
}

pub async fn run(env: &Env) {
    let cfg = match context::config(env) {
        Ok(cfg) => cfg,
        Err(why) => {
            log::error(log::event("config_error").str("error", &why));
            return;
        }
    };
    for (rpc, args) in SWEEPERS {
        for batch in 1..=MAX_BATCHES {
            match db::rpc(&cfg, Caller::Service, rpc, args).await {
                Ok(result) => {
                    let more = more_left(&result);
                    log::info(
                        log::event("sweep")
                            .str("rpc", rpc)
                            .json("batch", batch.into())
                            .json("result", serde_json::from_str(&result).unwrap_or(result.into())),
                    );
                    if !more {
                        break;
                    }
                }
                Err(e) => {
                    log::error(log::event("sweep_failed").str("rpc", rpc).str("code", &e.code));
                    break;
                }
            }
        }
    }
    // Objects whose rows were deleted elsewhere (an `auth.users` row deleted in the dashboard, a
    // delete that failed after a request) are deleted from R2 here.
    crate::storage::drain(&cfg, env).await;
    crate::webhooks::run(env, &cfg).await;
    crate::appstore_api::run(env, &cfg).await;
}

#[cfg(test)]
mod tests {
    use super::more_left;

    #[test]
    fn reads_whether_a_sweeper_has_more_to_do() {
        assert!(more_left(r#"{"expired": 100, "skipped": 0, "more": true}"#));
        assert!(!more_left(r#"{"expired": 3, "skipped": 0, "more": false}"#));
        assert!(!more_left(r#"{"idempotency_keys": 0}"#));
        assert!(!more_left("not json"));
        // Only busy rows skipped: no progress, so not repeated at once.
        assert!(!more_left(r#"{"expired": 0, "skipped": 4, "more": true}"#));
    }
}
