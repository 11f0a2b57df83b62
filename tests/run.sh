#!/usr/bin/env bash
# Every test, one command (`npm test`): installs what is missing, then runs
#   0. lint:        cargo fmt --check, clippy -D warnings (native and wasm32), no Rust line over
#                   rustfmt.toml's max_width (rustfmt leaves comments and macro bodies unwrapped)
#   1. unit:        native Rust unit tests of the workspace (cargo test)
#   2. database:    migrations applied by the Supabase CLI (`supabase db push`), then pgTAP suites
#                   (tests/db/*.sql) on a throwaway Postgres 15 cluster
#   2b. db lint:    `supabase db lint` (plpgsql_check over every function), any warning fails
#   2c. model:      random money histories (tests/model) through the real RPCs on that cluster,
#                   compared with the reference model; MODEL_HISTORIES (default 2000), MODEL_SEED,
#                   MODEL_DEBT_HISTORIES (default 300: debt repaid, then given back)
#   3. end-to-end:  node:test suites (tests/e2e/*.test.mjs) driving the built Worker in workerd
#                   against the real PostgREST 12 on that cluster
#   4. client:      the typed client's suite (clients/typescript/test: its generated types current,
#                   tsc, calls and retries against the same stack) and the demo page clicked through
#                   in Debian's Chromium (examples/web/test, screenshots in .local/test-logs/web-*.png)
# and tears everything down. Prints the count per layer and a closing `N passed, N failed` line.
# For quick iterations, `bash tests/run.sh --e2e tests/e2e/x.test.mjs ...` runs only the build, the
# database set-up and those end-to-end files.
set -euo pipefail
only_e2e=()
if [ "${1:-}" = "--e2e" ]; then shift; only_e2e=("$@"); fi
source "$(dirname "$0")/stack/lib.sh"
cd "$ROOT"
run_started=$(date +%s)
mkdir -p .local
logs="$ROOT/.local/test-logs"; rm -rf "$logs"; mkdir -p "$logs"

bash tests/stack/install.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/credits-test.XXXXXX")
chmod 755 "$tmp"
cleanup() {
  [ -n "${POSTGREST_PID:-}" ] && kill "$POSTGREST_PID" 2>/dev/null
  pg_stop "$tmp/pg"
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

passed=0; failed=0
count() { # count LAYER PASSED FAILED
  printf '    %s: %s passed, %s failed\n' "$1" "$2" "$3" >&2
  passed=$((passed + $2)); failed=$((failed + $3)); eval "layer_$1=\"$2 passed, $3 failed\""
}

# --- 0. lint -----------------------------------------------------------------------------------
layer_lint="skipped"; layer_unit="skipped"; layer_deploy="skipped"; layer_database="skipped"; layer_dblint="skipped"; layer_client="skipped"
if [ ${#only_e2e[@]} = 0 ]; then
step "Lint (cargo fmt --check, clippy -D warnings native and wasm32, line width)"
lint_ok=0; lint_bad=0
lint() { # lint NAME COMMAND...
  local name=$1; shift
  if "$@" >>"$logs/lint.log" 2>&1; then lint_ok=$((lint_ok + 1)); else lint_bad=$((lint_bad + 1)); echo "    lint failed: $name" >&2; fi
}
width=$(sed -nE 's/^max_width *= *([0-9]+).*/\1/p' rustfmt.toml); width=${width:-100}
lint "cargo fmt --check" cargo fmt --all --check
lint "clippy (native)" cargo clippy --workspace --all-targets --quiet -- -D warnings
lint "clippy (wasm32)" cargo clippy --workspace --all-targets --quiet --target wasm32-unknown-unknown -- -D warnings
lint "lines <= $width columns" bash -c "find functions shared -name '*.rs' -print0 | xargs -0 awk -v w=$width 'length > w { print FILENAME \":\" FNR; bad = 1 } END { exit bad }'"
[ "$lint_bad" = 0 ] || tail -n 30 "$logs/lint.log" >&2
count lint "$lint_ok" "$lint_bad"; done_step
fi

# --- 1. unit -----------------------------------------------------------------------------------
if [ ${#only_e2e[@]} = 0 ]; then
step "Unit tests (cargo test, native)"
set +e; cargo test --workspace --quiet 2>&1 | tee "$logs/unit.log" | grep -E '^test result|panicked|FAILED|error(\[|:)' >&2; rc=${PIPESTATUS[0]}; set -e
p=$(grep -oE '[0-9]+ passed' "$logs/unit.log" | awk '{s+=$1} END {print s+0}' || true)
f=$(grep -oE '[0-9]+ failed' "$logs/unit.log" | awk '{s+=$1} END {print s+0}' || true)
[ "$rc" = 0 ] || [ "$f" -gt 0 ] || f=1
count unit "$p" "$f"; done_step
fi

# --- build -------------------------------------------------------------------------------------
bash tests/stack/build.sh

# --- deploy check: the deployable wrangler.toml builds and packages (no upload) ------------------
if [ ${#only_e2e[@]} = 0 ]; then
step "wrangler deploy --dry-run (the deployable config, with its [build] command)"
set +e
( export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true
  export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)" WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt" ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
  node_modules/.bin/wrangler deploy --dry-run --outdir "$tmp/deploy" ) >"$logs/deploy.log" 2>&1; rc=$?
set -e
grep -E 'Total Upload' "$logs/deploy.log" | sed 's/^/    /' >&2 || true
if [ "$rc" = 0 ] && [ -f "$tmp/deploy/index.js" ]; then count deploy 1 0; else tail -n 20 "$logs/deploy.log" >&2; count deploy 0 1; fi
done_step
fi

# --- 2. database -------------------------------------------------------------------------------
step "Database: throwaway cluster, Supabase compatibility, supabase db push (twice), pgTAP"
pgport=$(free_port)
PG_FSYNC=off pg_init "$tmp/pg" "$pgport"
pg_apply "$pgport" 2>&1 | tee "$logs/apply1.log" >&2
pg_apply "$pgport" 2>"$logs/apply2.log"
grep -q 'applied now: 0' "$logs/apply2.log" || fail "re-applying the migrations was not a no-op; read $logs/apply2.log"
echo "    re-apply: nothing to do (as expected)" >&2
pg_psql "$pgport" -c "create extension if not exists pgtap with schema extensions" >/dev/null
if [ ${#only_e2e[@]} = 0 ]; then
set +e
pg_prove -h 127.0.0.1 -p "$pgport" -U postgres -d postgres --ext .sql -r tests/db >"$logs/db.log" 2>&1; rc=$?
set -e
grep -vE '^\s*$' "$logs/db.log" | grep -E 'Failed|not ok|Result|Tests=|\.sql \.' | tail -n 30 >&2
p=$(grep -oE 'Tests=[0-9]+' "$logs/db.log" | grep -oE '[0-9]+' || true); p=${p:-0}
f=$(grep -oE 'Failed [0-9]+/[0-9]+ subtests' "$logs/db.log" | awk '{split($2,a,"/"); s+=a[1]} END {print s+0}' || true)
[ "$rc" = 0 ] || [ "$f" -gt 0 ] || f=1
count database "$((p - f))" "$f"
fi
done_step

# --- 2b. dblint: supabase db lint (plpgsql_check) over every function; any warning fails ------
if [ ${#only_e2e[@]} = 0 ]; then
step "supabase db lint --level warning --fail-on warning (plpgsql_check over public and app)"
if pg_lint "$pgport" >"$logs/dblint.log" 2>&1; then
  tail -n 1 "$logs/dblint.log" | sed 's/^/    /' >&2; count dblint 1 0
else
  tail -n 60 "$logs/dblint.log" >&2; count dblint 0 1
fi
done_step
fi

# --- 2c. model ---------------------------------------------------------------------------------
# Before PostgREST connects: the model copies the freshly migrated `postgres` database as a template
# and runs its histories in copies of it, so nothing it writes reaches the end-to-end layer.
layer_model="skipped"
if [ ${#only_e2e[@]} = 0 ]; then
step "Model: ${MODEL_HISTORIES:-2000} random money histories (+${MODEL_DEBT_HISTORIES:-300} of debt repaid, then given back) through the real RPCs, against the reference model"
set +e
node --test tests/model/model.test.mjs tests/model/admin.test.mjs tests/model/subscriptions.test.mjs tests/model/invites.test.mjs >"$logs/model-unit.log" 2>&1; rc_unit=$?
mp=$(grep -oE '^# pass [0-9]+' "$logs/model-unit.log" | grep -oE '[0-9]+$' || true); mp=${mp:-0}
mf=$(grep -oE '^# fail [0-9]+' "$logs/model-unit.log" | grep -oE '[0-9]+$' || true); mf=${mf:-0}
if [ "$rc_unit" != 0 ] && [ "$mf" = 0 ]; then mf=1; fi
[ "$mf" = 0 ] || grep -E '^not ok' "$logs/model-unit.log" | sed 's/^/    /' >&2
echo "    the model's own cases (tests/model/model, admin, subscriptions and invites .test.mjs): $mp passed, $mf failed" >&2
MODEL_PG_PORT="$pgport" node tests/model/run.mjs --histories "${MODEL_HISTORIES:-2000}" --debt "${MODEL_DEBT_HISTORIES:-300}" >"$logs/model.log" 2>&1; rc=$?
set -e
grep -E '^(MISMATCH|minimal history|disagreement|model against|histories run)' "$logs/model.log" | cut -c1-2000 | sed 's/^/    /' >&2 || true
p=$(tail -n 1 "$logs/model.log" | grep -oE '^[0-9]+ passed' | grep -oE '[0-9]+' || true); p=${p:-0}
f=$(tail -n 1 "$logs/model.log" | grep -oE '[0-9]+ failed' | grep -oE '[0-9]+' || true); f=${f:-0}
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; tail -n 20 "$logs/model.log" >&2; fi
count model "$((p + mp))" "$((f + mf))"; done_step
fi

# --- 3. end-to-end -----------------------------------------------------------------------------
step "End-to-end: the Worker in workerd -> PostgREST 12 -> Postgres 15"
pgrstport=$(free_port)
postgrest_start "$pgport" "$pgrstport" "$logs/postgrest.log"
export E2E_POSTGREST_URL="http://127.0.0.1:$pgrstport" E2E_PG_PORT="$pgport" E2E_JWT_SECRET="$LOCAL_JWT_SECRET"
export E2E_SUPABASE_URL="http://127.0.0.1:54321"
rm -f .local/e2e-responses.jsonl
set +e
if [ ${#only_e2e[@]} = 0 ]; then e2e_files=(tests/e2e/ tests/model/worker.test.mjs); else e2e_files=("${only_e2e[@]}"); fi
node --test --test-concurrency=1 --test-reporter=spec "${e2e_files[@]}" >"$logs/e2e.log" 2>&1; rc=$?
set -e
grep -E '^\s*(✖|not ok)|^ℹ (tests|pass|fail)' "$logs/e2e.log" >&2 || true
p=$(grep -oE '^ℹ pass [0-9]+' "$logs/e2e.log" | grep -oE '[0-9]+$' || true); p=${p:-0}
f=$(grep -oE '^ℹ fail [0-9]+' "$logs/e2e.log" | grep -oE '[0-9]+$' || true); f=${f:-0}
if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; tail -n 40 "$logs/e2e.log" >&2; fi
[ "$f" = 0 ] || sed -n '/✖ failing tests/,$p' "$logs/e2e.log" | head -n 80 >&2
count e2e "$p" "$f"; done_step

# --- 4. client and demo ------------------------------------------------------------------------
# node:test files, counted like the end-to-end layer; `--e2e FILES` may name these files too.
run_node_tests() { # run_node_tests LAYER LOG FILES...
  local layer=$1 log=$2; shift 2
  set +e
  node --test --test-concurrency=1 --test-reporter=spec "$@" >"$log" 2>&1; local rc=$?
  set -e
  grep -E '^\s*(✖|not ok)|^ℹ (tests|pass|fail)' "$log" >&2 || true
  local p f
  p=$(grep -oE '^ℹ pass [0-9]+' "$log" | grep -oE '[0-9]+$' || true); p=${p:-0}
  f=$(grep -oE '^ℹ fail [0-9]+' "$log" | grep -oE '[0-9]+$' || true); f=${f:-0}
  if [ "$rc" != 0 ] && [ "$f" = 0 ]; then f=1; tail -n 40 "$log" >&2; fi
  [ "$f" = 0 ] || sed -n '/✖ failing tests/,$p' "$log" | head -n 80 >&2
  count "$layer" "$p" "$f"
}
if [ ${#only_e2e[@]} = 0 ]; then
step "Client and demo: the typed client against the stack; the demo page in Chromium (CORS, pipeline, Checkout)"
run_node_tests client "$logs/client.log" clients/typescript/test/ examples/web/test/
done_step
fi

printf '\nlayers: lint %s; unit %s; deploy check %s; database %s; db lint %s; model %s; end-to-end %s; client and demo %s. Logs in .local/test-logs/. Total %ss.\n' \
  "$layer_lint" "$layer_unit" "$layer_deploy" "$layer_database" "$layer_dblint" "$layer_model" "$layer_e2e" "$layer_client" "$(( $(date +%s) - run_started ))"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
