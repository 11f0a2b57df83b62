// jwt-simple's ES256 (pure Rust p256, compiled to wasm with the Worker's release profile) against
// WebCrypto's ECDSA P-256, verifying the same token inside workerd: warm and on the first call of
// a fresh isolate. The figure behind the split in ARCHITECTURE.md ("HS256 through jwt-simple,
// ES256/RS256 through WebCrypto"). Bench only: tests/bench/jwt-es256 is not the shipped Worker.
//
//   node tests/bench/es256.mjs            (builds tests/bench/jwt-es256 first; bench.mjs section `es256`)
//
// workerd's clocks do not advance during execution (as in production), so every figure is a wall
// time seen from outside, on one keep-alive loopback connection, with a baseline request that
// verifies nothing (impl=none) subtracted:
//   warm, one verification per request: p50 / p99 of the request, and p50 minus the baseline's
//   warm, a batch of B verifications per request: (t(B) - t(baseline)) / B, median over the batches
//   first call: a fresh isolate (own workerd), one warm-up request of impl=none, then the first
//     verification (key import + verify) minus a second impl=none request on another fresh isolate
import { Miniflare } from 'miniflare';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { mkdirSync, copyFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const crate = path.join(here, 'jwt-es256');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

/** Builds the bench crate (the workspace's target dir, so its dependencies are shared) and its glue. */
export function buildEs256(outDir) {
  const target = path.join(root, 'target');
  run('cargo', ['build', '--release', '--locked', '--target', 'wasm32-unknown-unknown', '--manifest-path', path.join(crate, 'Cargo.toml')], { env: { ...process.env, CARGO_TARGET_DIR: target } });
  mkdirSync(outDir, { recursive: true });
  run('wasm-bindgen', ['--target', 'web', '--out-dir', outDir, path.join(target, 'wasm32-unknown-unknown/release/bench_jwt_es256.wasm')]);
  const wasmOpt = path.join(root, 'node_modules/.bin/wasm-opt');
  const wasm = path.join(outDir, 'bench_jwt_es256_bg.wasm');
  run(wasmOpt, ['-Oz', '--enable-bulk-memory', '--enable-nontrapping-float-to-int', '--enable-sign-ext', '--enable-mutable-globals', '--enable-reference-types', '--enable-multivalue', wasm, '-o', wasm]);
  copyFileSync(path.join(crate, 'worker.mjs'), path.join(outDir, 'worker.mjs'));
  return { wasmBytes: statSync(wasm).size, wasmGzip: gzipSync(readFileSync(wasm), { level: 9 }).length };
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const f3 = (x) => x.toFixed(3);

export async function es256Bench({ outDir, n = 1500, batch = 200, batches = 15, cold = 8 } = {}) {
  const built = buildEs256(outDir);
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = ec.publicKey.export({ format: 'jwk' });
  const b64u = (b) => Buffer.from(b).toString('base64url');
  const input = `${b64u(JSON.stringify({ alg: 'ES256', typ: 'JWT', kid: 'bench' }))}.${b64u(JSON.stringify({ sub: '00000000-0000-0000-0000-000000000001', role: 'authenticated', aud: 'authenticated', exp: Math.floor(Date.now() / 1000) + 7200, iat: Math.floor(Date.now() / 1000) }))}`;
  const token = `${input}.${b64u(cryptoSign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' }))}`;
  const start = async () => {
    const mf = new Miniflare({
      modules: [
        { type: 'ESModule', path: path.join(outDir, 'worker.mjs') },
        { type: 'ESModule', path: path.join(outDir, 'bench_jwt_es256.js') },
        { type: 'CompiledWasm', path: path.join(outDir, 'bench_jwt_es256_bg.wasm') },
      ],
      modulesRoot: outDir, compatibilityDate: '2026-04-01', bindings: { TOKEN: token, JWK: JSON.stringify(jwk) },
      host: '127.0.0.1', port: 0, cf: false, verbose: false, handleRuntimeStdio: (o, e) => { o.resume(); e.resume(); },
    });
    const url = new URL((await mf.ready).toString());
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const req = (impl, count) => new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      http.get({ agent, host: url.hostname, port: url.port, path: `/?impl=${impl}&n=${count}` }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          const ms = Number(process.hrtime.bigint() - t0) / 1e6;
          const ok = JSON.parse(body).ok;
          if (res.statusCode !== 200 || ok !== (impl === 'none' ? 0 : count)) reject(new Error(`${impl}: ${res.statusCode} ${body}`));
          else resolve(ms);
        });
      }).on('error', reject);
    });
    return { req, close: async () => { agent.destroy(); await mf.dispose(); } };
  };
  const impls = ['none', 'rust', 'webcrypto'];
  // Warm, one verification per request, interleaved.
  const w = await start();
  for (let i = 0; i < 200; i++) for (const m of impls) await w.req(m, 1);
  const one = Object.fromEntries(impls.map((m) => [m, []]));
  for (let i = 0; i < n; i++) for (const m of impls) one[m].push(await w.req(m, 1));
  // Warm, batches.
  const per = { rust: [], webcrypto: [] };
  for (let i = 0; i < batches; i++) {
    const base = await w.req('none', 1);
    for (const m of ['rust', 'webcrypto']) per[m].push(((await w.req(m, batch)) - base) / batch);
  }
  await w.close();
  // First call on a fresh isolate.
  const first = { none: [], rust: [], webcrypto: [] };
  for (let i = 0; i < cold; i++) {
    for (const m of impls) {
      const c = await start();
      await c.req('none', 1);
      first[m].push(await c.req(m, 1));
      await c.close();
    }
  }
  const s = {};
  for (const m of impls) s[m] = { p50: pct(one[m], 50), p99: pct(one[m], 99), first: pct(first[m], 50), firstMax: Math.max(...first[m]) };
  for (const m of ['rust', 'webcrypto']) {
    s[m].warm = s[m].p50 - s.none.p50;
    s[m].batch = pct(per[m], 50);
    s[m].firstExtra = s[m].first - s.none.first;
  }
  const rows = [
    ['implementation', 'warm, 1 per request: p50 / p99 (ms)', 'p50 minus baseline (ms)', `warm, batches of ${batch}: per verification (ms, median of ${batches})`, `first call on a fresh isolate, median of ${cold} (ms, minus baseline)`],
    ['baseline (verifies nothing)', `${f3(s.none.p50)} / ${f3(s.none.p99)}`, '-', '-', `${f3(s.none.first)} (max ${f3(s.none.firstMax)})`],
    ['jwt-simple ES256 (p256 in wasm)', `${f3(s.rust.p50)} / ${f3(s.rust.p99)}`, f3(s.rust.warm), f3(s.rust.batch), `${f3(s.rust.first)} (+${f3(s.rust.firstExtra)}; max ${f3(s.rust.firstMax)})`],
    ['WebCrypto ECDSA P-256', `${f3(s.webcrypto.p50)} / ${f3(s.webcrypto.p99)}`, f3(s.webcrypto.warm), f3(s.webcrypto.batch), `${f3(s.webcrypto.first)} (+${f3(s.webcrypto.firstExtra)}; max ${f3(s.webcrypto.firstMax)})`],
  ];
  return { s, rows, built, n, batch, batches, cold };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outDir = path.join(root, '.local/bench-es256');
  const r = await es256Bench({ outDir, n: Number(process.argv[2] ?? 1500) });
  for (const row of r.rows) console.log(row.join(' | '));
  console.log(`jwt-simple / WebCrypto, warm batch: ${(r.s.rust.batch / r.s.webcrypto.batch).toFixed(1)}x; bench wasm ${r.built.wasmBytes} bytes, ${r.built.wasmGzip} gzip`);
}
