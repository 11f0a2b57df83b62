-- An App Store REFUND prorated to a share of the price (revocationType REFUND_PRORATED) takes back
-- only that share, and a REFUND_REVERSED cancels it before any full refund, in any order of the
-- events (migration 20261203020519, migrations/README.md payment rule table).
begin;
\ir _setup.psql
select plan(13);

-- A starter pack (100 credits, 4.99) bought in the App Store by a new user, then p_events applied in
-- order: 'share' (refund_purchase_share 200 of 499), 'full' (refund_purchase), 'reversed'
-- (reverse_refund_purchase), each under its own event id. Answers the user's available credits.
create function pg_temp.history(p_email text, p_events text[]) returns integer
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_tx text := 'tx_' || split_part(p_email, '@', 1);
  v_event text;
  i int := 0;
begin
  perform tests.authenticate_as_service_role();
  foreach v_event in array p_events loop
    i := i + 1;
    case v_event
      when 'tx' then
        perform public.fulfill_purchase('app_store', v_tx, 'transaction:' || v_tx, v_user, 'starter', 499, 'usd', null, 'signed_transaction');
      when 'share' then
        perform public.refund_purchase_share('app_store', v_tx, v_tx || '-share-' || i, 200, 499, 'REFUND_PRORATED');
      when 'full' then
        perform public.refund_purchase('app_store', v_tx, v_tx || '-full-' || i, 'REFUND');
      when 'reversed' then
        perform public.reverse_refund_purchase('app_store', v_tx, v_tx || '-reversed-' || i, 'REFUND_REVERSED');
    end case;
  end loop;
  perform tests.clear_authentication();
  return (select available from public.credit_balances where user_id = v_user);
end;
$$;
grant execute on function pg_temp.history(text, text[]) to public;

-- 200 of 499 refunded: 100 - ceil(100 x 200 / 499) = 59 kept, + the welcome 10.
select is(pg_temp.history('pr-a@example.test', array['tx', 'share']), 69, 'a prorated REFUND takes back its share only');
select is((select credits_granted || '/' || status from public.purchases where provider_payment_id = 'tx_pr-a'), '59/succeeded',
  'the purchase keeps 59 and stays succeeded');
select is(pg_temp.history('pr-b@example.test', array['share', 'tx']), 69, 'the share delivered before the transaction: the same');
select is(pg_temp.history('pr-c@example.test', array['tx', 'share', 'reversed']), 110, 'its REFUND_REVERSED gives the share back');
select is(pg_temp.history('pr-d@example.test', array['reversed', 'tx', 'share']), 110, 'the reversal first: the same');
select is(pg_temp.history('pr-e@example.test', array['tx', 'share', 'reversed', 'full']), 10,
  'prorated, reversed, then refunded in full: nothing kept (the reversal cancelled the share, not the full refund)');
select is((select status from public.purchases where provider_payment_id = 'tx_pr-e'), 'refunded', 'and the purchase is refunded');
select is(pg_temp.history('pr-f@example.test', array['full', 'reversed', 'tx', 'share', 'reversed']), 110,
  'a full refund and a prorated one, each reversed: everything kept');
select is(pg_temp.history('pr-g@example.test', array['tx', 'full', 'share']), 10, 'a full refund beside a share: nothing kept');

-- Bad input writes nothing.
select tests.authenticate_as_service_role();
select throws_ok($$ select public.refund_purchase_share('app_store', 'tx_pr-a', 'bad-1', 499, 499, 'REFUND_PRORATED') $$,
  '22023', 'A prorated share must be at least zero and less than the amount paid.', 'a share of the whole price is refused');
select throws_ok($$ select public.refund_purchase_share('app_store', 'tx_pr-a', 'bad-2', 1, 0, 'REFUND_PRORATED') $$,
  '22023', 'The amount paid must be positive.', 'a share of nothing is refused');
select throws_ok($$ select public.refund_purchase_share('stripe', 'pi_pr', 'bad-3', 1, 499, 'REFUND_PRORATED') $$,
  '22023', 'Only App Store refunds are prorated this way.', 'a Stripe payment is refused (its partial refunds are amounts)');
select tests.clear_authentication();

select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
