-- Issue 9: what the user keeps for every provider history of a payment (migrations/README.md,
-- "The payment rule table" and "Money mechanics"). Each finding of the issue is one named group
-- below ("issue 9.N: ..."); every scenario ends with reconcile empty.
begin;
\ir _setup.psql
select plan(46);

-- Helpers (rolled back with the test).
-- A user's money in one line: available/debt, and where the available credits are (promotional/paid).
create function tests.money(p_user uuid)
returns text
language plpgsql
as $$
begin
  return (select b.available || '/' || b.debt || ' promo=' ||
                 coalesce((select sum(remaining) from public.credit_grants g where g.user_id = p_user and g.kind = 'promotional'), 0) ||
                 ' paid=' ||
                 coalesce((select sum(remaining) from public.credit_grants g where g.user_id = p_user and g.kind = 'paid'), 0)
            from public.credit_balances b where b.user_id = p_user);
end;
$$;
-- The end state of one payment: status and credits kept, and the user's available/debt.
create function tests.outcome(p_provider text, p_payment text)
returns text
language plpgsql
as $$
begin
  return (select p.status || ' kept=' || p.credits_granted || ' ' || b.available || '/' || b.debt
            from public.purchases p join public.credit_balances b on b.user_id = p.user_id
           where p.provider = p_provider and p.provider_payment_id = p_payment);
end;
$$;
-- Runs one history: a new user, then each statement of p_events in order, as service_role, with
-- %1$s = the payment id, %2$s = the user id and %3$s = a unique prefix for event ids. Returns
-- tests.outcome of the payment.
create function tests.run_history(p_label text, p_events text[], p_provider text default 'stripe')
returns text
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_label || '@example.com');
  v_payment text := case p_provider when 'stripe' then 'pi_' else 'tx_' end || replace(gen_random_uuid()::text, '-', '');
  v_event text;
begin
  perform tests.authenticate_as_service_role();
  foreach v_event in array p_events loop
    execute format('select ' || v_event, v_payment, v_user, v_payment || '_');
  end loop;
  perform tests.clear_authentication();
  return tests.outcome(p_provider, v_payment);
end;
$$;
-- Every order of p_events (all permutations), each on its own user and payment, optionally with
-- every event delivered twice (the second delivery right after the first, or at the end).
create function tests.every_order(p_events text[], p_twice boolean default false, p_provider text default 'stripe')
returns table (history int[], outcome text)
language plpgsql
as $$
declare
  v_perm int[];
  v_list text[];
  i int;
  n int := 0;
begin
  for v_perm in
    with recursive perms(p) as (
      select array[]::int[]
      union all
      select p || g from perms, generate_series(1, array_length(p_events, 1)) g
       where not g = any (p) and coalesce(array_length(p, 1), 0) < array_length(p_events, 1))
    select p from perms where coalesce(array_length(p, 1), 0) = array_length(p_events, 1)
  loop
    v_list := '{}';
    foreach i in array v_perm loop
      v_list := v_list || p_events[i];
    end loop;
    if p_twice then
      v_list := v_list || v_list;  -- every event delivered again, later (same event ids: replays)
    end if;
    n := n + 1;
    history := v_perm;
    outcome := tests.run_history('perm' || n || '-' || substr(gen_random_uuid()::text, 1, 8), v_list, p_provider);
    return next;
  end loop;
end;
$$;
grant execute on all functions in schema tests to public;

select tests.create_user('u1@example.com') as u1 \gset
select tests.create_user('u1b@example.com') as u1b \gset
select tests.create_user('u1c@example.com') as u1c \gset
select tests.create_user('u2@example.com') as u2 \gset
select tests.create_user('u3@example.com') as u3 \gset
select tests.create_user('u3b@example.com') as u3b \gset
select tests.create_user('u5@example.com') as u5 \gset
select tests.create_user('u6@example.com') as u6 \gset
select tests.create_user('u6b@example.com') as u6b \gset

-- 9.1 Inquiry, then a full refund, then the inquiry closed: the customer keeps the money, not the credits.
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_91', 'evt_91_paid', :'u1', 'starter', 499, 'usd') is not null as paid \gset
select public.clawback_purchase('stripe', 'pi_91', 'evt_91_inquiry', 'charge.dispute.created') is not null as inq \gset
select is(public.refund_purchase_amount('stripe', 'pi_91', 'evt_91_refund', 499, 499, 'charge.refunded') - 'purchase',
  '{"taken": 0, "debt": 0, "replayed": false}'::jsonb, 'issue 9.1: the full refund during the inquiry takes nothing more');
select public.reinstate_purchase('stripe', 'pi_91', 'evt_91_closed', 'charge.dispute.closed') is not null as closed \gset
select is(tests.outcome('stripe', 'pi_91'), 'refunded kept=0 10/0',
  'issue 9.1: inquiry, full refund, inquiry closed (today''s RPCs): the refunded payment keeps no credits');
select is(tests.violations(), '[]'::jsonb, 'issue 9.1: reconcile is empty');

-- The same with dispute ids (dispute_purchase): an inquiry closed with warning_closed.
select public.fulfill_purchase('stripe', 'pi_91b', 'evt_91b_paid', :'u1b', 'starter', 499, 'usd') is not null as paid \gset
select is(public.dispute_purchase('stripe', 'pi_91b', 'evt_91b_inq', 'du_91b', 'warning_needs_response', 499, 'charge.dispute.created') - 'purchase',
  '{"taken": 100, "debt": 0, "given_back": 0, "replayed": false}'::jsonb, 'issue 9.1: an inquiry takes the credits back');
select public.refund_purchase_amount('stripe', 'pi_91b', 'evt_91b_refund', 499, 499, 'charge.refunded') is not null as refunded \gset
select is(public.dispute_purchase('stripe', 'pi_91b', 'evt_91b_closed', 'du_91b', 'warning_closed', 499, 'charge.dispute.closed') ->> 'given_back',
  '0', 'issue 9.1: closing the inquiry gives nothing back after the full refund');
select is(tests.outcome('stripe', 'pi_91b'), 'refunded kept=0 10/0', 'issue 9.1: inquiry, full refund, warning_closed: nothing kept');

-- A won chargeback whose full refund arrived while it was open; and a partial refund during a won one.
select public.fulfill_purchase('stripe', 'pi_91c', 'evt_91c_paid', :'u1c', 'starter', 499, 'usd') is not null as paid \gset
select public.dispute_purchase('stripe', 'pi_91c', 'evt_91c_open', 'dp_91c', 'needs_response', 499, 'charge.dispute.created') is not null as opened \gset
select public.refund_purchase_amount('stripe', 'pi_91c', 'evt_91c_refund', 499, 499, 'charge.refunded') is not null as refunded \gset
select public.dispute_purchase('stripe', 'pi_91c', 'evt_91c_won', 'dp_91c', 'won', 499, 'charge.dispute.closed') is not null as won \gset
select is(tests.outcome('stripe', 'pi_91c'), 'refunded kept=0 10/0', 'issue 9.1: a chargeback won after a full refund during it gives nothing back');
select public.fulfill_purchase('stripe', 'pi_91d', 'evt_91d_paid', :'u1c', 'starter', 499, 'usd') is not null as paid \gset
select public.dispute_purchase('stripe', 'pi_91d', 'evt_91d_open', 'dp_91d', 'needs_response', 499, 'charge.dispute.created') is not null as opened \gset
select public.refund_purchase_amount('stripe', 'pi_91d', 'evt_91d_refund', 100, 499, 'charge.refunded') is not null as refunded \gset
select is(tests.outcome('stripe', 'pi_91d'), 'disputed kept=0 10/0', 'issue 9.1: a partial refund during an open dispute: still nothing kept');
select is(public.dispute_purchase('stripe', 'pi_91d', 'evt_91d_won', 'dp_91d', 'under_review', 499, 'charge.dispute.funds_reinstated') ->> 'given_back',
  '79', 'issue 9.1: funds_reinstated counts as won and gives back only what the refund does not owe (100 - ceil(100 x 100 / 499))');
select is(tests.outcome('stripe', 'pi_91d'), 'succeeded kept=79 89/0', 'issue 9.1: won dispute after a partial refund: the refund''s share stays taken');
select is(tests.violations(), '[]'::jsonb, 'issue 9.1: reconcile is empty after the dispute histories');

-- 9.2 Dispute state belongs to the dispute id: a closed inquiry does not block a later chargeback.
select public.fulfill_purchase('stripe', 'pi_92', 'evt_92_paid', :'u2', 'starter', 499, 'usd') is not null as paid \gset
select public.dispute_purchase('stripe', 'pi_92', 'evt_92_inq', 'du_92', 'warning_needs_response', 499, 'charge.dispute.created') is not null as inq \gset
select public.dispute_purchase('stripe', 'pi_92', 'evt_92_inq_closed', 'du_92', 'warning_closed', 499, 'charge.dispute.closed') is not null as closed \gset
select is(tests.outcome('stripe', 'pi_92'), 'succeeded kept=100 110/0', 'issue 9.2: a closed inquiry gives every credit back');
select is(public.dispute_purchase('stripe', 'pi_92', 'evt_92_cb', 'dp_92', 'needs_response', 499, 'charge.dispute.created') ->> 'taken',
  '100', 'issue 9.2: a real chargeback after a closed inquiry takes the credits back');
select is(public.dispute_purchase('stripe', 'pi_92', 'evt_92_cb_lost', 'dp_92', 'lost', 499, 'charge.dispute.closed') - 'purchase',
  '{"taken": 0, "debt": 0, "given_back": 0, "replayed": false}'::jsonb, 'issue 9.2: losing it changes nothing more');
select is(public.dispute_purchase('stripe', 'pi_92', 'evt_92_cb_won_late', 'dp_92', 'won', 499, 'charge.dispute.closed') ->> 'given_back',
  '0', 'issue 9.2: a won status seen after lost for the same dispute: lost counts');
select is(tests.outcome('stripe', 'pi_92'), 'disputed kept=0 10/0', 'issue 9.2: the lost chargeback keeps the payment disputed');
select is(tests.violations(), '[]'::jsonb, 'issue 9.2: reconcile is empty');

-- 9.3 Facts recorded before the payment are applied when it arrives, proportionally.
select is(public.refund_purchase_amount('stripe', 'pi_93', 'evt_93_refund', 1, 499, 'charge.refunded') ->> 'replayed', 'false',
  'issue 9.3: a 1 cent refund before the payment is recorded');
select is(public.fulfill_purchase('stripe', 'pi_93', 'evt_93_paid', :'u3', 'starter', 499, 'usd') - 'purchase',
  '{"granted": true, "replayed": false}'::jsonb, 'issue 9.3: the payment after a partial refund is granted, and a first-time event is not a replay');
select is(tests.outcome('stripe', 'pi_93'), 'succeeded kept=99 109/0',
  'issue 9.3: a 1 cent refund recorded before the payment takes ceil(100 x 1 / 499) = 1 credit, not the purchase');
select public.clawback_purchase('stripe', 'pi_93b', 'evt_93b_dispute', 'charge.dispute.created') is not null as disputed \gset
select public.refund_purchase('stripe', 'pi_93b', 'evt_93b_refund', 'charge.refunded') is not null as refunded \gset
select is(public.fulfill_purchase('stripe', 'pi_93b', 'evt_93b_paid', :'u3b', 'starter', 499, 'usd') ->> 'replayed', 'false',
  'issue 9.3: a payment after a dispute and a refund is not a replay');
select public.reinstate_purchase('stripe', 'pi_93b', 'evt_93b_won', 'charge.dispute.closed') is not null as won \gset
select is(tests.outcome('stripe', 'pi_93b'), 'refunded kept=0 10/0',
  'issue 9.3: dispute and full refund before the payment, then the dispute won: the refund still takes everything');
select is(tests.violations(), '[]'::jsonb, 'issue 9.3: reconcile is empty');

-- 9.4 Order independence: every order (and every duplication) of a payment's events ends the same.
select tests.clear_authentication();
create temp table orders_a as
  select * from tests.every_order(array[
    $$ public.fulfill_purchase('stripe', %1$L, %3$L || 'paid', %2$L, 'starter', 499, 'usd') $$,
    $$ public.clawback_purchase('stripe', %1$L, %3$L || 'dispute', 'charge.dispute.created') $$,
    $$ public.refund_purchase_amount('stripe', %1$L, %3$L || 'refund', 499, 499, 'charge.refunded') $$,
    $$ public.reinstate_purchase('stripe', %1$L, %3$L || 'won', 'charge.dispute.closed') $$]);
select is((select array_agg(distinct outcome) from orders_a), array['refunded kept=0 10/0'],
  'issue 9.4: payment, dispute, full refund, dispute won: all 24 orders keep 0 credits');
create temp table orders_b as
  select * from tests.every_order(array[
    $$ public.fulfill_purchase('stripe', %1$L, %3$L || 'paid', %2$L, 'starter', 499, 'usd') $$,
    $$ public.dispute_purchase('stripe', %1$L, %3$L || 'open', 'dp_' || %1$L, 'needs_response', 499, 'charge.dispute.created') $$,
    $$ public.refund_purchase_amount('stripe', %1$L, %3$L || 'refund', 100, 499, 'charge.refunded') $$,
    $$ public.dispute_purchase('stripe', %1$L, %3$L || 'won', 'dp_' || %1$L, 'won', 499, 'charge.dispute.closed') $$], true);
select is((select array_agg(distinct outcome) from orders_b), array['succeeded kept=79 89/0'],
  'issue 9.4: payment, dispute, partial refund, dispute won: all 24 orders, each event delivered twice, keep 79');
create temp table orders_c as
  select * from tests.every_order(array[
    $$ public.fulfill_purchase('stripe', %1$L, %3$L || 'paid', %2$L, 'starter', 499, 'usd') $$,
    $$ public.refund_purchase_amount('stripe', %1$L, %3$L || 'r200', 200, 499, 'charge.refunded') $$,
    $$ public.refund_purchase_amount('stripe', %1$L, %3$L || 'r100', 100, 499, 'charge.refunded') $$,
    $$ public.dispute_purchase('stripe', %1$L, %3$L || 'lost', 'dp_' || %1$L, 'lost', 100, 'charge.dispute.closed') $$]);
select is((select array_agg(distinct outcome) from orders_c), array['disputed kept=39 49/0'],
  'issue 9.4: refunds of 200 and 100 cents (cumulative) and a lost 100 cent dispute: all 24 orders keep 100 - ceil(100 x 300 / 499)');
create temp table orders_d as
  select * from tests.every_order(array[
    $$ public.fulfill_purchase('stripe', %1$L, %3$L || 'paid', %2$L, 'starter', 499, 'usd') $$,
    $$ public.dispute_purchase('stripe', %1$L, %3$L || 'inq', 'du_' || %1$L, 'warning_needs_response', 499, 'charge.dispute.created') $$,
    $$ public.dispute_purchase('stripe', %1$L, %3$L || 'inq_closed', 'du_' || %1$L, 'warning_closed', 499, 'charge.dispute.closed') $$,
    $$ public.dispute_purchase('stripe', %1$L, %3$L || 'cb', 'dp_' || %1$L, 'needs_response', 100, 'charge.dispute.created') $$,
    $$ public.refund_purchase_amount('stripe', %1$L, %3$L || 'r200', 200, 499, 'charge.refunded') $$]);
select is((select array_agg(distinct outcome) from orders_d), array['disputed kept=39 49/0'],
  'issue 9.4: an inquiry opened and closed, a 100 cent chargeback open and a 200 cent refund: all 120 orders keep 100 - ceil(100 x 300 / 499)');
select is(tests.violations(), '[]'::jsonb, 'issue 9.4: reconcile is empty after all 192 histories');

-- 9.5 App Store REFUND_REVERSED gives the credits back; REFUND, REFUND_REVERSED and REVOKE in any order.
select tests.authenticate_as_service_role();
select public.fulfill_purchase('app_store', '95000001', 'transaction:95000001', :'u5', 'starter', 499, 'usd') is not null as paid \gset
select public.refund_purchase('app_store', '95000001', 'n-95-refund', 'REFUND') is not null as refunded \gset
select is(tests.outcome('app_store', '95000001'), 'refunded kept=0 10/0', 'issue 9.5: an App Store REFUND takes the credits back');
select is(public.reverse_refund_purchase('app_store', '95000001', 'n-95-reversed', 'REFUND_REVERSED') - 'purchase',
  '{"taken": 0, "debt": 0, "given_back": 100, "replayed": false}'::jsonb, 'issue 9.5: REFUND_REVERSED gives them back');
select is(tests.outcome('app_store', '95000001'), 'succeeded kept=100 110/0', 'issue 9.5: the purchase is succeeded again');
select is(public.reverse_refund_purchase('app_store', '95000001', 'n-95-reversed', 'REFUND_REVERSED') ->> 'replayed', 'true',
  'issue 9.5: the same notification again is a replay');
select public.reverse_refund_purchase('app_store', '95000002', 'n-95b-reversed', 'REFUND_REVERSED') is not null as early \gset
select public.refund_purchase('app_store', '95000002', 'n-95b-refund', 'REFUND') is not null as refunded \gset
select public.fulfill_purchase('app_store', '95000002', 'transaction:95000002', :'u5', 'starter', 499, 'usd') is not null as paid \gset
select is(tests.outcome('app_store', '95000002'), 'succeeded kept=100 210/0', 'issue 9.5: REFUND_REVERSED before REFUND, both before the payment: kept');
select public.clawback_purchase('app_store', '95000002', 'n-95b-revoke', 'REVOKE') is not null as revoked \gset
select is(tests.outcome('app_store', '95000002'), 'disputed kept=0 110/0', 'issue 9.5: REVOKE takes everything');
select tests.clear_authentication();
select is((select array_agg(distinct outcome) from tests.every_order(array[
    $$ public.fulfill_purchase('app_store', %1$L, 'transaction:' || %1$L, %2$L, 'starter', 499, 'usd') $$,
    $$ public.refund_purchase('app_store', %1$L, %3$L || 'refund', 'REFUND') $$,
    $$ public.reverse_refund_purchase('app_store', %1$L, %3$L || 'reversed', 'REFUND_REVERSED') $$], true, 'app_store')),
  array['succeeded kept=100 110/0'], 'issue 9.5: REFUND and REFUND_REVERSED in every order, each delivered twice: kept');
select is((select array_agg(distinct outcome) from tests.every_order(array[
    $$ public.fulfill_purchase('app_store', %1$L, 'transaction:' || %1$L, %2$L, 'starter', 499, 'usd') $$,
    $$ public.refund_purchase('app_store', %1$L, %3$L || 'refund1', 'REFUND') $$,
    $$ public.refund_purchase('app_store', %1$L, %3$L || 'refund2', 'REFUND') $$,
    $$ public.reverse_refund_purchase('app_store', %1$L, %3$L || 'reversed', 'REFUND_REVERSED') $$], false, 'app_store')),
  array['refunded kept=0 10/0'], 'issue 9.5: two REFUNDs and one REFUND_REVERSED in every order: refunded');
select is((select array_agg(distinct outcome) from tests.every_order(array[
    $$ public.fulfill_purchase('app_store', %1$L, 'transaction:' || %1$L, %2$L, 'starter', 499, 'usd') $$,
    $$ public.refund_purchase('app_store', %1$L, %3$L || 'refund', 'REFUND') $$,
    $$ public.reverse_refund_purchase('app_store', %1$L, %3$L || 'reversed', 'REFUND_REVERSED') $$,
    $$ public.clawback_purchase('app_store', %1$L, %3$L || 'revoke', 'REVOKE') $$], false, 'app_store')),
  array['disputed kept=0 10/0'], 'issue 9.5: REFUND, REFUND_REVERSED and REVOKE in every order: revoked');
select tests.authenticate_as_service_role();
select is(tests.violations(), '[]'::jsonb, 'issue 9.5: reconcile is empty');

-- 9.6 Credits keep their category and expiry: debt repayment and give-backs never turn
-- promotional (expiring) credits into paid, never-expiring ones.
-- a) Debt repaid from a released hold uses the repayment order (most durable first).
select public.fulfill_purchase('stripe', 'pi_96', 'evt_96_paid', :'u6', 'starter', 499, 'usd') is not null as paid \gset
select tests.clear_authentication();
select app.lock_balance(:'u6') is not null as locked \gset
select app.create_hold(:'u6', 30, now() + interval '6 hours') as hold96 \gset
select tests.authenticate_as_service_role();
select is(public.clawback_purchase('stripe', 'pi_96', 'evt_96_dispute', 'charge.dispute.created') - 'purchase',
  '{"taken": 80, "debt": 20, "replayed": false}'::jsonb, 'issue 9.6: the dispute takes 80 and leaves 20 of debt (30 are held)');
select tests.clear_authentication();
select app.settle_hold(:'hold96', 0, 'released') is not null as released \gset
select is(tests.money(:'u6'), '10/0 promo=10 paid=0',
  'issue 9.6: the released hold repays the debt from the paid credits and leaves the promotional ones');
-- b) A won dispute returns each credit to the grant it was taken from.
select tests.authenticate_as_service_role();
select public.reinstate_purchase('stripe', 'pi_96', 'evt_96_won', 'charge.dispute.closed') is not null as won \gset
select is(tests.money(:'u6'), '110/0 promo=10 paid=100', 'issue 9.6: the won dispute gives the 100 back to the purchase');
select tests.clear_authentication();
select app.add_grant(:'u6b', 'promotion', 'promotional', 50, now() + interval '60 days', 'grant', null, 'Promotion') is not null as promo \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_96b', 'evt_96b_paid', :'u6b', 'starter', 499, 'usd') -> 'purchase' ->> 'id' as p96b \gset
select tests.clear_authentication();
select app.take_back(:'u6b', 100, 'adjustment', (select grant_id from public.purchases where id = :'p96b')) is not null as spent \gset
select tests.authenticate_as_service_role();
select is(public.clawback_purchase('stripe', 'pi_96b', 'evt_96b_dispute', 'charge.dispute.created') - 'purchase',
  '{"taken": 60, "debt": 40, "replayed": false}'::jsonb, 'issue 9.6: with its own credits spent, the dispute takes the promotional ones and leaves debt');
select public.reinstate_purchase('stripe', 'pi_96b', 'evt_96b_won', 'charge.dispute.closed') is not null as won \gset
select is(tests.money(:'u6b'), '60/0 promo=60 paid=0',
  'issue 9.6: the won dispute cancels the debt and returns the promotional credits as promotional, not as paid ones');
select is((select count(*)::int from public.credit_grants where user_id = :'u6b' and source = 'adjustment'), 0,
  'issue 9.6: no never-expiring adjustment grant is made');
select is((select array_agg(expires_at is not null order by created_at) from public.credit_grants where user_id = :'u6b' and kind = 'promotional' and remaining > 0),
  array[true, true], 'issue 9.6: the returned promotional credits keep their expiry');
select is(tests.violations(), '[]'::jsonb, 'issue 9.6: reconcile is empty');

select * from finish();
rollback;
