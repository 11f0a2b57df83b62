-- Purchase edge cases behind the Worker's payment endpoints: failed delayed payments
-- (fail_purchase), partial refunds as deltas of the cumulative refunded amount
-- (refund_purchase_amount), disputes won after the claw-back (reinstate_purchase), their
-- out-of-order and repeated deliveries, and who may call them; reconcile after each scenario.
begin;
\ir _setup.psql
select plan(38);

select tests.create_user('carol@example.com') as carol \gset
select tests.create_user('dave@example.com') as dave \gset

-- 1. Who may call the new functions.
select is(array[has_function_privilege('anon', f, 'execute'), has_function_privilege('authenticated', f, 'execute'),
                has_function_privilege('service_role', f, 'execute')], array[false, false, true],
          format('only service_role can execute %s', f))
  from unnest(array['public.fail_purchase(text,text,text,uuid,text)',
                    'public.refund_purchase_amount(text,text,text,integer,integer,text)',
                    'public.reinstate_purchase(text,text,text,text)']::regprocedure[]) f;
select tests.authenticate_as(:'carol');
select throws_ok($$ select public.reinstate_purchase('stripe', 'pi_x', 'evt_x') $$, '42501', null,
  'a user cannot reinstate a purchase');

-- 2. A delayed payment that failed.
select public.begin_purchase('starter', 'c-1') -> 'purchase' ->> 'id' as c1 \gset
select tests.authenticate_as_service_role();
select is(public.fail_purchase('stripe', 'pi_c1', 'evt_c1_failed', :'c1', 'checkout.session.async_payment_failed') -> 'purchase' ->> 'status',
  'failed', 'a failed delayed payment marks the pending purchase failed');
select is(public.fail_purchase('stripe', 'pi_c1', 'evt_c1_failed', :'c1') ->> 'replayed', 'true', 'the same failure event again is a replay');
select is(tests.error_of($$ select public.fail_purchase('stripe', 'pi_zz', 'evt_zz', gen_random_uuid()) $$) ->> 'hint', 'not_found',
  'an unknown purchase is not_found');
select is((select count(*)::int from public.payment_events where event_id = 'evt_zz'), 0, 'and the refused event is not recorded');
select is(public.fulfill_purchase('stripe', 'pi_c1b', 'evt_c1_paid', :'carol', 'starter', 499, 'usd', :'c1') ->> 'granted', 'true',
  'a later successful payment still completes the failed purchase');
select is(public.fail_purchase('stripe', 'pi_c1b', 'evt_c1_failed_late', :'c1') -> 'purchase' ->> 'status', 'succeeded',
  'a failure reported after the payment changes nothing');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the failed payment');

-- 3. Partial refunds: cumulative amounts, applied as deltas, in any order.
select public.fulfill_purchase('stripe', 'pi_c2', 'evt_c2_paid', :'carol', 'creator', 1999, 'usd') -> 'purchase' ->> 'id' as c2 \gset
create temp view carol_balance as
  select available, debt from public.credit_balances where user_id = (select user_id from public.purchases where provider_payment_id = 'pi_c2');
grant select on carol_balance to public;
select is((select available from carol_balance), 10 + 100 + 550, 'Carol has welcome, starter and creator credits');
select is(public.refund_purchase_amount('stripe', 'pi_c2', 'evt_c2_r1', 1000, 1999, 'charge.refunded') - 'purchase',
  '{"taken": 276, "debt": 0, "replayed": false}'::jsonb, 'refunding 1000 of 1999 cents takes back ceil(550 x 1000 / 1999) = 276 credits');
select is(public.refund_purchase_amount('stripe', 'pi_c2', 'evt_c2_r1', 1000, 1999, 'charge.refunded') ->> 'replayed', 'true',
  'the same refund event again is a replay');
select is(public.refund_purchase_amount('stripe', 'pi_c2', 'evt_c2_r0', 500, 1999, 'charge.refunded') -> 'taken', '0'::jsonb,
  'an older, smaller cumulative refund delivered late takes nothing');
select is((select status from public.purchases where id = :'c2'), 'succeeded', 'a partially refunded purchase stays succeeded');
select is(public.refund_purchase_amount('stripe', 'pi_c2', 'evt_c2_r2', 1500, 1999, 'charge.refunded') -> 'taken', '137'::jsonb,
  'a further refund to 1500 cents takes the delta (413 - 276)');
select is(public.refund_purchase_amount('stripe', 'pi_c2', 'evt_c2_r3', 1999, 1999, 'charge.refunded') - 'purchase',
  '{"taken": 137, "debt": 0, "replayed": false}'::jsonb, 'the full refund takes only the rest');
select is((select status || '/' || (select available from carol_balance) from public.purchases where id = :'c2'), 'refunded/110',
  'the purchase is refunded and Carol is back to 110 credits');
select is((select sum(delta_debt - delta_available)::int from public.credit_ledger where purchase_id = :'c2' and type = 'refund'), 550,
  'the refunds took back exactly the 550 credits granted');
select is(tests.error_of($$ select public.refund_purchase_amount('stripe', 'pi_c2', 'evt_bad', 2000, 1999) $$) ->> 'detail',
  'amount_refunded_cents', 'more refunded than paid is invalid_request');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after partial refunds');

-- 4. A partial refund, then a dispute: the claw-back takes only what is left.
select public.fulfill_purchase('stripe', 'pi_d1', 'evt_d1_paid', :'dave', 'starter', 499, 'usd') -> 'purchase' ->> 'id' as d1 \gset
select is(public.refund_purchase_amount('stripe', 'pi_d1', 'evt_d1_r1', 100, 499) -> 'taken', '21'::jsonb, 'a 100 of 499 cents refund takes 21 credits');
select is(public.clawback_purchase('stripe', 'pi_d1', 'evt_d1_dispute', 'charge.dispute.created') -> 'taken', '79'::jsonb,
  'the dispute claws back the remaining 79');
select is(public.clawback_purchase('stripe', 'pi_d1', 'evt_d1_withdrawn', 'charge.dispute.funds_withdrawn') -> 'taken', '0'::jsonb,
  'funds_withdrawn for the same dispute takes nothing more');

-- 5. The dispute is won: the 79 clawed-back credits come back, once.
select is(public.reinstate_purchase('stripe', 'pi_d1', 'evt_d1_reinstated', 'charge.dispute.funds_reinstated') - 'purchase',
  '{"reinstated": 79, "replayed": false}'::jsonb, 'funds_reinstated gives back what the claw-back took');
select is((select status from public.purchases where id = :'d1'), 'succeeded', 'the purchase is succeeded again');
select is(public.reinstate_purchase('stripe', 'pi_d1', 'evt_d1_closed', 'charge.dispute.closed') ->> 'reinstated', '0',
  'dispute.closed (won) after funds_reinstated gives nothing twice');
select is(public.reinstate_purchase('stripe', 'pi_d1', 'evt_d1_reinstated') ->> 'replayed', 'true', 'the same event again is a replay');
select is((select available from public.credit_balances where user_id = :'dave'), 10 + 100 - 21,
  'Dave keeps his purchase less the partial refund');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the won dispute');

-- 6. Dispute won while the credits were already spent: the claw-back made debt, the reinstatement repays it.
select public.fulfill_purchase('stripe', 'pi_d2', 'evt_d2_paid', :'dave', 'starter', 499, 'usd') -> 'purchase' ->> 'id' as d2 \gset
select tests.clear_authentication();
select app.take_back(:'dave', 179, 'adjustment') is not null as spent \gset
select tests.authenticate_as_service_role();
select is(public.clawback_purchase('stripe', 'pi_d2', 'evt_d2_dispute') - 'purchase', '{"taken": 10, "debt": 90, "replayed": false}'::jsonb,
  'a dispute after the credits were spent leaves debt');
select is(public.reinstate_purchase('stripe', 'pi_d2', 'evt_d2_won') ->> 'reinstated', '100', 'the won dispute gives the 100 back');
select is((select available || '/' || debt from public.credit_balances where user_id = :'dave'), '10/0',
  'the debt is repaid first and the rest is available');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the reinstatement repaid debt');

-- 7. Out of order: the reinstatement is delivered before the claw-back.
select public.fulfill_purchase('stripe', 'pi_d3', 'evt_d3_paid', :'dave', 'starter', 499, 'usd') is not null as paid \gset
select is(public.reinstate_purchase('stripe', 'pi_d3', 'evt_d3_won') ->> 'reinstated', '0', 'a reinstatement before its claw-back is recorded');
select is(public.clawback_purchase('stripe', 'pi_d3', 'evt_d3_dispute') -> 'taken', '0'::jsonb,
  'the claw-back delivered after it takes nothing');
select is((select status from public.purchases where provider_payment_id = 'pi_d3'), 'succeeded', 'and the purchase stays succeeded');

select * from finish();
rollback;
