-- Create payment states, disputes per dispute id and take-back pieces, and recompute every payment's credits from its facts after each event (the payment rule table of migrations/README.md).

-- How a payment's events become credits (README, "The payment rule table" and "Money mechanics"):
-- * Each event only adds facts to the payment's state, merged so that order and repetition do not
--   matter: amount paid (once), the largest cumulative refunded amount, full refunds and refund
--   reversals counted per event id (App Store REFUND / REFUND_REVERSED), revoked, and per dispute
--   id the highest-ranked status seen (open < won/warning_closed < lost).
-- * After every event, under the payment's advisory lock and then the user's balance lock, the
--   credits the payment keeps are computed from the facts (app.payment_rule) and the user is moved
--   by the difference from what the payment gives now (purchases.credits_granted): a take-back
--   (own grant first, then draw-down order, the rest debt; every piece recorded in
--   payment_take_backs) or a give-back (the pieces undone newest first).
-- * Facts recorded before the payment wait for it; the payment always creates its own grant of
--   all its credits and is then brought down to what the facts say.
-- Lock order: job, hold, payment (advisory), balance, grants.

create table public.payment_states (
  provider text not null,
  provider_payment_id text not null,
  purchase_id uuid references public.purchases (id),
  amount_paid_cents integer,
  refunded_cents integer not null default 0,
  refund_of_cents integer,
  full_refunds integer not null default 0,
  refund_reversals integer not null default 0,
  revoked boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payment_states_pkey primary key (provider, provider_payment_id),
  constraint payment_states_provider_check check (provider in ('stripe', 'app_store')),
  constraint payment_states_provider_payment_id_length_check check (char_length(provider_payment_id) between 1 and 255),
  constraint payment_states_amounts_nonnegative_check check (
    amount_paid_cents >= 0 and refunded_cents >= 0 and refund_of_cents > 0 and full_refunds >= 0 and refund_reversals >= 0)
);
comment on table public.payment_states is 'The provider state of each payment, built from its events (facts merged independently of order and repetition): what was paid, refunded, reversed and revoked. Written only by the payment functions.';
comment on column public.payment_states.amount_paid_cents is 'Amount paid (minor units); null until the payment event arrived.';
comment on column public.payment_states.refunded_cents is 'Largest cumulative refunded amount seen (Stripe charge.refunded amount_refunded).';
comment on column public.payment_states.refund_of_cents is 'The charge amount the refunded amount refers to; refunded_cents >= refund_of_cents is a full refund.';
comment on column public.payment_states.full_refunds is 'Full refunds without an amount (refund_purchase; App Store REFUND), one per event id.';
comment on column public.payment_states.refund_reversals is 'Refund reversals (App Store REFUND_REVERSED), one per event id; refunded while full_refunds > refund_reversals.';
comment on column public.payment_states.revoked is 'App Store REVOKE (Family Sharing revoked): nothing is kept, status disputed.';
-- Serves the foreign key to purchases.
create index payment_states_purchase_id_idx on public.payment_states (purchase_id) where purchase_id is not null;

create table public.payment_disputes (
  provider text not null,
  dispute_id text not null,
  provider_payment_id text not null,
  amount_cents integer,
  status text not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint payment_disputes_pkey primary key (provider, dispute_id),
  constraint payment_disputes_provider_check check (provider in ('stripe', 'app_store')),
  constraint payment_disputes_dispute_id_length_check check (char_length(dispute_id) between 1 and 255),
  constraint payment_disputes_provider_payment_id_length_check check (char_length(provider_payment_id) between 1 and 255),
  constraint payment_disputes_amount_nonnegative_check check (amount_cents >= 0),
  constraint payment_disputes_status_check check (status in (
    'warning_needs_response', 'warning_under_review', 'needs_response', 'under_review', 'won', 'warning_closed', 'lost'))
);
comment on table public.payment_disputes is 'Disputes (Stripe inquiries and chargebacks) per dispute id, with their amount and the highest-ranked status seen. A dispute is standing while open or lost. Written only by the payment functions.';
comment on column public.payment_disputes.dispute_id is 'Stripe dispute id; payment:<payment id> for a dispute reported without one (clawback_purchase / reinstate_purchase).';
comment on column public.payment_disputes.amount_cents is 'Disputed amount (the largest seen); null for the whole amount paid.';
comment on column public.payment_disputes.status is 'Highest-ranked status seen: open statuses < won, warning_closed < lost.';
-- Serves app.payment_rule: the disputes of one payment.
create index payment_disputes_payment_idx on public.payment_disputes (provider, provider_payment_id);

create table public.payment_take_backs (
  id bigint generated always as identity primary key,
  purchase_id uuid not null references public.purchases (id),
  user_id uuid not null references auth.users (id),
  grant_id uuid references public.credit_grants (id),
  amount integer not null,
  given_back integer not null default 0,
  created_at timestamptz not null default now(),
  constraint payment_take_backs_amount_positive_check check (amount > 0),
  constraint payment_take_backs_given_back_range_check check (given_back between 0 and amount)
);
comment on table public.payment_take_backs is 'What each take-back of a payment took: one row per grant it drew from, or with grant_id null the debt it left. A give-back undoes them newest first. Written only by the payment functions.';
comment on column public.payment_take_backs.grant_id is 'The grant the credits were taken from; null for a piece that became debt.';
comment on column public.payment_take_backs.given_back is 'How much of this piece a later give-back has undone.';
-- Serves the give-back: a payment's pieces not yet undone, newest first; and reconcile.
create index payment_take_backs_purchase_id_id_idx on public.payment_take_backs (purchase_id, id desc);
-- Serves RLS-free lookups by user and the foreign keys.
create index payment_take_backs_user_id_idx on public.payment_take_backs (user_id);
create index payment_take_backs_grant_id_idx on public.payment_take_backs (grant_id) where grant_id is not null;

alter table public.payment_states enable row level security;
alter table public.payment_disputes enable row level security;
alter table public.payment_take_backs enable row level security;
revoke all on table public.payment_states, public.payment_disputes, public.payment_take_backs
  from public, anon, authenticated, service_role;
grant select on table public.payment_states, public.payment_disputes, public.payment_take_backs to service_role;
create policy "Service role can read payment states"
  on public.payment_states for select to service_role using (true);
create policy "Service role can read payment disputes"
  on public.payment_disputes for select to service_role using (true);
create policy "Service role can read payment take-backs"
  on public.payment_take_backs for select to service_role using (true);

comment on column public.purchases.credits_granted is 'Credits this purchase gives the user now: 0 until paid, then its credits less what refunds, disputes and revocations take back under the payment rule (README).';

-- Dispute status rank: open 1, won or warning_closed 2, lost 3 (highest seen counts).
create or replace function app.dispute_rank(p_status text)
returns integer
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return case
    when p_status in ('warning_needs_response', 'warning_under_review', 'needs_response', 'under_review') then 1
    when p_status in ('won', 'warning_closed') then 2
    when p_status = 'lost' then 3
  end;
end;
$$;
comment on function app.dispute_rank(text) is 'Rank of a dispute status: open 1, won/warning_closed 2, lost 3.';

-- Returns the payment's state row, creating it; the caller holds the payment's advisory lock.
create or replace function app.payment_state(p_provider text, p_provider_payment_id text)
returns public.payment_states
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_state public.payment_states;
begin
  insert into public.payment_states (provider, provider_payment_id)
  values (p_provider, p_provider_payment_id)
  on conflict (provider, provider_payment_id) do nothing;
  select * into v_state from public.payment_states
   where provider = p_provider and provider_payment_id = p_provider_payment_id for update;
  return v_state;
end;
$$;
comment on function app.payment_state(text, text) is 'The state row of a payment (created if missing), locked.';

-- The payment rule: credits kept and purchase status for the payment's facts (README table).
-- o_status is null while the payment has not arrived.
create or replace function app.payment_rule(
  p_provider text, p_provider_payment_id text, p_credits integer, out o_kept integer, out o_status text)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_state public.payment_states;
  v_paid bigint;
  v_refunded bigint;
  v_full boolean;
  v_standing boolean;
  v_disputed bigint;
  v_reversed bigint;
begin
  select * into v_state from public.payment_states
   where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_state.amount_paid_cents is null then
    o_kept := 0;
    o_status := null;
    return;
  end if;
  v_paid := v_state.amount_paid_cents;
  select count(*) > 0, coalesce(sum(coalesce(d.amount_cents, v_paid)), 0)
    into v_standing, v_disputed
    from public.payment_disputes d
   where d.provider = p_provider and d.provider_payment_id = p_provider_payment_id
     and app.dispute_rank(d.status) in (1, 3);
  v_full := v_state.full_refunds > v_state.refund_reversals
            or (v_state.refund_of_cents is not null and v_state.refunded_cents >= v_state.refund_of_cents);
  v_refunded := case when v_full then v_paid else least(v_paid, v_state.refunded_cents) end;
  v_reversed := case when v_state.revoked then v_paid else least(v_paid, v_refunded + v_disputed) end;
  if v_paid = 0 then
    o_kept := case when v_full or v_standing or v_state.revoked or v_state.refunded_cents > 0 then 0 else p_credits end;
  else
    o_kept := p_credits - ((p_credits::bigint * v_reversed + v_paid - 1) / v_paid)::integer;
  end if;
  o_status := case
    when v_state.revoked or v_standing then 'disputed'
    when v_full or (v_paid > 0 and v_refunded >= v_paid) then 'refunded'
    else 'succeeded'
  end;
end;
$$;
comment on function app.payment_rule(text, text, integer) is 'Credits kept and purchase status of a payment, computed from its facts (the README''s payment rule table); null status before the payment.';

-- Repays debt from available credits in the repayment order (never-expiring first, then latest
-- expiry first; at equal expiry paid before promotional; then newest first), so returned credits
-- repay debt with the most durable credits. Caller holds the lock and has expired due grants.
-- One 'clawback' row. Returns the credits repaid.
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
    v_left := v_left - v_take;
  end loop;
  if v_repay - v_left > 0 then
    perform app.post_ledger_entry(p_user_id, 'clawback', -(v_repay - v_left), 0, -(v_repay - v_left),
      p_description => 'Debt repaid from returned credits');
  end if;
  return v_repay - v_left;
end;
$$;
comment on function app.repay_debt_from_available(uuid) is 'Repays debt from available credits in the repayment order (most durable first).';

-- Takes p_amount back from a paid purchase's user: its own grant first, then the user's other
-- unexpired grants in draw-down order; the rest becomes debt. Each piece is recorded against the
-- purchase. One ledger row (p_type: refund or clawback). Caller holds the balance lock.
create or replace function app.payment_take_back(p_purchase public.purchases, p_amount integer, p_type text)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grant record;
  v_left integer := p_amount;
  v_take integer;
begin
  perform app.expire_due_grants(p_purchase.user_id);
  for v_grant in
    select id, remaining from public.credit_grants
     where user_id = p_purchase.user_id and remaining > 0 and (expires_at is null or expires_at > app.now())
     order by (id = p_purchase.grant_id) desc, expires_at asc nulls last, (kind = 'paid') asc, created_at asc, id asc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
    insert into public.payment_take_backs (purchase_id, user_id, grant_id, amount)
    values (p_purchase.id, p_purchase.user_id, v_grant.id, v_take);
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    insert into public.payment_take_backs (purchase_id, user_id, grant_id, amount)
    values (p_purchase.id, p_purchase.user_id, null, v_left);
  end if;
  perform app.post_ledger_entry(p_purchase.user_id, p_type, -(p_amount - v_left), 0, v_left,
    p_grant_id => p_purchase.grant_id, p_purchase_id => p_purchase.id,
    p_description => case p_type when 'refund' then 'Credits taken back after a refund'
                                 else 'Credits taken back after a dispute or revocation' end);
  return jsonb_build_object('taken', p_amount - v_left, 'debt', v_left);
end;
$$;
comment on function app.payment_take_back(public.purchases, integer, text) is 'Takes credits back for a payment (own grant, then draw-down order, then debt), recording each piece.';

-- Returns p_amount credits to a grant (a give-back), as far as the grant has room; what does not
-- fit (never expected) becomes a new adjustment grant of the same category and expiry.
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
            'Credits given back', pg_catalog.now());
  end if;
end;
$$;
comment on function app.return_to_grant(uuid, integer, uuid) is 'Gives credits back to the grant they were taken from (same category and expiry).';

-- Gives p_amount back to a paid purchase's user: the purchase's take-back pieces are undone
-- newest first; a grant piece returns to its grant; a debt piece cancels that much debt while
-- there is debt, and what the user repaid meanwhile returns to the purchase's own grant. Then
-- grants past their expiry expire and any debt left is repaid in repayment order. One
-- 'adjustment' row. Caller holds the balance lock. Returns what was given back.
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
        perform app.return_to_grant(p_purchase.grant_id, v_undo - v_cancel, p_purchase.id);
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
comment on function app.payment_give_back(public.purchases, integer) is 'Gives credits back to a payment''s user by undoing its take-back pieces newest first.';

-- Brings a paid purchase to what its payment's facts say: computes the credits kept, moves the
-- user by the difference, sets status and credits_granted. The caller holds the payment's
-- advisory lock. p_type is the ledger type of a take-back (null: clawback while disputed, else
-- refund). Returns {"taken", "debt", "given_back"}.
create or replace function app.apply_payment_rule(p_provider text, p_provider_payment_id text, p_type text default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_purchase public.purchases;
  v_rule record;
  v_result jsonb := jsonb_build_object('taken', 0, 'debt', 0, 'given_back', 0);
begin
  select * into v_purchase from public.purchases
   where provider = p_provider and provider_payment_id = p_provider_payment_id for update;
  if v_purchase.id is null or v_purchase.grant_id is null then
    return v_result;
  end if;
  select * into v_rule from app.payment_rule(p_provider, p_provider_payment_id, v_purchase.credits);
  if v_rule.o_status is null then
    return v_result;  -- a purchase paid before payment states existed and never seen since
  end if;
  perform app.lock_balance(v_purchase.user_id);
  if v_rule.o_kept < v_purchase.credits_granted then
    v_result := app.payment_take_back(v_purchase, v_purchase.credits_granted - v_rule.o_kept,
      coalesce(p_type, case when v_rule.o_status = 'disputed' then 'clawback' else 'refund' end))
      || jsonb_build_object('given_back', 0);
  elsif v_rule.o_kept > v_purchase.credits_granted then
    v_result := jsonb_build_object('taken', 0, 'debt', 0,
      'given_back', app.payment_give_back(v_purchase, v_rule.o_kept - v_purchase.credits_granted));
  end if;
  update public.purchases
     set credits_granted = v_rule.o_kept, status = v_rule.o_status,
         refunded_at = case when v_rule.o_status in ('refunded', 'disputed') then coalesce(refunded_at, pg_catalog.now()) end,
         updated_at = pg_catalog.now()
   where id = v_purchase.id
     and (credits_granted, status) is distinct from (v_rule.o_kept, v_rule.o_status);
  return v_result;
end;
$$;
comment on function app.apply_payment_rule(text, text, text) is 'Moves a paid purchase''s user to the credits its payment keeps under the payment rule; sets status and credits_granted.';

-- Finishes a processed event: its outcome, and the answer's purchase.
create or replace function app.finish_payment_event(p_event_id bigint, p_provider text, p_provider_payment_id text, p_result jsonb)
returns public.purchases
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_purchase public.purchases;
  v_outcome text;
begin
  select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
  v_outcome := case
    when v_purchase.id is null or v_purchase.grant_id is null then 'recorded_before_payment'
    when (p_result ->> 'taken')::integer > 0 or (p_result ->> 'debt')::integer > 0 then 'taken_back'
    when (p_result ->> 'given_back')::integer > 0 then 'given_back'
    when v_purchase.credits_granted = 0 then 'already_reversed'
    else 'unchanged'
  end;
  update public.payment_events set purchase_id = v_purchase.id, outcome = v_outcome, processed_at = pg_catalog.now()
   where id = p_event_id;
  return v_purchase;
end;
$$;
comment on function app.finish_payment_event(bigint, text, text, jsonb) is 'Records a processed payment event''s outcome and returns the payment''s purchase.';

-- fulfill_purchase (service_role): the payment arrived. Its own grant of all its credits is made
-- once; then the facts recorded so far (refunds, disputes before the payment) are applied.
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
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_package public.credit_packages;
  v_grant_id uuid;
  v_paid_now boolean := false;
  v_result jsonb;
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

  if v_purchase.grant_id is null then
    -- The one grant of this payment: all its credits (debt repaid first), then the facts apply.
    perform app.payment_state(p_provider, p_provider_payment_id);
    update public.payment_states
       set amount_paid_cents = p_amount_cents, purchase_id = v_purchase.id, updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
    v_grant_id := app.add_grant(v_purchase.user_id, 'purchase', 'paid', v_purchase.credits, null, 'purchase',
      p_purchase_id => v_purchase.id, p_description => 'Purchase of ' || v_package.name);
    update public.purchases
       set provider_payment_id = p_provider_payment_id, amount_cents = p_amount_cents, currency = p_currency,
           status = 'succeeded', credits_granted = v_purchase.credits, grant_id = v_grant_id,
           fulfilled_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_paid_now := true;
  end if;
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id);
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  if v_paid_now then
    update public.payment_events
       set outcome = case when v_purchase.credits_granted = v_purchase.credits then 'granted' else 'granted_then_taken_back' end
     where id = v_event_id;
  elsif v_purchase.credits_granted > 0 then
    update public.payment_events set outcome = 'already_granted' where id = v_event_id;
  end if;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase),
    'granted', v_paid_now and v_purchase.credits_granted > 0, 'replayed', false);
end;
$$;
comment on function public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text) is 'Service role: a payment arrived. Makes the purchase''s one grant (once per provider payment id; pass p_purchase_id to complete a begin_purchase purchase, without it the purchase is created), then applies what refunds and disputes recorded before it say (payment rule). {"purchase", "granted" (this event paid it and credits are kept), "replayed" (this event id was seen before)}.';

-- Refund (refund_purchase) or dispute/revocation (clawback_purchase) without an amount or a
-- dispute id: a full refund (App Store REFUND); App Store REVOKE; for Stripe a dispute whose id
-- is derived from the payment (payment:<id>), open.
create or replace function app.reverse_purchase(
  p_provider text, p_provider_payment_id text, p_event_id text, p_kind text, p_event_type text)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_result jsonb;
begin
  v_event_id := app.record_payment_event(p_provider, p_event_id, p_kind, p_event_type, p_provider_payment_id);
  if v_event_id is null then
    select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'replayed', true);
  end if;
  perform app.payment_state(p_provider, p_provider_payment_id);
  if p_kind = 'refund' then
    update public.payment_states set full_refunds = full_refunds + 1, updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
  elsif p_provider = 'app_store' then
    update public.payment_states set revoked = true, updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
  else
    perform app.record_dispute(p_provider, p_provider_payment_id, 'payment:' || p_provider_payment_id, 'needs_response', null);
  end if;
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id,
    case p_kind when 'refund' then 'refund' else 'clawback' end);
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'replayed', false);
end;
$$;

-- Merges one dispute fact: per dispute id the highest-ranked status and the largest amount.
create or replace function app.record_dispute(
  p_provider text, p_provider_payment_id text, p_dispute_id text, p_status text, p_amount_cents integer)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  insert into public.payment_disputes (provider, dispute_id, provider_payment_id, amount_cents, status)
  values (p_provider, p_dispute_id, p_provider_payment_id, p_amount_cents, p_status)
  on conflict (provider, dispute_id) do update
     set status = case when app.dispute_rank(excluded.status) > app.dispute_rank(payment_disputes.status)
                       then excluded.status else payment_disputes.status end,
         amount_cents = greatest(payment_disputes.amount_cents, excluded.amount_cents),
         updated_at = pg_catalog.now();
end;
$$;
comment on function app.record_dispute(text, text, text, text, integer) is 'Merges a dispute event into payment_disputes (highest-ranked status, largest amount).';
comment on function app.reverse_purchase(text, text, text, text, text) is 'refund_purchase / clawback_purchase: records a full refund, an App Store revocation or a Stripe dispute derived from the payment, then applies the payment rule. Once per event id.';

-- refund_purchase_amount (service_role): Stripe's charge.refunded with the cumulative amount
-- refunded out of the charge's amount. The largest amount seen counts.
create or replace function public.refund_purchase_amount(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_amount_refunded_cents integer,
  p_amount_cents integer,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_result jsonb;
begin
  perform app.require_service_role();
  if p_amount_cents is null or p_amount_cents <= 0 then
    raise exception using errcode = '22023', message = 'The amount paid must be positive.', hint = 'invalid_request', detail = 'amount_cents';
  end if;
  if p_amount_refunded_cents is null or p_amount_refunded_cents < 0 or p_amount_refunded_cents > p_amount_cents then
    raise exception using errcode = '22023', message = 'The amount refunded must be between zero and the amount paid.',
      hint = 'invalid_request', detail = 'amount_refunded_cents';
  end if;
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'refund', p_event_type, p_provider_payment_id);
  if v_event_id is null then
    select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'replayed', true);
  end if;
  perform app.payment_state(p_provider, p_provider_payment_id);
  update public.payment_states
     set refunded_cents = greatest(refunded_cents, p_amount_refunded_cents),
         refund_of_cents = greatest(refund_of_cents, p_amount_cents),
         updated_at = pg_catalog.now()
   where provider = p_provider and provider_payment_id = p_provider_payment_id;
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id, 'refund');
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'replayed', false);
end;
$$;
comment on function public.refund_purchase_amount(text, text, text, integer, integer, text) is 'Service role: a refund given as the cumulative amount refunded out of the amount paid (Stripe charge.refunded); the largest amount seen counts. The payment keeps its credits less ceil(credits x reversed / paid) under the payment rule. Once per event id. {"purchase", "taken", "debt", "replayed"}.';

-- reinstate_purchase (service_role): the dispute reported without an id (payment:<id>) is won.
create or replace function public.reinstate_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_result jsonb;
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'dispute', p_event_type, p_provider_payment_id);
  if v_event_id is null then
    select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'reinstated', 0, 'replayed', true);
  end if;
  perform app.payment_state(p_provider, p_provider_payment_id);
  perform app.record_dispute(p_provider, p_provider_payment_id, 'payment:' || p_provider_payment_id, 'won', null);
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id, 'clawback');
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'reinstated', (v_result ->> 'given_back')::integer,
    'replayed', false);
end;
$$;
comment on function public.reinstate_purchase(text, text, text, text) is 'Service role: the dispute reported without a dispute id (clawback_purchase) was won: it stops standing, and the payment keeps what the payment rule says (what the dispute took comes back, less what refunds owe). Before the dispute or the payment, it is recorded. Once per event id. {"purchase", "reinstated", "replayed"}.';

-- dispute_purchase (service_role): any charge.dispute.* event, with its dispute id, status and amount.
create or replace function public.dispute_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_dispute_id text,
  p_dispute_status text,
  p_dispute_amount_cents integer,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_status text := case when p_event_type = 'charge.dispute.funds_reinstated' then 'won' else p_dispute_status end;
  v_result jsonb;
begin
  perform app.require_service_role();
  if p_dispute_id is null or char_length(p_dispute_id) not between 1 and 255 then
    raise exception using errcode = '22023', message = 'The dispute id must be 1 to 255 characters.',
      hint = 'invalid_request', detail = 'dispute_id';
  end if;
  if app.dispute_rank(v_status) is null then
    raise exception using errcode = '22023', message = 'Unknown dispute status.', hint = 'invalid_request', detail = 'dispute_status';
  end if;
  if p_dispute_amount_cents is not null and p_dispute_amount_cents < 0 then
    raise exception using errcode = '22023', message = 'The disputed amount must be zero or more.',
      hint = 'invalid_request', detail = 'dispute_amount_cents';
  end if;
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'dispute', p_event_type, p_provider_payment_id);
  if v_event_id is null then
    select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'given_back', 0, 'replayed', true);
  end if;
  perform app.payment_state(p_provider, p_provider_payment_id);
  perform app.record_dispute(p_provider, p_provider_payment_id, p_dispute_id, v_status, p_dispute_amount_cents);
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id, 'clawback');
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'given_back', v_result -> 'given_back', 'replayed', false);
end;
$$;
comment on function public.dispute_purchase(text, text, text, text, text, integer, text) is 'Service role: a Stripe dispute event (charge.dispute.*) for dispute p_dispute_id with its status and amount; charge.dispute.funds_reinstated counts as won. Per dispute the highest-ranked status counts (open < won/warning_closed < lost); the payment keeps what the payment rule says. Once per event id. {"purchase", "taken", "debt", "given_back", "replayed"}.';

-- reverse_refund_purchase (service_role): App Store REFUND_REVERSED.
create or replace function public.reverse_refund_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_result jsonb;
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'refund', p_event_type, p_provider_payment_id);
  if v_event_id is null then
    select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'given_back', 0, 'replayed', true);
  end if;
  perform app.payment_state(p_provider, p_provider_payment_id);
  update public.payment_states set refund_reversals = refund_reversals + 1, updated_at = pg_catalog.now()
   where provider = p_provider and provider_payment_id = p_provider_payment_id;
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id, 'refund');
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'given_back', v_result -> 'given_back', 'replayed', false);
end;
$$;
comment on function public.reverse_refund_purchase(text, text, text, text) is 'Service role: a refund was reversed (App Store REFUND_REVERSED): one full refund less counts; the payment keeps what the payment rule says. Once per event id. {"purchase", "taken", "debt", "given_back", "replayed"}.';

revoke all on function
  app.dispute_rank(text), app.payment_state(text, text), app.payment_rule(text, text, integer),
  app.repay_debt_from_available(uuid), app.payment_take_back(public.purchases, integer, text),
  app.return_to_grant(uuid, integer, uuid), app.payment_give_back(public.purchases, integer),
  app.apply_payment_rule(text, text, text), app.finish_payment_event(bigint, text, text, jsonb),
  app.reverse_purchase(text, text, text, text, text), app.record_dispute(text, text, text, text, integer)
  from public, anon, authenticated, service_role;
revoke all on function
  public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text),
  public.refund_purchase_amount(text, text, text, integer, integer, text),
  public.reinstate_purchase(text, text, text, text),
  public.dispute_purchase(text, text, text, text, text, integer, text),
  public.reverse_refund_purchase(text, text, text, text)
  from public, anon, authenticated, service_role;
grant execute on function
  public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text),
  public.refund_purchase_amount(text, text, text, integer, integer, text),
  public.reinstate_purchase(text, text, text, text),
  public.dispute_purchase(text, text, text, text, text, integer, text),
  public.reverse_refund_purchase(text, text, text, text)
  to service_role;

-- Purchases paid before this migration: their state, as far as their status tells it (nothing of
-- this bundle has been deployed yet, so this only keeps a development database consistent).
insert into public.payment_states (provider, provider_payment_id, purchase_id, amount_paid_cents, full_refunds, revoked)
select p.provider, p.provider_payment_id, p.id, p.amount_cents,
       case when p.status = 'refunded' then 1 else 0 end,
       p.status = 'disputed' and p.provider = 'app_store'
  from public.purchases p
 where p.grant_id is not null and p.provider_payment_id is not null
on conflict (provider, provider_payment_id) do nothing;
insert into public.payment_disputes (provider, dispute_id, provider_payment_id, status)
select p.provider, 'payment:' || p.provider_payment_id, p.provider_payment_id, 'needs_response'
  from public.purchases p
 where p.grant_id is not null and p.status = 'disputed' and p.provider = 'stripe'
on conflict (provider, dispute_id) do nothing;
