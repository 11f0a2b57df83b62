// The admin actions and spend limits of issue 13 in the reference model, written from
// migrations/README.md ("Admin actions", "Spend limits"), not from the SQL: grant, signed adjust,
// void a grant, refund a job's capture, suspend, a per-user daily cap. Each function takes a
// World (model.mjs) and answers what the RPC answers: 'ok' or the error hint.
import { drawDown, effective, DAY } from './model.mjs';

const finished = (j) => j.status === 'READY' || j.status === 'FAILED' || j.status === 'CANCELED';
const expired = (g, now) => g.expiresAt !== null && now >= g.expiresAt;
const adjustmentKey = (kind, expiresAt) => `adjustment:${kind}:${expiresAt === null ? 'never' : new Date(expiresAt).toISOString()}`;

// "Spend limits": over the user's daily cap (an admin's override; the default is none here) is
// refused; the day's spend is what that UTC day's jobs hold, or captured once finished.
export function spendLimitRefusal(m, u, cost) {
  if (u.cap === undefined || u.cap === null) return null;
  const day = Math.floor(m.now / DAY);
  const spent = u.jobs.filter((j) => Math.floor(j.createdAt / DAY) === day)
    .reduce((s, j) => s + (finished(j) ? j.final ?? 0 : j.reserved), 0);
  return spent + cost > u.cap ? 'daily_spend_cap_reached' : null;
}

// grant: promotional credits, the given expiry (ms from now) or none; refused for a closed account.
export function grant(m, ui, amount, ttl) {
  const u = m.users[ui];
  if (u.closed) return 'account_closed';
  m.expire(u);
  m.addGrant(u, { key: 'promotion:promotional:null', kind: 'promotional', expiresAt: ttl === null ? null : m.now + ttl, amount });
  return 'ok';
}

// adjust: + a paid, never-expiring adjustment grant (repaying debt first); - taken from available
// credits in draw-down order, refused beyond them (never debt).
export function adjust(m, ui, amount) {
  const u = m.users[ui];
  m.expire(u);
  if (amount > 0) {
    m.addGrant(u, { key: adjustmentKey('paid', null), kind: 'paid', expiresAt: null, amount });
    return 'ok';
  }
  let rest = -amount;
  if (m.available(u) < rest) return 'insufficient_credits';
  for (const g of m.live(u).sort(drawDown)) {
    if (rest === 0) break;
    const x = Math.min(rest, g.remaining);
    g.remaining -= x; rest -= x;
  }
  return 'ok';
}

// void: the grant ends now; what remained goes, its held credits expire when they come back.
// `which`: the user's welcome grant, or its newest admin promotion (none: the call names no grant;
// an invite reward is never voided, migrations/README.md).
export function voidGrant(m, ui, which) {
  const u = m.users[ui];
  const g = which === 'welcome' ? u.grants.find((x) => x.key === 'welcome')
    : u.grants.filter((x) => x.key === 'promotion:promotional:null').at(-1);
  if (!g) return 'invalid_request';
  m.expire(u);
  g.remaining = 0;
  g.expiresAt = Math.min(g.expiresAt ?? m.now, m.now);
  return 'ok';
}

// refund: per grant the job's hold captured from, captured minus refunded, counting grants not
// expired now; all (amount null) or part, most durable pieces first, each back as an adjustment
// grant of that grant's category and expiry.
export function refundJob(m, ui, n, amount) {
  const u = m.users[ui];
  const j = u.jobs[n % Math.max(1, u.jobs.length)]; // like cancels: the user's jobs modulo how many
  if (!j) return 'skipped';
  m.expire(u);
  j.refunded ??= {};
  const bySeq = new Map(u.grants.map((g) => [g.seq, g]));
  const pieces = (j.captured ?? [])
    .map((c) => ({ g: bySeq.get(c.grant), left: c.amount - (j.refunded[c.grant] ?? 0) }))
    .filter((p) => p.left > 0 && !expired(p.g, m.now))
    .sort((a, b) => drawDown(b.g, a.g));
  const refundable = pieces.reduce((s, p) => s + p.left, 0);
  if (!finished(j) || refundable === 0) return 'nothing_to_refund';
  if (amount !== null && amount > refundable) return 'invalid_request';
  let rest = amount ?? refundable;
  for (const p of pieces) {
    if (rest === 0) break;
    const t = Math.min(rest, p.left);
    j.refunded[p.g.seq] = (j.refunded[p.g.seq] ?? 0) + t;
    m.addGrant(u, { key: adjustmentKey(p.g.kind, p.g.expiresAt), kind: p.g.kind, expiresAt: p.g.expiresAt, amount: t });
    rest -= t;
  }
  return 'ok';
}

export function suspend(m, ui, on) { m.users[ui].suspended = on; return 'ok'; }
export function setCap(m, ui, cap) { m.users[ui].cap = cap; return 'ok'; }

// One admin op of a history (gen.mjs), applied to the model; answers the outcome.
export function step(m, o) {
  switch (o.t) {
    case 'adminGrant': return grant(m, o.u, o.amount, o.ttl);
    case 'adminAdjust': return adjust(m, o.u, o.amount);
    case 'adminVoid': return voidGrant(m, o.u, o.which);
    case 'adminRefund': return refundJob(m, o.u, o.n, o.amount);
    case 'adminSuspend': return suspend(m, o.u, o.on);
    case 'adminCap': return setCap(m, o.u, o.cap);
  }
  throw new Error(`not an admin op: ${o.t}`);
}
export const ADMIN_OPS = new Set(['adminGrant', 'adminAdjust', 'adminVoid', 'adminRefund', 'adminSuspend', 'adminCap']);

// The same op as an RPC call by the service role (world.mjs runs it): SQL text.
export function rpc(o, { key, uid, jobId, now }) {
  const lit = (v) => (v === null || v === undefined ? 'null' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
  switch (o.t) {
    case 'adminGrant':
      return `public.admin_grant_credits(${lit(key)}, ${lit(uid)}, ${o.amount}, ${o.ttl === null ? 'null' : `${lit(new Date(now + o.ttl).toISOString())}::timestamptz`}, 'model')`;
    case 'adminAdjust': return `public.admin_adjust_credits(${lit(key)}, ${lit(uid)}, ${o.amount}, 'model')`;
    case 'adminVoid': {
      const grantId = o.which === 'welcome'
        ? `(select id from public.credit_grants where user_id = ${lit(uid)} and source = 'welcome')`
        : `(select id from public.credit_grants where user_id = ${lit(uid)} and source = 'promotion' and id not in (select reward_grant_id from public.invites where reward_grant_id is not null) order by created_at desc, id desc limit 1)`;
      return `public.admin_void_grant(${lit(key)}, ${grantId}, 'model')`;
    }
    case 'adminRefund': return jobId ? `public.admin_refund_job(${lit(key)}, ${lit(jobId)}, 'model', ${o.amount === null ? 'null' : o.amount})` : null;
    case 'adminSuspend': return `public.admin_set_suspension(${lit(key)}, ${lit(uid)}, ${o.on}, 'model')`;
    case 'adminCap': return `public.admin_set_spend_cap(${lit(key)}, ${lit(uid)}, ${o.cap === null ? 'null' : o.cap}, 'model')`;
  }
  throw new Error(`not an admin op: ${o.t}`);
}
