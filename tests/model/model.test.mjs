// The reference model against the cases of ../../../shared/SECURITY.md section 9 and the rule
// table of migrations/README.md, worked by hand: each test names the outcome the text gives.
// Pure model, no database (the random histories in run.mjs compare the model with the database).
import test from 'node:test';
import assert from 'node:assert/strict';
import { World, DAY, HOUR } from './model.mjs';
import { grant } from './admin.mjs';

const C = 100, P = 499; // the starter package
const t0 = Date.UTC(2031, 0, 1);
const ev = {
  paid: { id: 'e-paid', type: 'checkout.session.completed' },
  refund: (R) => ({ id: `e-refund-${R}`, type: 'charge.refunded', amountRefunded: R }),
  dispute: (d, type, status, amount = P) => ({ id: `e-${d}-${type}-${status}`, type: `charge.dispute.${type}`, disputeId: d, status, amount }),
  tx: { id: 'tx', type: 'transaction' },
  apple: (type, n = 0) => ({ id: `${type}-${n}`, type }),
};
function buy(provider, events, setup = () => {}, amount = P) {
  const w = new World(t0);
  const u = w.addUser();
  setup(w, u);
  const p = w.addPayment(u, provider, 'starter', amount);
  for (const e of events) w.deliver(p, e);
  const user = w.users[u];
  return { w, available: w.available(user), debt: user.debt, status: w.status(p), kept: C - w.payments[p].pieces.reduce((s, x) => s + x.amount, 0) };
}
// The money of a world's first user (the snapshot also carries its jobs and whether it is closed).
const money = (w, i = 0) => { const { available, held, debt, grants } = w.snapshot().users[i]; return { available, held, debt, grants }; };
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

test('a chargeback prevented (stopped before it was charged back) takes nothing, in any order; lost still outranks it', () => {
  const events = [ev.paid, ev.dispute('dp1', 'created', 'needs_response'), ev.dispute('dp1', 'closed', 'prevented')];
  for (const order of permutations(events)) {
    const r = buy('stripe', order);
    assert.deepEqual([r.kept, r.status], [C, 'succeeded'], JSON.stringify(order.map((e) => e.id)));
  }
  const both = buy('stripe', [ev.paid, ev.dispute('dp1', 'closed', 'prevented'), ev.dispute('dp1', 'closed', 'lost')]);
  assert.deepEqual([both.kept, both.status], [0, 'disputed']);
  assert.throws(() => buy('stripe', [ev.paid, ev.dispute('dp1', 'closed', 'charge_refunded')]), /does not rank/);
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

test('a checkout paid in full by a coupon (P = 0): all of C kept, succeeded; a standing dispute takes all of it (README: with P = 0)', () => {
  const free = buy('stripe', [ev.paid, ev.paid], () => {}, 0);
  assert.deepEqual([free.available, free.kept, free.status], [10 + C, C, 'succeeded']);
  const disputed = buy('stripe', [ev.paid, ev.dispute('dp1', 'created', 'needs_response', 0)], () => {}, 0);
  assert.deepEqual([disputed.kept, disputed.status], [0, 'disputed']);
});

test('an App Store REFUND prorated to 40% (200 of 499): 100 - ceil(100 x 200 / 499) = 59 kept, succeeded; a full REFUND after it takes the rest', () => {
  const share = { id: 'prorated', type: 'REFUND_PRORATED', amountRefunded: 200 };
  const r = buy('app_store', [ev.tx, share, share]);
  assert.deepEqual([r.available, r.kept, r.status], [10 + 59, 59, 'succeeded']);
  const both = buy('app_store', [share, ev.tx, ev.apple('REFUND')]);
  assert.deepEqual([both.available, both.kept, both.status], [10, 0, 'refunded']);
  // A REFUND_REVERSED cancels the prorated refund first: its share comes back, and a full REFUND
  // after it still counts.
  const back = buy('app_store', [ev.tx, share, ev.apple('REFUND_REVERSED')]);
  assert.deepEqual([back.kept, back.status], [C, 'succeeded']);
  const again = buy('app_store', [ev.apple('REFUND_REVERSED'), ev.tx, share, ev.apple('REFUND')]);
  assert.deepEqual([again.kept, again.status], [0, 'refunded']);
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
  assert.deepEqual(money(w), { available: 10, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 10 }] });
});

test('a chargeback after spending leaves debt; won, the debt piece cancels the debt and the grant piece returns', () => {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  w.generate(u, 'premium-v1', 30, 'k'); // 95: welcome 10 + paid 85
  w.claimAll();                         // only a claimed job completes
  w.complete(u, 0, 100);
  w.deliver(p, ev.dispute('dp1', 'created', 'needs_response'));
  assert.deepEqual([w.available(w.users[u]), w.users[u].debt], [0, 85]);
  w.deliver(p, ev.dispute('dp1', 'closed', 'won'));
  assert.deepEqual(money(w), { available: 15, held: 0, debt: 0, grants: [{ key: 'pay:0', remaining: 15 }] });
});

test('welcome credits are worth nothing after 30 days; credits released to an expired grant expire at once', () => {
  const w = new World(t0);
  const u = w.addUser();
  w.generate(u, 'draft-v1', 1, 'k');
  w.advance(30 * DAY + 1);
  w.fail(u, 0);
  assert.deepEqual(money(w), { available: 0, held: 0, debt: 0, grants: [] });
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

// --- Cancellation and closed accounts (migrations/README.md, Money mechanics "Cancellation" and
// "Closed accounts", "Closing an account"), worked by hand.

// One user with the welcome 10; generates a standard-v1 job of 2 minutes (price 2 + 1 x 2 = 4).
function oneJob() {
  const w = new World(t0);
  const u = w.addUser();
  assert.equal(w.generate(u, 'standard-v1', 2, 'k'), 'ok');
  return { w, u };
}
const jobs = (w, i = 0) => w.snapshot().users[i].jobs;

test('a queued job canceled: at once, S = 0, the whole hold released; a second cancel moves nothing', () => {
  const { w, u } = oneJob();
  assert.deepEqual([w.available(w.users[u]), w.held(w.users[u])], [6, 4]);
  assert.equal(w.cancel(u, 0), 'canceled');
  assert.deepEqual(money(w), { available: 10, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 10 }] });
  assert.deepEqual(jobs(w), ['CANCELED:0']);
  assert.equal(w.cancel(u, 0), 'unchanged');
  assert.equal(w.finishCanceled(u, 0, 100), false); // a finished job
  assert.equal(w.complete(u, 0, 100), false);
  assert.equal(w.fail(u, 0), false);
  assert.deepEqual([w.available(w.users[u]), jobs(w)], [10, ['CANCELED:0']]);
});

test('a running job: cancel only requests (no money moves); finish_canceled_job(S = 2) captures 2, releases 2, CANCELED with credits_final 2', () => {
  const { w, u } = oneJob();
  w.claimAll();
  assert.equal(w.finishCanceled(u, 0, 50), false); // no cancel request yet
  assert.equal(w.cancel(u, 0), 'cancel_requested');
  assert.deepEqual([w.available(w.users[u]), w.held(w.users[u])], [6, 4]);
  assert.equal(w.cancel(u, 0), 'unchanged');
  assert.equal(w.finishCanceled(u, 0, 50), true);
  assert.deepEqual(money(w), { available: 8, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 8 }] });
  assert.deepEqual(jobs(w), ['CANCELED:2']);
  assert.equal(w.finishCanceled(u, 0, 100), false);
  assert.equal(w.cancel(u, 0), 'unchanged');
});

test('after a cancel request complete_job(actual_cost = S) ends it CANCELED charging S; fail_job ends it CANCELED with S = 0', () => {
  const a = oneJob();
  a.w.claimAll();
  a.w.cancel(a.u, 0);
  assert.equal(a.w.complete(a.u, 0, 100), true);
  assert.deepEqual([a.w.available(a.w.users[a.u]), a.w.held(a.w.users[a.u]), jobs(a.w)], [6, 0, ['CANCELED:4']]);
  const b = oneJob();
  b.w.claimAll();
  b.w.cancel(b.u, 0);
  assert.equal(b.w.fail(b.u, 0), true);
  assert.deepEqual([b.w.available(b.w.users[b.u]), b.w.held(b.w.users[b.u]), jobs(b.w)], [10, 0, ['CANCELED:0']]);
});

test('the lease of a cancel-requested job lapses: the next claim_next_jobs ends it CANCELED, S = 0, never claimed again', () => {
  const { w, u } = oneJob();
  w.claimAll();
  w.cancel(u, 0);
  w.advance(301e3);
  w.claimAll();
  assert.deepEqual([w.available(w.users[u]), w.held(w.users[u]), jobs(w)], [10, 0, ['CANCELED:0']]);
  w.claimAll();
  assert.deepEqual(jobs(w), ['CANCELED:0']);
});

test('... or a report that arrives after the lapse (no claim pass in between): too late, CANCELED with S = 0, applied = false', () => {
  for (const report of [(w, u) => w.complete(u, 0, 100), (w, u) => w.finishCanceled(u, 0, 100), (w, u) => w.fail(u, 0)]) {
    const { w, u } = oneJob();
    w.claimAll();
    w.cancel(u, 0);
    w.advance(301e3);
    assert.equal(report(w, u), false);
    assert.deepEqual([w.available(w.users[u]), w.held(w.users[u]), jobs(w)], [10, 0, ['CANCELED:0']]);
  }
  const { w, u } = oneJob(); // before the lapse the report still counts
  w.claimAll();
  w.cancel(u, 0);
  w.advance(299e3);
  assert.equal(w.complete(u, 0, 100), true);
  assert.deepEqual(jobs(w), ['CANCELED:4']);
});

test('... or expire_stale_holds once the hold is stale: CANCELED, S = 0', () => {
  const { w, u } = oneJob();
  w.claimAll();
  w.cancel(u, 0);
  w.advance(6 * HOUR + 1);
  w.expireStaleHolds();
  assert.deepEqual([w.available(w.users[u]), w.held(w.users[u]), jobs(w)], [10, 0, ['CANCELED:0']]);
});

test('a canceled hold repays debt in repayment order: paid credits repay, the welcome credits stay', () => {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  assert.equal(w.generate(u, 'premium-v1', 15, 'k'), 'ok'); // 50: welcome 10, then 40 paid
  w.deliver(p, ev.refund(P));                                // takes own 60, then debt 40
  assert.equal(w.cancel(u, 0), 'canceled');
  assert.deepEqual(money(w), { available: 10, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 10 }] });
});

test('closing an account cancels every unfinished job with S = 0, running or cancel-requested or queued; then nothing is spent or granted', () => {
  const w = new World(t0);
  const u = w.addUser();
  w.generate(u, 'draft-v1', 1, 'a');  // 1
  w.generate(u, 'draft-v1', 2, 'b');  // 1
  w.claimAll();                        // both running
  w.cancel(u, 1);                      // one cancel-requested
  w.generate(u, 'standard-v1', 1, 'c'); // 3, queued
  w.generate(u, 'draft-v1', 1, 'd');
  w.complete(u, 0, 100);               // READY, 1 spent
  assert.deepEqual([w.available(w.users[u]), w.held(w.users[u])], [4, 5]);
  assert.equal(w.close(u), 3);
  assert.deepEqual(money(w), { available: 9, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 9 }] });
  assert.deepEqual(jobs(w), ['READY', 'CANCELED:0', 'CANCELED:0', 'CANCELED:0']);
  assert.equal(w.generate(u, 'draft-v1', 1, 'e'), 'account_closed');
  assert.equal(w.cancel(u, 3), 'account_closed');
  assert.equal(w.close(u), 0); // idempotent
  assert.equal(w.finishCanceled(u, 1, 100), false);
  // A payment arriving now grants nothing and stays a pending purchase (parked for a refund);
  // its later events move nothing.
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  w.deliver(p, ev.refund(P));
  assert.deepEqual([w.available(w.users[u]), w.status(p)], [9, 'pending']);
  const a = w.addPayment(u, 'app_store', 'starter', P);
  w.deliver(a, ev.tx);
  assert.deepEqual([w.available(w.users[u]), w.snapshot().purchases[a]], [9, 'none']);
});

test('a closed account keeps its credits: a later partial refund of an earlier payment takes back ceil(100 x 250 / 499) = 51', () => {
  const r = buy('stripe', [ev.paid], () => {});
  const { w } = r;
  w.close(0);
  w.deliver(0, ev.refund(250));
  assert.deepEqual([w.available(w.users[0]), w.users[0].debt, w.status(0)], [10 + 49, 0, 'succeeded']);
});

test('a closed account: a chargeback after spending leaves debt; won, the give-back still comes back', () => {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  w.generate(u, 'premium-v1', 30, 'k'); // 95: welcome 10 + paid 85
  w.claimAll();                         // only a claimed job completes
  w.complete(u, 0, 100);
  w.close(u);
  w.deliver(p, ev.dispute('dp1', 'created', 'needs_response'));
  assert.deepEqual([w.available(w.users[u]), w.users[u].debt, w.status(p)], [0, 85, 'disputed']);
  w.deliver(p, ev.dispute('dp1', 'closed', 'won'));
  assert.deepEqual(money(w), { available: 15, held: 0, debt: 0, grants: [{ key: 'pay:0', remaining: 15 }] });
});

test('closing with several holds while in debt: the order of the releases decides which grants repay (the checker tries every order)', () => {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  w.generate(u, 'premium-v1', 1, 'a');  // 8: welcome 8
  w.generate(u, 'premium-v1', 2, 'b');  // 11: welcome 2, paid 9
  w.deliver(p, ev.refund(P));            // own 91 taken, 9 debt
  const ends = [[0, 1], [1, 0]].map((order) => { const c = w.clone(); c.close(u, order); return money(c); });
  // Welcome first: its 8 come back and repay 8 of the 9 (repayment order within what is there),
  // then 2 welcome + 9 paid come back and paid repays the last 1.
  assert.deepEqual(ends[0], { available: 10, held: 0, debt: 0, grants: [{ key: 'pay:0', remaining: 8 }, { key: 'welcome', remaining: 2 }] });
  // Job b first: 9 paid repay the 9, then the welcome 8 come back.
  assert.deepEqual(ends[1], { available: 10, held: 0, debt: 0, grants: [{ key: 'welcome', remaining: 10 }] });
});

// A dispute after the user spent the payment leaves debt; a promotional grant expiring in a day
// repays part of it; `days` later the dispute is won. `wonFirst`: the win arrives first instead,
// then the grant, then the days pass. Both end at the same time.
function repaidThenWon(wonFirst, days) {
  const w = new World(t0);
  const u = w.addUser();
  const p = w.addPayment(u, 'stripe', 'starter', P);
  w.deliver(p, ev.paid);
  w.generate(u, 'premium-v1', 30, 'k'); // 95: welcome 10 + paid 85
  w.claimAll();
  w.complete(u, 0, 100);
  w.deliver(p, ev.dispute('dp1', 'created', 'needs_response')); // own 15, debt 85
  if (wonFirst) w.deliver(p, ev.dispute('dp1', 'closed', 'won'));
  assert.equal(grant(w, u, 50, DAY), 'ok');
  w.advance(days * DAY);
  if (!wonFirst) w.deliver(p, ev.dispute('dp1', 'closed', 'won'));
  w.expire(w.users[u]);
  return money(w);
}

test('debt repaid by a promotional grant, then given back: the credits go to the more durable grant (the payment\'s own), so the user never ends with less than in the other order', () => {
  // Won after the repayment: the 50 the promotional grant repaid come back as the payment's own
  // (paid, never expiring), like the 15 taken from it. Won first: the grant keeps its 50.
  assert.deepEqual(repaidThenWon(false, 0), { available: 65, held: 0, debt: 0, grants: [{ key: 'pay:0', remaining: 65 }] }, 'repaid, then won');
  assert.deepEqual(repaidThenWon(true, 0), { available: 65, held: 0, debt: 0, grants: [{ key: 'pay:0', remaining: 15 }, { key: 'promotion:promotional:null', remaining: 50 }] }, 'won, then granted');
  // Two days on, the promotional grant has expired: 65 against 15, never less than the other order.
  assert.deepEqual(repaidThenWon(false, 2).available, 65, 'repaid, then won after the grant expired');
  assert.deepEqual(repaidThenWon(true, 2).available, 15, 'won, then granted, then expired unused');
});

// A subscription-like own grant (expiring) whose debt a pack repaid: the pack is more durable, so the
// repaid credits return to it and survive the own grant's expiry.
test('debt of an expiring grant repaid by a never-expiring one, then given back: the credits return to the one that repaid it', () => {
  const w = new World(t0);
  const u = w.addUser();
  const user = w.users[u];
  const own = w.addGrant(user, { key: 'period', kind: 'paid', expiresAt: t0 + 30 * DAY, amount: 100 });
  const p = { grant: own.seq, pieces: [] };
  own.remaining = 15; // 85 of it spent
  w.takeBack(user, p, 100); // its own 15 first, then the welcome 10 (draw-down order), then 75 of debt
  const pack = w.addGrant(user, { key: 'pack', kind: 'paid', expiresAt: null, amount: 100 }); // repays 75
  assert.deepEqual([pack.remaining, user.debt], [25, 0]);
  w.giveBack(user, p, 100);
  w.advance(31 * DAY);
  assert.deepEqual(money(w), { available: 100, held: 0, debt: 0, grants: [{ key: 'pack', remaining: 100 }] },
    'the 75 back to the pack; the 15 and 10 back to their own grants, which then expire');
});
