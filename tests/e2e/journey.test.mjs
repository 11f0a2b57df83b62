// The journey at the edge (issue 5): visitor draft -> sign-in -> claim -> generate -> queue ->
// pipeline events -> READY (hold captured at the actual cost, the rest released), and its failure
// twin (retries, then dead letter, credits released). Everything goes through the Worker in workerd,
// PostgREST and Postgres; SQL is used only to check state (and, in the failure twin, to skip the
// retry back-off wait instead of sleeping).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, sqlRows, stack, signPipeline, eventually } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

const json = (body, headers = {}) => ({ method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

/** Posts a signed pipeline callback. */
async function pipeline(path, body) {
  const raw = JSON.stringify(body);
  const res = await w.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json', 'pipeline-signature': signPipeline(raw) }, body: raw });
  return { status: res.status, body: await res.json() };
}

function reconcile() {
  return JSON.parse(sql('select public.reconcile()'));
}

/** A visitor's draft, claimed by a new user; returns the user, the draft and the claim answer. */
async function draftAndClaim() {
  const created = await w.fetch('/v1/drafts', json({ prompt: 'A two-minute video about tide pools', template: 'explainer' }, { apikey: stack.anonKey }));
  assert.equal(created.status, 201);
  const draft = await created.json();
  assert.match(draft.claim_token, /^[0-9a-f]{64}$/);
  const user = createUser();
  const claimed = await w.fetch('/v1/drafts/claim', json({ claim_token: draft.claim_token }, bearer(user.token)));
  assert.equal(claimed.status, 200);
  const claim = await claimed.json();
  assert.equal(claim.draft.id, draft.draft_id);
  return { user, draft, claim };
}

async function generate(user, body, key = randomUUID()) {
  const res = await w.fetch('/v1/generate', json(body, { ...bearer(user.token), 'idempotency-key': key }));
  return { res, body: await res.json() };
}

test('the whole journey: draft, sign-in, claim, generate, queue, pipeline, READY, credits settled', async () => {
  const { user, draft } = await draftAndClaim();
  let balance = await (await w.fetch('/v1/balance', { headers: bearer(user.token) })).json();
  assert.equal(balance.available, 10, 'the welcome credits');

  // standard-v1 costs 2 + 1 per minute: 4 credits held for 2 minutes.
  const { res, body } = await generate(user, { model_id: 'standard-v1', draft_id: draft.draft_id, target_minutes: 2 });
  assert.equal(res.status, 202);
  const job = body.job;
  assert.equal(res.headers.get('location'), `/v1/jobs/${job.id}`);
  assert.equal(res.headers.get('idempotent-replayed'), null);
  assert.equal(job.status, 'QUEUED');
  assert.equal(job.credits_reserved, 4);
  assert.deepEqual([body.balance.available, body.balance.held], [6, 4]);

  // The queue hands the job to the pipeline.
  const message = await eventually(() => w.queued.find((m) => m.job_id === job.id));
  assert.equal(message.type, 'job.created');

  // The pipeline claims it, reports progress through the steps, and succeeds at 3 credits.
  const claimed = await pipeline('/v1/pipeline/claim', { worker_id: 'gpu-1', limit: 50 });
  assert.equal(claimed.status, 200);
  assert.ok(claimed.body.jobs.some((j) => j.id === job.id), 'the new job is claimable');
  // States named alike in the PRD and in the served OpenAPI JobStatus enum (the old names, e.g.
  // VOICING -> VOICE_GEN, are mapped by the database: tests/db/app_surface_test.sql).
  for (const [status, progress, expected] of [['SCRIPTING', 20, 'SCRIPTING'], ['RENDERING', 80, 'RENDERING']]) {
    // The heartbeat carries the lease it extends to (a long render asks for an hour).
    const r = await pipeline('/v1/pipeline/events', { type: 'job.progress', event_id: randomUUID(), job_id: job.id, worker_id: 'gpu-1', attempt: 1, status, progress, message: `${status} started`, visibility_timeout_seconds: 3600 });
    assert.equal(r.status, 200);
    assert.equal(r.body.applied, true);
    assert.equal(r.body.job.status, expected);
  }
  assert.equal(sql(`select locked_until > now() + interval '50 minutes' from public.jobs where id = '${job.id}'`), 't', 'the lease the worker asked for');
  const done = await pipeline('/v1/pipeline/events', {
    type: 'job.succeeded', event_id: randomUUID(), job_id: job.id, worker_id: 'gpu-1', attempt: 1, actual_cost: 3,
    output_url: 'https://cdn.example.test/v/1.mp4', manifest: { scenes: 4 },
    assets: [{ kind: 'video', url: 'https://cdn.example.test/v/1.mp4' }, { kind: 'audio', url: 'https://cdn.example.test/v/1.mp3' }],
  });
  assert.equal(done.status, 200);
  assert.equal(done.body.applied, true);

  // A late progress report and a duplicate success change nothing.
  const late = await pipeline('/v1/pipeline/events', { type: 'job.progress', event_id: randomUUID(), job_id: job.id, worker_id: 'gpu-1', attempt: 1, status: 'UPLOADING', progress: 90 });
  assert.equal(late.body.applied, false);
  const again = await pipeline('/v1/pipeline/events', { type: 'job.succeeded', event_id: randomUUID(), job_id: job.id, worker_id: 'gpu-1', attempt: 1, actual_cost: 4 });
  assert.equal(again.body.applied, false);

  const view = await (await w.fetch(`/v1/jobs/${job.id}`, { headers: bearer(user.token) })).json();
  assert.equal(view.status, 'READY');
  assert.equal(view.output_url, 'https://cdn.example.test/v/1.mp4');
  assert.deepEqual(view.steps.map((s) => s.name), ['SCRIPTING', 'RENDERING']);
  assert.equal(view.assets.length, 2);

  // 3 captured, 1 released: 7 left, nothing held.
  balance = await (await w.fetch('/v1/balance', { headers: bearer(user.token) })).json();
  assert.deepEqual([balance.available, balance.held], [7, 0]);
  const ledger = await (await w.fetch('/v1/ledger?limit=10', { headers: bearer(user.token) })).json();
  assert.deepEqual(ledger.items.map((e) => e.type), ['release', 'capture', 'hold', 'grant']);
  assert.deepEqual(ledger.items.map((e) => e.balance_available_after), [7, 6, 6, 10]);
  const page2 = await (await w.fetch(`/v1/ledger?limit=2&before=${ledger.items[1].id}`, { headers: bearer(user.token) })).json();
  assert.deepEqual(page2.items.map((e) => e.type), ['hold', 'grant']);
  assert.deepEqual(reconcile(), []);

  // Another user cannot see the job.
  const other = createUser();
  const hidden = await w.fetch(`/v1/jobs/${job.id}`, { headers: bearer(other.token) });
  assert.equal(hidden.status, 404);
  assert.equal((await hidden.json()).error.code, 'not_found');
});

test('the failure twin: retryable failures, then dead letter, credits released', async () => {
  const user = createUser();
  const { res, body } = await generate(user, { model_id: 'standard-v1', prompt: 'Volcanoes in five facts', target_minutes: 1 });
  assert.equal(res.status, 202);
  const id = body.job.id;
  const attempts = Number(sql(`select max_attempts from public.jobs where id = '${id}'`));
  assert.ok(attempts >= 2);
  for (let attempt = 1; attempt <= attempts; attempt++) {
    // Skip the back-off wait: the job is due now (state arranged, not slept through).
    sql(`update public.jobs set next_retry_at = now() - interval '1 second' where id = '${id}'`);
    const claimed = await pipeline('/v1/pipeline/claim', { worker_id: 'gpu-2', limit: 50 });
    assert.ok(claimed.body.jobs.some((j) => j.id === id), `attempt ${attempt} claims the job`);
    if (attempt > 1) {
      // A late success of the previous attempt, from the same worker id, changes nothing.
      const stale = await pipeline('/v1/pipeline/events', { type: 'job.succeeded', event_id: randomUUID(), job_id: id, worker_id: 'gpu-2', attempt: attempt - 1, actual_cost: 1 });
      assert.equal(stale.status, 200);
      assert.equal(stale.body.applied, false, 'an event of an earlier attempt');
      assert.equal(stale.body.job.status, 'SCRIPTING');
    }
    const failed = await pipeline('/v1/pipeline/events', { type: 'job.failed', event_id: randomUUID(), job_id: id, worker_id: 'gpu-2', attempt, error_code: 'render_crashed', error_message: 'GPU lost', retryable: true });
    assert.equal(failed.status, 200);
    assert.equal(failed.body.job.status, attempt < attempts ? 'QUEUED' : 'FAILED');
  }
  const [job] = sqlRows(`select status, dead_lettered_at is not null as dead, attempts from public.jobs where id = '${id}'`);
  assert.deepEqual(job, { status: 'FAILED', dead: true, attempts });
  const balance = await (await w.fetch('/v1/balance', { headers: bearer(user.token) })).json();
  assert.deepEqual([balance.available, balance.held], [10, 0], 'every held credit came back');
  assert.deepEqual(reconcile(), []);
});

test('K parallel generate at balance B: exactly floor(B/c) accepted, the rest 402', async () => {
  const user = createUser();
  const K = 8; // c = 3 (standard-v1, 1 minute), B = 10: 3 accepted.
  const results = await Promise.all(Array.from({ length: K }, () => generate(user, { model_id: 'standard-v1', prompt: 'Parallel', target_minutes: 1 })));
  const statuses = results.map((r) => r.res.status).sort();
  assert.deepEqual(statuses, [202, 202, 202, 402, 402, 402, 402, 402]);
  for (const r of results.filter((r) => r.res.status === 402)) assert.equal(r.body.error.code, 'insufficient_credits');
  const [b] = sqlRows(`select available, held from public.credit_balances where user_id = '${user.id}'`);
  assert.deepEqual(b, { available: 1, held: 9 });
  assert.deepEqual(reconcile(), []);
});

test('idempotency: replay, different body, 50 parallel with one key, per-user scope, failed requests not stored', async () => {
  const user = createUser();
  const key = randomUUID();
  const req = { model_id: 'draft-v1', prompt: 'Replay me', target_minutes: 1 };
  const first = await generate(user, req, key);
  assert.equal(first.res.status, 202);
  for (let i = 0; i < 3; i++) {
    const replay = await generate(user, req, key);
    assert.equal(replay.res.status, 202);
    assert.equal(replay.res.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(replay.body, first.body, 'the stored response, identical');
  }
  const changed = await generate(user, { ...req, prompt: 'Something else' }, key);
  assert.equal(changed.res.status, 422);
  assert.equal(changed.body.error.code, 'idempotency_key_reused');

  // Another user with the same key gets their own job, never the first user's response.
  const other = createUser();
  const theirs = await generate(other, req, key);
  assert.equal(theirs.res.status, 202);
  assert.notEqual(theirs.body.job.id, first.body.job.id);
  assert.equal(theirs.res.headers.get('idempotent-replayed'), null);

  // 50 at once with a fresh key: one job, one hold; the others replay or are told it is in flight.
  const burst = createUser();
  const burstKey = randomUUID();
  const all = await Promise.all(Array.from({ length: 50 }, () => generate(burst, req, burstKey)));
  for (const r of all) assert.ok([202, 409].includes(r.res.status), `status ${r.res.status}`);
  const jobIds = new Set(all.filter((r) => r.res.status === 202).map((r) => r.body.job.id));
  assert.equal(jobIds.size, 1);
  assert.equal(Number(sql(`select count(*) from public.jobs where user_id = '${burst.id}'`)), 1);
  assert.equal(Number(sql(`select count(*) from public.credit_holds where user_id = '${burst.id}'`)), 1);
  for (const r of all.filter((r) => r.res.status === 409)) assert.equal(r.body.error.code, 'idempotency_in_flight');
  await eventually(() => w.queued.filter((m) => jobIds.has(m.job_id)).length === 1);

  // A request that failed validation stores nothing: fixed and retried with the same key, it works.
  const fixKey = randomUUID();
  const bad = await generate(user, { model_id: 'no-such-model', prompt: 'x', target_minutes: 1 }, fixKey);
  assert.equal(bad.res.status, 400);
  assert.equal(bad.body.error.field, 'model_id');
  const fixed = await generate(user, { model_id: 'draft-v1', prompt: 'x', target_minutes: 1 }, fixKey);
  assert.equal(fixed.res.status, 202);
  assert.deepEqual(reconcile(), []);
});

test('drafts: one claim per token, same user again is the same answer, another user 409, expired 410, unknown 404', async () => {
  const { user, draft, claim } = await draftAndClaim();
  const again = await w.fetch('/v1/drafts/claim', json({ claim_token: draft.claim_token }, bearer(user.token)));
  assert.equal(again.status, 200);
  assert.deepEqual(await again.json(), claim);
  const thief = createUser();
  const stolen = await w.fetch('/v1/drafts/claim', json({ claim_token: draft.claim_token }, bearer(thief.token)));
  assert.equal(stolen.status, 409);
  assert.equal((await stolen.json()).error.code, 'draft_claimed');
  const unknown = await w.fetch('/v1/drafts/claim', json({ claim_token: 'a'.repeat(64) }, bearer(thief.token)));
  assert.equal(unknown.status, 404);
  assert.equal((await unknown.json()).error.code, 'draft_not_found');
  const old = await (await w.fetch('/v1/drafts', json({ prompt: 'Old idea' }, { apikey: stack.anonKey }))).json();
  sql(`update public.draft_prompts set expires_at = now() - interval '1 minute' where id = '${old.draft_id}'`);
  const expired = await w.fetch('/v1/drafts/claim', json({ claim_token: old.claim_token }, bearer(thief.token)));
  assert.equal(expired.status, 410);
  assert.equal((await expired.json()).error.code, 'draft_expired');
  const noKey = await w.fetch('/v1/drafts', json({ prompt: 'No key' }));
  assert.equal(noKey.status, 401);
  assert.equal((await noKey.json()).error.code, 'invalid_api_key');
});

test('drafts are rate limited per client address', async () => {
  const limited = await startWorker({}, { draftsPerMinute: 3 });
  try {
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await limited.fetch('/v1/drafts', json({ prompt: `Idea ${i}` }, { apikey: stack.anonKey }))).status);
    assert.deepEqual(statuses, [201, 201, 201, 429, 429]);
    const res = await limited.fetch('/v1/drafts', json({ prompt: 'Again' }, { apikey: stack.anonKey }));
    assert.equal(res.headers.get('retry-after'), '60');
    assert.equal((await res.json()).error.code, 'rate_limited');
  } finally {
    await limited.dispose();
  }
});

test('pipeline signatures: valid, wrong secret, stale, future, changed byte, missing; a replayed event is harmless', async () => {
  const raw = JSON.stringify({ worker_id: 'sig-test', limit: 1 });
  const post = (headers, body = raw) => w.fetch('/v1/pipeline/claim', { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
  const now = Math.floor(Date.now() / 1000);
  const cases = [
    ['wrong secret', { 'pipeline-signature': signPipeline(raw, { secret: 'not-the-secret' }) }, raw, 'invalid_signature'],
    ['stale timestamp', { 'pipeline-signature': signPipeline(raw, { t: now - 330 }) }, raw, 'signature_expired'],
    ['future timestamp', { 'pipeline-signature': signPipeline(raw, { t: now + 330 }) }, raw, 'signature_expired'],
    ['changed byte', { 'pipeline-signature': signPipeline(raw) }, raw.replace('sig-test', 'sig-tesT'), 'invalid_signature'],
    ['missing header', {}, raw, 'invalid_signature'],
    ['garbage header', { 'pipeline-signature': 'v1=zz' }, raw, 'invalid_signature'],
  ];
  for (const [name, headers, body, code] of cases) {
    const res = await post(headers, body);
    assert.equal(res.status, 400, name);
    assert.equal((await res.json()).error.code, code, name);
  }
  assert.equal((await post({ 'pipeline-signature': signPipeline(raw) })).status, 200);

  // The same signed event delivered twice: the second changes nothing.
  const user = createUser();
  const { body } = await generate(user, { model_id: 'draft-v1', prompt: 'Twice', target_minutes: 1 });
  await pipeline('/v1/pipeline/claim', { worker_id: 'gpu-3', limit: 50 });
  const event = JSON.stringify({ type: 'job.succeeded', event_id: randomUUID(), job_id: body.job.id, worker_id: 'gpu-3', attempt: 1, actual_cost: 1 });
  const headers = { 'content-type': 'application/json', 'pipeline-signature': signPipeline(event) };
  const one = await (await w.fetch('/v1/pipeline/events', { method: 'POST', headers, body: event })).json();
  const two = await (await w.fetch('/v1/pipeline/events', { method: 'POST', headers, body: event })).json();
  assert.deepEqual([one.applied, two.applied], [true, false]);
  assert.equal(Number(sql(`select count(*) from public.credit_ledger where user_id = '${user.id}' and type = 'capture'`)), 1);
  assert.deepEqual(reconcile(), []);
});

test('CORS: preflight for an allowed origin, none for another', async () => {
  const ok = await w.fetch('/v1/generate', { method: 'OPTIONS', headers: { origin: 'https://app.example.test', 'access-control-request-method': 'POST' } });
  assert.equal(ok.status, 204);
  assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example.test');
  assert.equal(ok.headers.get('access-control-allow-methods'), 'POST');
  assert.match(ok.headers.get('access-control-allow-headers'), /idempotency-key/);
  const evil = await w.fetch('/v1/generate', { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(evil.headers.get('access-control-allow-origin'), null);
  assert.match(evil.headers.get('vary') ?? '', /Origin/, 'caches key on the origin, allowed or not');
  const user = createUser();
  const real = await w.fetch('/v1/balance', { headers: { ...bearer(user.token), origin: 'https://app.example.test' } });
  assert.equal(real.headers.get('access-control-allow-origin'), 'https://app.example.test');
  assert.match(real.headers.get('access-control-expose-headers'), /idempotent-replayed/);
});
