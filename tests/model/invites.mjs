// The invite rules of the reference model, written from migrations/README.md ("Invites") and never
// from the SQL: redemption (once, within 7 days of sign-up, no self-invite, no loop, not after a
// paid purchase) and the inviter's reward, which follows the invitee's FIRST paid purchase: fixed
// when that purchase is paid (tier by successful invitees, cut to the monthly cap, nothing for a
// closed inviter), a promotional grant expiring after 90 days, kept while the purchase's status is
// `succeeded`, taken back and given back with the payment mechanics ("Take back", "Give back").
//
// Plain functions over a World (model.mjs): the world keeps `invites`, keyed by the invitee's user
// index: {inviter, reward: null | {pay, amount, kept, succeeded, at, grant, pieces}}. `grant` and
// `pieces` have the shape of a payment's, so World.takeBack / giveBack work on a reward unchanged
// (the reward grant is the "own grant").

const DAY = 24 * 3600e3;
export const INVITE = { window: 7 * DAY, ttl: 90 * DAY, monthlyCap: 500 };
// The n-th successful invitee's reward: bronze 1-5, silver 6-15 (+20%), gold 16+ (+50%).
export const rewardFor = (rank) => (rank >= 16 ? 75 : rank >= 6 ? 60 : 50);

const invitesOf = (w) => (w.invites ??= {});

// redeem_invite by user `ui` with the code of user `by`. Returns 'ok', 'replayed' or the refusal's
// hint, checked in the README's order.
export function redeem(w, ui, by) {
  const invites = invitesOf(w);
  const u = w.users[ui];
  if (u.closed) return 'account_closed';
  const mine = invites[ui];
  if (mine) return mine.inviter === by ? 'replayed' : 'invite_already_redeemed';
  if (w.users[by].closed) return 'not_found';
  if (by === ui) return 'self_invite';
  if (w.now >= u.signedUpAt + INVITE.window) return 'invite_window_closed';
  for (let x = by; x !== undefined; x = invites[x]?.inviter) if (x === ui) return 'invite_loop';
  if (w.payments.some((p) => p.user === ui && p.grant !== null && !(p.sub && p.C === 0))) return 'invite_after_purchase'; // a payment granting nothing makes no purchase
  invites[ui] = { inviter: by, reward: null };
  return 'ok';
}

// After every event of payment `pi` that found its purchase paid: the reward of that payment's
// user, if it has an inviter and this is (or becomes) its first purchase with money paid (P > 0).
export function afterPayment(w, pi) {
  const p = w.payments[pi];
  const inv = invitesOf(w)[p.user];
  if (!inv || (inv.reward && inv.reward.pay !== pi)) return;
  // Only a purchase with money paid earns the reward (a coupon's or a free trial's 0 neither earns nor uses it).
  if (!inv.reward && !(p.P > 0)) return;
  const inviter = w.users[inv.inviter];
  if (!inv.reward) {
    const mineToo = Object.values(invitesOf(w)).filter((x) => x.inviter === inv.inviter && x.reward);
    const rank = mineToo.filter((x) => x.reward.succeeded).length + 1;
    const d = new Date(w.now);
    const monthStart = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
    const used = mineToo.filter((x) => x.reward.at >= monthStart).reduce((s, x) => s + x.reward.amount, 0);
    const amount = inviter.closed ? 0 : Math.min(rewardFor(rank), Math.max(0, INVITE.monthlyCap - used));
    const grant = amount > 0
      ? w.addGrant(inviter, { key: `invite:${p.user}`, kind: 'promotional', expiresAt: w.now + INVITE.ttl, amount }).seq
      : null;
    inv.reward = { pay: pi, amount, kept: amount, succeeded: true, at: w.now, grant, pieces: [] };
  }
  const r = inv.reward;
  const succeeded = w.status(pi) === 'succeeded';
  const want = succeeded ? r.amount : 0;
  if (want < r.kept) w.takeBack(inviter, r, r.kept - want);
  else if (want > r.kept) w.giveBack(inviter, r, want - r.kept);
  r.kept = want;
  r.succeeded = succeeded;
}

// What the snapshot compares: per user, the inviter it redeemed and what that reward keeps.
export function inviteSnapshot(w) {
  const invites = invitesOf(w);
  return w.users.map((_, ui) => (invites[ui] ? `${invites[ui].inviter}:${invites[ui].reward ? invites[ui].reward.kept : '-'}` : null));
}
