-- An App Store REFUND prorated to a share of the price (revocationType REFUND_PRORATED) is recorded apart from full refunds and Stripe's refunded amount: a REFUND_REVERSED cancels it first (its share comes back), so a later full REFUND still counts; recorded as a Stripe-style partial refund, a reversal cancelled nothing and the later full refund was outweighed (found in review).

-- Rule (migrations/README.md, payment rule table, App Store rows): prorated refunds are counted per
-- event id with the largest share seen; refund reversals cancel prorated refunds first, then full
-- refunds. A payment is refunded in full while full_refunds > max(0, refund_reversals -
-- prorated_refunds); the prorated share counts while prorated_refunds > refund_reversals, as a
-- refunded amount beside the others (the largest counts: refunded_cents, which also holds the cut
-- of a replaced subscription period). Counts commute, so any order of the events converges.

alter table public.payment_states
  add column prorated_refunds integer not null default 0,
  add column prorated_refund_cents integer,
  add constraint payment_states_prorated_nonnegative_check check (prorated_refunds >= 0 and prorated_refund_cents >= 0);
comment on column public.payment_states.prorated_refunds is 'App Store REFUNDs prorated to a share of the price (revocationType REFUND_PRORATED), one per event id; refund reversals cancel these first.';
comment on column public.payment_states.refund_reversals is 'Refund reversals (App Store REFUND_REVERSED), one per event id; they cancel prorated refunds first, then full refunds (app.payment_rule).';
comment on column public.payment_states.prorated_refund_cents is 'The largest prorated share refunded (minor units); counts while prorated_refunds > refund_reversals.';

-- The body of 20261202012240_create_payment_states.sql, with the prorated refunds and a Stripe
-- reset's credit (cut_cents, added to what was refunded).
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
  v_share bigint;
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
  v_full := v_state.full_refunds > greatest(0, v_state.refund_reversals - v_state.prorated_refunds)
            or (v_state.refund_of_cents is not null and v_state.refunded_cents >= v_state.refund_of_cents);
  v_share := case when v_state.prorated_refunds > v_state.refund_reversals then coalesce(v_state.prorated_refund_cents, 0) else 0 end;
  -- What a Stripe billing period reset credited (cut_cents, 20261203012454) adds to the rest.
  v_refunded := case when v_full then v_paid
                     else least(v_paid, greatest(v_state.refunded_cents, v_share) + v_state.cut_cents) end;
  v_reversed := case when v_state.revoked then v_paid else least(v_paid, v_refunded + v_disputed) end;
  if v_paid = 0 then
    o_kept := case when v_full or v_standing or v_state.revoked or v_state.refunded_cents > 0 or v_share > 0
                   then 0 else p_credits end;
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

-- refund_purchase_share (service_role): an App Store REFUND prorated to p_refunded_cents of
-- p_amount_cents (ceil of the price x revocationPercentage; the Worker sends a share that rounds up
-- to the whole price as a full REFUND). Once per event id.
create or replace function public.refund_purchase_share(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_refunded_cents integer,
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
  if p_provider is distinct from 'app_store' then
    raise exception using errcode = '22023', message = 'Only App Store refunds are prorated this way.', hint = 'invalid_request', detail = 'provider';
  end if;
  if p_amount_cents is null or p_amount_cents <= 0 then
    raise exception using errcode = '22023', message = 'The amount paid must be positive.', hint = 'invalid_request', detail = 'amount_cents';
  end if;
  if p_refunded_cents is null or p_refunded_cents < 0 or p_refunded_cents >= p_amount_cents then
    raise exception using errcode = '22023', message = 'A prorated share must be at least zero and less than the amount paid.',
      hint = 'invalid_request', detail = 'refunded_cents';
  end if;
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'refund', p_event_type, p_provider_payment_id);
  if v_event_id is null then
    select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', 0, 'debt', 0, 'given_back', 0, 'replayed', true);
  end if;
  perform app.payment_state(p_provider, p_provider_payment_id);
  update public.payment_states
     set prorated_refunds = prorated_refunds + 1,
         prorated_refund_cents = greatest(prorated_refund_cents, p_refunded_cents),
         updated_at = pg_catalog.now()
   where provider = p_provider and provider_payment_id = p_provider_payment_id;
  v_result := app.apply_payment_rule(p_provider, p_provider_payment_id, 'refund');
  v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'taken', v_result -> 'taken',
    'debt', v_result -> 'debt', 'given_back', v_result -> 'given_back', 'replayed', false);
end;
$$;
comment on function public.refund_purchase_share(text, text, text, integer, integer, text) is 'Service role: an App Store REFUND prorated to a share of the price (revocationType REFUND_PRORATED). Counted per event id with the largest share; a REFUND_REVERSED cancels it before any full refund. The payment keeps what the payment rule says. {"purchase", "taken", "debt", "given_back", "replayed"}.';
revoke all on function public.refund_purchase_share(text, text, text, integer, integer, text) from public, anon, authenticated, service_role;
grant execute on function public.refund_purchase_share(text, text, text, integer, integer, text) to service_role;
comment on function public.reverse_refund_purchase(text, text, text, text) is 'Service role: a refund was reversed (App Store REFUND_REVERSED): one refund less counts, a prorated one first (its share comes back), then a full one; the payment keeps what the payment rule says. Once per event id. {"purchase", "taken", "debt", "given_back", "replayed"}.';
