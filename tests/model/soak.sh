#!/usr/bin/env bash
# The model soak (`npm run soak -- --histories 100000`): its own throwaway Postgres cluster with the
# migrations applied (as tests/run.sh makes one), then tests/model/run.mjs with the arguments given
# (default 100,000 histories in batches of 200; a mismatch ends its batch), then teardown. Prints histories run, operations
# and provider events applied, and mismatches (each with its seed and shrunk history).
set -euo pipefail
source "$(dirname "$0")/../stack/lib.sh"
cd "$ROOT"
mkdir -p .local
bash tests/stack/install.sh
tmp=$(mktemp -d "${TMPDIR:-/tmp}/credits-soak.XXXXXX")
chmod 755 "$tmp"
trap 'pg_stop "$tmp/pg"; rm -rf "$tmp"' EXIT INT TERM
step "Soak: throwaway cluster, migrations, model histories"
port=$(free_port)
PG_FSYNC=off pg_init "$tmp/pg" "$port"
pg_apply "$port"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--histories 100000)
printf '%s\n' "${args[@]}" | grep -qx -- '--batch' || args+=(--batch 200)
MODEL_PG_PORT="$port" node tests/model/run.mjs "${args[@]}"
done_step
