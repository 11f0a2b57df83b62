// Invites (issue 13) through the Worker: GET /v1/invites and POST /v1/invites/redeem with the
// caller's own token against PostgREST and Postgres; the inviter's reward arrives with the invitee's
// first purchase paid through the signed Stripe webhook and leaves with its full refund. SQL only
// sets up (the window's clock) and checks state.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startWorker, callWorker, createUser, bearer, sql, sqlRows, mintToken, stack } from './harness.mjs';
import { startStripeStandin, STRIPE_TEST_KEY } from './stripe-standin.mjs';

const WHSEC = 'whsec_test_invites_0123456789';
let w, stripe;
before(async () => {
  stripe = await startStripeStandin();
  w = await startWorker({
    STRIPE_SECRET_KEY: STRIPE_TEST_KEY, STRIPE_API_BASE: stripe.url, STRIPE_WEBHOOK_SECRET: WHSEC,
    CHECKOUT_SUCCESS_URL: 'https://app.example.test/ok', CHECKOUT_CANCEL_URL: 'https://app.example.test/no',
  });
});
after(async () => { await w?.dispose(); await stripe?.close(); });

const call = (method, path, user, body, headers) => callWorker(w, method, path, user, body, headers);
const redeem = (user, code, key = randomUUID()) => call('POST', '/v1/invites/redeem', user, { code }, { 'idempotency-key': key });
const codeOf = (user) => sql(`select invite_code from public.profiles where user_id = '${user.id}'`);
const invites = () => Number(sql('select count(*) from public.invites'));
const balance = (user) => sqlRows(`select available, debt from public.credit_balances where user_id = '${user.id}'`)[0];
const reconcile = () => JSON.parse(sql('select public.reconcile()'));

const now = () => Math.floor(Date.now() / 1000);
function deliver(type, object) {
  const body = JSON.stringify({ id: `evt_${randomUUID().replaceAll('-', '')}`, object: 'event', api_version: '2024-06-20', created: now(), livemode: false, type, data: { object } });
  const t = now();
  const signature = `t=${t},v1=${createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex')}`;
  return w.fetch('/v1/purchase/stripe-webhook', { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, body });
}
/** The user buys the starter package through the Worker and Stripe's signed webhook; returns the payment intent. */
async function buy(user) {
  const res = await call('POST', '/v1/purchase/checkout', user, { package_id: 'starter' }, { 'idempotency-key': randomUUID() });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  const hook = await deliver('checkout.session.completed', {
    id: `cs_test_${randomUUID().replaceAll('-', '')}`, object: 'checkout.session', mode: 'payment', payment_status: 'paid', status: 'complete',
    client_reference_id: res.body.purchase_id, payment_intent: pi, amount_total: 499, currency: 'usd',
    metadata: { purchase_id: res.body.purchase_id, user_id: user.id, package_id: 'starter' },
  });
  assert.equal(hook.status, 200, await hook.text());
  return pi;
}

test('GET /v1/invites: a new user has a code, bronze tier, nothing redeemed; refused without a token', async () => {
  const alice = createUser();
  const r = await call('GET', '/v1/invites', alice);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.match(r.body.code, /^[A-HJ-NP-Z2-9]{8}$/);
  assert.equal(r.body.code, codeOf(alice));
  assert.deepEqual({ ...r.body, code: null, redeem_until: null },
    { code: null, tier: 'bronze', successful_invites: 0, next_reward: 50, monthly_cap: 500, rewarded_this_month: 0, redeem_until: null, redeemed: null, invitees: [] });
  assert.ok(Date.parse(r.body.redeem_until) > Date.now() + 6 * 86400e3, 'a week to redeem a code');
  assert.equal((await call('GET', '/v1/invites', null)).status, 401);
  const anonKey = mintToken({ role: 'anon', iss: 'supabase' });
  assert.equal((await call('GET', '/v1/invites', { token: anonKey })).status, 401);
});

test('redeem: the invitee redeems once; the reward comes with the first paid purchase and goes with its full refund', async () => {
  const alice = createUser();
  const bob = createUser();
  const r = await redeem(bob, codeOf(alice).toLowerCase(), 'bob-1');
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.replayed, false);
  assert.deepEqual([r.body.invite.code, r.body.invite.status, r.body.invite.reward], [codeOf(alice), 'waiting_for_purchase', 0]);
  const again = await redeem(bob, codeOf(alice), 'bob-1');
  assert.equal(again.status, 200);
  assert.equal(again.replayed, 'true');
  assert.deepEqual(again.body.invite, r.body.invite);
  assert.deepEqual(balance(alice), { available: 10, debt: 0 }, 'nothing at redemption');

  const pi = await buy(bob);
  assert.deepEqual(balance(alice), { available: 60, debt: 0 }, 'the first paid purchase rewards alice 50');
  const mine = await call('GET', '/v1/invites', alice);
  assert.equal(mine.body.successful_invites, 1);
  assert.equal(mine.body.rewarded_this_month, 50);
  assert.deepEqual(mine.body.invitees.map((i) => [i.status, i.reward, i.reward_tier, 'code' in i]), [['rewarded', 50, 'bronze', false]]);
  assert.ok(!JSON.stringify(mine.body).includes(bob.id), 'the inviter never sees the invitee\'s id');
  const theirs = await call('GET', '/v1/invites', bob);
  assert.equal(theirs.body.redeemed.status, 'rewarded');
  assert.equal(theirs.body.redeem_until, null);

  await buy(bob);
  assert.deepEqual(balance(alice), { available: 60, debt: 0 }, 'a second purchase earns nothing');

  const refund = await deliver('charge.refunded', { id: `ch_${pi.slice(3)}`, object: 'charge', payment_intent: pi, amount: 499, amount_refunded: 499, refunded: true });
  assert.equal(refund.status, 200);
  assert.deepEqual(balance(alice), { available: 10, debt: 0 }, 'the full refund takes the 50 back');
  const after = await call('GET', '/v1/invites', alice);
  assert.deepEqual([after.body.successful_invites, after.body.invitees[0].status, after.body.invitees[0].reward], [0, 'reversed', 0]);
  assert.deepEqual(reconcile(), []);
});

test('redeem refuses own code, a loop, a second code, after a purchase, after the window, and writes nothing', async () => {
  const alice = createUser();
  const bob = createUser();
  const carol = createUser();
  const before = invites();
  assert.equal((await redeem(alice, codeOf(alice))).body.error.code, 'self_invite');
  assert.equal((await redeem(alice, 'ZZZZZZZZ')).status, 404);
  assert.equal(invites(), before, 'refusals write nothing');
  assert.equal((await redeem(bob, codeOf(alice))).status, 200);
  const loop = await redeem(alice, codeOf(bob));
  assert.deepEqual([loop.status, loop.body.error.code], [409, 'invite_loop']);
  const second = await redeem(bob, codeOf(carol), 'bob-2');
  assert.deepEqual([second.status, second.body.error.code], [409, 'invite_already_redeemed']);
  assert.equal(invites(), before + 1);

  await buy(carol);
  const late = await redeem(carol, codeOf(alice));
  assert.deepEqual([late.status, late.body.error.code], [409, 'invite_after_purchase']);

  const dave = createUser();
  sql(`update public.profiles set signed_up_at = now() - interval '7 days 1 second' where user_id = '${dave.id}'`);
  const closed = await redeem(dave, codeOf(alice));
  assert.deepEqual([closed.status, closed.body.error.code], [410, 'invite_window_closed']);
  assert.equal(invites(), before + 1, 'still only bob\'s redemption');
});

test('redeem: bad input is a clear 4xx with a stable code and writes nothing', async () => {
  const alice = createUser();
  const bob = createUser();
  const code = codeOf(alice);
  const before = invites();
  const cases = [
    [{ code }, {}, 400, 'idempotency_key_required'],
    [{ code }, { 'idempotency-key': '' }, 400, 'invalid_idempotency_key'],
    [{ code: 'abc' }, { 'idempotency-key': 'k' }, 400, 'invalid_request'],
    [{ code: 'X'.repeat(65) }, { 'idempotency-key': 'k' }, 400, 'invalid_request'],
    [{ code: 12345678 }, { 'idempotency-key': 'k' }, 400, null],
    [{ code, extra: 1 }, { 'idempotency-key': 'k' }, 400, null],
    [{}, { 'idempotency-key': 'k' }, 400, null],
    ['{"code": ', { 'idempotency-key': 'k' }, 400, null],
    ['[]', { 'idempotency-key': 'k' }, 400, null],
    [JSON.stringify({ code }), { 'idempotency-key': 'k', 'content-type': 'text/plain' }, 415, null],
  ];
  for (const [body, headers, status, errorCode] of cases) {
    const r = await call('POST', '/v1/invites/redeem', bob, body, headers);
    assert.equal(r.status, status, `${JSON.stringify(body)} ${JSON.stringify(headers)}: ${JSON.stringify(r.body)}`);
    assert.ok(r.body.error.code, 'a stable code');
    if (errorCode) assert.equal(r.body.error.code, errorCode);
  }
  assert.equal((await call('POST', '/v1/invites/redeem', null, { code }, { 'idempotency-key': 'k' })).status, 401);
  assert.equal((await call('GET', '/v1/invites/redeem', bob)).status, 405);
  assert.equal(invites(), before, 'nothing was redeemed');
  // The same key with another code after a redemption is idempotency_key_reused.
  assert.equal((await redeem(bob, code, 'bob-k')).status, 200);
  const reused = await redeem(bob, codeOf(createUser()), 'bob-k');
  assert.deepEqual([reused.status, reused.body.error.code], [422, 'idempotency_key_reused']);
});

test('redeem and get_invites are refused to anon through PostgREST directly', async () => {
  for (const [name, args] of [['redeem_invite', { p_code: 'AAAAAAAA', p_idempotency_key: 'k' }], ['get_invites', {}]]) {
    const res = await fetch(`${stack.postgrestUrl}/rpc/${name}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) });
    assert.ok([401, 403].includes(res.status), `${name}: ${res.status}`);
  }
});
