// A project deleted while a generate for it is in flight (found in review): generate reads its
// project FOR KEY SHARE, so it waits for a delete_project in progress and then finds the project
// gone; no job is left held, hidden and claimable in a deleted project. The test runs the real
// delete_project, as the user, in a transaction of its own (it locks the project, cancels the
// project's job, and so also holds the user's balance row), lets a POST /v1/generate for that
// project start and wait, then commits the delete.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, eventually, session } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

const generate = (user, body) => w.fetch('/v1/generate', {
  method: 'POST',
  headers: { ...bearer(user.token), 'idempotency-key': randomUUID(), 'content-type': 'application/json' },
  body: JSON.stringify({ model_id: 'standard-v1', target_minutes: 1, ...body }),
});

test('a generate for a project being deleted waits for the delete and is refused: no job, no hold', async () => {
  const user = createUser();
  const available = sql(`select available from public.credit_balances where user_id = '${user.id}'`);
  const first = await generate(user, { prompt: 'A project to delete' });
  assert.equal(first.status, 202);
  const { job } = await first.json();

  const holder = session();
  holder.run('begin;');
  holder.run(`select set_config('request.jwt.claims', '{"sub": "${user.id}", "role": "authenticated", "aud": "authenticated"}', true);`);
  holder.run('set local role authenticated;');
  holder.run(`select (public.delete_project('${job.project_id}') -> 'canceled_jobs') ->> 0;`);
  await eventually(() => holder.output().includes(job.id), { timeoutMs: 15000 });

  const pending = generate(user, { project_id: job.project_id });
  await eventually(() => sql(`select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%generate%'`) !== '0',
    { timeoutMs: 15000 });
  holder.run('commit;');
  assert.equal(await holder.end(), 0, holder.output());

  const res = await pending;
  const body = await res.json();
  assert.equal(res.status, 404, JSON.stringify(body));
  assert.equal(body.error.code, 'not_found');
  assert.equal(sql(`select count(*) from public.jobs where project_id = '${job.project_id}' and status not in ('READY', 'FAILED', 'CANCELED')`), '0',
    'no live job in the deleted project');
  assert.equal(sql(`select count(*) from public.credit_holds where user_id = '${user.id}' and status = 'active'`), '0', 'nothing held');
  assert.equal(sql(`select available from public.credit_balances where user_id = '${user.id}'`), available,
    'the first job\'s hold came back; nothing else moved');
  assert.deepEqual(JSON.parse(sql('select public.reconcile()')), []);
});
