-- Repaid debt given back goes to the more durable of the grant that repaid it and the payment's (or invite reward's) own grant (at equal durability, to the grant that repaid it), so the user keeps at least as much, at every later time, as either grant alone would leave.

-- Why (review of 20261202190326): returning repaid credits to the repaying grant is exact only if
-- nothing was drawn between the repayment and the give-back. Debt repaid by a promotional grant A
-- (expiring), then a job paid from pack Y because A was empty, then the dispute won: the credits went
-- back to A and expired with it, and the job's credits stayed spent from Y: 40 left where the other
-- order (win first, the job drawn from A) leaves 100. The payment's own grant alone (the rule before
-- 20261202190326) loses the same way when it is the less durable one (a subscription period's grant
-- expiring at the period's end while a pack repaid the debt: 15 left instead of 100). The more
-- durable of the two keeps at least what either keeps. Not exact (migrations/README.md, "Give
-- back"): promotional credits that repaid the debt may come back as the payment's own.

-- Returns p_amount of repaid debt, newest repayment first: each piece to the more durable of the
-- grant that repaid it and p_fallback_grant_id (the payment's or reward's own grant), in repayment
-- order (never-expiring, then latest expiry; at equal expiry paid before promotional; at equal
-- durability the repaying grant). What does not fit a grant's room becomes an adjustment grant of
-- its category and expiry, described by p_note. Repayments made before 20261202190326 have no
-- record: what the records do not cover goes to p_fallback_grant_id. Caller holds the balance lock.
create or replace function app.return_repaid_debt(p_user_id uuid, p_amount integer, p_fallback_grant_id uuid, p_note text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_rep record;
  v_left integer := p_amount;
  v_take integer;
  v_target uuid;
begin
  for v_rep in
    select id, grant_id, amount - returned as open from public.debt_repayments
     where user_id = p_user_id and returned < amount
     order by id desc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_rep.open);
    update public.debt_repayments set returned = returned + v_take where id = v_rep.id;
    select g.id into v_target from public.credit_grants g
     where g.id in (v_rep.grant_id, p_fallback_grant_id)
     order by g.expires_at desc nulls first, (g.kind = 'paid') desc, (g.id = v_rep.grant_id) desc
     limit 1;
    perform app.return_to_grant_described(v_target, v_take, p_note);
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    perform app.return_to_grant_described(p_fallback_grant_id, v_left, p_note);
  end if;
end;
$$;
comment on function app.return_repaid_debt(uuid, integer, uuid, text) is 'Returns repaid debt, newest repayment first, each piece to the more durable of the grant that repaid it and the own grant (p_fallback_grant_id); unrecorded (older) repayments go to the own grant.';
