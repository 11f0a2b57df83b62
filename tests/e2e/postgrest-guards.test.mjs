// What the database enforces on its own, seen through PostgREST (SECURITY.md section 2): the
// back-office RPCs refuse user and anon tokens even after PostgREST has prepared them for an
// authenticated caller (REVOKE and inlined SQL), and money RPCs refuse GET.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createUser, stack, sql } from './harness.mjs';

const rpc = (name, { token, method = 'POST', body = {} } = {}) =>
  fetch(`${stack.postgrestUrl}/rpc/${name}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: method === 'GET' ? undefined : JSON.stringify(body),
  });

const SERVICE_ONLY = [
  ['fulfill_purchase', { p_provider: 'stripe', p_provider_payment_id: 'pi_guard', p_event_id: 'evt_guard', p_user_id: randomUUID(), p_package_id: 'starter', p_amount_cents: 499, p_currency: 'usd' }],
  ['refund_purchase', { p_provider: 'stripe', p_provider_payment_id: 'pi_guard', p_event_id: 'evt_guard2' }],
  ['clawback_purchase', { p_provider: 'stripe', p_provider_payment_id: 'pi_guard', p_event_id: 'evt_guard3' }],
  ['dispute_purchase', { p_provider: 'stripe', p_provider_payment_id: 'pi_guard', p_event_id: 'evt_guard4', p_dispute_id: 'dp_guard', p_dispute_status: 'needs_response', p_dispute_amount_cents: 499 }],
  ['reverse_refund_purchase', { p_provider: 'app_store', p_provider_payment_id: 'tx_guard', p_event_id: 'evt_guard5' }],
  ['complete_job', { p_job_id: randomUUID(), p_actual_cost: 0 }],
  ['fail_job', { p_job_id: randomUUID(), p_error_code: 'x' }],
  ['claim_next_jobs', { p_worker_id: 'guard' }],
  ['expire_stale_holds', {}],
  ['expire_credits', {}],
  ['reconcile', {}],
  ['cleanup_expired', {}],
];

test('back-office RPCs refuse user and anon callers through PostgREST, also after a prepared call', async () => {
  const user = createUser();
  // An authenticated call first, so PostgREST has prepared statements for this role.
  assert.equal((await rpc('get_balance', { token: user.token })).status, 200);
  for (const [name, body] of SERVICE_ONLY) {
    for (const [who, token] of [['user', user.token], ['anon key', stack.anonKey], ['no token', undefined], ['user again', user.token]]) {
      const res = await rpc(name, { token, body });
      assert.ok([401, 403, 404].includes(res.status), `${name} as ${who}: ${res.status}`);
      const err = await res.json();
      assert.ok(['42501', 'PGRST202'].includes(err.code), `${name} as ${who}: ${err.code}`);
    }
    assert.equal((await rpc(name, { token: stack.serviceRoleKey, body })).status < 500, true, `${name} works for service_role`);
  }
});

test('money RPCs cannot write through GET (PostgREST runs GET read-only: 405, or 400 when the arguments cannot be expressed)', async () => {
  const user = createUser();
  const q = (o) => Object.entries(o).map(([k, v]) => `${k}=${encodeURIComponent(typeof v === 'string' ? v : JSON.stringify(v))}`).join('&');
  const calls = [
    ['generate', { p_idempotency_key: randomUUID(), p_request: { model_id: 'draft-v1', prompt: 'via GET', target_minutes: 1 } }],
    ['begin_purchase', { p_package_id: 'starter', p_idempotency_key: randomUUID() }],
  ];
  for (const [name, args] of calls) {
    const res = await fetch(`${stack.postgrestUrl}/rpc/${name}?${q(args)}`, { headers: { authorization: `Bearer ${user.token}` } });
    const expected = name === 'generate' ? 400 : 405; // a jsonb object argument cannot be sent in a query string
    assert.equal(res.status, expected, `GET /rpc/${name}: ${await res.text()}`);
  }
  assert.equal(Number(sql(`select count(*) from public.jobs where user_id = '${user.id}'`)), 0);
  assert.equal(Number(sql(`select count(*) from public.purchases where user_id = '${user.id}'`)), 0);
  assert.equal(sql(`select available || '/' || held from public.credit_balances where user_id = '${user.id}'`), '10/0');
});
