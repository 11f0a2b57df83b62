-- Create fail_purchase: a Stripe Checkout whose delayed payment failed marks its pending purchase failed, once per event.

-- Stripe sends checkout.session.async_payment_failed when a delayed payment method (bank debit,
-- voucher) does not go through. The purchase grants nothing and shows as failed; a later
-- successful payment for it (a new attempt) still completes it through fulfill_purchase.
create or replace function public.fail_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_purchase_id uuid,
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
  v_outcome text;
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_purchase from public.purchases where id = p_purchase_id for update;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'replayed', true);
  end if;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such purchase.', hint = 'not_found', detail = 'purchase_id';
  end if;
  if v_purchase.provider <> p_provider then
    raise exception using errcode = 'PT409', message = 'This purchase was made with another provider.',
      hint = 'purchase_conflict', detail = 'purchase_id';
  end if;
  if v_purchase.status = 'pending' then
    update public.purchases set status = 'failed', updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    v_outcome := 'failed';
  else
    -- Already paid, failed or reversed: a failure report changes nothing.
    v_outcome := 'ignored_' || v_purchase.status;
  end if;
  update public.payment_events set purchase_id = v_purchase.id, outcome = v_outcome, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'replayed', false);
end;
$$;
comment on function public.fail_purchase(text, text, text, uuid, text) is 'Service role: the payment of a pending purchase failed (Stripe async_payment_failed): status failed, nothing granted. Once per event id; a purchase that is no longer pending is left as it is. {"purchase", "replayed"}.';

revoke all on function public.fail_purchase(text, text, text, uuid, text) from public, anon, authenticated, service_role;
grant execute on function public.fail_purchase(text, text, text, uuid, text) to service_role;
