#!/bin/sh
# Run after `worker-build --release` (in functions/): bundles functions/entry.mjs with worker-build's
# output into functions/build/index.js (why: entry.mjs). ESBUILD_BIN overrides the esbuild used.
set -eu
cd "$(dirname "$0")/build"
esbuild="${ESBUILD_BIN:-../../node_modules/.bin/esbuild}"
mv index.js worker.js
cp ../entry.mjs entry.mjs
"$esbuild" ./entry.mjs --bundle --format=esm --minify --log-level=warning \
  --external:./index_bg.wasm '--external:cloudflare:*' --outfile=index.js
rm entry.mjs worker.js
