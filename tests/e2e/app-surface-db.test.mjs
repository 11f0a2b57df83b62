// The database side of issue 11 seen through the real PostgREST 12 with the caller's token, before
// the Worker endpoints exist: reads decided by RLS (invoker RPCs over GET, plain table reads),
// cancel_job with exact ledger rows, another user's rows invisible, and account closing through
// delete_account and through `delete from auth.users`, each leaving a ledger that reconciles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createUser, stack, sql } from './harness.mjs';

const call = async (path, { token, method = 'GET', body } = {}) => {
  const res = await fetch(`${stack.postgrestUrl}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
};
const rpc = (name, token, body = {}) => call(`/rpc/${name}`, { token, method: 'POST', body });
const generate = async (user, request) => {
  const r = await rpc('generate', user.token, { p_idempotency_key: randomUUID(), p_request: { model_id: 'standard-v1', target_minutes: 1, ...request } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.response.job;
};
const ledgerOf = (jobId) => sql(`select string_agg(type || ':' || delta_available || ':' || delta_held, ',' order by id) from public.credit_ledger where job_id = '${jobId}'`);
const reconcile = () => JSON.parse(sql('select public.reconcile()'));

test('projects and jobs are read with the caller\'s token: RLS decides, another user sees nothing', async () => {
  const alice = createUser();
  const bob = createUser();
  const job = await generate(alice, { prompt: 'Tide pools at dawn' });

  const list = await call('/rpc/list_projects?p_limit=10', { token: alice.token });
  assert.equal(list.status, 200, 'a stable invoker RPC answers GET');
  assert.equal(list.body.items.length, 1);
  const projectId = list.body.items[0].id;
  const page = await call(`/rpc/get_project?p_project_id=${projectId}`, { token: alice.token });
  assert.deepEqual(page.body.jobs.map((j) => j.id), [job.id]);
  const queued = await call('/rpc/list_jobs?p_status=QUEUED', { token: alice.token });
  assert.deepEqual(queued.body.items.map((j) => j.id), [job.id]);

  const foreign = await call(`/rpc/get_project?p_project_id=${projectId}`, { token: bob.token });
  assert.equal(foreign.status, 404);
  assert.equal(foreign.body.hint, 'not_found');
  assert.deepEqual((await call(`/jobs?id=eq.${job.id}&select=id`, { token: bob.token })).body, [], 'RLS hides the job from another user');
  assert.deepEqual((await call(`/jobs?id=eq.${job.id}&select=id,status`, { token: alice.token })).body, [{ id: job.id, status: 'QUEUED' }]);
  assert.equal((await call('/rpc/list_projects', { token: stack.anonKey })).status, 401, 'anon cannot list projects');
  const presets = await call('/niche_presets?select=id&order=sort_order', { token: stack.anonKey });
  assert.equal(presets.status, 200);
  assert.ok(presets.body.some((p) => p.id === 'history'), 'visitors can read the niche presets');

  const bad = await rpc('update_project', alice.token, { p_project_id: projectId, p_changes: { title: 'two\nlines' } });
  assert.equal(bad.status, 400);
  assert.deepEqual([bad.body.hint, bad.body.details], ['invalid_request', 'title']);
  const renamed = await rpc('update_project', alice.token, { p_project_id: projectId, p_changes: { title: 'Tide pools', niche_preset: 'science' } });
  assert.equal(renamed.body.project.title, 'Tide pools');
  assert.equal((await rpc('update_project', bob.token, { p_project_id: projectId, p_changes: { title: 'Mine' } })).status, 404);
});

test('cancel_job: a queued job returns its credits exactly, once', async () => {
  const user = createUser();
  const job = await generate(user, { prompt: 'Volcanoes' });
  assert.equal(ledgerOf(job.id), 'hold:-3:3');
  const other = createUser();
  assert.equal((await rpc('cancel_job', other.token, { p_job_id: job.id })).status, 404, 'another user\'s job is 404');
  const canceled = await rpc('cancel_job', user.token, { p_job_id: job.id });
  assert.equal(canceled.status, 200);
  assert.equal(canceled.body.outcome, 'canceled');
  assert.equal(canceled.body.job.status, 'CANCELED');
  assert.deepEqual([canceled.body.balance.available, canceled.body.balance.held], [10, 0]);
  assert.equal(ledgerOf(job.id), 'hold:-3:3,release:3:-3');
  const again = await rpc('cancel_job', user.token, { p_job_id: job.id });
  assert.equal(again.body.outcome, 'unchanged');
  assert.equal(ledgerOf(job.id), 'hold:-3:3,release:3:-3', 'the second cancel writes nothing');
  assert.deepEqual(reconcile(), []);
});

test('delete_account through PostgREST and delete from auth.users both close the account and keep a reconciling ledger', async () => {
  for (const how of ['rpc', 'auth.users']) {
    const user = createUser();
    sql(`update public.profiles set display_name = 'Real Name' where user_id = '${user.id}'`);
    const job = await generate(user, { prompt: 'My private idea' });
    const ledgerRows = Number(sql(`select count(*) from public.credit_ledger where user_id = '${user.id}'`));
    if (how === 'rpc') {
      const closed = await rpc('delete_account', user.token);
      assert.equal(closed.status, 200, JSON.stringify(closed.body));
      assert.equal(closed.body.closed, true);
    } else {
      sql(`delete from auth.users where id = '${user.id}'`);
    }
    assert.equal(sql(`select count(*) from auth.users where id = '${user.id}'`), '0', `${how}: the sign-in is gone`);
    assert.equal(sql(`select coalesce(display_name, '-') || '/' || (deleted_at is not null) from public.profiles where user_id = '${user.id}'`), '-/true',
      `${how}: the profile is an anonymised tombstone`);
    assert.equal(sql(`select count(*) from public.projects where user_id = '${user.id}' and prompt <> 'Deleted'`), '0', `${how}: no prompt left`);
    assert.equal(sql(`select status from public.jobs where id = '${job.id}'`), 'CANCELED', `${how}: the job is canceled`);
    assert.equal(Number(sql(`select count(*) from public.credit_ledger where user_id = '${user.id}'`)), ledgerRows + 1, `${how}: ledger kept, one release added`);
    const refused = await rpc('get_balance', user.token);
    assert.equal(refused.status, 403, `${how}: the still-valid token is refused`);
    assert.equal(refused.body.hint, 'account_closed');
    assert.deepEqual(reconcile(), [], `${how}: the ledger reconciles`);
  }
});
