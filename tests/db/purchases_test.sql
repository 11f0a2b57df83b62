-- Catalog and purchases: list_models/list_packages for visitors, begin_purchase (idempotent per
-- user and key), attach_checkout_session, fulfill_purchase exactly once per payment id and per
-- event id, out-of-order refund and dispute, validation errors; reconcile after each scenario.
begin;
\ir _setup.psql
select plan(47);

select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset
select tests.create_user(null, true) as ghost \gset

-- 1. Catalog for visitors.
select tests.authenticate_as_anon();
select is((select array_agg(p ->> 'id' order by p ->> 'id') from jsonb_array_elements(public.list_packages() -> 'items') p),
  array['creator', 'starter', 'studio'], 'list_packages shows the active packages only');
select is((select p from jsonb_array_elements(public.list_packages() -> 'items') p where p ->> 'id' = 'starter'),
  '{"id": "starter", "name": "Starter", "credits": 100, "bonus_credits": 0, "price_cents": 499, "currency": "usd", "stripe_price_id": "price_starter", "app_store_product_id": "com.example.credits.starter"}'::jsonb,
  'a package carries its credits, price, Stripe price id and App Store product id');
select is((select array_agg(m ->> 'id' order by m ->> 'id') from jsonb_array_elements(public.list_models() -> 'items') m),
  array['draft-v1', 'premium-v1', 'standard-v1'], 'list_models shows the available models only');
select throws_ok($$ select public.begin_purchase('starter', 'k') $$, '42501', null, 'anon cannot begin a purchase');

-- 2. begin_purchase.
select tests.authenticate_as(:'alice');
select public.begin_purchase('starter', 'buy-1') as b1 \gset
select is(:'b1'::jsonb -> 'purchase' ->> 'status', 'pending', 'begin_purchase creates a pending purchase');
select is(:'b1'::jsonb -> 'package' ->> 'stripe_price_id', 'price_starter', 'and answers the package with its Stripe price id');
select is((:'b1'::jsonb -> 'purchase' ->> 'credits')::int, 100, 'the purchase records the credits it will grant');
select is(public.begin_purchase('starter', 'buy-1'), jsonb_set(:'b1'::jsonb, '{replayed}', 'true'), 'the same key replays the same purchase');
select is(tests.error_of($$ select public.begin_purchase('studio', 'buy-1') $$) - 'message',
  '{"code": "PT422", "hint": "idempotency_key_reused", "detail": "idempotency_key"}'::jsonb, 'the same key for another package is PT422');
select is(tests.error_of($$ select public.begin_purchase('launch-2025', 'buy-2') $$) - 'message',
  '{"code": "PT404", "hint": "not_found", "detail": "package_id"}'::jsonb, 'an inactive package is PT404 not_found');
select is(tests.error_of($$ select public.begin_purchase('nope', 'buy-2') $$) ->> 'hint', 'not_found', 'an unknown package is not_found');
select is(tests.error_of($$ select public.begin_purchase('starter', '') $$) ->> 'detail', 'idempotency_key', 'an empty key is invalid_request');
select is((select count(*)::int from public.purchases), 1, 'refused calls created no purchase');
select tests.authenticate_as(:'ghost');
select is(tests.error_of($$ select public.begin_purchase('starter', 'ghost-1') $$) - 'message',
  '{"code": "PT403", "hint": "anonymous_user", "detail": null}'::jsonb, 'an anonymous user cannot buy credits');
select tests.authenticate_as(:'bob');
select is(public.list_purchases() -> 'items', '[]'::jsonb, 'another user sees none of Alice''s purchases');
select tests.authenticate_as(:'alice');
select is(jsonb_array_length(public.list_purchases() -> 'items'), 1, 'Alice sees her purchase');

-- 3. attach_checkout_session.
select tests.authenticate_as_service_role();
select is(public.attach_checkout_session((:'b1'::jsonb -> 'purchase' ->> 'id')::uuid, 'cs_test_1') -> 'purchase' ->> 'checkout_session_id',
  'cs_test_1', 'the checkout session is attached');
select lives_ok(format($$ select public.attach_checkout_session(%L, 'cs_test_1') $$, :'b1'::jsonb -> 'purchase' ->> 'id'),
  'attaching the same session again is a no-op');
select is(tests.error_of(format($$ select public.attach_checkout_session(%L, 'cs_other') $$, :'b1'::jsonb -> 'purchase' ->> 'id')) ->> 'hint',
  'checkout_session_conflict', 'another session for the same purchase is PT409');
select is(tests.error_of($$ select public.attach_checkout_session(gen_random_uuid(), 'cs_x') $$) ->> 'code', 'PT404', 'an unknown purchase is PT404');

-- 4. fulfill_purchase: once per payment and per event.
select public.fulfill_purchase('stripe', 'pi_a1', 'evt_a1', :'alice', 'starter', 499, 'usd', (:'b1'::jsonb -> 'purchase' ->> 'id')::uuid,
  'checkout.session.completed') as f1 \gset
select is(:'f1'::jsonb - 'purchase', '{"granted": true, "replayed": false}'::jsonb, 'the first fulfilment grants');
select is(:'f1'::jsonb -> 'purchase' ->> 'status', 'succeeded', 'the purchase succeeded');
select is(:'f1'::jsonb -> 'purchase' ->> 'id', :'b1'::jsonb -> 'purchase' ->> 'id', 'the pending purchase was completed, not a new one made');
select is(public.fulfill_purchase('stripe', 'pi_a1', 'evt_a1', :'alice', 'starter', 499, 'usd') - 'purchase',
  '{"granted": false, "replayed": true}'::jsonb, 'the same event again grants nothing');
select is(public.fulfill_purchase('stripe', 'pi_a1', 'evt_a1_retry', :'alice', 'starter', 499, 'usd') - 'purchase',
  '{"granted": false, "replayed": false}'::jsonb, 'another event for the same payment grants nothing (and, first seen, is no replay)');
select is((select count(*)::int from public.credit_grants where source = 'purchase' and user_id = :'alice'), 1, 'one grant for the payment');
select tests.authenticate_as(:'alice');
select is((public.get_balance() ->> 'available')::int, 110, 'Alice has 10 welcome + 100 purchased credits');
select tests.authenticate_as_service_role();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after fulfilment');

-- App Store: no pending purchase; the transaction creates it.
select is(public.fulfill_purchase('app_store', '2000000123', 'apple-n-1', :'bob', 'creator', 1999, 'usd') -> 'purchase' ->> 'credits_granted',
  '550', 'an App Store transaction creates and fulfils its purchase (500 + 50 bonus)');
select is(tests.error_of(format($$ select public.fulfill_purchase('app_store', '2000000123', 'apple-n-2', %L, 'creator', 1999, 'usd') $$, :'alice')) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "user_id"}'::jsonb, 'a transaction of Bob''s submitted for Alice is refused');

-- 5. Out of order: refund before payment grants nothing; dispute after payment claws back.
select is(public.refund_purchase('stripe', 'pi_b1', 'evt_b1_refund') - 'purchase',
  '{"taken": 0, "debt": 0, "replayed": false}'::jsonb, 'a refund for an unknown payment is recorded');
select is(public.fulfill_purchase('stripe', 'pi_b1', 'evt_b1_paid', :'bob', 'starter', 499, 'usd') - 'purchase',
  '{"granted": false, "replayed": false}'::jsonb, 'the payment arriving after its full refund keeps nothing (and, first seen, is no replay)');
select is((select status || '/' || credits_granted from public.purchases where provider_payment_id = 'pi_b1'), 'refunded/0',
  'the purchase is recorded as refunded with nothing granted');
select is(public.fulfill_purchase('stripe', 'pi_b2', 'evt_b2', :'bob', 'starter', 499, 'usd') ->> 'granted', 'true', 'a normal payment grants');
select is(public.clawback_purchase('stripe', 'pi_b2', 'evt_b2_dispute') - 'purchase',
  '{"taken": 100, "debt": 0, "replayed": false}'::jsonb, 'a dispute claws the unspent credits back');
select is(public.refund_purchase('stripe', 'pi_b2', 'evt_b2_refund') - 'purchase',
  '{"taken": 0, "debt": 0, "replayed": false}'::jsonb, 'a later refund of a disputed purchase takes nothing twice');
select is(public.fulfill_purchase('stripe', 'pi_b2', 'evt_b2_again', :'bob', 'starter', 499, 'usd') ->> 'granted', 'false',
  'a late payment event for a disputed purchase grants nothing');
select is((select array_agg(outcome order by id) from public.payment_events where provider_payment_id = 'pi_b2'),
  array['granted', 'taken_back', 'already_reversed', 'already_reversed'], 'every event is recorded with its outcome');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the out-of-order events');

-- 6. Validation.
create temp table bad_fulfilments (call text, code text, detail text, why text);
grant select on bad_fulfilments to public;
insert into bad_fulfilments values
  (format($$ 'paypal', 'pi_x', 'evt_x', %L, 'starter', 499, 'usd' $$, :'alice'), '22023', 'provider', 'an unknown provider'),
  (format($$ 'stripe', '', 'evt_x', %L, 'starter', 499, 'usd' $$, :'alice'), '22023', 'provider_payment_id', 'an empty payment id'),
  (format($$ 'stripe', 'pi_x', repeat('e', 256), %L, 'starter', 499, 'usd' $$, :'alice'), '22023', 'event_id', 'an overlong event id'),
  ($$ 'stripe', 'pi_x', 'evt_x', gen_random_uuid(), 'starter', 499, 'usd' $$, 'PT404', 'user_id', 'an unknown user'),
  (format($$ 'stripe', 'pi_x', 'evt_x', %L, 'nope', 499, 'usd' $$, :'alice'), 'PT404', 'package_id', 'an unknown package'),
  (format($$ 'stripe', 'pi_x', 'evt_x', %L, 'starter', -1, 'usd' $$, :'alice'), '22023', 'amount_cents', 'a negative amount'),
  (format($$ 'stripe', 'pi_x', 'evt_x', %L, 'starter', 499, 'USD!' $$, :'alice'), '22023', 'currency', 'a malformed currency');
select is((tests.error_of(format('select public.fulfill_purchase(%s)', b.call)) - 'message' - 'hint'),
          jsonb_build_object('code', b.code, 'detail', b.detail), format('fulfill_purchase refuses %s', b.why))
  from bad_fulfilments b order by b.why;
select is((select count(*)::int from public.payment_events where provider_payment_id = 'pi_x'), 0, 'a refused event is not recorded, so its retry can succeed');

select * from finish();
rollback;
