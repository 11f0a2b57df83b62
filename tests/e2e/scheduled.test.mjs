// The cron trigger runs the sweepers (issue 5): holds past their expiry are released and their
// jobs failed, expired credits leave the balance, expired idempotency records and long-expired
// unclaimed drafts are deleted; invariants hold afterwards. State is aged with SQL (no sleeping).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, sqlRows, stack } from './harness.mjs';

test('the scheduled handler sweeps stale holds, expired credits, idempotency records and drafts', async () => {
  const w = await startWorker();
  try {
    // A job whose hold has expired while nobody worked on it.
    const stale = createUser();
    const gen = await w.fetch('/v1/generate', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID(), ...bearer(stale.token) },
      body: JSON.stringify({ model_id: 'standard-v1', prompt: 'never picked up', target_minutes: 1 }),
    });
    assert.equal(gen.status, 202);
    const jobId = (await gen.json()).job.id;
    sql(`update public.credit_holds set expires_at = now() - interval '1 minute' where job_id = '${jobId}'`);
    sql(`update public.idempotency_keys set expires_at = now() - interval '1 minute' where user_id = '${stale.id}'`);

    // Welcome credits past their expiry.
    const expiring = createUser();
    sql(`update public.credit_grants set expires_at = now() - interval '1 minute' where user_id = '${expiring.id}'`);

    // An unclaimed draft more than a week past its expiry.
    const draft = await (await w.fetch('/v1/drafts', { method: 'POST', headers: { 'content-type': 'application/json', apikey: stack.anonKey }, body: JSON.stringify({ prompt: 'forgotten idea' }) })).json();
    sql(`update public.draft_prompts set expires_at = now() - interval '8 days' where id = '${draft.draft_id}'`);

    const res = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.equal(res.status, 200);

    const [job] = sqlRows(`select status, error_code from public.jobs where id = '${jobId}'`);
    assert.deepEqual(job, { status: 'FAILED', error_code: 'hold_expired' });
    assert.equal(sql(`select available || '/' || held from public.credit_balances where user_id = '${stale.id}'`), '10/0', 'the held credits came back');
    assert.equal(Number(sql(`select count(*) from public.idempotency_keys where user_id = '${stale.id}'`)), 0);
    assert.equal(sql(`select available || '/' || held from public.credit_balances where user_id = '${expiring.id}'`), '0/0', 'expired credits left the balance');
    assert.equal(Number(sql(`select count(*) from public.credit_ledger where user_id = '${expiring.id}' and type = 'expire'`)), 1);
    assert.equal(Number(sql(`select count(*) from public.draft_prompts where id = '${draft.draft_id}'`)), 0);
    assert.deepEqual(JSON.parse(sql('select public.reconcile()')), []);
  } finally {
    await w.dispose();
  }
});
