-- A Stripe change that resets the billing period (another interval, free to paid) credits the
-- unused time of the period it ends and invoices the new price's whole period. The new period is a
-- period of its plan; with p_replaces_unused (the invoice had the credit) every payment of the
-- period it ends counts as refunded by its unused fraction, in either order (migration
-- 20261203012454, migrations/README.md "replaced" row).
begin;
\ir _setup.psql
select plan(16);

select tests.set_now('2030-01-01 10:00:00+00');

-- A Basic period [now - 10 days, now + 20 days) paid 999 (1), maybe a plan change to Pro within it
-- from now - 5 days (2, paid p_up_cents), and the reset: Pro yearly from now (3), paid 29333 with
-- the credit when p_credited. Delivered in p_order. Answers the user.
create function pg_temp.reset(p_email text, p_order int[], p_credited boolean default true, p_up_cents int default 2000)
returns uuid
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_tag text := split_part(p_email, '@', 1);
  v_now timestamptz := app.now();
  i int;
begin
  perform tests.authenticate_as_service_role();
  foreach i in array p_order loop
    if i = 1 then
      perform public.fulfill_subscription_payment('stripe', 'pi_basic_' || v_tag, 'evt_basic_' || v_tag, v_user,
        'sub_' || v_tag, 'price_plan_basic_monthly', v_now - interval '10 days', v_now + interval '20 days',
        999, 'usd', null, 'invoice.paid');
    elsif i = 2 then
      perform public.fulfill_subscription_payment('stripe', 'pi_up_' || v_tag, 'evt_up_' || v_tag, v_user,
        'sub_' || v_tag, 'price_plan_pro_monthly', v_now - interval '5 days', v_now + interval '20 days',
        p_up_cents, 'usd', 'price_plan_basic_monthly', 'invoice.paid');
    else
      perform public.fulfill_subscription_payment('stripe', 'pi_year_' || v_tag, 'evt_year_' || v_tag, v_user,
        'sub_' || v_tag, 'price_plan_pro_yearly', v_now, v_now + interval '365 days', 29333, 'usd', null,
        'invoice.paid', p_replaces_unused => p_credited);
    end if;
  end loop;
  perform tests.clear_authentication();
  return v_user;
end;
$$;
grant execute on function pg_temp.reset(text, int[], boolean, int) to public;

select pg_temp.reset('spr-a@example.test', array[1, 3]) as a \gset
select pg_temp.reset('spr-b@example.test', array[3, 1]) as b \gset
select pg_temp.reset('spr-c@example.test', array[1, 3], false) as c \gset
select pg_temp.reset('spr-d@example.test', array[1, 2, 3]) as d \gset
select pg_temp.reset('spr-e@example.test', array[3, 2, 1]) as e \gset
select pg_temp.reset('spr-f@example.test', array[1, 3, 2]) as f \gset
select pg_temp.reset('spr-g@example.test', array[2, 3, 1]) as g \gset

-- Basic paid 999 for 30 days, 20 unused at the reset: refunded ceil(999 x 20 / 30) = 666, so it
-- keeps 200 - ceil(200 x 666 / 999) = 66 of its 200 credits; the yearly period grants its 12000.
select is((select available from public.credit_balances where user_id = :'a'), 10 + 66 + 12000,
  'Basic, then the yearly period with the credit: welcome 10 + Basic''s 66 + the year''s 12000');
select is((select available from public.credit_balances where user_id = :'b'), 12076,
  'the yearly period first, then Basic''s invoice: the same');
select is((select (refunded_cents, cut_cents) from public.payment_states where provider_payment_id = 'pi_basic_spr-a'),
  (0, 666), 'the ended period''s cut: its unused fraction of what it paid, apart from refunds');
select is((select (credits_granted, status) from public.purchases where provider_payment_id = 'pi_basic_spr-a'),
  (66, 'succeeded'::text), 'the ended period keeps 66 and stays succeeded (a partial refund)');
select is((select (credits_granted, status) from public.purchases where provider_payment_id = 'pi_year_spr-a'),
  (12000, 'succeeded'::text), 'the new period grants its plan in full');
select is((select available from public.credit_balances where user_id = :'c'), 12210,
  'a reset without the credit (proration_behavior none): the user paid for the unused time, nothing cut');
-- The plan change paid 2000 for [now - 5 days, now + 20 days), 20 of its 25 days unused:
-- ceil(2000 x 20 / 25) = 1600, so it keeps 800 - ceil(800 x 1600 / 2000) = 160.
select is((select available from public.credit_balances where user_id = :'d'), 10 + 66 + 160 + 12000,
  'a plan change within the ended period is cut by its own unused fraction too');
select is((select available from public.credit_balances where user_id = :'e'), 12236,
  'the three invoices in the reverse order: the same');
select is((select array_agg(available order by user_id = :'f') from public.credit_balances where user_id in (:'f', :'g')),
  array[12236, 12236], 'the reset between the two invoices of the period it ends, either way: the same');
select is((select count(*) from public.purchases p join public.payment_states s using (provider, provider_payment_id)
            where p.user_id = :'g' and s.cut_cents > 0), 2::bigint, 'both payments of the ended period carry their cut');

-- A real refund of 500 before the reset, then its credit of 666: 1166 given back of 999 paid, so
-- Basic keeps nothing (the two add up, at most what was paid), status refunded.
select tests.create_user('spr-h@example.test') as h \gset
select tests.authenticate_as_service_role();
select public.fulfill_subscription_payment('stripe', 'pi_basic_spr-h', 'evt_basic_spr-h', :'h', 'sub_spr-h',
  'price_plan_basic_monthly', timestamptz '2029-12-22 10:00:00+00', timestamptz '2030-01-21 10:00:00+00', 999, 'usd', null, 'invoice.paid');
select public.refund_purchase_amount('stripe', 'pi_basic_spr-h', 'evt_refund_spr-h', 500, 999, 'charge.refunded');
select public.fulfill_subscription_payment('stripe', 'pi_year_spr-h', 'evt_year_spr-h', :'h', 'sub_spr-h',
  'price_plan_pro_yearly', timestamptz '2030-01-01 10:00:00+00', timestamptz '2031-01-01 10:00:00+00', 29333, 'usd', null,
  'invoice.paid', p_replaces_unused => true);
select tests.clear_authentication();
select is((select credits_granted || '/' || status from public.purchases where provider_payment_id = 'pi_basic_spr-h'),
  '0/refunded', 'a real refund and the reset''s credit add up: 500 + 666 of 999, nothing kept');
select is((select current_period_end from public.subscriptions where user_id = :'a'), app.now() + interval '365 days',
  'the subscription''s current period is the new one');

-- The same invoice again (Stripe retries, or a new event id for it): nothing more is granted or cut.
select tests.authenticate_as_service_role();
select is((public.fulfill_subscription_payment('stripe', 'pi_year_spr-a', 'evt_year_spr-a', :'a', 'sub_spr-a',
  'price_plan_pro_yearly', timestamptz '2030-01-01 10:00:00+00', timestamptz '2031-01-01 10:00:00+00', 29333, 'usd', null, 'invoice.paid',
  p_replaces_unused => true))->>'replayed', 'true', 'a retried event is a replay');
select public.fulfill_subscription_payment('stripe', 'pi_year_spr-a', 'evt_year_spr-a-2', :'a', 'sub_spr-a',
  'price_plan_pro_yearly', timestamptz '2030-01-01 10:00:00+00', timestamptz '2031-01-01 10:00:00+00', 29333, 'usd', null, 'invoice.paid',
  p_replaces_unused => true);
select is((select available from public.credit_balances where user_id = :'a'), 12076,
  'the invoice under another event id grants and cuts nothing more');

-- A plan change cannot be a reset: refused (an exception, so its transaction writes nothing).
select throws_ok($$ select public.fulfill_subscription_payment('stripe', 'pi_bad_spr', 'evt_bad_spr',
  (select user_id from public.profiles limit 1), 'sub_spr-bad', 'price_plan_pro_monthly', timestamptz '2030-01-01 10:00:00+00',
  timestamptz '2030-01-21 10:00:00+00', 100, 'usd', 'price_plan_basic_monthly', 'invoice.paid', p_replaces_unused => true) $$,
  '22023', 'A plan change within a period replaces no period.', 'p_replaces_unused with a plan change is refused');
select tests.clear_authentication();

select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
