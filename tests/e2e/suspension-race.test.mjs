// A suspension that commits while a generate waits for the user's balance lock stops that
// generate (issue 13; ARCHITECTURE.md, the spend-limit and suspension invariant): generate checks
// suspension again under the balance lock, which the suspension takes too. The test holds the
// user's balance row in a transaction of its own, lets a POST /v1/generate pass its first check and
// wait on that lock, then suspends the user in the same transaction and commits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, eventually, session } from './harness.mjs';

let w;
before(async () => { w = await startWorker(); });
after(async () => { await w?.dispose(); });

test('a suspension committed while generate waits for the balance lock refuses that generate, writing nothing', async () => {
  const user = createUser();
  const jobsBefore = sql(`select count(*) from public.jobs where user_id = '${user.id}'`);
  const holder = session();
  holder.run('begin;');
  holder.run(`select 1 from public.credit_balances where user_id = '${user.id}' for update;`);
  await eventually(() => holder.output().includes('1'));

  const pending = w.fetch('/v1/generate', {
    method: 'POST',
    headers: { ...bearer(user.token), 'idempotency-key': randomUUID(), 'content-type': 'application/json' },
    body: JSON.stringify({ model_id: 'standard-v1', prompt: 'Raced by a suspension', target_minutes: 2 }),
  });
  // The generate is past its first suspension check and waits for the balance row.
  await eventually(() => sql(`select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%generate%'`) !== '0',
    { timeoutMs: 15000 });
  holder.run(`insert into public.account_controls (user_id, suspended_at, suspension_reason) values ('${user.id}', now(), 'race test')
              on conflict (user_id) do update set suspended_at = excluded.suspended_at;`);
  holder.run('commit;');
  assert.equal(await holder.end(), 0, holder.output());

  const res = await pending;
  const body = await res.json();
  assert.equal(res.status, 403, JSON.stringify(body));
  assert.equal(body.error.code, 'account_suspended');
  assert.equal(sql(`select count(*) from public.jobs where user_id = '${user.id}'`), jobsBefore, 'no job was made');
  assert.equal(sql(`select count(*) from public.credit_holds where user_id = '${user.id}'`), '0', 'no credits were held');
});
