// Subscriptions through the Worker (issue 12; migrations/README.md, "The subscription rules"):
// checkout in subscription mode through the Stripe stand-in, signed Billing webhooks granting one
// grant per paid period (duplicated, concurrent and reordered deliveries), rollover, an upgrade
// mid-period, a failed renewal, a cancellation through Stripe's API, and a refunded renewal
// leaving debt. Most tests place the periods around the real clock (one that ended a day ago, the
// current one, the next); 'a quarter of renewals' moves the business clock (harness `setClock`,
// every session's app.now(), PostgREST's included) through three periods and their ends, and runs
// the cron's expiry sweep at each end. The clock is global to the database: this file restores it
// in `finally`, and tests/run.sh runs the end-to-end files one at a time, so no other file sees it.
// Invoices come in both Stripe shapes: with `payments` (expanded) and as the 2025-03-31.basil
// webhook payload delivers them (no PaymentIntent), for which the Worker asks the stand-in's
// Invoice Payments API which PaymentIntent paid the invoice.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startWorker, createUser, bearer, sql, sqlRows, stack, setClock, clearClock } from './harness.mjs';
import { startStripeStandin, STRIPE_TEST_KEY } from './stripe-standin.mjs';
import { makeChain, signJws, transactionPayload, notificationPayload, BUNDLE_ID, ENVIRONMENT } from './purchase-appstore-certs.mjs';

const WHSEC = 'whsec_test_subscriptions_0123456789';
let w, stripe, chain;

before(async () => {
  stripe = await startStripeStandin();
  chain = makeChain();
  w = await startWorker({
    APPLE_ROOT_CERT: chain.rootB64, APPLE_BUNDLE_ID: BUNDLE_ID, APPLE_ENVIRONMENT: ENVIRONMENT,
    STRIPE_SECRET_KEY: STRIPE_TEST_KEY, STRIPE_API_BASE: stripe.url, STRIPE_WEBHOOK_SECRET: WHSEC,
    CHECKOUT_SUCCESS_URL: 'https://app.example.test/plans/thanks?session={CHECKOUT_SESSION_ID}',
    CHECKOUT_CANCEL_URL: 'https://app.example.test/plans',
  });
});
after(async () => { clearClock(); await w?.dispose(); await stripe?.close(); });

const DAY = 86400;
const now = () => Math.floor(Date.now() / 1000);
const uid = () => randomUUID().replaceAll('-', '');
const json = (headers = {}) => ({ 'content-type': 'application/json', ...headers });
const reconcile = () => JSON.parse(sql('select public.reconcile()'));
const ledger = (id, since = 0) => sqlRows(`select id, type, delta_available as a, delta_debt as d from public.credit_ledger where user_id = '${id}' and id > ${since} order by id`);
const lastLedger = (id) => Number(sql(`select coalesce(max(id), 0) from public.credit_ledger where user_id = '${id}'`));
const iso = (secs) => new Date(secs * 1000).toISOString().replace('.000Z', '+00:00');
const types = (rows) => rows.map((r) => `${r.type}:${r.a}${r.d ? `d${r.d}` : ''}`).join(' ');

async function balance(user) {
  const res = await w.fetch('/v1/balance', { headers: bearer(user.token) });
  assert.equal(res.status, 200);
  const b = await res.json();
  return `${b.available}/${b.debt}`;
}
async function subscription(user) {
  const res = await w.fetch('/v1/subscription', { headers: bearer(user.token) });
  assert.equal(res.status, 200);
  return (await res.json()).subscription;
}

function deliver(event) {
  const body = JSON.stringify(event);
  const t = now();
  const sig = createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex');
  return w.fetch('/v1/purchase/stripe-webhook', { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': `t=${t},v1=${sig}` }, body });
}
const evt = (type, object, id = `evt_${uid()}`, created = now()) => ({ id, object: 'event', api_version: '2025-03-31.basil', created, livemode: false, type, data: { object } });

// Invoice lines and invoices as Stripe's current API shapes them.
const line = (price, amount, start, end, proration = false) => ({
  id: `il_${uid()}`, object: 'line_item', amount, currency: 'usd', period: { start, end },
  pricing: { type: 'price_details', price_details: { price, product: 'prod_x' }, unit_amount_decimal: String(amount) },
  parent: { type: 'subscription_item_details', subscription_item_details: { proration, subscription: 'sub_x', subscription_item: 'si_x' } },
});
function invoice({ user, sub, pi = `pi_${uid()}`, reason = 'subscription_cycle', lines, amount }) {
  return {
    id: `in_${uid()}`, object: 'invoice', billing_reason: reason, amount_paid: amount, currency: 'usd', status: 'paid',
    parent: { type: 'subscription_details', subscription_details: { subscription: sub, metadata: { user_id: user.id, plan_id: 'pro-monthly' } } },
    payments: { object: 'list', data: [{ object: 'invoice_payment', payment: { type: 'payment_intent', payment_intent: pi } }] },
    lines: { object: 'list', data: lines },
  };
}
const period = (user, sub, start, end, { price = 'price_plan_pro_monthly', amount = 2999, pi } = {}) =>
  invoice({ user, sub, pi, lines: [line(price, amount, start, end)], amount });
/**
 * An invoice as a 2025-03-31.basil webhook payload carries it: no `payment_intent`, no `payments`
 * (not included unless expanded). `pi` paid it: registered with the stand-in's Invoice Payments API
 * unless `paid: false` (then the test registers it when the payment succeeds).
 */
function basil(user, sub, start, end, { price = 'price_plan_pro_monthly', amount = 2999, reason = 'subscription_cycle', lines, pi = `pi_${uid()}`, paid = true } = {}) {
  const inv = invoice({ user, sub, reason, amount, lines: lines ?? [line(price, amount, start, end)] });
  delete inv.payments;
  if (paid) stripe.payInvoice(inv.id, pi, amount);
  return { inv, pi };
}
/** The Invoice Payments requests the Worker sent since `from`, as `<path>?<query> <stripe-version>`. */
const lookups = (from) => stripe.state.requests.slice(from).filter((r) => r.url.startsWith('/v1/invoice_payments'))
  .map((r) => `${r.method} ${r.url} ${r.headers['stripe-version']}`);
/** Fires the cron trigger (the sweepers) until the user's grants past their expiry have expire rows. */
async function sweep(user) {
  for (let i = 0; i < 5; i += 1) {
    const res = await fetch(`${w.url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent('*/5 * * * *')}`);
    assert.equal(res.status, 200);
    const left = sql(`select count(*) from public.credit_grants where user_id = '${user.id}' and remaining > 0 and expires_at <= app.now()`);
    if (left === '0') return;
  }
  assert.fail('the sweep did not expire the user\'s credits');
}

test('checkout: a Checkout Session in subscription mode, the same for a retry; bad input and refusals write nothing', async () => {
  const u = createUser();
  const key = randomUUID();
  const call = (body, headers = {}, who = u) => w.fetch('/v1/subscription/checkout', { method: 'POST', headers: json({ ...bearer(who.token), 'idempotency-key': key, ...headers }), body: JSON.stringify(body) });
  const before = stripe.state.requests.length;
  const r1 = await call({ plan_id: 'pro-monthly' });
  assert.equal(r1.status, 200);
  const b1 = await r1.json();
  assert.match(b1.session_id, /^cs_test_/);
  const sent = stripe.state.requests[before];
  assert.equal(sent.url, '/v1/checkout/sessions');
  const form = new URLSearchParams(sent.body);
  assert.equal(form.get('mode'), 'subscription');
  assert.equal(form.get('line_items[0][price]'), 'price_plan_pro_monthly');
  assert.equal(form.get('subscription_data[metadata][user_id]'), u.id);
  assert.match(sent.headers['idempotency-key'], /^subscription-checkout-[0-9a-f]{64}$/);
  const r2 = await call({ plan_id: 'pro-monthly' });
  assert.deepEqual(await r2.json(), b1, 'a retry with the same key gets the same session');
  const other = await call({ plan_id: 'basic-monthly' });
  assert.equal(other.status, 422);
  assert.equal((await other.json()).error.code, 'idempotency_key_reused');

  const cases = [
    [await call({ plan_id: 'Pro Monthly' }, { 'idempotency-key': randomUUID() }), 400, 'invalid_request'],
    [await call({ plan_id: 'pro-monthly', extra: 1 }, { 'idempotency-key': randomUUID() }), 400, 'invalid_request'],
    [await call({ plan_id: 'nope' }, { 'idempotency-key': randomUUID() }), 404, 'not_found'],
    [await call({ plan_id: 'pro-monthly' }, { 'idempotency-key': randomUUID() }, createUser({ anonymous: true })), 403, null],
    [await w.fetch('/v1/subscription/checkout', { method: 'POST', headers: json(bearer(u.token)), body: '{"plan_id":"pro-monthly"}' }), 400, null],
    [await w.fetch('/v1/subscription/checkout', { method: 'POST', headers: json(), body: '{"plan_id":"pro-monthly"}' }), 401, null],
  ];
  for (const [res, status, code] of cases) {
    assert.equal(res.status, status);
    const body = await res.json();
    if (code) assert.equal(body.error.code, code);
  }
  assert.equal(sql(`select count(*) from public.subscriptions where user_id = '${u.id}'`), '0', 'a checkout creates no subscription');
  assert.equal((await w.fetch('/v1/subscription', {})).status, 401);
});

test('renewals with rollover: one grant per paid period, 500 of the unspent rolled over, ledger and balance at each step', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const p0 = [t - 31 * DAY, t - DAY], p1 = [t - DAY, t + 29 * DAY], p2 = [t + 29 * DAY, t + 59 * DAY];
  assert.equal(await balance(u), '10/0');
  assert.equal(await subscription(u), null);

  // Period 0, delivered a day after it ended: worth nothing, expires at once.
  let mark = lastLedger(u.id);
  assert.equal((await deliver(evt('invoice.paid', { ...period(u, sub, ...p0), billing_reason: 'subscription_create' }))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'purchase:1000 expire:-1000');
  assert.equal(await balance(u), '10/0');

  // Period 1 (current): its 1000, and 500 of period 0's unspent 1000 rolled over.
  mark = lastLedger(u.id);
  const inv1 = period(u, sub, ...p1);
  const e1 = evt('invoice.paid', inv1);
  const deliveries = await Promise.all([deliver(e1), deliver(e1), deliver(evt('invoice.paid', inv1))]);
  assert.deepEqual(deliveries.map((r) => r.status), [200, 200, 200]);
  assert.equal(types(ledger(u.id, mark)), 'purchase:1000 grant:500', 'one grant for the invoice delivered three times at once');
  assert.equal(await balance(u), '1510/0');
  let s = await subscription(u);
  assert.equal(s.credits_this_period, 1500);
  assert.equal(s.status, 'active');
  assert.equal(s.renews.plan_id, 'pro-monthly');

  // Period 2 paid early: 500 of period 1's 1500 moved into its own grant, nothing counted twice.
  mark = lastLedger(u.id);
  assert.equal((await deliver(evt('invoice.paid', period(u, sub, ...p2)))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'purchase:1000 adjustment:-500 grant:500');
  assert.equal(await balance(u), '2510/0');
  const grants = sqlRows(`select amount, remaining, extract(epoch from expires_at)::bigint as exp from public.credit_grants where user_id = '${u.id}' and remaining > 0 and source <> 'welcome' order by created_at`);
  assert.deepEqual(grants.map((g) => [g.remaining, Number(g.exp)]), [[500, p1[1]], [500, p1[1]], [1000, p2[1]], [500, p2[1]]]);
  s = await subscription(u);
  assert.equal(s.current_period_end, new Date(p2[1] * 1000).toISOString().replace('.000Z', '+00:00'));
  assert.deepEqual(reconcile(), []);
});

test('reordered: a renewal delivered before the period it follows rolls over when that period arrives', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  assert.equal((await deliver(evt('invoice.paid', period(u, sub, t + 29 * DAY, t + 59 * DAY)))).status, 200);
  assert.equal(await balance(u), '1010/0');
  const mark = lastLedger(u.id);
  assert.equal((await deliver(evt('invoice.paid', period(u, sub, t - DAY, t + 29 * DAY)))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'purchase:1000 adjustment:-500 grant:500');
  assert.equal(await balance(u), '2010/0', 'welcome 10, 500 left in period 1, period 2 and the 500 rolled into it');
  assert.deepEqual(reconcile(), []);
});

test('an upgrade mid-period grants the difference until the period end; a failed renewal grants nothing', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const cur = [t - 10 * DAY, t + 20 * DAY];
  await deliver(evt('invoice.paid', { ...period(u, sub, ...cur, { price: 'price_plan_basic_monthly', amount: 999 }), billing_reason: 'subscription_create' }));
  assert.equal(await balance(u), '210/0');
  const up = invoice({ user: u, sub, reason: 'subscription_update', amount: 1333,
    lines: [line('price_plan_basic_monthly', -666, t, cur[1], true), line('price_plan_pro_monthly', 1999, t, cur[1], true)] });
  const mark = lastLedger(u.id);
  assert.equal((await deliver(evt('invoice.paid', up))).status, 200);
  assert.equal((await deliver(evt('invoice.paid', up))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'purchase:800', 'the upgrade once');
  assert.equal(await balance(u), '1010/0');
  // Back to Basic (the proration is a credit Stripe keeps as balance: nothing paid, nothing granted
  // or taken back), then Pro again, paid from that balance: the period already reached Pro, so
  // nothing more is granted (it granted 800 each time).
  const down = invoice({ user: u, sub, reason: 'subscription_update', amount: 0,
    lines: [line('price_plan_pro_monthly', -1333, t + 60, cur[1], true), line('price_plan_basic_monthly', 666, t + 60, cur[1], true)] });
  down.payments.data = []; // nothing was charged: no PaymentIntent (keyed by the invoice)
  assert.equal((await deliver(evt('invoice.paid', down))).status, 200);
  const again = invoice({ user: u, sub, reason: 'subscription_update', amount: 0,
    lines: [line('price_plan_basic_monthly', -666, t + 120, cur[1], true), line('price_plan_pro_monthly', 1333, t + 120, cur[1], true)] });
  again.payments.data = []; // paid from the customer's balance
  assert.equal((await deliver(evt('invoice.paid', again))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'purchase:800', 'the downgrade and the second upgrade grant nothing');
  assert.equal(await balance(u), '1010/0');
  const s = await subscription(u);
  assert.equal(s.plan.id, 'pro-monthly');
  assert.equal(s.credits_this_period, 1000);

  const failed = { ...period(u, sub, cur[1], cur[1] + 30 * DAY), status: 'open', amount_paid: 0 };
  const before = lastLedger(u.id);
  assert.equal((await deliver(evt('invoice.payment_failed', failed))).status, 200);
  assert.equal(lastLedger(u.id), before, 'a failed renewal moves nothing');
  assert.equal((await subscription(u)).status, 'past_due');
  assert.deepEqual(reconcile(), []);
});

test('monthly to yearly (the billing period reset): the year is granted once, the month it ends keeps its used share', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const cur = [t - 10 * DAY, t + 20 * DAY];
  await deliver(evt('invoice.paid', { ...period(u, sub, ...cur, { price: 'price_plan_basic_monthly', amount: 999 }), billing_reason: 'subscription_create' }));
  assert.equal(await balance(u), '210/0');
  // Stripe credits the unused 20 days of Basic and invoices the whole year at once (not prorated).
  const year = [t, t + 365 * DAY];
  const reset = invoice({ user: u, sub, reason: 'subscription_update', amount: 29999 - 666,
    lines: [line('price_plan_basic_monthly', -666, t, cur[1], true), line('price_plan_pro_yearly', 29999, ...year)] });
  const mark = lastLedger(u.id);
  assert.equal((await deliver(evt('invoice.paid', reset))).status, 200);
  assert.equal((await deliver(evt('invoice.paid', reset))).status, 200);
  // Basic paid 999 for 30 days, 20 unused: refunded ceil(999 x 20 / 30) = 666 of it, so it keeps
  // 200 - ceil(200 x 666 / 999) = 66: 134 taken back; the year grants its 12000 once.
  assert.equal(types(ledger(u.id, mark)), 'purchase:12000 refund:-134');
  assert.equal(await balance(u), `${10 + 66 + 12000}/0`);
  const s = await subscription(u);
  assert.equal(s.plan.id, 'pro-yearly');
  assert.equal(s.current_period_end, iso(year[1]));
  assert.deepEqual(reconcile(), []);
});

test('cancel: at the period end through Stripe\'s API; deleted ends it; errors for no or foreign subscriptions', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const cur = [t - DAY, t + 29 * DAY];
  const cancel = (who = u) => w.fetch('/v1/subscription/cancel', { method: 'POST', headers: bearer(who.token) });
  const none = await cancel();
  assert.equal(none.status, 404);
  await deliver(evt('invoice.paid', period(u, sub, ...cur)));
  const object = { id: sub, object: 'subscription', status: 'active', cancel_at_period_end: false, cancel_at: null,
    metadata: { user_id: u.id, plan_id: 'pro-monthly' },
    items: { object: 'list', data: [{ id: 'si_1', object: 'subscription_item', price: { id: 'price_plan_pro_monthly', object: 'price' }, current_period_start: cur[0], current_period_end: cur[1] }] } };
  stripe.state.subscriptions.set(sub, object);
  const before = stripe.state.requests.length;
  const res = await cancel();
  assert.equal(res.status, 200);
  const body = await res.json();
  const sent = stripe.state.requests[before];
  assert.equal(`${sent.method} ${sent.url} ${sent.body}`, `POST /v1/subscriptions/${sub} cancel_at_period_end=true`);
  assert.equal(body.subscription.cancel_at_period_end, true);
  assert.equal(body.subscription.status, 'canceled');
  assert.equal(body.subscription.renews, null);
  assert.equal(await balance(u), '1010/0', 'the period\'s credits stay until its end');
  assert.equal((await cancel()).status, 200, 'cancelling again is harmless');
  const deleted = evt('customer.subscription.deleted', { ...object, status: 'canceled', cancel_at_period_end: true });
  deleted.created = now() + 5;
  assert.equal((await deliver(deleted)).status, 200);
  assert.equal((await subscription(u)).status, 'ended');
  const ended = await cancel();
  assert.equal(ended.status, 409);
  assert.equal((await ended.json()).error.code, 'subscription_ended');
  assert.equal((await cancel(createUser())).status, 404, 'another user has no subscription to cancel');
});

test('closing the account cancels its Stripe subscription at once first (no renewal charged afterwards); Stripe down: nothing closed, the retry does both', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const cur = [t - DAY, t + 29 * DAY];
  await deliver(evt('invoice.paid', period(u, sub, ...cur)));
  const object = { id: sub, object: 'subscription', status: 'active', cancel_at_period_end: false, cancel_at: null,
    metadata: { user_id: u.id, plan_id: 'pro-monthly' },
    items: { object: 'list', data: [{ id: 'si_1', object: 'subscription_item', price: { id: 'price_plan_pro_monthly', object: 'price' }, current_period_start: cur[0], current_period_end: cur[1] }] } };
  stripe.state.subscriptions.set(sub, object);
  // A second subscription (two checkouts completed at once), newer: both are cancelled.
  const sub2 = `sub_${uid()}`;
  await deliver(evt('invoice.paid', period(u, sub2, t, t + 30 * DAY, { price: 'price_plan_basic_monthly', amount: 999 })));
  const object2 = { ...structuredClone(object), id: sub2 };
  stripe.state.subscriptions.set(sub2, object2);
  const close = () => w.fetch('/v1/account', { method: 'DELETE', headers: bearer(u.token) });
  stripe.state.down = true;
  const down = await close();
  stripe.state.down = false;
  assert.equal(down.status, 503);
  assert.equal(sql(`select deleted_at is null from public.profiles where user_id = '${u.id}'`), 't', 'not closed while Stripe cannot cancel');
  const before = stripe.state.requests.length;
  const res = await close();
  assert.equal(res.status, 200);
  assert.equal((await res.json()).closed, true);
  const sent = stripe.state.requests.slice(before).map((r) => `${r.method} ${r.url}`).sort();
  assert.deepEqual(sent, [`DELETE /v1/subscriptions/${sub}`, `DELETE /v1/subscriptions/${sub2}`].sort(), 'each cancelled at once, once');
  assert.deepEqual([object.status, object2.status], ['canceled', 'canceled']);
  assert.equal(sql(`select string_agg(status, ',') from public.subscriptions where provider_subscription_id in ('${sub}', '${sub2}')`), 'ended,ended');
  // Closing again (a lost answer): replayed, nothing sent to Stripe.
  const again = await close();
  assert.equal(again.status, 200);
  assert.equal((await again.json()).replayed, true);
  assert.equal(stripe.state.requests.length, before + 2);
  // A subscription Stripe no longer has (deleted in the dashboard) does not block closing.
  const v = createUser();
  const gone = `sub_${uid()}`;
  await deliver(evt('invoice.paid', period(v, gone, ...cur)));
  const closed = await w.fetch('/v1/account', { method: 'DELETE', headers: bearer(v.token) });
  assert.equal(closed.status, 200);
  assert.equal(sql(`select deleted_at is not null from public.profiles where user_id = '${v.id}'`), 't');
});

test('cancel, resume in the portal, cancel again: the second cancel reaches Stripe (its own idempotency key), not a replay of the first', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const cur = [t - DAY, t + 29 * DAY];
  const cancel = () => w.fetch('/v1/subscription/cancel', { method: 'POST', headers: bearer(u.token) });
  await deliver(evt('invoice.paid', period(u, sub, ...cur)));
  const object = { id: sub, object: 'subscription', status: 'active', cancel_at_period_end: false, cancel_at: null,
    metadata: { user_id: u.id, plan_id: 'pro-monthly' },
    items: { object: 'list', data: [{ id: 'si_1', object: 'subscription_item', price: { id: 'price_plan_pro_monthly', object: 'price' }, current_period_start: cur[0], current_period_end: cur[1] }] } };
  stripe.state.subscriptions.set(sub, object);
  const first = stripe.state.requests.length;
  assert.equal((await cancel()).status, 200);
  assert.equal(stripe.state.subscriptions.get(sub).cancel_at_period_end, true);
  // The customer resumes it in Stripe's portal; Stripe says so.
  stripe.state.subscriptions.get(sub).cancel_at_period_end = false;
  stripe.state.subscriptions.get(sub).cancel_at = null;
  // Stamped with this second, like the first cancel's record (an equal time applies), and before the
  // second cancel's.
  const resumed = evt('customer.subscription.updated', { ...stripe.state.subscriptions.get(sub) });
  resumed.created = now();
  assert.equal((await deliver(resumed)).status, 200);
  assert.equal((await subscription(u)).cancel_at_period_end, false, 'resumed');
  const res = await cancel();
  assert.equal(res.status, 200);
  const keys = stripe.state.requests.slice(first).filter((r) => r.url === `/v1/subscriptions/${sub}`).map((r) => r.headers['idempotency-key']);
  assert.equal(keys.length, 2);
  assert.notEqual(keys[0], keys[1], 'each cancel sends its own key');
  assert.equal(stripe.state.subscriptions.get(sub).cancel_at_period_end, true, 'Stripe cancelled it again (a replayed key would not have)');
  assert.equal((await res.json()).subscription.cancel_at_period_end, true);
});

test('a refunded renewal takes back what the payment rule says, leaving debt; a refund delivered before its invoice waits for it', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const pi = `pi_${uid()}`;
  // A period that ended before it was delivered, then refunded in full: its credits expired unused,
  // so the take-back finds only the welcome 10 and the rest is debt (README, "A period paid after it ended").
  await deliver(evt('invoice.paid', period(u, sub, t - 31 * DAY, t - DAY, { pi })));
  const mark = lastLedger(u.id);
  const refund = evt('charge.refunded', { id: `ch_${uid()}`, object: 'charge', payment_intent: pi, amount: 2999, amount_refunded: 2999, refunded: true });
  assert.equal((await deliver(refund)).status, 200);
  assert.equal((await deliver(refund)).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'refund:-10d990');
  assert.equal(await balance(u), '0/990');
  // The next period repays the debt first.
  assert.equal((await deliver(evt('invoice.paid', period(u, sub, t - DAY, t + 29 * DAY)))).status, 200);
  assert.equal(await balance(u), '510/0');

  const v = createUser();
  const pi2 = `pi_${uid()}`;
  await deliver(evt('charge.refunded', { id: `ch_${uid()}`, object: 'charge', payment_intent: pi2, amount: 2999, amount_refunded: 2999, refunded: true }));
  await deliver(evt('invoice.paid', period(v, `sub_${uid()}`, t - DAY, t + 29 * DAY, { pi: pi2 })));
  assert.equal(await balance(v), '10/0', 'the refund seen first: the period keeps nothing');
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${pi2}'`), 'refunded');
  assert.deepEqual(reconcile(), []);
});

test('webhook events that are not ours or not subscriptions are acknowledged and ignored', async () => {
  const u = createUser();
  const foreign = period(u, `sub_${uid()}`, now() - DAY, now() + 29 * DAY);
  foreign.parent.subscription_details.metadata = {};
  const r = await deliver(evt('invoice.paid', foreign));
  assert.equal(r.status, 200);
  assert.equal((await r.json()).ignored, 'not_ours');
  const bad = await deliver(evt('invoice.paid', { id: 7 }));
  assert.equal(bad.status, 400);
  assert.equal(await balance(u), '10/0');
});

test('a quarter of renewals on the business clock: grants, upgrade, spending, sweeps at each period end, rollover, a failed renewal, cancellation at the period end (basil invoices)', async () => {
  // Only the database's clock moves: Stripe's event times and the Worker's clock (the cancel
  // endpoint records Stripe's answer at its own time) stay real, as they are in production.
  const T0 = now();
  const at = (days, seconds = 0) => T0 + days * DAY + seconds;
  const spend = async (user, amount) => {
    const res = await w.fetch(`/v1/admin/users/${user.id}/adjustments`, { method: 'POST', headers: json({ authorization: `Bearer ${stack.serviceRoleKey}`, apikey: stack.serviceRoleKey, 'idempotency-key': randomUUID() }), body: JSON.stringify({ amount: -amount, reason: 'Spent in the app' }) });
    assert.equal(res.status, 200, await res.clone().text());
  };
  try {
    setClock(T0);
    const u = createUser();
    const sub = `sub_${uid()}`;
    let mark = lastLedger(u.id);
    // Rows of one call that the SQL orders by grant id (expire rows of two grants) are compared sorted.
    const step = async (label, expectLedger, expectBalance, { sorted = false } = {}) => {
      const sort = (text) => (sorted ? text.split(' ').sort().join(' ') : text);
      assert.equal(sort(types(ledger(u.id, mark))), sort(expectLedger), `${label}: ledger`);
      assert.equal(await balance(u), expectBalance, `${label}: balance`);
      assert.deepEqual(reconcile(), [], `${label}: reconcile`);
      mark = lastLedger(u.id);
    };

    // Day 0 + 1 h: the first period on Basic [day 0, day 30), delivered three times (two at once).
    setClock(at(0, 3600));
    const p1 = basil(u, sub, at(0), at(30), { price: 'price_plan_basic_monthly', amount: 999, reason: 'subscription_create' });
    const e1 = evt('invoice.paid', p1.inv);
    const seen = stripe.state.requests.length;
    assert.deepEqual((await Promise.all([deliver(e1), deliver(e1)])).map((r) => r.status), [200, 200]);
    assert.equal((await deliver(e1)).status, 200);
    assert.deepEqual(lookups(seen), Array(3).fill(`GET /v1/invoice_payments?invoice=${p1.inv.id}&status=paid 2025-03-31.basil`),
      'each delivery asks Stripe which PaymentIntent paid the invoice');
    await step('period 1', 'purchase:200', '210/0');
    assert.equal(sql(`select provider_payment_id from public.purchases where user_id = '${u.id}' and plan_id = 'basic-monthly'`), p1.pi,
      'the period is keyed by the PaymentIntent that paid it');
    let s = await subscription(u);
    assert.deepEqual([s.status, s.plan.id, s.credits_this_period, s.renews.plan_id], ['active', 'basic-monthly', 200, 'basic-monthly']);

    // Day 10: an upgrade to Pro grants the difference until day 30; delivered twice.
    setClock(at(10));
    const up = basil(u, sub, at(10), at(30), { reason: 'subscription_update', amount: 1333,
      lines: [line('price_plan_basic_monthly', -666, at(10), at(30), true), line('price_plan_pro_monthly', 1999, at(10), at(30), true)] });
    const eUp = evt('invoice.paid', up.inv);
    assert.equal((await deliver(eUp)).status, 200);
    assert.equal((await deliver(eUp)).status, 200);
    await step('upgrade', 'purchase:800', '1010/0');
    s = await subscription(u);
    assert.deepEqual([s.plan.id, s.credits_this_period], ['pro-monthly', 1000]);

    // Day 20: 300 spent (welcome 10 first, then the oldest paid grant of the same expiry).
    setClock(at(20));
    await spend(u, 300);
    await step('spent in period 1', 'adjustment:-300', '710/0');

    // Day 30 + 1 min: period 1 has ended; the cron's sweep expires what is left of it.
    setClock(at(30, 60));
    assert.equal(await balance(u), '0/0', 'credits past their expiry are worth nothing at once');
    await sweep(u);
    await step('period 1 ended, swept', 'expire:-710', '0/0');

    // Day 30 + 1 h: period 2 on Pro is paid: its 1000, and 500 of period 1's 710 unspent (all
    // expired by now, so nothing is moved) rolled over. A late redelivery of period 1 changes nothing.
    setClock(at(30, 3600));
    const p2 = basil(u, sub, at(30), at(60));
    const e2 = evt('invoice.paid', p2.inv);
    assert.equal((await deliver(e2)).status, 200);
    assert.equal((await deliver(e1)).status, 200);
    await step('period 2', 'purchase:1000 grant:500', '1500/0');
    s = await subscription(u);
    assert.deepEqual([s.current_period_start, s.current_period_end, s.credits_this_period],
      [iso(at(30)), iso(at(60)), 1500]);

    // Day 45: 1200 spent: the period grant (older) first, then 200 of the rollover grant.
    setClock(at(45));
    await spend(u, 1200);
    await step('spent in period 2', 'adjustment:-1200', '300/0');

    // Day 60 + 1 min: period 2 has ended and is swept.
    setClock(at(60, 60));
    await sweep(u);
    await step('period 2 ended, swept', 'expire:-300', '0/0');

    // Day 60 + 1 h: the renewal fails: no grant, past_due.
    setClock(at(60, 3600));
    const p3 = basil(u, sub, at(60), at(90), { paid: false, pi: `pi_${uid()}` });
    assert.equal((await deliver(evt('invoice.payment_failed', { ...p3.inv, status: 'open', amount_paid: 0 }))).status, 200);
    await step('renewal failed', '', '0/0');
    assert.equal((await subscription(u)).status, 'past_due');

    // Day 63: Stripe's retry succeeds: period 3's 1000 and 300 rolled over (period 2's unspent, expired).
    setClock(at(63));
    stripe.payInvoice(p3.inv.id, p3.pi, 2999);
    const e3 = evt('invoice.paid', p3.inv);
    assert.equal((await deliver(e3)).status, 200);
    assert.equal((await deliver(e3)).status, 200);
    await step('period 3 paid on retry', 'purchase:1000 grant:300', '1300/0');
    s = await subscription(u);
    assert.deepEqual([s.status, s.credits_this_period, s.renews.at], ['active', 1300, iso(at(90))]);

    // Day 70: the user cancels: at the period end, through Stripe; the credits stay until then.
    setClock(at(70));
    stripe.state.subscriptions.set(sub, { id: sub, object: 'subscription', status: 'active', cancel_at_period_end: false, cancel_at: null,
      metadata: { user_id: u.id, plan_id: 'pro-monthly' },
      items: { object: 'list', data: [{ id: 'si_1', object: 'subscription_item', price: { id: 'price_plan_pro_monthly', object: 'price' }, current_period_start: at(60), current_period_end: at(90) }] } });
    const cancel = await w.fetch('/v1/subscription/cancel', { method: 'POST', headers: bearer(u.token) });
    assert.equal(cancel.status, 200);
    s = (await cancel.json()).subscription;
    assert.deepEqual([s.status, s.cancel_at_period_end, s.renews], ['canceled', true, null]);
    await step('canceled at the period end', '', '1300/0');

    // Day 90 + 1 min: period 3 ends and is swept; Stripe deletes the subscription; nothing renews.
    setClock(at(90, 60));
    await sweep(u);
    const deleted = evt('customer.subscription.deleted', { ...stripe.state.subscriptions.get(sub), status: 'canceled' }, undefined, now() + 5);
    assert.equal((await deliver(deleted)).status, 200);
    await step('period 3 ended, subscription ended', 'expire:-1000 expire:-300', '0/0', { sorted: true });
    s = await subscription(u);
    assert.deepEqual([s.status, s.renews, s.credits_this_period], ['ended', null, 0]);

    // Late duplicates of every paid period, in reverse order: nothing moves.
    for (const e of [e3, eUp, e2, e1]) assert.equal((await deliver(e)).status, 200);
    await step('late duplicates', '', '0/0');
    assert.equal(sql(`select count(*) from public.purchases where user_id = '${u.id}'`), '4', 'three periods and one upgrade');

    // Day 95: period 2 refunded in full: its credits were spent or expired, so all 1000 become debt.
    setClock(at(95));
    assert.equal((await deliver(evt('charge.refunded', { id: `ch_${uid()}`, object: 'charge', payment_intent: p2.pi, amount: 2999, amount_refunded: 2999, refunded: true }))).status, 200);
    await step('period 2 refunded after the end', 'refund:0d1000', '0/1000');
    assert.equal(sql(`select status from public.purchases where provider_payment_id = '${p2.pi}'`), 'refunded');
  } finally {
    clearClock();
  }
  assert.equal(sql('select count(*) from app.business_clock'), '0', 'the clock is back to real time');
});

test('basil: a renewal refunded and another disputed claw back like a pack\'s; a refund delivered before its invoice waits for it', async () => {
  const u = createUser();
  const sub = `sub_${uid()}`;
  const t = now();
  const charge = (pi, amountRefunded) => ({ id: `ch_${pi.slice(3)}`, object: 'charge', payment_intent: pi, amount: 2999, amount_refunded: amountRefunded, refunded: amountRefunded === 2999 });
  const dispute = (pi, status) => ({ id: `dp_${pi.slice(3)}`, object: 'dispute', charge: `ch_${pi.slice(3)}`, payment_intent: pi, amount: 2999, status });
  const p1 = basil(u, sub, t - DAY, t + 29 * DAY);
  const p2 = basil(u, sub, t + 29 * DAY, t + 59 * DAY);
  assert.equal((await deliver(evt('invoice.paid', p1.inv))).status, 200);
  assert.equal((await deliver(evt('invoice.paid', p2.inv))).status, 200, 'the renewal, paid early');
  assert.equal(await balance(u), '2010/0');

  // The renewal refunded in full (Stripe's charge names the PaymentIntent, not the invoice).
  let mark = lastLedger(u.id);
  const refund = evt('charge.refunded', charge(p2.pi, 2999));
  assert.equal((await deliver(refund)).status, 200);
  assert.equal((await deliver(refund)).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'refund:-1000', 'its own grant first');
  assert.equal(await balance(u), '1010/0');
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${p2.pi}'`), 'refunded');

  // The first period disputed: its own grant (500 left after the rollover), then the user's other
  // credits in draw-down order; won: given back.
  mark = lastLedger(u.id);
  assert.equal((await deliver(evt('charge.dispute.created', dispute(p1.pi, 'needs_response')))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'clawback:-1000');
  assert.equal(await balance(u), '10/0');
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${p1.pi}'`), 'disputed');
  mark = lastLedger(u.id);
  assert.equal((await deliver(evt('charge.dispute.closed', dispute(p1.pi, 'won')))).status, 200);
  assert.equal(types(ledger(u.id, mark)), 'adjustment:1000');
  assert.equal(await balance(u), '1010/0');

  // Another subscription: half refunded before its invoice.paid arrives; the refund waits for it.
  const v = createUser();
  const p3 = basil(v, `sub_${uid()}`, t - DAY, t + 29 * DAY);
  assert.equal((await deliver(evt('charge.refunded', charge(p3.pi, 1500)))).status, 200);
  assert.equal(await balance(v), '10/0');
  mark = lastLedger(v.id);
  assert.equal((await deliver(evt('invoice.paid', p3.inv))).status, 200);
  assert.equal(types(ledger(v.id, mark)), 'purchase:1000 refund:-501', 'ceil(1000 x 1500 / 2999) taken back at once');
  assert.equal(await balance(v), '509/0');

  // A paid invoice Stripe lists no PaymentIntent for (paid out of band) stays keyed by its own id.
  const x = createUser();
  const oob = basil(x, `sub_${uid()}`, t - DAY, t + 29 * DAY, { paid: false });
  assert.equal((await deliver(evt('invoice.paid', oob.inv))).status, 200);
  assert.equal(sql(`select provider_payment_id from public.purchases where user_id = '${x.id}'`), oob.inv.id);
  // Stripe unavailable: 503, nothing recorded, so Stripe delivers it again.
  const y = createUser();
  const later = basil(y, `sub_${uid()}`, t - DAY, t + 29 * DAY);
  stripe.state.down = true;
  const down = await deliver(evt('invoice.paid', later.inv));
  stripe.state.down = false;
  assert.equal(down.status, 503);
  assert.equal(await balance(y), '10/0');
  assert.equal((await deliver(evt('invoice.paid', later.inv))).status, 200);
  assert.equal(await balance(y), '1010/0');
  assert.deepEqual(reconcile(), []);
});

// ---- App Store ------------------------------------------------------------------------------------

const submit = (user, signed) => w.fetch('/v1/purchase/app-store', { method: 'POST', headers: json(bearer(user.token)), body: JSON.stringify({ signed_transaction: signed }) });
const notify = (payload) => w.fetch('/v1/purchase/app-store/notifications', { method: 'POST', headers: json(), body: JSON.stringify({ signedPayload: signJws(chain, payload) }) });
/** A StoreKit 2 auto-renewable subscription transaction of `original` for the period [start, end) (seconds). */
const subTx = (user, original, start, end, productId = 'com.example.plan.pro.monthly', extra = {}) => transactionPayload(user.id, {
  type: 'Auto-Renewable Subscription', productId, originalTransactionId: original, purchaseDate: start * 1000, expiresDate: end * 1000,
  price: 29990, currency: 'USD', transactionReason: 'RENEWAL', signedDate: Date.now() - 1000, ...extra,
});

test('App Store: the app submits the first transaction, DID_RENEW pays the next period once, rollover, duplicates and reordering', async () => {
  const u = createUser();
  const original = String(3000000000000000 + Math.floor(Math.random() * 1e12));
  const t = now();
  const first = subTx(u, original, t - DAY, t + 29 * DAY);
  const answers = await Promise.all([submit(u, signJws(chain, first)), submit(u, signJws(chain, first))]);
  assert.deepEqual(answers.map((r) => r.status), [200, 200]);
  assert.equal((await answers[0].json()).purchase.credits, 1000);
  // SUBSCRIBED for the same transaction (Apple's notification of the purchase the app submitted).
  assert.equal((await notify(notificationPayload('SUBSCRIBED', signJws(chain, first)))).status, 200);
  assert.equal(await balance(u), '1010/0', 'one grant for the first transaction');

  const renewal = subTx(u, original, t + 29 * DAY, t + 59 * DAY);
  const renewed = notificationPayload('DID_RENEW', signJws(chain, renewal));
  const mark = lastLedger(u.id);
  const r = await Promise.all([notify(renewed), notify(renewed), notify(notificationPayload('DID_RENEW', signJws(chain, renewal)))]);
  assert.deepEqual(r.map((x) => x.status), [200, 200, 200]);
  assert.equal(types(ledger(u.id, mark)), 'purchase:1000 adjustment:-500 grant:500');
  assert.equal(await balance(u), '2010/0');

  // Reordered, another subscription: the renewal arrives before the first transaction.
  const v = createUser();
  const o2 = String(3000000000000000 + Math.floor(Math.random() * 1e12));
  assert.equal((await notify(notificationPayload('DID_RENEW', signJws(chain, subTx(v, o2, t + 29 * DAY, t + 59 * DAY))))).status, 200);
  assert.equal((await submit(v, signJws(chain, subTx(v, o2, t - DAY, t + 29 * DAY)))).status, 200);
  assert.equal(await balance(v), '2010/0', 'the same credits as in delivery order');

  // REFUND of the renewal: its own grant first.
  const refund = notificationPayload('REFUND', signJws(chain, { ...renewal, revocationDate: Date.now(), revocationReason: 0 }));
  assert.equal((await notify(refund)).status, 200);
  assert.equal((await notify(refund)).status, 200);
  assert.equal(await balance(u), '1010/0');
  assert.equal(sql(`select status from public.purchases where provider_payment_id = '${renewal.transactionId}'`), 'refunded');
  assert.deepEqual(reconcile(), []);
});

test('App Store: DID_CHANGE_RENEWAL_PREF, DID_FAIL_TO_RENEW and EXPIRED change the state, never the credits', async () => {
  const u = createUser();
  const original = String(3000000000000000 + Math.floor(Math.random() * 1e12));
  const t = now();
  const first = subTx(u, original, t - DAY, t + 29 * DAY);
  assert.equal((await submit(u, signJws(chain, first))).status, 200);
  const before = lastLedger(u.id);
  const at = (ms) => ({ signedDate: ms });
  const renewalInfo = signJws(chain, { originalTransactionId: original, autoRenewProductId: 'com.example.plan.basic.monthly', productId: first.productId, autoRenewStatus: 1, signedDate: Date.now() - 500, environment: ENVIRONMENT });
  const pref = notificationPayload('DID_CHANGE_RENEWAL_PREF', signJws(chain, first), at(Date.now() - 400));
  pref.data.signedRenewalInfo = renewalInfo;
  pref.subtype = 'DOWNGRADE';
  assert.equal((await notify(pref)).status, 200);
  let s = await subscription(u);
  assert.equal(s.pending_plan_id, 'basic-monthly');
  assert.equal(s.renews.plan_id, 'basic-monthly', 'a downgrade takes effect at the period end');
  assert.equal((await notify(notificationPayload('DID_FAIL_TO_RENEW', signJws(chain, first), at(Date.now() - 300)))).status, 200);
  assert.equal((await subscription(u)).status, 'past_due');
  assert.equal((await notify(notificationPayload('EXPIRED', signJws(chain, first), at(Date.now() - 200)))).status, 200);
  s = await subscription(u);
  assert.equal(s.status, 'ended');
  assert.equal(lastLedger(u.id), before, 'state events move no credits');
  assert.equal(await balance(u), '1010/0');
  const cancel = await w.fetch('/v1/subscription/cancel', { method: 'POST', headers: bearer(u.token) });
  assert.equal(cancel.status, 409);
  assert.equal((await cancel.json()).error.code, 'managed_by_app_store');
  // A subscription transaction of another user is refused like a pack's.
  const thief = createUser();
  const stolen = await submit(thief, signJws(chain, subTx(u, original, t + 29 * DAY, t + 59 * DAY)));
  assert.equal(stolen.status, 403);
});

// Apple: an upgrade "goes into effect immediately, starting a new billing period, and the user
// receives a prorated refund for the unused portion of the previous period"; the notification is
// DID_CHANGE_RENEWAL_PREF with subtype UPGRADE and carries the new transaction (no SUBSCRIBED or
// DID_RENEW for it, no REFUND for the proration). migrations/README.md, "replaced".
test('App Store: an upgrade (DID_CHANGE_RENEWAL_PREF, UPGRADE) pays its new period once and cuts the replaced period to its used share', async () => {
  const u = createUser();
  const original = String(3000000000000000 + Math.floor(Math.random() * 1e12));
  const t = now();
  const basic = subTx(u, original, t - 10 * DAY, t + 20 * DAY, 'com.example.plan.basic.monthly', { price: 9990, transactionReason: 'PURCHASE' });
  assert.equal((await submit(u, signJws(chain, basic))).status, 200);
  assert.equal(await balance(u), '210/0');
  const pro = subTx(u, original, t, t + 30 * DAY, 'com.example.plan.pro.monthly', { transactionReason: 'PURCHASE' });
  const renewalInfo = signJws(chain, { originalTransactionId: original, autoRenewProductId: pro.productId, productId: pro.productId, autoRenewStatus: 1, signedDate: Date.now() - 500, environment: ENVIRONMENT });
  const upgrade = notificationPayload('DID_CHANGE_RENEWAL_PREF', signJws(chain, pro), { signedDate: Date.now() - 400 });
  upgrade.data.signedRenewalInfo = renewalInfo;
  upgrade.subtype = 'UPGRADE';
  const r = await Promise.all([notify(upgrade), notify(upgrade)]);
  assert.deepEqual(r.map((x) => x.status), [200, 200]);
  // Basic paid 9.99 for 30 days, 20 unused: refunded ceil(999 x 20 / 30) = 666 cents, so it keeps
  // 200 - ceil(200 x 666 / 999) = 66 credits; Pro's new period grants 1000.
  assert.equal(await balance(u), '1076/0');
  // The app submits the same new transaction afterwards: nothing more.
  assert.equal((await submit(u, signJws(chain, pro))).status, 200);
  assert.equal(await balance(u), '1076/0');
  assert.equal(sql(`select credits_granted || '/' || status from public.purchases where provider_payment_id = '${basic.transactionId}'`), '66/succeeded');
  const s = await subscription(u);
  assert.equal(s.plan.id, 'pro-monthly');
  assert.deepEqual(reconcile(), []);
});

test('App Store: an offer code redeemed (OFFER_REDEEMED) buys a period or upgrades at once, paid once; a DOWNGRADE offer only records the state', async () => {
  const u = createUser();
  const original = String(3000000000000000 + Math.floor(Math.random() * 1e12));
  const t = now();
  // INITIAL_BUY through an offer code: Apple sends OFFER_REDEEMED, not SUBSCRIBED.
  const basic = subTx(u, original, t - 10 * DAY, t + 20 * DAY, 'com.example.plan.basic.monthly', { price: 9990, transactionReason: 'PURCHASE' });
  const bought = notificationPayload('OFFER_REDEEMED', signJws(chain, basic), { signedDate: Date.now() - 600 });
  bought.subtype = 'INITIAL_BUY';
  assert.deepEqual((await Promise.all([notify(bought), notify(bought)])).map((x) => x.status), [200, 200]);
  assert.equal(await balance(u), '210/0');
  // An offer to upgrade: in effect at once, a new Pro period; Basic keeps its used share (66).
  const pro = subTx(u, original, t, t + 30 * DAY, 'com.example.plan.pro.monthly', { transactionReason: 'PURCHASE' });
  const upgrade = notificationPayload('OFFER_REDEEMED', signJws(chain, pro), { signedDate: Date.now() - 400 });
  upgrade.subtype = 'UPGRADE';
  assert.deepEqual((await Promise.all([notify(upgrade), notify(upgrade)])).map((x) => x.status), [200, 200]);
  assert.equal(await balance(u), '1076/0');
  assert.equal((await subscription(u)).plan.id, 'pro-monthly');
  // An offer to downgrade at the next renewal: its transaction (one never seen) is not paid now.
  const later = subTx(u, original, t + 30 * DAY, t + 60 * DAY, 'com.example.plan.basic.monthly', { transactionReason: 'PURCHASE' });
  const down = notificationPayload('OFFER_REDEEMED', signJws(chain, later), { signedDate: Date.now() - 200 });
  down.subtype = 'DOWNGRADE';
  assert.equal((await notify(down)).status, 200);
  assert.equal(await balance(u), '1076/0');
  assert.equal(sql(`select count(*) from public.purchases where provider_payment_id = '${later.transactionId}'`), '0');
  assert.deepEqual(reconcile(), []);
});
