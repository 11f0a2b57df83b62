// The reference model of the money rules, written from migrations/README.md ("Money rules", "The
// payment rule table", "Money mechanics" with "Cancellation" and "Closed accounts", "Closing an
// account", "Clock") and never from the SQL. Pure JavaScript, no I/O:
// a World holds users, their grants, holds, jobs and debt, and every payment's provider facts. The
// runner (world.mjs) applies the same history to the model and to the database and compares.
//
// Times are milliseconds since the epoch; the world's clock only moves forward. A grant is worth
// nothing from its expiry on, so the model compares *effective* remaining (expired = 0).

import { spendLimitRefusal } from './admin.mjs';
import { afterPayment, inviteSnapshot } from './invites.mjs';

export const HOUR = 3600e3, DAY = 24 * HOUR;
export const WELCOME = { credits: 10, ttl: 30 * DAY };      // "Welcome grant"
export const HOLD_TTL = 6 * HOUR;                          // "holds after 6 hours"
export const LEASE = 300e3;                                // claim_next_jobs' default visibility timeout
export const MAX_ATTEMPTS = 3;

// The seeded catalog (migrations 012): credits C = credits + bonus, price P in cents.
export const PACKAGES = {
  starter: { credits: 100, price: 499 },
  creator: { credits: 550, price: 1999 },
};
// Models: price = cost_per_generation + cost_per_minute * minutes.
export const MODELS = {
  'draft-v1': { base: 1, perMinute: 0, min: 1, max: 3 },
  'standard-v1': { base: 2, perMinute: 1, min: 1, max: 10 },
  'premium-v1': { base: 5, perMinute: 3, min: 1, max: 30 },
};
export const price = (model, minutes) => MODELS[model].base + MODELS[model].perMinute * minutes;

// --- the payment rule table ----------------------------------------------------------------------

const OPEN = new Set(['warning_needs_response', 'warning_under_review', 'needs_response', 'under_review']);
// Closed statuses that take nothing: won, warning_closed and prevented (stopped before it became a
// chargeback).
const CLOSED_KEPT = new Set(['won', 'warning_closed', 'prevented']);
// Rank of a dispute status: open < won/warning_closed/prevented < lost ("if both a won/closed-warning
// and a lost were seen for one dispute, lost counts").
const rank = (s) => {
  if (OPEN.has(s)) return 0;
  if (s === 'lost') return 2;
  if (CLOSED_KEPT.has(s)) return 1;
  throw new Error(`the rule table does not rank dispute status ${s}`);
};
export const disputeStatus = (type, status) => (type === 'charge.dispute.funds_reinstated' ? 'won' : status);

export function newFacts(provider) {
  return { provider, paid: false, failed: false, R: 0, cut: 0, refundedAny: false, disputes: {}, refunds: [], reversals: [], prorated: [], revoked: false };
}

// Adds one event's facts (order- and repetition-independent merges). `ev` is the event as the
// provider sends it: {type, ...} with the payment's P known by the payment.
export function addFacts(f, ev, P) {
  switch (ev.type) {
    case 'checkout.session.completed':
    case 'checkout.session.async_payment_succeeded':
    case 'transaction':
      f.paid = true; break;
    case 'checkout.session.async_payment_failed':
      f.failed = true; break;
    case 'charge.refunded':
      f.R = Math.min(P, Math.max(f.R, ev.amountRefunded));
      if (ev.amountRefunded > 0) f.refundedAny = true;
      break;
    case 'REFUND': if (!f.refunds.includes(ev.id)) f.refunds.push(ev.id); break;
    // App Store REFUND_PRORATED: a share of the price, counted per event id (the largest share).
    case 'REFUND_PRORATED': if (!f.prorated.some((x) => x.id === ev.id)) f.prorated.push({ id: ev.id, amount: ev.amountRefunded }); break;
    case 'REFUND_REVERSED': if (!f.reversals.includes(ev.id)) f.reversals.push(ev.id); break;
    case 'REVOKE': f.revoked = true; break;
    default:
      if (ev.type.startsWith('charge.dispute.')) {
        const s = disputeStatus(ev.type, ev.status);
        // Per dispute id: the highest-ranked status and the largest amount seen.
        const d = f.disputes[ev.disputeId] ?? { status: s, amount: ev.amount };
        if (rank(s) > rank(d.status)) d.status = s;
        d.amount = Math.max(d.amount, ev.amount);
        f.disputes[ev.disputeId] = d;
      } else throw new Error(`unknown event type ${ev.type}`);
  }
}

const standing = (d) => OPEN.has(d.status) || d.status === 'lost';
const takenFor = (C, P, reversed) => (P === 0 ? (reversed > 0 ? C : 0) : Math.ceil((C * reversed) / P));

// What the user keeps and the purchase status, for a payment's provider state.
export function outcome(f, C, P) {
  if (!f.paid) return { kept: 0, status: f.failed ? 'failed' : 'pending' };
  if (f.provider === 'app_store') {
    if (f.revoked) return { kept: 0, status: 'disputed' };
    // A REFUND_REVERSED cancels a prorated refund first (its share comes back), then a full one.
    if (f.refunds.length > Math.max(0, f.reversals.length - f.prorated.length)) return { kept: 0, status: 'refunded' };
    const share = f.prorated.length > f.reversals.length ? Math.max(...f.prorated.map((x) => x.amount)) : 0;
    // A subscription period replaced by an upgrade counts as refunded by its unused fraction, R
    // (subscriptions.mjs, World.subReplacements): kept as a partial refund, beside a prorated share
    // (the larger counts).
    const R = Math.min(P, Math.max(f.R, share));
    if (R >= P && P > 0) return { kept: 0, status: 'refunded' };
    return { kept: C - takenFor(C, P, R), status: 'succeeded' };
  }
  const stand = Object.values(f.disputes).filter(standing);
  // Nothing charged (a 100% coupon: Stripe's `no_payment_required`): README "With P = 0", anything
  // reversed (a standing dispute, a positive refunded amount) takes all of C, else C is kept. R is
  // capped at P, so a positive refunded amount is read from the event's own amount.
  if (P === 0) {
    const reversed = stand.length > 0 || f.refundedAny;
    return { kept: reversed ? 0 : C, status: stand.length > 0 ? 'disputed' : 'succeeded' };
  }
  // A Stripe billing period reset's credit for the unused time (subscriptions.mjs, `cut`) is money
  // given back apart from any refund: the two add up, at most P.
  const refunded = Math.min(P, f.R + f.cut);
  if (stand.length > 0) {
    const reversed = Math.min(P, refunded + stand.reduce((s, d) => s + d.amount, 0));
    return { kept: C - takenFor(C, P, reversed), status: 'disputed' };
  }
  if (refunded >= P) return { kept: 0, status: 'refunded' };
  return { kept: C - takenFor(C, P, refunded), status: 'succeeded' };
}

// --- money mechanics ------------------------------------------------------------------------------

// Draw-down order: soonest expiry first (never-expiring last); equal expiry promotional first;
// then oldest first. Repayment order is exactly the reverse.
export function drawDown(a, b) {
  const ea = a.expiresAt ?? Infinity, eb = b.expiresAt ?? Infinity;
  if (ea !== eb) return ea - eb;
  if (a.kind !== b.kind) return a.kind === 'promotional' ? -1 : 1;
  return a.seq - b.seq;
}
const repayment = (a, b) => drawDown(b, a);
const expired = (g, now) => g.expiresAt !== null && now >= g.expiresAt;
export const effective = (g, now) => (expired(g, now) ? 0 : g.remaining);

export class World {
  constructor(start) {
    this.now = start;
    this.seq = 0;
    this.users = [];       // {grants: [], debt, jobs: []}
    this.payments = [];    // {user, provider, C, P, facts, grant, pieces, status}
  }

  clone() { return Object.assign(Object.create(World.prototype), structuredClone(this)); }

  // --- users and grants
  addUser() {
    // `repaid`: each piece of debt repaid, {grant, amount}, in time order (a give-back returns them).
    const u = { grants: [], debt: 0, jobs: [], keys: {}, closed: false, signedUpAt: this.now, repaid: [] };
    this.users.push(u);
    this.addGrant(u, { key: 'welcome', kind: 'promotional', expiresAt: this.now + WELCOME.ttl, amount: WELCOME.credits });
    return this.users.length - 1;
  }
  addGrant(u, g) {
    const grant = { ...g, remaining: g.amount, seq: this.seq++ };
    u.grants.push(grant);
    this.repay(u); // "new credits (a purchase, a grant) ... repay debt first"
    return grant;
  }
  // Credits coming back to a grant. A grant never holds more than its amount: "should it [have
  // less room than the credits taken from it], the excess becomes an adjustment grant of the same
  // category and expiry" (one per category and expiry here; compared summed).
  credit(u, g, x) {
    const fits = Math.min(x, g.amount - g.remaining);
    g.remaining += fits;
    if (x > fits) {
      const key = `adjustment:${g.kind}:${g.expiresAt === null ? 'never' : new Date(g.expiresAt).toISOString()}`;
      u.grants.push({ key, kind: g.kind, expiresAt: g.expiresAt, amount: x - fits, remaining: x - fits, seq: this.seq++ });
    }
  }
  available(u) { return u.grants.reduce((s, g) => s + effective(g, this.now), 0); }
  held(u) { return u.jobs.filter((j) => j.hold).reduce((s, j) => s + j.hold.reduce((t, a) => t + a.amount, 0), 0); }
  // `expired` keeps what expired from each grant (a subscription rollover counts it as unspent).
  expire(u) { for (const g of u.grants) if (expired(g, this.now)) { g.expired = (g.expired ?? 0) + g.remaining; g.remaining = 0; } }
  live(u) { return u.grants.filter((g) => !expired(g, this.now) && g.remaining > 0); }
  // Debt repaid from available credits in repayment order (after expiring what is past expiry).
  repay(u) {
    this.expire(u);
    for (const g of this.live(u).sort(repayment)) {
      if (u.debt === 0) break;
      const x = Math.min(u.debt, g.remaining);
      g.remaining -= x; u.debt -= x;
      if (x > 0) u.repaid.push({ grant: g.seq, amount: x });
    }
  }
  // Debt already repaid, given back: "whatever of it the user has repaid meanwhile returns, newest
  // repayment first, to the more durable of the grant that repaid it and the payment's own grant
  // (at equal durability the grant that repaid it)". Durability: never-expiring, then the later
  // expiry; at equal expiry paid before promotional.
  returnRepaid(u, x, own) {
    const lasts = (g) => [g.expiresAt ?? Infinity, g.kind === 'paid' ? 1 : 0];
    const moreDurable = (a, b) => { const [ea, ka] = lasts(a), [eb, kb] = lasts(b); return ea !== eb ? ea > eb : ka > kb; };
    while (x > 0) {
      const r = u.repaid[u.repaid.length - 1];
      const t = Math.min(x, r.amount);
      const repayer = u.grants.find((g) => g.seq === r.grant);
      this.credit(u, moreDurable(own, repayer) ? own : repayer, t);
      r.amount -= t; x -= t;
      if (r.amount === 0) u.repaid.pop();
    }
  }

  // --- holds and jobs ("Holds")
  // Returns 'ok', 'credits_in_debt' or 'insufficient_credits'.
  generate(ui, model, minutes, key) {
    const u = this.users[ui];
    if (u.closed) return 'account_closed'; // app.require_user refuses a closed account first
    if (u.suspended) return 'account_suspended'; // then an admin's suspension (admin.mjs)
    const request = `${model}/${minutes}`;
    if (u.keys[key] !== undefined) return u.keys[key] === request ? 'replayed' : 'idempotency_key_reused';
    const cost = price(model, minutes);
    this.expire(u);
    if (u.debt > 0) return 'credits_in_debt';
    if (this.available(u) < cost) return 'insufficient_credits';
    const capped = spendLimitRefusal(this, u, cost);
    if (capped) return capped;
    const hold = [];
    let rest = cost;
    for (const g of this.live(u).sort(drawDown)) {
      if (rest === 0) break;
      const x = Math.min(rest, g.remaining);
      g.remaining -= x; rest -= x;
      hold.push({ grant: g.seq, amount: x });
    }
    u.keys[key] = request;
    u.jobs.push({ reserved: cost, hold, status: 'QUEUED', attempts: 0, leaseUntil: null, holdExpiresAt: this.now + HOLD_TTL, seq: this.seq++, cancelRequested: false, final: null, createdAt: this.now });
    return 'ok';
  }
  // Settles a job's hold: `cost` captured from the allocations in draw-down order, the rest back to
  // the grants it came from; then expiry and debt repayment.
  settle(u, job, cost) {
    const bySeq = new Map(u.grants.map((g) => [g.seq, g]));
    const allocs = job.hold.map((a) => ({ ...a, g: bySeq.get(a.grant) })).sort((a, b) => drawDown(a.g, b.g));
    let capture = cost;
    job.captured = [];  // per grant, what was captured (an admin's job refund gives it back)
    for (const a of allocs) {
      const c = Math.min(capture, a.amount);
      capture -= c;
      if (c > 0) job.captured.push({ grant: a.grant, amount: c });
      this.credit(u, a.g, a.amount - c);
    }
    job.hold = null;
    job.final = cost;
    this.repay(u);
  }
  // Ends a job with its hold settled at `cost`: CANCELED when its cancel was requested (or it is
  // canceled now), else `status`.
  end(u, j, cost, status) { this.settle(u, j, cost); j.status = j.cancelRequested ? 'CANCELED' : status; }
  job(ui, n) { const u = this.users[ui]; return u && u.jobs[n]; }
  // "Cancellation": a report reaching a cancel-requested job after its lease lapsed is too late;
  // the job ends CANCELED with S = 0 first and the report answers applied = false.
  tooLate(ui, n) {
    const j = this.job(ui, n);
    if (!j || j.status !== 'LEASED' || !j.cancelRequested || this.leased(j)) return false;
    this.end(this.users[ui], j, 0, 'CANCELED');
    return true;
  }
  complete(ui, n, costPercent) {
    if (this.tooLate(ui, n)) return false;
    const j = this.job(ui, n);
    // Only a job the pipeline is working on (claimed: a working state) can succeed; a queued job
    // never claimed, or a finished one, answers applied = false (migrations/README, job model).
    // After a cancel request it ends CANCELED with S = actual cost ("Cancellation").
    if (!j || j.status !== 'LEASED') return false;
    this.end(this.users[ui], j, Math.floor((j.reserved * costPercent) / 100), 'READY');
    return true;
  }
  fail(ui, n) {
    if (this.tooLate(ui, n)) return false;
    const j = this.job(ui, n);
    if (!j || finished(j)) return false;
    this.end(this.users[ui], j, 0, 'FAILED'); // after a cancel request: CANCELED, S = 0
    return true;
  }
  // cancel_job ("Cancellation"): a queued job is canceled at once (S = 0, hold released); a running
  // (claimed) one is only marked cancel-requested; a second cancel, or one of a finished job, moves
  // nothing. Answers the RPC's outcome, or 'account_closed' (app.require_user).
  cancel(ui, n) {
    const u = this.users[ui], j = this.job(ui, n);
    if (u.closed) return 'account_closed';
    if (j.status === 'QUEUED') { j.cancelRequested = true; this.end(u, j, 0, 'CANCELED'); return 'canceled'; }
    if (j.status === 'LEASED' && !j.cancelRequested) { j.cancelRequested = true; return 'cancel_requested'; }
    return 'unchanged';
  }
  // finish_canceled_job(S): the pipeline stopped a cancel-requested job; S captured, the rest
  // released, CANCELED. Anything else answers applied = false.
  finishCanceled(ui, n, spentPercent) {
    if (this.tooLate(ui, n)) return false;
    const j = this.job(ui, n);
    if (!j || j.status !== 'LEASED' || !j.cancelRequested) return false;
    this.end(this.users[ui], j, Math.floor((j.reserved * spentPercent) / 100), 'CANCELED');
    return true;
  }
  // Closing an account: every unfinished job CANCELED with S = 0, running or not (in `order`: the
  // order in which several releases happen is not specified, and it matters as for the sweeps);
  // then no generate, no payment grant. Idempotent. Returns how many jobs it canceled.
  unfinished(ui) { return this.users[ui].jobs.filter((j) => !finished(j)); }
  close(ui, order = null) {
    const u = this.users[ui];
    if (u.closed) return 0;
    const open = this.unfinished(ui);
    for (const i of order ?? open.keys()) { const j = open[i]; j.cancelRequested = true; this.end(u, j, 0, 'CANCELED'); }
    u.closed = true;
    return open.length;
  }
  leased(j) { return j.status === 'LEASED' && j.leaseUntil > this.now; }
  // claim_next_jobs with a limit above the world's job count: every runnable job is claimed
  // (attempts + 1, leased); one abandoned after its last attempt is dead-lettered (hold released).
  // The order in which one sweep releases several holds is not specified, and it matters (each
  // release repays debt in repayment order before the next comes back). So the sweeps take an
  // order: a permutation of the indexes of what they act on (deadLetters(), staleHolds()), and
  // the checker tries them all.
  jobsInOrder() { return this.users.flatMap((u) => u.jobs.map((j) => ({ u, j }))).sort((a, b) => a.j.seq - b.j.seq); }
  // A cancel-requested job whose lease lapsed ends CANCELED with S = 0 in the same pass ("the next
  // claim_next_jobs") and is never claimed again.
  deadLetters() { return this.jobsInOrder().filter(({ j }) => j.status === 'LEASED' && !this.leased(j) && (j.attempts >= MAX_ATTEMPTS || j.cancelRequested)); }
  claimAll(order = null) {
    const dead = this.deadLetters();
    for (const i of order ?? dead.keys()) { const { u, j } = dead[i]; this.end(u, j, 0, 'FAILED'); }
    for (const { j } of this.jobsInOrder()) {
      if (j.status === 'QUEUED' || (j.status === 'LEASED' && !this.leased(j))) {
        j.status = 'LEASED'; j.attempts += 1; j.leaseUntil = this.now + LEASE;
      }
    }
  }
  // expire_stale_holds: holds past their 6 hours whose job is not leased are released, job FAILED.
  staleHolds() { return this.jobsInOrder().filter(({ j }) => j.hold && this.now >= j.holdExpiresAt && !this.leased(j)); }
  expireStaleHolds(order = null) {
    const stale = this.staleHolds();
    for (const i of order ?? stale.keys()) { const { u, j } = stale[i]; this.end(u, j, 0, 'FAILED'); }
  }
  // expire_credits writes expiry rows; effective remaining already leaves expired grants out.
  expireCredits() { for (const u of this.users) this.expire(u); }
  advance(ms) { this.now += ms; }

  // --- payments ("A payment arrives", "Take back", "Give back")
  addPayment(ui, provider, pkg, P) {
    const C = PACKAGES[pkg].credits;
    this.payments.push({ user: ui, provider, pkg, C, P, facts: newFacts(provider), grant: null, pieces: [], seen: [] });
    return this.payments.length - 1;
  }
  deliver(pi, ev) {
    const p = this.payments[pi];
    if (p.seen.includes(ev.id)) return; // once per event id
    p.seen.push(ev.id);
    addFacts(p.facts, ev, p.P);
    const u = this.users[p.user];
    // A payment arriving for a closed account grants nothing and is parked for a refund at the
    // provider: no purchase is fulfilled, and none of its later events moves a balance.
    if (p.facts.paid && p.grant === null && (p.parked || u.closed)) { p.parked = true; return; }
    let granted = false;
    if (p.facts.paid && p.grant === null) {
      // A subscription payment's grant expires at its period end (subscriptions.mjs).
      p.grant = (p.sub ? this.subGrant(u, pi) : this.addGrant(u, { key: `pay:${pi}`, kind: 'paid', expiresAt: null, amount: p.C })).seq;
      granted = true;
    }
    if (p.grant === null) return;
    // An App Store period and the one that replaces it (an upgrade), when the second is granted.
    if (granted && p.sub) this.subReplacements(pi);
    this.settlePayment(pi);
    if (granted && p.sub) this.subRollovers(pi);
    // The inviter's reward follows this payment if it is its user's first (invites.mjs); a
    // subscription payment that grants nothing makes no purchase (subscriptions.mjs).
    if (!(p.sub && p.C === 0)) afterPayment(this, pi);
  }
  // Moves a granted payment's user to what its facts keep (take back or give back the difference).
  settlePayment(pi) {
    const p = this.payments[pi];
    const u = this.users[p.user];
    const gives = p.C - p.pieces.reduce((s, x) => s + x.amount, 0);
    const { kept } = outcome(p.facts, p.C, p.P);
    if (kept < gives) this.takeBack(u, p, gives - kept);
    else if (kept > gives) this.giveBack(u, p, kept - gives);
  }
  takeBack(u, p, x) {
    this.expire(u);
    const own = u.grants.find((g) => g.seq === p.grant);
    const order = [own, ...this.live(u).filter((g) => g !== own).sort(drawDown)];
    for (const g of order) {
      if (x === 0) break;
      const t = Math.min(x, effective(g, this.now));
      if (t === 0) continue;
      g.remaining -= t; x -= t;
      p.pieces.push({ grant: g.seq, amount: t });
    }
    if (x > 0) { u.debt += x; p.pieces.push({ grant: null, amount: x }); }
  }
  giveBack(u, p, y) {
    const own = u.grants.find((g) => g.seq === p.grant);
    while (y > 0) {
      const piece = p.pieces[p.pieces.length - 1];
      const x = Math.min(y, piece.amount);
      if (piece.grant !== null) {
        this.credit(u, u.grants.find((g) => g.seq === piece.grant), x);
      } else {
        const c = Math.min(x, u.debt);
        u.debt -= c;
        this.returnRepaid(u, x - c, own);
      }
      piece.amount -= x; y -= x;
      if (piece.amount === 0) p.pieces.pop();
    }
    this.repay(u);
  }
  status(pi) {
    const p = this.payments[pi];
    // The begin_purchase purchase of a payment parked for refund is never fulfilled: it stays
    // pending, or failed after async_payment_failed (the README does not say; the natural reading
    // of "creates no purchase": the paid fact makes no purchase of it).
    if (p.parked) return p.facts.failed ? 'failed' : 'pending';
    return outcome(p.facts, p.C, p.P).status;
  }

  // The observable state compared with the database.
  snapshot() {
    return {
      users: this.users.map((u) => ({
        available: this.available(u), held: this.held(u), debt: u.debt, closed: u.closed,
        // Job status (a claimed job is 'LEASED' whatever its working state) and, once CANCELED,
        // credits_final = S.
        jobs: u.jobs.map((j) => (j.status === 'CANCELED' ? `CANCELED:${j.final}` : j.status)),
        // A grant worth nothing and no grant at all are the same money (the database may not write a
        // payment's grant whose credits are all taken back on arrival): only non-zero grants count.
        grants: sumByKey(u.grants.map((g) => ({ key: g.key, remaining: effective(g, this.now) }))),
      })),
      purchases: this.payments.map((p, i) => this.purchaseStatus(i)),
      invites: inviteSnapshot(this),
    };
  }
  // App Store purchases exist only once the transaction arrived; Stripe ones from begin_purchase.
  purchaseStatus(pi) {
    const p = this.payments[pi];
    if ((p.provider === 'app_store' || p.sub) && (!p.facts.paid || p.parked)) return 'none';
    if (p.sub && p.C === 0) return 'none'; // an upgrade that grants nothing is recorded without a purchase
    return this.status(pi);
  }
}

const finished = (j) => j.status === 'READY' || j.status === 'FAILED' || j.status === 'CANCELED';

// Per grant key, effective remaining; keys worth nothing left out; sorted by key.
export function sumByKey(grants) {
  const m = new Map();
  for (const g of grants) m.set(g.key, (m.get(g.key) ?? 0) + g.remaining);
  return [...m].filter(([, r]) => r > 0).sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, remaining]) => ({ key, remaining }));
}
