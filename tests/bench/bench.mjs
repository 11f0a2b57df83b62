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
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync, readdirSync } from 'node:fs';
import os from 'node:os';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stack, localBindings, createUser, mintToken, claimsFor, sql } from '../e2e/harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const buildDir = process.env.BENCH_BUILD_DIR; // a snapshot of functions/build taken by run.sh
const jsWorker = process.env.BENCH_JS_WORKER; // tests/bench/js-worker.ts bundled by run.sh
const sizeJson = process.env.BENCH_SIZE_JSON; // what run.sh measured about the bundle
const quick = process.env.BENCH_QUICK === '1';
const C = Number(process.env.BENCH_CONCURRENCY || 16);
const LOAD_MS = Number(process.env.BENCH_LOAD_MS || (quick ? 2000 : 6000));
const ROUNDS = Number(process.env.BENCH_ROUNDS || (quick ? 1 : 2));
const SEQ = quick ? 100 : 400;
const LEDGER_ROWS = Number(process.env.BENCH_LEDGER_ROWS || 1_000_000);
const started = Date.now();
const log = (...a) => console.error('   ', ...a);

// ---------------------------------------------------------------------------------------------
// Helpers

const quiet = (stdout, stderr) => { stdout.resume(); stderr.resume(); };

async function startMf(modules, modulesRoot) {
  const mf = new Miniflare({
    modules, modulesRoot, compatibilityDate: '2026-04-01', bindings: localBindings(),
    host: '127.0.0.1', port: 0, cf: false, verbose: false, handleRuntimeStdio: quiet,
  });
  const url = (await mf.ready).toString().replace(/\/$/, '');
  return { mf, url };
}
const rustModules = () => [
  { type: 'ESModule', path: path.join(buildDir, 'index.js') },
  { type: 'CompiledWasm', path: path.join(buildDir, 'index_bg.wasm') },
];
const startRust = () => startMf(rustModules(), buildDir);
const startJs = () => startMf([{ type: 'ESModule', path: jsWorker }], path.dirname(jsWorker));

function pct(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const median = (xs) => pct([...xs].sort((a, b) => a - b), 50);
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');

/**
 * A bounded closed-loop load generator: `concurrency` keep-alive connections, each sending its
 * next request when the previous answer has been read, until `durationMs` or `maxRequests`.
 */
async function load(url, { method = 'GET', headers = {}, body, concurrency = 1, durationMs = 5000, maxRequests = Infinity, expect = 200 } = {}) {
  const u = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const lat = [];
  let sent = 0, ok = 0, bad = 0;
  const deadline = performance.now() + durationMs;
  const one = () => new Promise((resolve) => {
    const t0 = performance.now();
    const h = typeof headers === 'function' ? headers() : headers;
    const req = http.request({ agent, host: u.hostname, port: u.port, path: u.pathname, method, headers: h }, (res) => {
      res.resume();
      res.on('end', () => { lat.push(performance.now() - t0); res.statusCode === expect ? ok++ : bad++; resolve(); });
    });
    req.on('error', () => { bad++; resolve(); });
    req.end(body);
  });
  const loop = async () => { while (performance.now() < deadline && sent < maxRequests) { sent++; await one(); } };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, loop));
  const elapsed = performance.now() - t0;
  agent.destroy();
  lat.sort((a, b) => a - b);
  return { n: ok, errors: bad, rps: ok / (elapsed / 1000), p50: pct(lat, 50), p99: pct(lat, 99), lat };
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
  log(`auth cost at request level: p50 +${f2(summary.verifyOverheadP50)} ms, p99 +${f2(summary.verifyOverheadP99)} ms; first request on a fresh isolate: ${f2(summary.firstBadSig)} ms with a token vs ${f2(summary.firstNope)} ms without`);
  return { rows, summary, first };
}

// ---------------------------------------------------------------------------------------------
// 3. Throughput

async function throughput(user) {
  console.error(`\n==> Throughput: ${C} keep-alive connections, ${LOAD_MS / 1000} s per run, ${ROUNDS} round(s)`);
  const rust = await startRust();
  const js = await startJs();
  const auth = { authorization: `Bearer ${user.token}` };
  const direct = rpcDirect('get_balance', user.token);
  // Same answer from all three, checked once.
  const bodies = await Promise.all([
    fetch(direct.url, { method: 'POST', headers: direct.opts.headers, body: '{}' }).then((r) => r.json()),
    fetch(`${rust.url}/v1/balance`, { headers: auth }).then((r) => r.json()),
    fetch(`${js.url}/v1/balance`, { headers: auth }).then((r) => r.json()),
  ]);
  const same = bodies.every((b) => JSON.stringify(b) === JSON.stringify(bodies[0]));
  if (!same) log('WARNING: the three paths answered differently:', JSON.stringify(bodies));
  // POST /v1/generate on both Workers: a fresh Idempotency-Key per request (a new job and hold each
  // time), for a user given enough credits for every run.
  sql(`select app.add_grant('${user.id}', 'adjustment', 'promotional', 100000000, null, 'grant')`);
  const gen = {
    method: 'POST', expect: 202, body: JSON.stringify({ model_id: 'draft-v1', prompt: 'A bench prompt', target_minutes: 1 }),
    headers: () => ({ ...auth, 'content-type': 'application/json', 'idempotency-key': randomUUID() }),
  };
  const targets = [
    ['PostgREST direct POST /rpc/get_balance', direct.url, direct.opts],
    ['Rust Worker GET /v1/balance', `${rust.url}/v1/balance`, { headers: auth }],
    ['TS Worker (postgrest-js) GET /v1/balance', `${js.url}/v1/balance`, { headers: auth }],
    // Without the database: what each Worker alone costs per request (routing, JSON error, log line).
    ['Rust Worker GET /nope (404, no database)', `${rust.url}/nope`, { expect: 404 }],
    ['TS Worker GET /nope (404, no database)', `${js.url}/nope`, { expect: 404 }],
    // Kept after the balance rows: the summary reads rows 0-2 (direct, Rust and TS balance).
    ['Rust Worker POST /v1/generate', `${rust.url}/v1/generate`, gen],
    ['TS Worker (postgrest-js) POST /v1/generate', `${js.url}/v1/generate`, gen],
  ];
  for (const [, url, opts] of targets) await load(url, { ...opts, concurrency: C, durationMs: 1000 }); // warm up
  const runs = {}; for (const [name] of targets) runs[name] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, url, opts] of targets) {
      const cpu0 = cpuTimes();
      const res = await load(url, { ...opts, concurrency: C, durationMs: LOAD_MS });
      res.cpu = cpuDelta(cpu0, res.n + res.errors);
      runs[name].push(res);
      log(`${name.padEnd(42)} ${f1(res.rps).padStart(7)} req/s  p50 ${f2(res.p50)} ms  p99 ${f2(res.p99)} ms  errors ${res.errors}  cpu ${res.cpu}`);
    }
  }
  await rust.mf.dispose();
  await js.mf.dispose();
  const rows = targets.map(([name]) => {
    const rs = runs[name];
    return { name, rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)), errors: rs.reduce((a, x) => a + x.errors, 0), cpu: rs.at(-1).cpu };
  });
  return { rows, same, ratioDirect: rows[1].rps / rows[0].rps, ratioJs: rows[1].rps / rows[2].rps };
}

// CPU time per process kind during a run, from /proc (clock ticks), to show who uses the 2 cores.
const TICK = 100; // USER_HZ on Linux
function cpuTimes() {
  const t = { workerd: 0, postgrest: 0, postgres: 0 };
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]); // utime + stime
    const k = /^workerd/.test(comm) ? 'workerd' : /^postgrest/.test(comm) ? 'postgrest' : /^postgres/.test(comm) ? 'postgres' : null;
    if (k) t[k] += ticks;
  }
  t.self = process.cpuUsage();
  return t;
}
function cpuDelta(t0, requests) {
  const t1 = cpuTimes();
  const per = (s) => (requests ? ` (${((1000 * s) / requests).toFixed(2)} ms/req)` : '');
  const parts = ['workerd', 'postgrest', 'postgres'].map((k) => { const s = Math.max(0, t1[k] - t0[k]) / TICK; /* exited processes take their ticks along */ return `${k} ${s.toFixed(1)}s${per(s)}`; });
  const lg = (t1.self.user + t1.self.system - t0.self.user - t0.self.system) / 1e6;
  return `${parts.join(', ')}, load generator ${lg.toFixed(1)}s${per(lg)}`;
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
    const p = plans(user.id);
    log(`${label}: ${rows} rows; SQL ${f1(us)} us/call; PostgREST p50 ${f2(direct.p50)} ms; Worker p50 ${f2(worker.p50)} ms; ${JSON.stringify(body)}`);
    return { label, rows, sqlUs: us, directP50: direct.p50, directP99: direct.p99, workerP50: worker.p50, workerP99: worker.p99, body, plans: p };
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

const size = sizeJson ? JSON.parse(readFileSync(sizeJson, 'utf8')) : null;
const st = await startup();
const user = createUser();
const au = await authOverhead(user);
const tp = await throughput(user);
const lg = await ledgerScaling(createUser());

// ---------------------------------------------------------------------------------------------
// Report

const KiB = (b) => (b / 1024).toFixed(2);
const ok = (b) => (b ? 'met' : 'NOT met');
const cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? os.cpus()[0]?.model ?? 'unknown CPU';
const machine = `${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${os.type()} ${os.release()}; Node ${process.version}; workerd via miniflare ${JSON.parse(readFileSync(path.join(root, 'node_modules/miniflare/package.json'), 'utf8')).version}; PostgREST 12.0.2; PostgreSQL ${sql('show server_version').split(' ')[0]}`;
const t = tp.rows;
const table = [
  ['target', 'measured', 'limit', 'result'],
  ['1. bundle, gzip (wrangler "Total Upload")', size ? `${size.wranglerGzipKiB ?? 'n/a'} KiB (wasm ${KiB(size.wasmGzip)} KiB + JS ${KiB(size.jsGzip)} KiB, gzip -9)` : 'n/a', '100 KiB', size?.wranglerGzipKiB ? ok(size.wranglerGzipKiB <= 100) : 'n/a'],
  ['2. (info) wrangler check startup, sampled non-idle', `${f1(st.summary.profileBusy)} ms (span ${f1(st.summary.profileSpan)} ms)`, '25 ms', 'coarse sampling, see 2.'],
  ['2. isolate start + first request, minus trivial Worker', `${f1(st.summary.total)} ms (${f1(st.summary.perIsolate)} start + ${f1(st.summary.firstExtra)} first request)`, '25 ms', ok(st.summary.total <= 25)],
  ['3. HS256 auth, request level, p99 (401 bad sig - 404)', `+${f3(au.summary.verifyOverheadP99)} ms (p50 +${f3(au.summary.verifyOverheadP50)})`, '1 ms', ok(au.summary.verifyOverheadP99 <= 1)],
  ['3. first request with a token on a fresh isolate, extra', `+${f2(au.summary.firstAuthExtra)} ms wall (${f2(au.summary.firstBadSig)} vs ${f2(au.summary.firstNope)})`, '5 ms', ok(au.summary.firstAuthExtra <= 5)],
  ['4. Rust Worker / PostgREST direct, req/s', `${(100 * tp.ratioDirect).toFixed(1)}% (${f1(t[1].rps)} / ${f1(t[0].rps)})`, '>= 95%', ok(tp.ratioDirect >= 0.95)],
  ['4. Rust Worker / TS postgrest-js Worker, req/s', `${(100 * tp.ratioJs).toFixed(1)}% (${f1(t[1].rps)} / ${f1(t[2].rps)})`, '>= 100%', ok(tp.ratioJs >= 1)],
  ['5. get_balance SQL, 100 vs 1M ledger rows', `${f1(lg.small.sqlUs)} vs ${f1(lg.large.sqlUs)} us/call`, 'same', ok(lg.large.sqlUs <= lg.small.sqlUs * 1.5 + 5)],
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

## 3. Edge authentication at request level (sequential, one keep-alive connection, ${SEQ} requests per case)

| case | p50 (ms) | p99 (ms) |
|---|---|---|
${au.rows.map((r) => `| ${r.name} | ${f3(r.p50)} | ${f3(r.p99)} |`).join('\n')}

HS256 verification at request level (401 bad signature minus 404, both without database): p50 +${f3(au.summary.verifyOverheadP50)} ms, p99 +${f3(au.summary.verifyOverheadP99)} ms.
(/v1/balance - direct get_balance) - (/health - direct health) = ${f3(au.summary.balanceOverWorkerHealth)} ms.
First request on a fresh isolate (median of ${au.first.nope.length}): ${f2(au.summary.firstBadSig)} ms with an HS256 token to verify, ${f2(au.summary.firstNope)} ms for a 404 without auth.

## 4. Throughput (${C} keep-alive connections, ${LOAD_MS / 1000} s per run, median of ${ROUNDS} round(s))

| path | req/s | p50 (ms) | p99 (ms) | errors | CPU during the last run |
|---|---|---|---|---|---|
${t.map((r) => `| ${r.name} | ${f1(r.rps)} | ${f2(r.p50)} | ${f2(r.p99)} | ${r.errors} | ${r.cpu} |`).join('\n')}

All three answered the same body: ${tp.same ? 'yes' : 'NO'}.

## 5. get_balance against ledger size

| ledger rows for the user | SQL us/call | PostgREST p50 / p99 (ms) | Worker p50 / p99 (ms) |
|---|---|---|---|
${[lg.small, lg.large].map((r) => `| ${r.rows.toLocaleString('en')} | ${f1(r.sqlUs)} | ${f2(r.directP50)} / ${f2(r.directP99)} | ${f2(r.workerP50)} / ${f2(r.workerP99)} |`).join('\n')}

Inserting the rows took ${f1(lg.insertS)} s. Cached balance still equals the ledger's running total: ${lg.reconciled ? 'yes' : 'NO'}; same answer at both sizes: ${lg.sameBody ? 'yes' : 'NO'}.
Plans of the statements inside get_balance at ${lg.large.rows.toLocaleString('en')} rows (auto_explain, nested statements):

\`\`\`
${lg.large.plans.join('\n')}
\`\`\`
`;
const out = process.env.BENCH_RESULTS || path.join(root, 'tests/bench/RESULTS.md');
mkdirSync(path.dirname(out), { recursive: true });
writeFileSync(out, report);
console.error(`results written to ${path.relative(root, out)}`);
