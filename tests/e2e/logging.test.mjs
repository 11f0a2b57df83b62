// One structured JSON log line per request (request id, method, route pattern, status, duration),
// with no tokens, no prompts and no request bodies in anything the Worker logs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, eventually } from './harness.mjs';

test('each request logs one JSON line; tokens and prompts never appear', async () => {
  const lines = [];
  const w = await startWorker({}, { logLines: lines });
  try {
    const user = createUser();
    const secretPrompt = `secret-prompt-${randomUUID()}`;
    const key = randomUUID();
    const gen = await w.fetch('/v1/generate', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key, ...bearer(user.token) },
      body: JSON.stringify({ model_id: 'draft-v1', prompt: secretPrompt, target_minutes: 1 }),
    });
    assert.equal(gen.status, 202);
    const job = (await gen.json()).job;
    const bad = await w.fetch('/v1/balance', { headers: bearer(`${user.token}x`) });
    assert.equal(bad.status, 401);
    const requestId = gen.headers.get('x-request-id');
    assert.match(requestId, /^[0-9a-f]{16}$/);
    // A ray id is taken as the request id only when it has the shape of one.
    const ray = await w.fetch('/health', { headers: { 'cf-ray': '8f1c2a3b4c5d6e7f-AMS' } });
    assert.equal(ray.headers.get('x-request-id'), '8f1c2a3b4c5d6e7f-AMS');
    const junk = await w.fetch('/health', { headers: { 'cf-ray': 'x'.repeat(100) } });
    assert.match(junk.headers.get('x-request-id'), /^[0-9a-f]{16}$/);

    const access = await eventually(() => {
      const parsed = lines.filter((l) => l.includes('"request_id"')).map((l) => JSON.parse(l.slice(l.indexOf('{'))));
      return parsed.length >= 2 ? parsed : null;
    });
    const genLine = access.find((l) => l.request_id === requestId);
    assert.deepEqual(Object.keys(genLine).sort(), ['duration_ms', 'method', 'request_id', 'route', 'status']);
    assert.deepEqual([genLine.method, genLine.route, genLine.status], ['POST', '/v1/generate', 202]);
    assert.ok(access.some((l) => l.route === '/v1/balance' && l.status === 401));
    assert.equal(access.filter((l) => l.request_id === requestId).length, 1, 'one line per request');

    const all = lines.join('\n');
    assert.ok(!all.includes(user.token.split('.')[2]), 'no token signature in the logs');
    assert.ok(!all.includes(user.token.split('.')[1]), 'no token payload in the logs');
    assert.ok(!all.includes(secretPrompt), 'no prompt in the logs');
  } finally {
    await w.dispose();
  }
});
