// A CPU profile of a Worker under load, through workerd's inspector (Chrome DevTools protocol):
// where each Worker spends its CPU per request, Rust against the TypeScript twin, by function
// (self time). Run by hand after `npm run bench` has set up nothing: it needs the same stack, so
// it is started the way run.sh starts bench.mjs:
//   BENCH_PROFILE=1 BENCH_SKIP_BUILD=1 bash tests/bench/run.sh
// (run.sh runs this file instead of bench.mjs when BENCH_PROFILE=1). Prints the top functions.
import { Miniflare } from 'miniflare';
import http from 'node:http';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { localBindings, createUser, sql } from '../e2e/harness.mjs';

// BENCH_PROFILE_BUILD: another build to profile (e.g. one that keeps names: CARGO_PROFILE_RELEASE_STRIP=false).
const buildDir = process.env.BENCH_PROFILE_BUILD || process.env.BENCH_BUILD_DIR;
const only = process.env.BENCH_PROFILE_ROUTES ? process.env.BENCH_PROFILE_ROUTES.split(',') : null;
const TOP = Number(process.env.BENCH_PROFILE_TOP || 18);
const jsWorker = process.env.BENCH_JS_WORKER;
const MS = Number(process.env.BENCH_PROFILE_MS || 4000);

async function start(modules, modulesRoot, inspectorPort) {
  const mf = new Miniflare({ modules, modulesRoot, compatibilityDate: '2026-04-01', bindings: localBindings(), host: '127.0.0.1', port: 0, cf: false,
    inspectorPort, handleRuntimeStdio: (a, b) => { a.resume(); b.resume(); } });
  return { mf, url: (await mf.ready).toString().replace(/\/$/, '') };
}

async function cdp(port) {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
  const target = list.find((t) => !/miniflare|loopback/i.test(t.title)) ?? list[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((r, j) => { ws.once('open', r); ws.once('error', j); });
  let id = 0; const pending = new Map();
  ws.on('message', (m) => { const x = JSON.parse(m); if (x.id && pending.has(x.id)) { pending.get(x.id)(x); pending.delete(x.id); } });
  const send = (method, params = {}) => new Promise((r) => { const i = ++id; pending.set(i, r); ws.send(JSON.stringify({ id: i, method, params })); });
  return { send, close: () => ws.close() };
}

async function load(url, { method = 'GET', headers, body, concurrency = 8, durationMs }) {
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  let n = 0;
  const deadline = performance.now() + durationMs;
  const one = () => new Promise((resolve) => {
    const req = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname, method, headers: typeof headers === 'function' ? headers() : headers }, (res) => { res.resume(); res.on('end', () => { n++; resolve(); }); });
    req.on('error', resolve);
    req.end(body);
  });
  await Promise.all(Array.from({ length: concurrency }, async () => { while (performance.now() < deadline) await one(); }));
  agent.destroy();
  return n;
}

function summarize(profile, n) {
  const self = new Map();
  const byId = new Map(profile.nodes.map((x) => [x.id, x]));
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const dt = profile.timeDeltas[i] ?? 0;
    const f = node.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url ? path.basename(f.url) : ''}`.trim();
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  // Inclusive time (BENCH_PROFILE_INCLUSIVE=1): a sample counts for every function on its stack.
  if (process.env.BENCH_PROFILE_INCLUSIVE === '1') {
    const parent = new Map();
    for (const x of profile.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
    const incl = new Map();
    for (let i = 0; i < profile.samples.length; i++) {
      const dt = profile.timeDeltas[i] ?? 0;
      const seen = new Set();
      for (let id = profile.samples[i]; id !== undefined; id = parent.get(id)) {
        const f = byId.get(id).callFrame;
        const key = `${f.functionName || '(anonymous)'} ${f.url ? path.basename(f.url) : ''}`.trim();
        if (!seen.has(key)) { seen.add(key); incl.set(key, (incl.get(key) ?? 0) + dt); }
      }
    }
    for (const [k, v] of incl) self.set(`[incl] ${k}`, v);
  }
  // By kind: code in the wasm module, JavaScript of a module (the glue, the TS Worker), the
  // runtime's own (no URL: builtins, C++ bindings such as fetch or TextDecoder), GC, the rest.
  const kinds = new Map();
  for (const [k, v] of self) {
    if (k.startsWith('[incl]') || k === '(idle)' || k.includes('(root)')) continue;
    const kind = /wasm/.test(k) || /^\$/.test(k) ? 'wasm' : k === '(garbage collector)' ? 'gc' : k === '(program)' ? 'program'
      : /\.(m?js|ts)$/.test(k) ? 'module JS' : 'runtime';
    kinds.set(kind, (kinds.get(kind) ?? 0) + v);
  }
  const total = [...self.entries()].filter(([k]) => !k.startsWith('[incl]')).filter(([k]) => k !== '(idle)').reduce((a, [, v]) => a + v, 0);
  const top = [...self.entries()].filter(([k]) => k !== '(idle)' && !k.includes('(root)')).sort((a, b) => b[1] - a[1]).slice(0, TOP);
  return { totalMsPerReq: total / 1000 / n, kinds: [...kinds].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / 1000 / n).toFixed(3)}`).join(', '), top: top.map(([k, v]) => `${(v / 1000 / n).toFixed(3)} ms/req ${(100 * v / total).toFixed(1)}%  ${k}`) };
}

const user = createUser();
sql(`select app.add_grant('${user.id}', 'adjustment', 'promotional', 100000000, null, 'grant')`);
const auth = { authorization: `Bearer ${user.token}` };
const routes = {
  nope: { path: '/nope', opts: {} },
  balance: { path: '/v1/balance', opts: { headers: auth } },
  generate: { path: '/v1/generate', opts: { method: 'POST', body: JSON.stringify({ model_id: 'draft-v1', prompt: 'A bench prompt', target_minutes: 1 }), headers: () => ({ ...auth, 'content-type': 'application/json', 'idempotency-key': randomUUID() }) } },
};
let port = 9400;
for (const [label, modules, root] of [
  ['Rust', [{ type: 'ESModule', path: path.join(buildDir, 'index.js') }, { type: 'CompiledWasm', path: path.join(buildDir, 'index_bg.wasm') }], buildDir],
  ['TS', [{ type: 'ESModule', path: jsWorker }], path.dirname(jsWorker)],
]) {
  const inspector = port++;
  const w = await start(modules, root, inspector);
  const c = await cdp(inspector);
  for (const [route, r] of Object.entries(routes)) {
    if (only && !only.includes(route)) continue;
    await load(w.url + r.path, { ...r.opts, durationMs: 1000 });
    await c.send('Profiler.enable');
    await c.send('Profiler.setSamplingInterval', { interval: 100 });
    await c.send('Profiler.start');
    const n = await load(w.url + r.path, { ...r.opts, durationMs: MS });
    const { result } = await c.send('Profiler.stop');
    const s = summarize(result.profile, n);
    console.log(`\n${label} ${route}: ${n} requests, sampled JS+wasm CPU ${s.totalMsPerReq.toFixed(3)} ms/req (isolate thread only)`);
    console.log(`  by kind, ms/req: ${s.kinds}`);
    for (const line of s.top) console.log('  ' + line);
  }
  c.close();
  await w.mf.dispose();
}
