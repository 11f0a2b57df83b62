-- Name the purchase in the description of a grant made for credits given back beyond a grant's room (and so use app.return_to_grant's p_purchase_id, which supabase db lint flagged as unused).

create or replace function app.return_to_grant(p_grant_id uuid, p_amount integer, p_purchase_id uuid)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grant public.credit_grants;
  v_fit integer;
begin
  select * into v_grant from public.credit_grants where id = p_grant_id for update;
  v_fit := least(p_amount, v_grant.amount - v_grant.remaining);
  if v_fit > 0 then
    update public.credit_grants set remaining = remaining + v_fit where id = p_grant_id;
  end if;
  if p_amount - v_fit > 0 then
    insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, description, created_at)
    values (v_grant.user_id, 'adjustment', v_grant.kind, p_amount - v_fit, p_amount - v_fit, v_grant.expires_at,
            'Credits given back for purchase ' || p_purchase_id::text, pg_catalog.now());
  end if;
end;
$$;
comment on function app.return_to_grant(uuid, integer, uuid) is 'Gives credits back to the grant they were taken from (same category and expiry); what does not fit becomes an adjustment grant naming the purchase.';
