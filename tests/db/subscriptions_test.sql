-- Issue 12: subscriptions (migrations/README.md, "The subscription rules"): one grant per paid
-- period expiring at the period end, rollover between consecutive periods, upgrades, refunds of a
-- period through the pack RPCs, state events by provider time, the catalog and the grants.
begin;
\ir _setup.psql
select plan(49);

create function tests.pay(p_user uuid, p_sub text, p_payment text, p_event text, p_plan text,
                          p_start timestamptz, p_end timestamptz, p_from text default null, p_provider text default 'stripe')
returns jsonb
language plpgsql
as $$
declare
  v_result jsonb;
begin
  perform tests.authenticate_as_service_role();
  v_result := public.fulfill_subscription_payment(p_provider, p_payment, p_event, p_user, p_sub, p_plan, p_start, p_end,
    2999, 'usd', p_from, 'invoice.paid');
  perform tests.clear_authentication();
  return v_result;
end;
$$;
-- The user's available/debt as get_balance answers it.
create function tests.bal(p_user uuid)
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
create function tests.ledger(p_user uuid, p_since bigint)
returns text
language plpgsql
as $$
begin
  return (select string_agg(type || ':' || delta_available || (case when delta_debt <> 0 then 'd' || delta_debt else '' end), ' ' order by id)
            from public.credit_ledger where user_id = p_user and id > p_since);
end;
$$;
create function tests.last_ledger(p_user uuid)
returns bigint
language plpgsql
as $$
begin
  return coalesce((select max(id) from public.credit_ledger where user_id = p_user), 0);
end;
$$;

-- Catalog ---------------------------------------------------------------------------------------
select tests.authenticate_as_anon();
select ok((select count(*) from public.plans) >= 3, 'anyone reads the active plans (seed)');
select is(tests.attempt($$insert into public.plans (id, name, interval, credits, price_cents) values ('x', 'X', 'month', 1, 1)$$),
  'denied', 'no client writes plans');
select tests.clear_authentication();
select is(tests.error_of($$insert into public.plans (id, name, interval, credits, price_cents) values ('x', 'X', 'week', 1, 1)$$) ->> 'code',
  '23514', 'interval is month or year');

-- Grants ----------------------------------------------------------------------------------------
select tests.authenticate_as_anon();
select is(tests.attempt($$select public.fulfill_subscription_payment('stripe', 'pi_x', 'evt_x', gen_random_uuid(), 'sub_x', 'pro-monthly', now(), now() + interval '1 month', 1, 'usd')$$),
  'denied', 'anon cannot fulfil a subscription payment');
select is(tests.attempt($$select public.record_subscription_state('stripe', 'sub_x', 'evt_x', now(), null, null, 'active')$$),
  'denied', 'anon cannot record a subscription state');
select is(tests.attempt($$select public.get_subscription()$$), 'denied', 'anon cannot read a subscription');
select tests.clear_authentication();

-- A month of renewals with rollover (pro-monthly: 1000 a month, up to 500 rolled over) -----------
select tests.set_now('2030-01-01T00:00:00Z');
create temp table u as select tests.create_user('renewals@example.com') as id;
grant select on u to public;
create temp table mark (n bigint);
insert into mark select tests.last_ledger((select id from u));

select is(tests.pay((select id from u), 'sub_1', 'pi_p1', 'evt_p1', 'pro-monthly', '2030-01-01', '2030-02-01') ->> 'granted', 'true',
  'period 1 paid: granted');
select is(tests.bal((select id from u)), '1010/0', 'period 1: 1000 plan credits beside the welcome 10');
select is((select expires_at from public.credit_grants g join public.purchases p on p.grant_id = g.id where p.provider_payment_id = 'pi_p1'),
  '2030-02-01T00:00:00Z'::timestamptz, 'the period grant expires at the period end');
select is(tests.pay((select id from u), 'sub_1', 'pi_p1', 'evt_p1_retry', 'pro-monthly', '2030-01-01', '2030-02-01') ->> 'granted', 'false',
  'the same invoice again (another event id): no second grant');
select is(tests.pay((select id from u), 'sub_1', 'pi_p1', 'evt_p1', 'pro-monthly', '2030-01-01', '2030-02-01') ->> 'replayed', 'true',
  'the same event again: replayed');
select is(tests.bal((select id from u)), '1010/0', 'still one grant for period 1');

-- Period 2 paid an hour after period 1 ended (Stripe finalises renewal invoices after the period start).
update mark set n = tests.last_ledger((select id from u));
select tests.set_now('2030-02-01T01:00:00Z');
select is(tests.pay((select id from u), 'sub_1', 'pi_p2', 'evt_p2', 'pro-monthly', '2030-02-01', '2030-03-01') ->> 'rolled_over', '500',
  'period 2: 500 of the unspent 1000 rolled over');
select is(tests.ledger((select id from u), (select n from mark)), 'purchase:1000 expire:-10 expire:-1000 grant:500',
  'ledger: period 2 granted, welcome and period 1 expired, rollover granted');
select is(tests.bal((select id from u)), '1500/0', 'period 2: 1000 + 500 rolled over');
select is((select string_agg(amount || '@' || to_char(expires_at at time zone 'UTC', 'MM-DD'), ',' order by created_at) from public.credit_grants
            where user_id = (select id from u) and remaining > 0), '1000@03-01,500@03-01', 'both expire at the end of period 2');

-- Period 3 paid a day early: the rollover moves unexpired credits (no double count).
update mark set n = tests.last_ledger((select id from u));
select tests.set_now('2030-02-28T12:00:00Z');
select is(tests.pay((select id from u), 'sub_1', 'pi_p3', 'evt_p3', 'pro-monthly', '2030-03-01', '2030-04-01') ->> 'rolled_over', '500',
  'period 3 early: 500 rolled over (cap)');
select is(tests.ledger((select id from u), (select n from mark)), 'purchase:1000 adjustment:-500 grant:500',
  'ledger: period 3 granted, 500 moved out of period 2, rollover granted');
select is(tests.bal((select id from u)), '2500/0', 'until period 2 ends: its 1000 left, period 3 and the rollover');
select tests.set_now('2030-03-01T00:00:01Z');
select is(tests.bal((select id from u)), '1500/0', 'after period 2 ends: 1000 + 500');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the renewals');
select tests.authenticate_as((select id from u));
select is(public.get_subscription() #>> '{subscription,credits_this_period}', '1500', 'get_subscription: credits of this period');
select is(public.get_subscription() #>> '{subscription,renews,plan_id}', 'pro-monthly', 'get_subscription: what renews');
select is(public.get_subscription() #>> '{subscription,current_period_end}', '2030-04-01T00:00:00+00:00', 'get_subscription: current period');
select tests.clear_authentication();

-- A refunded renewal with debt: period 3 refunded in full after the user spent nothing but
-- period 2's credits expired; the take-back finds 1500 (own grant, then the rollover).
select tests.authenticate_as_service_role();
select is(public.refund_purchase_amount('stripe', 'pi_p3', 'evt_r3', 2999, 2999, 'charge.refunded') ->> 'taken', '1000',
  'period 3 refunded in full: its 1000 taken back');
select tests.clear_authentication();
select is(tests.bal((select id from u)), '500/0', 'the rollover stays');
select tests.authenticate_as_service_role();
select is(public.refund_purchase_amount('stripe', 'pi_p2', 'evt_r2', 2999, 2999, 'charge.refunded') ->> 'debt', '500',
  'period 2 refunded after it expired: 500 from the rollover, 500 debt');
select tests.clear_authentication();
select is(tests.bal((select id from u)), '0/500', 'debt 500');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the refunds');

-- Reordered: period 2 recorded before period 1; the rollover is made when period 1 arrives.
select tests.set_now('2030-01-01T00:10:00Z');
create temp table v as select tests.create_user('reordered@example.com') as id;
grant select on v to public;
select is(tests.pay((select id from v), 'sub_2', 'pi_q2', 'evt_q2', 'pro-monthly', '2030-02-01', '2030-03-01') ->> 'rolled_over', '0',
  'period 2 first: nothing to roll over yet');
select is(tests.pay((select id from v), 'sub_2', 'pi_q1', 'evt_q1', 'pro-monthly', '2030-01-01', '2030-02-01') ->> 'rolled_over', '500',
  'period 1 then: 500 rolled into period 2');
select is(tests.bal((select id from v)), '2010/0', 'period 1 (500 left in it), period 2, the rollover and the welcome 10');
select tests.set_now('2030-02-01T00:10:00Z');
select is(tests.bal((select id from v)), '1500/0', 'in period 2: 1000 + 500, as in delivery order');

-- Upgrade mid-period: basic (200) to pro (1000) in the middle of the period: 800 more until its end.
select tests.set_now('2030-01-01T00:00:00Z');
create temp table w as select tests.create_user('upgrade@example.com') as id;
grant select on w to public;
select tests.pay((select id from w), 'sub_3', 'pi_b1', 'evt_b1', 'basic-monthly', '2030-01-01', '2030-02-01');
select tests.set_now('2030-01-15T00:00:00Z');
select is(tests.pay((select id from w), 'sub_3', 'in_up1', 'evt_up1', 'price_plan_pro_monthly', '2030-01-01', '2030-02-01', 'price_plan_basic_monthly') #>> '{purchase,credits}',
  '800', 'the upgrade grants the difference (plans named by their Stripe price ids)');
select is(tests.bal((select id from w)), '1010/0', 'basic 200 + 800 + welcome 10');
select is((select count(*)::int from public.credit_grants where user_id = (select id from w) and expires_at = '2030-02-01'), 2,
  'the upgrade expires with the period');
select tests.authenticate_as((select id from w));
select is(public.get_subscription() #>> '{subscription,plan,id}', 'pro-monthly', 'the subscription is on the new plan');
select tests.clear_authentication();

-- State events: cancel at period end, then an older event does not undo it; ended is final.
select tests.authenticate_as_service_role();
select is(public.record_subscription_state('stripe', 'sub_3', 'evt_s1', '2030-01-20', null, 'pro-monthly', 'active',
  '2030-01-01', '2030-02-01', true) ->> 'applied', 'true', 'cancel at period end applied');
select is(public.record_subscription_state('stripe', 'sub_3', 'evt_s0', '2030-01-10', null, 'pro-monthly', 'active',
  '2030-01-01', '2030-02-01', false) ->> 'applied', 'false', 'an older state event is ignored');
select is(public.record_subscription_state('stripe', 'sub_3', 'evt_s2', '2030-02-01', null, null, 'ended') #>> '{subscription,status}',
  'ended', 'deleted: ended');
select is(public.record_subscription_state('stripe', 'sub_3', 'evt_s3', '2030-02-02', null, null, 'active') ->> 'applied', 'false',
  'ended is final');
select tests.clear_authentication();
select tests.authenticate_as((select id from w));
select is(public.get_subscription() #> '{subscription,renews}', 'null'::jsonb, 'an ended subscription renews nothing');
select tests.clear_authentication();

-- begin_subscription_checkout: who may subscribe to what.
select tests.authenticate_as((select id from w));
select is(public.begin_subscription_checkout('pro-monthly') #>> '{plan,stripe_price_id}', 'price_plan_pro_monthly',
  'an ended subscription does not stop a new one; the plan comes with its Stripe price');
select is(tests.error_of($$select public.begin_subscription_checkout('nope')$$) ->> 'hint', 'not_found', 'an unknown plan');
select is(tests.error_of($$select public.begin_subscription_checkout('Bad Id')$$) ->> 'hint', 'invalid_request', 'a malformed plan id');
select tests.authenticate_as((select id from v));
select is(tests.error_of($$select public.begin_subscription_checkout('pro-monthly')$$) ->> 'hint', 'already_subscribed',
  'a user with a subscription cannot start another');
select tests.clear_authentication();
create temp table anon_user as select tests.create_user(null, true) as id;
grant select on anon_user to public;
select tests.authenticate_as((select id from anon_user));
select is(tests.error_of($$select public.begin_subscription_checkout('pro-monthly')$$) ->> 'hint', 'anonymous_user',
  'an anonymous user cannot subscribe');
select tests.clear_authentication();

-- Someone else's subscription is invisible.
select tests.authenticate_as((select id from v));
select is((select count(*)::int from public.subscriptions), 1, 'a user reads only their own subscription');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty at the end');

select * from finish();
rollback;
