// A project deleted while a generate for it is in flight (found in review): generate reads its
// project FOR KEY SHARE before it locks the balance, so it waits for a delete_project in progress
// and then finds the project gone; no job is left held, hidden and claimable in a deleted project.
// The test holds the project FOR UPDATE in a transaction of its own, lets a POST /v1/generate for
// that project start and wait, then runs the real delete_project, as the user, in the same
// transaction (it cancels the project's queued job, so it needs the user's balance row) and
// commits. Had the generate taken the balance first (the project read without a lock), the delete
// and the generate would deadlock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, callWorker, createUser, bearer, sql, sqlRows, stack, eventually, session } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

const generate = (user, body) => w.fetch('/v1/generate', {
  method: 'POST',
  headers: { ...bearer(user.token), 'idempotency-key': randomUUID(), 'content-type': 'application/json' },
  body: JSON.stringify({ model_id: 'standard-v1', target_minutes: 1, ...body }),
});

/** Deletes `projectId` (with its queued job `jobId`, if any) while a generate with `body` waits for it. */
async function race(user, projectId, jobId, body) {
  const holder = session();
  holder.run('begin;');
  holder.run(`select 'locked' from public.projects where id = '${projectId}' for update;`);
  await eventually(() => holder.output().includes('locked'), { timeoutMs: 15000 });

  const pending = generate(user, body);
  await eventually(() => sql(`select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%generate%'`) !== '0',
    { timeoutMs: 15000 });
  holder.run(`select set_config('request.jwt.claims', '{"sub": "${user.id}", "role": "authenticated", "aud": "authenticated"}', true);`);
  holder.run('set local role authenticated;');
  holder.run(`select (public.delete_project('${projectId}') -> 'canceled_jobs') ->> 0;`);
  holder.run('commit;');
  assert.equal(await holder.end(), 0, `the delete committed: ${holder.output()}`);
  if (jobId) assert.ok(holder.output().includes(jobId), 'the delete canceled the project\'s queued job');

  const res = await pending;
  return { status: res.status, body: await res.json() };
}

function assertNothingLeft(user, projectId, available) {
  assert.equal(sql(`select count(*) from public.jobs where project_id = '${projectId}' and status not in ('READY', 'FAILED', 'CANCELED')`), '0',
    'no live job in the deleted project');
  assert.equal(sql(`select count(*) from public.credit_holds where user_id = '${user.id}' and status = 'active'`), '0', 'nothing held');
  assert.equal(sql(`select available from public.credit_balances where user_id = '${user.id}'`), available,
    'the canceled job\'s hold came back; nothing else moved');
  assert.deepEqual(JSON.parse(sql('select public.reconcile()')), []);
}

test('a generate for a project being deleted waits for the delete and is refused: no job, no hold', async () => {
  const user = createUser();
  const available = sql(`select available from public.credit_balances where user_id = '${user.id}'`);
  const first = await generate(user, { prompt: 'A project to delete' });
  assert.equal(first.status, 202);
  const { job } = await first.json();

  const res = await race(user, job.project_id, job.id, { project_id: job.project_id });
  assert.equal(res.status, 404, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'not_found');
  assertNothingLeft(user, job.project_id, available);
});

test('the same through a claimed draft: the draft\'s project is deleted meanwhile, draft_not_found', async () => {
  const user = createUser();
  const available = sql(`select available from public.credit_balances where user_id = '${user.id}'`);
  const draft = await callWorker(w, 'POST', '/v1/drafts', null, { prompt: 'A visitor draft' }, { apikey: stack.anonKey });
  assert.equal(draft.status, 201, draft.text);
  const claim = await callWorker(w, 'POST', '/v1/drafts/claim', user, { claim_token: draft.body.claim_token });
  assert.equal(claim.status, 200, claim.text);
  const [row] = sqlRows(`select id, project_id from public.draft_prompts where claimed_by = '${user.id}'`);
  assert.ok(row?.project_id, 'the claim made a project');

  const res = await race(user, row.project_id, null, { draft_id: row.id });
  assert.equal(res.status, 404, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'draft_not_found', 'the draft read found its project gone (not the insert\'s backstop)');
  assertNothingLeft(user, row.project_id, available);
});
