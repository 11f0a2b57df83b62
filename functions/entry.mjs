// The Worker's module entry: functions/build/index.js is this file bundled with worker-build's
// output (tests/stack/build.sh and wrangler.toml's build command run functions/entry.sh).
//
// worker-build's own entry exports its `Entrypoint` class behind a Proxy: on every request the
// runtime constructs the class through a `construct` trap, which wraps the instance in a second
// Proxy, whose `get` trap wraps `fetch` in a third Proxy with an async `apply`. Measured in
// workerd (tests/bench, section `paired`), that costs about 0.04 ms of CPU per request, 10-15% of a
// 404's (ARCHITECTURE.md, "Performance"). This plain object calls the same generated handlers
// directly, with what the Proxies are for kept:
// - a trap or an abort in wasm (a Rust panic aborts) is caught by wasm-bindgen's glue around every
//   call into wasm, which marks the instance terminated and re-creates it at the next call
//   (worker-build passes `--experimental-reset-state-function --force-enable-abort-handler`);
// - the shim's flag (`criticalError`, set by workers-rs' panic hook, or below for a
//   `WebAssembly.RuntimeError`) sends the next request through the shim's own path, which re-creates
//   the instance before handling it, exactly as before.
import Shim from './worker.js';

const state = globalThis.__worker_init_state;

function critical(e) {
  if (e instanceof WebAssembly.RuntimeError) {
    console.error('Critical', e);
    state.criticalError = true;
  }
  throw e;
}

const handlers = {};
// The handlers workers-rs can export (`#[event(...)]`); each generated method reads `this.env` and
// `this.ctx`, as on the class.
for (const name of ['fetch', 'scheduled', 'queue', 'email', 'tail']) {
  const handler = Shim.prototype[name];
  if (typeof handler !== 'function') continue;
  handlers[name] = function (arg, env, ctx) {
    if (state.criticalError) return new Shim(ctx, env)[name](arg);
    try {
      return Promise.resolve(handler.call({ env, ctx }, arg)).then(undefined, critical);
    } catch (e) {
      return critical(e);
    }
  };
}

export default handlers;
