// The invite rules of the model (invites.mjs) worked by hand from migrations/README.md ("Invites").
// Pure model, no database (run.mjs compares the model with the database on random histories).
import test from 'node:test';
import assert from 'node:assert/strict';
import { World, DAY } from './model.mjs';
import { redeem, rewardFor } from './invites.mjs';

const P = 499;
const t0 = Date.UTC(2031, 0, 1);
const paid = { id: 'paid', type: 'checkout.session.completed' };
const refund = (R) => ({ id: `refund-${R}`, type: 'charge.refunded', amountRefunded: R });
const dispute = (status) => ({ id: `dp-${status}`, type: status === 'won' ? 'charge.dispute.closed' : 'charge.dispute.created', disputeId: 'dp', status, amount: P });
const money = (w, u) => { const { available, debt, grants } = w.snapshot().users[u]; return { available, debt, grants }; };

function world(n = 2) {
  const w = new World(t0);
  for (let i = 0; i < n; i++) w.addUser();
  return w;
}

test('redemption: own code, a second code, a loop, after the window, after a purchase, a closed inviter', () => {
  const w = world(4);
  assert.equal(redeem(w, 0, 0), 'self_invite');
  assert.equal(redeem(w, 1, 0), 'ok');
  assert.equal(redeem(w, 1, 0), 'replayed');
  assert.equal(redeem(w, 1, 2), 'invite_already_redeemed');
  assert.equal(redeem(w, 0, 1), 'invite_loop');
  assert.equal(redeem(w, 2, 1), 'ok');
  assert.equal(redeem(w, 0, 2), 'invite_loop', 'a longer loop');
  const p = w.addPayment(3, 'stripe', 'starter', P);
  w.deliver(p, paid);
  assert.equal(redeem(w, 3, 0), 'invite_after_purchase');
  const late = world(2);
  late.advance(7 * DAY);
  assert.equal(redeem(late, 1, 0), 'invite_window_closed', 'the window ends 7 days after sign-up, exactly');
  const gone = world(2);
  gone.close(0);
  assert.equal(redeem(gone, 1, 0), 'not_found');
  assert.equal(redeem(gone, 0, 1), 'account_closed');
});

test('the reward comes with the first paid purchase only, 50 promotional credits expiring in 90 days', () => {
  const w = world();
  redeem(w, 1, 0);
  assert.deepEqual(money(w, 0).available, 10, 'nothing at redemption');
  const p = w.addPayment(1, 'stripe', 'starter', P);
  w.deliver(p, paid);
  assert.deepEqual(money(w, 0), { available: 60, debt: 0, grants: [{ key: 'invite:1', remaining: 50 }, { key: 'welcome', remaining: 10 }] });
  const q = w.addPayment(1, 'stripe', 'starter', P);
  w.deliver(q, { ...paid, id: 'paid-2' });
  assert.equal(money(w, 0).available, 60, 'a second purchase earns nothing');
  w.advance(90 * DAY);
  assert.equal(money(w, 0).available, 0, 'the reward expired with the welcome grant');
});

test('a partial refund keeps the reward; a full refund takes it back, spent credits becoming debt', () => {
  const w = world();
  redeem(w, 1, 0);
  const p = w.addPayment(1, 'stripe', 'starter', P);
  w.deliver(p, paid);
  w.deliver(p, refund(100));
  assert.equal(money(w, 0).available, 60);
  assert.equal(w.generate(0, 'premium-v1', 10, 'k'), 'ok'); // 35 held: the 10 welcome, then 25 of the reward
  w.complete(0, 0, 100); // not claimed: nothing applies
  w.claimAll();
  assert.equal(w.complete(0, 0, 100), true);
  w.deliver(p, refund(P));
  assert.deepEqual(money(w, 0), { available: 0, debt: 25, grants: [] });
});

test('a dispute takes the reward back and a won dispute gives it back; a refund arriving first means nothing is kept', () => {
  const w = world();
  redeem(w, 1, 0);
  const p = w.addPayment(1, 'stripe', 'starter', P);
  w.deliver(p, paid);
  w.deliver(p, dispute('needs_response'));
  assert.equal(money(w, 0).available, 10);
  w.deliver(p, dispute('won'));
  assert.equal(money(w, 0).available, 60);
  const v = world();
  redeem(v, 1, 0);
  const q = v.addPayment(1, 'stripe', 'starter', P);
  v.deliver(q, refund(P));
  v.deliver(q, paid);
  assert.equal(money(v, 0).available, 10, 'paid already refunded: the reward is made and taken back at once');
  assert.equal(v.invites[1].reward.amount, 50);
});

test('tiers by successful invitees and the monthly cap of 500', () => {
  assert.deepEqual([1, 5, 6, 15, 16, 40].map(rewardFor), [50, 50, 60, 60, 75, 75]);
  const w = world(13);
  for (let i = 1; i <= 12; i++) redeem(w, i, 0);
  for (let i = 1; i <= 12; i++) { const p = w.addPayment(i, 'stripe', 'starter', P); w.deliver(p, { ...paid, id: `paid-${i}` }); }
  assert.deepEqual(Array.from({ length: 12 }, (_, i) => w.invites[i + 1].reward.amount), [50, 50, 50, 50, 50, 60, 60, 60, 60, 10, 0, 0]);
  assert.equal(money(w, 0).available, 510);
});
