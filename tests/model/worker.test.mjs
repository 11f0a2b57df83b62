// The Worker's share of the model check (part of the end-to-end layer of tests/run.sh): random
// histories whose checkouts, generations and Stripe webhooks (signed, as Stripe sends them) go
// through the built Worker -> PostgREST -> Postgres, pipeline outcomes and sweeps through the
// back-office RPCs; every user's state must equal the model's, and GET /v1/balance the database's.
//
// What the Worker carries today restricts these histories: no clock moves (PostgREST cannot move
// the business clock, so they run on the real one), Stripe payments only (App Store notifications
// need Apple-signed payloads), and one dispute per payment of the whole amount whose close is
// either won or lost (the Worker sends disputes to clawback_purchase / reinstate_purchase without
// the dispute id or amount, and ignores a lost close). Everything else runs in tests/model/run.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import pg from 'pg';
import { startWorker, mintToken, claimsFor, bearer, stack } from '../e2e/harness.mjs';
import { startStripeStandin, STRIPE_TEST_KEY } from '../e2e/stripe-standin.mjs';
import { world, resolve } from './gen.mjs';
import { Db, Runner, check } from './world.mjs';

const HISTORIES = Number(process.env.MODEL_WORKER_HISTORIES || 50);
const WHSEC = 'whsec_model_0123456789';
let w, stripe, pool;

before(async () => {
  stripe = await startStripeStandin();
  w = await startWorker({
    STRIPE_SECRET_KEY: STRIPE_TEST_KEY, STRIPE_API_BASE: stripe.url, STRIPE_WEBHOOK_SECRET: WHSEC,
    CHECKOUT_SUCCESS_URL: 'https://app.example.test/credits/thanks?session={CHECKOUT_SESSION_ID}',
    CHECKOUT_CANCEL_URL: 'https://app.example.test/credits',
  });
  pool = new pg.Pool({ host: '127.0.0.1', port: Number(stack.pgPort), user: 'postgres', database: 'postgres', max: 4 });
});
after(async () => { await w?.dispose(); await stripe?.close(); await pool?.end(); });

const tokens = new Map();
const token = (uid) => { if (!tokens.has(uid)) tokens.set(uid, mintToken(claimsFor(uid))); return tokens.get(uid); };
const json = (headers = {}) => ({ 'content-type': 'application/json', ...headers });

async function webhook(type, object, id) {
  const body = JSON.stringify({ id, object: 'event', api_version: '2024-06-20', created: Math.floor(Date.now() / 1000), livemode: false, type, data: { object } });
  const t = Math.floor(Date.now() / 1000);
  const signature = `t=${t},v1=${createHmac('sha256', WHSEC).update(`${t}.${body}`).digest('hex')}`;
  const res = await w.fetch('/v1/purchase/stripe-webhook', { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': signature }, body });
  const text = await res.text();
  return res.status === 200 ? { ok: true } : { ok: false, code: `HTTP ${res.status}`, message: text };
}

// The Worker's half of the runner (world.mjs, Runner's `edge`).
const edge = {
  async checkout(uid, pkg, key) {
    const res = await w.fetch('/v1/purchase/checkout', { method: 'POST', headers: json({ ...bearer(token(uid)), 'idempotency-key': key }), body: JSON.stringify({ package_id: pkg }) });
    const body = await res.json();
    if (res.status !== 200) throw new Error(`checkout answered ${res.status} ${JSON.stringify(body)}`);
    return body.purchase_id;
  },
  stripe(p, ev, uid) {
    const session = (paymentStatus) => ({
      id: `cs_${p.payId}`, object: 'checkout.session', mode: 'payment', payment_status: paymentStatus, status: 'complete',
      client_reference_id: p.purchaseId, payment_intent: p.payId, amount_total: p.P, currency: 'usd',
      metadata: { purchase_id: p.purchaseId, user_id: uid, package_id: p.pkg },
    });
    switch (ev.type) {
      case 'checkout.session.completed': case 'checkout.session.async_payment_succeeded':
        // A coupon that covers everything: nothing to pay, no PaymentIntent (the session is the payment).
        if (p.P === 0) return webhook(ev.type, { ...session('no_payment_required'), payment_intent: null }, ev.id);
        return webhook(ev.type, session('paid'), ev.id);
      case 'checkout.session.async_payment_failed': return webhook(ev.type, session('unpaid'), ev.id);
      case 'charge.refunded':
        return webhook(ev.type, { id: `ch_${p.payId}`, object: 'charge', payment_intent: p.payId, amount: p.P, amount_refunded: ev.amountRefunded, refunded: ev.amountRefunded === p.P }, ev.id);
      default:
        return webhook(ev.type, { id: ev.disputeId, object: 'dispute', charge: `ch_${p.payId}`, payment_intent: p.payId, amount: ev.amount, status: ev.status }, ev.id);
    }
  },
  // GET /v1/balance, compared with the database's balance (check() in world.mjs).
  async balance(uid) {
    const res = await w.fetch('/v1/balance', { headers: bearer(token(uid)) });
    return res.json();
  },
  async generate(uid, request, key) {
    const res = await w.fetch('/v1/generate', { method: 'POST', headers: json({ ...bearer(token(uid)), 'idempotency-key': key }), body: JSON.stringify(request) });
    const body = await res.json();
    if (res.status === 202 || res.status === 200) return { ok: true, r: { replayed: res.headers.get('idempotent-replayed') !== null, response: { job: body.job } } };
    return { ok: false, hint: body.error && body.error.code, code: `HTTP ${res.status}` };
  },
};

// Histories the Worker can carry (see the top of this file).
function forWorker(h) {
  const payments = h.payments.filter((p) => p.provider === 'stripe').map((p) => ({ ...p, disputes: [{ ...p.disputes[0], pct: 100 }, p.disputes[0]] }));
  const keep = new Map(h.payments.map((p, i) => [i, payments.findIndex((q) => q.index === p.index)]));
  const fix = (pay, ev) => {
    if (ev.k !== 'dispute') return ev;
    const d = payments[pay].disputes[0];
    // One dispute; a chargeback lost is never reinstated.
    const e = !d.inquiry && !d.won && ev.e === 'reinstated' ? 'withdrawn' : ev.e;
    return { ...ev, d: 0, e, won: d.won };
  };
  const ops = [];
  for (const o of h.ops) {
    // No clock moves; no claims either: claim_next_jobs would also meet the jobs other end-to-end
    // files left in this database.
    if (o.t === 'advance' || o.t === 'claim') continue;
    // No account closing: the comparison reads GET /v1/balance, which a closed account is refused
    // (account_closed); closing is covered by the database share (tests/model/run.mjs).
    if (o.t === 'close' || o.t === 'raceClose') continue;
    if (o.t === 'ev' || o.t === 'par') {
      const pay = keep.get(o.pay);
      if (pay < 0) continue;
      ops.push(o.t === 'ev' ? { ...o, pay, ev: fix(pay, o.ev) } : { ...o, pay, evs: o.evs.map((e) => fix(pay, e)) });
    } else ops.push(o);
  }
  // The Worker ignores a lost close and acts on the dispute's created (or funds_withdrawn) event,
  // which Stripe always sends too: so the created event is delivered before a lost close is.
  const out = [];
  const opened = new Set();
  for (const o of ops) {
    const evs = o.t === 'ev' ? [o.ev] : o.t === 'par' ? o.evs : [];
    if (evs.some((e) => e.k === 'dispute' && (e.e === 'created' || e.e === 'withdrawn'))) opened.add(o.pay);
    const lost = evs.some((e) => e.k === 'dispute' && e.e === 'closed' && !payments[o.pay].disputes[0].inquiry && !e.won);
    if (lost && !opened.has(o.pay)) { out.push({ t: 'ev', pay: o.pay, ev: { k: 'dispute', d: 0, e: 'created', won: false } }); opened.add(o.pay); }
    out.push(o);
  }
  return { users: h.users, payments: payments.map((p, i) => ({ ...p, index: i })), ops: out };
}
const workerWorld = fc.tuple(world({ payments: 2, ops: 16 }), fc.array(fc.boolean(), { minLength: 2, maxLength: 2 }))
  .map(([w0, won]) => ({ ...w0, payments: w0.payments.map((p, i) => (p.provider === 'stripe' ? { ...p, disputes: [{ ...p.disputes[0], won: won[i % 2] }, p.disputes[1]] } : p)) }));

test(`${HISTORIES} random histories through the Worker end with every user's state equal to the model's`, async () => {
  const db = new Db(pool);
  await db.init();
  const runner = new Runner(db, edge);
  const seed = Number(process.env.MODEL_SEED ?? Date.now() % 2 ** 31);
  let disagreement = null;
  const out = await fc.check(fc.asyncProperty(workerWorld, async (w0) => {
    const h = forWorker(resolve(w0));
    const run = await runner.run(h);
    const bad = check(h, run);
    if (bad) { disagreement = bad; return false; }
    return true;
  }), { seed, numRuns: HISTORIES, endOnFailure: false });
  const shown = out.failed ? `seed ${seed}; minimal history: ${JSON.stringify(forWorker(resolve(out.counterexample[0])))}\n${JSON.stringify(disagreement)}${out.error ? `\n${out.error}` : ''}` : '';
  assert.equal(out.failed, false, shown);
});
