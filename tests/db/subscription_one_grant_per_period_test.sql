-- At most one paid period per subscription period (migrations/README.md, "The subscription rules"):
-- a second payment (another invoice or PaymentIntent, another App Store transaction) for a period
-- of the same subscription that a payment already paid grants nothing, rolls nothing over and is
-- parked for a refund at the provider (subscription_duplicate_payments), whatever its deliveries;
-- its refund changes nothing; the first payment's refund still takes back its own credits.
begin;
\ir _setup.psql
select plan(14);

create function tests.pay2(p_user uuid, p_sub text, p_payment text, p_event text, p_plan text,
                           p_start timestamptz, p_end timestamptz, p_provider text default 'stripe')
returns jsonb
language plpgsql
as $$
declare
  v_result jsonb;
begin
  perform tests.authenticate_as_service_role();
  v_result := public.fulfill_subscription_payment(p_provider, p_payment, p_event, p_user, p_sub, p_plan, p_start, p_end,
    2999, 'usd', null, 'invoice.paid');
  perform tests.clear_authentication();
  return v_result;
end;
$$;
create function tests.avail(p_user uuid)
returns text
language plpgsql
as $$
declare
  v jsonb;
begin
  perform tests.authenticate_as(p_user);
  v := public.get_balance();
  perform tests.clear_authentication();
  return (v ->> 'available') || '/' || (v ->> 'debt');
end;
$$;

select tests.set_now('2031-01-10T00:00:00Z');
select tests.create_user('twice@example.com') as u \gset

-- Period 1 paid by invoice A (keyed by its PaymentIntent), then the same period again by a second
-- payment (a key seen before the API upgrade, another invoice for the same period).
select is((tests.pay2(:'u', 'sub_twice', 'pi_A', 'evt_A1', 'pro-monthly', '2031-01-01', '2031-01-31') ->> 'granted')::boolean, true,
  'the first payment of the period grants');
select is(tests.avail(:'u'), '1010/0', 'its 1000');
select is((tests.pay2(:'u', 'sub_twice', 'in_B', 'evt_B1', 'pro-monthly', '2031-01-01', '2031-01-31') ->> 'granted')::boolean, false,
  'a second payment of the same period grants nothing');
select is(tests.avail(:'u'), '1010/0', 'one grant for the period');
select is(tests.pay2(:'u', 'sub_twice', 'in_B', 'evt_B2', 'pro-monthly', '2031-01-01', '2031-01-31') ->> 'refund_due', 'true',
  'a redelivery of the second payment is parked again');
select is(tests.avail(:'u'), '1010/0', 'still one grant');
select is((select count(*)::int from public.purchases where provider_payment_id = 'in_B'), 0, 'no purchase for the second payment');
select is((select refund_status from public.subscription_duplicate_payments where provider_payment_id = 'in_B'), 'refund_due',
  'the second payment is parked for a refund at the provider');
select is((select duplicate_of from public.subscription_duplicate_payments where provider_payment_id = 'in_B'), 'pi_A',
  'naming the payment that paid the period');

-- The next period rolls over once, from the first payment's grant.
select is((tests.pay2(:'u', 'sub_twice', 'pi_C', 'evt_C1', 'pro-monthly', '2031-01-31', '2031-03-02') ->> 'rolled_over')::int, 500,
  'the next period rolls over 500 from the period, once');
select is(tests.avail(:'u'), '2010/0', 'welcome 10, 500 left in period 1, period 2 and its rollover');

-- A refund of the parked payment moves nothing; App Store: a second transaction of the same period likewise.
select tests.authenticate_as_service_role();
select public.refund_purchase_amount('stripe', 'in_B', 'evt_B_refund', 2999, 2999, 'charge.refunded');
select tests.clear_authentication();
select is(tests.avail(:'u'), '2010/0', 'refunding the parked payment takes nothing back');
select tests.pay2(:'u', 'otx_twice', '7001', 'n-1', 'basic-monthly', '2031-01-05', '2031-02-04', 'app_store');
select tests.pay2(:'u', 'otx_twice', '7002', 'n-2', 'basic-monthly', '2031-01-05', '2031-02-04', 'app_store');
select is(tests.avail(:'u'), '2210/0', 'App Store: one grant for two transactions of one period');
select is(tests.violations(), '[]', 'reconcile() is empty');

select * from finish();
rollback;
