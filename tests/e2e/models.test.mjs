// GET /v1/models: the public model catalog with prices, as an app shows it before generating.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

test('GET /v1/models lists the available models and their prices publicly, cacheable', async () => {
  const res = await w.fetch('/v1/models');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'public, max-age=300');
  const { items } = await res.json();
  assert.deepEqual(items.map((m) => m.id), ['standard-v1', 'premium-v1', 'draft-v1'], 'the retired model is not offered');
  const standard = items[0];
  assert.deepEqual([standard.cost_per_generation, standard.cost_per_minute, standard.min_minutes, standard.max_minutes, standard.featured], [2, 1, 1, 10, true]);
});

test('the listed price is what a generation holds', async () => {
  const { items } = await (await w.fetch('/v1/models')).json();
  const standard = items.find((m) => m.id === 'standard-v1');
  const res = await w.fetch('/v1/generate', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID(), ...bearer(createUser().token) },
    body: JSON.stringify({ model_id: 'standard-v1', prompt: 'Price check', target_minutes: 2 }),
  });
  const body = await res.json();
  assert.equal(res.status, 202, JSON.stringify(body));
  assert.equal(body.job.credits_reserved, standard.cost_per_generation + standard.cost_per_minute * 2);
});

test('GET /v1/models answers a CORS preflight and a cross-origin read from an allowed origin only', async () => {
  const pre = await w.fetch('/v1/models', { method: 'OPTIONS', headers: { origin: 'https://app.example.test', 'access-control-request-method': 'GET' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example.test');
  assert.match(pre.headers.get('access-control-allow-methods'), /GET/);
  const allowed = await w.fetch('/v1/models', { headers: { origin: 'https://app.example.test' } });
  assert.equal(allowed.headers.get('access-control-allow-origin'), 'https://app.example.test');
  const other = await w.fetch('/v1/models', { headers: { origin: 'https://evil.example.test' } });
  assert.equal(other.status, 200);
  assert.equal(other.headers.get('access-control-allow-origin'), null);
});
