-- Add partial refunds (as deltas of the cumulative refunded amount) and the reinstatement of credits clawed back for a dispute that was won.

-- What a purchase has given back so far is read from its own ledger rows (purchase_id set):
--   refund     rows: delta_debt - delta_available = credits taken back for refunds;
--   clawback   rows: the same, for disputes;
--   adjustment rows: credits given back after a won dispute (counted negative).
-- So every function here computes "what is still owed back" as a difference, and any order or
-- repetition of cumulative refund events, disputes and reinstatements converges on one state.

-- app.reverse_purchase (..._create_purchases.sql) follows the same rule: a refund or dispute takes
-- back only what earlier (partial) refunds and claw-backs have not already taken, and a dispute
-- whose reinstatement was seen first (events delivered out of order) takes nothing.

-- refund_purchase_amount (service_role): a refund of p_amount_refunded_cents in total (Stripe's
-- charge.refunded carries the cumulative amount_refunded) out of p_amount_cents paid. Takes back
-- ceil(credits x refunded / paid) minus what earlier refunds took; the whole amount is a full refund.
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
set search_path = ''
as $$
declare
  v_event_id bigint;
  v_purchase public.purchases;
  v_result jsonb := jsonb_build_object('taken', 0, 'debt', 0);
  v_target integer;
  v_owed integer;
  v_outcome text;
begin
  perform app.require_service_role();
  if p_amount_cents is null or p_amount_cents <= 0 then
    raise exception using errcode = '22023', message = 'The amount paid must be positive.', hint = 'invalid_request', detail = 'amount_cents';
  end if;
  if p_amount_refunded_cents is null or p_amount_refunded_cents < 0 or p_amount_refunded_cents > p_amount_cents then
    raise exception using errcode = '22023', message = 'The amount refunded must be between zero and the amount paid.',
      hint = 'invalid_request', detail = 'amount_refunded_cents';
  end if;
  if p_amount_refunded_cents = p_amount_cents then
    return app.reverse_purchase(p_provider, p_provider_payment_id, p_event_id, 'refund', p_event_type);
  end if;
  -- Recorded as a refund: a partial refund seen before its payment makes the payment grant
  -- nothing (the merchant-safe side; the purchase shows as refunded).
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'refund', p_event_type, p_provider_payment_id);
  select * into v_purchase from public.purchases
   where provider = p_provider and provider_payment_id = p_provider_payment_id for update;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'replayed', true);
  end if;
  if v_purchase.id is null then
    v_outcome := 'recorded_before_payment';
  elsif v_purchase.status in ('refunded', 'disputed') then
    v_outcome := 'already_reversed';
  elsif v_purchase.status = 'succeeded' then
    v_target := ((v_purchase.credits_granted::bigint * p_amount_refunded_cents + p_amount_cents - 1) / p_amount_cents)::integer;
    select v_target - coalesce(sum(l.delta_debt - l.delta_available), 0)::integer into v_owed
      from public.credit_ledger l
     where l.purchase_id = v_purchase.id and l.type = 'refund';
    if v_owed > 0 then
      v_result := app.take_back(v_purchase.user_id, v_owed, 'refund', v_purchase.grant_id, v_purchase.id);
      v_outcome := 'partially_taken_back';
    else
      v_outcome := 'nothing_to_take';
    end if;
  else
    v_outcome := 'recorded_before_payment';
  end if;
  update public.payment_events set purchase_id = v_purchase.id, outcome = v_outcome, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'replayed', false);
end;
$$;
comment on function public.refund_purchase_amount(text, text, text, integer, integer, text) is 'Service role: a (partial) refund given as the cumulative amount refunded out of the amount paid. Takes back ceil(credits x refunded / paid) less what earlier refunds took (status stays succeeded); the whole amount is a full refund (refund_purchase). Once per event id. {"purchase", "taken", "debt", "replayed"}.';

-- reinstate_purchase (service_role): the dispute was won (Stripe charge.dispute.funds_reinstated,
-- or charge.dispute.closed with status won): the credits the claw-back took are given back as a
-- paid, never-expiring adjustment grant (repaying debt first) and the purchase is succeeded again.
-- Seen before the claw-back, it makes the claw-back take nothing. A purchase disputed before it was
-- paid gets its grant now.
create or replace function public.reinstate_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
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
  v_balance public.credit_balances;
  v_back integer;
  v_repay integer := 0;
  v_grant_id uuid;
  v_outcome text;
begin
  perform app.require_service_role();
  -- Money coming back to the merchant is a payment event, so it never counts as a reversal.
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_purchase from public.purchases
   where provider = p_provider and provider_payment_id = p_provider_payment_id for update;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'reinstated', 0, 'replayed', true);
  end if;
  v_back := 0;
  if v_purchase.id is null then
    v_outcome := 'recorded_before_payment';
  elsif v_purchase.status = 'succeeded' then
    v_outcome := 'reinstated_before_claw_back';
  elsif v_purchase.status = 'disputed' and v_purchase.grant_id is null then
    v_grant_id := app.add_grant(v_purchase.user_id, 'purchase', 'paid', v_purchase.credits, null, 'purchase',
      p_purchase_id => v_purchase.id, p_description => 'Purchase credited after a won dispute');
    update public.purchases
       set status = 'succeeded', credits_granted = v_purchase.credits, grant_id = v_grant_id, refunded_at = null,
           fulfilled_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_back := v_purchase.credits;
    v_outcome := 'reinstated';
  elsif v_purchase.status = 'disputed' then
    select coalesce(sum(l.delta_debt - l.delta_available), 0)::integer into v_back
      from public.credit_ledger l
     where l.purchase_id = v_purchase.id and l.type in ('clawback', 'adjustment');
    if v_back > 0 then
      v_balance := app.lock_balance(v_purchase.user_id);
      v_repay := least(v_balance.debt, v_back);
      -- Not tied to the purchase by purchase_id: a purchase has exactly one grant of its own.
      insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, description, created_at)
      values (v_purchase.user_id, 'adjustment', 'paid', v_back, v_back - v_repay, null,
              'Credits reinstated after a won dispute', pg_catalog.now())
      returning id into v_grant_id;
      perform app.post_ledger_entry(v_purchase.user_id, 'adjustment', v_back - v_repay, 0, -v_repay,
        p_grant_id => v_grant_id, p_purchase_id => v_purchase.id,
        p_description => 'Credits reinstated after a won dispute');
    end if;
    update public.purchases set status = 'succeeded', refunded_at = null, updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_outcome := 'reinstated';
  else
    v_outcome := 'nothing_to_reinstate';
  end if;
  update public.payment_events set purchase_id = v_purchase.id, outcome = v_outcome, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'reinstated', v_back, 'replayed', false);
end;
$$;
comment on function public.reinstate_purchase(text, text, text, text) is 'Service role: a dispute on the purchase was won; the credits its claw-back took are given back (debt repaid first) and the purchase is succeeded again. Seen before the claw-back, the claw-back then takes nothing. Once per event id. {"purchase", "reinstated", "replayed"}.';

revoke all on function
  public.refund_purchase_amount(text, text, text, integer, integer, text), public.reinstate_purchase(text, text, text, text)
  from public, anon, authenticated, service_role;
grant execute on function
  public.refund_purchase_amount(text, text, text, integer, integer, text), public.reinstate_purchase(text, text, text, text)
  to service_role;
