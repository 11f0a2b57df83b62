-- Stripe's dispute status `prevented` (a dispute stopped before it became a chargeback; nothing
-- was charged back) is a closed status that takes nothing, ranked with won and warning_closed
-- (migrations/README.md, "The payment rule table"): a dispute opened and then prevented gives the
-- credits back, in any order of its events; lost still outranks it.
begin;
\ir _setup.psql
select plan(8);

select tests.create_user('prevented@example.test') as u \gset
select tests.authenticate_as_service_role();

-- Opened, then prevented: the user gets the starter pack's 100 credits back.
select public.fulfill_purchase('stripe', 'pi_prev_1', 'evt_prev_1', :'u', 'starter', 499, 'usd') is not null as paid \gset
select is(public.dispute_purchase('stripe', 'pi_prev_1', 'evt_prev_1_open', 'dp_prev_1', 'needs_response', 499,
  'charge.dispute.created') -> 'purchase' ->> 'status', 'disputed', 'an open dispute takes the credits back');
select is(public.dispute_purchase('stripe', 'pi_prev_1', 'evt_prev_1_closed', 'dp_prev_1', 'prevented', 499,
  'charge.dispute.closed') -> 'purchase' ->> 'status', 'succeeded', 'prevented closes it: the purchase stands');
select is((select credits_granted from public.purchases where provider_payment_id = 'pi_prev_1'), 100, 'with all its credits');
select is((select status from public.payment_disputes where dispute_id = 'dp_prev_1'), 'prevented', 'the dispute is recorded as prevented');

-- The same events in the other order (the close first, then the payment, then a late created).
select public.dispute_purchase('stripe', 'pi_prev_2', 'evt_prev_2_closed', 'dp_prev_2', 'prevented', 499,
  'charge.dispute.closed') is not null as closed_first \gset
select public.fulfill_purchase('stripe', 'pi_prev_2', 'evt_prev_2', :'u', 'starter', 499, 'usd') is not null as paid2 \gset
select is(public.dispute_purchase('stripe', 'pi_prev_2', 'evt_prev_2_open', 'dp_prev_2', 'needs_response', 499,
  'charge.dispute.created') -> 'purchase' ->> 'credits_granted', '100', 'a late open event does not reopen a prevented dispute');

-- Lost outranks prevented for one dispute (as it outranks won).
select public.fulfill_purchase('stripe', 'pi_prev_3', 'evt_prev_3', :'u', 'starter', 499, 'usd') is not null as paid3 \gset
select public.dispute_purchase('stripe', 'pi_prev_3', 'evt_prev_3_prev', 'dp_prev_3', 'prevented', 499, 'charge.dispute.closed') is not null as p3 \gset
select is(public.dispute_purchase('stripe', 'pi_prev_3', 'evt_prev_3_lost', 'dp_prev_3', 'lost', 499,
  'charge.dispute.closed') -> 'purchase' ->> 'status', 'disputed', 'lost and prevented seen for one dispute: lost counts');

select tests.clear_authentication();
select is((select available || '/' || debt from public.credit_balances where user_id = :'u'), '210/0',
  '10 welcome + 100 + 100 + 0 of the lost one');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
