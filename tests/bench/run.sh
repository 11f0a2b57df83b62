#!/usr/bin/env bash
# `npm run bench`: builds the Worker, measures the bundle, starts a throwaway Postgres 15 +
# PostgREST 12 on loopback ports, runs tests/bench/bench.mjs (what each named crate adds to the
# wasm, from two names-kept builds: bundle.mjs; start-up, edge auth, jwt-simple ES256 against
# WebCrypto in a bench-only Worker: es256.mjs; throughput against PostgREST and a TypeScript
# postgrest-js Worker, get_balance and ledger pages at 100 and 1M ledger rows, generate,
# complete_job and a Stripe fulfilment against pgbench's floor, PostgREST's JWT cache, the
# sweepers at scale), prints a table, writes tests/bench/RESULTS.md and its SVG charts, and
# removes everything it started. About 25 minutes after the build on 2 busy cores (the two
# attribution builds take ~5 minutes each when their target dirs under target/ are cold; bounded
# by BENCH_TIMEOUT, 2400 s). BENCH_QUICK=1 for a shorter, noisier run; BENCH_FULL=1 for the
# sweepers at 100,000 users/holds; BENCH_SECTIONS=bundle,es256,hs256,startupsplit,fulfilment,... for
# parts (their markdown goes to .local/bench-sections.md); BENCH_SECTIONS=paired runs only the paired
# Rust/TS CPU per request, with BENCH_VARIANTS="label=dir,..." (other builds, or a JS Worker's
# index.mjs) loaded alongside and BENCH_PAIRED_ROUTES=404,401,balance,generate; BENCH_BUNDLE_SKIP_BUILD=1
# reuses functions/build-lto and functions/build-no-lto.
set -euo pipefail
source "$(dirname "$0")/../stack/lib.sh"
cd "$ROOT"
bench_started=$(date +%s)
mkdir -p .local

bash tests/stack/install.sh
# BENCH_SKIP_BUILD=1 measures the build already in functions/build (iterating on the bench itself).
[ "${BENCH_SKIP_BUILD:-}" = 1 ] || bash tests/stack/build.sh

tmp=$(mktemp -d "${TMPDIR:-/tmp}/credits-bench.XXXXXX")
chmod 755 "$tmp"
cleanup() {
  trap - EXIT INT TERM
  set +e
  [ -n "${BENCH_PID:-}" ] && kill "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID" 2>/dev/null
  [ -n "${POSTGREST_PID:-}" ] && kill "$POSTGREST_PID" 2>/dev/null && wait "$POSTGREST_PID" 2>/dev/null
  pg_stop "$tmp/pg"
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# The working tree is shared: measure a snapshot of this build, not whatever is rebuilt meanwhile.
cp -r functions/build "$tmp/build"
# BENCH_BEFORE_BUILD=dir: an earlier build (index.js + index_bg.wasm) measured side by side.
if [ -n "${BENCH_BEFORE_BUILD:-}" ]; then cp -r "$BENCH_BEFORE_BUILD" "$tmp/before"; export BENCH_BEFORE_BUILD="$tmp/before"; fi

# --- 1. bundle size ------------------------------------------------------------------------------
step "Bundle size (wrangler deploy --dry-run of this build, no upload)"
cat >"$tmp/wrangler.toml" <<EOF
name = "credits-edge-bench"
main = "$tmp/build/index.js"
compatibility_date = "2026-04-01"
send_metrics = false
EOF
set +e
( cd "$tmp" && WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false WRANGLER_HIDE_BANNER=true \
    "$ROOT/node_modules/.bin/wrangler" deploy --dry-run --outdir "$tmp/deploy" ) >"$tmp/deploy.log" 2>&1
set -e
upload=$(grep -E 'Total Upload' "$tmp/deploy.log" | head -1 || true)
[ -n "$upload" ] || { tail -n 20 "$tmp/deploy.log" >&2; fail "wrangler deploy --dry-run did not report a size"; }
echo "    $upload" >&2
wasm="$tmp/build/index_bg.wasm"; js="$tmp/build/index.js"
node tests/bench/wasm-size.mjs "$wasm" --json >"$tmp/wasm-size.json"
node -e '
const fs = require("fs"), zlib = require("zlib");
const [wasm, js, line, analysis, out] = process.argv.slice(1);
const gz = (f) => zlib.gzipSync(fs.readFileSync(f), { level: 9 }).length;
const a = JSON.parse(fs.readFileSync(analysis, "utf8"));
const m = line.match(/gzip:\s*([\d.]+)\s*KiB/);
fs.writeFileSync(out, JSON.stringify({
  wasmBytes: fs.statSync(wasm).size, wasmGzip: gz(wasm), jsBytes: fs.statSync(js).size, jsGzip: gz(js),
  wranglerLine: line.trim(), wranglerGzipKiB: m ? Number(m[1]) : null, sections: a.sections,
}));' "$wasm" "$js" "$upload" "$tmp/wasm-size.json" "$tmp/size.json"
done_step

# --- the TypeScript comparison Worker --------------------------------------------------------------
# Built twice: the minimal twin (`TS`), and the twin with the Rust Worker's rules (`TS, same rules`).
for same in false true; do
  node_modules/.bin/esbuild tests/bench/js-worker.ts --bundle --format=esm --platform=browser --target=es2022 \
    --minify --log-level=warning --define:SAME_RULES=$same \
    --outfile="$tmp/js-worker$([ $same = true ] && echo -same)/index.mjs"
done

# --- the stack ------------------------------------------------------------------------------------
step "Throwaway Postgres 15 + PostgREST 12 on loopback"
pgport=$(free_port); pgrstport=$(free_port)
PG_FSYNC=off pg_init "$tmp/pg" "$pgport"
pg_apply "$pgport" 2>/dev/null
postgrest_start "$pgport" "$pgrstport" "$tmp/postgrest.log"
done_step

export E2E_POSTGREST_URL="http://127.0.0.1:$pgrstport" E2E_PG_PORT="$pgport" E2E_JWT_SECRET="$LOCAL_JWT_SECRET"
export E2E_SUPABASE_URL="http://127.0.0.1:54321"
export BENCH_POSTGREST_PID="$POSTGREST_PID" PGRST_JWT_SECRET="${PGRST_JWT_SECRET:-$LOCAL_JWT_SECRET}"
export BENCH_BUILD_DIR="$tmp/build" BENCH_JS_WORKER="$tmp/js-worker/index.mjs" BENCH_JS_WORKER_SAME="$tmp/js-worker-same/index.mjs" BENCH_SIZE_JSON="$tmp/size.json" BENCH_TMP="$tmp"
# Hard bound on the measurements themselves.
timeout "${BENCH_TIMEOUT:-2400}" node "tests/bench/$([ "${BENCH_PROFILE:-}" = 1 ] && echo profile || echo bench).mjs" &
BENCH_PID=$!
set +e; wait "$BENCH_PID"; rc=$?; set -e
BENCH_PID=
[ "$rc" = 0 ] || fail "bench.mjs exited with $rc"
printf 'bench done in %ss (build included); results in tests/bench/RESULTS.md\n' "$(( $(date +%s) - bench_started ))" >&2
