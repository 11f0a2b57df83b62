// Bad input (SECURITY.md section 8) against every journey endpoint: each answer is a 4xx with a
// stable code in the one error shape, and nothing is written (row counts of every table that
// an endpoint can write are the same before and after the whole barrage).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sqlRows, stack, signPipeline } from './harness.mjs';

let w;
let user;
before(async () => {
  w = await startWorker();
  user = createUser();
});
after(async () => { await w?.dispose(); });

const TABLES = ['draft_prompts', 'projects', 'jobs', 'job_steps', 'assets', 'credit_holds', 'credit_ledger', 'credit_grants', 'idempotency_keys', 'purchases', 'payment_events'];
const counts = () => sqlRows(`select ${TABLES.map((t) => `(select count(*) from public.${t}) as ${t}`).join(', ')}`)[0];

const huge = 'x'.repeat(17 * 1024);
const control = 'prompt with \u0000 nul and \u0007 bell';
const injection = "'); drop table public.jobs; --";

/** Bodies every JSON endpoint must refuse, with the stable code expected. */
const commonBodies = [
  ['malformed JSON', '{"prompt": ', 400, 'invalid_json'],
  ['empty body', '', 400, 'invalid_json'],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), 400, 'invalid_json'],
  ['a JSON array', '[1,2,3]', 400, 'invalid_request'],
  ['a JSON string', '"hello"', 400, 'invalid_request'],
  ['a huge body', JSON.stringify({ prompt: huge }), 413, 'payload_too_large'],
];

function endpoints() {
  const auth = bearer(user.token);
  const key = () => ({ 'idempotency-key': randomUUID() });
  return [
    {
      name: 'POST /v1/drafts', path: '/v1/drafts', headers: { apikey: stack.anonKey },
      bodies: [
        ['missing prompt', { template: 'x' }, 400, 'invalid_request'],
        ['unknown field', { prompt: 'ok', admin: true }, 400, 'invalid_request'],
        ['prompt of the wrong type', { prompt: 42 }, 400, 'invalid_request'],
        ['prompt too long', { prompt: 'y'.repeat(4001) }, 400, 'invalid_request'],
        ['control characters', { prompt: control }, 400, 'invalid_request'],
        ['empty prompt', { prompt: '   ' }, 400, 'invalid_request'],
        ['options not an object', { prompt: 'ok', options: [1] }, 400, 'invalid_request'],
        ['template injection', { prompt: 'ok', template: injection }, 400, 'invalid_request'],
      ],
    },
    {
      name: 'POST /v1/drafts/claim', path: '/v1/drafts/claim', headers: auth,
      bodies: [
        ['missing token', {}, 400, 'invalid_request'],
        ['token of the wrong type', { claim_token: 123 }, 400, 'invalid_request'],
        ['malformed token', { claim_token: injection }, 400, 'invalid_request'],
        ['unknown field', { claim_token: 'a'.repeat(64), user_id: randomUUID() }, 400, 'invalid_request'],
      ],
    },
    {
      name: 'POST /v1/generate', path: '/v1/generate', headers: () => ({ ...auth, ...key() }),
      bodies: [
        ['missing model', { prompt: 'ok', target_minutes: 1 }, 400, 'invalid_request'],
        ['unknown model', { model_id: 'gpt-99', prompt: 'ok', target_minutes: 1 }, 400, 'invalid_request'],
        ['model id injection', { model_id: injection, prompt: 'ok', target_minutes: 1 }, 400, 'invalid_request'],
        ['unknown field', { model_id: 'standard-v1', prompt: 'ok', target_minutes: 1, credits_reserved: 0 }, 400, 'invalid_request'],
        ['zero minutes', { model_id: 'standard-v1', prompt: 'ok', target_minutes: 0 }, 400, 'invalid_request'],
        ['negative minutes', { model_id: 'standard-v1', prompt: 'ok', target_minutes: -5 }, 400, 'invalid_request'],
        ['overflowing minutes', { model_id: 'standard-v1', prompt: 'ok', target_minutes: 1e20 }, 400, 'invalid_request'],
        ['fractional minutes', { model_id: 'standard-v1', prompt: 'ok', target_minutes: 1.5 }, 400, 'invalid_request'],
        ['minutes as a string', { model_id: 'standard-v1', prompt: 'ok', target_minutes: '2' }, 400, 'invalid_request'],
        ['prompt and draft both', { model_id: 'standard-v1', prompt: 'ok', draft_id: randomUUID(), target_minutes: 1 }, 400, 'invalid_request'],
        ['draft id not a uuid', { model_id: 'standard-v1', draft_id: injection, target_minutes: 1 }, 400, 'invalid_request'],
        ['control characters', { model_id: 'standard-v1', prompt: control, target_minutes: 1 }, 400, 'invalid_request'],
        ['another user\'s draft', { model_id: 'standard-v1', draft_id: randomUUID(), target_minutes: 1 }, 404, 'draft_not_found'],
      ],
    },
    {
      name: 'POST /v1/pipeline/events', path: '/v1/pipeline/events', signed: true,
      bodies: [
        ['unknown type', { type: 'job.exploded', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1 }, 400, 'invalid_request'],
        ['missing actual cost', { type: 'job.succeeded', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1 }, 400, 'invalid_request'],
        ['negative actual cost', { type: 'job.succeeded', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1, actual_cost: -1 }, 400, 'invalid_request'],
        ['job id not a uuid', { type: 'job.failed', event_id: 'e1', job_id: injection, worker_id: 'w', attempt: 1, error_code: 'x' }, 400, 'invalid_request'],
        ['unknown job', { type: 'job.failed', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1, error_code: 'x' }, 404, 'not_found'],
        ['unknown field', { type: 'job.progress', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1, status: 'VOICING', credits: 5 }, 400, 'invalid_request'],
        ['status backwards to QUEUED', { type: 'job.progress', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1, status: 'QUEUED' }, 400, 'invalid_request'],
        ['missing attempt', { type: 'job.failed', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', error_code: 'x' }, 400, 'invalid_request'],
        ['attempt zero', { type: 'job.failed', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 0, error_code: 'x' }, 400, 'invalid_request'],
        ['progress over 100', { type: 'job.progress', event_id: 'e1', job_id: randomUUID(), worker_id: 'w', attempt: 1, status: 'VOICING', progress: 300 }, 400, 'invalid_request'],
      ],
    },
    {
      name: 'POST /v1/pipeline/claim', path: '/v1/pipeline/claim', signed: true,
      bodies: [
        ['missing worker id', { limit: 1 }, 400, 'invalid_request'],
        ['limit of the wrong type', { worker_id: 'w', attempt: 1, limit: 'all' }, 400, 'invalid_request'],
        ['visibility timeout too short', { worker_id: 'w', attempt: 1, visibility_timeout_seconds: 1 }, 400, 'invalid_request'],
      ],
    },
  ];
}

async function send(ep, body, { contentType = 'application/json', method = 'POST' } = {}) {
  const raw = typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
  const headers = { 'content-type': contentType, ...(typeof ep.headers === 'function' ? ep.headers() : ep.headers) };
  if (ep.signed) headers['pipeline-signature'] = signPipeline(Buffer.isBuffer(raw) ? raw.toString('latin1') : raw);
  return w.fetch(ep.path, { method, headers, body: method === 'GET' ? undefined : raw });
}

async function expectError(res, status, code, label) {
  assert.equal(res.status, status, `${label}: status`);
  assert.match(res.headers.get('content-type') ?? '', /application\/json/, `${label}: content-type`);
  const body = await res.json();
  assert.equal(body.error?.code, code, `${label}: code (${JSON.stringify(body)})`);
  assert.equal(typeof body.error.message, 'string', `${label}: message`);
  assert.ok(body.error.message.length > 5 && !/postgres|sql|stack|panicked/i.test(body.error.message), `${label}: a message for developers, no internals`);
}

test('every endpoint refuses bad input with a stable 4xx code and writes nothing', async () => {
  const beforeCounts = counts();
  let cases = 0;
  for (const ep of endpoints()) {
    for (const [label, body, status, code] of [...commonBodies, ...ep.bodies]) {
      // A signed invalid-UTF-8 body cannot be signed byte-exactly as a JS string; skip that one combination.
      if (ep.signed && Buffer.isBuffer(body)) continue;
      await expectError(await send(ep, body), status, code, `${ep.name} ${label}`);
      cases++;
    }
    await expectError(await send(ep, { any: 1 }, { contentType: 'text/plain' }), 415, 'unsupported_media_type', `${ep.name} wrong content type`);
    await expectError(await send(ep, { any: 1 }, { contentType: 'application/x-www-form-urlencoded' }), 415, 'unsupported_media_type', `${ep.name} form body`);
    await expectError(await send(ep, null, { method: 'GET' }), 405, 'method_not_allowed', `${ep.name} wrong method`);
    cases += 3;
  }
  // The query-string endpoints.
  const auth = { headers: bearer(user.token) };
  for (const [q, label] of [['limit=0', 'zero limit'], ['limit=101', 'limit too large'], ['limit=abc', 'limit not a number'], ['before=-1', 'negative cursor'], ['before=1%27%3B', 'injection cursor'], ['admin=1', 'unknown parameter']]) {
    await expectError(await w.fetch(`/v1/ledger?${q}`, auth), 400, 'invalid_request', `GET /v1/ledger ${label}`);
    cases++;
  }
  for (const id of ['not-a-uuid', encodeURIComponent(injection), randomUUID()]) {
    await expectError(await w.fetch(`/v1/jobs/${id}`, auth), 404, 'not_found', `GET /v1/jobs/${id}`);
    cases++;
  }
  // Idempotency keys.
  const gen = endpoints().find((e) => e.path === '/v1/generate');
  const ok = { model_id: 'standard-v1', prompt: 'fine', target_minutes: 1 };
  await expectError(await send({ ...gen, headers: bearer(user.token) }, ok), 400, 'idempotency_key_required', 'generate without a key');
  await expectError(await send({ ...gen, headers: { ...bearer(user.token), 'idempotency-key': 'k'.repeat(256) } }, ok), 400, 'invalid_idempotency_key', 'generate with a 256-char key');
  await expectError(await send({ ...gen, headers: { ...bearer(user.token), 'idempotency-key': 'has space' } }, ok), 400, 'invalid_idempotency_key', 'generate with a space in the key');
  cases += 3;
  assert.deepEqual(counts(), beforeCounts, 'nothing was written');
  assert.ok(cases > 80, `${cases} bad requests`);
});

test('a huge Content-Length is refused before the body is read', async () => {
  const res = await w.fetch('/v1/drafts', { method: 'POST', headers: { 'content-type': 'application/json', apikey: stack.anonKey }, body: JSON.stringify({ prompt: 'z'.repeat(200 * 1024) }) });
  await expectError(res, 413, 'payload_too_large', 'drafts 200 KB');
});

test('a chunked body without Content-Length over the cap is refused (413); a small one is read whole', async () => {
  const chunked = (total) => new ReadableStream({
    start(controller) {
      const chunk = new TextEncoder().encode(`{"prompt":"${'c'.repeat(1000)}`);
      for (let sent = 0; sent < total; sent += chunk.length) controller.enqueue(chunk);
      controller.close();
    },
  });
  const before = counts();
  for (const [path, headers] of [
    ['/v1/drafts', { apikey: stack.anonKey }],
    ['/v1/pipeline/events', {}],
    ['/v1/generate', { ...bearer(user.token), 'idempotency-key': randomUUID() }],
  ]) {
    const res = await w.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: chunked(64 * 1024), duplex: 'half' });
    await expectError(res, 413, 'payload_too_large', `${path} chunked 64 KiB`);
  }
  // A small chunked body is read whole.
  const ok = await w.fetch('/v1/drafts', { method: 'POST', headers: { 'content-type': 'application/json', apikey: stack.anonKey }, body: new Blob(['{"prompt":"chunked but small"}']).stream(), duplex: 'half' });
  assert.equal(ok.status, 201);
  const after = counts();
  assert.equal(after.draft_prompts, before.draft_prompts + 1);
});
