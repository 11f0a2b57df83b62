-- Create purchases and payment events, with begin_purchase, list_purchases and the exactly-once fulfilment, refund and claw-back functions.

-- Exactly once: a provider's payment id is unique per provider (one purchase, one grant) and a
-- provider's event id is unique per provider (each webhook delivery is processed once). Both hold
-- forever: they are business references, not expiring idempotency keys. All changes to one payment
-- are serialised by a transaction-scoped advisory lock on (provider, payment id), so any order of
-- payment, refund and dispute events, concurrent or repeated, ends in the same state:
--   payment then refund   -> credits granted, then taken back (debt for what was already spent);
--   refund then payment   -> the payment is recorded as refunded and grants nothing;
--   payment twice         -> one grant.

create table public.purchases (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id),
  provider text not null,
  provider_payment_id text,
  checkout_session_id text,
  package_id text not null references public.credit_packages (id),
  credits integer not null,
  amount_cents integer not null,
  currency text not null,
  status text not null default 'pending',
  credits_granted integer not null default 0,
  grant_id uuid references public.credit_grants (id),
  idempotency_key text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  fulfilled_at timestamptz,
  refunded_at timestamptz,
  constraint purchases_provider_check check (provider in ('stripe', 'app_store')),
  constraint purchases_provider_payment_id_length_check check (char_length(provider_payment_id) between 1 and 255),
  constraint purchases_checkout_session_id_length_check check (char_length(checkout_session_id) between 1 and 255),
  constraint purchases_credits_positive_check check (credits > 0),
  constraint purchases_amount_nonnegative_check check (amount_cents >= 0),
  constraint purchases_currency_format_check check (currency ~ '^[a-z]{3}$'),
  constraint purchases_status_check check (status in ('pending', 'succeeded', 'failed', 'refunded', 'disputed')),
  constraint purchases_credits_granted_range_check check (credits_granted between 0 and credits),
  constraint purchases_idempotency_key_length_check check (char_length(idempotency_key) between 1 and 255),
  constraint purchases_provider_payment_id_key unique (provider, provider_payment_id),
  constraint purchases_checkout_session_id_key unique (checkout_session_id),
  constraint purchases_user_id_idempotency_key_key unique (user_id, idempotency_key)
);
comment on table public.purchases is 'Credit purchases through Stripe or the App Store: pending until the provider confirms the payment, then succeeded (credits granted), or failed, refunded, disputed.';
comment on column public.purchases.provider_payment_id is 'Stripe payment intent id or App Store transaction id; unique per provider.';
comment on column public.purchases.checkout_session_id is 'Stripe Checkout session id, attached by the back office.';
comment on column public.purchases.credits is 'Credits (including bonus) this purchase grants, fixed when it was created.';
comment on column public.purchases.credits_granted is 'Credits actually granted (0 until fulfilled, and for refunded-before-paid purchases).';
-- Serves RLS (own rows) and list_purchases (newest first).
create index purchases_user_id_created_at_idx on public.purchases (user_id, created_at desc);

alter table public.credit_grants
  add constraint credit_grants_purchase_id_fkey foreign key (purchase_id) references public.purchases (id);
alter table public.credit_ledger
  add constraint credit_ledger_purchase_id_fkey foreign key (purchase_id) references public.purchases (id);
-- Serves the foreign keys above when a purchase is looked up from a grant or ledger row.
create index credit_grants_purchase_id_idx on public.credit_grants (purchase_id) where purchase_id is not null;
create index credit_ledger_purchase_id_idx on public.credit_ledger (purchase_id) where purchase_id is not null;

create table public.payment_events (
  id bigint generated always as identity primary key,
  provider text not null,
  event_id text not null,
  kind text not null,
  event_type text,
  provider_payment_id text not null,
  purchase_id uuid references public.purchases (id),
  outcome text,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  constraint payment_events_provider_check check (provider in ('stripe', 'app_store')),
  constraint payment_events_event_id_length_check check (char_length(event_id) between 1 and 255),
  constraint payment_events_kind_check check (kind in ('payment', 'refund', 'dispute')),
  constraint payment_events_event_type_length_check check (char_length(event_type) <= 255),
  constraint payment_events_provider_payment_id_length_check check (char_length(provider_payment_id) between 1 and 255),
  constraint payment_events_outcome_length_check check (char_length(outcome) <= 100),
  constraint payment_events_provider_event_id_key unique (provider, event_id)
);
comment on table public.payment_events is 'Every provider event received (webhook or receipt), once per event id: the exactly-once and out-of-order record of payments, refunds and disputes.';
comment on column public.payment_events.kind is 'payment, refund or dispute.';
comment on column public.payment_events.outcome is 'What processing did: granted, already_granted, recorded_before_payment, refunded_before_payment, taken_back, ...';
-- Serves the out-of-order check: was this payment refunded or disputed before it was fulfilled?
create index payment_events_provider_payment_id_idx on public.payment_events (provider, provider_payment_id);
-- Serves the foreign key to purchases.
create index payment_events_purchase_id_idx on public.payment_events (purchase_id) where purchase_id is not null;

alter table public.purchases enable row level security;
alter table public.payment_events enable row level security;

revoke all on table public.purchases, public.payment_events from public, anon, authenticated, service_role;
grant select on table public.purchases to authenticated, service_role;
grant select on table public.payment_events to service_role;

create policy "Users can read their own purchases"
  on public.purchases for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read purchases"
  on public.purchases for select to service_role using (true);
create policy "Service role can read payment events"
  on public.payment_events for select to service_role using (true);

-- Validates a client idempotency key: 1..255 printable ASCII characters.
create or replace function app.check_idempotency_key(p_key text)
returns void
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_key is null or p_key !~ '^[\x20-\x7e]{1,255}$' then
    raise exception using errcode = '22023',
      message = 'The idempotency key must be 1 to 255 printable ASCII characters.',
      hint = 'invalid_request', detail = 'idempotency_key';
  end if;
end;
$$;
comment on function app.check_idempotency_key(text) is 'Raises 22023 invalid_request (detail idempotency_key) unless the key is 1..255 printable ASCII characters.';

create or replace function app.purchase_json(p public.purchases)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  if p.id is null then
    return null;
  end if;
  return jsonb_build_object(
    'id', p.id, 'user_id', p.user_id, 'provider', p.provider, 'provider_payment_id', p.provider_payment_id,
    'checkout_session_id', p.checkout_session_id, 'package_id', p.package_id, 'credits', p.credits,
    'amount_cents', p.amount_cents, 'currency', p.currency, 'status', p.status,
    'credits_granted', p.credits_granted, 'created_at', p.created_at, 'fulfilled_at', p.fulfilled_at,
    'refunded_at', p.refunded_at);
end;
$$;
comment on function app.purchase_json(public.purchases) is 'The JSON shape of a purchase in every RPC answer.';

create or replace function app.package_json(p public.credit_packages)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return jsonb_build_object(
    'id', p.id, 'name', p.name, 'credits', p.credits, 'bonus_credits', p.bonus_credits,
    'price_cents', p.price_cents, 'currency', p.currency,
    'stripe_price_id', p.stripe_price_id, 'app_store_product_id', p.app_store_product_id);
end;
$$;
comment on function app.package_json(public.credit_packages) is 'The JSON shape of a credit package in every RPC answer.';

-- begin_purchase: a pending Stripe purchase for the caller, idempotent per (user, key).
create or replace function public.begin_purchase(p_package_id text, p_idempotency_key text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := app.require_user();
  v_package public.credit_packages;
  v_purchase public.purchases;
begin
  perform app.check_idempotency_key(p_idempotency_key);
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception using errcode = 'PT403',
      message = 'Sign in with a permanent account to buy credits.',
      hint = 'anonymous_user';
  end if;
  if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended(v_user_id::text || ':begin_purchase:' || p_idempotency_key, 0)) then
    raise exception using errcode = 'PT409',
      message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end if;

  select * into v_purchase from public.purchases
   where user_id = v_user_id and idempotency_key = p_idempotency_key;
  if found then
    if v_purchase.package_id is distinct from p_package_id then
      raise exception using errcode = 'PT422',
        message = 'This idempotency key was already used with a different request.',
        hint = 'idempotency_key_reused', detail = 'idempotency_key';
    end if;
    select * into v_package from public.credit_packages where id = v_purchase.package_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'package', app.package_json(v_package), 'replayed', true);
  end if;

  select * into v_package from public.credit_packages where id = p_package_id and active;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such credit package.', hint = 'not_found', detail = 'package_id';
  end if;
  -- A package sold only in the App Store has no Stripe price: refuse before anything is written,
  -- so a checkout attempt never leaves a pending purchase that can never be paid.
  if v_package.stripe_price_id is null then
    raise exception using errcode = 'PT409', message = 'This package is not sold through Stripe.',
      hint = 'not_sold_on_stripe', detail = 'package_id';
  end if;
  insert into public.purchases (user_id, provider, package_id, credits, amount_cents, currency, idempotency_key)
  values (v_user_id, 'stripe', v_package.id, v_package.credits + v_package.bonus_credits,
          v_package.price_cents, v_package.currency, p_idempotency_key)
  returning * into v_purchase;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'package', app.package_json(v_package), 'replayed', false);
end;
$$;
comment on function public.begin_purchase(text, text) is 'Starts a Stripe purchase of a package for the caller: {"purchase", "package", "replayed"}. Idempotent per (user, key); the same key with another package raises PT422 idempotency_key_reused. Anonymous users get PT403 anonymous_user; unknown or inactive package PT404 not_found.';

create or replace function public.list_purchases()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := app.require_user();
begin
  return jsonb_build_object('items', coalesce((
    select jsonb_agg(app.purchase_json(p) order by p.created_at desc, p.id)
      from (select * from public.purchases where user_id = v_user_id order by created_at desc limit 100) p
  ), '[]'::jsonb));
end;
$$;
comment on function public.list_purchases() is 'The caller''s 100 latest purchases, newest first: {"items": [...]}.';

-- attach_checkout_session (service_role): records the Stripe Checkout session made for a purchase.
create or replace function public.attach_checkout_session(p_purchase_id uuid, p_session_id text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_purchase public.purchases;
begin
  perform app.require_service_role();
  if p_session_id is null or char_length(p_session_id) not between 1 and 255 then
    raise exception using errcode = '22023', message = 'The session id must be 1 to 255 characters.',
      hint = 'invalid_request', detail = 'session_id';
  end if;
  select * into v_purchase from public.purchases where id = p_purchase_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such purchase.', hint = 'not_found', detail = 'purchase_id';
  end if;
  if v_purchase.checkout_session_id is not null and v_purchase.checkout_session_id <> p_session_id then
    raise exception using errcode = 'PT409', message = 'This purchase already has another checkout session.',
      hint = 'checkout_session_conflict', detail = 'session_id';
  end if;
  if v_purchase.checkout_session_id is null then
    update public.purchases set checkout_session_id = p_session_id, updated_at = pg_catalog.now()
     where id = p_purchase_id returning * into v_purchase;
  end if;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase));
end;
$$;
comment on function public.attach_checkout_session(uuid, text) is 'Service role: records the Stripe Checkout session of a purchase (idempotent; another session raises PT409 checkout_session_conflict).';

-- Records a provider event once. Returns its id, or null when this event id was already received.
create or replace function app.record_payment_event(
  p_provider text, p_event_id text, p_kind text, p_event_type text, p_provider_payment_id text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  if p_provider is null or p_provider not in ('stripe', 'app_store') then
    raise exception using errcode = '22023', message = 'The provider must be stripe or app_store.',
      hint = 'invalid_request', detail = 'provider';
  end if;
  if p_provider_payment_id is null or char_length(p_provider_payment_id) not between 1 and 255 then
    raise exception using errcode = '22023', message = 'The payment id must be 1 to 255 characters.',
      hint = 'invalid_request', detail = 'provider_payment_id';
  end if;
  if p_event_id is null or char_length(p_event_id) not between 1 and 255 then
    raise exception using errcode = '22023', message = 'The event id must be 1 to 255 characters.',
      hint = 'invalid_request', detail = 'event_id';
  end if;
  -- A concurrent insert of the same event id waits here for the other transaction, then conflicts.
  insert into public.payment_events (provider, event_id, kind, event_type, provider_payment_id)
  values (p_provider, p_event_id, p_kind, left(p_event_type, 255), p_provider_payment_id)
  on conflict (provider, event_id) do nothing
  returning id into v_id;
  -- Every change to one payment runs under this lock, whatever the event.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(p_provider || ':payment:' || p_provider_payment_id, 0));
  return v_id;
end;
$$;
comment on function app.record_payment_event(text, text, text, text, text) is 'Inserts a payment event once per (provider, event id) and takes the payment''s advisory lock.';

-- fulfill_purchase (service_role): grants a purchase's credits exactly once.
create or replace function public.fulfill_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_user_id uuid,
  p_package_id text,
  p_amount_cents integer,
  p_currency text,
  p_purchase_id uuid default null,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_package public.credit_packages;
  v_reversal text;
  v_grant_id uuid;
  v_outcome text;
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_purchase from public.purchases
   where provider = p_provider and provider_payment_id = p_provider_payment_id for update;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', true);
  end if;

  if p_user_id is null or not exists (select 1 from auth.users where id = p_user_id) then
    raise exception using errcode = 'PT404', message = 'No such user.', hint = 'not_found', detail = 'user_id';
  end if;
  select * into v_package from public.credit_packages where id = p_package_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such credit package.', hint = 'not_found', detail = 'package_id';
  end if;
  if p_amount_cents is null or p_amount_cents < 0 then
    raise exception using errcode = '22023', message = 'The amount must be zero or more.', hint = 'invalid_request', detail = 'amount_cents';
  end if;
  if p_currency is null or p_currency !~ '^[a-z]{3}$' then
    raise exception using errcode = '22023', message = 'The currency must be a lower-case ISO 4217 code.', hint = 'invalid_request', detail = 'currency';
  end if;

  if v_purchase.id is null and p_purchase_id is not null then
    select * into v_purchase from public.purchases where id = p_purchase_id for update;
    if not found then
      raise exception using errcode = 'PT404', message = 'No such purchase.', hint = 'not_found', detail = 'purchase_id';
    end if;
    if v_purchase.provider <> p_provider or v_purchase.provider_payment_id is not null then
      raise exception using errcode = 'PT409', message = 'This purchase was paid by another payment.',
        hint = 'purchase_conflict', detail = 'purchase_id';
    end if;
  end if;
  if v_purchase.id is not null then
    if v_purchase.user_id <> p_user_id then
      raise exception using errcode = '22023', message = 'The payment belongs to another user than the purchase.',
        hint = 'invalid_request', detail = 'user_id';
    end if;
    if v_purchase.package_id <> p_package_id then
      raise exception using errcode = '22023', message = 'The payment is for another package than the purchase.',
        hint = 'invalid_request', detail = 'package_id';
    end if;
  else
    insert into public.purchases (user_id, provider, provider_payment_id, package_id, credits, amount_cents, currency)
    values (p_user_id, p_provider, p_provider_payment_id, v_package.id, v_package.credits + v_package.bonus_credits,
            p_amount_cents, p_currency)
    returning * into v_purchase;
  end if;

  -- A refund or dispute that arrived before the payment wins: nothing is granted. A dispute that
  -- was also won before the payment arrived (a reinstatement recorded before the payment, in any
  -- order) reverses nothing.
  select e.kind into v_reversal from public.payment_events e
   where e.provider = p_provider and e.provider_payment_id = p_provider_payment_id and e.kind in ('refund', 'dispute')
     and not (e.kind = 'dispute' and exists (
       select 1 from public.payment_events r
        where r.provider = e.provider and r.provider_payment_id = e.provider_payment_id
          and r.kind = 'payment' and r.outcome = 'recorded_before_payment'))
   order by e.id limit 1;

  if v_purchase.status = 'succeeded' then
    v_outcome := 'already_granted';
  elsif v_purchase.status in ('refunded', 'disputed') then
    v_outcome := 'already_reversed';
  elsif v_reversal is not null then
    update public.purchases
       set provider_payment_id = p_provider_payment_id, amount_cents = p_amount_cents, currency = p_currency,
           status = case v_reversal when 'refund' then 'refunded' else 'disputed' end,
           refunded_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_outcome := 'reversed_before_payment';
  else
    v_grant_id := app.add_grant(v_purchase.user_id, 'purchase', 'paid', v_purchase.credits, null, 'purchase',
      p_purchase_id => v_purchase.id, p_description => 'Purchase of ' || v_package.name);
    update public.purchases
       set provider_payment_id = p_provider_payment_id, amount_cents = p_amount_cents, currency = p_currency,
           status = 'succeeded', credits_granted = v_purchase.credits, grant_id = v_grant_id,
           fulfilled_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_outcome := 'granted';
  end if;
  update public.payment_events set purchase_id = v_purchase.id, outcome = v_outcome, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', v_outcome = 'granted', 'replayed', v_outcome <> 'granted');
end;
$$;
comment on function public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text) is 'Service role: grants a paid purchase''s credits exactly once per provider payment id and per event id: {"purchase", "granted", "replayed"}. Pass p_purchase_id to complete a purchase made by begin_purchase; without it (App Store) the purchase is created.';

-- Reverses a purchase (refund or chargeback): takes its credits back, the shortfall becoming debt.
create or replace function app.reverse_purchase(
  p_provider text, p_provider_payment_id text, p_event_id text, p_kind text, p_event_type text)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_result jsonb := jsonb_build_object('taken', 0, 'debt', 0);
  v_outcome text;
  v_owed integer;
begin
  v_event_id := app.record_payment_event(p_provider, p_event_id, p_kind, p_event_type, p_provider_payment_id);
  select * into v_purchase from public.purchases
   where provider = p_provider and provider_payment_id = p_provider_payment_id for update;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'replayed', true);
  end if;
  if v_purchase.id is null then
    v_outcome := 'recorded_before_payment';
  elsif v_purchase.status in ('refunded', 'disputed') then
    v_outcome := 'already_reversed';
  elsif p_kind = 'dispute' and exists (
      select 1 from public.payment_events e
       where e.provider = p_provider and e.provider_payment_id = p_provider_payment_id
         and e.outcome in ('reinstated', 'reinstated_before_claw_back')) then
    v_outcome := 'already_reinstated';
  elsif v_purchase.status = 'succeeded' then
    select v_purchase.credits_granted - coalesce(sum(l.delta_debt - l.delta_available), 0)::integer into v_owed
      from public.credit_ledger l
     where l.purchase_id = v_purchase.id and l.type in ('refund', 'clawback', 'adjustment');
    if v_owed > 0 then
      v_result := app.take_back(v_purchase.user_id, v_owed,
        case p_kind when 'refund' then 'refund' else 'clawback' end, v_purchase.grant_id, v_purchase.id);
    end if;
    v_outcome := 'taken_back';
  else
    v_outcome := 'reversed_before_payment';
  end if;
  if v_purchase.id is not null and v_outcome in ('taken_back', 'reversed_before_payment') then
    update public.purchases
       set status = case p_kind when 'refund' then 'refunded' else 'disputed' end,
           refunded_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
  end if;
  update public.payment_events set purchase_id = v_purchase.id, outcome = v_outcome, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'replayed', false);
end;
$$;
comment on function app.reverse_purchase(text, text, text, text, text) is 'Refund or chargeback of a purchase, once per event id; takes back only what earlier refunds and claw-backs have not.';

create or replace function public.refund_purchase(
  p_provider text, p_provider_payment_id text, p_event_id text, p_event_type text default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform app.require_service_role();
  return app.reverse_purchase(p_provider, p_provider_payment_id, p_event_id, 'refund', p_event_type);
end;
$$;
comment on function public.refund_purchase(text, text, text, text) is 'Service role: the purchase was refunded; its credits are taken back (what is no longer available becomes debt). Once per event id; before the payment it marks the payment so it never grants. {"purchase", "taken", "debt", "replayed"}.';

create or replace function public.clawback_purchase(
  p_provider text, p_provider_payment_id text, p_event_id text, p_event_type text default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform app.require_service_role();
  return app.reverse_purchase(p_provider, p_provider_payment_id, p_event_id, 'dispute', p_event_type);
end;
$$;
comment on function public.clawback_purchase(text, text, text, text) is 'Service role: a chargeback (dispute) on the purchase; like refund_purchase, with ledger type clawback and status disputed.';

revoke all on function
  app.check_idempotency_key(text), app.purchase_json(public.purchases), app.package_json(public.credit_packages),
  app.record_payment_event(text, text, text, text, text), app.reverse_purchase(text, text, text, text, text)
  from public, anon, authenticated, service_role;
revoke all on function
  public.begin_purchase(text, text), public.list_purchases(), public.attach_checkout_session(uuid, text),
  public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text),
  public.refund_purchase(text, text, text, text), public.clawback_purchase(text, text, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.begin_purchase(text, text), public.list_purchases() to authenticated;
grant execute on function
  public.attach_checkout_session(uuid, text),
  public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text),
  public.refund_purchase(text, text, text, text), public.clawback_purchase(text, text, text, text)
  to service_role;
