-- Mid-period plan changes (review, 2026-12-02): with Stripe's immediate plan-change invoices an
-- upgrade, a downgrade (nothing granted or taken back; the proration stays as Stripe balance) and
-- an upgrade again granted the difference every time, paid by that balance. An upgrade now grants
-- what its plan has above the highest plan the period already reached, whatever order the
-- invoices arrive in (migration 20261202203947: every payment of the period cut to the room its highest plan leaves).
begin;
\ir _setup.psql
select plan(7);

select tests.set_now('2030-01-01 10:00:00+00');

-- The four invoices of one period, delivered in the order given (1 period, 2 upgrade, 3
-- downgrade, 4 upgrade again); answers the user.
create function pg_temp.cycle(p_email text, p_order int[], p_period_plan text default 'basic-monthly')
returns uuid
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_tag text := split_part(p_email, '@', 1);
  v_start timestamptz := app.now() - interval '1 day';
  v_end timestamptz := app.now() + interval '29 days';
  v_now timestamptz := app.now();
  i int;
begin
  perform tests.authenticate_as_service_role();
  foreach i in array p_order loop
    case i
      when 1 then perform public.fulfill_subscription_payment('stripe', 'in_1_' || v_tag, 'evt_1_' || v_tag, v_user,
        'sub_' || v_tag, p_period_plan, v_start, v_end, 999, 'usd', null, 'invoice.paid');
      when 2 then perform public.fulfill_subscription_payment('stripe', 'in_2_' || v_tag, 'evt_2_' || v_tag, v_user,
        'sub_' || v_tag, 'pro-monthly', v_now, v_end, 1333, 'usd', 'basic-monthly', 'invoice.paid');
      when 3 then perform public.fulfill_subscription_payment('stripe', 'in_3_' || v_tag, 'evt_3_' || v_tag, v_user,
        'sub_' || v_tag, 'basic-monthly', v_now, v_end, 0, 'usd', 'pro-monthly', 'invoice.paid');
      else perform public.fulfill_subscription_payment('stripe', 'in_4_' || v_tag, 'evt_4_' || v_tag, v_user,
        'sub_' || v_tag, 'pro-monthly', v_now, v_end, 0, 'usd', 'basic-monthly', 'invoice.paid');
    end case;
  end loop;
  perform tests.clear_authentication();
  return v_user;
end;
$$;
grant execute on function pg_temp.cycle(text, int[], text) to public;

select pg_temp.cycle('hw-a@example.test', array[1, 2, 3, 4]) as a \gset
select pg_temp.cycle('hw-b@example.test', array[4, 3, 2, 1]) as b \gset
select pg_temp.cycle('hw-c@example.test', array[2, 4, 1, 3]) as c \gset
-- A Pro period whose invoice arrives late (a delayed bank debit), after a downgrade and an upgrade
-- back paid from balance: the period is cut to what the upgrade left (migration 20261202203947).
select pg_temp.cycle('hw-d@example.test', array[3, 4, 1], 'pro-monthly') as d \gset

select is((select available from public.credit_balances where user_id = :'a'), 10 + 1000,
  'in order: welcome + Pro''s 1000 (Basic 200 + the upgrade 800), not 1800');
select is((select available from public.credit_balances where user_id = :'b'), 1010, 'in reverse order: the same');
select is((select available from public.credit_balances where user_id = :'c'), 1010, 'upgrades first: the same');
select is((select available from public.credit_balances where user_id = :'d'), 1010,
  'a Pro period arriving after a downgrade and an upgrade back: 1000 in all (it granted 1800)');
select is((select count(*)::int from public.subscription_payments sp join public.subscriptions s on s.id = sp.subscription_id
            where s.user_id = :'a'), 4, 'all four invoices are recorded');
select is((select string_agg(credits_granted::text, ',' order by provider_payment_id) from public.purchases where user_id = :'a'),
  '200,800', 'two purchases: the period and the first upgrade; the downgrade and the second upgrade grant nothing');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
