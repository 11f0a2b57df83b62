// Issue 13, support and administration plus spend limits, through the Worker in workerd against
// the real PostgREST 12 and Postgres: who may call the admin API (an admin's token, the service
// key) and who may not (an ordinary user, anon, an anonymous sign-in, a forged admin claim signed
// with a wrong key, and ordinary users or anon calling the admin RPCs directly through PostgREST);
// every action idempotent and in the audit log; bad input answering a stable code and writing
// nothing; suspension; the ledger CSV; the daily spend cap with its reset time.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startWorker, callWorker, createUser, claimsFor, mintToken, bearer, sql, sqlRows, stack } from './harness.mjs';

let w;
// Checkout reads its Stripe settings before anything else; a suspended user is refused by the
// database before Stripe would be called, so no Stripe stand-in is needed here.
before(async () => {
  w = await startWorker({ STRIPE_SECRET_KEY: 'sk_test_admin', CHECKOUT_SUCCESS_URL: 'https://app.example.test/ok', CHECKOUT_CANCEL_URL: 'https://app.example.test/no', STRIPE_API_BASE: 'http://127.0.0.1:9' });
});
after(async () => { await w?.dispose(); });

/** An admin: a user whose token carries app_metadata.role = admin, as Supabase Auth issues it. */
function createAdmin() {
  const user = createUser();
  sql(`update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = '${user.id}'`);
  return { ...user, token: mintToken(claimsFor(user.id, { app_metadata: { provider: 'email', role: 'admin' } })) };
}
const service = { token: stack.serviceRoleKey };

const call = (method, path, user, body, headers) => callWorker(w, method, path, user, body, headers);
const post = (path, who, body, key = randomUUID()) => call('POST', path, who, body, key === null ? {} : { 'idempotency-key': key });
const auditCount = () => Number(sql('select count(*) from public.admin_audit_log'));
/** What bad input must not change: audit rows, the user's ledger, grants and controls. */
const footprint = (user) => sql(`select concat_ws('|', (select count(*) from public.admin_audit_log),
  (select count(*) from public.credit_ledger where user_id = '${user.id}'),
  (select string_agg(id::text || remaining || coalesce(expires_at::text, ''), ',' order by id) from public.credit_grants where user_id = '${user.id}'),
  (select to_jsonb(c)::text from public.account_controls c where user_id = '${user.id}'))`);
const reconcile = () => JSON.parse(sql('select public.reconcile()'));

/** A READY job of `user` that captured `cost` credits (standard-v1, 3 minutes: 5 held). */
async function finishedJob(user, cost) {
  const r = await call('POST', '/v1/generate', user, { model_id: 'standard-v1', prompt: 'A support case', target_minutes: 3 },
    { 'idempotency-key': randomUUID() });
  assert.equal(r.status, 202, r.text);
  const id = r.body.job.id;
  sql(`select public.claim_next_jobs('admin-e2e', 100)`);
  sql(`select public.complete_job('${id}', ${cost}, null, null, '[]', 'admin-e2e')`);
  assert.equal(sql(`select status from public.jobs where id = '${id}'`), 'READY');
  return id;
}

test('refused callers: no token, an ordinary user, an anonymous sign-in, a forged admin claim; the service key and an admin pass', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const anonymousUser = createUser({ anonymous: true });
  const forged = { token: mintToken(claimsFor(alice.id, { app_metadata: { role: 'admin' } }), { secret: 'not-the-project-secret-0123456789abcdef' }) };
  const userMetadataAdmin = { token: mintToken(claimsFor(alice.id, { user_metadata: { role: 'admin' } })) };
  const before = footprint(alice);
  const routes = [
    ['GET', `/v1/admin/users/${alice.id}?reason=look`],
    ['POST', `/v1/admin/users/${alice.id}/grants`, { amount: 5, reason: 'r' }],
    ['POST', `/v1/admin/users/${alice.id}/adjustments`, { amount: 5, reason: 'r' }],
    ['POST', `/v1/admin/users/${alice.id}/suspend`, { reason: 'r' }],
    ['POST', `/v1/admin/users/${alice.id}/unsuspend`, { reason: 'r' }],
    ['POST', `/v1/admin/users/${alice.id}/spend-cap`, { daily_spend_cap: 1, reason: 'r' }],
    ['GET', `/v1/admin/users/${alice.id}/ledger.csv?reason=r`],
    ['POST', `/v1/admin/grants/${randomUUID()}/void`, { reason: 'r' }],
    ['POST', `/v1/admin/jobs/${randomUUID()}/refund`, { reason: 'r' }],
    ['GET', '/v1/admin/audit'],
  ];
  for (const [method, path, body] of routes) {
    const headers = method === 'POST' ? { 'idempotency-key': randomUUID() } : {};
    const none = await call(method, path, null, body, headers);
    assert.equal(none.status, 401, `${method} ${path} without a token`);
    const user = await call(method, path, alice, body, headers);
    assert.equal(user.status, 403, `${method} ${path} as a user`);
    assert.equal(user.body.error.code, 'forbidden');
    const meta = await call(method, path, userMetadataAdmin, body, headers);
    assert.equal(meta.status, 403, `${method} ${path}: a role in user_metadata (the user's own) is nothing`);
    const anonymous = await call(method, path, anonymousUser, body, headers);
    assert.equal(anonymous.status, 403, `${method} ${path} as an anonymous sign-in`);
    const bad = await call(method, path, forged, body, headers);
    assert.equal(bad.status, 401, `${method} ${path} with an admin claim signed by another key`);
    assert.equal(bad.body.error.code, 'invalid_token');
  }
  assert.equal(footprint(alice), before, 'the refused calls wrote nothing');

  const asAdmin = await call('GET', `/v1/admin/users/${alice.id}?reason=${encodeURIComponent('Ticket #7: "charged twice"')}`, admin);
  assert.equal(asAdmin.status, 200, asAdmin.text);
  assert.equal(asAdmin.body.balance.available, 10);
  assert.equal(asAdmin.body.user.id, alice.id);
  assert.equal(asAdmin.body.user.suspended, false);
  const asService = await call('GET', `/v1/admin/users/${alice.id}?reason=service`, service);
  assert.equal(asService.status, 200, asService.text);
  const rows = sqlRows(`select actor_role, actor_user_id, action, reason from public.admin_audit_log where target_user_id = '${alice.id}' order by id`);
  assert.deepEqual(rows, [
    { actor_role: 'admin', actor_user_id: admin.id, action: 'lookup_user', reason: 'Ticket #7: "charged twice"' },
    { actor_role: 'service_role', actor_user_id: null, action: 'lookup_user', reason: 'service' },
  ], 'both look-ups are audited with who and why (the reason percent-decoded)');
});

test('the admin RPCs refuse ordinary users and anon through PostgREST directly too', async () => {
  const alice = createUser();
  const before = footprint(alice);
  const direct = async (name, token, args) => {
    const res = await fetch(`${stack.postgrestUrl}/rpc/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(args),
    });
    return { status: res.status, body: await res.json() };
  };
  const calls = [
    ['admin_lookup_user', { p_target_user_id: alice.id, p_reason: 'r' }],
    ['admin_grant_credits', { p_idempotency_key: randomUUID(), p_target_user_id: alice.id, p_amount: 500, p_expires_at: null, p_reason: 'r' }],
    ['admin_adjust_credits', { p_idempotency_key: randomUUID(), p_target_user_id: alice.id, p_amount: 500, p_reason: 'r' }],
    ['admin_set_suspension', { p_idempotency_key: randomUUID(), p_target_user_id: alice.id, p_suspended: true, p_reason: 'r' }],
    ['admin_set_spend_cap', { p_idempotency_key: randomUUID(), p_target_user_id: alice.id, p_daily_spend_cap: null, p_reason: 'r' }],
    ['admin_export_ledger', { p_target_user_id: alice.id, p_reason: 'r' }],
    ['admin_list_audit', {}],
  ];
  for (const [name, args] of calls) {
    const asUser = await direct(name, alice.token, args);
    assert.equal(asUser.status, 403, `${name} as the user: ${JSON.stringify(asUser.body)}`);
    assert.equal(asUser.body.hint, 'forbidden');
    const asAnon = await direct(name, stack.anonKey, args);
    assert.ok([401, 403].includes(asAnon.status), `${name} as anon: ${asAnon.status} ${JSON.stringify(asAnon.body)}`);
    assert.equal(asAnon.body.code, '42501', `${name} as anon: no EXECUTE`);
    const noToken = await direct(name, undefined, args);
    assert.equal(noToken.body.code, '42501', `${name} without a token`);
  }
  // A direct write to the audit log is refused to everyone, the service role included.
  const write = await fetch(`${stack.postgrestUrl}/admin_audit_log`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${stack.serviceRoleKey}`, apikey: stack.serviceRoleKey },
    body: JSON.stringify({ actor_role: 'database', action: 'forged', reason: 'x' }),
  });
  assert.equal(write.status, 403);
  assert.equal(footprint(alice), before);
});

test('grant, adjust, void: idempotent, audited with before and after, the ledger\'s usual rows', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const key = randomUUID();
  const expires = new Date(Date.now() + 7 * 86400e3).toISOString();
  const g = await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 500, expires_at: expires, reason: 'Beta tester' }, key);
  assert.equal(g.status, 200, g.text);
  assert.equal(g.body.replayed, false);
  assert.equal(g.body.grant.kind, 'promotional');
  assert.equal(new Date(g.body.grant.expires_at).toISOString(), expires);
  assert.equal(g.body.balance.available, 510);
  const again = await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 500, expires_at: expires, reason: 'Beta tester' }, key);
  assert.equal(again.status, 200);
  assert.equal(again.headers.get('idempotent-replayed'), 'true');
  assert.deepEqual({ ...again.body, replayed: false }, g.body, 'a replay answers the stored response');
  const reused = await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 501, reason: 'Beta tester' }, key);
  assert.equal(reused.status, 422);
  assert.equal(reused.body.error.code, 'idempotency_key_reused');
  assert.equal(sql(`select count(*) from public.credit_grants where user_id = '${alice.id}' and source = 'promotion'`), '1');

  const minus = await post(`/v1/admin/users/${alice.id}/adjustments`, admin, { amount: -15, reason: 'Duplicate grant' });
  assert.equal(minus.status, 200, minus.text);
  assert.equal(minus.body.balance.available, 495);
  const tooMuch = await post(`/v1/admin/users/${alice.id}/adjustments`, admin, { amount: -496, reason: 'More than there is' });
  assert.equal(tooMuch.status, 402, 'an adjustment never makes debt');
  assert.equal(tooMuch.body.error.code, 'insufficient_credits');
  const plus = await post(`/v1/admin/users/${alice.id}/adjustments`, service, { amount: 7, reason: 'Lost purchase' });
  assert.equal(plus.status, 200);
  assert.equal(plus.body.grant.kind, 'paid');

  const voided = await post(`/v1/admin/grants/${g.body.grant.id}/void`, admin, { reason: 'Tester left' });
  assert.equal(voided.status, 200, voided.text);
  assert.equal(voided.body.voided, 485, 'the -15 came from the promotion (it expires before the welcome credits)');
  assert.equal(voided.body.balance.available, 17, 'the welcome 10 and the adjustment 7 are left');

  assert.deepEqual(sqlRows(`select type, delta_available from public.credit_ledger where user_id = '${alice.id}' order by id`), [
    { type: 'grant', delta_available: 10 },
    { type: 'grant', delta_available: 500 },
    { type: 'adjustment', delta_available: -15 },
    { type: 'adjustment', delta_available: 7 },
    { type: 'adjustment', delta_available: -485 },
  ]);
  const audit = await call('GET', `/v1/admin/audit?user_id=${alice.id}&limit=10`, admin);
  assert.equal(audit.status, 200, audit.text);
  assert.deepEqual(audit.body.items.map((a) => a.action), ['void_grant', 'adjust_credits', 'adjust_credits', 'grant_credits']);
  assert.equal(audit.body.items[3].before.balance.available, 10);
  assert.equal(audit.body.items[3].after.balance.available, 510);
  assert.equal(audit.body.items[3].idempotency_key, key);
  assert.equal(audit.body.items[2].actor_role, 'admin');
  assert.equal(audit.body.items[1].actor_role, 'service_role');
  assert.deepEqual(reconcile(), []);
});

test('bad input: a stable code and nothing written', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const before = footprint(alice);
  const cases = [
    [`/v1/admin/users/${alice.id}/grants`, { amount: 0, reason: 'r' }, 400, 'invalid_request', 'amount'],
    [`/v1/admin/users/${alice.id}/grants`, { amount: 5 }, 400, 'invalid_request', 'reason'],
    [`/v1/admin/users/${alice.id}/grants`, { amount: 5, reason: '   ' }, 400, 'invalid_request', 'reason'],
    [`/v1/admin/users/${alice.id}/grants`, { amount: 5, reason: 'r', extra: 1 }, 400, 'invalid_request', 'extra'],
    [`/v1/admin/users/${alice.id}/grants`, { amount: 5, reason: 'r', expires_at: 'tomorrow' }, 400, 'invalid_request', 'expires_at'],
    [`/v1/admin/users/${alice.id}/grants`, { amount: 5, reason: 'r', expires_at: '2001-01-01T00:00:00Z' }, 400, 'invalid_request', 'expires_at'],
    [`/v1/admin/users/${alice.id}/grants`, { amount: '5', reason: 'r' }, 400, 'invalid_request', 'amount'],
    [`/v1/admin/users/${alice.id}/adjustments`, { amount: 0, reason: 'r' }, 400, 'invalid_request', 'amount'],
    [`/v1/admin/users/${alice.id}/spend-cap`, { reason: 'r' }, 400, 'invalid_request', 'daily_spend_cap'],
    [`/v1/admin/users/${alice.id}/spend-cap`, { daily_spend_cap: -1, reason: 'r' }, 400, 'invalid_request', 'daily_spend_cap'],
    [`/v1/admin/users/${randomUUID()}/grants`, { amount: 5, reason: 'r' }, 404, 'not_found'],
    ['/v1/admin/users/not-a-uuid/grants', { amount: 5, reason: 'r' }, 404, 'not_found'],
    [`/v1/admin/jobs/${randomUUID()}/refund`, { reason: 'r' }, 404, 'not_found'],
    [`/v1/admin/grants/${randomUUID()}/void`, { reason: 'r' }, 404, 'not_found'],
  ];
  for (const [path, body, status, code, field] of cases) {
    const r = await post(path, admin, body);
    assert.equal(r.status, status, `${path} ${JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.code, code, path);
    if (field) assert.equal(r.body.error.field, field, `${path} ${JSON.stringify(body)}`);
  }
  const noKey = await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 5, reason: 'r' }, null);
  assert.equal(noKey.status, 400);
  assert.equal(noKey.body.error.code, 'idempotency_key_required');
  const notJson = await post(`/v1/admin/users/${alice.id}/grants`, admin, '{"amount": 5,');
  assert.equal(notJson.status, 400);
  // A body that is not an object is the edge's own error, without a field: only the database's
  // timestamp errors are labelled expires_at.
  const notObject = await post(`/v1/admin/users/${alice.id}/grants`, admin, []);
  assert.equal(notObject.status, 400, notObject.text);
  assert.equal(notObject.body.error.code, 'invalid_request');
  assert.equal(notObject.body.error.field, undefined, notObject.text);
  const noReason = await call('GET', `/v1/admin/users/${alice.id}`, admin);
  assert.equal(noReason.status, 400);
  assert.equal(noReason.body.error.field, 'reason');
  const unknownParam = await call('GET', `/v1/admin/users/${alice.id}?reason=r&sort=asc`, admin);
  assert.equal(unknownParam.body.error.field, 'query');
  const badLimit = await call('GET', `/v1/admin/audit?limit=0`, admin);
  assert.equal(badLimit.body.error.field, 'limit');
  assert.equal(footprint(alice), before, 'nothing was written by any of them');
});

test('refund a job\'s captured credits: part, the rest, never more than captured', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const job = await finishedJob(alice, 4);
  const over = await post(`/v1/admin/jobs/${job}/refund`, admin, { amount: 5, reason: 'Video failed' });
  assert.equal(over.status, 400, over.text);
  assert.equal(over.body.error.field, 'amount');
  const key = randomUUID();
  const part = await post(`/v1/admin/jobs/${job}/refund`, admin, { amount: 3, reason: 'Video failed' }, key);
  assert.equal(part.status, 200, part.text);
  assert.deepEqual([part.body.refunded, part.body.refunded_total, part.body.refundable_left], [3, 3, 1]);
  const replay = await post(`/v1/admin/jobs/${job}/refund`, admin, { amount: 3, reason: 'Video failed' }, key);
  assert.equal(replay.headers.get('idempotent-replayed'), 'true');
  assert.equal(replay.body.refunded_total, 3, 'a replay refunds nothing more');
  const rest = await post(`/v1/admin/jobs/${job}/refund`, admin, { reason: 'The rest' });
  assert.equal(rest.body.refunded, 1);
  const none = await post(`/v1/admin/jobs/${job}/refund`, admin, { reason: 'Again' });
  assert.equal(none.status, 409);
  assert.equal(none.body.error.code, 'nothing_to_refund');
  assert.deepEqual(none.body.error.details, { captured: 4, refunded: 4 });
  assert.equal(sql(`select sum(delta_available) from public.credit_ledger where job_id = '${job}' and type = 'adjustment'`), '4');
  assert.equal(sql(`select available from public.credit_balances where user_id = '${alice.id}'`), '10', 'all 4 captured credits came back');
  assert.deepEqual(reconcile(), []);
});

test('suspension: reads work; generate, claiming a draft and checkout are refused with account_suspended', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const s = await post(`/v1/admin/users/${alice.id}/suspend`, admin, { reason: 'Abuse' });
  assert.equal(s.status, 200, s.text);
  assert.equal(s.body.suspended, true);
  const balance = await call('GET', '/v1/balance', alice);
  assert.equal(balance.status, 200);
  const gen = await call('POST', '/v1/generate', alice, { model_id: 'standard-v1', prompt: 'x' }, { 'idempotency-key': randomUUID() });
  assert.equal(gen.status, 403, gen.text);
  assert.equal(gen.body.error.code, 'account_suspended');
  const draft = await call('POST', '/v1/drafts', null, { prompt: 'A visitor draft' }, { apikey: stack.anonKey });
  assert.equal(draft.status, 201, draft.text);
  const claim = await call('POST', '/v1/drafts/claim', alice, { claim_token: draft.body.claim_token });
  assert.equal(claim.status, 403, claim.text);
  assert.equal(claim.body.error.code, 'account_suspended');
  const buy = await call('POST', '/v1/purchase/checkout', alice, { package_id: 'starter' }, { 'idempotency-key': randomUUID() });
  assert.equal(buy.status, 403, buy.text);
  assert.equal(buy.body.error.code, 'account_suspended');
  assert.equal(sql(`select count(*) from public.jobs where user_id = '${alice.id}'`), '0');
  assert.equal(sql(`select count(*) from public.purchases where user_id = '${alice.id}'`), '0');
  const u = await post(`/v1/admin/users/${alice.id}/unsuspend`, admin, { reason: 'Resolved' });
  assert.equal(u.body.suspended, false);
  const ok = await call('POST', '/v1/generate', alice, { model_id: 'standard-v1', prompt: 'x' }, { 'idempotency-key': randomUUID() });
  assert.equal(ok.status, 202, ok.text);
  assert.deepEqual(sqlRows(`select action, reason from public.admin_audit_log where target_user_id = '${alice.id}' order by id`),
    [{ action: 'suspend_user', reason: 'Abuse' }, { action: 'unsuspend_user', reason: 'Resolved' }]);
});

test('spend limits: the default cap, an admin\'s override, the per-request maximum; the error says when the cap resets', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const gen = (minutes) => call('POST', '/v1/generate', alice, { model_id: 'standard-v1', prompt: 'x', target_minutes: minutes },
    { 'idempotency-key': randomUUID() });
  sql('update public.spend_limit_settings set daily_spend_cap = 5, max_request_credits = 4');
  try {
    const big = await gen(3);
    assert.equal(big.status, 422, big.text);
    assert.equal(big.body.error.code, 'request_over_limit');
    assert.deepEqual(big.body.error.details, { max_request_credits: 4, required: 5 });
    assert.equal((await gen(1)).status, 202);
    const capped = await gen(1);
    assert.equal(capped.status, 429, capped.text);
    assert.equal(capped.body.error.code, 'daily_spend_cap_reached');
    const midnight = new Date(); midnight.setUTCHours(24, 0, 0, 0);
    assert.deepEqual(capped.body.error.details, { daily_spend_cap: 5, spent_today: 3, required: 3, resets_at: midnight.toISOString().replace('.000Z', 'Z') });
    assert.equal(sql(`select count(*) from public.jobs where user_id = '${alice.id}'`), '1', 'the refused generate made nothing');
    const cap = await post(`/v1/admin/users/${alice.id}/spend-cap`, admin, { daily_spend_cap: 6, reason: 'Trusted' });
    assert.equal(cap.status, 200, cap.text);
    assert.equal(cap.body.effective_daily_spend_cap, 6);
    assert.equal((await gen(1)).status, 202, 'the override lets 3 + 3 pass');
    const reset = await post(`/v1/admin/users/${alice.id}/spend-cap`, admin, { daily_spend_cap: null, reason: 'Back to default' });
    assert.equal(reset.body.effective_daily_spend_cap, 5);
  } finally {
    sql('update public.spend_limit_settings set daily_spend_cap = null, max_request_credits = null');
  }
  assert.deepEqual(reconcile(), []);
});

test('the ledger as CSV: header, RFC 4180 quoting, pages, audited once per export', async () => {
  const alice = createUser();
  const admin = createAdmin();
  await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 3, reason: 'Says "thanks", twice\nand more' });
  const formula = `=1+1-${randomUUID()}`; // admin keys are kept forever: unique per run
  const adj = await post(`/v1/admin/users/${alice.id}/adjustments`, admin, { amount: 2, reason: 'Formula-like key' }, formula);
  assert.equal(adj.status, 200, adj.text);
  const audits = auditCount();
  const page1 = await call('GET', `/v1/admin/users/${alice.id}/ledger.csv?reason=GDPR&limit=2`, admin);
  assert.equal(page1.status, 200, page1.text);
  assert.equal(page1.headers.get('content-type'), 'text/csv; charset=utf-8');
  const lines = page1.text.split('\r\n');
  assert.equal(lines[0], 'id,created_at,type,delta_available,delta_held,delta_debt,balance_available_after,balance_held_after,balance_debt_after,grant_id,hold_id,job_id,purchase_id,idempotency_key,description');
  assert.match(lines[1], /^\d+,[^,]+,grant,10,0,0,10,0,0,/);
  assert.ok(page1.text.includes('"Promotional credits: Says ""thanks"", twice\nand more"'), page1.text);
  const next = page1.headers.get('x-next-after');
  assert.ok(next, `a next page is named: ${[...page1.headers].join(' ')} ${page1.text}`);
  const page2 = await call('GET', `/v1/admin/users/${alice.id}/ledger.csv?reason=GDPR&after=${next}`, admin);
  assert.equal(page2.headers.get('x-next-after'), null);
  assert.ok(page2.text.includes(`,'${formula},Adjustment: Formula-like key`), `a formula-like cell is defused: ${page2.text}`);
  assert.equal(auditCount(), audits + 1, 'the export is audited once');
});

test('a demoted admin is refused at once: the same unexpired token, on an admin route and the RPC through PostgREST', async () => {
  const alice = createUser();
  const admin = createAdmin();
  const rpc = async (name, args) => {
    const res = await fetch(`${stack.postgrestUrl}/rpc/${name}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}` },
      body: JSON.stringify(args),
    });
    return { status: res.status, body: await res.json() };
  };
  const lookup = () => call('GET', `/v1/admin/users/${alice.id}?reason=demotion`, admin);
  assert.equal((await lookup()).status, 200, 'the admin looks a user up through the Worker');
  const direct = await rpc('admin_lookup_user', { p_target_user_id: alice.id, p_reason: 'direct' });
  assert.equal(direct.status, 200, `and through PostgREST: ${JSON.stringify(direct.body)}`);
  const granted = await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 5, reason: 'before demotion' });
  assert.equal(granted.status, 200, granted.text);

  // The team removes the role with the Auth admin API (raw_app_meta_data); the token still says admin.
  sql(`update auth.users set raw_app_meta_data = '{"provider": "email"}' where id = '${admin.id}'`);
  const before = footprint(alice);
  const refused = await lookup();
  assert.equal(refused.status, 403, refused.text);
  assert.equal(refused.body.error.code, 'forbidden');
  const grant = await post(`/v1/admin/users/${alice.id}/grants`, admin, { amount: 500, reason: 'after demotion' });
  assert.equal(grant.status, 403, grant.text);
  assert.equal(grant.body.error.code, 'forbidden');
  const audit = await call('GET', '/v1/admin/audit', admin);
  assert.equal(audit.status, 403, audit.text);
  const viaRpc = await rpc('admin_grant_credits', { p_idempotency_key: randomUUID(), p_target_user_id: alice.id, p_amount: 500, p_expires_at: null, p_reason: 'direct' });
  assert.equal(viaRpc.status, 403, JSON.stringify(viaRpc.body));
  assert.equal(viaRpc.body.hint, 'forbidden');
  const table = await fetch(`${stack.postgrestUrl}/admin_audit_log?select=id`, { headers: { authorization: `Bearer ${admin.token}` } });
  assert.equal(table.status, 403, 'the audit table is not readable directly (admins read it through the API)');
  assert.equal(footprint(alice), before, 'the refused calls wrote nothing');
  // Given the role back, the same token works again.
  sql(`update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = '${admin.id}'`);
  assert.equal((await lookup()).status, 200);
});
