// Issue 9.7: the sweepers (expire_stale_holds, expire_credits, the dead-letter pass of
// claim_next_jobs, cleanup_expired) run concurrently with each other and with users generating, jobs settling and
// payments arriving: no deadlock (pg_stat_database.deadlocks before and after, and no 40P01 in
// any answer), every user request succeeds or is refused with 402/409 only, and reconcile() is
// empty. Straight against PostgREST (the Worker retries deadlocks, which would hide them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { stack, sql, mintToken, claimsFor } from './harness.mjs';

const USERS = 40;

async function rpc(name, args, token) {
  const res = await fetch(`${stack.postgrestUrl}/rpc/${name}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(args),
  });
  const text = await res.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: res.status, body };
}

const deadlocks = () => Number(sql('select deadlocks from pg_stat_database where datname = current_database()'));

test('issue 9.7: sweepers concurrent with each other and with user traffic: no deadlock, users see only 2xx/402/409, reconcile empty', async () => {
  const service = stack.serviceRoleKey;
  // Users: welcome credits plus a purchase; three jobs each.
  const ids = sql(`with u as (
      insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
      select gen_random_uuid(), 'sweep-' || g || '-' || gen_random_uuid() || '@example.test', '{"provider":"email"}', '{}', now(), now()
        from generate_series(1, ${USERS}) g
      returning id)
    select string_agg(id::text, ',') from u`).split(',').sort();
  const users = ids.map((id) => ({ id, token: mintToken(claimsFor(id)) }));
  for (const u of users) {
    const paid = await rpc('fulfill_purchase', { p_provider: 'stripe', p_provider_payment_id: `pi_sw_${randomUUID()}`, p_event_id: `evt_sw_${randomUUID()}`,
      p_user_id: u.id, p_package_id: 'starter', p_amount_cents: 499, p_currency: 'usd' }, service);
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    u.jobs = [];
    for (let i = 0; i < 3; i++) {
      const g = await rpc('generate', { p_idempotency_key: randomUUID(), p_request: { model_id: 'standard-v1', prompt: `sweep ${i}`, target_minutes: 1 } }, u.token);
      assert.equal(g.status, 200, JSON.stringify(g.body));
      u.jobs.push(g.body.response.job.id);
    }
  }
  const list = (k) => users.map((u) => `'${u.jobs[k]}'`).join(',');
  const userList = users.map((u) => `'${u.id}'`).join(',');
  // Job 0: waiting for a retry nobody picked up, hold expired; expiry order is the reverse of the
  // user id order. (Not claimable during the test: the claims below would lease it.)
  sql(`update public.credit_holds h set expires_at = now() - interval '1 hour' - (r.n * interval '1 second')
         from (select id, row_number() over (order by user_id) n from public.jobs where id in (${list(0)})) r
        where h.job_id = r.id`);
  sql(`update public.jobs set next_retry_at = now() + interval '1 day' where id in (${list(0)})`);
  // Job 1: abandoned by its worker after its last attempt (dead letter), in another order.
  sql(`update public.jobs j set status = 'PLANNING', attempts = max_attempts, worker_id = 'gone', started_at = now(),
              locked_until = now() - interval '1 hour' - (((r.n * 7) % ${USERS}) * interval '1 second')
         from (select id, row_number() over (order by user_id) n from public.jobs where id in (${list(1)})) r
        where j.id = r.id`);
  // Job 2: leased by a live worker, completed during the storm.
  sql(`update public.jobs set status = 'RENDERING', attempts = 1, worker_id = 'live', started_at = now(), locked_until = now() + interval '1 hour'
        where id in (${list(2)})`);
  // Welcome credits past their expiry.
  sql(`update public.credit_grants set expires_at = now() - interval '1 minute' where source = 'welcome' and user_id in (${userList})`);

  const before = deadlocks();
  const answers = { user: [], service: [] };
  const sweep = async (name, args) => {
    for (let i = 0; i < 50; i++) {
      const r = await rpc(name, args, service);
      answers.service.push({ name, ...r });
      if (r.status !== 200 || !(r.body && (r.body.more === true))) return;
    }
  };
  const userTraffic = async (u, k) => {
    // A user generating (some will be refused for credits), a job settling, a payment arriving.
    const calls = [
      () => rpc('complete_job', { p_job_id: u.jobs[2], p_actual_cost: 2, p_worker_id: 'live' }, service).then((r) => answers.service.push({ name: 'complete_job', ...r })),
      () => rpc('generate', { p_idempotency_key: randomUUID(), p_request: { model_id: 'premium-v1', prompt: 'storm', target_minutes: 30 } }, u.token).then((r) => answers.user.push({ name: 'generate', ...r })),
      () => rpc('generate', { p_idempotency_key: randomUUID(), p_request: { model_id: 'premium-v1', prompt: 'storm', target_minutes: 30 } }, u.token).then((r) => answers.user.push({ name: 'generate', ...r })),
      () => rpc('generate', { p_idempotency_key: randomUUID(), p_request: { model_id: 'standard-v1', prompt: 'storm', target_minutes: 1 } }, u.token).then((r) => answers.user.push({ name: 'generate', ...r })),
      () => rpc('fulfill_purchase', { p_provider: 'stripe', p_provider_payment_id: `pi_sw_${randomUUID()}`, p_event_id: `evt_sw_${randomUUID()}`,
        p_user_id: u.id, p_package_id: 'starter', p_amount_cents: 499, p_currency: 'usd' }, service).then((r) => answers.service.push({ name: 'fulfill_purchase', ...r })),
    ];
    // Rotate the order per user so the storm mixes every kind of call.
    for (let i = 0; i < calls.length; i++) await calls[(i + k) % calls.length]();
  };
  await Promise.all([
    sweep('expire_stale_holds', {}), sweep('expire_stale_holds', {}),
    sweep('expire_credits', { p_max_users: 1000 }), sweep('expire_credits', { p_max_users: 1000 }),
    sweep('claim_next_jobs', { p_worker_id: 'sweeper-a', p_limit: 1 }), sweep('claim_next_jobs', { p_worker_id: 'sweeper-b', p_limit: 1 }),
    sweep('cleanup_expired', {}), sweep('cleanup_expired', {}),
    ...users.map((u, k) => userTraffic(u, k)),
  ]);
  // Whatever a bounded sweep left (a row a user held, or past its batch) is taken by the next runs.
  const left = () => Number(sql(`select (select count(*) from public.credit_holds where job_id in (${list(0)}) and status = 'active')
      + (select count(*) from public.jobs where id in (${list(1)}) and status <> 'FAILED')
      + (select count(*) from public.credit_grants where user_id in (${userList}) and remaining > 0 and expires_at <= now())`));
  for (let i = 0; i < 20 && left() > 0; i++) {
    await sweep('expire_stale_holds', {});
    await sweep('expire_credits', { p_max_users: 1000 });
    await sweep('claim_next_jobs', { p_worker_id: 'sweeper-c', p_limit: 1 });
  }

  const failedUser = answers.user.filter((a) => ![200, 402, 409].includes(a.status));
  assert.deepEqual(failedUser, [], 'every user request succeeded or was refused with 402/409');
  const failedService = answers.service.filter((a) => a.status !== 200);
  assert.deepEqual(failedService, [], 'every sweeper, settlement and payment succeeded');
  assert.ok(answers.user.filter((a) => a.status === 200).length >= USERS, 'most generations of the storm were granted');

  // Backends report their counters when idle (at most ~10 s later in PostgreSQL 15).
  await new Promise((r) => setTimeout(r, 11000));
  assert.equal(deadlocks() - before, 0, 'no deadlock in pg_stat_database');

  assert.equal(sql(`select count(*) from public.credit_holds where job_id in (${list(0)}) and status = 'active'`), '0', 'every stale hold was released');
  assert.equal(sql(`select count(*) from public.jobs where id in (${list(1)}) and status <> 'FAILED'`), '0', 'every abandoned job was dead-lettered');
  assert.equal(sql(`select count(*) from public.credit_grants where user_id in (${userList}) and remaining > 0 and expires_at <= now()`), '0', 'every expired grant was swept');
  assert.deepEqual(JSON.parse(sql('select public.reconcile()')), []);
});
