-- Credits: welcome grant, draw-down order, holds, capture and release back to the original grants,
-- expiry with a controllable clock (app.now), debt after a refund, and the immutable ledger.
begin;
\ir _setup.psql
select plan(57);

select tests.set_now('2030-01-01 00:00:00+00');

-- 1. Welcome grant: 10 promotional credits for 30 days, once; not for anonymous users until they
--    link a permanent identity.
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user(null, true) as ghost \gset
select results_eq(
  format($$ select source, kind, amount, remaining, expires_at from public.credit_grants where user_id = %L $$, :'alice'),
  $$ values ('welcome'::text, 'promotional'::text, 10, 10, '2030-01-31 00:00:00+00'::timestamptz) $$,
  'a new user gets 10 promotional welcome credits expiring after 30 days');
select is((select count(*)::int from public.credit_grants where user_id = :'ghost'), 0,
  'an anonymous user gets no welcome credits');
update auth.users set is_anonymous = false, email = 'ghost@example.com' where id = :'ghost';
select is((select sum(amount)::int from public.credit_grants where user_id = :'ghost' and source = 'welcome'), 10,
  'linking a permanent identity grants the welcome credits');
update auth.users set is_anonymous = true where id = :'ghost';
update auth.users set is_anonymous = false where id = :'ghost';
select is((select count(*)::int from public.credit_grants where user_id = :'ghost' and source = 'welcome'), 1,
  'the welcome grant is given once, however often the flag flips');
select is((select type from public.credit_ledger where user_id = :'alice'), 'grant', 'the welcome grant has a ledger row');

select tests.authenticate_as(:'alice');
select is(public.get_balance(), '{"available": 10, "held": 0, "expiring_soon": 0, "debt": 0}'::jsonb,
  'get_balance: 10 available, nothing expiring within 7 days');
select tests.set_now('2030-01-25 00:00:00+00');
select is((public.get_balance() ->> 'expiring_soon')::int, 10, 'six days before expiry the credits count as expiring soon');
select tests.set_now('2030-01-31 00:00:01+00');
select is(public.get_balance(), '{"available": 0, "held": 0, "expiring_soon": 0, "debt": 0}'::jsonb,
  'after expiry get_balance no longer counts them, even before the sweep');
select tests.clear_authentication();
select tests.authenticate_as_service_role();
select is(public.expire_credits(), '{"users": 2, "credits": 20, "skipped": 0, "more": false}'::jsonb, 'expire_credits sweeps both users'' welcome credits');
select is(public.expire_credits(), '{"users": 0, "credits": 0, "skipped": 0, "more": false}'::jsonb, 'a second sweep finds nothing');
select tests.clear_authentication();
select results_eq(
  format($$ select type, delta_available, balance_available_after from public.credit_ledger where user_id = %L order by id $$, :'alice'),
  $$ values ('grant'::text, 10, 10), ('expire'::text, -10, 0) $$,
  'the expiry is an expire ledger row taking the balance to zero');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after expiry');

-- 2. Draw-down order: soonest expiry first, promotional before paid at equal expiry, no expiry last.
select tests.set_now('2030-02-01 00:00:00+00');
select app.add_grant(:'alice', 'purchase', 'paid', 5, null, 'purchase', null, 'paid, never expires') as g_paid_forever \gset
select app.add_grant(:'alice', 'purchase', 'paid', 5, '2030-03-01', 'purchase', null, 'paid, March') as g_paid_march \gset
select app.add_grant(:'alice', 'promotion', 'promotional', 5, '2030-03-01', 'grant', null, 'promo, March') as g_promo_march \gset
select app.add_grant(:'alice', 'promotion', 'promotional', 5, '2030-02-10', 'grant', null, 'promo, February') as g_promo_feb \gset
select tests.authenticate_as(:'alice');
select is((public.get_balance() ->> 'available')::int, 20, 'four grants of 5 make 20 available');
-- standard-v1 costs 2 + 1 per minute: 10 minutes cost 12.
select public.generate('draw-1', '{"model_id": "standard-v1", "prompt": "Order test", "target_minutes": 10}') -> 'response' as r1 \gset
select is((:'r1'::jsonb -> 'job' ->> 'credits_reserved')::int, 12, 'the price comes from the catalog (2 + 1 x 10 minutes)');
select is(:'r1'::jsonb -> 'balance', '{"available": 8, "held": 12, "expiring_soon": 0, "debt": 0}'::jsonb,
  'generate answers the new balance: 8 available, 12 held');
select tests.clear_authentication();
select results_eq(
  format($$ select g.description, a.amount from public.credit_hold_allocations a join public.credit_grants g on g.id = a.grant_id
             where a.hold_id = (select hold_id from public.jobs where id = %L) order by a.amount desc, g.description $$,
         :'r1'::jsonb -> 'job' ->> 'id'),
  $$ values ('promo, February'::text, 5), ('promo, March'::text, 5), ('paid, March'::text, 2) $$,
  'the hold drew soonest expiry first and promotional before paid at equal expiry');
select is((select remaining from public.credit_grants where id = :'g_paid_forever'), 5, 'credits that never expire are spent last');

-- 3. Capture part, release the rest to the grants it came from, keeping their expiry.
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-1') is not null as claimed;
select is(public.complete_job((:'r1'::jsonb -> 'job' ->> 'id')::uuid, 7) -> 'job' ->> 'status', 'READY', 'complete_job marks the job READY');
select tests.clear_authentication();
select results_eq(
  format($$ select g.description, a.captured, a.released, g.remaining from public.credit_hold_allocations a
             join public.credit_grants g on g.id = a.grant_id
             where a.hold_id = (select hold_id from public.jobs where id = %L) order by g.expires_at, g.kind desc $$,
         :'r1'::jsonb -> 'job' ->> 'id'),
  $$ values ('promo, February'::text, 5, 0, 0), ('promo, March'::text, 2, 3, 3), ('paid, March'::text, 0, 2, 5) $$,
  'capture consumed the soonest-expiring allocations; the rest went back to the same grants');
select results_eq(
  format($$ select type, delta_available, delta_held, balance_available_after, balance_held_after from public.credit_ledger
             where user_id = %L and type in ('hold', 'capture', 'release') order by id $$, :'alice'),
  $$ values ('hold'::text, -12, 12, 8, 12), ('capture'::text, 0, -7, 8, 5), ('release'::text, 5, -5, 13, 0) $$,
  'hold, capture and release each have their ledger row with the balance after');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after capture and release');

-- 4. A release into a grant that expired while the credits were held expires them at once.
select tests.authenticate_as(:'alice');
select public.generate('draw-2', '{"model_id": "standard-v1", "prompt": "Expiry test", "target_minutes": 1}') -> 'response' -> 'job' ->> 'id' as j2 \gset
select tests.clear_authentication();
select is((select g.description from public.credit_hold_allocations a join public.credit_grants g on g.id = a.grant_id
            where a.hold_id = (select hold_id from public.jobs where id = :'j2')), 'promo, March',
  'the next hold draws from the March promotion');
select tests.set_now('2030-03-02 00:00:00+00');
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-1', 1, 3600) is not null as claimed;
select is(public.fail_job(:'j2', 'render_crashed', 'boom', false) -> 'job' ->> 'status', 'FAILED', 'a non-retryable failure fails the job');
select tests.clear_authentication();
select results_eq(
  format($$ select type, delta_available, delta_held from public.credit_ledger where user_id = %L and hold_id is not distinct from null
             and type = 'expire' and grant_id = (select id from public.credit_grants where description = 'promo, March' and user_id = %L) $$, :'alice', :'alice'),
  $$ values ('expire'::text, -3, 0) $$,
  'credits released into an expired grant are expired right away');
select is((select remaining from public.credit_grants where id = :'g_promo_march'), 0, 'the expired grant keeps nothing');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after a release into an expired grant');

-- 5. Debt: a refund after the credits were spent takes back what is available; the rest is debt,
--    which blocks spending and is repaid first by new credits.
select tests.create_user('bob@example.com') as bob \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_bob_1', 'evt_bob_1', :'bob', 'starter', 499, 'usd') ->> 'granted' as granted \gset
select tests.clear_authentication();
select is(:'granted'::text, 'true', 'a purchase grants its credits');
select tests.authenticate_as(:'bob');
-- premium-v1 costs 5 + 3 per minute: 30 minutes cost 95.
select public.generate('bob-1', '{"model_id": "premium-v1", "prompt": "Long video", "target_minutes": 30}') -> 'response' -> 'job' ->> 'id' as bob_job \gset
select is((public.get_balance() ->> 'available')::int, 15, 'Bob has 15 credits left after reserving 95 of 110');
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-1') is not null as claimed;
select public.complete_job(:'bob_job', 95) is not null as completed;
select is(public.refund_purchase('stripe', 'pi_bob_1', 'evt_bob_refund') - 'purchase',
  '{"taken": 15, "debt": 85, "replayed": false}'::jsonb,
  'the refund takes back the 15 credits left and records 85 as debt');
select is(public.refund_purchase('stripe', 'pi_bob_1', 'evt_bob_refund') ->> 'replayed', 'true', 'the same refund event again changes nothing');
select tests.clear_authentication();
select tests.authenticate_as(:'bob');
select is(public.get_balance(), '{"available": 0, "held": 0, "expiring_soon": 0, "debt": 85}'::jsonb, 'Bob owes 85 credits');
select throws_ok($$ select public.generate('bob-2', '{"model_id": "draft-v1", "prompt": "x"}') $$,
  'PT402', 'Your account owes credits; buy credits to continue.', 'a user in debt cannot spend');
select is(tests.error_of($$ select public.generate('bob-2', '{"model_id": "draft-v1", "prompt": "x"}') $$) - 'message',
  '{"code": "PT402", "hint": "credits_in_debt", "detail": "{\"debt\": 85}"}'::jsonb, 'the debt error carries the hint credits_in_debt and the debt');
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_bob_2', 'evt_bob_2', :'bob', 'starter', 499, 'usd') is not null as bought;
select tests.clear_authentication();
select tests.authenticate_as(:'bob');
select is(public.get_balance(), '{"available": 15, "held": 0, "expiring_soon": 0, "debt": 0}'::jsonb,
  'a new purchase repays the debt first: 100 - 85 = 15 available');
select lives_ok($$ select public.generate('bob-2', '{"model_id": "draft-v1", "prompt": "x"}') $$, 'after repaying, Bob can spend again');
select tests.clear_authentication();
select results_eq(
  format($$ select type, delta_available, delta_debt from public.credit_ledger where user_id = %L and type in ('refund', 'purchase') order by id $$, :'bob'),
  $$ values ('purchase'::text, 100, 0), ('refund'::text, -15, 85), ('purchase'::text, 15, -85) $$,
  'the ledger shows the purchase, the refund with its debt, and the repayment');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after refund, debt and repayment');

-- Credits released while in debt repay the debt too.
select tests.create_user('carol@example.com') as carol \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_carol', 'evt_carol', :'carol', 'starter', 499, 'usd') is not null as bought;
select tests.authenticate_as(:'carol');
select public.generate('carol-1', '{"model_id": "premium-v1", "prompt": "x", "target_minutes": 30}') -> 'response' -> 'job' ->> 'id' as carol_job \gset
select tests.authenticate_as_service_role();
select is(public.clawback_purchase('stripe', 'pi_carol', 'evt_carol_dispute') - 'purchase',
  '{"taken": 15, "debt": 85, "replayed": false}'::jsonb, 'a chargeback takes back what is available, the rest becomes debt');
select is(public.fail_job(:'carol_job', 'cancelled', null, false) -> 'job' ->> 'status', 'FAILED', 'the held job fails');
select tests.authenticate_as(:'carol');
select is(public.get_balance(), '{"available": 10, "held": 0, "expiring_soon": 0, "debt": 0}'::jsonb,
  'the 95 released credits repay the 85 of debt first');
select tests.clear_authentication();
select is((select status from public.purchases where provider_payment_id = 'pi_carol'), 'disputed', 'the purchase is marked disputed');
select is((select count(*)::int from public.credit_ledger where user_id = :'carol' and type = 'clawback'), 2,
  'the chargeback and the repayment are clawback ledger rows');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after a chargeback and a release in debt');

-- 6. The ledger is immutable, even for its owner and for service_role.
select throws_ok(format($$ update public.credit_ledger set delta_available = 1000 where user_id = %L $$, :'alice'),
  '42501', 'The credit ledger is append-only.', 'the table owner cannot update a ledger row (trigger)');
select throws_ok(format($$ delete from public.credit_ledger where user_id = %L $$, :'alice'),
  '42501', 'The credit ledger is append-only.', 'the table owner cannot delete a ledger row (trigger)');
select throws_ok($$ truncate public.credit_ledger cascade $$,
  '42501', 'The credit ledger is append-only.', 'the ledger cannot be truncated');
select tests.authenticate_as_service_role();
select throws_ok($$ update public.credit_ledger set description = 'x' $$, '42501', null, 'service_role cannot update the ledger');
select throws_ok($$ delete from public.credit_ledger $$, '42501', null, 'service_role cannot delete from the ledger');
select tests.clear_authentication();

-- 7. list_ledger: newest first, keyset pagination, limit capped.
select tests.authenticate_as(:'alice');
select is(jsonb_array_length(public.list_ledger(null, 3) -> 'items'), 3, 'list_ledger returns p_limit items');
select ok((public.list_ledger(null, 3) -> 'items' -> 0 ->> 'id')::bigint > (public.list_ledger(null, 3) -> 'items' -> 2 ->> 'id')::bigint,
  'items are newest first');
select is(
  (select count(*)::int from jsonb_array_elements(public.list_ledger(null, 3) -> 'items') a
    join jsonb_array_elements(public.list_ledger((public.list_ledger(null, 3) ->> 'next_before')::bigint, 100) -> 'items') b on a ->> 'id' = b ->> 'id'),
  0, 'the next page starts after the last item of the first');
select is(
  jsonb_array_length(public.list_ledger(null, 3) -> 'items')
    + jsonb_array_length(public.list_ledger((public.list_ledger(null, 3) ->> 'next_before')::bigint, 100) -> 'items'),
  (select count(*)::int from public.credit_ledger where user_id = :'alice'), 'two pages cover the whole ledger');
select is(public.list_ledger(null, 100) -> 'next_before', 'null'::jsonb, 'the last page has next_before null');
select throws_ok($$ select public.list_ledger(null, 0) $$, '22023', 'p_limit must be at least 1.', 'p_limit 0 is invalid_request');
select tests.clear_authentication();
select app.add_grant(:'alice', 'promotion', 'promotional', 1, null, 'grant') from generate_series(1, 110);
select tests.authenticate_as(:'alice');
select is(jsonb_array_length(public.list_ledger(null, 1000) -> 'items'), 100, 'p_limit is capped at 100');
select tests.authenticate_as(:'bob');
select is((select count(*)::int from jsonb_array_elements(public.list_ledger(null, 100) -> 'items') i
            where (i ->> 'id')::bigint in (select id from public.credit_ledger where user_id = :'alice')), 0,
  'a user''s ledger never shows another user''s rows');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty at the end');

select * from finish();
rollback;
