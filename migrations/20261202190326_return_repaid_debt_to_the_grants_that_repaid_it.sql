-- A give-back that cancels debt the user has already repaid returns those credits, newest repayment first, to the more durable of the grant that repaid them and the payment's (or reward's) own grant, no longer always to the own grant, which lost them when it was the one to expire (a subscription period's grant whose debt a pack repaid: 15 left instead of 100).

-- Why (migrations/README.md, "Give back"): the give-back cannot redo what was drawn between the
-- repayment and it, so neither grant alone is right in every order of events. The own grant alone
-- loses the credits when it expires first (above); the repaying grant alone loses them when it
-- expires after a job was paid from another grant because it was empty (promotional grant A repaid
-- the debt, a job drew from pack Y, the dispute was won: 40 left where the other order leaves 100).
-- The more durable of the two keeps at least what either keeps; not exact: promotional credits
-- that repaid the debt may come back as the payment's own.

create table public.debt_repayments (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.profiles (user_id),
  grant_id uuid not null references public.credit_grants (id),
  amount integer not null,
  returned integer not null default 0,
  created_at timestamptz not null default now(),
  constraint debt_repayments_amount_positive_check check (amount > 0),
  constraint debt_repayments_returned_range_check check (returned between 0 and amount)
);
comment on table public.debt_repayments is 'Each piece of debt repaid: the grant it was repaid from and how much. A give-back of debt already repaid returns credits to these grants, newest first. Written only by the credit functions.';
comment on column public.debt_repayments.returned is 'How much of this repayment a later give-back has returned to its grant.';
-- Serves the give-back: a user's repayments not yet returned, newest first.
create index debt_repayments_user_id_id_idx on public.debt_repayments (user_id, id desc) where returned < amount;
-- Serves the foreign keys.
create index debt_repayments_user_id_idx on public.debt_repayments (user_id);
create index debt_repayments_grant_id_idx on public.debt_repayments (grant_id);

alter table public.debt_repayments enable row level security;
revoke all on table public.debt_repayments from public, anon, authenticated, service_role;
grant select on table public.debt_repayments to service_role;
create policy "Service role can read debt repayments"
  on public.debt_repayments for select to service_role using (true);

-- Returns p_amount of repaid debt, newest repayment first: each piece to the more durable of the
-- grant that repaid it and p_fallback_grant_id (the payment's or reward's own grant), in repayment
-- order (never-expiring, then latest expiry; at equal expiry paid before promotional; at equal
-- durability the repaying grant). What does not fit a grant's room becomes an adjustment grant of
-- its category and expiry, described by p_note. Repayments made before this migration have no
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
revoke all on function app.return_repaid_debt(uuid, integer, uuid, text) from public, anon, authenticated, service_role;

-- The body of 20261121000002_create_credit_ledger.sql, with the repayment recorded.
create or replace function app.add_grant(
  p_user_id uuid,
  p_source text,
  p_kind text,
  p_amount integer,
  p_expires_at timestamptz,
  p_ledger_type text,
  p_purchase_id uuid default null,
  p_description text default null
)
returns uuid
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances := app.lock_balance(p_user_id);
  v_repay integer := least(v_balance.debt, p_amount);
  v_grant_id uuid;
begin
  insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, purchase_id, description, created_at)
  values (p_user_id, p_source, p_kind, p_amount, p_amount - v_repay, p_expires_at, p_purchase_id, p_description, pg_catalog.now())
  returning id into v_grant_id;
  if v_repay > 0 then
    insert into public.debt_repayments (user_id, grant_id, amount) values (p_user_id, v_grant_id, v_repay);
  end if;
  perform app.post_ledger_entry(p_user_id, p_ledger_type, p_amount - v_repay, 0, -v_repay,
    p_grant_id => v_grant_id, p_purchase_id => p_purchase_id,
    p_description => case when v_repay > 0 then p_description || ' (' || v_repay || ' repaid debt)' else p_description end);
  return v_grant_id;
end;
$$;

-- The body of 20261202041933_create_admin_tools_and_spend_limits.sql, with the repayment recorded.
create or replace function app.admin_add_grant(
  p_user_id uuid, p_source text, p_kind text, p_amount integer, p_expires_at timestamptz, p_ledger_type text,
  p_job_id uuid, p_key text, p_description text)
returns uuid
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances := app.lock_balance(p_user_id);
  v_repay integer := least(v_balance.debt, p_amount);
  v_grant_id uuid;
begin
  insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, description, created_at)
  values (p_user_id, p_source, p_kind, p_amount, p_amount - v_repay, p_expires_at, p_description, pg_catalog.now())
  returning id into v_grant_id;
  if v_repay > 0 then
    insert into public.debt_repayments (user_id, grant_id, amount) values (p_user_id, v_grant_id, v_repay);
  end if;
  perform app.post_ledger_entry(p_user_id, p_ledger_type, p_amount - v_repay, 0, -v_repay,
    p_grant_id => v_grant_id, p_job_id => p_job_id, p_idempotency_key => p_key,
    p_description => case when v_repay > 0 then p_description || ' (' || v_repay || ' repaid debt)' else p_description end);
  return v_grant_id;
end;
$$;

-- The body of 20261202012240_create_payment_states.sql, with each grant's repayment recorded.
create or replace function app.repay_debt_from_available(p_user_id uuid)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances;
  v_grant record;
  v_repay integer;
  v_left integer;
  v_take integer;
begin
  select * into v_balance from public.credit_balances where user_id = p_user_id;
  v_repay := least(v_balance.debt, v_balance.available);
  if v_repay <= 0 then
    return 0;
  end if;
  v_left := v_repay;
  for v_grant in
    select id, remaining from public.credit_grants
     where user_id = p_user_id and remaining > 0 and (expires_at is null or expires_at > app.now())
     order by expires_at desc nulls first, (kind = 'paid') desc, created_at desc, id desc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
    insert into public.debt_repayments (user_id, grant_id, amount) values (p_user_id, v_grant.id, v_take);
    v_left := v_left - v_take;
  end loop;
  if v_repay - v_left > 0 then
    perform app.post_ledger_entry(p_user_id, 'clawback', -(v_repay - v_left), 0, -(v_repay - v_left),
      p_description => 'Debt repaid from returned credits');
  end if;
  return v_repay - v_left;
end;
$$;

-- The body of 20261202012240_create_payment_states.sql; what the user repaid of a debt piece now
-- returns to the more durable of the grant that repaid it and the own grant (app.return_repaid_debt).
create or replace function app.payment_give_back(p_purchase public.purchases, p_amount integer)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances;
  v_piece record;
  v_left integer := p_amount;
  v_undo integer;
  v_cancel integer;
  v_available integer := 0;
  v_debt_cancelled integer := 0;
begin
  select * into v_balance from public.credit_balances where user_id = p_purchase.user_id;
  for v_piece in
    select id, grant_id, amount - given_back as open from public.payment_take_backs
     where purchase_id = p_purchase.id and given_back < amount
     order by id desc
     for update
  loop
    exit when v_left = 0;
    v_undo := least(v_left, v_piece.open);
    update public.payment_take_backs set given_back = given_back + v_undo where id = v_piece.id;
    if v_piece.grant_id is not null then
      perform app.return_to_grant(v_piece.grant_id, v_undo, p_purchase.id);
      v_available := v_available + v_undo;
    else
      v_cancel := least(v_undo, v_balance.debt - v_debt_cancelled);
      v_debt_cancelled := v_debt_cancelled + v_cancel;
      if v_undo - v_cancel > 0 then
        perform app.return_repaid_debt(p_purchase.user_id, v_undo - v_cancel, p_purchase.grant_id,
          'Credits given back for purchase ' || p_purchase.id::text);
        v_available := v_available + (v_undo - v_cancel);
      end if;
    end if;
    v_left := v_left - v_undo;
  end loop;
  if v_available > 0 or v_debt_cancelled > 0 then
    perform app.post_ledger_entry(p_purchase.user_id, 'adjustment', v_available, 0, -v_debt_cancelled,
      p_grant_id => p_purchase.grant_id, p_purchase_id => p_purchase.id,
      p_description => 'Credits given back (dispute won or refund reversed)');
  end if;
  perform app.expire_due_grants(p_purchase.user_id);
  perform app.repay_debt_from_available(p_purchase.user_id);
  return p_amount - v_left;
end;
$$;

-- The body of 20261202072223_keep_invitee_purchase_out_of_give_back_grants.sql; what the inviter
-- repaid of a debt piece now returns to the more durable of the grant that repaid it and the reward grant (app.return_repaid_debt).
create or replace function app.invite_give_back(p_invite public.invites, p_amount integer, p_purchase_id uuid)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances;
  v_piece record;
  v_left integer := p_amount;
  v_undo integer;
  v_cancel integer;
  v_available integer := 0;
  v_debt_cancelled integer := 0;
  v_note constant text := 'Invite reward given back (beyond the room of the grant it was taken from)';
begin
  if p_purchase_id is distinct from p_invite.purchase_id then
    raise exception using errcode = 'P0001', message = 'invite_give_back: the purchase is not the invite''s first purchase.';
  end if;
  select * into v_balance from public.credit_balances where user_id = p_invite.inviter_id;
  for v_piece in
    select id, grant_id, amount - given_back as open from public.invite_take_backs
     where invitee_id = p_invite.invitee_id and given_back < amount
     order by id desc
     for update
  loop
    exit when v_left = 0;
    v_undo := least(v_left, v_piece.open);
    update public.invite_take_backs set given_back = given_back + v_undo where id = v_piece.id;
    if v_piece.grant_id is not null then
      perform app.return_to_grant_described(v_piece.grant_id, v_undo, v_note);
      v_available := v_available + v_undo;
    else
      v_cancel := least(v_undo, v_balance.debt - v_debt_cancelled);
      v_debt_cancelled := v_debt_cancelled + v_cancel;
      if v_undo - v_cancel > 0 then
        perform app.return_repaid_debt(p_invite.inviter_id, v_undo - v_cancel, p_invite.reward_grant_id, v_note);
        v_available := v_available + (v_undo - v_cancel);
      end if;
    end if;
    v_left := v_left - v_undo;
  end loop;
  if v_available > 0 or v_debt_cancelled > 0 then
    perform app.post_ledger_entry(p_invite.inviter_id, 'adjustment', v_available, 0, -v_debt_cancelled,
      p_grant_id => p_invite.reward_grant_id,
      p_description => 'Invite reward given back (the invitee''s first purchase stands again)');
  end if;
  perform app.expire_due_grants(p_invite.inviter_id);
  perform app.repay_debt_from_available(p_invite.inviter_id);
end;
$$;
