-- A payment whose dispute was opened and won before the payment event arrived is granted, not left disputed.

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
