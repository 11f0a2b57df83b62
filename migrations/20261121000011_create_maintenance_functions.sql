-- Create the back-office maintenance functions: expire_credits, reconcile and cleanup_expired.

create or replace function public.expire_credits(p_max_users integer default 1000)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user record;
  v_users integer := 0;
  v_credits integer := 0;
  v_expired integer;
begin
  perform app.require_service_role();
  if p_max_users is null or p_max_users not between 1 and 100000 then
    raise exception using errcode = '22023', message = 'max_users must be between 1 and 100000.', hint = 'invalid_request', detail = 'max_users';
  end if;
  -- Users in id order, one balance lock each, so concurrent runs and user traffic cannot deadlock.
  for v_user in
    select distinct user_id from public.credit_grants
     where remaining > 0 and expires_at <= app.now()
     order by user_id
     limit p_max_users
  loop
    perform app.lock_balance(v_user.user_id);
    v_expired := app.expire_due_grants(v_user.user_id);
    if v_expired > 0 then
      v_users := v_users + 1;
      v_credits := v_credits + v_expired;
    end if;
  end loop;
  return jsonb_build_object('users', v_users, 'credits', v_credits);
end;
$$;
comment on function public.expire_credits(integer) is 'Service role: expires the remaining credits of every grant past its expiry (one ledger row per grant), for at most p_max_users users per call. {"users": n, "credits": n}.';

-- Every invariant the credit system promises. Each violation is one object:
-- {"check": name, "user_id"?, "id"?, "expected": ..., "actual": ...}. An empty array means all hold.
create or replace function public.reconcile()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_violations jsonb;
begin
  perform app.require_service_role();
  with
  ledger as (
    select user_id, sum(delta_available)::bigint as available, sum(delta_held)::bigint as held, sum(delta_debt)::bigint as debt
      from public.credit_ledger group by user_id
  ),
  grants as (
    select user_id, sum(remaining)::bigint as remaining from public.credit_grants group by user_id
  ),
  holds as (
    select user_id, sum(amount)::bigint as held from public.credit_holds where status = 'active' group by user_id
  ),
  running as (
    select id, user_id, balance_available_after, balance_held_after, balance_debt_after,
           sum(delta_available) over w as available, sum(delta_held) over w as held, sum(delta_debt) over w as debt
      from public.credit_ledger
    window w as (partition by user_id order by id)
  ),
  allocations as (
    select h.id, h.status, h.amount, h.captured as hold_captured,
           coalesce(sum(a.amount), 0) as allocated, coalesce(sum(a.captured), 0) as captured, coalesce(sum(a.released), 0) as released
      from public.credit_holds h left join public.credit_hold_allocations a on a.hold_id = h.id
     group by h.id
  ),
  violations as (
    -- 1. The cached balance is the sum of the ledger.
    select jsonb_build_object('check', 'balance_matches_ledger', 'user_id', coalesce(b.user_id, l.user_id),
             'expected', jsonb_build_object('available', coalesce(l.available, 0), 'held', coalesce(l.held, 0), 'debt', coalesce(l.debt, 0)),
             'actual', jsonb_build_object('available', b.available, 'held', b.held, 'debt', b.debt)) as v
      from public.credit_balances b full join ledger l on l.user_id = b.user_id
     where coalesce(b.available, 0) <> coalesce(l.available, 0) or coalesce(b.held, 0) <> coalesce(l.held, 0)
        or coalesce(b.debt, 0) <> coalesce(l.debt, 0)
    union all
    -- 2. Each ledger row's balance after is the running sum of the deltas.
    select jsonb_build_object('check', 'ledger_running_balance', 'user_id', r.user_id, 'id', r.id,
             'expected', jsonb_build_object('available', r.available, 'held', r.held, 'debt', r.debt),
             'actual', jsonb_build_object('available', r.balance_available_after, 'held', r.balance_held_after, 'debt', r.balance_debt_after))
      from running r
     where r.available <> r.balance_available_after or r.held <> r.balance_held_after or r.debt <> r.balance_debt_after
    union all
    -- 3. Available credits are exactly what remains in the grants.
    select jsonb_build_object('check', 'available_matches_grants', 'user_id', b.user_id,
             'expected', coalesce(g.remaining, 0), 'actual', b.available)
      from public.credit_balances b left join grants g on g.user_id = b.user_id
     where b.available <> coalesce(g.remaining, 0)
    union all
    -- 4. Held credits are exactly the active holds.
    select jsonb_build_object('check', 'held_matches_holds', 'user_id', b.user_id,
             'expected', coalesce(h.held, 0), 'actual', b.held)
      from public.credit_balances b left join holds h on h.user_id = b.user_id
     where b.held <> coalesce(h.held, 0)
    union all
    -- 5. A hold drew exactly its amount from grants; an active hold has settled nothing; a settled
    --    hold captured what it says and returned the rest.
    select jsonb_build_object('check', 'hold_allocations', 'id', a.id,
             'expected', jsonb_build_object('allocated', a.amount, 'captured', case when a.status = 'active' then 0 else a.hold_captured end,
                                            'released', case when a.status = 'active' then 0 else a.amount - a.hold_captured end),
             'actual', jsonb_build_object('allocated', a.allocated, 'captured', a.captured, 'released', a.released))
      from allocations a
     where a.allocated <> a.amount
        or (a.status = 'active' and (a.captured <> 0 or a.released <> 0))
        or (a.status <> 'active' and (a.captured <> a.hold_captured or a.released <> a.amount - a.hold_captured))
    union all
    -- 6. Debt is only carried when nothing is available.
    select jsonb_build_object('check', 'debt_only_when_nothing_available', 'user_id', b.user_id,
             'expected', 0, 'actual', b.available)
      from public.credit_balances b
     where b.debt > 0 and b.available > 0
    union all
    -- 7. Jobs and holds agree: a working job has an active hold; a READY job captured credits_final;
    --    a FAILED job holds nothing and was charged nothing.
    select jsonb_build_object('check', 'job_hold_state', 'id', j.id,
             'expected', jsonb_build_object('job_status', j.status, 'credits_final', j.credits_final),
             'actual', jsonb_build_object('hold_status', h.status, 'captured', h.captured))
      from public.jobs j left join public.credit_holds h on h.id = j.hold_id
     where (j.status in ('READY', 'FAILED') and h.status = 'active')
        or (j.status not in ('READY', 'FAILED') and j.hold_id is not null and h.status is distinct from 'active')
        or (j.status = 'READY' and j.hold_id is not null and h.captured is distinct from j.credits_final)
        or (j.status = 'FAILED' and coalesce(h.captured, 0) <> 0)
        or (j.status <> 'PENDING' and j.hold_id is null)
    union all
    -- 8. A succeeded purchase granted its credits once, through its own grant.
    select jsonb_build_object('check', 'purchase_granted_once', 'id', p.id,
             'expected', p.credits, 'actual', jsonb_build_object('credits_granted', p.credits_granted, 'grant_amount', g.amount,
               'grants', (select count(*) from public.credit_grants g2 where g2.purchase_id = p.id)))
      from public.purchases p left join public.credit_grants g on g.id = p.grant_id
     where (p.status = 'succeeded' and (p.credits_granted <> p.credits or g.amount is distinct from p.credits))
        or (select count(*) from public.credit_grants g2 where g2.purchase_id = p.id) > 1
        or (p.status in ('pending', 'failed') and p.credits_granted <> 0)
  )
  select coalesce(jsonb_agg(v), '[]'::jsonb) into v_violations from violations;
  return v_violations;
end;
$$;
comment on function public.reconcile() is 'Service role: every violated credit invariant (balance vs ledger sum, ledger running balances, available vs grants remaining, held vs active holds, hold allocations, debt only when nothing is available, jobs vs holds, purchases granted once) as a JSON array; [] when all hold.';

create or replace function public.cleanup_expired()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_keys integer;
  v_drafts integer;
begin
  perform app.require_service_role();
  delete from public.idempotency_keys where expires_at <= app.now();
  get diagnostics v_keys = row_count;
  -- Unclaimed drafts are kept a week past expiry so a late claim still answers 410, not 404.
  delete from public.draft_prompts where claimed_by is null and expires_at <= app.now() - interval '7 days';
  get diagnostics v_drafts = row_count;
  return jsonb_build_object('idempotency_keys', v_keys, 'drafts', v_drafts);
end;
$$;
comment on function public.cleanup_expired() is 'Service role: deletes expired idempotency records (24 h) and unclaimed drafts a week past their expiry. Payment ids and event ids are never deleted: they keep blocking a second grant. {"idempotency_keys": n, "drafts": n}.';

revoke all on function public.expire_credits(integer), public.reconcile(), public.cleanup_expired()
  from public, anon, authenticated, service_role;
grant execute on function public.expire_credits(integer), public.reconcile(), public.cleanup_expired() to service_role;
