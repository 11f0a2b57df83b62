// The module entry's recovery path (functions/entry.mjs): after a critical error (a Rust panic, whose
// hook sets the shim's `criticalError` flag, or a wasm trap), the next request goes through
// worker-build's own path, which re-creates the wasm instance ("Reinitializing Wasm application")
// before handling it, and later requests are answered without another re-creation.
//
// The real build (functions/build: entry + worker-build's shim + the wasm) runs in workerd under a
// test-only outer module that can raise the flag exactly as the panic hook does; nothing of the
// Worker is replaced. A panic cannot be caused from outside (no input panics), which is why the flag
// is raised directly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { localBindings, eventually, collectLines } from './harness.mjs';

const buildDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../functions/build');

const outer = `import api from './index.js';
export default {
  async fetch(req, env, ctx) {
    const { pathname } = new URL(req.url);
    const state = globalThis.__worker_init_state;
    if (pathname === '/__test/critical') { state.criticalError = true; return Response.json({ critical: true }); }
    if (pathname === '/__test/state') return Response.json({ critical: state.criticalError, instance: state.instanceId });
    return api.fetch(req, env, ctx);
  },
};`;

test('after a critical error the next request re-creates the instance and is answered; later ones too', async () => {
  const lines = [];
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: 0,
    modulesRoot: buildDir,
    modules: [
      { type: 'ESModule', path: path.join(buildDir, '__outer.mjs'), contents: outer },
      { type: 'ESModule', path: path.join(buildDir, 'index.js') },
      { type: 'CompiledWasm', path: path.join(buildDir, 'index_bg.wasm') },
    ],
    compatibilityDate: '2026-04-01',
    bindings: localBindings(),
    cf: false,
    handleRuntimeStdio: (stdout, stderr) => collectLines([stdout, stderr], lines),
  });
  try {
    const url = (await mf.ready).toString().replace(/\/$/, '');
    const get = async (p) => {
      const res = await fetch(url + p);
      return { status: res.status, body: await res.json() };
    };
    const before = await get('/v1/models');
    assert.equal(before.status, 200, JSON.stringify(before.body));
    const state0 = (await get('/__test/state')).body;
    assert.equal(state0.critical, false, 'the flag is down while nothing failed');

    assert.equal((await get('/__test/critical')).body.critical, true);
    const after = await get('/v1/models');
    assert.equal(after.status, 200, 'the request after the critical error is answered');
    assert.deepEqual(after.body, before.body, 'by a working instance');
    const state1 = (await get('/__test/state')).body;
    assert.equal(state1.critical, false, 'the shim cleared the flag');
    // The shim counts each re-creation; the count moved by 2 here, so only its growth is checked.
    assert.ok(state1.instance > state0.instance, `and made a new instance (${state0.instance} -> ${state1.instance})`);
    await eventually(() => lines.some((l) => l.includes('Reinitializing Wasm application')));

    // Later requests are answered without another re-creation (the flag stays down).
    for (let i = 0; i < 3; i++) assert.equal((await get('/nope')).status, 404);
    // Their access lines are out, so any later "Reinitializing" line would be too.
    await eventually(() => lines.filter((l) => l.includes('"route":"-"') && l.includes('"status":404')).length >= 3);
    assert.equal((await get('/__test/state')).body.instance, state1.instance);
    assert.equal(lines.filter((l) => l.includes('Reinitializing Wasm application')).length, 1);
  } finally {
    await mf.dispose();
  }
});
