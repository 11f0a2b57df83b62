-- Create plans, subscriptions and their paid periods: each paid period is a payment (purchase row with a plan) granting its plan's credits until the period end, with rollover between consecutive periods (the subscription rules of migrations/README.md).

-- Lock order: payment (advisory, app.record_payment_event), subscription (advisory), balance, grants.

create table public.plans (
  id text primary key,
  name text not null,
  interval text not null,
  credits integer not null,
  rollover_max integer not null default 0,
  price_cents integer not null,
  currency text not null default 'usd',
  stripe_price_id text,
  app_store_product_id text,
  active boolean not null default true,
  sort_order integer not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint plans_id_format_check check (id ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
  constraint plans_name_length_check check (char_length(name) between 1 and 100),
  constraint plans_interval_check check (interval in ('month', 'year')),
  constraint plans_credits_positive_check check (credits > 0 and credits <= 1000000),
  constraint plans_rollover_max_range_check check (rollover_max between 0 and 1000000),
  constraint plans_price_positive_check check (price_cents > 0),
  constraint plans_currency_format_check check (currency ~ '^[a-z]{3}$'),
  constraint plans_stripe_price_id_length_check check (char_length(stripe_price_id) between 1 and 255),
  constraint plans_app_store_product_id_length_check check (char_length(app_store_product_id) between 1 and 255),
  constraint plans_stripe_price_id_key unique (stripe_price_id),
  constraint plans_app_store_product_id_key unique (app_store_product_id)
);
comment on table public.plans is 'Subscription plans: credits granted per paid period, expiring at the period end; rollover_max unspent credits carried into the next period (0: none). Seeded by supabase/seed.sql locally; a team adds its own.';
comment on column public.plans.rollover_max is 'Up to this many unspent credits of a period are carried into the next one (0: no rollover).';

alter table public.plans enable row level security;
revoke all on table public.plans from public, anon, authenticated, service_role;
grant select on table public.plans to anon, authenticated;
grant select, insert, update, delete on table public.plans to service_role;
create policy "Everyone can read active plans"
  on public.plans for select to anon, authenticated using (active);
create policy "Service role can read plans"
  on public.plans for select to service_role using (true);
create policy "Service role can add plans"
  on public.plans for insert to service_role with check (true);
create policy "Service role can change plans"
  on public.plans for update to service_role using (true) with check (true);
create policy "Service role can remove plans"
  on public.plans for delete to service_role using (true);

create table public.subscriptions (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id),
  provider text not null,
  provider_subscription_id text not null,
  plan_id text not null references public.plans (id),
  status text not null default 'active',
  current_period_start timestamptz,
  current_period_end timestamptz,
  cancel_at_period_end boolean not null default false,
  pending_plan_id text references public.plans (id),
  state_event_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint subscriptions_provider_check check (provider in ('stripe', 'app_store')),
  constraint subscriptions_provider_subscription_id_length_check check (char_length(provider_subscription_id) between 1 and 255),
  constraint subscriptions_status_check check (status in ('active', 'past_due', 'canceled', 'ended')),
  constraint subscriptions_period_order_check check (current_period_end > current_period_start),
  constraint subscriptions_provider_subscription_id_key unique (provider, provider_subscription_id)
);
comment on table public.subscriptions is 'A user''s subscription at a provider (Stripe subscription id, App Store originalTransactionId). Informational: money follows the paid periods (subscription_payments). Written only by the subscription functions.';
comment on column public.subscriptions.state_event_at is 'Provider time of the newest state event applied; an older one is ignored.';
comment on column public.subscriptions.pending_plan_id is 'A downgrade or change that takes effect at the period end.';
create index subscriptions_user_id_idx on public.subscriptions (user_id);
create index subscriptions_plan_id_idx on public.subscriptions (plan_id);
create index subscriptions_pending_plan_id_idx on public.subscriptions (pending_plan_id) where pending_plan_id is not null;

-- A paid period or upgrade is a purchase with a plan instead of a package.
alter table public.purchases alter column package_id drop not null;
alter table public.purchases add column plan_id text references public.plans (id);
alter table public.purchases add constraint purchases_package_or_plan_check check ((package_id is null) <> (plan_id is null));
comment on column public.purchases.plan_id is 'The plan of a subscription payment (a paid period or an upgrade); package_id is null then.';
create index purchases_plan_id_idx on public.purchases (plan_id) where plan_id is not null;

create table public.subscription_payments (
  provider text not null,
  provider_payment_id text not null,
  subscription_id uuid not null references public.subscriptions (id),
  purchase_id uuid references public.purchases (id),
  kind text not null,
  plan_id text not null references public.plans (id),
  from_plan_id text references public.plans (id),
  period_start timestamptz not null,
  period_end timestamptz not null,
  created_at timestamptz not null default now(),
  constraint subscription_payments_pkey primary key (provider, provider_payment_id),
  constraint subscription_payments_kind_check check (kind in ('period', 'upgrade')),
  constraint subscription_payments_upgrade_check check ((kind = 'upgrade') = (from_plan_id is not null)),
  constraint subscription_payments_period_order_check check (period_end > period_start)
);
comment on table public.subscription_payments is 'Each paid period (kind period) or mid-period upgrade of a subscription: the payment (provider + payment id, its purchase) and the period its credits last. Written only by the subscription functions.';
create index subscription_payments_subscription_idx on public.subscription_payments (subscription_id, period_end);
create index subscription_payments_purchase_id_idx on public.subscription_payments (purchase_id) where purchase_id is not null;
create index subscription_payments_plan_id_idx on public.subscription_payments (plan_id);
create index subscription_payments_from_plan_id_idx on public.subscription_payments (from_plan_id) where from_plan_id is not null;

create table public.subscription_rollovers (
  id bigint generated always as identity primary key,
  provider text not null,
  from_payment_id text not null,
  to_payment_id text not null,
  user_id uuid not null references public.profiles (user_id),
  credits integer not null,
  moved integer not null,
  grant_id uuid references public.credit_grants (id),
  created_at timestamptz not null default now(),
  constraint subscription_rollovers_from_fkey foreign key (provider, from_payment_id) references public.subscription_payments (provider, provider_payment_id),
  constraint subscription_rollovers_to_fkey foreign key (provider, to_payment_id) references public.subscription_payments (provider, provider_payment_id),
  constraint subscription_rollovers_from_key unique (provider, from_payment_id),
  constraint subscription_rollovers_to_key unique (provider, to_payment_id),
  constraint subscription_rollovers_amounts_check check (credits >= 0 and moved between 0 and credits)
);
comment on table public.subscription_rollovers is 'One rollover per pair of consecutive paid periods: credits carried (its own grant), of which moved came out of the earlier period''s unexpired grants. Written only by the subscription functions.';
create index subscription_rollovers_user_id_idx on public.subscription_rollovers (user_id);
create index subscription_rollovers_grant_id_idx on public.subscription_rollovers (grant_id) where grant_id is not null;

create table public.subscription_events (
  provider text not null,
  event_id text not null,
  event_type text,
  provider_subscription_id text not null,
  outcome text,
  received_at timestamptz not null default now(),
  constraint subscription_events_pkey primary key (provider, event_id),
  constraint subscription_events_event_id_length_check check (char_length(event_id) between 1 and 255),
  constraint subscription_events_event_type_length_check check (char_length(event_type) <= 255)
);
comment on table public.subscription_events is 'Subscription state events seen, once per provider event id. Written only by the subscription functions.';

alter table public.subscriptions enable row level security;
alter table public.subscription_payments enable row level security;
alter table public.subscription_rollovers enable row level security;
alter table public.subscription_events enable row level security;
revoke all on table public.subscriptions, public.subscription_payments, public.subscription_rollovers, public.subscription_events
  from public, anon, authenticated, service_role;
grant select on table public.subscriptions to authenticated;
grant select on table public.subscriptions, public.subscription_payments, public.subscription_rollovers, public.subscription_events
  to service_role;
create policy "Users can read their own subscriptions"
  on public.subscriptions for select to authenticated using (user_id = (select auth.uid()));
create policy "Service role can read subscriptions"
  on public.subscriptions for select to service_role using (true);
create policy "Service role can read subscription payments"
  on public.subscription_payments for select to service_role using (true);
create policy "Service role can read subscription rollovers"
  on public.subscription_rollovers for select to service_role using (true);
create policy "Service role can read subscription events"
  on public.subscription_events for select to service_role using (true);

-- The plan a provider names: a plan id, or the plan's Stripe price id / App Store product id.
create or replace function app.plan_id(p_provider text, p_ref text)
returns text
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return (select id from public.plans
           where id = p_ref
              or (p_provider = 'stripe' and stripe_price_id = p_ref)
              or (p_provider = 'app_store' and app_store_product_id = p_ref)
           order by (id = p_ref) desc limit 1);
end;
$$;
comment on function app.plan_id(text, text) is 'The plan id for a plan id, Stripe price id or App Store product id; null if none.';

-- The subscription row for a provider subscription (created on first sight), locked by the
-- subscription's advisory lock (taken after the payment's, before the balance's).
create or replace function app.subscription_row(
  p_provider text, p_provider_subscription_id text, p_user_id uuid, p_plan_id text)
returns public.subscriptions
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_sub public.subscriptions;
begin
  if p_provider_subscription_id is null or char_length(p_provider_subscription_id) not between 1 and 255 then
    raise exception using errcode = '22023', message = 'The subscription id must be 1 to 255 characters.',
      hint = 'invalid_request', detail = 'provider_subscription_id';
  end if;
  perform pg_catalog.pg_advisory_xact_lock(
    pg_catalog.hashtextextended(p_provider || ':subscription:' || p_provider_subscription_id, 0));
  select * into v_sub from public.subscriptions
   where provider = p_provider and provider_subscription_id = p_provider_subscription_id for update;
  if found then
    if p_user_id is not null and v_sub.user_id <> p_user_id then
      raise exception using errcode = '22023', message = 'The subscription belongs to another user.',
        hint = 'invalid_request', detail = 'user_id';
    end if;
    return v_sub;
  end if;
  if p_user_id is null or not exists (select 1 from public.profiles where user_id = p_user_id) then
    raise exception using errcode = 'PT404', message = 'No such user.', hint = 'not_found', detail = 'user_id';
  end if;
  if p_plan_id is null or not exists (select 1 from public.plans where id = p_plan_id) then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'plan_id';
  end if;
  insert into public.subscriptions (user_id, provider, provider_subscription_id, plan_id)
  values (p_user_id, p_provider, p_provider_subscription_id, p_plan_id)
  returning * into v_sub;
  return v_sub;
end;
$$;
comment on function app.subscription_row(text, text, uuid, text) is 'The subscription of a provider subscription id, created on first sight, under its advisory lock.';

-- A subscription grant (a period, an upgrade, a rollover) expiring at p_expires_at. One that is
-- already past its expiry when it is made (a period paid after it ended) is worth nothing: it
-- repays no debt (expired credits are never spent) and expires at once (ledger row, then expire).
create or replace function app.add_period_grant(
  p_user_id uuid, p_source text, p_amount integer, p_expires_at timestamptz, p_ledger_type text,
  p_purchase_id uuid default null, p_description text default null)
returns uuid
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grant_id uuid;
begin
  if p_expires_at > app.now() then
    return app.add_grant(p_user_id, p_source, 'paid', p_amount, p_expires_at, p_ledger_type, p_purchase_id, p_description);
  end if;
  perform app.lock_balance(p_user_id);
  insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, purchase_id, description, created_at)
  values (p_user_id, p_source, 'paid', p_amount, p_amount, p_expires_at, p_purchase_id, p_description, pg_catalog.now())
  returning id into v_grant_id;
  perform app.post_ledger_entry(p_user_id, p_ledger_type, p_amount, 0, 0,
    p_grant_id => v_grant_id, p_purchase_id => p_purchase_id, p_description => p_description);
  perform app.expire_due_grants(p_user_id);
  return v_grant_id;
end;
$$;
comment on function app.add_period_grant(uuid, text, integer, timestamptz, text, uuid, text) is 'Adds a subscription grant; one already past its expiry repays no debt and expires at once.';

-- Credits of the grants of one paid period (its period grant, its upgrades, the rollover into it):
-- what they still hold unexpired (o_live) and what expired from them (o_expired).
create or replace function app.period_unspent(p_provider text, p_payment_id text, out o_live integer, out o_expired integer)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_pay public.subscription_payments;
begin
  select * into v_pay from public.subscription_payments where provider = p_provider and provider_payment_id = p_payment_id;
  with grants as (
    select p.grant_id as id from public.subscription_payments sp
      join public.purchases p on p.id = sp.purchase_id
     where sp.subscription_id = v_pay.subscription_id and sp.period_end = v_pay.period_end and p.grant_id is not null
    union
    select r.grant_id from public.subscription_rollovers r
     where r.provider = p_provider and r.to_payment_id = p_payment_id and r.grant_id is not null
  )
  select coalesce(sum(g.remaining) filter (where g.expires_at > app.now()), 0)::integer,
         coalesce((select sum(-l.delta_available) from public.credit_ledger l
                    where l.type = 'expire' and l.grant_id in (select id from grants)), 0)::integer
    into o_live, o_expired
    from public.credit_grants g
   where g.id in (select id from grants);
end;
$$;
comment on function app.period_unspent(text, text) is 'Unspent credits of a paid period''s grants: still live, and already expired.';

-- The rollover from paid period p_from into the next one p_to (both recorded, same subscription),
-- once: k = min(rollover_max of p_to's plan, unspent of p_from); the live part is moved out of
-- p_from's grants (one adjustment row), k becomes its own grant expiring at p_to's end.
create or replace function app.roll_over(p_provider text, p_from text, p_to text)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_to public.subscription_payments;
  v_from public.subscription_payments;
  v_user uuid;
  v_max integer;
  v_unspent record;
  v_k integer;
  v_left integer;
  v_take integer;
  v_grant record;
  v_grant_id uuid;
  v_plan_name text;
begin
  if exists (select 1 from public.subscription_rollovers where provider = p_provider and (from_payment_id = p_from or to_payment_id = p_to)) then
    return 0;
  end if;
  select * into v_from from public.subscription_payments where provider = p_provider and provider_payment_id = p_from;
  select * into v_to from public.subscription_payments where provider = p_provider and provider_payment_id = p_to;
  select user_id into v_user from public.subscriptions where id = v_to.subscription_id;
  if exists (select 1 from public.profiles where user_id = v_user and deleted_at is not null) then
    return 0;  -- a closed account: nothing renews
  end if;
  select rollover_max, name into v_max, v_plan_name from public.plans where id = v_to.plan_id;
  perform app.lock_balance(v_user);
  perform app.expire_due_grants(v_user);
  select * into v_unspent from app.period_unspent(p_provider, p_from);
  v_k := least(v_max, v_unspent.o_live + v_unspent.o_expired);
  v_left := least(v_k, v_unspent.o_live);
  if v_left > 0 then
    for v_grant in
      select g.id, g.remaining from public.credit_grants g
       where g.remaining > 0 and g.expires_at > app.now()
         and (g.id in (select p.grant_id from public.subscription_payments sp join public.purchases p on p.id = sp.purchase_id
                        where sp.subscription_id = v_from.subscription_id and sp.period_end = v_from.period_end)
              or g.id in (select r.grant_id from public.subscription_rollovers r where r.provider = p_provider and r.to_payment_id = p_from))
       order by g.expires_at asc, (g.kind = 'paid') asc, g.created_at asc, g.id asc
       for update
    loop
      exit when v_left = 0;
      v_take := least(v_left, v_grant.remaining);
      update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
      v_left := v_left - v_take;
    end loop;
    perform app.post_ledger_entry(v_user, 'adjustment', -(least(v_k, v_unspent.o_live) - v_left), 0, 0,
      p_description => 'Unspent credits rolled over into the next period');
  end if;
  if v_k > 0 then
    v_grant_id := app.add_period_grant(v_user, 'adjustment', v_k, v_to.period_end, 'grant',
      p_description => 'Rollover into the next ' || v_plan_name || ' period');
    -- Made in the same transaction as a period grant of the same expiry: strictly newer, so the
    -- draw-down order between the two ("then oldest first") is the order they were made in.
    update public.credit_grants set created_at = pg_catalog.clock_timestamp() where id = v_grant_id;
  end if;
  insert into public.subscription_rollovers (provider, from_payment_id, to_payment_id, user_id, credits, moved, grant_id)
  values (p_provider, p_from, p_to, v_user, v_k, least(v_k, v_unspent.o_live), v_grant_id);
  return v_k;
end;
$$;
comment on function app.roll_over(text, text, text) is 'Carries up to the next plan''s rollover_max unspent credits of a paid period into the next one, once per pair.';

-- fulfill_subscription_payment (service_role): a paid period (p_from_plan_id null) or a
-- mid-period upgrade from p_from_plan_id. The payment's one grant expires at the period end; the
-- payment rule applies to it like to a pack; then the rollovers with the adjacent periods.
create or replace function public.fulfill_subscription_payment(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_user_id uuid,
  p_provider_subscription_id text,
  p_plan_id text,
  p_period_start timestamptz,
  p_period_end timestamptz,
  p_amount_cents integer,
  p_currency text,
  p_from_plan_id text default null,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_sub public.subscriptions;
  v_plan public.plans;
  v_from public.plans;
  v_pay public.subscription_payments;
  v_purchase public.purchases;
  v_credits integer;
  v_grant_id uuid;
  v_result jsonb;
  v_adjacent record;
  v_rolled integer := 0;
  v_rows integer;
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_pay from public.subscription_payments where provider = p_provider and provider_payment_id = p_provider_payment_id;
  select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', true, 'rolled_over', 0);
  end if;
  select * into v_plan from public.plans where id = app.plan_id(p_provider, p_plan_id);
  if not found then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'plan_id';
  end if;
  if p_from_plan_id is not null then
    select * into v_from from public.plans where id = app.plan_id(p_provider, p_from_plan_id);
    if not found then
      raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'from_plan_id';
    end if;
  end if;
  if p_period_start is null or p_period_end is null or p_period_end <= p_period_start then
    raise exception using errcode = '22023', message = 'The period must end after it starts.', hint = 'invalid_request', detail = 'period_end';
  end if;
  if p_amount_cents is null or p_amount_cents < 0 then
    raise exception using errcode = '22023', message = 'The amount must be zero or more.', hint = 'invalid_request', detail = 'amount_cents';
  end if;
  if p_currency is null or p_currency !~ '^[a-z]{3}$' then
    raise exception using errcode = '22023', message = 'The currency must be a lower-case ISO 4217 code.', hint = 'invalid_request', detail = 'currency';
  end if;
  if v_purchase.id is not null and v_purchase.plan_id is null then
    raise exception using errcode = 'PT409', message = 'This payment paid a credit package.', hint = 'purchase_conflict', detail = 'provider_payment_id';
  end if;
  v_sub := app.subscription_row(p_provider, p_provider_subscription_id, p_user_id, v_plan.id);
  if v_pay.provider is not null and v_pay.subscription_id <> v_sub.id then
    raise exception using errcode = '22023', message = 'The payment belongs to another subscription.',
      hint = 'invalid_request', detail = 'provider_subscription_id';
  end if;
  if exists (select 1 from public.profiles where user_id = v_sub.user_id and deleted_at is not null) then
    -- Parked for a refund at the provider, like a pack's payment for a closed account.
    update public.payment_events
       set outcome = case when v_purchase.grant_id is not null then 'already_granted' else 'account_closed_refund_due' end,
           purchase_id = v_purchase.id, processed_at = pg_catalog.now()
     where id = v_event_id;
    if v_purchase.grant_id is not null then
      return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', false, 'rolled_over', 0);
    end if;
    insert into public.closed_account_payments (provider, provider_payment_id, event_id, event_type, user_id, package_id,
                                                amount_cents, currency)
    values (p_provider, p_provider_payment_id, p_event_id, left(p_event_type, 255), v_sub.user_id, 'plan:' || v_plan.id,
            p_amount_cents, left(p_currency, 10))
    on conflict (provider, provider_payment_id) do nothing;
    get diagnostics v_rows = row_count;
    return jsonb_build_object('purchase', null, 'granted', false, 'replayed', v_rows = 0, 'rolled_over', 0,
                              'account_closed', true, 'refund_due', true);
  end if;

  v_credits := case when p_from_plan_id is null then v_plan.credits else v_plan.credits - v_from.credits end;
  if v_pay.provider is null then
    insert into public.subscription_payments (provider, provider_payment_id, subscription_id, kind, plan_id, from_plan_id,
                                              period_start, period_end)
    values (p_provider, p_provider_payment_id, v_sub.id, case when p_from_plan_id is null then 'period' else 'upgrade' end,
            v_plan.id, v_from.id, p_period_start, p_period_end)
    returning * into v_pay;
  end if;
  if v_purchase.id is null and v_credits > 0 then
    insert into public.purchases (user_id, provider, provider_payment_id, plan_id, credits, amount_cents, currency)
    values (v_sub.user_id, p_provider, p_provider_payment_id, v_plan.id, v_credits, p_amount_cents, p_currency)
    returning * into v_purchase;
    update public.subscription_payments set purchase_id = v_purchase.id
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
  end if;
  if v_purchase.id is not null and v_purchase.grant_id is null then
    perform app.payment_state(p_provider, p_provider_payment_id);
    update public.payment_states
       set amount_paid_cents = p_amount_cents, purchase_id = v_purchase.id, updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
    v_grant_id := app.add_period_grant(v_purchase.user_id, 'purchase', v_purchase.credits, v_pay.period_end, 'purchase',
      p_purchase_id => v_purchase.id,
      p_description => case v_pay.kind when 'period' then v_plan.name || ' period' else 'Upgrade to ' || v_plan.name end);
    update public.purchases
       set status = 'succeeded', credits_granted = v_purchase.credits, grant_id = v_grant_id,
           fulfilled_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_result := app.apply_payment_rule(p_provider, p_provider_payment_id);
    v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
    update public.payment_events
       set outcome = case when v_purchase.credits_granted = v_purchase.credits then 'granted' else 'granted_then_taken_back' end
     where id = v_event_id;
    -- Rollovers with the periods before and after this one (whichever of each pair came second).
    if v_pay.kind = 'period' then
      for v_adjacent in
        select sp.provider_payment_id as from_id, v_pay.provider_payment_id as to_id
          from public.subscription_payments sp
         where sp.subscription_id = v_sub.id and sp.kind = 'period' and sp.provider_payment_id <> v_pay.provider_payment_id
           and sp.period_start < v_pay.period_start
           and sp.period_end between v_pay.period_start - interval '1 day' and v_pay.period_start + interval '1 day'
           and exists (select 1 from public.purchases p where p.id = sp.purchase_id and p.grant_id is not null)
        union all
        select v_pay.provider_payment_id, sp.provider_payment_id
          from public.subscription_payments sp
         where sp.subscription_id = v_sub.id and sp.kind = 'period' and sp.provider_payment_id <> v_pay.provider_payment_id
           and sp.period_start > v_pay.period_start
           and sp.period_start between v_pay.period_end - interval '1 day' and v_pay.period_end + interval '1 day'
           and exists (select 1 from public.purchases p where p.id = sp.purchase_id and p.grant_id is not null)
      loop
        v_rolled := v_rolled + app.roll_over(p_provider, v_adjacent.from_id, v_adjacent.to_id);
      end loop;
    end if;
    -- The current period moves forward; a paid period makes a past_due subscription active.
    update public.subscriptions
       set current_period_start = case when v_pay.kind = 'upgrade' then coalesce(current_period_start, v_pay.period_start)
                                       else v_pay.period_start end,
           current_period_end = v_pay.period_end,
           status = case when status = 'past_due' then 'active' else status end,
           plan_id = case when v_pay.kind = 'upgrade' or state_event_at is null then v_pay.plan_id else plan_id end,
           updated_at = pg_catalog.now()
     where id = v_sub.id and status <> 'ended'
       and (current_period_end is null or current_period_end < v_pay.period_end
            or (v_pay.kind = 'upgrade' and current_period_end = v_pay.period_end));
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', v_purchase.credits_granted > 0,
                              'replayed', false, 'rolled_over', v_rolled);
  end if;
  update public.payment_events
     set outcome = case when v_purchase.id is null then 'no_credits' else 'already_granted' end,
         purchase_id = v_purchase.id, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', false, 'rolled_over', 0);
end;
$$;
comment on function public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text) is 'Service role: a paid subscription period (or, with p_from_plan_id, a mid-period upgrade). Grants its credits once per provider payment id, expiring at the period end, applies the payment rule (refunds/disputes of it go through the pack RPCs by the same payment id), then rolls over between adjacent periods. {"purchase", "granted", "replayed", "rolled_over"}; a closed account: parked for a refund.';

-- record_subscription_state (service_role): a provider state event (Stripe
-- customer.subscription.updated/.deleted, invoice.payment_failed; App Store
-- DID_CHANGE_RENEWAL_PREF, DID_FAIL_TO_RENEW, EXPIRED, ...). Applied when not older than the
-- newest applied; ended is final. Moves no credits.
create or replace function public.record_subscription_state(
  p_provider text,
  p_provider_subscription_id text,
  p_event_id text,
  p_event_at timestamptz,
  p_user_id uuid,
  p_plan_id text,
  p_status text,
  p_current_period_start timestamptz default null,
  p_current_period_end timestamptz default null,
  p_cancel_at_period_end boolean default false,
  p_pending_plan_id text default null,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_sub public.subscriptions;
  v_rows integer;
  v_applied boolean := false;
  v_plan_id text := app.plan_id(p_provider, p_plan_id);
  v_pending_plan_id text := app.plan_id(p_provider, p_pending_plan_id);
begin
  perform app.require_service_role();
  if p_provider is null or p_provider not in ('stripe', 'app_store') then
    raise exception using errcode = '22023', message = 'The provider must be stripe or app_store.', hint = 'invalid_request', detail = 'provider';
  end if;
  if p_event_id is null or char_length(p_event_id) not between 1 and 255 then
    raise exception using errcode = '22023', message = 'The event id must be 1 to 255 characters.', hint = 'invalid_request', detail = 'event_id';
  end if;
  if p_status is null or p_status not in ('active', 'past_due', 'canceled', 'ended') then
    raise exception using errcode = '22023', message = 'Unknown subscription status.', hint = 'invalid_request', detail = 'status';
  end if;
  if p_event_at is null then
    raise exception using errcode = '22023', message = 'The event time is required.', hint = 'invalid_request', detail = 'event_at';
  end if;
  if p_pending_plan_id is not null and v_pending_plan_id is null then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'pending_plan_id';
  end if;
  if p_plan_id is not null and v_plan_id is null then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'plan_id';
  end if;
  v_sub := app.subscription_row(p_provider, p_provider_subscription_id, p_user_id, v_plan_id);
  insert into public.subscription_events (provider, event_id, event_type, provider_subscription_id)
  values (p_provider, p_event_id, left(p_event_type, 255), p_provider_subscription_id)
  on conflict (provider, event_id) do nothing;
  get diagnostics v_rows = row_count;
  if v_rows = 0 then
    return jsonb_build_object('subscription', app.subscription_json(v_sub), 'applied', false, 'replayed', true);
  end if;
  if v_sub.status = 'ended' and p_status <> 'ended' then
    v_applied := false;
  elsif v_sub.state_event_at is null or p_event_at >= v_sub.state_event_at or p_status = 'ended' then
    update public.subscriptions
       set status = p_status,
           plan_id = coalesce(v_plan_id, plan_id),
           current_period_start = case when p_current_period_end is not null
             and (current_period_end is null or p_current_period_end >= current_period_end) then p_current_period_start
             else current_period_start end,
           current_period_end = greatest(current_period_end, p_current_period_end),
           cancel_at_period_end = coalesce(p_cancel_at_period_end, false),
           pending_plan_id = v_pending_plan_id,
           state_event_at = greatest(state_event_at, p_event_at),
           updated_at = pg_catalog.now()
     where id = v_sub.id returning * into v_sub;
    v_applied := true;
  end if;
  update public.subscription_events set outcome = case when v_applied then 'applied' else 'older_than_state' end
   where provider = p_provider and event_id = p_event_id;
  return jsonb_build_object('subscription', app.subscription_json(v_sub), 'applied', v_applied, 'replayed', false);
end;
$$;
comment on function public.record_subscription_state(text, text, text, timestamptz, uuid, text, text, timestamptz, timestamptz, boolean, text, text) is 'Service role: a subscription state event (status, plan, period, cancel at period end, pending plan). Applied when not older than the newest applied (provider event time); ended is final; once per event id. Moves no credits. {"subscription", "applied", "replayed"}.';

create or replace function app.subscription_json(s public.subscriptions)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_plan public.plans;
  v_credits integer;
begin
  if s.id is null then
    return null;
  end if;
  select * into v_plan from public.plans where id = s.plan_id;
  select coalesce(sum(g.remaining) filter (where g.expires_at > app.now()), 0)::integer into v_credits
    from public.credit_grants g
   where g.id in (
     select p.grant_id from public.subscription_payments sp join public.purchases p on p.id = sp.purchase_id
      where sp.subscription_id = s.id and sp.period_end = s.current_period_end
     union
     select r.grant_id from public.subscription_rollovers r
       join public.subscription_payments sp on sp.provider = r.provider and sp.provider_payment_id = r.to_payment_id
      where sp.subscription_id = s.id and sp.period_end = s.current_period_end);
  return jsonb_build_object(
    'id', s.id, 'provider', s.provider, 'provider_subscription_id', s.provider_subscription_id, 'plan', jsonb_build_object('id', v_plan.id, 'name', v_plan.name,
      'interval', v_plan.interval, 'credits', v_plan.credits, 'rollover_max', v_plan.rollover_max),
    'status', s.status, 'current_period_start', s.current_period_start, 'current_period_end', s.current_period_end,
    'cancel_at_period_end', s.cancel_at_period_end, 'pending_plan_id', s.pending_plan_id,
    'credits_this_period', v_credits,
    'renews', case when s.status in ('active', 'past_due') and not s.cancel_at_period_end
                   then jsonb_build_object('plan_id', coalesce(s.pending_plan_id, s.plan_id), 'at', s.current_period_end)
              end);
end;
$$;
comment on function app.subscription_json(public.subscriptions) is 'The JSON shape of a subscription: plan, status, current period, credits of this period left, what renews.';

-- get_subscription (user): the caller's current subscription (not ended first, then newest), or null.
create or replace function public.get_subscription()
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := auth.uid();
  v_sub public.subscriptions;
begin
  if v_user_id is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  if exists (select 1 from public.profiles where user_id = v_user_id and deleted_at is not null) then
    raise exception using errcode = 'PT403', message = 'This account is closed.', hint = 'account_closed';
  end if;
  select * into v_sub from public.subscriptions where user_id = v_user_id
   order by (status = 'ended') asc, created_at desc, id desc limit 1;
  return jsonb_build_object('subscription', app.subscription_json(v_sub));
end;
$$;
comment on function public.get_subscription() is 'The caller''s subscription (plan, status, current period, credits of this period, what renews), or {"subscription": null}.';

revoke all on function app.subscription_row(text, text, uuid, text), app.period_unspent(text, text), app.plan_id(text, text),
  app.add_period_grant(uuid, text, integer, timestamptz, text, uuid, text),
  app.roll_over(text, text, text), app.subscription_json(public.subscriptions)
  from public, anon, authenticated, service_role;
revoke all on function
  public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text),
  public.record_subscription_state(text, text, text, timestamptz, uuid, text, text, timestamptz, timestamptz, boolean, text, text),
  public.get_subscription()
  from public, anon, authenticated, service_role;
grant execute on function
  public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text),
  public.record_subscription_state(text, text, text, timestamptz, uuid, text, text, timestamptz, timestamptz, boolean, text, text)
  to service_role;
grant execute on function public.get_subscription() to authenticated;

-- begin_subscription_checkout (user, not anonymous): checks that the caller may subscribe to the
-- plan through Stripe and answers the plan with its Stripe price. Writes nothing: the Checkout
-- Session is made by the Worker with an idempotency key derived from the caller's, and the
-- subscription exists only once Stripe's events arrive.
create or replace function public.begin_subscription_checkout(p_plan_id text)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_plan public.plans;
begin
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception using errcode = 'PT403', message = 'Anonymous users cannot subscribe; link an identity first.',
      hint = 'anonymous_user';
  end if;
  if p_plan_id is null or p_plan_id !~ '^[a-z0-9][a-z0-9._-]{0,63}$' then
    raise exception using errcode = '22023', message = 'plan_id must be a plan id.', hint = 'invalid_request', detail = 'plan_id';
  end if;
  select * into v_plan from public.plans where id = p_plan_id and active;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'plan_id';
  end if;
  if v_plan.stripe_price_id is null then
    raise exception using errcode = 'PT409', message = 'This plan is not sold through Stripe.', hint = 'not_sold_on_stripe',
      detail = 'plan_id';
  end if;
  if exists (select 1 from public.subscriptions where user_id = v_user_id and status <> 'ended') then
    raise exception using errcode = 'PT409', message = 'You already have a subscription; change or cancel it instead.',
      hint = 'already_subscribed', detail = 'plan_id';
  end if;
  return jsonb_build_object('plan', jsonb_build_object('id', v_plan.id, 'name', v_plan.name, 'interval', v_plan.interval,
    'credits', v_plan.credits, 'rollover_max', v_plan.rollover_max, 'price_cents', v_plan.price_cents,
    'currency', v_plan.currency, 'stripe_price_id', v_plan.stripe_price_id));
end;
$$;
comment on function public.begin_subscription_checkout(text) is 'User (not anonymous): the plan to subscribe to through Stripe, with its price id; refuses an unknown or retired plan, one not sold on Stripe, and a caller who already has a subscription. Writes nothing.';
revoke all on function public.begin_subscription_checkout(text) from public, anon, authenticated, service_role;
grant execute on function public.begin_subscription_checkout(text) to authenticated;
