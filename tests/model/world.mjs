// Runs one resolved history (gen.mjs) through the real RPCs, then replays it on the model
// (model.mjs) and compares.
//
// Design. A history is a *world*: its own users and payments on one business clock. Worlds run one
// after another; each starts on a fresh clock window later than everything earlier worlds reached,
// and ends by failing every job it left unfinished, so a later world's sweeps (expire_credits,
// expire_stale_holds) and claims (claim_next_jobs) only ever meet finished worlds, whose users are
// no longer compared. Inside a world, ops run in order, except the concurrent ones (deliveries of
// one payment's events, one generate sent twice, generates of different users), which are sent at
// the same time on separate connections. The model does not know in which order those committed,
// so it checks linearizability as Jepsen's checkers do: it keeps every model state reachable by
// some order of each concurrent group, drops those whose answers differ from what the database
// answered (generate accepted or refused, job event applied or not), and at the end the database's
// state must equal one of them.
//
// Every RPC runs in its own transaction on a superuser connection, with the business clock
// (`app.now`) and the caller's role and JWT claims set transaction-locally, as one simple-query
// round trip (an error rolls the whole implicit transaction back).
import { World, PACKAGES, disputeStatus, sumByKey } from './model.mjs';
import * as admin from './admin.mjs';
import { subTerms, subCall } from './subscriptions.mjs';
import { redeem } from './invites.mjs';

const lit = (v) => (v === null || v === undefined ? 'null' : typeof v === 'number' ? String(v) : `'${String(v).replace(/'/g, "''")}'`);
const iso = (ms) => new Date(ms).toISOString();
// A payment's amount P: a subscription payment's terms, a pack's price, or 0 for a pack checkout
// paid in full by a coupon (`free`: Stripe's `no_payment_required`).
const amountOf = (p) => (p.sub !== undefined ? subTerms(p).P : p.free ? 0 : PACKAGES[p.pkg].price);

export class Db {
  constructor(pool) { this.pool = pool; this.rpcs = null; }
  async init() {
    const r = await this.pool.query(`select p.proname from pg_proc p join pg_namespace n on n.oid = p.pronamespace where n.nspname = 'public'`);
    this.rpcs = new Set(r.rows.map((x) => x.proname));
    this.modern = this.rpcs.has('dispute_purchase');
    this.reverse = this.rpcs.has('reverse_refund_purchase');
  }
  // One transaction: clock, identity, then the statement; returns the last result's `r` column.
  async tx(now, who, sql) {
    const claims = who === 'service' ? { role: 'service_role' } : { sub: who, role: 'authenticated', aud: 'authenticated', is_anonymous: false };
    const role = who === 'service' ? 'service_role' : 'authenticated';
    const text = `select set_config('app.now', ${lit(iso(now))}, true), set_config('request.jwt.claims', ${lit(JSON.stringify(claims))}, true), set_config('role', ${lit(role)}, true); select ${sql} as r`;
    try {
      const res = await this.pool.query(text);
      return { ok: true, r: res[res.length - 1].rows[0].r };
    } catch (e) {
      return { ok: false, code: e.code, hint: e.hint, message: e.message };
    }
  }
}

// Provider events as the provider sends them, from a resolved event spec (gen.mjs).
export function concreteEvent(tag, p, spec) {
  const P = amountOf(p);
  const base = `evt_${tag}_${p.index}`;
  if (p.provider === 'app_store') {
    const tx = `${tag}-${p.index}`;
    if (spec.k === 'tx') return { id: `transaction:${tx}`, type: 'transaction' };
    if (spec.k === 'REVOKE') return { id: `${tx}-revoke`, type: 'REVOKE' };
    // The Worker sends a prorated REFUND as a partial refund of ceil(P x share) (shared::appstore).
    if (spec.k === 'REFUND_PRORATED') {
      const amountRefunded = Math.ceil((P * spec.milli) / 100000);
      // No price to share, or a share that rounds up to all of it: the Worker counts it in full.
      if (P === 0 || amountRefunded >= P) return { id: `${tx}-prorated-${spec.milli}`, type: 'REFUND' };
      return { id: `${tx}-prorated-${spec.milli}`, type: 'REFUND_PRORATED', amountRefunded };
    }
    return { id: `${tx}-${spec.k}-${spec.n}`, type: spec.k };
  }
  switch (spec.k) {
    case 'paid': {
      const type = spec.async ? 'checkout.session.async_payment_succeeded' : 'checkout.session.completed';
      return { id: `${base}_${type}`, type };
    }
    case 'failed': return { id: `${base}_failed`, type: 'checkout.session.async_payment_failed' };
    case 'refund': {
      const amountRefunded = Math.ceil((P * spec.pct) / 100);
      return { id: `${base}_refund_${amountRefunded}`, type: 'charge.refunded', amountRefunded };
    }
    case 'dispute': {
      const d = p.disputes[spec.d];
      let e = spec.e;
      if (d.inquiry && e === 'withdrawn') e = 'created';     // inquiries move no funds
      if (d.inquiry && e === 'reinstated') e = 'closed';
      const type = { created: 'charge.dispute.created', withdrawn: 'charge.dispute.funds_withdrawn', reinstated: 'charge.dispute.funds_reinstated', closed: 'charge.dispute.closed' }[e];
      // A chargeback closes won, lost, or prevented (stopped before it was charged back).
      const status = e === 'closed' ? (d.inquiry ? 'warning_closed' : spec.prevented ? 'prevented' : spec.won ? 'won' : 'lost')
        : e === 'reinstated' ? 'won' : d.inquiry ? 'warning_needs_response' : 'needs_response';
      return { id: `${base}_d${spec.d}_${e}_${status}`, type, disputeId: `dp_${tag}_${p.index}_${spec.d}`, status, amount: Math.ceil((P * d.pct) / 100) };
    }
  }
  throw new Error(`bad event spec ${JSON.stringify(spec)}`);
}

export class Runner {
  // `edge` (optional) sends some calls through the Worker instead: {checkout(uid, pkg, key) ->
  // purchase id, stripe(payment, event, uid) -> {ok} | {ok: false, code}, generate(uid, request,
  // key) -> what db.tx answers}. PostgREST cannot move the business clock, so such worlds run on
  // the real clock (and their histories have no clock moves).
  constructor(db, edge = null) { this.db = db; this.edge = edge; this.clock = Date.UTC(2031, 0, 1); this.worldCount = 0; this.baseline = new Set(); }

  // Runs the history on the database; returns {observations, snapshot} (or throws on set-up errors).
  async run(h) {
    const db = this.db;
    const tag = `w${process.pid}x${this.worldCount++}x${Date.now().toString(36)}`;
    const real = this.edge !== null;
    const start = real ? Date.now() : this.clock;
    let now = start;
    const tick = () => { if (real) now = Math.max(now, Date.now()); return now; };
    const uids = Array.from({ length: h.users }, () => crypto.randomUUID());
    const pays = h.payments.map((p) => ({ ...p, P: amountOf(p), payId: p.provider === 'stripe' ? `pi_${tag}_${p.index}` : `${tag}-${p.index}`, purchaseId: null }));
    // Set-up: users (the welcome grant comes from the auth.users trigger at the world's clock) and
    // the pending Stripe purchases their checkouts begin.
    let setup = `select set_config('app.now', ${lit(iso(now))}, true);
      insert into auth.users (id, aud, role, email, raw_app_meta_data, raw_user_meta_data, is_anonymous, created_at, updated_at) values ${uids.map((u, i) => `(${lit(u)}, 'authenticated', 'authenticated', ${lit(`${tag}-${i}@model.test`)}, '{"provider": "email"}', '{}', false, now(), now())`).join(', ')};`;
    const packCheckout = (x) => x.provider === 'stripe' && x.sub === undefined;
    for (const p of pays.filter((x) => packCheckout(x) && !real)) {
      setup += `select set_config('request.jwt.claims', ${lit(JSON.stringify({ sub: uids[p.user], role: 'authenticated', aud: 'authenticated', is_anonymous: false }))}, true), set_config('role', 'authenticated', true);
        select public.begin_purchase(${lit(p.pkg)}, ${lit(`bp-${tag}-${p.index}`)}) as r; select set_config('role', 'none', true);`;
    }
    const res = await db.pool.query(setup);
    const begun = res.filter((x) => x.rows[0] && x.rows[0].r).map((x) => x.rows[0].r.purchase.id);
    pays.filter((x) => packCheckout(x) && !real).forEach((p, i) => { p.purchaseId = begun[i]; });
    if (real) for (const p of pays.filter(packCheckout)) p.purchaseId = await this.edge.checkout(uids[p.user], p.pkg, `bp-${tag}-${p.index}`);

    const jobs = uids.map(() => []);
    const obs = [];
    let events = 0;
    const deliver = async (p, spec) => {
      const ev = concreteEvent(tag, p, spec);
      events++;
      const a = [lit(p.provider), lit(p.payId), lit(ev.id)];
      let sql = null;
      switch (ev.type) {
        case 'checkout.session.completed': case 'checkout.session.async_payment_succeeded':
          sql = `public.fulfill_purchase(${a}, ${lit(uids[p.user])}, ${lit(p.pkg)}, ${p.P}, 'usd', ${lit(p.purchaseId)}, ${lit(ev.type)})`; break;
        case 'transaction':
          sql = `public.fulfill_purchase(${a}, ${lit(uids[p.user])}, ${lit(p.pkg)}, ${p.P}, 'usd', null, 'signed_transaction')`; break;
        case 'checkout.session.async_payment_failed':
          sql = `public.fail_purchase(${a}, ${lit(p.purchaseId)}, ${lit(ev.type)})`; break;
        case 'charge.refunded':
          sql = `public.refund_purchase_amount(${a}, ${ev.amountRefunded}, ${p.P}, ${lit(ev.type)})`; break;
        case 'REFUND': sql = `public.refund_purchase(${a}, 'REFUND')`; break;
        case 'REFUND_PRORATED': sql = `public.refund_purchase_share(${a}, ${ev.amountRefunded}, ${p.P}, 'REFUND_PRORATED')`; break;
        case 'REVOKE': sql = `public.clawback_purchase(${a}, 'REVOKE')`; break;
        case 'REFUND_REVERSED':
          // Before reverse_refund_purchase existed nothing handled it (the Worker ignored it).
          sql = db.reverse ? `public.reverse_refund_purchase(${a}, 'REFUND_REVERSED')` : null; break;
        default:
          if (db.modern) {
            sql = `public.dispute_purchase(${a}, ${lit(ev.disputeId)}, ${lit(ev.status)}, ${ev.amount}, ${lit(ev.type)})`;
          } else {
            // The mapping the Worker used before dispute_purchase: created/withdrawn claw back,
            // reinstated and a won or warning_closed close reinstate, a lost close is ignored.
            const s = disputeStatus(ev.type, ev.status);
            if (ev.type === 'charge.dispute.created' || ev.type === 'charge.dispute.funds_withdrawn') sql = `public.clawback_purchase(${a}, ${lit(ev.type)})`;
            else if (s === 'won' || s === 'warning_closed' || s === 'prevented') sql = `public.reinstate_purchase(${a}, ${lit(ev.type)})`;
          }
      }
      // Subscription payments: their paid and failed events have their own RPCs (subscriptions.mjs).
      if (p.sub !== undefined) sql = subCall(tag, start, p, ev, uids[p.user]) ?? sql;
      if (real && p.provider === 'stripe') return this.edge.stripe(p, ev, uids[p.user]);
      if (sql === null) return { ok: true, ignored: true };
      return db.tx(tick(), 'service', sql);
    };
    const generate = async (u, g, key, dup) => {
      const request = { model_id: g.model, prompt: 'model history', target_minutes: g.minutes };
      const sql = `public.generate(${lit(key)}, ${lit(JSON.stringify(request))}::jsonb)`;
      const call = () => (real ? this.edge.generate(uids[u], request, key) : db.tx(now, uids[u], sql));
      let rs;
      if (dup === 'par') rs = await Promise.all([call(), call()]);
      else if (dup === 'seq') rs = [await call(), await call()];
      else rs = [await call()];
      const made = rs.find((r) => r.ok && !r.r.replayed) || rs.find((r) => r.ok);
      if (made) {
        const job = made.r.response.job;
        if (!jobs[u].some((j) => j.id === job.id)) jobs[u].push({ id: job.id, reserved: job.credits_reserved });
        return { outcome: made.r.replayed ? 'replayed' : 'ok', all: rs.map(outcomeOf) };
      }
      // A copy sent at the same time may be turned away as in flight; the other one answers.
      const answered = rs.map(outcomeOf).filter((x) => x !== 'idempotency_in_flight');
      return { outcome: answered[0] ?? 'idempotency_in_flight', all: rs.map(outcomeOf) };
    };
    for (const [i, o] of h.ops.entries()) {
      switch (o.t) {
        case 'ev': obs.push({ r: [await deliver(pays[o.pay], o.ev)] }); break;
        case 'par': obs.push({ r: await Promise.all(o.evs.map((e) => deliver(pays[o.pay], e))) }); break;
        case 'gen': obs.push(await generate(o.u, o, `g${i}`, o.dup)); break;
        case 'pargen': obs.push({ outcomes: (await Promise.all(o.gens.map((g, j) => generate(g.u, g, `g${i}_${j}`, null)))).map((x) => x.outcome) }); break;
        case 'complete': case 'fail': {
          const j = jobs[o.u][o.n];
          if (!j) { obs.push({ applied: false, skipped: true }); break; }
          const sql = o.t === 'complete' ? `public.complete_job(${lit(j.id)}, ${Math.floor((j.reserved * o.pct) / 100)})`
            : `public.fail_job(${lit(j.id)}, 'model_failure', null, false)`;
          const r = await db.tx(tick(), 'service', sql);
          obs.push(r.ok ? { applied: r.r.applied } : { error: r });
          break;
        }
        case 'cancel': {
          // Cancels (and their finishes) name one of the user's jobs modulo how many it has.
          const n = o.n % Math.max(1, jobs[o.u].length), j = jobs[o.u][n];
          if (!j) { obs.push({ skipped: true }); break; }
          const call = () => db.tx(tick(), uids[o.u], `public.cancel_job(${lit(j.id)})`);
          const rs = o.dup === 'par' ? await Promise.all([call(), call()]) : o.dup === 'seq' ? [await call(), await call()] : [await call()];
          const bad = rs.find((r) => !r.ok && r.hint !== 'account_closed');
          obs.push(bad ? { error: bad } : { n, outcomes: rs.map((r) => (r.ok ? r.r.outcome : r.hint)) });
          break;
        }
        case 'raceCancel': {
          const n = o.n % Math.max(1, jobs[o.u].length), j = jobs[o.u][n];
          if (!j) { obs.push({ skipped: true }); break; }
          const [c, f] = await Promise.all([
            db.tx(tick(), uids[o.u], `public.cancel_job(${lit(j.id)})`),
            db.tx(tick(), 'service', `public.complete_job(${lit(j.id)}, ${Math.floor((j.reserved * o.pct) / 100)})`)]);
          const bad = [c, f].find((r) => !r.ok && r.hint !== 'account_closed');
          obs.push(bad ? { error: bad } : { n, outcome: c.ok ? c.r.outcome : c.hint, applied: f.r.applied });
          break;
        }
        case 'raceClose': {
          const [c, g] = await Promise.all([db.tx(tick(), uids[o.u], 'public.delete_account()'), generate(o.u, o, `g${i}`, null)]);
          obs.push(c.ok ? { canceled: c.r.canceled_jobs, replayed: c.r.replayed, outcome: g.outcome } : { error: c });
          break;
        }
        case 'finish': {
          const n = o.n % Math.max(1, jobs[o.u].length), j = jobs[o.u][n];
          if (!j) { obs.push({ applied: false, skipped: true }); break; }
          const r = await db.tx(tick(), 'service', `public.finish_canceled_job(${lit(j.id)}, ${Math.floor((j.reserved * o.pct) / 100)})`);
          obs.push(r.ok ? { n, applied: r.r.applied } : { error: r });
          break;
        }
        case 'close': {
          if (o.how === 'rpc') {
            const r = await db.tx(tick(), uids[o.u], 'public.delete_account()');
            obs.push(r.ok ? { canceled: r.r.canceled_jobs, replayed: r.r.replayed } : { error: r });
          } else {
            try {
              await db.pool.query(`select set_config('app.now', ${lit(iso(tick()))}, true); delete from auth.users where id = ${lit(uids[o.u])}`);
              obs.push({});
            } catch (e) { obs.push({ error: { code: e.code, hint: e.hint, message: e.message } }); }
          }
          break;
        }
        case 'invite': {
          const code = (await db.pool.query(`select invite_code from public.profiles where user_id = ${lit(uids[o.by])}`)).rows[0].invite_code;
          const r = await db.tx(tick(), uids[o.u], `public.redeem_invite(${lit(code)}, ${lit(`inv${i}`)})`);
          obs.push({ outcome: outcomeOf(r) });
          break;
        }
        case 'claim': {
          const r = await db.tx(tick(), 'service', `public.claim_next_jobs(${lit(`worker-${tag}`)}, 100)`);
          obs.push(r.ok ? { claimed: r.r.jobs.length } : { error: r });
          break;
        }
        case 'sweepHolds': obs.push(await this.sweep(tick(), 'public.expire_stale_holds()')); break;
        case 'sweepCredits': obs.push(await this.sweep(tick(), 'public.expire_credits()')); break;
        case 'advance': if (real) throw new Error('no clock moves through the Worker'); now += o.ms; obs.push({}); break;
        default: {
          if (!admin.ADMIN_OPS.has(o.t)) throw new Error(`unknown op ${o.t}`);
          // Admin actions (admin.mjs), by the service role; the answer is 'ok' or the error hint.
          const sql = admin.rpc(o, { key: `a${i}-${tag}`, uid: uids[o.u], jobId: jobs[o.u][o.n % Math.max(1, jobs[o.u].length)]?.id, now: tick() });
          if (sql === null) { obs.push({ outcome: 'skipped' }); break; }
          const r = await db.tx(tick(), 'service', sql);
          obs.push({ outcome: r.ok ? 'ok' : r.hint || r.code });
        }
      }
    }
    const snapshot = await this.read(tick(), uids, pays, jobs);
    // What the Worker reports, at the same moment.
    if (real && this.edge.balance) snapshot.edgeBalances = await Promise.all(uids.map((u) => this.edge.balance(u)));
    // Leave nothing runnable or held for later worlds, whose clocks start after this one's.
    try {
      await db.pool.query(`select set_config('request.jwt.claims', '{"role": "service_role"}', true), set_config('app.now', ${lit(iso(now))}, true);
        select count(public.fail_job(id, 'model_world_end', null, false)) from public.jobs where user_id = any(${lit(`{${uids.join(',')}}`)}::uuid[]) and status not in ('READY', 'FAILED', 'CANCELED')`);
    } catch (e) {
      snapshot.violations.push({ check: 'failing the open jobs at the end of the world raised an error', error: e.message });
    }
    this.clock = Math.ceil((now + 86400e3) / 1000) * 1000;
    return { tag, start, obs, snapshot, events, uids };
  }

  // Sweepers may work in batches and say whether more remains: call until done.
  async sweep(now, sql) {
    for (let k = 0; k < 100; k++) {
      const r = await this.db.tx(now, 'service', sql);
      if (!r.ok || !(r.r && (r.r.more === true || r.r.has_more === true))) return r.ok ? { ok: true } : { error: r };
    }
    return { error: 'sweep never finished' };
  }

  async read(now, uids, pays, jobs) {
    const claims = (u) => JSON.stringify({ sub: u, role: 'authenticated', aud: 'authenticated', is_anonymous: false });
    const arr = lit(`{${uids.join(',')}}`);
    let sql = `select set_config('app.now', ${lit(iso(now))}, true);`;
    // A closed account's get_balance answers account_closed: its balance row is read instead.
    const closed = (await this.db.pool.query(`select coalesce(array_agg(user_id::text), '{}') as c from public.profiles where user_id = any(${lit(`{${uids.join(',')}}`)}::uuid[]) and deleted_at is not null`)).rows[0].c;
    for (const u of uids) {
      sql += closed.includes(u)
        ? `select json_build_object('available', available, 'held', held, 'debt', debt) as r from public.credit_balances where user_id = ${lit(u)};`
        : `select set_config('request.jwt.claims', ${lit(claims(u))}, true), set_config('role', 'authenticated', true); select public.get_balance() as r; select set_config('role', 'none', true);`;
    }
    sql += `select set_config('request.jwt.claims', '', true);
      select coalesce(json_agg(json_build_object('id', id, 'user_id', user_id, 'source', source, 'kind', kind, 'purchase_id', purchase_id, 'expires_at', expires_at,
        'remaining', case when expires_at is not null and expires_at <= app.now() then 0 else remaining end) order by created_at, id), '[]') as r
        from public.credit_grants where user_id = any(${arr}::uuid[]);
      select coalesce(json_agg(json_build_object('id', id, 'provider_payment_id', provider_payment_id, 'status', status)), '[]') as r
        from public.purchases where user_id = any(${arr}::uuid[]);
      select coalesce(json_agg(json_build_object('id', id, 'status', status, 'credits_final', credits_final)), '[]') as r
        from public.jobs where user_id = any(${arr}::uuid[]);
      select public.reconcile() as r;
      select coalesce(json_agg(json_build_object('invitee_id', invitee_id, 'inviter_id', inviter_id, 'reward_grant_id', reward_grant_id,
        'kept', case when purchase_id is null then null else reward_kept end)), '[]') as r
        from public.invites where invitee_id = any(${arr}::uuid[]);`;
    const res = await this.db.pool.query(sql);
    const rs = res.filter((x) => x.fields.some((f) => f.name === 'r')).map((x) => x.rows[0].r);
    const balances = rs.slice(0, uids.length);
    const [grants, purchases, jobRows, violations, inviteRows] = rs.slice(uids.length);
    // Invite rewards: the grant of user i's reward is `invite:<i>` (invites.mjs).
    const rewardOf = new Map(inviteRows.filter((x) => x.reward_grant_id).map((x) => [x.reward_grant_id, uids.indexOf(x.invitee_id)]));
    // A closed account's stored `available` may still count a grant past its expiry (written lazily);
    // get_balance leaves it out at once, so does this: the sum of effective remaining.
    uids.forEach((u, i) => { if (closed.includes(u)) balances[i].available = grants.filter((g) => g.user_id === u).reduce((t, g) => t + g.remaining, 0); });
    const working = (s) => !['PENDING', 'QUEUED', 'READY', 'FAILED', 'CANCELED'].includes(s);
    const purchaseIndex = new Map();
    for (const row of purchases) {
      const p = pays.find((x) => (x.provider === 'stripe' && x.sub === undefined ? x.purchaseId === row.id : x.payId === row.provider_payment_id));
      if (p) purchaseIndex.set(row.id, p.index);
    }
    const snap = {
      users: uids.map((u, i) => ({
        available: balances[i].available, held: balances[i].held, debt: balances[i].debt, closed: closed.includes(u),
        jobs: jobs[i].map((j) => {
          const row = jobRows.find((r) => r.id === j.id);
          return !row ? 'missing' : working(row.status) ? 'LEASED' : row.status === 'CANCELED' ? `CANCELED:${row.credits_final}` : row.status;
        }),
        grants: sumByKey(grants.filter((g) => g.user_id === u).map((g) => ({
          key: g.source === 'welcome' ? 'welcome'
            : g.source === 'promotion' && rewardOf.has(g.id) ? `invite:${rewardOf.get(g.id)}`
            : g.source === 'purchase' && purchaseIndex.has(g.purchase_id) ? `pay:${purchaseIndex.get(g.purchase_id)}`
              : g.source === 'adjustment' ? `adjustment:${g.kind}:${g.expires_at === null ? 'never' : new Date(g.expires_at).toISOString()}`
                : `${g.source}:${g.kind}:${g.purchase_id}`,
          remaining: g.remaining,
        }))),
      })),
      purchases: pays.map((p) => {
        const row = purchases.find((r) => purchaseIndex.get(r.id) === p.index);
        return row ? row.status : 'none';
      }),
      invites: uids.map((u) => {
        const row = inviteRows.find((x) => x.invitee_id === u);
        return row ? `${uids.indexOf(row.inviter_id)}:${row.kept === null ? '-' : row.kept}` : null;
      }),
    };
    // Violations: the ones of this world's users, and any other not seen before this world.
    const mine = new Set(uids);
    const fresh = violations.filter((v) => (v.user_id ? mine.has(v.user_id) : !this.baseline.has(JSON.stringify(v))));
    for (const v of violations) if (!v.user_id || !mine.has(v.user_id)) this.baseline.add(JSON.stringify(v));
    return { ...snap, violations: fresh };
  }
}

const outcomeOf = (r) => (r.ok ? (r.r.replayed ? 'replayed' : 'ok') : r.hint || r.code || 'error');

function permutations(xs) {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

// Every order of n things (the first 120 when there are more than five).
const orders = (n) => permutations([...Array(n).keys()]).slice(0, 120);

// Replays the history on the model, keeping every linearization consistent with what the database
// answered. Returns null when the database's final state is one the model allows, else a
// description of the first disagreement.
export function check(h, run) {
  const m0 = new World(run.start);
  for (let u = 0; u < h.users; u++) m0.addUser();
  for (const p of h.payments) {
    if (p.sub !== undefined) m0.addSubPayment(p, run.start);
    else m0.addPayment(p.user, p.provider, p.pkg, amountOf(p), p.disputes);
  }
  let cands = [m0];
  const ev = (p, spec) => concreteEvent(run.tag, p, spec);
  for (const [i, o] of h.ops.entries()) {
    const ob = run.obs[i];
    const next = [];
    const errors = (ob.r || []).filter((r) => !r.ok).concat(ob.error ? [ob.error] : []);
    if (errors.length) return { at: i, op: o, problem: 'the RPC raised an error', errors };
    for (const m of cands) {
      switch (o.t) {
        case 'ev': m.deliver(o.pay, ev(h.payments[o.pay], o.ev)); next.push(m); break;
        case 'par':
          for (const order of permutations(o.evs)) { const c = m.clone(); for (const e of order) c.deliver(o.pay, ev(h.payments[o.pay], e)); next.push(c); }
          break;
        case 'gen': {
          const r = m.generate(o.u, o.model, o.minutes, `g${i}`);
          if (r === ob.outcome) next.push(m);
          break;
        }
        case 'pargen':
          for (const order of permutations(o.gens.map((g, j) => j))) {
            const c = m.clone();
            const got = [];
            for (const j of order) got[j] = c.generate(o.gens[j].u, o.gens[j].model, o.gens[j].minutes, `g${i}_${j}`);
            if (got.every((g, j) => g === ob.outcomes[j])) next.push(c);
          }
          break;
        case 'complete': if (m.complete(o.u, o.n, o.pct) === ob.applied) next.push(m); break;
        case 'fail': if (m.fail(o.u, o.n) === ob.applied) next.push(m); break;
        case 'finish':
          if (ob.skipped ? m.users[o.u].jobs.length === 0 : m.finishCanceled(o.u, ob.n, o.pct) === ob.applied) next.push(m);
          break;
        case 'cancel': {
          if (ob.skipped) { if (m.users[o.u].jobs.length === 0) next.push(m); break; }
          if (!m.job(o.u, ob.n)) break;
          const got = ob.outcomes.map(() => m.cancel(o.u, ob.n));
          // Two at once: either may have committed first.
          const same = o.dup === 'par' ? [...got].sort().join() === [...ob.outcomes].sort().join() : got.join() === ob.outcomes.join();
          if (same) next.push(m);
          break;
        }
        case 'raceCancel': {
          if (ob.skipped) { if (m.users[o.u].jobs.length === 0) next.push(m); break; }
          for (const cancelFirst of [true, false]) {
            const c = m.clone();
            let outcome, applied;
            if (cancelFirst) { outcome = c.cancel(o.u, ob.n); applied = c.complete(o.u, ob.n, o.pct); } else { applied = c.complete(o.u, ob.n, o.pct); outcome = c.cancel(o.u, ob.n); }
            if (outcome === ob.outcome && applied === ob.applied) next.push(c);
          }
          break;
        }
        case 'raceClose': {
          // Either committed first; closing with several jobs releases them in any order.
          const was = m.users[o.u].closed;
          for (const closeFirst of [true, false]) {
            const base = m.clone();
            const before = closeFirst ? null : base.generate(o.u, o.model, o.minutes, `g${i}`);
            for (const order of orders(base.unfinished(o.u).length)) {
              const d = base.clone();
              const k = d.close(o.u, order);
              const made = closeFirst ? d.generate(o.u, o.model, o.minutes, `g${i}`) : before;
              if (made === ob.outcome && ob.replayed === was && ob.canceled === k) next.push(d);
            }
          }
          break;
        }
        case 'close': {
          const was = m.users[o.u].closed;
          for (const order of orders(m.unfinished(o.u).length)) {
            const c = m.clone();
            const n = c.close(o.u, order);
            if (o.how === 'auth' || (ob.replayed === was && ob.canceled === n)) next.push(c);
          }
          break;
        }
        case 'claim':
          for (const order of orders(m.deadLetters().length)) { const c = m.clone(); c.claimAll(order); next.push(c); }
          break;
        case 'sweepHolds':
          for (const order of orders(m.staleHolds().length)) { const c = m.clone(); c.expireStaleHolds(order); next.push(c); }
          break;
        case 'sweepCredits': m.expireCredits(); next.push(m); break;
        case 'advance': m.advance(o.ms); next.push(m); break;
        case 'invite': if (redeem(m, o.u, o.by) === ob.outcome) next.push(m); break;
        default: if (admin.step(m, o) === ob.outcome) next.push(m);
      }
    }
    if (next.length === 0) {
      return { at: i, op: o, problem: 'the database answered what no order of the model allows', database: ob, model: cands.map((m) => m.snapshot()).slice(0, 2) };
    }
    const seen = new Set();
    cands = next.filter((m) => { const k = JSON.stringify(m); return !seen.has(k) && seen.add(k); }).slice(0, 256);
  }
  const { violations, edgeBalances, ...db } = run.snapshot;
  const wrongEdge = (edgeBalances || []).findIndex((b, i) => b.available !== db.users[i].available || b.held !== db.users[i].held || b.debt !== db.users[i].debt);
  if (wrongEdge >= 0) return { problem: `GET /v1/balance of user ${wrongEdge} differs from the database`, worker: edgeBalances[wrongEdge], database: db.users[wrongEdge] };
  if (violations.length) return { problem: 'reconcile() is not empty', violations, database: db };
  const want = JSON.stringify(db);
  if (cands.some((m) => JSON.stringify(m.snapshot()) === want)) return null;
  return { problem: 'final state differs', database: db, model: cands[0].snapshot(), models: cands.length };
}
