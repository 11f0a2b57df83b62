-- Settling a hold returns held credits that no longer fit their grant (refilled by a give-back meanwhile) as an adjustment grant of the same category and expiry, instead of failing on credit_grants_remaining_range_check (found by the money model, seed 21).

create or replace function app.settle_hold(p_hold_id uuid, p_capture integer, p_status text default 'released')
returns public.credit_holds
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_hold public.credit_holds;
  v_alloc record;
  v_capture_left integer;
  v_cap integer;
  v_grant public.credit_grants;
  v_back integer;
  v_fit integer;
begin
  select * into v_hold from public.credit_holds where id = p_hold_id for update;
  if not found or v_hold.status <> 'active' then
    return v_hold;
  end if;
  if p_capture < 0 or p_capture > v_hold.amount then
    raise exception using errcode = '22023', message = 'The amount to capture must be between 0 and the amount held.',
      hint = 'invalid_request', detail = 'actual_cost';
  end if;
  perform app.lock_balance(v_hold.user_id);
  v_capture_left := p_capture;
  for v_alloc in
    select a.grant_id, a.amount
      from public.credit_hold_allocations a
      join public.credit_grants g on g.id = a.grant_id
     where a.hold_id = p_hold_id
     order by g.expires_at asc nulls last, (g.kind = 'paid') asc, g.created_at asc, g.id asc
  loop
    v_cap := least(v_capture_left, v_alloc.amount);
    v_capture_left := v_capture_left - v_cap;
    update public.credit_hold_allocations
       set captured = v_cap, released = v_alloc.amount - v_cap
     where hold_id = p_hold_id and grant_id = v_alloc.grant_id;
    if v_alloc.amount - v_cap > 0 then
      -- A grant never holds more than its amount: after a refund's take-back and a dispute's
      -- give-back have refilled it, held credits coming back may not fit; the excess becomes an
      -- adjustment grant of the same category and expiry (migrations/README.md, Money mechanics).
      v_back := v_alloc.amount - v_cap;
      select * into v_grant from public.credit_grants where id = v_alloc.grant_id for update;
      v_fit := least(v_back, v_grant.amount - v_grant.remaining);
      if v_fit > 0 then
        update public.credit_grants set remaining = remaining + v_fit where id = v_alloc.grant_id;
      end if;
      if v_back - v_fit > 0 then
        insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, description, created_at)
        values (v_grant.user_id, 'adjustment', v_grant.kind, v_back - v_fit, v_back - v_fit, v_grant.expires_at,
                'Reserved credits returned beyond their grant''s room', pg_catalog.now());
      end if;
    end if;
  end loop;
  update public.credit_holds
     set status = case when p_capture > 0 then 'captured' else p_status end,
         captured = p_capture,
         settled_at = pg_catalog.now()
   where id = p_hold_id
  returning * into v_hold;
  if p_capture > 0 then
    perform app.post_ledger_entry(v_hold.user_id, 'capture', 0, -p_capture, 0,
      p_hold_id => p_hold_id, p_job_id => v_hold.job_id, p_description => 'Credits charged');
  end if;
  if v_hold.amount - p_capture > 0 then
    perform app.post_ledger_entry(v_hold.user_id, 'release', v_hold.amount - p_capture, -(v_hold.amount - p_capture), 0,
      p_hold_id => p_hold_id, p_job_id => v_hold.job_id, p_description => 'Reserved credits returned');
  end if;
  -- Credits returned to a grant that expired while they were held expire now; the rest repays any debt.
  perform app.expire_due_grants(v_hold.user_id);
  perform app.repay_debt_from_available(v_hold.user_id);
  return v_hold;
end;
$$;

comment on function app.settle_hold(uuid, integer, text) is 'Captures part of a hold and returns the rest to its grants (what no longer fits a grant becomes an adjustment grant of the same category and expiry).';
