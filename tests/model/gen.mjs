// fast-check arbitraries for random histories ("worlds"): a few users, a few payments with their
// provider events (permuted, duplicated, some delivered concurrently), mixed with generates,
// pipeline outcomes, claims, clock moves and sweeps. Everything is plain data so a failing history
// prints, shrinks and replays as it is.
import fc from 'fast-check';
import { MODELS } from './model.mjs';
import { subscriptionArb, subPayments } from './subscriptions.mjs';

const S = 1000;
// Clock moves: whole seconds + 1 ms, so no deadline (30 days, 6 h, 300 s, all whole seconds from a
// moment of the world) is ever hit exactly: "past expiry" never depends on < versus <=.
const advance = fc.constantFrom(61 * S, 7 * 60 * S, 3 * 3600 * S, 7 * 3600 * S, 2 * 86400 * S, 31 * 86400 * S).map((ms) => ({ t: 'advance', ms: ms + 1 }));

const stripeEvent = fc.oneof(
  { weight: 4, arbitrary: fc.record({ k: fc.constant('paid'), async: fc.boolean() }) },
  { weight: 1, arbitrary: fc.constant({ k: 'failed' }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('refund'), pct: fc.oneof(fc.integer({ min: 1, max: 99 }), fc.constant(100)) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('dispute'), d: fc.integer({ min: 0, max: 1 }), e: fc.constantFrom('created', 'withdrawn', 'reinstated', 'closed'), won: fc.boolean(), prevented: fc.nat(3).map((n) => n === 0) }) },
);
const appleEvent = fc.oneof(
  { weight: 3, arbitrary: fc.constant({ k: 'tx' }) },
  { weight: 3, arbitrary: fc.record({ k: fc.constant('REFUND'), n: fc.integer({ min: 0, max: 1 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('REFUND_REVERSED'), n: fc.integer({ min: 0, max: 1 }) }) },
  // A prorated REFUND (revocationType REFUND_PRORATED): a share of the price in milliunits.
  { weight: 1, arbitrary: fc.record({ k: fc.constant('REFUND_PRORATED'), milli: fc.constantFrom(15, 40000, 67932) }) },
  { weight: 1, arbitrary: fc.constant({ k: 'REVOKE' }) },
);

const payment = fc.oneof(
  { weight: 3, arbitrary: fc.record({
    provider: fc.constant('stripe'), user: fc.nat(2), pkg: fc.constantFrom('starter', 'creator'),
    // Each dispute: an inquiry (warning_*) or a chargeback, and its amount as a share of P.
    disputes: fc.tuple(fc.record({ inquiry: fc.boolean(), pct: fc.constantFrom(100, 100, 40, 7) }), fc.record({ inquiry: fc.boolean(), pct: fc.constantFrom(100, 60) })),
    events: fc.array(stripeEvent, { minLength: 1, maxLength: 7 }),
  }) },
  { weight: 1, arbitrary: fc.record({
    provider: fc.constant('app_store'), user: fc.nat(2), pkg: fc.constantFrom('starter', 'creator'),
    events: fc.array(appleEvent, { minLength: 1, maxLength: 5 }),
  }) },
  // A checkout paid in full by a 100% coupon (Stripe's `no_payment_required`, P = 0): completed,
  // maybe twice; no charge, so nothing to refund or dispute.
  { weight: 1, arbitrary: fc.record({
    provider: fc.constant('stripe'), user: fc.nat(2), pkg: fc.constantFrom('starter', 'creator'), free: fc.constant(true),
    disputes: fc.constant([{ inquiry: false, pct: 100 }, { inquiry: false, pct: 100 }]),
    events: fc.array(fc.constant({ k: 'paid', async: false }), { minLength: 1, maxLength: 2 }),
  }) },
);

const gen1 = fc.record({ u: fc.nat(2), model: fc.constantFrom(...Object.keys(MODELS)), minutes: fc.integer({ min: 1, max: 12 }) })
  .map((g) => ({ ...g, minutes: Math.min(g.minutes, MODELS[g.model].max) }));

// Operation skeletons; `ev` picks one of its payment's events by index, `dup` delivers it again
// (a provider retry), `par` delivers two or three of them at the same time.
// `cancel` is the user's cancel_job, once, twice in a row or twice at the same time; `finish` is the
// pipeline's finish_canceled_job with S a share of the hold; `close` closes the account (rare), by
// delete_account() or by deleting the auth.users row.
// Admin actions (issue 13, admin.mjs), weight 0 unless `admin`: fc.oneof draws over the total
// weight, so with `admin: false` a seed generates exactly the histories it did before they existed.
const adminOps = (on) => [
  { weight: on ? 3 : 0, arbitrary: fc.record({ t: fc.constant('adminGrant'), u: fc.nat(2), amount: fc.constantFrom(1, 7, 40), ttl: fc.constantFrom(null, 3600e3 + 1, 40 * 86400e3 + 1) }) },
  { weight: on ? 3 : 0, arbitrary: fc.record({ t: fc.constant('adminAdjust'), u: fc.nat(2), amount: fc.constantFrom(-30, -6, -1, 2, 25) }) },
  { weight: on ? 2 : 0, arbitrary: fc.record({ t: fc.constant('adminVoid'), u: fc.nat(2), which: fc.constantFrom('welcome', 'promotion') }) },
  // `settle`: the pipeline claims and completes that job (full cost) just before, so refunds meet
  // captured credits often enough.
  { weight: on ? 4 : 0, arbitrary: fc.record({ t: fc.constant('adminRefund'), u: fc.nat(2), n: fc.nat(1), amount: fc.constantFrom(null, null, 1, 3, 60), settle: fc.boolean() }) },
  { weight: on ? 1 : 0, arbitrary: fc.record({ t: fc.constant('adminSuspend'), u: fc.nat(2), on: fc.boolean() }) },
  { weight: on ? 2 : 0, arbitrary: fc.record({ t: fc.constant('adminCap'), u: fc.nat(2), cap: fc.constantFrom(null, 0, 5, 12, 40) }) },
];

const opsOf = (raceClose, admin = false) => fc.oneof(
  { weight: 16, arbitrary: fc.record({ t: fc.constant('ev'), pay: fc.nat(3), i: fc.nat(7) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('par'), pay: fc.nat(3), is: fc.array(fc.nat(7), { minLength: 2, maxLength: 3 }) }) },
  { weight: 12, arbitrary: gen1.chain((g) => fc.record({ t: fc.constant('gen'), dup: fc.constantFrom(null, null, null, 'seq', 'par') }).map((o) => ({ ...o, ...g }))) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('pargen'), gens: fc.array(gen1, { minLength: 2, maxLength: 3 }) }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant('complete'), u: fc.nat(2), n: fc.nat(3), pct: fc.constantFrom(0, 30, 100, 100) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('fail'), u: fc.nat(2), n: fc.nat(3) }) },
  // `fin`: the pipeline answers the cancel right away (finish_canceled_job with that spend percent).
  { weight: 5, arbitrary: fc.record({ t: fc.constant('cancel'), u: fc.nat(2), n: fc.nat(3), dup: fc.constantFrom(null, null, 'seq', 'par'), fin: fc.constantFrom(null, null, 0, 50, 100) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('finish'), u: fc.nat(2), n: fc.nat(3), pct: fc.constantFrom(0, 0, 50, 100) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('close'), u: fc.nat(2), how: fc.constantFrom('rpc', 'auth') }) },
  // At the same time: a cancel and the pipeline's complete_job of that job, or closing the account
  // and one of its generates (rare).
  { weight: 2, arbitrary: fc.record({ t: fc.constant('raceCancel'), u: fc.nat(2), n: fc.nat(3), pct: fc.constantFrom(0, 50, 100) }) },
  { weight: raceClose ? 1 : 0, arbitrary: gen1.map((g) => ({ t: 'raceClose', ...g })) },
  // `invite`: user u redeems the invite code of another user (`by` 0 or 1: the next or the one
  // after; 2: its own code) (invites.mjs).
  { weight: 4, arbitrary: fc.record({ t: fc.constant('invite'), u: fc.nat(2), by: fc.nat(2) }) },
  { weight: 8, arbitrary: fc.constant({ t: 'claim' }) },
  { weight: 6, arbitrary: advance },
  { weight: 2, arbitrary: fc.constant({ t: 'sweepHolds' }) },
  { weight: 2, arbitrary: fc.constant({ t: 'sweepCredits' }) },
  ...adminOps(admin),
);

// `payments: 0` gives histories of credits and jobs only (to look at one half at a time).
// `raceClose: false` leaves out closing an account at the same time as one of its generates.
// `admin: true` mixes in the admin actions and spend caps (tests/model/run.mjs turns them on).
// `subs`: up to that many subscriptions (their periods and upgrades become payments after the packs).
export const world = ({ payments = 3, ops = 30, raceClose = true, admin = false, subs = 0 } = {}) => fc.record({
  users: fc.integer({ min: 1, max: 3 }),
  payments: fc.array(payment, { maxLength: payments, size: 'medium' }),
  ...(subs > 0 ? { subs: fc.array(subscriptionArb(stripeEvent, appleEvent), { maxLength: subs }) } : {}),
  ops: fc.array(opsOf(raceClose, admin), { minLength: 1, maxLength: ops, size: 'medium' }),
  // Redemptions at the start of the world, before any payment event (invites.mjs): so the
  // invitee's first purchase often comes after its redemption and rewards its inviter.
  invites: fc.array(fc.record({ u: fc.nat(2), by: fc.nat(1) }), { maxLength: 2 }),
});

// A generated world as a concrete history: the op skeletons resolved against the world's users and
// payments (indexes taken modulo what exists; ops naming nothing are dropped), and every payment's
// events delivered at least once (the ones no op named are appended, in their generated order).
export function resolve(w) {
  const users = w.users;
  const payments = [...w.payments, ...subPayments(w.subs ?? [])].map((p, i) => ({ ...p, user: p.user % users, index: i }));
  const ops = (w.invites ?? []).map((x) => ({ t: 'invite', u: x.u % users, by: (x.u + 1 + x.by) % users }));
  const delivered = payments.map(() => new Set());
  const evOf = (pay, i) => { const p = payments[pay]; const j = i % p.events.length; delivered[pay].add(j); return p.events[j]; };
  for (const o of w.ops) {
    switch (o.t) {
      case 'ev':
        if (payments.length) { const pay = o.pay % payments.length; ops.push({ t: 'ev', pay, ev: evOf(pay, o.i) }); }
        break;
      case 'par':
        if (payments.length) { const pay = o.pay % payments.length; ops.push({ t: 'par', pay, evs: o.is.map((i) => evOf(pay, i)) }); }
        break;
      case 'gen': ops.push({ ...o, u: o.u % users }); break;
      case 'pargen': {
        const seen = new Set();
        const gens = o.gens.map((g) => ({ ...g, u: g.u % users })).filter((g) => !seen.has(g.u) && seen.add(g.u));
        ops.push(gens.length > 1 ? { t: 'pargen', gens } : { t: 'gen', dup: null, ...gens[0] });
        break;
      }
      case 'cancel': {
        const { fin, ...c } = o;
        ops.push({ ...c, u: o.u % users });
        if (fin !== null) ops.push({ t: 'finish', u: o.u % users, n: o.n, pct: fin });
        break;
      }
      case 'complete': case 'fail': case 'finish': case 'close': case 'raceCancel': case 'raceClose': ops.push({ ...o, u: o.u % users }); break;
      case 'adminRefund': {
        const { settle, ...r } = o;
        if (settle) ops.push({ t: 'claim' }, { t: 'complete', u: o.u % users, n: o.n, pct: 100 });
        ops.push({ ...r, u: o.u % users });
        break;
      }
      case 'adminGrant': case 'adminAdjust': case 'adminVoid': case 'adminSuspend': case 'adminCap':
        ops.push({ ...o, u: o.u % users }); break;
      case 'invite': ops.push({ ...o, u: o.u % users, by: o.by === 2 ? o.u % users : (o.u + 1 + o.by) % users }); break;
      default: ops.push(o);
    }
  }
  payments.forEach((p, pay) => p.events.forEach((ev, j) => { if (!delivered[pay].has(j)) ops.push({ t: 'ev', pay, ev }); }));
  return { users, payments: payments.map(({ events, ...p }) => p), ops };
}

// Debt repaid, then given back (migrations/README.md, "Give back"): histories the random worlds above
// almost never reach (a give-back of a debt piece after the user repaid it). User 0 pays, spends
// (jobs completed or left leased), its payment is disputed or refunded (debt), then the repayments
// (an admin grant, a second payment, a failed job's released hold, a clock move that expires a
// grant) and the win or reversal come in a random order, then a few random operations.
const premium = fc.integer({ min: 8, max: 30 }).map((minutes) => ({ t: 'gen', u: 0, model: 'premium-v1', minutes, dup: null }));
const reversible = fc.oneof(
  fc.record({ pct: fc.constantFrom(100, 100, 40) }).map(({ pct }) => ({
    provider: 'stripe', user: 0, pkg: 'starter',
    disputes: [{ inquiry: false, pct }, { inquiry: false, pct: 100 }],
    events: [{ k: 'paid', async: false }, { k: 'dispute', d: 0, e: 'created', won: false, prevented: false },
      { k: 'dispute', d: 0, e: 'closed', won: true, prevented: false }],
  })),
  fc.constant({ provider: 'app_store', user: 0, pkg: 'starter', events: [{ k: 'tx' }, { k: 'REFUND', n: 0 }, { k: 'REFUND_REVERSED', n: 0 }] }),
);
const second = fc.oneof(
  fc.constant({ provider: 'stripe', user: 0, pkg: 'starter', disputes: [{ inquiry: false, pct: 100 }, { inquiry: false, pct: 100 }], events: [{ k: 'paid', async: false }] }),
  fc.constant({ provider: 'app_store', user: 0, pkg: 'starter', events: [{ k: 'tx' }] }),
);
const repayer = fc.oneof(
  fc.record({ t: fc.constant('adminGrant'), u: fc.constant(0), amount: fc.constantFrom(7, 40, 120), ttl: fc.constantFrom(null, 3600e3 + 1, 40 * 86400e3 + 1) }),
  fc.constant({ t: 'ev', pay: 1, i: 0 }),
  fc.record({ t: fc.constant('fail'), u: fc.constant(0), n: fc.nat(2) }),
  advance,
);
export const debtWorld = ({ admin = true } = {}) => fc.record({
  users: fc.integer({ min: 1, max: 2 }),
  first: reversible,
  second,
  spend: fc.array(fc.record({ gen: premium, done: fc.boolean() }), { minLength: 1, maxLength: 3 }),
  repay: fc.array(repayer, { minLength: 1, maxLength: 4 }),
  at: fc.nat(4),
  tail: fc.array(opsOf(false, admin), { maxLength: 4 }),
}).map(({ users, first, second: pay1, spend, repay, at, tail }) => {
  const jobs = spend.flatMap(({ gen }) => [gen]);
  const done = spend.flatMap(({ done: d }, n) => (d ? [{ t: 'complete', u: 0, n, pct: 100 }] : []));
  const win = { t: 'ev', pay: 0, i: 2 };
  const later = [...repay.slice(0, at % (repay.length + 1)), win, ...repay.slice(at % (repay.length + 1))];
  const ops = [{ t: 'ev', pay: 0, i: 0 }, ...jobs, { t: 'claim' }, ...done, { t: 'ev', pay: 0, i: 1 }, ...later, ...tail];
  return { users, payments: [first, pay1], ops, invites: [] };
});
