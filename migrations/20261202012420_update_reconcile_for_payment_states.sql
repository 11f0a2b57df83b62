-- Reconcile the payment rule: every paid purchase keeps what its payment's facts say, and its ledger rows and take-back pieces agree.

create or replace function public.reconcile()
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
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
    -- 8. A paid purchase has exactly one grant of its own, of all its credits; an unpaid one gives nothing.
    select jsonb_build_object('check', 'purchase_granted_once', 'id', p.id,
             'expected', p.credits, 'actual', jsonb_build_object('credits_granted', p.credits_granted, 'grant_amount', g.amount,
               'grants', (select count(*) from public.credit_grants g2 where g2.purchase_id = p.id)))
      from public.purchases p left join public.credit_grants g on g.id = p.grant_id
     where (p.grant_id is not null and g.amount is distinct from p.credits)
        or (p.grant_id is null and (p.status not in ('pending', 'failed') or p.credits_granted <> 0))
        or (select count(*) from public.credit_grants g2 where g2.purchase_id = p.id) > 1
    union all
    -- 9. A paid purchase keeps what the payment rule says for its payment's facts, with the status
    --    the rule says; its ledger rows net to that, and its open take-back pieces to the rest.
    select jsonb_build_object('check', 'purchase_follows_payment_rule', 'id', p.id,
             'expected', jsonb_build_object('credits_kept', r.o_kept, 'status', r.o_status, 'taken_back', p.credits - r.o_kept),
             'actual', jsonb_build_object('credits_granted', p.credits_granted, 'status', p.status,
               'ledger', (select coalesce(sum(l.delta_available - l.delta_debt), 0) from public.credit_ledger l where l.purchase_id = p.id),
               'taken_back', (select coalesce(sum(t.amount - t.given_back), 0) from public.payment_take_backs t where t.purchase_id = p.id)))
      from public.purchases p
      cross join lateral app.payment_rule(p.provider, p.provider_payment_id, p.credits) r
     where p.grant_id is not null
       and (p.credits_granted <> r.o_kept or p.status is distinct from r.o_status
         or (select coalesce(sum(l.delta_available - l.delta_debt), 0) from public.credit_ledger l where l.purchase_id = p.id) <> r.o_kept
         or (select coalesce(sum(t.amount - t.given_back), 0) from public.payment_take_backs t where t.purchase_id = p.id) <> p.credits - r.o_kept)
  )
  select coalesce(jsonb_agg(v), '[]'::jsonb) into v_violations from violations;
  return v_violations;
end;
$$;
comment on function public.reconcile() is 'Service role: every violated credit invariant (balance vs ledger sum, ledger running balances, available vs grants remaining, held vs active holds, hold allocations, debt only when nothing is available, jobs vs holds, purchases granted once, paid purchases vs the payment rule, their ledger rows and take-back pieces) as a JSON array; [] when all hold.';
revoke all on function public.reconcile() from public, anon, authenticated, service_role;
grant execute on function public.reconcile() to service_role;
