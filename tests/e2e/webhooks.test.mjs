// Signed webhooks to the app's backend (issue 13) end to end: events written by the database in
// the transaction of the change, delivered by the Worker's cron path to a local receiver that
// verifies every request exactly as the Standard Webhooks specification says (webhook-id,
// webhook-timestamp within 5 minutes, webhook-signature `v1,<base64 HMAC-SHA256>` over
// "{id}.{timestamp}.{body}" keyed with the base64 part of the whsec_ secret, constant-time), and
// that fails, hangs past the Worker's timeout, and recovers. The back-off is real (30 s, 60 s, ...);
// the test makes a failed event due again by moving its next_attempt_at, as a clock move.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { startWorker, createUser, sql, sqlRows, stack, bearer, mintToken, claimsFor } from './harness.mjs';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
let w, receiver, mode = 'ok';
const received = [];

/** Standard Webhooks verification, as the specification's receivers do it. */
function verify(headers, body) {
  const id = headers['webhook-id'], ts = headers['webhook-timestamp'], sig = headers['webhook-signature'];
  if (!id || !ts || !sig) return 'missing header';
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return 'timestamp outside tolerance';
  const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
  for (const part of sig.split(' ')) {
    const [version, value] = part.split(',');
    if (version !== 'v1' || !value) continue;
    const got = Buffer.from(value, 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return null;
  }
  return 'no matching signature';
}

before(async () => {
  // Events the earlier files' changes wrote wait a day (a clock move for them), so each cron run
  // here meets only this file's events, whatever ran before in this database.
  sql(`update public.webhook_outbox set next_attempt_at = now() + interval '1 day' where status = 'pending'`);
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      received.push({ mode, method: req.method, headers: req.headers, body, problem: verify(req.headers, body) });
      if (mode === 'hang') return; // never answers: the Worker's timeout ends the attempt
      res.writeHead(mode === 'fail' ? 500 : 204).end();
    });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  w = await startWorker({ WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/hooks`, WEBHOOK_SECRET: SECRET, WEBHOOK_TIMEOUT_MS: '1000' });
});
after(async () => { await w?.dispose(); receiver?.closeAllConnections(); await new Promise((r) => receiver?.close(r)); });

const cron = async () => {
  const res = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
  assert.equal(res.status, 200);
};
const outbox = (userId) => sqlRows(`select 'msg_' || replace(id::text, '-', '') as id, event_type, status, attempts, last_status, last_error,
  extract(epoch from next_attempt_at - now())::int as due_in from public.webhook_outbox where user_id = '${userId}' order by created_at`);
const mine = (userId) => received.filter((r) => r.body.includes(userId));
const makeDue = (userId) => sql(`update public.webhook_outbox set next_attempt_at = now() where user_id = '${userId}' and status = 'pending'`);

test('purchase.granted is signed, fails, times out, recovers; one webhook-id throughout; delivered events are not sent again', async () => {
  const user = createUser();
  sql(`select set_config('request.jwt.claims', '{"role": "service_role"}', true), public.fulfill_purchase('stripe', 'pi_hook_${user.id.slice(0, 8)}', 'evt_hook_${user.id}', '${user.id}', 'starter', 499, 'usd')`);
  const [event] = outbox(user.id);
  assert.deepEqual([event.event_type, event.status, event.attempts], ['purchase.granted', 'pending', 0], 'written in the payment\'s transaction');

  mode = 'fail';
  await cron();
  let sent = mine(user.id);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].problem, null, 'the signature verifies');
  assert.equal(sent[0].headers['webhook-id'], event.id);
  assert.equal(sent[0].headers['content-type'], 'application/json');
  const body = JSON.parse(sent[0].body);
  assert.deepEqual([body.type, body.data.purchase.user_id, body.data.purchase.status], ['purchase.granted', user.id, 'succeeded']);
  let [row] = outbox(user.id);
  assert.deepEqual([row.status, row.attempts, row.last_status, row.last_error], ['pending', 1, 500, 'HTTP 500']);
  assert.ok(row.due_in >= 28 && row.due_in <= 30, `retried after 30 s, not at once (${row.due_in})`);
  await cron();
  assert.equal(mine(user.id).length, 1, 'not sent again before its back-off');

  makeDue(user.id);
  mode = 'hang';
  await cron();
  [row] = outbox(user.id);
  assert.equal(mine(user.id).length, 2);
  assert.deepEqual([row.status, row.attempts, row.last_status, row.last_error], ['pending', 2, null, 'no answer within 1000 ms']);
  assert.ok(row.due_in >= 58 && row.due_in <= 60, `then after 60 s (${row.due_in})`);

  makeDue(user.id);
  mode = 'ok';
  await cron();
  sent = mine(user.id);
  assert.equal(sent.length, 3);
  assert.ok(sent.every((s) => s.problem === null), 'every attempt is signed');
  assert.deepEqual(new Set(sent.map((s) => s.headers['webhook-id'])).size, 1, 'the same webhook-id on every attempt: the receiver deduplicates by it');
  assert.deepEqual(new Set(sent.map((s) => s.body)).size, 1, 'the same body');
  [row] = outbox(user.id);
  assert.deepEqual([row.status, row.attempts, row.last_status], ['delivered', 3, 204]);
  makeDue(user.id);
  await cron();
  assert.equal(mine(user.id).length, 3, 'a delivered event is never sent again');
});

test('job.failed, purchase.reversed and balance.low reach the receiver; a tampered body would not verify', async () => {
  const user = createUser();
  const pi = `pi_hook2_${user.id.slice(0, 8)}`;
  sql(`select set_config('request.jwt.claims', '{"role": "service_role"}', true), public.fulfill_purchase('stripe', '${pi}', 'evt_h2_${user.id}', '${user.id}', 'starter', 499, 'usd')`);
  const gen = await w.fetch('/v1/generate', { method: 'POST', headers: { ...bearer(user.token), 'content-type': 'application/json', 'idempotency-key': 'hook-gen' },
    body: JSON.stringify({ model_id: 'premium-v1', prompt: 'Hooks', target_minutes: 30 }) });
  assert.equal(gen.status, 202);
  const job = (await gen.json()).job;
  sql(`select set_config('request.jwt.claims', '{"role": "service_role"}', true), public.fail_job('${job.id}', 'render_crashed', 'boom', false)`);
  sql(`select set_config('request.jwt.claims', '{"role": "service_role"}', true), public.refund_purchase('stripe', '${pi}', 'evt_h2r_${user.id}')`);
  mode = 'ok';
  await cron();
  const types = mine(user.id).map((s) => JSON.parse(s.body).type).sort();
  assert.deepEqual(types, ['balance.low', 'balance.low', 'job.failed', 'purchase.granted', 'purchase.reversed'],
    'balance.low twice: 110 -> 15 (the hold), back to 110 (the failed job released), -> 10 (the refund)');
  assert.ok(mine(user.id).every((s) => s.problem === null));
  const one = mine(user.id)[0];
  assert.equal(verify(one.headers, one.body.replace('}', ' }')), 'no matching signature', 'the receiver\'s check is not vacuous');
  assert.ok(outbox(user.id).every((r) => r.status === 'delivered'));
});

test('the delivery state is readable by the service role only, through PostgREST', async () => {
  const user = createUser();
  const call = (token) => fetch(`${stack.postgrestUrl}/rpc/list_webhook_deliveries`, { method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify({ p_status: 'delivered', p_limit: 5 }) });
  const ok = await call(stack.serviceRoleKey);
  assert.equal(ok.status, 200);
  const list = await ok.json();
  assert.ok(list.items.length > 0 && list.items.every((i) => i.status === 'delivered' && i.id.startsWith('msg_')));
  assert.ok(list.counts.delivered >= list.items.length);
  assert.equal((await call(user.token)).status, 403);
  assert.ok([401, 403].includes((await call(null)).status));
  for (const name of ['claim_webhook_deliveries', 'record_webhook_delivery']) {
    const res = await fetch(`${stack.postgrestUrl}/rpc/${name}`, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(user.token) }, body: '{}' });
    assert.ok([403, 404].includes(res.status), `${name} refused to a user (${res.status})`);
  }
});

test('GET /v1/admin/webhooks: admins and the service key page through deliveries by state, type and user; users and anon are refused', async () => {
  const user = createUser();
  const other = createUser();
  // Three purchase.granted events for `user` (one delivered by the cron), one for `other`.
  for (const [who, n] of [[user, 1], [user, 2], [user, 3], [other, 1]]) {
    sql(`select set_config('request.jwt.claims', '{"role": "service_role"}', true), public.fulfill_purchase('stripe', 'pi_list_${who.id.slice(0, 8)}_${n}', 'evt_list_${who.id}_${n}', '${who.id}', 'starter', 499, 'usd')`);
  }
  sql(`update public.webhook_outbox set status = 'delivered', attempts = 1, last_status = 204, delivered_at = now()
        where id = (select id from public.webhook_outbox where user_id = '${user.id}' and event_type = 'purchase.granted' order by created_at limit 1)`);
  const admin = createUser();
  sql(`update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = '${admin.id}'`);
  const adminToken = mintToken(claimsFor(admin.id, { app_metadata: { provider: 'email', role: 'admin' } }));
  const get = async (query, token = adminToken) => {
    const res = await w.fetch(`/v1/admin/webhooks${query}`, { headers: token ? bearer(token) : {} });
    return { status: res.status, body: await res.json() };
  };
  const expected = sqlRows(`select 'msg_' || replace(id::text, '-', '') as id, status from public.webhook_outbox
    where user_id = '${user.id}' and event_type = 'purchase.granted' order by created_at desc, id desc`);
  assert.equal(expected.length, 3);

  const seen = [];
  let page = await get(`?user_id=${user.id}&event_type=purchase.granted&limit=2`);
  assert.equal(page.status, 200, JSON.stringify(page.body));
  assert.equal(page.body.items.length, 2);
  assert.ok(page.body.next_before, 'a second page exists');
  seen.push(...page.body.items);
  page = await get(`?user_id=${user.id}&event_type=purchase.granted&limit=2&before=${page.body.next_before}`);
  assert.equal(page.status, 200);
  assert.equal(page.body.next_before, null, 'the last page');
  seen.push(...page.body.items);
  assert.deepEqual(seen.map((i) => [i.id, i.status]), expected.map((e) => [e.id, e.status]), 'newest first, every event once across the pages');
  assert.ok(seen.every((i) => i.user_id === user.id && i.payload.type === 'purchase.granted' && i.payload.data.purchase.user_id === user.id));
  assert.deepEqual(page.body.counts, { pending: 2, delivered: 1, failed: 0 }, 'counts for the filters');
  const delivered = seen.find((i) => i.status === 'delivered');
  assert.deepEqual([delivered.attempts, delivered.last_status, delivered.next_attempt_at], [1, 204, null]);

  const byState = await get(`?user_id=${user.id}&status=pending`, stack.serviceRoleKey);
  assert.equal(byState.status, 200, 'the service key is an admin too');
  assert.deepEqual(byState.body.items.map((i) => i.status), ['pending', 'pending']);
  const theirs = await get(`?user_id=${other.id}`);
  assert.deepEqual(theirs.body.items.map((i) => i.user_id), [other.id]);

  for (const [query, field] of [['?status=sent', 'status'], ['?event_type=job.started', 'event_type'], ['?limit=0', 'limit'], ['?limit=101', 'limit'],
    ['?before=12', 'before'], [`?before=msg_${'0'.repeat(32)}`, 'before'], ['?user_id=nobody', 'user_id'], ['?colour=red', 'query']]) {
    const res = await get(query);
    assert.equal(res.status, 400, query);
    assert.deepEqual([res.body.error.code, res.body.error.field], ['invalid_request', field], query);
  }
  assert.equal((await get('', user.token)).status, 403, 'an ordinary user is refused');
  assert.equal((await get('', null)).status, 401, 'anon is refused');
  const direct = (token) => fetch(`${stack.postgrestUrl}/rpc/admin_list_webhook_deliveries`, { method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? bearer(token) : {}) }, body: '{}' });
  assert.equal((await direct(user.token)).status, 403, 'a user calling the RPC through PostgREST is refused by the database');
  assert.ok([401, 403].includes((await direct(null)).status), 'anon too');
});
