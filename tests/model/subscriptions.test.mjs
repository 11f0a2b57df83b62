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
