// Start-up of the Worker split into its parts, in workerd (Miniflare), quietly: each part is the
// difference between two Workers that differ only by it, K copies (K isolates) in one workerd,
// measured as wall time to ready and as the CPU time of that workerd process (from /proc, every
// thread: V8's compile threads included), which a loaded machine disturbs far less than wall time.
//   trivial     a JS Worker that answers 404 (the floor)
//   compile     a JS Worker that imports the wasm module and does nothing with it: workerd compiles
//               (validates) every CompiledWasm module when it loads the Worker
//   instantiate the Worker's own entry with the wasm start function removed: + instantiation and
//               the glue's top-level code
//   full        the Worker as shipped: + the start functions (workers-rs' panic hook and init
//               state, ours: the executor's wake-up choice)
// then the first request (a 404: routing, the error body, the log line; wasm functions compiled
// lazily on first call) of each isolate of `full` against `trivial`'s.
//
//   node tests/bench/startup.mjs [build dir (functions/build)] [rounds (5)]
// Local workerd is not Cloudflare's edge: see ARCHITECTURE.md, "Performance", for what this does
// and does not show.
import { Miniflare } from 'miniflare';
import { readFileSync, writeFileSync, mkdirSync, copyFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const K = 8;

function procTable() {
  const t = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try { stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { continue; }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    t.set(Number(pid), { ppid: Number(f[1]), comm, ticks: Number(f[11]) + Number(f[12]) });
  }
  return t;
}
function workerdTicks() {
  const t = procTable();
  const mine = (pid) => { for (let p = pid, i = 0; p > 1 && i < 64; p = t.get(p)?.ppid ?? 0, i++) if (p === process.pid) return true; return false; };
  return [...t].filter(([pid, p]) => /^workerd/.test(p.comm) && mine(pid)).reduce((a, [, p]) => a + p.ticks, 0);
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

export function variants(buildDir, dir) {
  mkdirSync(dir, { recursive: true });
  copyFileSync(path.join(buildDir, 'index_bg.wasm'), path.join(dir, 'index_bg.wasm'));
  const full = readFileSync(path.join(buildDir, 'index.js'), 'utf8');
  writeFileSync(path.join(dir, 'full.mjs'), full.replaceAll('./index_bg.wasm', './index_bg.wasm'));
  // The top-level start call (`x=y.exports;x.__wbindgen_start();`), not the one in the re-init function.
  const noStart = full.replace(/(\w+)=(\w+)\.exports;\1\.__wbindgen_start\(\);/, '$1=$2.exports;');
  if (noStart === full) throw new Error('the start call was not found in index.js');
  writeFileSync(path.join(dir, 'instantiate.mjs'), noStart);
  writeFileSync(path.join(dir, 'compile.mjs'), 'import wasm from "./index_bg.wasm";\nexport default { fetch() { return new Response(String(wasm instanceof WebAssembly.Module), { status: 404 }); } };\n');
  writeFileSync(path.join(dir, 'trivial.mjs'), 'export default { fetch() { return new Response("ok", { status: 404 }); } };\n');
  const mod = (entry) => (entry === 'trivial.mjs' ? [{ type: 'ESModule', path: path.join(dir, entry) }]
    : [{ type: 'ESModule', path: path.join(dir, entry) }, { type: 'CompiledWasm', path: path.join(dir, 'index_bg.wasm') }]);
  return { trivial: mod('trivial.mjs'), compile: mod('compile.mjs'), instantiate: mod('instantiate.mjs'), full: mod('full.mjs') };
}

export async function startupSplit({ buildDir = path.join(root, 'functions/build'), rounds = 5, bindings = {} } = {}) {
  const dir = path.join(os.tmpdir(), `credits-startup-${process.pid}`);
  const v = variants(buildDir, dir);
  const res = {};
  for (const k of Object.keys(v)) res[k] = { ready: [], cpu: [], node: [], first: [], firstCpu: [] };
  for (let r = 0; r < rounds; r++) {
    for (const [kind, modules] of Object.entries(v)) {
      const workers = Array.from({ length: K }, (_, i) => ({ name: `w${i}`, modules, modulesRoot: dir, compatibilityDate: '2026-04-01', bindings }));
      const before = workerdTicks();
      const node0 = process.cpuUsage();
      const t0 = performance.now();
      const mf = new Miniflare({ workers, host: '127.0.0.1', port: 0, cf: false, handleRuntimeStdio: (a, b) => { a.resume(); b.resume(); } });
      await mf.ready;
      const ready = performance.now() - t0;
      const afterReady = workerdTicks();
      const cpu = (afterReady - before) * 10; // ms (USER_HZ 100)
      const node = process.cpuUsage(node0);
      const nodeMs = (node.user + node.system) / 1000;
      const firsts = [];
      if (kind === 'full' || kind === 'trivial') {
        for (let i = 0; i < K; i++) {
          const w = await mf.getWorker(`w${i}`);
          const a = performance.now();
          await (await w.fetch('http://localhost/nope')).text();
          firsts.push(performance.now() - a);
        }
      }
      const firstCpu = ((workerdTicks() - afterReady) * 10) / K;
      await mf.dispose();
      res[kind].ready.push(ready); res[kind].cpu.push(cpu); res[kind].node.push(nodeMs);
      if (firsts.length) { res[kind].first.push(median(firsts)); res[kind].firstCpu.push(firstCpu); }
    }
  }
  const m = (k, f) => median(res[k][f]);
  const per = (a, b, f) => (m(a, f) - m(b, f)) / K;
  const s = {
    K, rounds,
    ready: Object.fromEntries(Object.keys(v).map((k) => [k, m(k, 'ready')])),
    cpu: Object.fromEntries(Object.keys(v).map((k) => [k, m(k, 'cpu')])),
    node: Object.fromEntries(Object.keys(v).map((k) => [k, m(k, 'node')])),
    compile: { wall: per('compile', 'trivial', 'ready'), cpu: per('compile', 'trivial', 'cpu') },
    instantiate: { wall: per('instantiate', 'compile', 'ready'), cpu: per('instantiate', 'compile', 'cpu') },
    start: { wall: per('full', 'instantiate', 'ready'), cpu: per('full', 'instantiate', 'cpu') },
    perIsolate: { wall: per('full', 'trivial', 'ready'), cpu: per('full', 'trivial', 'cpu') },
    first: { full: m('full', 'first'), trivial: m('trivial', 'first'), fullCpu: m('full', 'firstCpu'), trivialCpu: m('trivial', 'firstCpu') },
  };
  s.firstExtra = s.first.full - s.first.trivial;
  s.total = s.perIsolate.wall + s.firstExtra;
  return { s, res };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const buildDir = process.argv[2] ? path.resolve(process.argv[2]) : path.join(root, 'functions/build');
  const bindings = { POSTGREST_URL: 'http://127.0.0.1:9', SUPABASE_URL: 'http://127.0.0.1:9', SUPABASE_JWT_SECRET: 'x'.repeat(40), SUPABASE_ANON_KEY: 'anon' };
  const { s, res } = await startupSplit({ buildDir, rounds: Number(process.argv[3] ?? 5), bindings });
  const f = (x) => x.toFixed(1);
  console.log(`${buildDir}: ${K} isolates per workerd, ${s.rounds} rounds, medians`);
  for (const k of Object.keys(s.ready)) console.log(`  ${k.padEnd(12)} to ready ${f(s.ready[k])} ms wall, workerd ${f(s.cpu[k])} ms CPU, Miniflare (node) ${f(s.node[k])} ms CPU (runs: ${res[k].ready.map(f).join(' ')} | ${res[k].cpu.map(f).join(' ')})`);
  for (const k of ['compile', 'instantiate', 'start', 'perIsolate']) console.log(`  per isolate, ${k.padEnd(11)} ${f(s[k].wall)} ms wall, ${f(s[k].cpu)} ms CPU`);
  console.log(`  first request (404), median of isolates: full ${f(s.first.full)} ms, trivial ${f(s.first.trivial)} ms -> +${f(s.firstExtra)} ms wall; workerd CPU per first request ${f(s.first.fullCpu)} vs ${f(s.first.trivialCpu)} ms`);
  console.log(`  start-up estimate (per isolate wall + first request extra): ${f(s.total)} ms`);
}
