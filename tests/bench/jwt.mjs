// What one token verification costs inside the Worker (workerd via Miniflare), HS256 and ES256,
// warm and on the first call of an isolate. Run after a build: `node tests/bench/jwt.mjs [N]`.
//
// workerd's clocks advance in whole milliseconds locally and not at all during execution in
// production, so timing inside the Worker says nothing about microseconds. Instead every variant
// is timed from outside, on the same route, and the cost of verification is read as a difference:
//   none       no Authorization header: routing, config, the 401 answer (no crypto, no database)
//   hs-bad     HS256, valid shape, wrong signature: parse + HMAC + compare, then 401
//   es-bad     ES256, known kid, wrong signature: parse + cache hit + WebCrypto verify, then 401
//   rs-bad     RS256, same
//   hs-ok      valid HS256 token: full verification + claims, then the (stub) database
//   es-ok      valid ES256 token: same through WebCrypto
// The database is a loopback stub that answers at once, so hs-ok vs es-ok isolates the signature.
// Variants are interleaved request by request so machine noise hits them alike.
import http from 'node:http';
import { generateKeyPairSync, sign as cryptoSign, createHmac, randomUUID } from 'node:crypto';

process.env.E2E_POSTGREST_URL ??= 'http://127.0.0.1:9';
process.env.E2E_PG_PORT ??= '9';
process.env.E2E_JWT_SECRET ??= 'super-secret-jwt-token-with-at-least-32-characters-long';
process.env.E2E_SUPABASE_URL ??= 'http://127.0.0.1:54321';
const { startWorker, claimsFor, mintToken } = await import('../e2e/harness.mjs');

const N = Number(process.argv[2] ?? 2000);
const COLD = Number(process.argv[3] ?? 12);
const b64url = (b) => Buffer.from(b).toString('base64url');

const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = JSON.stringify({ keys: [
  { ...ec.publicKey.export({ format: 'jwk' }), kid: 'bench-ec', alg: 'ES256', use: 'sig' },
  { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'bench-rsa', alg: 'RS256', use: 'sig' },
] });
function signAsym(alg, kid, key, claims) {
  const input = `${b64url(JSON.stringify({ alg, typ: 'JWT', kid }))}.${b64url(JSON.stringify(claims))}`;
  const sig = alg === 'ES256' ? cryptoSign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }) : cryptoSign('sha256', Buffer.from(input), key);
  return `${input}.${b64url(sig)}`;
}
const badSig = (t, len) => `${t.slice(0, t.lastIndexOf('.'))}.${b64url(Buffer.alloc(len, 7))}`;

// The stub: the JWKS at /jwks, and an instant balance for any PostgREST call.
const stub = http.createServer((req, res) => {
  if (req.url === '/jwks') { res.writeHead(200, { 'content-type': 'application/json' }).end(jwks); return; }
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json' }).end('{"available":100,"held":0,"expiring":[]}');
});
await new Promise((r) => stub.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${stub.address().port}`;
const bindings = { POSTGREST_URL: base, SUPABASE_JWKS_URL: `${base}/jwks` };

const sub = randomUUID();
const claims = claimsFor(sub, { exp: Math.floor(Date.now() / 1000) + 7200 });
const tokens = {
  none: null,
  'hs-bad': mintToken(claims, { secret: 'another-secret-another-secret-another-secret' }),
  'es-bad': badSig(signAsym('ES256', 'bench-ec', ec.privateKey, claims), 64),
  'rs-bad': badSig(signAsym('RS256', 'bench-rsa', rsa.privateKey, claims), 256),
  'hs-ok': mintToken(claims),
  'es-ok': signAsym('ES256', 'bench-ec', ec.privateKey, claims),
};
const expected = { none: 401, 'hs-bad': 401, 'es-bad': 401, 'rs-bad': 401, 'hs-ok': 200, 'es-ok': 200 };

async function timed(w, name) {
  const headers = tokens[name] ? { authorization: `Bearer ${tokens[name]}` } : {};
  const t0 = process.hrtime.bigint();
  const res = await w.fetch('/v1/balance', { headers });
  await res.arrayBuffer();
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (res.status !== expected[name]) throw new Error(`${name}: status ${res.status}`);
  return ms;
}
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const f = (x) => x.toFixed(3);

// --- warm ---------------------------------------------------------------------------------------------
const w = await startWorker(bindings);
const names = Object.keys(tokens);
for (let i = 0; i < 200; i++) for (const n of names) await timed(w, n);
const samples = Object.fromEntries(names.map((n) => [n, []]));
for (let i = 0; i < N; i++) for (const n of names) samples[n].push(await timed(w, n));
await w.dispose();

console.log(`\nwarm, ${N} requests per variant, interleaved (ms, whole request as seen by the client)`);
console.log('variant   p50     p90     p99     | p50 - none  p99 - none');
const stats = {};
for (const n of names) {
  stats[n] = { p50: pct(samples[n], 50), p90: pct(samples[n], 90), p99: pct(samples[n], 99) };
}
for (const n of names) {
  const s = stats[n];
  console.log(`${n.padEnd(9)} ${f(s.p50)}  ${f(s.p90)}  ${f(s.p99)}   | ${f(s.p50 - stats.none.p50).padStart(9)}  ${f(s.p99 - stats.none.p99).padStart(9)}`);
}
console.log(`es-ok - hs-ok: p50 ${f(stats['es-ok'].p50 - stats['hs-ok'].p50)}  p99 ${f(stats['es-ok'].p99 - stats['hs-ok'].p99)}`);

// --- first call of an isolate ----------------------------------------------------------------------------
// Each sample is a new Worker (a new isolate). "first request" includes everything the isolate does
// once (config parsing; for ES256 the JWKS fetch from loopback and the key imports); "first
// verification" comes after one unauthenticated request has warmed the isolate, and for ES256 still
// includes the JWKS fetch and import, which a real isolate pays once per 10 minutes.
const cold = { 'none first request': [], 'hs-ok first request': [], 'es-ok first request': [], 'hs-ok first verification': [], 'es-ok first verification': [], 'es-ok second verification': [] };
for (let i = 0; i < COLD; i++) {
  for (const n of ['none', 'hs-ok', 'es-ok']) {
    const c = await startWorker(bindings);
    cold[`${n} first request`].push(await timed(c, n));
    await c.dispose();
  }
  for (const n of ['hs-ok', 'es-ok']) {
    const c = await startWorker(bindings);
    await timed(c, 'none');
    cold[`${n} first verification`].push(await timed(c, n));
    if (n === 'es-ok') cold['es-ok second verification'].push(await timed(c, n));
    await c.dispose();
  }
}
console.log(`\nfirst call of an isolate, ${COLD} isolates each (ms): median, max`);
for (const [k, xs] of Object.entries(cold)) console.log(`${k.padEnd(28)} ${f(pct(xs, 50))}  ${f(Math.max(...xs))}`);

stub.close();
