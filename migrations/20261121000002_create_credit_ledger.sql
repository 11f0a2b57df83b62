-- Create credit grants, holds and the immutable ledger, the internal functions that move credits, and list_ledger.

-- How credits move (the rules every function below follows):
-- * A grant is a bucket of credits from one source (welcome, purchase, promotion, adjustment), paid or
--   promotional, with an optional expiry. grants.remaining is what is still spendable in the bucket;
--   the sum of remaining over a user's grants equals credit_balances.available.
-- * Draw-down order: soonest expiry first (no expiry last); at equal expiry promotional before paid;
--   then oldest first. Spending never touches an expired bucket.
-- * A hold reserves credits for one job, taken from specific grants (credit_hold_allocations). Capture
--   consumes allocations in the same draw-down order; release returns each allocation to the grant it
--   came from, keeping that grant's expiry (returned credits whose grant has meanwhile expired are
--   expired at once, with their own ledger row).
-- * Debt: a refund or chargeback takes back what is still available and records the rest as debt.
--   While debt > 0 nothing can be spent; new credits repay the debt before they become available.
-- * Every change goes through app.post_ledger_entry, which updates the cached balance and appends one
--   ledger row carrying the deltas and the balance after, under the caller's lock on the balance row.
-- * Lock order, everywhere: job, then hold, then the user's balance row, then that user's grants.

-- Grants.
create table public.credit_grants (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id),
  source text not null,
  kind text not null,
  amount integer not null,
  remaining integer not null,
  expires_at timestamptz,
  purchase_id uuid,
  description text,
  created_at timestamptz not null default now(),
  expired_at timestamptz,
  constraint credit_grants_source_check check (source in ('welcome', 'purchase', 'promotion', 'adjustment')),
  constraint credit_grants_kind_check check (kind in ('paid', 'promotional')),
  constraint credit_grants_amount_positive_check check (amount > 0),
  constraint credit_grants_remaining_range_check check (remaining between 0 and amount),
  constraint credit_grants_description_length_check check (char_length(description) <= 500)
);
comment on table public.credit_grants is 'Buckets of credits (welcome, purchase, promotion, adjustment), paid or promotional, with what remains and when it expires. Written only by the credit functions.';
comment on column public.credit_grants.kind is 'paid (bought) or promotional (given); at equal expiry promotional credits are spent first.';
comment on column public.credit_grants.remaining is 'Credits of this grant still spendable (not held, captured, expired or taken back).';
comment on column public.credit_grants.expires_at is 'When the remaining credits expire; null for never.';
-- Serves RLS (own rows) and the draw-down scan of a user's non-empty grants.
create index credit_grants_user_id_expires_at_idx on public.credit_grants (user_id, expires_at) where remaining > 0;
-- Serves expire_credits: non-empty grants by expiry across users.
create index credit_grants_expires_at_idx on public.credit_grants (expires_at) where remaining > 0 and expires_at is not null;
-- Serves the RLS filter and listing all of a user's grants.
create index credit_grants_user_id_idx on public.credit_grants (user_id);

-- Holds.
create table public.credit_holds (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id),
  job_id uuid,
  amount integer not null,
  captured integer not null default 0,
  status text not null default 'active',
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  settled_at timestamptz,
  constraint credit_holds_amount_positive_check check (amount > 0),
  constraint credit_holds_captured_range_check check (captured between 0 and amount),
  constraint credit_holds_status_check check (status in ('active', 'captured', 'released', 'expired')),
  constraint credit_holds_settled_check check ((status = 'active') = (settled_at is null))
);
comment on table public.credit_holds is 'Credits reserved for one job until it completes (capture), fails (release) or the hold expires.';
comment on column public.credit_holds.captured is 'Credits finally charged; the rest was returned to the grants.';
-- Serves RLS (own rows).
create index credit_holds_user_id_idx on public.credit_holds (user_id);
-- Serves expire_stale_holds: active holds by expiry.
create index credit_holds_active_expires_at_idx on public.credit_holds (expires_at) where status = 'active';

create table public.credit_hold_allocations (
  hold_id uuid not null references public.credit_holds (id),
  grant_id uuid not null references public.credit_grants (id),
  user_id uuid not null references auth.users (id),
  amount integer not null,
  captured integer not null default 0,
  released integer not null default 0,
  constraint credit_hold_allocations_pkey primary key (hold_id, grant_id),
  constraint credit_hold_allocations_amount_positive_check check (amount > 0),
  constraint credit_hold_allocations_settled_range_check check (captured >= 0 and released >= 0 and captured + released <= amount)
);
comment on table public.credit_hold_allocations is 'Which grants a hold drew from and how much; settlement captures or returns each part.';
-- Serves RLS (own rows).
create index credit_hold_allocations_user_id_idx on public.credit_hold_allocations (user_id);
-- Serves lookups of the holds that drew on a grant.
create index credit_hold_allocations_grant_id_idx on public.credit_hold_allocations (grant_id);

-- The ledger: append-only, one row per change.
create table public.credit_ledger (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id),
  type text not null,
  delta_available integer not null,
  delta_held integer not null,
  delta_debt integer not null,
  balance_available_after integer not null,
  balance_held_after integer not null,
  balance_debt_after integer not null,
  grant_id uuid references public.credit_grants (id),
  hold_id uuid references public.credit_holds (id),
  job_id uuid,
  purchase_id uuid,
  idempotency_key text,
  description text,
  created_at timestamptz not null default now(),
  constraint credit_ledger_type_check check (type in (
    'grant', 'purchase', 'hold', 'capture', 'release', 'refund', 'expire', 'clawback', 'adjustment')),
  constraint credit_ledger_nonzero_check check (delta_available <> 0 or delta_held <> 0 or delta_debt <> 0),
  constraint credit_ledger_balance_after_nonnegative_check check (
    balance_available_after >= 0 and balance_held_after >= 0 and balance_debt_after >= 0),
  constraint credit_ledger_idempotency_key_length_check check (char_length(idempotency_key) <= 255),
  constraint credit_ledger_description_length_check check (char_length(description) <= 500)
);
comment on table public.credit_ledger is 'Immutable record of every credit change: type, deltas, balance after, and what caused it. No UPDATE or DELETE, by grants and by trigger.';
comment on column public.credit_ledger.type is 'grant, purchase, hold, capture, release, refund, expire, clawback or adjustment.';
comment on column public.credit_ledger.delta_available is 'Change of available credits.';
comment on column public.credit_ledger.delta_held is 'Change of held credits.';
comment on column public.credit_ledger.delta_debt is 'Change of debt.';
comment on column public.credit_ledger.balance_available_after is 'Available credits right after this entry.';
-- Serves list_ledger (keyset on id, newest first, per user), the RLS filter and reconcile.
create index credit_ledger_user_id_id_idx on public.credit_ledger (user_id, id desc);

create or replace function app.forbid_ledger_change()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  raise exception using
    errcode = '42501',
    message = 'The credit ledger is append-only.',
    hint = 'ledger_immutable';
end;
$$;
comment on function app.forbid_ledger_change() is 'Trigger: refuses UPDATE, DELETE and TRUNCATE on the ledger.';

create trigger credit_ledger_forbid_update_delete
  before update or delete on public.credit_ledger
  for each row execute function app.forbid_ledger_change();
create trigger credit_ledger_forbid_truncate
  before truncate on public.credit_ledger
  for each statement execute function app.forbid_ledger_change();

-- Privileges and RLS: users read their own rows; service_role reads everything; nobody writes
-- directly (the SECURITY DEFINER functions below write as the table owner).
alter table public.credit_grants enable row level security;
alter table public.credit_holds enable row level security;
alter table public.credit_hold_allocations enable row level security;
alter table public.credit_ledger enable row level security;

revoke all on table public.credit_grants, public.credit_holds, public.credit_hold_allocations, public.credit_ledger
  from public, anon, authenticated, service_role;
grant select on table public.credit_grants, public.credit_holds, public.credit_hold_allocations, public.credit_ledger
  to authenticated, service_role;

create policy "Users can read their own grants"
  on public.credit_grants for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read grants"
  on public.credit_grants for select to service_role
  using (true);
create policy "Users can read their own holds"
  on public.credit_holds for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read holds"
  on public.credit_holds for select to service_role
  using (true);
create policy "Users can read their own hold allocations"
  on public.credit_hold_allocations for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read hold allocations"
  on public.credit_hold_allocations for select to service_role
  using (true);
create policy "Users can read their own ledger entries"
  on public.credit_ledger for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read the ledger"
  on public.credit_ledger for select to service_role
  using (true);

-- Internal functions. None is executable by any API role; the public RPCs call them as owner.

-- Locks the user's balance row (creating it for users who predate this bundle) and returns it.
create or replace function app.lock_balance(p_user_id uuid)
returns public.credit_balances
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_balance public.credit_balances;
begin
  select * into v_balance from public.credit_balances where user_id = p_user_id for update;
  if not found then
    insert into public.credit_balances (user_id) values (p_user_id) on conflict (user_id) do nothing;
    select * into v_balance from public.credit_balances where user_id = p_user_id for update;
  end if;
  return v_balance;
end;
$$;

-- The only writer of credit_balances and credit_ledger. The caller holds the balance row lock.
create or replace function app.post_ledger_entry(
  p_user_id uuid,
  p_type text,
  p_delta_available integer,
  p_delta_held integer,
  p_delta_debt integer,
  p_grant_id uuid default null,
  p_hold_id uuid default null,
  p_job_id uuid default null,
  p_purchase_id uuid default null,
  p_idempotency_key text default null,
  p_description text default null
)
returns public.credit_balances
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_balance public.credit_balances;
begin
  update public.credit_balances
     set available = available + p_delta_available,
         held = held + p_delta_held,
         debt = debt + p_delta_debt,
         updated_at = pg_catalog.now()
   where user_id = p_user_id
  returning * into v_balance;
  if not found then
    raise exception 'no balance row for user %', p_user_id;
  end if;
  insert into public.credit_ledger (
    user_id, type, delta_available, delta_held, delta_debt,
    balance_available_after, balance_held_after, balance_debt_after,
    grant_id, hold_id, job_id, purchase_id, idempotency_key, description)
  values (
    p_user_id, p_type, p_delta_available, p_delta_held, p_delta_debt,
    v_balance.available, v_balance.held, v_balance.debt,
    p_grant_id, p_hold_id, p_job_id, p_purchase_id, p_idempotency_key, p_description);
  return v_balance;
end;
$$;

-- Expires the user's grants whose expiry has passed (one 'expire' row each). Caller holds the lock.
create or replace function app.expire_due_grants(p_user_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_grant record;
  v_total integer := 0;
begin
  for v_grant in
    select id, remaining from public.credit_grants
     where user_id = p_user_id and remaining > 0 and expires_at <= app.now()
     order by expires_at, id
     for update
  loop
    update public.credit_grants set remaining = 0, expired_at = app.now() where id = v_grant.id;
    perform app.post_ledger_entry(p_user_id, 'expire', -v_grant.remaining, 0, 0,
      p_grant_id => v_grant.id, p_description => 'Credits expired');
    v_total := v_total + v_grant.remaining;
  end loop;
  return v_total;
end;
$$;

-- Adds a grant, repaying debt first. Locks the balance itself. Returns the grant id.
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
set search_path = ''
as $$
declare
  v_balance public.credit_balances := app.lock_balance(p_user_id);
  v_repay integer := least(v_balance.debt, p_amount);
  v_grant_id uuid;
begin
  insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, purchase_id, description, created_at)
  values (p_user_id, p_source, p_kind, p_amount, p_amount - v_repay, p_expires_at, p_purchase_id, p_description, pg_catalog.now())
  returning id into v_grant_id;
  perform app.post_ledger_entry(p_user_id, p_ledger_type, p_amount - v_repay, 0, -v_repay,
    p_grant_id => v_grant_id, p_purchase_id => p_purchase_id,
    p_description => case when v_repay > 0 then p_description || ' (' || v_repay || ' repaid debt)' else p_description end);
  return v_grant_id;
end;
$$;

-- Reserves p_amount from the user's grants in draw-down order. The caller has locked the balance,
-- expired due grants and checked that available >= p_amount. Returns the hold id.
create or replace function app.create_hold(
  p_user_id uuid,
  p_amount integer,
  p_expires_at timestamptz,
  p_job_id uuid default null,
  p_idempotency_key text default null
)
returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_hold_id uuid;
  v_grant record;
  v_left integer := p_amount;
  v_take integer;
begin
  insert into public.credit_holds (user_id, job_id, amount, expires_at, created_at)
  values (p_user_id, p_job_id, p_amount, p_expires_at, pg_catalog.now())
  returning id into v_hold_id;
  for v_grant in
    select id, remaining from public.credit_grants
     where user_id = p_user_id and remaining > 0 and (expires_at is null or expires_at > app.now())
     order by expires_at asc nulls last, (kind = 'paid') asc, created_at asc, id asc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
    insert into public.credit_hold_allocations (hold_id, grant_id, user_id, amount)
    values (v_hold_id, v_grant.id, p_user_id, v_take);
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    raise exception using errcode = 'PT402', message = 'Not enough credits.', hint = 'insufficient_credits';
  end if;
  perform app.post_ledger_entry(p_user_id, 'hold', -p_amount, p_amount, 0,
    p_hold_id => v_hold_id, p_job_id => p_job_id, p_idempotency_key => p_idempotency_key,
    p_description => 'Credits reserved');
  return v_hold_id;
end;
$$;

-- Repays debt from available credits (credits returned by a released hold while the user owed
-- debt), so that debt > 0 always means available = 0. Caller holds the lock and has expired due
-- grants. One 'clawback' row. Returns the credits repaid.
create or replace function app.repay_debt_from_available(p_user_id uuid)
returns integer
language plpgsql
security definer
set search_path = ''
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
     where user_id = p_user_id and remaining > 0
     order by expires_at asc nulls last, (kind = 'paid') asc, created_at asc, id asc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
    v_left := v_left - v_take;
  end loop;
  perform app.post_ledger_entry(p_user_id, 'clawback', -(v_repay - v_left), 0, -(v_repay - v_left),
    p_description => 'Debt repaid from returned credits');
  return v_repay - v_left;
end;
$$;

-- Settles an active hold: captures p_capture credits (allocations in draw-down order) and returns the
-- rest to the grants they came from. p_status is the final status when nothing is captured
-- ('released' or 'expired'). Locks the hold then the balance. Settling a settled hold does nothing.
create or replace function app.settle_hold(p_hold_id uuid, p_capture integer, p_status text default 'released')
returns public.credit_holds
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_hold public.credit_holds;
  v_alloc record;
  v_capture_left integer;
  v_cap integer;
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
      update public.credit_grants set remaining = remaining + (v_alloc.amount - v_cap) where id = v_alloc.grant_id;
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

-- Takes p_amount back from a user (refund or chargeback): first from p_grant_id, then from the other
-- grants in draw-down order; whatever is not available becomes debt. One ledger row. Returns
-- {"taken": int, "debt": int}.
create or replace function app.take_back(
  p_user_id uuid,
  p_amount integer,
  p_type text,
  p_grant_id uuid default null,
  p_purchase_id uuid default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_grant record;
  v_left integer := p_amount;
  v_take integer;
begin
  perform app.lock_balance(p_user_id);
  perform app.expire_due_grants(p_user_id);
  for v_grant in
    select id, remaining from public.credit_grants
     where user_id = p_user_id and remaining > 0
     order by (id is not distinct from p_grant_id) desc, expires_at asc nulls last, (kind = 'paid') asc, created_at asc, id asc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
    v_left := v_left - v_take;
  end loop;
  perform app.post_ledger_entry(p_user_id, p_type, -(p_amount - v_left), 0, v_left,
    p_grant_id => p_grant_id, p_purchase_id => p_purchase_id,
    p_description => case p_type when 'refund' then 'Credits taken back after a refund' else 'Credits taken back after a chargeback' end);
  return jsonb_build_object('taken', p_amount - v_left, 'debt', v_left);
end;
$$;

comment on function app.lock_balance(uuid) is 'Locks (creating if needed) a user''s balance row.';
comment on function app.post_ledger_entry(uuid, text, integer, integer, integer, uuid, uuid, uuid, uuid, text, text) is 'The only writer of balances and ledger rows.';
comment on function app.expire_due_grants(uuid) is 'Expires a user''s grants past their expiry.';
comment on function app.repay_debt_from_available(uuid) is 'Repays debt from available credits.';
comment on function app.add_grant(uuid, text, text, integer, timestamptz, text, uuid, text) is 'Adds a grant (repaying debt first).';
comment on function app.create_hold(uuid, integer, timestamptz, uuid, text) is 'Reserves credits from grants in draw-down order.';
comment on function app.settle_hold(uuid, integer, text) is 'Captures part of a hold and returns the rest to its grants.';
comment on function app.take_back(uuid, integer, text, uuid, uuid) is 'Takes credits back after a refund or chargeback, recording any shortfall as debt.';

-- The balance as every RPC answers it (get_balance, generate), now with expiring credits. Expired
-- credits not yet swept by expire_credits are already left out of available, so the figure is
-- right without a write.
create or replace function app.balance_json(p_user_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := app.now();
  v_balance public.credit_balances;
  v_expired integer;
  v_expiring integer;
begin
  select * into v_balance from public.credit_balances where user_id = p_user_id;
  select coalesce(sum(remaining) filter (where expires_at <= v_now), 0)::integer,
         coalesce(sum(remaining) filter (where expires_at > v_now and expires_at <= v_now + interval '7 days'), 0)::integer
    into v_expired, v_expiring
    from public.credit_grants
   where user_id = p_user_id and remaining > 0 and expires_at is not null;
  return jsonb_build_object(
    'available', coalesce(v_balance.available, 0) - v_expired,
    'held', coalesce(v_balance.held, 0),
    'expiring_soon', v_expiring,
    'debt', coalesce(v_balance.debt, 0));
end;
$$;
comment on function app.balance_json(uuid) is 'A user''s balance as {"available", "held", "expiring_soon", "debt"}.';
revoke all on function app.balance_json(uuid) from public, anon, authenticated, service_role;

create or replace function public.get_balance()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return app.balance_json(app.require_user());
end;
$$;
comment on function public.get_balance() is 'The caller''s credits: {"available", "held", "expiring_soon" (within 7 days), "debt"}. Raises 42501 (unauthenticated) without a user.';

-- list_ledger: the caller's ledger, newest first, keyset-paginated on id.
create or replace function public.list_ledger(p_before bigint default null, p_limit integer default 50)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := app.require_user();
  v_limit integer := least(coalesce(p_limit, 50), 100);
  v_items jsonb;
  v_count integer;
begin
  if v_limit < 1 then
    raise exception using errcode = '22023', message = 'p_limit must be at least 1.', hint = 'invalid_request', detail = 'p_limit';
  end if;
  select coalesce(jsonb_agg(to_jsonb(e) order by e.id desc), '[]'::jsonb), count(*)
    into v_items, v_count
    from (
      select l.id, l.type, l.delta_available, l.delta_held, l.delta_debt,
             l.balance_available_after, l.balance_held_after, l.balance_debt_after,
             l.grant_id, l.hold_id, l.job_id, l.purchase_id, l.description, l.created_at
        from public.credit_ledger l
       where l.user_id = v_user_id and (p_before is null or l.id < p_before)
       order by l.id desc
       limit v_limit + 1
    ) e;
  if v_count > v_limit then
    v_items := v_items - v_limit;  -- drop the extra row fetched to detect a next page
    return jsonb_build_object('items', v_items, 'next_before', (v_items -> (v_limit - 1) ->> 'id')::bigint);
  end if;
  return jsonb_build_object('items', v_items, 'next_before', null);
end;
$$;
comment on function public.list_ledger(bigint, integer) is 'The caller''s ledger, newest first: {"items": [...], "next_before": id|null}. Pass next_before as p_before for the next page; p_limit 1..100 (default 50, capped at 100).';

revoke all on function
  app.forbid_ledger_change(), app.lock_balance(uuid),
  app.post_ledger_entry(uuid, text, integer, integer, integer, uuid, uuid, uuid, uuid, text, text),
  app.expire_due_grants(uuid), app.repay_debt_from_available(uuid), app.add_grant(uuid, text, text, integer, timestamptz, text, uuid, text),
  app.create_hold(uuid, integer, timestamptz, uuid, text), app.settle_hold(uuid, integer, text),
  app.take_back(uuid, integer, text, uuid, uuid)
  from public, anon, authenticated, service_role;
revoke all on function public.list_ledger(bigint, integer) from public, anon, authenticated, service_role;
grant execute on function public.list_ledger(bigint, integer) to authenticated;
