// Subscriptions in the money model, written from migrations/README.md ("The subscription rules"),
// never from the SQL: each paid period (or mid-period upgrade) is a payment like a pack's (the
// payment rule table decides what it keeps), whose grant is `paid` and expires at the period end;
// rollover between consecutive periods of one subscription happens once, when the second of the
// two payments is granted. Generator pieces (subscription histories) and the runner's RPC calls
// for them are here too, so model.mjs, gen.mjs and world.mjs only carry small hooks.
import fc from 'fast-check';
import { World, DAY, HOUR, newFacts } from './model.mjs';
import { afterPayment } from './invites.mjs';

// The seeded plans (supabase/seed.sql): credits per period, rollover_max, price in cents.
export const PLANS = {
  'basic-monthly': { credits: 200, rollover: 0, price: 999 },
  'pro-monthly': { credits: 1000, rollover: 500, price: 2999 },
  // Only as the plan a Stripe billing period reset moves to (subPayments): its period is a year.
  'pro-yearly': { credits: 12000, rollover: 6000, price: 29999, length: 365 * DAY },
};
export const PERIOD = 30 * DAY;
const iso = (ms) => new Date(ms).toISOString();

// Period k of a world's subscriptions: [start + k x 30 days, start + (k + 1) x 30 days).
export const periodOf = (start, k) => ({ start: start + k * PERIOD, end: start + (k + 1) * PERIOD });
// A subscription payment's period: its grid period, or for an App Store upgrade or a Stripe
// billing period reset (`replaces`) a new period of its plan's length starting `at` (default
// halfway) into period k (both start a new billing period at once).
// A Stripe plan change (`fromPlan`) is invoiced for [the change, the period's end): `at` into it.
export const spanOf = (start, p) => {
  const { start: s, end } = periodOf(start, p.period);
  const at = p.at ?? PERIOD / 2;
  if (p.replaces) return { start: s + at, end: s + at + (PLANS[p.plan].length ?? PERIOD) };
  return p.fromPlan && p.at !== undefined ? { start: s + p.at, end } : { start: s, end };
};
// Where in a period an App Store upgrade is generated: never within a day of either end (there it
// would pair with a neighbour for rollover: the README's known limitation, not generated).
export const UPGRADE_AT = [2 * DAY, PERIOD / 2, 27 * DAY + 7 * HOUR];

// A subscription payment's credits C and amount P: a period pays its plan; a plan change from q to
// p pays the difference (nothing for a downgrade) and grants p.credits - q.credits when positive,
// fixed when it is granted (World.subGrant: never above the period's high-water mark).
export function subTerms(p) {
  const plan = PLANS[p.plan];
  if (p.fromPlan) return { C: Math.max(0, plan.credits - PLANS[p.fromPlan].credits), P: Math.max(0, plan.price - PLANS[p.fromPlan].price) };
  return { C: plan.credits, P: plan.price };
}

// --- the model ----------------------------------------------------------------------------------

World.prototype.addSubPayment = function addSubPayment(p, start) {
  const { C, P } = subTerms(p);
  const { start: begins, end } = spanOf(start, p);
  this.payments.push({
    user: p.user, provider: p.provider, sub: `${p.provider}:${p.sub}`, period: p.period, plan: p.plan, begins, replaces: Boolean(p.replaces), credited: Boolean(p.credited),
    upgrade: Boolean(p.fromPlan), fromPlan: p.fromPlan ?? null, end, C, P, facts: newFacts(p.provider), grant: null, pieces: [], seen: [], rolledFrom: false, rolledIntoDone: false, rolledInto: null,
  });
  return this.payments.length - 1;
};

// "A paid period is a payment": its one grant, paid, expiring at the period end. Every payment of
// a period is cut to the room its highest plan leaves (README, "upgrade" rows): its size (a plan
// change p.credits - q.credits, a period its plan's credits) at most the highest plan reached by
// the period's recorded payments (plans and from-plans, this one's included) less what the others
// grant, so the period's total is its highest plan in any order of the invoices.
World.prototype.subGrant = function subGrant(u, pi) {
  const p = this.payments[pi];
  const reach = (q) => Math.max(PLANS[q.plan].credits, q.fromPlan ? PLANS[q.fromPlan].credits : 0);
  const others = this.payments.filter((q, qi) => qi !== pi && q.sub === p.sub && q.end === p.end && q.grant !== null);
  const top = Math.max(reach(p), ...others.map(reach));
  const size = p.upgrade ? PLANS[p.plan].credits - PLANS[p.fromPlan].credits : PLANS[p.plan].credits;
  p.C = Math.max(0, Math.min(size, top - others.reduce((t, q) => t + q.C, 0)));
  return this.addGrant(u, { key: `pay:${pi}`, kind: 'paid', expiresAt: p.end, amount: p.C });
};

// The grants of period A: its period grant, the upgrades of the same period, the rollover into it.
World.prototype.periodGrants = function periodGrants(u, a) {
  const seqs = new Set(this.payments.filter((q) => q.sub === a.sub && q.end === a.end && q.grant !== null).map((q) => q.grant));
  if (a.rolledInto !== null) seqs.add(a.rolledInto);
  return u.grants.filter((g) => seqs.has(g.seq)).sort((x, y) => x.seq - y.seq);
};

// Rollover from period payment `ai` into the next one `bi` (both granted), once per pair:
// k = min(B's plan rollover_max, unspent(A)); the unexpired part of k is moved out of A's grants
// (draw-down order: same expiry and category, so oldest first), then k is its own grant.
World.prototype.rollOver = function rollOver(ai, bi) {
  const a = this.payments[ai], b = this.payments[bi];
  if (a.rolledFrom || b.rolledIntoDone) return;
  const u = this.users[a.user];
  this.expire(u);
  const grants = this.periodGrants(u, a);
  const live = grants.reduce((s, g) => s + (this.now < g.expiresAt ? g.remaining : 0), 0);
  const unspent = live + grants.reduce((s, g) => s + (g.expired ?? 0), 0);
  const k = Math.min(PLANS[b.plan].rollover, unspent);
  let move = Math.min(k, live);
  for (const g of grants) {
    if (move === 0) break;
    if (this.now >= g.expiresAt) continue;
    const x = Math.min(move, g.remaining);
    g.remaining -= x; move -= x;
  }
  a.rolledFrom = true; b.rolledIntoDone = true;
  if (k > 0) b.rolledInto = this.addGrant(u, { key: `adjustment:paid:${iso(b.end)}`, kind: 'paid', expiresAt: b.end, amount: k }).seq;
};

// README, "replaced" row: an App Store period that starts after an earlier period of the same
// subscription starts and more than a day before it ends replaces it (an upgrade: Apple refunds the
// unused part without a REFUND notification); a Stripe period whose invoice credited the unused
// time of the period it starts inside (`credited`: a billing period reset) replaces every payment of
// that period, its plan changes too. The replaced payment gets the refund fact
// R = ceil(P x (its end - the new start) / (its length)), the largest seen counting; applied when
// the second of the two is granted (either may be), before the granted one's own rule.
World.prototype.subReplacements = function subReplacements(pi) {
  const p = this.payments[pi];
  const inside = (a, b) => a.begins < b.begins && b.begins < a.end - DAY; // b starts inside a
  const replaces = (by, r) => !by.upgrade && (by.provider === 'app_store' ? !r.upgrade : by.credited);
  const pairs = [];
  this.payments.forEach((q, qi) => {
    if (qi === pi || q.sub !== p.sub || q.grant === null) return;
    if (inside(q, p) && replaces(p, q)) pairs.push([qi, p]);
    if (inside(p, q) && replaces(q, p)) pairs.push([pi, q]);
  });
  for (const [ri, by] of pairs) {
    const r = this.payments[ri];
    if (r.P === 0) continue;
    // ceil(P x unused / length) in integers (milliseconds), exact as the SQL's numeric.
    const unused = r.P * (r.end - by.begins), length = r.end - r.begins;
    const R = Math.floor((unused + length - 1) / length);
    // App Store: Apple's silent prorated refund, merged as a partial refund (the largest counts).
    // Stripe: the reset's credit, apart from refunds (they add up; model.mjs outcome).
    if (r.provider === 'app_store') r.facts.R = Math.min(r.P, Math.max(r.facts.R, R));
    else r.facts.cut = Math.max(r.facts.cut, R);
    this.settlePayment(ri);
    // The cut can change the replaced purchase's status (refunded once the refunds and the cut
    // reach P): the inviter's reward follows it, as after any event of that payment.
    if (!(r.sub && r.C === 0)) afterPayment(this, ri);
  }
};

// After a period payment is granted: the rollovers with the period before and the one after. An
// App Store upgrade's period (`replaces`) starts halfway through a grid period here, so it is
// adjacent to none of the grid's (one starting within a day after a renewal would be: the README's
// known limitation, not generated).
World.prototype.subRollovers = function subRollovers(pi) {
  const p = this.payments[pi];
  if (p.upgrade || p.replaces) return;
  const adjacent = (k) => this.payments.findIndex((q) => q.sub === p.sub && !q.upgrade && !q.replaces && q.period === k && q.grant !== null);
  const before = adjacent(p.period - 1);
  if (before >= 0) this.rollOver(before, pi);
  const after = adjacent(p.period + 1);
  if (after >= 0) this.rollOver(pi, after);
};

// --- the generator ------------------------------------------------------------------------------

// One subscription: its provider, user, and up to three periods, each on a plan, with the events
// of its payment and, for a Basic period, maybe an upgrade to Pro within it (its own payment).
export const subscriptionArb = (stripeEvent, appleEvent) => fc.oneof(
  { weight: 2, arbitrary: fc.record({
    provider: fc.constant('stripe'), user: fc.nat(2),
    periods: fc.array(fc.record({
      plan: fc.constantFrom('basic-monthly', 'pro-monthly', 'pro-monthly'),
      events: fc.array(stripeEvent, { minLength: 1, maxLength: 5 }),
      disputes: fc.tuple(fc.record({ inquiry: fc.boolean(), pct: fc.constantFrom(100, 40) }), fc.record({ inquiry: fc.boolean(), pct: fc.constantFrom(100, 60) })),
      upgrade: fc.option(fc.array(stripeEvent, { minLength: 1, maxLength: 3 }), { freq: 3 }),
      // A change to the yearly plan `at` into the period (Stripe resets the billing period),
      // with or without the credit for the unused time (proration_behavior none).
      reset: fc.option(fc.record({ events: fc.array(stripeEvent, { minLength: 1, maxLength: 3 }), credited: fc.boolean(), at: fc.constantFrom(...UPGRADE_AT) }), { freq: 4 }),
    }), { minLength: 1, maxLength: 3 }),
  }) },
  { weight: 1, arbitrary: fc.record({
    provider: fc.constant('app_store'), user: fc.nat(2),
    periods: fc.array(fc.record({
      plan: fc.constantFrom('basic-monthly', 'pro-monthly', 'pro-monthly'),
      events: fc.array(appleEvent, { minLength: 1, maxLength: 4 }),
      upgrade: fc.option(fc.array(appleEvent, { minLength: 1, maxLength: 2 }), { freq: 3 }),
      upgradeAt: fc.constantFrom(...UPGRADE_AT),
    }), { minLength: 1, maxLength: 3 }),
  }) },
);

// Flattens subscriptions into payments (appended to the world's packs): one per period, one per
// upgrade. Each carries {sub, period, plan, fromPlan? | replaces?} and its events. A Stripe upgrade
// is an invoice of the same period (fromPlan); an App Store upgrade is a new Pro period starting
// within the Basic one (replaces), and a Stripe billing period reset a new yearly period starting
// within the period (replaces, credited?); after either the grid's later periods do not happen
// (the renewal date moved).
export function subPayments(subs) {
  const out = [];
  subs.forEach((s, si) => {
    for (const [k, per] of s.periods.entries()) {
      out.push({ provider: s.provider, user: s.user, sub: si, period: k, plan: per.plan, events: per.events, disputes: per.disputes });
      if (per.reset) {
        if (per.upgrade && per.plan === 'basic-monthly') {
          // A day in, before any reset: the reset cuts it by its own span's unused fraction.
          out.push({ provider: s.provider, user: s.user, sub: si, period: k, plan: 'pro-monthly', fromPlan: 'basic-monthly', at: DAY, events: per.upgrade, disputes: per.disputes });
        }
        out.push({ provider: s.provider, user: s.user, sub: si, period: k, plan: 'pro-yearly', replaces: true, credited: per.reset.credited, at: per.reset.at, events: per.reset.events, disputes: per.disputes });
        break;
      }
      if (!per.upgrade || per.plan !== 'basic-monthly') continue;
      if (s.provider === 'app_store') {
        out.push({ provider: s.provider, user: s.user, sub: si, period: k, plan: 'pro-monthly', replaces: true, at: per.upgradeAt, events: per.upgrade, disputes: per.disputes });
        break;
      }
      out.push({ provider: s.provider, user: s.user, sub: si, period: k, plan: 'pro-monthly', fromPlan: 'basic-monthly', events: per.upgrade, disputes: per.disputes });
    }
  });
  return out;
}

// --- the runner ---------------------------------------------------------------------------------

const lit = (v) => (v === null || v === undefined ? 'null' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);

// The RPC for a subscription payment's paid / failed event; null for the other events, which go
// through the pack RPCs by the same payment id.
export function subCall(tag, start, p, ev, uid) {
  const subId = `${p.provider === 'stripe' ? 'sub' : 'otx'}_${tag}_${p.sub}`;
  const { start: ps, end: pe } = spanOf(start, p);
  switch (ev.type) {
    case 'checkout.session.completed': case 'checkout.session.async_payment_succeeded': case 'transaction':
      return `public.fulfill_subscription_payment(${lit(p.provider)}, ${lit(p.payId)}, ${lit(ev.id)}, ${lit(uid)}, ${lit(subId)}, ${lit(p.plan)}, ${lit(iso(ps))}, ${lit(iso(pe))}, ${p.P}, 'usd', ${lit(p.fromPlan ?? null)}, ${lit(p.provider === 'stripe' ? 'invoice.paid' : 'DID_RENEW')}${p.credited ? ', p_replaces_unused => true' : ''})`;
    case 'checkout.session.async_payment_failed':
      // invoice.payment_failed: the subscription is past_due; no money moves.
      return `public.record_subscription_state(${lit(p.provider)}, ${lit(subId)}, ${lit(ev.id)}, ${lit(iso(ps))}, ${lit(uid)}, ${lit(p.plan)}, 'past_due', null, null, false, null, 'invoice.payment_failed')`;
    default: return null;
  }
}
