-- Refuse a Stripe checkout of a package without a Stripe price before creating the pending purchase.

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
