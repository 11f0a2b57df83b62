// Purchases through Stripe (issue 6): Checkout through a local Stripe stand-in, the signed
// webhook (every SECURITY.md section 6 case), exactly-once grants under parallel and repeated
// delivery, out-of-order refunds and disputes, and the purchase and package listings.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, sqlRows, stack } from './harness.mjs';
import { startStripeStandin, STRIPE_TEST_KEY } from './stripe-standin.mjs';

const WHSEC = 'whsec_test_current_0123456789';
const WHSEC_OLD = 'whsec_test_previous_0123456789';
let w, stripe;

const settings = (base) => ({
  STRIPE_SECRET_KEY: STRIPE_TEST_KEY, STRIPE_API_BASE: base, STRIPE_WEBHOOK_SECRET: `${WHSEC_OLD}, ${WHSEC}`,
  CHECKOUT_SUCCESS_URL: 'https://app.example.test/credits/thanks?session={CHECKOUT_SESSION_ID}',
  CHECKOUT_CANCEL_URL: 'https://app.example.test/credits',
});

before(async () => {
  stripe = await startStripeStandin();
  w = await startWorker(settings(stripe.url));
});
after(async () => { await w?.dispose(); await stripe?.close(); });

const now = () => Math.floor(Date.now() / 1000);
const json = (headers = {}) => ({ 'content-type': 'application/json', ...headers });
const balance = (id) => sqlRows(`select available, debt from public.credit_balances where user_id = '${id}'`)[0];
const ledgerRows = (id) => Number(sql(`select count(*) from public.credit_ledger where user_id = '${id}'`));
const purchases = (id) => sqlRows(`select id, status, credits_granted, provider_payment_id, checkout_session_id from public.purchases where user_id = '${id}' order by created_at`);
const reconcile = () => JSON.parse(sql('select public.reconcile()'));

async function checkout(user, packageId = 'starter', key = randomUUID(), worker = w) {
  const res = await worker.fetch('/v1/purchase/checkout', { method: 'POST', headers: json({ ...bearer(user.token), 'idempotency-key': key }), body: JSON.stringify({ package_id: packageId }) });
  return { res, body: await res.json(), key };
}

function stripeSignature(body, { secret = WHSEC, t = now() } = {}) {
  return `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`;
}

async function deliver(event, { body = JSON.stringify(event), signature = stripeSignature(body) } = {}) {
  const headers = { 'content-type': 'application/json; charset=utf-8' };
  if (signature !== null) headers['stripe-signature'] = signature;
  return w.fetch('/v1/purchase/stripe-webhook', { method: 'POST', headers, body });
}

const evt = (type, object, id = `evt_${randomUUID().replaceAll('-', '')}`) =>
  ({ id, object: 'event', api_version: '2024-06-20', created: now(), livemode: false, type, data: { object } });

/** The checkout.session.completed event Stripe sends for a purchase made through the Worker. */
function completed(user, purchaseId, { pi = `pi_${randomUUID().replaceAll('-', '')}`, packageId = 'starter', amount = 499, type = 'checkout.session.completed', paymentStatus = 'paid' } = {}) {
  return evt(type, {
    id: `cs_test_${randomUUID().replaceAll('-', '')}`, object: 'checkout.session', mode: 'payment', payment_status: paymentStatus,
    status: 'complete', client_reference_id: purchaseId, payment_intent: pi, amount_total: amount, currency: 'usd',
    metadata: { purchase_id: purchaseId, user_id: user.id, package_id: packageId },
  });
}
const charge = (pi, amount, refunded) => ({ id: `ch_${pi.slice(3)}`, object: 'charge', payment_intent: pi, amount, amount_refunded: refunded, refunded: refunded === amount });
const dispute = (pi, status = 'needs_response') => ({ id: `dp_${pi.slice(3)}`, object: 'dispute', charge: `ch_${pi.slice(3)}`, payment_intent: pi, amount: 499, status });

/** A user with a pending Stripe purchase of `starter`. */
async function pendingPurchase() {
  const user = createUser();
  const { res, body } = await checkout(user);
  assert.equal(res.status, 200, JSON.stringify(body));
  return { user, purchaseId: body.purchase_id };
}

// ---- packages and checkout ----------------------------------------------------------------------

test('GET /v1/packages lists the active packages publicly, cacheable', async () => {
  const res = await w.fetch('/v1/packages');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('cache-control'), /public, max-age=\d+/);
  const ids = (await res.json()).items.map((p) => p.id);
  assert.deepEqual(ids, ['starter', 'creator', 'studio']);
});

test('checkout creates a pending purchase and a Stripe Checkout Session as Stripe specifies', async () => {
  const user = createUser();
  const before = stripe.state.requests.length;
  const { res, body, key } = await checkout(user);
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.match(body.checkout_url, /^https:\/\/checkout\.stripe\.com\/c\/pay\/cs_test_/);
  const [p] = purchases(user.id);
  assert.equal(p.id, body.purchase_id);
  assert.deepEqual([p.status, p.checkout_session_id, p.credits_granted], ['pending', body.session_id, 0]);
  const sent = stripe.state.requests.slice(before);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].headers['idempotency-key'], `checkout-${p.id}`);
  const form = new URLSearchParams(sent[0].body);
  assert.equal(form.get('client_reference_id'), p.id);
  assert.equal(form.get('metadata[user_id]'), user.id);
  assert.equal(form.get('line_items[0][price]'), 'price_starter');
  assert.equal(form.get('success_url'), 'https://app.example.test/credits/thanks?session={CHECKOUT_SESSION_ID}');

  // The same Idempotency-Key again: the same answer, the same session, no second purchase.
  const again = await checkout(user, 'starter', key);
  assert.equal(again.res.status, 200);
  assert.deepEqual(again.body, body);
  assert.equal(purchases(user.id).length, 1);
  assert.equal(stripe.state.sessions.size, new Set([...stripe.state.sessions.keys()]).size);
  // Same key, another package: refused, nothing changes.
  const other = await checkout(user, 'studio', key);
  assert.equal(other.res.status, 422);
  assert.equal(other.body.error.code, 'idempotency_key_reused');
  assert.equal(purchases(user.id).length, 1);
});

test('checkout with Stripe down answers 503; the retry with the same key reuses the pending purchase', async () => {
  const user = createUser();
  stripe.state.down = true;
  let first;
  try {
    first = await checkout(user);
  } finally {
    stripe.state.down = false;
  }
  assert.equal(first.res.status, 503);
  assert.equal(first.body.error.code, 'payment_provider_unavailable');
  assert.ok(first.res.headers.get('retry-after'));
  const [pending] = purchases(user.id);
  assert.deepEqual([pending.status, pending.checkout_session_id], ['pending', null]);
  const unreachable = await startWorker(settings('http://127.0.0.1:9'));
  try {
    const again = await checkout(user, 'starter', first.key, unreachable);
    assert.equal(again.res.status, 503);
  } finally {
    await unreachable.dispose();
  }
  const retry = await checkout(user, 'starter', first.key);
  assert.equal(retry.res.status, 200);
  assert.equal(retry.body.purchase_id, pending.id);
  assert.equal(purchases(user.id).length, 1);
  assert.equal(purchases(user.id)[0].checkout_session_id, retry.body.session_id);
});

test('the same checkout sent twice at once: the one Stripe is still processing is 409 in flight, and its retry gets the same session', async () => {
  const user = createUser();
  const key = randomUUID();
  // The second request is sent once the first is at Stripe (its purchase committed), so the
  // database answers both with the same purchase and the second meets Stripe's in-progress key.
  stripe.state.latencyMs = 1500;
  let both;
  try {
    const seen = stripe.state.requests.length;
    const first = checkout(user, 'starter', key);
    const atStripe = () => stripe.state.requests.slice(seen).some((r) => r.url === '/v1/checkout/sessions');
    for (let i = 0; i < 100 && !atStripe(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(atStripe(), 'the first checkout reached Stripe');
    both = await Promise.all([first, checkout(user, 'starter', key)]);
  } finally {
    stripe.state.latencyMs = 0;
  }
  const statuses = both.map((r) => r.res.status).sort();
  assert.deepEqual(statuses, [200, 409], JSON.stringify(both.map((r) => r.body)));
  const done = both.find((r) => r.res.status === 200);
  const busy = both.find((r) => r.res.status === 409);
  assert.equal(busy.body.error.code, 'idempotency_in_flight', 'not idempotency_key_reused: the key was not misused');
  const sent = stripe.state.requests.filter((r) => r.headers['idempotency-key'] === `checkout-${done.body.purchase_id}`);
  assert.equal(sent.length, 2, 'both reached Stripe with the purchase\'s key (the 409 is Stripe\'s, not the database\'s)');
  const retry = await checkout(user, 'starter', key);
  assert.equal(retry.res.status, 200, JSON.stringify(retry.body));
  assert.deepEqual([retry.body.purchase_id, retry.body.session_id], [done.body.purchase_id, done.body.session_id], 'one purchase, one session');
  assert.equal(purchases(user.id).length, 1);
});

test('checkout refuses bad input with stable codes and writes nothing', async () => {
  const user = createUser();
  const post = (headers, body) => w.fetch('/v1/purchase/checkout', { method: 'POST', headers: { ...bearer(user.token), ...headers }, body });
  const cases = [
    [json(), '{"package_id":"starter"}', 400, 'idempotency_key_required'],
    [json({ 'idempotency-key': 'has space' }), '{"package_id":"starter"}', 400, 'invalid_idempotency_key'],
    [{ 'content-type': 'text/plain', 'idempotency-key': 'k1' }, '{"package_id":"starter"}', 415, 'unsupported_media_type'],
    [json({ 'idempotency-key': 'k2' }), '{"package_id":', 400, 'invalid_json'],
    [json({ 'idempotency-key': 'k3' }), '{"package_id":"starter","price":1}', 400, 'invalid_request'],
    [json({ 'idempotency-key': 'k4' }), '{"package_id":7}', 400, 'invalid_request'],
    [json({ 'idempotency-key': 'k5' }), `{"package_id":"x' or 1=1 --"}`, 400, 'invalid_request'],
    [json({ 'idempotency-key': 'k6' }), '{"package_id":"nope"}', 404, 'not_found'],
    [json({ 'idempotency-key': 'k7' }), '{"package_id":"launch-2025"}', 404, 'not_found'],
    [json({ 'idempotency-key': 'k8' }), JSON.stringify({ package_id: 'x'.repeat(20000) }), 413, 'payload_too_large'],
  ];
  for (const [headers, body, status, code] of cases) {
    const res = await post(headers, body);
    assert.equal(res.status, status, `${body.slice(0, 40)}`);
    assert.equal((await res.json()).error.code, code, `${body.slice(0, 40)}`);
  }
  assert.equal(purchases(user.id).length, 0);
  const anon = createUser({ anonymous: true });
  const res = await w.fetch('/v1/purchase/checkout', { method: 'POST', headers: json({ ...bearer(anon.token), 'idempotency-key': 'a1' }), body: '{"package_id":"starter"}' });
  assert.equal(res.status, 403);
  assert.equal(purchases(anon.id).length, 0);
  const noToken = await w.fetch('/v1/purchase/checkout', { method: 'POST', headers: json({ 'idempotency-key': 'n1' }), body: '{"package_id":"starter"}' });
  assert.equal(noToken.status, 401);
});

// ---- webhook signatures (SECURITY.md section 6) -------------------------------------------------

test('webhook signature failures are 400 with stable codes and leave the ledger unchanged', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const event = completed(user, purchaseId);
  const body = JSON.stringify(event);
  const t = now();
  const good = stripeSignature(body, { t });
  const rows = ledgerRows(user.id);
  const cases = [
    ['no Stripe-Signature', { signature: null }, 'invalid_signature_header'],
    ['an empty header', { signature: '' }, 'invalid_signature_header'],
    ['a malformed header', { signature: 'v1=abc,t=' }, 'invalid_signature_header'],
    ['no v1', { signature: `t=${t},v0=${'0'.repeat(64)}` }, 'invalid_signature_header'],
    ['a changed byte', { body: body.replace('"paid"', '"paiD"'), signature: good }, 'invalid_signature'],
    ['a re-serialized body', { body: JSON.stringify(event, null, 1), signature: good }, 'invalid_signature'],
    ['a wrong secret', { signature: stripeSignature(body, { secret: 'whsec_wrong_0123456789', t }) }, 'invalid_signature'],
    ['a timestamp 330 s old', { signature: stripeSignature(body, { t: t - 330 }) }, 'signature_expired'],
    ['a timestamp 330 s ahead', { signature: stripeSignature(body, { t: t + 330 }) }, 'signature_expired'],
    ['a signature for another timestamp', { signature: good.replace(`t=${t}`, `t=${t - 1}`) }, 'invalid_signature'],
  ];
  for (const [name, opts, code] of cases) {
    const res = await deliver(event, opts);
    assert.equal(res.status, 400, name);
    assert.equal((await res.json()).error.code, code, name);
  }
  assert.equal(ledgerRows(user.id), rows, 'nothing was granted');
  assert.equal(purchases(user.id)[0].status, 'pending');
  assert.equal(Number(sql(`select count(*) from public.payment_events where event_id = '${event.id}'`)), 0);

  // Several v1 values (one per secret during rotation): any match passes; the old secret too.
  const both = `t=${t},v1=${createHmac('sha256', 'whsec_unknown_xx').update(`${t}.${body}`).digest('hex')},v1=${good.split('v1=')[1]}`;
  const res = await deliver(event, { signature: both });
  assert.equal(res.status, 200);
  const old = completed(user, purchaseId, { pi: purchases(user.id)[0].provider_payment_id ?? undefined });
  const viaOld = await deliver(old, { signature: stripeSignature(JSON.stringify(old), { secret: WHSEC_OLD }) });
  assert.equal(viaOld.status, 200, 'the previous secret still verifies during rotation');
  assert.equal(balance(user.id).available, 110, 'one grant of 100 on top of the welcome credits');
  assert.deepEqual(reconcile(), []);
});

// ---- exactly once ---------------------------------------------------------------------------------

test('the same event delivered 10 times in parallel grants once; a later retry is 200 and grants nothing', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const event = completed(user, purchaseId);
  const answers = await Promise.all(Array.from({ length: 10 }, () => deliver(event)));
  assert.deepEqual(answers.map((r) => r.status), Array(10).fill(200));
  assert.equal(Number(sql(`select count(*) from public.credit_grants where purchase_id = '${purchaseId}'`)), 1);
  assert.equal(balance(user.id).available, 110);
  // Stripe retrying after a lost 2xx (the "crash after commit" case).
  assert.equal((await deliver(event)).status, 200);
  assert.equal(balance(user.id).available, 110);
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted], ['succeeded', 100]);
  assert.deepEqual(reconcile(), []);
});

test('completion delivered twice with different event ids (completed, async_payment_succeeded) grants once', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  assert.equal((await deliver(completed(user, purchaseId, { pi }))).status, 200);
  assert.equal((await deliver(completed(user, purchaseId, { pi, type: 'checkout.session.async_payment_succeeded' }))).status, 200);
  assert.equal(balance(user.id).available, 110);
  assert.deepEqual(reconcile(), []);
});

test('an unpaid completion waits for the async outcome; a failed one marks the purchase failed', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  const waiting = await deliver(completed(user, purchaseId, { pi, paymentStatus: 'unpaid' }));
  assert.equal(waiting.status, 200);
  assert.equal((await waiting.json()).ignored, 'awaiting_payment');
  assert.equal(purchases(user.id)[0].status, 'pending');
  assert.equal((await deliver(completed(user, purchaseId, { pi, type: 'checkout.session.async_payment_failed', paymentStatus: 'unpaid' }))).status, 200);
  assert.equal(purchases(user.id)[0].status, 'failed');
  assert.equal(balance(user.id).available, 10);
});

test('unknown event types are acknowledged and ignored', async () => {
  const res = await deliver(evt('customer.created', { id: 'cus_1', object: 'customer' }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { received: true, ignored: 'event_type' });
});

// ---- out of order ---------------------------------------------------------------------------------

test('a refund delivered before the completion: nothing is granted, the purchase ends refunded', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  assert.equal((await deliver(evt('charge.refunded', charge(pi, 499, 499)))).status, 200);
  assert.equal((await deliver(completed(user, purchaseId, { pi }))).status, 200);
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted], ['refunded', 0]);
  assert.equal(balance(user.id).available, 10);
  assert.deepEqual(reconcile(), []);
});

test('partial refunds take back their share as deltas; the full refund takes the rest', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  await deliver(completed(user, purchaseId, { pi }));
  assert.equal((await deliver(evt('charge.refunded', charge(pi, 499, 100)))).status, 200);
  assert.equal(balance(user.id).available, 110 - 21, 'ceil(100 x 100 / 499) = 21 credits taken back');
  assert.equal(purchases(user.id)[0].status, 'succeeded');
  assert.equal((await deliver(evt('charge.refunded', charge(pi, 499, 499)))).status, 200);
  assert.equal(balance(user.id).available, 10);
  assert.equal(purchases(user.id)[0].status, 'refunded');
  assert.deepEqual(reconcile(), []);
});

test('a dispute claws back, and winning it after the claw-back gives the credits back once', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  await deliver(completed(user, purchaseId, { pi }));
  await deliver(evt('charge.dispute.created', dispute(pi)));
  await deliver(evt('charge.dispute.funds_withdrawn', dispute(pi)));
  assert.deepEqual([purchases(user.id)[0].status, balance(user.id).available], ['disputed', 10]);
  const won = evt('charge.dispute.funds_reinstated', dispute(pi, 'under_review'));
  await Promise.all([deliver(won), deliver(won), deliver(evt('charge.dispute.closed', dispute(pi, 'won')))]);
  assert.deepEqual([purchases(user.id)[0].status, balance(user.id).available], ['succeeded', 110]);
  // The won close delivered again changes nothing further.
  await deliver(evt('charge.dispute.closed', dispute(pi, 'won')));
  assert.deepEqual([purchases(user.id)[0].status, balance(user.id).available], ['succeeded', 110]);
  assert.deepEqual(reconcile(), []);
});

test('a dispute closed prevented (stopped before it became a chargeback) gives the credits back, as a won one does', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  await deliver(completed(user, purchaseId, { pi }));
  await deliver(evt('charge.dispute.created', dispute(pi)));
  assert.deepEqual([purchases(user.id)[0].status, balance(user.id).available], ['disputed', 10]);
  const closed = await deliver(evt('charge.dispute.closed', dispute(pi, 'prevented')));
  assert.equal(closed.status, 200);
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted, balance(user.id).available], ['succeeded', 100, 110]);
  assert.deepEqual(reconcile(), []);
});

test('issue 9.2: a closed inquiry does not hide a later chargeback on the same payment, and a lost one keeps the credits taken', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  const inquiry = { ...dispute(pi, 'warning_needs_response'), id: `du_${pi.slice(3)}` };
  await deliver(completed(user, purchaseId, { pi }));
  await deliver(evt('charge.dispute.created', inquiry));
  await deliver(evt('charge.dispute.closed', { ...inquiry, status: 'warning_closed' }));
  assert.deepEqual([purchases(user.id)[0].status, balance(user.id).available], ['succeeded', 110]);
  // The chargeback (its own dispute id), then lost: the payment keeps nothing.
  await deliver(evt('charge.dispute.created', dispute(pi)));
  assert.deepEqual([purchases(user.id)[0].status, balance(user.id).available], ['disputed', 10]);
  const lost = await deliver(evt('charge.dispute.closed', dispute(pi, 'lost')));
  assert.equal(lost.status, 200);
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted, balance(user.id).available], ['disputed', 0, 10]);
  assert.deepEqual(reconcile(), []);
});

test('a dispute opened and won before the payment event arrives: the payment is granted once', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  for (const e of [evt('charge.dispute.created', dispute(pi)), evt('charge.dispute.closed', dispute(pi, 'won'))]) {
    assert.equal((await deliver(e)).status, 200);
  }
  await deliver(completed(user, purchaseId, { pi }));
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted, balance(user.id).available], ['succeeded', 100, 110]);
  // A dispute opened before the payment and not won still wins over the payment.
  const other = await pendingPurchase();
  const pi2 = `pi_${randomUUID().replaceAll('-', '')}`;
  await deliver(evt('charge.dispute.created', dispute(pi2)));
  await deliver(completed(other.user, other.purchaseId, { pi: pi2 }));
  assert.deepEqual([purchases(other.user.id)[0].status, balance(other.user.id).available], ['disputed', 10]);
  assert.deepEqual(reconcile(), []);
});

test('issue 9.1: an inquiry, a full refund, the inquiry closed (warning_closed): the refunded payment keeps no credits', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  for (const e of [completed(user, purchaseId, { pi }), evt('charge.dispute.created', dispute(pi, 'warning_needs_response')),
    evt('charge.refunded', charge(pi, 499, 499)), evt('charge.dispute.closed', dispute(pi, 'warning_closed'))]) {
    assert.equal((await deliver(e)).status, 200);
  }
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted, balance(user.id)], ['refunded', 0, { available: 10, debt: 0 }]);
  assert.deepEqual(reconcile(), []);
});

test('issue 9.3: a 1 cent refund delivered before the completion takes 1 credit, not the purchase', async () => {
  const { user, purchaseId } = await pendingPurchase();
  const pi = `pi_${randomUUID().replaceAll('-', '')}`;
  assert.equal((await deliver(evt('charge.refunded', charge(pi, 499, 1)))).status, 200);
  assert.equal((await deliver(completed(user, purchaseId, { pi }))).status, 200);
  assert.deepEqual([purchases(user.id)[0].status, purchases(user.id)[0].credits_granted, balance(user.id)], ['succeeded', 99, { available: 109, debt: 0 }]);
  assert.deepEqual(reconcile(), []);
});

test('GET /v1/purchases shows the caller\'s purchases only, with status and credits granted', async () => {
  const { user, purchaseId } = await pendingPurchase();
  await deliver(completed(user, purchaseId));
  const other = createUser();
  const mine = await (await w.fetch('/v1/purchases', { headers: bearer(user.token) })).json();
  assert.deepEqual(mine.items.map((p) => [p.id, p.status, p.credits_granted]), [[purchaseId, 'succeeded', 100]]);
  const theirs = await (await w.fetch('/v1/purchases', { headers: bearer(other.token) })).json();
  assert.deepEqual(theirs.items, []);
  assert.equal((await w.fetch('/v1/purchases')).status, 401);
});

test('concurrent grants, spends and claims on one user: no lost update, invariants hold', async () => {
  const user = createUser();
  const pending = [];
  for (let i = 0; i < 3; i++) {
    const { res, body } = await checkout(user);
    assert.equal(res.status, 200, JSON.stringify(body));
    pending.push(body.purchase_id);
  }
  const drafts = [];
  for (let i = 0; i < 2; i++) {
    const r = await w.fetch('/v1/drafts', { method: 'POST', headers: json({ apikey: stack.anonKey }), body: JSON.stringify({ prompt: `idea ${i}` }) });
    drafts.push((await r.json()).claim_token);
  }
  const events = pending.map((id) => completed(user, id));
  const generate = () => w.fetch('/v1/generate', {
    method: 'POST', headers: json({ ...bearer(user.token), 'idempotency-key': randomUUID() }),
    body: JSON.stringify({ model_id: 'draft-v1', prompt: 'in the crowd', target_minutes: 1 }),
  });
  const claim = (token) => w.fetch('/v1/drafts/claim', { method: 'POST', headers: json(bearer(user.token)), body: JSON.stringify({ claim_token: token }) });
  // Every webhook is delivered twice, interleaved with six generations and two claims.
  const all = await Promise.all([
    ...events.flatMap((e) => [deliver(e), deliver(e)]),
    ...Array.from({ length: 6 }, generate),
    ...drafts.map(claim),
  ]);
  for (const r of all) assert.ok([200, 202].includes(r.status), `status ${r.status}: ${await r.text()}`);
  // 10 welcome + 3 x 100 purchased, 6 x 1 held by the generations.
  assert.deepEqual(sqlRows(`select available, held from public.credit_balances where user_id = '${user.id}'`)[0], { available: 304, held: 6 });
  assert.deepEqual(purchases(user.id).map((p) => [p.status, p.credits_granted]), [['succeeded', 100], ['succeeded', 100], ['succeeded', 100]]);
  assert.equal(Number(sql(`select count(*) from public.projects where user_id = '${user.id}'`)), 8, 'two claimed drafts and six generations');
  assert.deepEqual(reconcile(), []);
});

test('a package without a Stripe price is refused at checkout and leaves no pending purchase', async () => {
  sql(`insert into public.credit_packages (id, name, credits, bonus_credits, price_cents, currency, stripe_price_id, app_store_product_id, active, sort_order)
       values ('ios-only', 'iOS only', 50, 0, 299, 'usd', null, 'com.example.credits.iosonly', true, 99) on conflict (id) do nothing`);
  try {
    const user = createUser();
    const { res, body } = await checkout(user, 'ios-only');
    assert.equal(res.status, 409);
    assert.equal(body.error.code, 'not_sold_on_stripe');
    assert.equal(purchases(user.id).length, 0);
  } finally {
    sql(`delete from public.credit_packages where id = 'ios-only'`);
  }
});
