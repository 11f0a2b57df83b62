// Fixes made while moving the Worker onto serde/base64 (issue 10): an unknown HTTP method is a 405
// before routing (it used to be routed as GET), and `exp - iat` is checked arithmetic (a signed
// token with `exp = i64::MAX, iat = -1` used to pass the 7-day rule in a release build).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { startWorker, createUser, bearer, claimsFor, stack, eventually, logEvent } from './harness.mjs';

const b64url = (s) => Buffer.from(s).toString('base64url');

/** Signs a claims document given as JSON text (so integers beyond 2^53 keep every digit). */
function signRaw(claimsJson) {
  const input = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(claimsJson)}`;
  return `${input}.${createHmac('sha256', stack.jwtSecret).update(input).digest('base64url')}`;
}

test('an unknown method is 405 before routing, and the log line names it', async () => {
  const lines = [];
  const w = await startWorker({}, { logLines: lines });
  try {
    const user = createUser();
    for (const method of ['PROPFIND', 'MKCOL', 'PUT']) {
      const r = await w.fetch('/v1/balance', { method, headers: bearer(user.token) });
      assert.equal(r.status, 405, method);
      assert.equal((await r.json()).error.code, 'method_not_allowed', method);
    }
    const ok = await w.fetch('/v1/balance', { headers: bearer(user.token) });
    assert.equal(ok.status, 200, 'GET still works');
    const access = await eventually(() => {
      const parsed = lines.filter((l) => l.includes('"request_id"') && l.includes('"route"')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
      return parsed.some((l) => l.method === 'PROPFIND') ? parsed : null;
    });
    const propfind = access.find((l) => l.method === 'PROPFIND');
    assert.deepEqual([propfind.status, propfind.route], [405, '-']);
    assert.ok(!access.some((l) => l.method === 'GET' && l.status === 405), 'never logged as GET');
  } finally {
    await w.dispose();
  }
});

test('exp - iat cannot overflow past the 7-day rule', async () => {
  const w = await startWorker();
  try {
    const user = createUser();
    const claims = JSON.stringify(claimsFor(user.id));
    const overflow = claims.replace(/"exp":\d+/, '"exp":9223372036854775807').replace(/"iat":\d+/, '"iat":-1');
    assert.notEqual(overflow, claims);
    const r = await w.fetch('/v1/balance', { headers: bearer(signRaw(overflow)) });
    assert.equal(r.status, 401);
    assert.equal((await r.json()).error.code, 'invalid_token');
    const ok = await w.fetch('/v1/balance', { headers: bearer(signRaw(claims)) });
    assert.equal(ok.status, 200, 'the Worker is still up and the same claims with sane dates pass');
  } finally {
    await w.dispose();
  }
});

test('an internal error logs its cause, and only the log has it', async () => {
  const lines = [];
  const w = await startWorker({ PIPELINE_SIGNING_SECRET: undefined }, { logLines: lines });
  try {
    const r = await w.fetch('/v1/pipeline/claim', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"worker_id":"w"}' });
    assert.equal(r.status, 500);
    const text = await r.text();
    assert.equal(JSON.parse(text).error.code, 'internal_error');
    assert.ok(!text.includes('PIPELINE_SIGNING_SECRET'), 'the cause is not answered');
    const line = await eventually(() => logEvent(lines, 'internal_error'));
    assert.match(line.cause, /PIPELINE_SIGNING_SECRET/);
    assert.equal(line.request_id, r.headers.get('x-request-id'));
  } finally {
    await w.dispose();
  }
});
