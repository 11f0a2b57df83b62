// The walking skeleton: one real path through every layer (issue 2).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, createUser, mintToken, claimsFor, bearer, sql, eventually, logEvent } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

test('GET /health reports the database through PostgREST, without internals', async () => {
  const res = await w.fetch('/health');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { status: 'ok', database: true });
});

test('GET /health is 503 when PostgREST cannot be reached', async () => {
  const down = await startWorker({ POSTGREST_URL: 'http://127.0.0.1:9' });
  try {
    const res = await down.fetch('/health');
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'degraded', database: false });
  } finally {
    await down.dispose();
  }
});

test('GET /v1/balance returns the caller\'s own balance, made by the sign-up trigger', async () => {
  const user = createUser();
  const res = await w.fetch('/v1/balance', { headers: bearer(user.token) });
  assert.equal(res.status, 200);
  const body = await res.json();
  const [available, held] = sql(`select available || '|' || held from public.credit_balances where user_id = '${user.id}'`).split('|').map(Number);
  assert.equal(body.available, available);
  assert.equal(body.held, held);
  assert.ok(body.available > 0, 'the welcome grant is in the balance');
});

test('GET /v1/balance answers 503 with Retry-After when PostgREST is down', async () => {
  const down = await startWorker({ POSTGREST_URL: 'http://127.0.0.1:9' });
  try {
    const res = await down.fetch('/v1/balance', { headers: bearer(createUser().token) });
    assert.equal(res.status, 503);
    assert.equal(res.headers.get('retry-after'), '2');
    assert.equal((await res.json()).error.code, 'service_unavailable');
  } finally {
    await down.dispose();
  }
});

test('a POSTGREST_URL that fetch cannot send to is a configuration error (500, cause logged), not a 503', async () => {
  const lines = [];
  const bad = await startWorker({ POSTGREST_URL: 'http://exa mple.test' }, { logLines: lines });
  try {
    // Not through `bad.fetch`: that records the answer for the OpenAPI check, and a deployment's
    // configuration fault is not part of /v1/balance's contract.
    const res = await fetch(`${bad.url}/v1/balance`, { headers: bearer(createUser().token) });
    assert.equal(res.status, 500);
    assert.equal(res.headers.get('retry-after'), null, 'nothing to retry: the deployment is at fault');
    assert.equal((await res.json()).error.code, 'internal_error');
    const line = await eventually(() => logEvent(lines, 'internal_error'));
    assert.match(line.cause, /configuration: binding POSTGREST_URL must be an http\(s\) URL with a host/);
  } finally {
    await bad.dispose();
  }
});

for (const [name, headers, code] of [
  ['no token', {}, 'missing_token'],
  ['a token signed with another secret', () => bearer(mintToken(claimsFor(crypto.randomUUID()), { secret: 'x'.repeat(40) })), 'invalid_token'],
  ['a garbage token', bearer('not.a.token'), 'invalid_token'],
  ['an expired token', () => bearer(mintToken(claimsFor(crypto.randomUUID(), { exp: Math.floor(Date.now() / 1000) - 120, iat: Math.floor(Date.now() / 1000) - 3720 }))), 'token_expired'],
]) {
  test(`GET /v1/balance with ${name} is 401 ${code}`, async () => {
    const res = await w.fetch('/v1/balance', { headers: typeof headers === 'function' ? headers() : headers });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('content-type'), /application\/json/);
    const body = await res.json();
    assert.equal(body.error.code, code);
    assert.equal(typeof body.error.message, 'string');
  });
}

test('unknown routes and methods get the JSON error shape', async () => {
  let res = await w.fetch('/v1/nope');
  assert.equal(res.status, 404);
  assert.equal((await res.json()).error.code, 'not_found');
  res = await w.fetch('/v1/balance', { method: 'DELETE' });
  assert.equal(res.status, 405);
  assert.equal((await res.json()).error.code, 'method_not_allowed');
});
