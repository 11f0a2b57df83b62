// The reference model against the cases of ../../../shared/SECURITY.md section 9 and the rule
// table of migrations/README.md, worked by hand: each test names the outcome the text gives.
// Pure model, no database (the random histories in run.mjs compare the model with the database).
import test from 'node:test';
import assert from 'node:assert/strict';
import { World, DAY, HOUR } from './model.mjs';

const C = 100, P = 499; // the starter package
const t0 = Date.UTC(2031, 0, 1);
const ev = {
  paid: { id: 'e-paid', type: 'checkout.session.completed' },
  refund: (R) => ({ id: `e-refund-${R}`, type: 'charge.refunded', amountRefunded: R }),
  dispute: (d, type, status, amount = P) => ({ id: `e-${d}-${type}-${status}`, type: `charge.dispute.${type}`, disputeId: d, status, amount }),
  tx: { id: 'tx', type: 'transaction' },
  apple: (type, n = 0) => ({ id: `${type}-${n}`, type }),
};
function buy(provider, events, setup = () => {}) {
  const w = new World(t0);
  const u = w.addUser();
  setup(w, u);
  const p = w.addPayment(u, provider, 'starter', P);
  for (const e of events) w.deliver(p, e);
  const user = w.users[u];
  return { w, available: w.available(user), debt: user.debt, status: w.status(p), kept: C - w.payments[p].pieces.reduce((s, x) => s + x.amount, 0) };
}
const permutations = (xs) => (xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((r) => [x, ...r])));

test('inquiry, full refund, inquiry closed: the user keeps nothing of the payment, status refunded', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'created', 'warning_needs_response'), ev.refund(P), ev.dispute('dp1', 'closed', 'warning_closed')]);
  assert.deepEqual([r.available, r.debt, r.status], [10, 0, 'refunded']);
});

test('a refund of 250 during an open chargeback of the whole amount: nothing kept while both stand, disputed', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'created', 'needs_response'), ev.refund(250)]);
  assert.deepEqual([r.available, r.status], [10, 'disputed']);
});

test('that chargeback won: only the refund is taken, C - ceil(C x 250 / 499) = 49 kept, succeeded', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'created', 'needs_response'), ev.refund(250), ev.dispute('dp1', 'closed', 'won')]);
  assert.deepEqual([r.available, r.kept, r.status], [10 + 49, 49, 'succeeded']);
});

test('that chargeback lost: both taken, never more than the purchase, disputed', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'created', 'needs_response'), ev.refund(250), ev.dispute('dp1', 'closed', 'lost')]);
  assert.deepEqual([r.available, r.kept, r.debt, r.status], [10, 0, 0, 'disputed']);
});

test('a won close and a lost close seen for one dispute: lost counts', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'closed', 'lost'), ev.dispute('dp1', 'closed', 'won')]);
  assert.deepEqual([r.kept, r.status], [0, 'disputed']);
});

test('funds_reinstated counts as won whatever status the event carries', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'funds_withdrawn', 'needs_response'), ev.dispute('dp1', 'funds_reinstated', 'under_review')]);
  assert.deepEqual([r.kept, r.status], [C, 'succeeded']);
});

test('two disputes on one payment: an inquiry closed does not stop a later chargeback (state per dispute id)', () => {
  const r = buy('stripe', [ev.paid, ev.dispute('dp1', 'created', 'warning_needs_response'), ev.dispute('dp1', 'closed', 'warning_closed'), ev.dispute('dp2', 'created', 'needs_response', 200)]);
  // reversed = min(P, 0 + 200) = 200: ceil(100 x 200 / 499) = 41 taken.
  assert.deepEqual([r.kept, r.status], [59, 'disputed']);
});

test('a partial refund of 100 delivered before the payment: 100 - ceil(100 x 100 / 499) = 79 kept, succeeded', () => {
  const r = buy('stripe', [ev.refund(100), ev.paid]);
  assert.deepEqual([r.available, r.kept, r.status], [10 + 79, 79, 'succeeded']);
});

test('a dispute opened and won before the payment: the payment is granted in full', () => {
  const r = buy('stripe', [ev.dispute('dp1', 'created', 'needs_response'), ev.dispute('dp1', 'closed', 'won'), ev.paid]);
  assert.deepEqual([r.kept, r.status], [C, 'succeeded']);
});

test('not paid: the facts wait, nothing kept; async_payment_failed makes it failed', () => {
  assert.deepEqual([buy('stripe', [ev.refund(100)]).status, buy('stripe', [{ id: 'f', type: 'checkout.session.async_payment_failed' }]).status], ['pending', 'failed']);
  assert.equal(buy('stripe', [{ id: 'f', type: 'checkout.session.async_payment_failed' }, ev.paid]).status, 'succeeded');
});

test('every permutation of paid, refund 250, chargeback opened and won, each delivered twice, ends with 49 kept and no debt', () => {
  const events = [ev.paid, ev.refund(250), ev.dispute('dp1', 'created', 'needs_response'), ev.dispute('dp1', 'closed', 'won')];
  for (const order of permutations(events)) {
    const r = buy('stripe', [...order, ...order.slice().reverse()]);
    assert.deepEqual([r.kept, r.debt, r.available, r.status], [49, 0, 59, 'succeeded'], JSON.stringify(order.map((e) => e.id)));
  }
});

test('Apple REFUND_REVERSED as often as REFUND, in any order around the transaction: all kept, succeeded', () => {
  for (const order of permutations([ev.tx, ev.apple('REFUND'), ev.apple('REFUND_REVERSED')])) {
    const r = buy('app_store', order);
    assert.deepEqual([r.kept, r.status], [C, 'succeeded']);
  }
  const r = buy('app_store', [ev.tx, ev.apple('REFUND', 0), ev.apple('REFUND', 1), ev.apple('REFUND_REVERSED', 0)]);
  assert.deepEqual([r.kept, r.status], [0, 'refunded']);
  assert.deepEqual([buy('app_store', [ev.apple('REVOKE'), ev.tx]).kept, buy('app_store', [ev.apple('REVOKE'), ev.tx]).status], [0, 'disputed']);
});

test('a refund while credits are held takes what is available, the rest becomes debt; the released hold repays it with paid credits, the welcome credits stay promotional', () => {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  assert.equal(w.generate(u, 'premium-v1', 15, 'k'), 'ok'); // 5 + 3 x 15 = 50: welcome 10, then 40 paid
  w.deliver(p, ev.refund(P));                                // takes own 60, then debt 40
  assert.deepEqual([w.available(w.users[u]), w.users[u].debt], [0, 40]);
  assert.equal(w.generate(u, 'draft-v1', 1, 'k2'), 'credits_in_debt');
  w.fail(u, 0);                                              // 10 back to welcome, 40 to the paid grant, which repays
  assert.deepEqual(w.snapshot().users[0], { available: 10, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 10 }] });
});

test('a chargeback after spending leaves debt; won, the debt piece cancels the debt and the grant piece returns', () => {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  w.generate(u, 'premium-v1', 30, 'k'); // 95: welcome 10 + paid 85
  w.complete(u, 0, 100);
  w.deliver(p, ev.dispute('dp1', 'created', 'needs_response'));
  assert.deepEqual([w.available(w.users[u]), w.users[u].debt], [0, 85]);
  w.deliver(p, ev.dispute('dp1', 'closed', 'won'));
  assert.deepEqual(w.snapshot().users[0], { available: 15, held: 0, debt: 0, grants: [{ key: 'pay:0', remaining: 15 }] });
});

test('welcome credits are worth nothing after 30 days; credits released to an expired grant expire at once', () => {
  const w = new World(t0);
  const u = w.addUser();
  w.generate(u, 'draft-v1', 1, 'k');
  w.advance(30 * DAY + 1);
  w.fail(u, 0);
  assert.deepEqual(w.snapshot().users[0], { available: 0, held: 0, debt: 0, grants: [] });
});

test('a stale hold (past 6 hours, job not leased) is released by the sweep; a leased job keeps its hold', () => {
  const w = new World(t0);
  const u = w.addUser();
  w.generate(u, 'standard-v1', 2, 'k');
  w.advance(6 * HOUR + 1);
  w.claimAll();
  w.expireStaleHolds();
  assert.equal(w.held(w.users[u]), 4);
  w.advance(301e3);
  w.expireStaleHolds();
  assert.deepEqual([w.held(w.users[u]), w.available(w.users[u])], [0, 10]);
});
