// The admin actions and spend caps of the reference model (admin.mjs) against the rules of
// migrations/README.md ("Admin actions", "Spend limits") and README.md, worked by hand.
import test from 'node:test';
import assert from 'node:assert/strict';
import { World, DAY, HOUR } from './model.mjs';
import * as admin from './admin.mjs';

const t0 = Date.UTC(2031, 0, 1);
const money = (w, i = 0) => { const { available, held, debt, grants } = w.snapshot().users[i]; return { available, held, debt, grants }; };

test('grant: promotional with its expiry, repays debt first; refused for a closed account', () => {
  const w = new World(t0);
  const u = w.addUser();
  w.users[u].debt = 4; w.users[u].grants[0].remaining = 0; // debt implies nothing available
  assert.equal(admin.grant(w, u, 10, 2 * DAY), 'ok');
  assert.deepEqual(money(w), { available: 6, held: 0, debt: 0, grants: [{ key: 'promotion:promotional:null', remaining: 6 }] });
  w.advance(2 * DAY + 1);
  assert.equal(money(w).available, 0, 'the grant expired');
  w.close(u);
  assert.equal(admin.grant(w, u, 5, null), 'account_closed');
});

test('adjust: + paid never-expiring; - in draw-down order, never beyond available', () => {
  const w = new World(t0);
  const u = w.addUser();
  admin.grant(w, u, 20, 2 * DAY); // expires before the welcome 10 (30 days)
  assert.equal(admin.adjust(w, u, -25), 'ok');
  assert.deepEqual(money(w).grants, [{ key: 'welcome', remaining: 5 }], 'the soonest expiry went first, then the welcome');
  assert.equal(admin.adjust(w, u, -6), 'insufficient_credits');
  assert.equal(money(w).available, 5, 'a refused adjustment moves nothing');
  assert.equal(admin.adjust(w, u, 3), 'ok');
  assert.deepEqual(money(w).grants, [{ key: 'adjustment:paid:never', remaining: 3 }, { key: 'welcome', remaining: 5 }]);
});

test('void: what remains goes; credits of the grant held by a job expire when they come back', () => {
  const w = new World(t0);
  const u = w.addUser();
  assert.equal(w.generate(u, 'standard-v1', 3, 'k'), 'ok'); // 5 held from the welcome 10
  assert.equal(admin.voidGrant(w, u, 'welcome'), 'ok');
  assert.deepEqual(money(w), { available: 0, held: 5, debt: 0, grants: [] });
  assert.equal(w.fail(u, 0), true);
  assert.deepEqual(money(w), { available: 0, held: 0, debt: 0, grants: [] }, 'the released 5 expired at once');
  assert.equal(admin.voidGrant(w, u, 'promotion'), 'invalid_request', 'no promotion to void');
});

test('refund a job: part then the rest, never more than captured, most durable pieces first', () => {
  const w = new World(t0);
  const u = w.addUser();
  admin.adjust(w, u, 2); // paid, never expires: drawn last
  w.generate(u, 'standard-v1', 10, 'k'); // 12: welcome 10 + paid 2
  w.claimAll();
  assert.equal(w.complete(u, 0, 100), true);
  assert.equal(admin.refundJob(w, u, 0, 13), 'invalid_request');
  assert.equal(admin.refundJob(w, u, 0, 3), 'ok');
  assert.deepEqual(money(w).grants, [
    { key: 'adjustment:paid:never', remaining: 2 },
    { key: `adjustment:promotional:${new Date(t0 + 30 * DAY).toISOString()}`, remaining: 1 },
  ], 'the paid 2 first, then 1 of the welcome (same category and expiry)');
  assert.equal(admin.refundJob(w, u, 0, null), 'ok');
  assert.equal(money(w).available, 12);
  assert.equal(admin.refundJob(w, u, 0, null), 'nothing_to_refund');
});

test('refund: credits of a grant expired since are not refundable; an unfinished job has nothing to refund', () => {
  const w = new World(t0);
  const u = w.addUser();
  w.generate(u, 'standard-v1', 1, 'a'); // 3 from the welcome
  assert.equal(admin.refundJob(w, u, 0, null), 'nothing_to_refund', 'queued: nothing captured');
  w.claimAll();
  w.complete(u, 0, 100);
  w.advance(31 * DAY);
  assert.equal(admin.refundJob(w, u, 0, null), 'nothing_to_refund', 'the welcome grant expired');
});

test('suspension refuses generate (before a replay); the daily cap counts the UTC day and resets', () => {
  const w = new World(t0 + 20 * HOUR);
  const u = w.addUser();
  assert.equal(w.generate(u, 'standard-v1', 1, 'a'), 'ok');
  admin.suspend(w, u, true);
  assert.equal(w.generate(u, 'standard-v1', 1, 'a'), 'account_suspended');
  admin.suspend(w, u, false);
  admin.setCap(w, u, 5);
  assert.equal(w.generate(u, 'standard-v1', 1, 'b'), 'daily_spend_cap_reached', '3 + 3 > 5');
  assert.equal(money(w).held, 3, 'a refused generate changes nothing');
  w.fail(u, 0);
  assert.equal(w.generate(u, 'standard-v1', 1, 'b'), 'ok', 'a failed job counts 0');
  w.advance(5 * HOUR);
  assert.equal(w.generate(u, 'standard-v1', 1, 'c'), 'ok', 'a new UTC day');
  assert.equal(w.generate(u, 'standard-v1', 2, 'd'), 'daily_spend_cap_reached', '3 + 4 > 5 (4 is available)');
});
