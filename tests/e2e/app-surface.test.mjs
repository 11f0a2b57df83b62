// The Worker endpoints of issue 11 over the database side (app-surface-db): projects (list, get,
// PATCH, DELETE), the job list, cancel and account closing, through the Worker in workerd with the
// caller's own token, PostgREST and Postgres. SQL is used only to set up personal data and to check
// state: exact ledger rows, row counts that bad input must leave unchanged, and reconcile().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, callWorker, createUser, bearer, sql } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

/** Calls the Worker as `user`, with a JSON body when one is given; returns status and parsed body. */
const call = (method, path, user, body, headers) => callWorker(w, method, path, user, body, headers);

/** A QUEUED job of 3 credits (standard-v1, 1 minute) in a new project of `user`. */
async function generate(user, prompt) {
  const r = await call('POST', '/v1/generate', user, { model_id: 'standard-v1', prompt, target_minutes: 1 }, { 'idempotency-key': randomUUID() });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return r.body.job;
}

const ledgerOf = (jobId) => sql(`select coalesce(string_agg(type || ':' || delta_available || ':' || delta_held, ',' order by id), '') from public.credit_ledger where job_id = '${jobId}'`);
const reconcile = () => JSON.parse(sql('select public.reconcile()'));
/** What bad input must not change: the user's rows in every table these endpoints write. */
const footprint = (user) => sql(`select concat_ws('|',
  (select count(*) from public.projects where user_id = '${user.id}'),
  (select string_agg(md5(to_jsonb(p)::text), ',' order by id) from public.projects p where user_id = '${user.id}'),
  (select string_agg(id::text || status, ',' order by id) from public.jobs where user_id = '${user.id}'),
  (select count(*) from public.credit_ledger where user_id = '${user.id}'),
  (select count(*) from public.storage_deletions))`);

test('projects: list with cursor pages, get with its jobs, PATCH changes fields, another user sees 404', async () => {
  const alice = createUser();
  const bob = createUser();
  const first = await generate(alice, 'Tide pools at dawn');
  const second = await generate(alice, 'Volcanoes of Iceland');

  const all = await call('GET', '/v1/projects', alice);
  assert.equal(all.status, 200);
  assert.equal(all.body.items.length, 2);
  assert.equal(all.body.next_before, null);
  assert.deepEqual(all.body.items.map((p) => p.id), [second.project_id, first.project_id], 'newest first');
  assert.ok(all.body.items.every((p) => !('transcript_text' in p) && !('user_id' in p)), 'lists leave out the transcript');

  const page1 = await call('GET', '/v1/projects?limit=1', alice);
  assert.deepEqual(page1.body.items.map((p) => p.id), [second.project_id]);
  assert.equal(page1.body.next_before, second.project_id);
  const page2 = await call('GET', `/v1/projects?limit=1&before=${page1.body.next_before}`, alice);
  assert.deepEqual(page2.body.items.map((p) => p.id), [first.project_id]);
  assert.equal(page2.body.next_before, null);

  const one = await call('GET', `/v1/projects/${first.project_id}`, alice);
  assert.equal(one.status, 200);
  assert.equal(one.body.project.prompt, 'Tide pools at dawn');
  assert.deepEqual(one.body.jobs.map((j) => j.id), [first.id]);

  const patched = await call('PATCH', `/v1/projects/${first.project_id}`, alice,
    { title: 'Tide pools', niche_preset: 'science', target_minutes: 12, transcript_source: 'manual', transcript_text: 'Line one\nLine two' });
  assert.equal(patched.status, 200, JSON.stringify(patched.body));
  assert.equal(patched.body.project.title, 'Tide pools');
  assert.equal(patched.body.project.niche_preset, 'science');
  assert.equal(patched.body.project.target_minutes, 12);
  assert.equal(patched.body.project.transcript_text, 'Line one\nLine two');
  const again = await call('PATCH', `/v1/projects/${first.project_id}`, alice, { title: 'Tide pools' });
  assert.equal(again.status, 200, 'PATCH needs no Idempotency-Key and can be repeated');
  assert.equal(again.body.project.title, 'Tide pools');
  const cleared = await call('PATCH', `/v1/projects/${first.project_id}`, alice, { transcript_source: 'auto', transcript_text: null, niche_preset: null });
  assert.equal(cleared.status, 200, JSON.stringify(cleared.body));
  assert.equal(cleared.body.project.transcript_text, null, 'null clears a field (it reaches the database as sent)');
  assert.equal(cleared.body.project.niche_preset, null);
  assert.equal((await call('GET', `/v1/projects/${first.project_id}`, alice)).body.project.title, 'Tide pools');

  const before = footprint(alice);
  for (const [method, body] of [['GET'], ['PATCH', { title: 'Mine now' }], ['DELETE']]) {
    const r = await call(method, `/v1/projects/${first.project_id}`, bob, body);
    assert.equal(r.status, 404, `${method} of another user's project`);
    assert.equal(r.body.error.code, 'not_found');
  }
  assert.equal((await call('GET', '/v1/projects', bob)).body.items.length, 0, 'another user lists nothing');
  assert.equal(footprint(alice), before, 'another user changed nothing');
  assert.deepEqual(reconcile(), []);
});

test('bad input to the project and job endpoints answers a clear JSON error and writes nothing', async () => {
  const user = createUser();
  const job = await generate(user, 'Deep sea vents');
  const id = job.project_id;
  const start = footprint(user);
  const cases = [
    ['GET', '/v1/projects/not-a-uuid', undefined, 404, 'not_found'],
    ['PATCH', '/v1/projects/not-a-uuid', { title: 'x' }, 404, 'not_found'],
    ['DELETE', '/v1/projects/not-a-uuid', undefined, 404, 'not_found'],
    ['GET', `/v1/projects/${randomUUID()}`, undefined, 404, 'not_found'],
    ['PATCH', `/v1/projects/${randomUUID()}`, { title: 'x' }, 404, 'not_found'],
    ['DELETE', `/v1/projects/${randomUUID()}`, undefined, 404, 'not_found'],
    ['POST', '/v1/jobs/not-a-uuid/cancel', undefined, 404, 'not_found'],
    ['POST', `/v1/jobs/${randomUUID()}/cancel`, undefined, 404, 'not_found'],
    ['GET', '/v1/projects?limit=0', undefined, 400, 'invalid_request', 'limit'],
    ['GET', '/v1/projects?limit=101', undefined, 400, 'invalid_request', 'limit'],
    ['GET', '/v1/projects?limit=ten', undefined, 400, 'invalid_request', 'limit'],
    ['GET', '/v1/projects?before=42', undefined, 400, 'invalid_request', 'before'],
    ['GET', `/v1/projects?before=${randomUUID()}`, undefined, 400, 'invalid_request', 'before'],
    ['GET', '/v1/projects?sort=asc', undefined, 400, 'invalid_request', 'query'],
    ['GET', '/v1/projects?status=QUEUED', undefined, 400, 'invalid_request', 'query'],
    ['GET', '/v1/jobs?limit=-1', undefined, 400, 'invalid_request', 'limit'],
    ['GET', '/v1/jobs?status=queued', undefined, 400, 'invalid_request', 'status'],
    ['GET', '/v1/jobs?status=DONE', undefined, 400, 'invalid_request', 'status'],
    ['GET', `/v1/jobs?before=${randomUUID()}`, undefined, 400, 'invalid_request', 'before'],
    ['PATCH', `/v1/projects/${id}`, { title: 'ok', color: 'red' }, 400, 'invalid_request', 'color'],
    ['PATCH', `/v1/projects/${id}`, { user_id: randomUUID() }, 400, 'invalid_request', 'user_id'],
    ['PATCH', `/v1/projects/${id}`, { deleted_at: null }, 400, 'invalid_request', 'deleted_at'],
    ['PATCH', `/v1/projects/${id}`, { title: 5 }, 400, 'invalid_request', 'title'],
    ['PATCH', `/v1/projects/${id}`, { target_minutes: '3' }, 400, 'invalid_request', 'target_minutes'],
    ['PATCH', `/v1/projects/${id}`, { target_minutes: 2.5 }, 400, 'invalid_request', 'target_minutes'],
    ['PATCH', `/v1/projects/${id}`, { target_minutes: 0 }, 400, 'invalid_request', 'target_minutes'],
    ['PATCH', `/v1/projects/${id}`, { title: '' }, 400, 'invalid_request', 'title'],
    ['PATCH', `/v1/projects/${id}`, { title: 'two\nlines' }, 400, 'invalid_request', 'title'],
    ['PATCH', `/v1/projects/${id}`, { niche_preset: 'no-such-preset' }, 400, 'invalid_request', 'niche_preset'],
    ['PATCH', `/v1/projects/${id}`, { transcript_source: 'manual', transcript_text: null }, 400, 'invalid_request', 'transcript_text'],
    ['PATCH', `/v1/projects/${id}`, { transcript_text: 'x'.repeat(50001) }, 400, 'invalid_request', 'transcript_text'],
    ['PATCH', `/v1/projects/${id}`, {}, 400, 'invalid_request', 'changes'],
    ['PATCH', `/v1/projects/${id}`, [], 400, 'invalid_request'],
    ['PATCH', `/v1/projects/${id}`, '{"title": ', 400, 'invalid_json'],
    ['PATCH', `/v1/projects/${id}`, '{"title":"a","title":"b"}', 400, 'invalid_json'],
    ['PATCH', `/v1/projects/${id}`, 'x'.repeat(300 * 1024), 413, 'payload_too_large'],
  ];
  for (const [method, path, body, status, code, field] of cases) {
    const r = await call(method, path, user, body);
    const what = `${method} ${path} ${JSON.stringify(body)?.slice(0, 60)}`;
    assert.equal(r.status, status, `${what}: ${JSON.stringify(r.body)}`);
    assert.match(r.contentType ?? '', /application\/json/, what);
    assert.equal(r.body.error.code, code, what);
    if (field) assert.equal(r.body.error.field, field, what);
    assert.ok(r.body.error.message.length > 0, what);
  }
  const wrongType = await call('PATCH', `/v1/projects/${id}`, user, 'title=x', { 'content-type': 'text/plain' });
  assert.equal(wrongType.status, 415);
  assert.equal((await call('GET', `/v1/projects/${id}`, null)).status, 401, 'no token');
  assert.equal((await call('PUT', `/v1/projects/${id}`, user, { title: 'x' })).status, 405);
  assert.equal(footprint(user), start, 'nothing was written');
  assert.equal(ledgerOf(job.id), 'hold:-3:3');
});

test('cancel: a queued job returns its credits exactly; a second cancel changes nothing; the job list filters by status', async () => {
  const user = createUser();
  const other = createUser();
  const job = await generate(user, 'Coral reefs');
  assert.equal(ledgerOf(job.id), 'hold:-3:3');

  const queued = await call('GET', '/v1/jobs?status=QUEUED', user);
  assert.equal(queued.status, 200);
  assert.deepEqual(queued.body.items.map((j) => j.id), [job.id]);
  assert.equal(queued.body.next_before, null);

  const foreign = await call('POST', `/v1/jobs/${job.id}/cancel`, other);
  assert.equal(foreign.status, 404, 'another user\'s job');
  assert.equal(foreign.body.error.code, 'not_found');
  assert.equal((await call('GET', `/v1/jobs/${job.id}`, other)).status, 404);
  assert.equal((await call('GET', '/v1/jobs', other)).body.items.length, 0);
  assert.equal(ledgerOf(job.id), 'hold:-3:3', 'the refused cancel wrote nothing');

  const canceled = await call('POST', `/v1/jobs/${job.id}/cancel`, user);
  assert.equal(canceled.status, 200, JSON.stringify(canceled.body));
  assert.equal(canceled.body.outcome, 'canceled');
  assert.equal(canceled.body.job.status, 'CANCELED');
  assert.deepEqual([canceled.body.balance.available, canceled.body.balance.held], [10, 0], 'all 3 credits back');
  assert.equal(ledgerOf(job.id), 'hold:-3:3,release:3:-3', 'one release of exactly the hold');

  const again = await call('POST', `/v1/jobs/${job.id}/cancel`, user);
  assert.equal(again.status, 200);
  assert.equal(again.body.outcome, 'unchanged');
  assert.deepEqual(again.body.job, canceled.body.job, 'the same job');
  assert.deepEqual(again.body.balance, canceled.body.balance, 'the same balance');
  assert.equal(ledgerOf(job.id), 'hold:-3:3,release:3:-3', 'the second cancel wrote nothing');

  assert.deepEqual((await call('GET', '/v1/jobs?status=QUEUED', user)).body.items, []);
  const done = await call('GET', '/v1/jobs?status=CANCELED&limit=5', user);
  assert.deepEqual(done.body.items.map((j) => j.id), [job.id]);
  const balance = await call('GET', '/v1/balance', user);
  assert.deepEqual([balance.body.available, balance.body.held], [10, 0]);
  assert.deepEqual(reconcile(), []);
});

test('delete project: hidden from lists and get, its queued job canceled with credits back, idempotent', async () => {
  const user = createUser();
  const kept = await generate(user, 'Kept project');
  const gone = await generate(user, 'Project to delete');

  const deleted = await call('DELETE', `/v1/projects/${gone.project_id}`, user);
  assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
  assert.equal(deleted.body.project_id, gone.project_id);
  assert.equal(deleted.body.deleted, true);
  assert.equal(deleted.body.replayed, false);
  assert.deepEqual(deleted.body.canceled_jobs, [gone.id]);
  assert.deepEqual(deleted.body.cancel_requested_jobs, []);
  assert.ok(Array.isArray(deleted.body.storage_keys));
  assert.equal(ledgerOf(gone.id), 'hold:-3:3,release:3:-3', 'the queued job\'s hold came back');

  const again = await call('DELETE', `/v1/projects/${gone.project_id}`, user);
  assert.equal(again.status, 200);
  assert.equal(again.body.replayed, true);
  assert.equal(ledgerOf(gone.id), 'hold:-3:3,release:3:-3', 'the second delete wrote nothing');

  assert.deepEqual((await call('GET', '/v1/projects', user)).body.items.map((p) => p.id), [kept.project_id]);
  assert.equal((await call('GET', `/v1/projects/${gone.project_id}`, user)).status, 404);
  assert.equal((await call('PATCH', `/v1/projects/${gone.project_id}`, user, { title: 'Back' })).status, 404);
  assert.deepEqual((await call('GET', '/v1/jobs', user)).body.items.map((j) => j.id), [kept.id]);
  assert.equal((await call('GET', `/v1/jobs/${gone.id}`, user)).status, 404);
  assert.equal((await call('POST', `/v1/jobs/${gone.id}/cancel`, user)).status, 404);
  assert.deepEqual(reconcile(), []);
});

test('delete account: personal data gone, ledger kept, token useless afterwards, ledger reconciles', async () => {
  const user = createUser();
  sql(`update public.profiles set display_name = 'Real Name', avatar_url = 'https://example.test/me.png' where user_id = '${user.id}'`);
  const job = await generate(user, 'My private idea');
  await call('PATCH', `/v1/projects/${job.project_id}`, user, { transcript_source: 'manual', transcript_text: 'My private words' });
  const draftId = randomUUID();
  sql(`insert into public.draft_prompts (id, prompt, claim_token_hash, claimed_by, claimed_at, expires_at)
       values ('${draftId}', 'A private draft', decode(md5('${draftId}') || md5('${draftId}'), 'hex'), '${user.id}', now(), now() + interval '7 days')`);
  const ledgerRows = Number(sql(`select count(*) from public.credit_ledger where user_id = '${user.id}'`));

  const closed = await call('DELETE', '/v1/account', user);
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  assert.deepEqual(closed.body, { closed: true, replayed: false, canceled_jobs: 1, released_holds: 0, files_queued_for_deletion: 0 });

  assert.equal(sql(`select count(*) from auth.users where id = '${user.id}'`), '0', 'the sign-in is gone');
  assert.equal(sql(`select concat_ws('/', coalesce(display_name, '-'), coalesce(avatar_url, '-'), (deleted_at is not null)::text) from public.profiles where user_id = '${user.id}'`),
    '-/-/true', 'the profile is an anonymised tombstone');
  assert.equal(sql(`select count(*) from public.projects where user_id = '${user.id}' and (prompt <> 'Deleted' or transcript_text is not null or deleted_at is null)`), '0',
    'no project text left');
  assert.equal(sql(`select count(*) from public.draft_prompts where claimed_by = '${user.id}'`), '0', 'claimed drafts deleted');
  assert.equal(sql(`select status from public.jobs where id = '${job.id}'`), 'CANCELED');
  assert.equal(Number(sql(`select count(*) from public.credit_ledger where user_id = '${user.id}'`)), ledgerRows + 1, 'ledger kept, one release added');
  assert.equal(ledgerOf(job.id), 'hold:-3:3,release:3:-3');

  const balance = await call('GET', '/v1/balance', user);
  assert.equal(balance.status, 403, 'the still-valid token is refused');
  assert.equal(balance.body.error.code, 'account_closed');
  assert.equal((await call('GET', '/v1/projects', user)).body.items?.length ?? 0, 0, 'nothing to list');
  const spend = await call('POST', '/v1/generate', user, { model_id: 'standard-v1', prompt: 'More', target_minutes: 1 }, { 'idempotency-key': randomUUID() });
  assert.equal(spend.status, 403);
  assert.equal(spend.body.error.code, 'account_closed');
  const twice = await call('DELETE', '/v1/account', user);
  assert.equal(twice.status, 200);
  assert.equal(twice.body.replayed, true);
  assert.deepEqual(reconcile(), []);
});
