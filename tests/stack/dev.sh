#!/usr/bin/env bash
# Sets up and runs the local stack (`npm run dev`): installs what is missing, builds the Worker,
# starts Postgres 15 (a cluster kept in .local/pg), applies the Supabase compatibility file and
# any new migration, starts PostgREST 12 and the Worker in workerd with the demo around it (the
# demo page, the Stripe stand-in's Checkout, the demo pipeline), and prints how to call it.
# Ctrl-C stops every process it started. Ports: DEV_PG_PORT (54322), DEV_POSTGREST_PORT (54323),
# DEV_WORKER_PORT (8787), DEV_WEB_PORT (8788, the demo page).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
started=$(date +%s)
mkdir -p .local
pgport=${DEV_PG_PORT:-54322}; pgrstport=${DEV_POSTGREST_PORT:-54323}; workerport=${DEV_WORKER_PORT:-8787}

bash tests/stack/install.sh
bash tests/stack/build.sh

cleanup() {
  trap - EXIT INT TERM
  set +e
  printf '\nStopping the local stack...\n' >&2
  [ -n "${WORKER_PID:-}" ] && kill "$WORKER_PID" 2>/dev/null && wait "$WORKER_PID" 2>/dev/null
  [ -n "${POSTGREST_PID:-}" ] && kill "$POSTGREST_PID" 2>/dev/null && wait "$POSTGREST_PID" 2>/dev/null
  pg_stop "$ROOT/.local/pg"
  echo "Stopped." >&2
}
trap cleanup EXIT INT TERM

step "Starting Postgres 15 on 127.0.0.1:$pgport (data in .local/pg)"
pg_init "$ROOT/.local/pg" "$pgport"
pg_apply "$pgport"
done_step

step "Starting PostgREST 12 on 127.0.0.1:$pgrstport (accepting the local HS256 secret and ES256 key)"
node tests/stack/keys.mjs "$ROOT/.local/keys" "$LOCAL_JWT_SECRET"
PGRST_JWT_SECRET=$(cat "$ROOT/.local/keys/postgrest-jwks.json") postgrest_start "$pgport" "$pgrstport" "$ROOT/.local/postgrest.log"
done_step

export E2E_POSTGREST_URL="http://127.0.0.1:$pgrstport" E2E_PG_PORT="$pgport" E2E_JWT_SECRET="$LOCAL_JWT_SECRET"
export E2E_SUPABASE_URL="${DEV_SUPABASE_URL:-http://127.0.0.1:54321}" DEV_WORKER_PORT="$workerport" DEV_STARTED="$started"
node tests/stack/dev-worker.mjs &
WORKER_PID=$!
wait "$WORKER_PID"
