-- An App Store upgrade starts a new billing period of the higher plan at once and refunds the
-- unused part of the replaced period, without a REFUND notification. The replaced period used to
-- keep all its credits; now it counts as refunded by its unused fraction of time, in either order
-- of the two transactions (migration 20261202223059, migrations/README.md "replaced" row).
begin;
\ir _setup.psql
select plan(15);

select tests.set_now('2030-01-01 10:00:00+00');

-- A Basic period [now - 10 days, now + 20 days) paid p_basic_cents, and a Pro transaction of the
-- same subscription starting at now + p_offset (a full 30-day period), delivered in p_order
-- (1 = Basic, 2 = Pro). Answers the user.
create function pg_temp.upgrade(p_email text, p_order int[], p_provider text default 'app_store',
                                p_offset interval default '0', p_basic_cents int default 999)
returns uuid
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_tag text := split_part(p_email, '@', 1);
  v_now timestamptz := app.now();
  v_pro_start timestamptz := v_now + p_offset;
  i int;
begin
  perform tests.authenticate_as_service_role();
  foreach i in array p_order loop
    if i = 1 then
      perform public.fulfill_subscription_payment(p_provider, 'basic_' || v_tag, 'transaction:basic_' || v_tag, v_user,
        'otx_' || v_tag, 'basic-monthly', v_now - interval '10 days', v_now + interval '20 days',
        p_basic_cents, 'usd', null, 'SUBSCRIBED');
    else
      perform public.fulfill_subscription_payment(p_provider, 'pro_' || v_tag, 'transaction:pro_' || v_tag, v_user,
        'otx_' || v_tag, 'pro-monthly', v_pro_start, v_pro_start + interval '30 days', 2999, 'usd', null,
        'DID_CHANGE_RENEWAL_PREF');
    end if;
  end loop;
  perform tests.clear_authentication();
  return v_user;
end;
$$;
grant execute on function pg_temp.upgrade(text, int[], text, interval, int) to public;

select pg_temp.upgrade('asu-a@example.test', array[1, 2]) as a \gset
select pg_temp.upgrade('asu-b@example.test', array[2, 1]) as b \gset
select pg_temp.upgrade('asu-c@example.test', array[1, 2], 'app_store', interval '19 days 12 hours') as c \gset
select pg_temp.upgrade('asu-d@example.test', array[1, 2], 'stripe') as d \gset
select pg_temp.upgrade('asu-e@example.test', array[1, 2], 'app_store', interval '0', 0) as e \gset

-- Basic paid 999 for 30 days and 20 were unused at the upgrade: refunded ceil(999 x 20 / 30) = 666,
-- so it keeps 200 - ceil(200 x 666 / 999) = 66 of its 200 credits.
select is((select available from public.credit_balances where user_id = :'a'), 10 + 66 + 1000,
  'Basic then the upgrade: welcome 10 + Basic''s 66 kept + Pro''s 1000 (it kept all 200 before)');
select is((select available from public.credit_balances where user_id = :'b'), 1076,
  'the upgrade''s transaction first, then Basic''s: the same');
select is((select (refunded_cents, refund_of_cents) from public.payment_states where provider_payment_id = 'basic_asu-a'),
  (666, 999), 'the replaced period''s refund fact: its unused fraction of what it paid');
select is((select (credits_granted, status) from public.purchases where provider_payment_id = 'basic_asu-a'),
  (66, 'succeeded'::text), 'the replaced purchase keeps 66 and stays succeeded (a partial refund)');
select is((select (credits_granted, status) from public.purchases where provider_payment_id = 'pro_asu-a'),
  (1000, 'succeeded'::text), 'the upgrade''s own period grants its plan in full');
select is((select available from public.credit_balances where user_id = :'c'), 1210,
  'a period starting within the last day of the one before is a renewal: nothing cut');
select is((select available from public.credit_balances where user_id = :'d'), 1210,
  'Stripe periods are never cut this way (its plan changes are invoices of the same period)');
select is((select available from public.credit_balances where user_id = :'e'), 1210,
  'a period paid 0 (an introductory offer) has nothing refunded: nothing cut');

-- The same transactions again, under new event ids (the app's own submission after the
-- notification): nothing more is cut.
select app.now() as now \gset
select tests.authenticate_as_service_role();
select public.fulfill_subscription_payment('app_store', 'pro_asu-a', 'notification-2', :'a', 'otx_asu-a', 'pro-monthly',
  :'now', :'now'::timestamptz + interval '30 days', 2999, 'usd', null, 'DID_CHANGE_RENEWAL_PREF') is not null as again \gset
select public.fulfill_subscription_payment('app_store', 'basic_asu-a', 'notification-3', :'a', 'otx_asu-a', 'basic-monthly',
  :'now'::timestamptz - interval '10 days', :'now'::timestamptz + interval '20 days', 999, 'usd', null, 'SUBSCRIBED') is not null as again \gset
select tests.clear_authentication();
select is((select available from public.credit_balances where user_id = :'a'), 1076, 'redelivered: nothing more is cut');

-- A REFUND of the replaced period takes the rest; its REFUND_REVERSED gives back only to the cut.
select tests.authenticate_as_service_role();
select public.refund_purchase('app_store', 'basic_asu-a', 'refund-1', 'REFUND') is not null as r \gset
select is((select available from public.credit_balances where user_id = :'a'), 1010, 'a full refund of the replaced period takes its 66');
select public.reverse_refund_purchase('app_store', 'basic_asu-a', 'reversal-1', 'REFUND_REVERSED') is not null as r \gset
select tests.clear_authentication();
select is((select available from public.credit_balances where user_id = :'a'), 1076,
  'its reversal gives back the 66 the prorated refund left, not the 200');
-- A REFUND of Basic before the upgrade arrives: nothing left to cut; its reversal gives back 66.
select pg_temp.upgrade('asu-f@example.test', array[1]) as f \gset
select tests.authenticate_as_service_role();
select public.refund_purchase('app_store', 'basic_asu-f', 'refund-f', 'REFUND') is not null as r \gset
select tests.clear_authentication();
select tests.authenticate_as_service_role();
select public.fulfill_subscription_payment('app_store', 'pro_asu-f', 'transaction:pro_asu-f', :'f', 'otx_asu-f', 'pro-monthly',
  :'now', :'now'::timestamptz + interval '30 days', 2999, 'usd', null, 'DID_CHANGE_RENEWAL_PREF') is not null as r \gset
select tests.clear_authentication();
select is((select available from public.credit_balances where user_id = :'f'), 1010, 'refunded Basic, then the upgrade: Pro''s 1000 only');
select tests.authenticate_as_service_role();
select public.reverse_refund_purchase('app_store', 'basic_asu-f', 'reversal-f', 'REFUND_REVERSED') is not null as r \gset
select tests.clear_authentication();
select is((select available from public.credit_balances where user_id = :'f'), 1076, 'the reversal gives back what the cut leaves, 66');

-- Two upgrades: a second Pro transaction starting 5 days into the first. Basic keeps the larger
-- refund fact (666 from the first); the first Pro period paid 2999 with 25 of 30 days unused:
-- refunded ceil(2999 x 25 / 30) = 2500, keeps 1000 - ceil(1000 x 2500 / 2999) = 166.
select pg_temp.upgrade('asu-g@example.test', array[1, 2]) as g \gset
select tests.authenticate_as_service_role();
select public.fulfill_subscription_payment('app_store', 'pro2_asu-g', 'transaction:pro2_asu-g', :'g', 'otx_asu-g', 'pro-monthly',
  :'now'::timestamptz + interval '5 days', :'now'::timestamptz + interval '35 days', 2999, 'usd', null, 'DID_CHANGE_RENEWAL_PREF') is not null as r \gset
select tests.clear_authentication();
select is((select available from public.credit_balances where user_id = :'g'), 10 + 66 + 166 + 1000,
  'two upgrades: each replaced period keeps its used share');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
