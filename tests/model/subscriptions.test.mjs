// The subscription part of the reference model against migrations/README.md ("The subscription
// rules"), worked by hand. Pure model, no database (run.mjs compares it with the database).
import test from 'node:test';
import assert from 'node:assert/strict';
import { World, DAY } from './model.mjs';
import { PERIOD } from './subscriptions.mjs';

const t0 = Date.UTC(2031, 0, 1);
const paid = (n) => ({ id: `paid-${n}`, type: 'checkout.session.completed' });
function sub(plans, upgradeIn = null) {
  const w = new World(t0);
  const u = w.addUser();
  const pays = plans.map((plan, k) => w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: k, plan }, t0));
  const up = upgradeIn === null ? null : w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: upgradeIn, plan: 'pro-monthly', fromPlan: 'basic-monthly' }, t0);
  return { w, u, pays, up, money: () => { const s = w.snapshot().users[u]; return [s.available, s.debt]; } };
}

test('renewals: each period 1000 expiring at its end, 500 of the unspent rolled over', () => {
  const { w, pays, money } = sub(['pro-monthly', 'pro-monthly', 'pro-monthly']);
  w.deliver(pays[0], paid(0));
  assert.deepEqual(money(), [1010, 0]);
  w.advance(PERIOD + 3600e3);
  w.deliver(pays[1], paid(1));
  assert.deepEqual(money(), [1500, 0]); // period 1 expired; its 1000 unspent: 500 rolled
  w.advance(PERIOD - 2 * 3600e3);        // an hour before period 2 ends: period 3 paid early
  w.deliver(pays[2], paid(2));
  assert.deepEqual(money(), [2500, 0]); // 500 moved out of period 2, not counted twice
  w.advance(2 * 3600e3);
  assert.deepEqual(money(), [1500, 0]);
});

test('the same invoice delivered twice (two event ids): one grant', () => {
  const { w, pays, money } = sub(['pro-monthly']);
  w.deliver(pays[0], paid(0));
  w.deliver(pays[0], { id: 'retry', type: 'checkout.session.async_payment_succeeded' });
  assert.deepEqual(money(), [1010, 0]);
});

test('renewal recorded before the period it follows: the rollover is made when that period arrives', () => {
  const { w, pays, money } = sub(['pro-monthly', 'pro-monthly']);
  w.deliver(pays[1], paid(1));
  w.deliver(pays[0], paid(0));
  assert.deepEqual(money(), [10 + 500 + 1000 + 500, 0]);
  w.advance(PERIOD + 1);
  assert.deepEqual(money(), [1500, 0]);
});

test('a Basic period (no rollover) renewing into Basic rolls nothing over', () => {
  const { w, pays, money } = sub(['basic-monthly', 'basic-monthly']);
  w.deliver(pays[0], paid(0));
  w.advance(PERIOD + 1);
  w.deliver(pays[1], paid(1));
  assert.deepEqual(money(), [200, 0]);
});

test('an upgrade mid-period grants the difference until the period end', () => {
  const { w, pays, up, money } = sub(['basic-monthly'], 0);
  w.deliver(pays[0], paid(0));
  w.advance(14 * DAY);
  w.deliver(up, paid('up'));
  assert.deepEqual(money(), [1010, 0]);
  w.advance(16 * DAY + 1);
  assert.deepEqual(money(), [0, 0]);
});

test('a renewal refunded in full after its credits were spent leaves debt', () => {
  const { w, pays, money } = sub(['pro-monthly']);
  w.deliver(pays[0], paid(0));
  assert.equal(w.generate(0, 'premium-v1', 30, 'g1'), 'ok'); // 95 held
  w.complete(0, 0, 100);
  w.deliver(pays[0], { id: 'refund', type: 'charge.refunded', amountRefunded: 2999 });
  assert.deepEqual(money(), [0, 85]); // 95 spent (welcome 10 first, same expiry, promotional), 1000 taken: 915 from its grant, 85 debt
});

test('a period paid after it ended is worth nothing and repays no debt', () => {
  const { w, pays, money } = sub(['pro-monthly', 'pro-monthly']);
  w.advance(PERIOD + 1);
  w.deliver(pays[0], paid(0));
  assert.deepEqual(money(), [0, 0]);
  w.deliver(pays[1], paid(1));
  assert.deepEqual(money(), [1500, 0]); // period 1's 1000 expired unspent: 500 rolled over
});

// Stripe's immediate plan changes: Basic to Pro, back to Basic (nothing granted, nothing taken back:
// Stripe keeps the proration as balance), Pro again (paid from that balance).
test('upgrade, downgrade, upgrade again in one period: the difference is granted once, in any order of the invoices', () => {
  const orders = [[0, 1, 2, 3], [0, 3, 2, 1], [3, 1, 2, 0], [2, 1, 0, 3]];
  for (const order of orders) {
    const w = new World(t0);
    const u = w.addUser();
    const pays = [
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'basic-monthly' }, t0),
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'pro-monthly', fromPlan: 'basic-monthly' }, t0),
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'basic-monthly', fromPlan: 'pro-monthly' }, t0),
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'pro-monthly', fromPlan: 'basic-monthly' }, t0),
    ];
    for (const i of order) w.deliver(pays[i], paid(i));
    const s = w.snapshot();
    assert.equal(s.users[u].available, 10 + 1000, `order ${order}: welcome + the Pro plan's 1000, not 1800`);
    assert.equal(s.purchases.filter((x) => x === 'succeeded').length, 2, `order ${order}: the period and one upgrade make purchases`);
    assert.equal(s.purchases[2], 'none', `order ${order}: the downgrade grants nothing`);
  }
});

test('a Pro period invoice arriving after a downgrade and an upgrade back: the period grants what is left, 1000 in all', () => {
  const w = new World(t0);
  const u = w.addUser();
  const pays = [
    w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'pro-monthly' }, t0),
    w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'basic-monthly', fromPlan: 'pro-monthly' }, t0),
    w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'pro-monthly', fromPlan: 'basic-monthly' }, t0),
  ];
  for (const i of [1, 2, 0]) w.deliver(pays[i], paid(i));
  assert.equal(w.snapshot().users[u].available, 10 + 1000, 'the upgrade back 800, the period 200 (it granted 1800)');
});

// README, "replaced" row: an App Store upgrade is a new Pro period starting mid-way through the
// Basic one; Apple refunds Basic's unused half (999 -> 500) without a REFUND notification, so Basic
// keeps 200 - ceil(200 x 500 / 999) = 99, in either order of the two transactions.
test('an App Store upgrade replaces the period it starts in: the replaced one keeps its used share', () => {
  const tx = (n) => ({ id: `transaction:${n}`, type: 'transaction' });
  for (const order of [[0, 1], [1, 0]]) {
    const w = new World(t0);
    const u = w.addUser();
    const pays = [
      w.addSubPayment({ provider: 'app_store', user: u, sub: 0, period: 0, plan: 'basic-monthly' }, t0),
      w.addSubPayment({ provider: 'app_store', user: u, sub: 0, period: 0, plan: 'pro-monthly', replaces: true }, t0),
    ];
    for (const i of order) w.deliver(pays[i], tx(i));
    const s = w.snapshot();
    assert.deepEqual([s.users[u].available, s.users[u].debt], [10 + 99 + 1000, 0], `order ${order}`);
    assert.deepEqual(s.purchases, ['succeeded', 'succeeded']);
    // A REFUND of Basic takes the rest; its reversal gives back 99, not 200.
    w.deliver(pays[0], { id: 'refund-0', type: 'REFUND' });
    assert.equal(w.snapshot().users[u].available, 1010);
    w.deliver(pays[0], { id: 'reversal-0', type: 'REFUND_REVERSED' });
    assert.equal(w.snapshot().users[u].available, 1109);
  }
});

test('Basic spent before the App Store upgrade: the cut takes the rest of Basic, then from Pro', () => {
  const w = new World(t0);
  const u = w.addUser();
  const basic = w.addSubPayment({ provider: 'app_store', user: u, sub: 0, period: 0, plan: 'basic-monthly' }, t0);
  const pro = w.addSubPayment({ provider: 'app_store', user: u, sub: 0, period: 0, plan: 'pro-monthly', replaces: true }, t0);
  w.deliver(basic, { id: 'transaction:b', type: 'transaction' });
  const g = w.users[u].grants.find((x) => x.key === `pay:${basic}`);
  g.remaining = 50; // 150 of Basic's 200 used
  w.deliver(pro, { id: 'transaction:p', type: 'transaction' });
  // 101 taken back: Basic's 50 left, then 51 from the next grant in draw-down order (the welcome 10
  // expires first, then Pro's).
  assert.deepEqual([w.snapshot().users[u].available, w.snapshot().users[u].debt], [10 + 50 + 1000 - 101, 0]);
});

test('a Stripe billing period reset with the credit cuts every payment of the period it ends, its upgrade too; without the credit nothing', () => {
  for (const [credited, order, want] of [
    // Halfway in (default at): Basic refunded ceil(999 x 15 / 30) = 500, keeps 200 - ceil(200 x 500 / 999) = 99;
    // the upgrade (its span the same period in the model) 2000 x 15 / 30 = 1000, keeps 800 - 400 = 400.
    [true, [0, 1, 2], 10 + 99 + 400 + 12000],
    [true, [2, 1, 0], 10 + 99 + 400 + 12000],
    [false, [0, 1, 2], 10 + 200 + 800 + 12000],
  ]) {
    const w = new World(t0);
    const u = w.addUser();
    const pays = [
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'basic-monthly' }, t0),
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'pro-monthly', fromPlan: 'basic-monthly' }, t0),
      w.addSubPayment({ provider: 'stripe', user: u, sub: 0, period: 0, plan: 'pro-yearly', replaces: true, credited }, t0),
    ];
    for (const i of order) w.deliver(pays[i], paid(i));
    const s = w.snapshot();
    assert.deepEqual([s.users[u].available, s.users[u].debt], [want, 0], `credited ${credited}, order ${order}`);
    assert.deepEqual(s.purchases, ['succeeded', 'succeeded', 'succeeded']);
  }
});
