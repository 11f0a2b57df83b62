#!/usr/bin/env bash
# Builds the Worker with worker-build into functions/build/, offline: the *_BIN overrides point
# worker-build at the cargo-installed wasm-bindgen and the npm esbuild and wasm-opt, so it never
# downloads anything (a "Downloading" line is treated as a failure). Pass --no-opt to skip wasm-opt
# (faster local iterations; tests and benchmarks use the optimised build).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT/functions"
log="$ROOT/.local/build.log"
mkdir -p "$ROOT/.local"
step "Building the Worker (wasm, release${1:+, $1}; about 2 minutes clean, 20 seconds incremental)"
export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"
if ! worker-build --release "$@" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  fail "worker-build; read $log"
fi
if grep -qi 'downloading' "$log"; then
  fail "worker-build tried to download a tool; read $log"
fi
# The module entry: worker-build's output wrapped in a plain object (functions/entry.mjs says why).
sh "$ROOT/functions/entry.sh" >>"$log" 2>&1 || { tail -n 30 "$log" >&2; fail "functions/entry.sh; read $log"; }
wasm=$(ls "$ROOT"/functions/build/*.wasm 2>/dev/null | head -1)
[ -n "$wasm" ] || fail "no wasm in functions/build; read $log"
printf '    %s: %s bytes, %s bytes gzip\n' "${wasm#$ROOT/}" "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)" >&2
done_step
