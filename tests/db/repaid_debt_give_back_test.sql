-- Debt repaid, then given back (migration 20261202190326): a give-back cancels
-- what is still owed first; what the user had already repaid returns, newest repayment first, to
-- the more durable of the grant that repaid it and the payment's own grant. It used to return to
-- the payment's own grant only, which lost the credits when that grant was the one to expire (a
-- subscription period whose debt a pack repaid). The user never ends with less than the other order
-- of the same events gives; promotional credits that repaid the debt may come back as the payment's.
begin;
\ir _setup.psql
select plan(13);

select tests.set_now('2030-01-01 10:00:00+00');

-- One history, two orders: 10 welcome + purchase X (100); a 50-credit job holds the 10 welcome
-- and 40 of X; a chargeback on X takes the 60 left of X and leaves 40 of debt; an admin grants 50
-- promotional credits expiring in a day (40 of them repay the debt); the chargeback is won.
-- p_won_first: the win arrives before the grant. p_days: days between the grant and the end (the
-- win arrives at the end when it comes last).
create function pg_temp.history(p_email text, p_won_first boolean, p_days integer)
returns uuid
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_tag text := split_part(p_email, '@', 1);
  v_now timestamptz := app.now();
begin
  perform tests.authenticate_as_service_role();
  perform public.fulfill_purchase('stripe', 'pi_' || v_tag, 'evt_' || v_tag, v_user, 'starter', 499, 'usd');
  perform tests.authenticate_as(v_user);
  perform public.generate(v_tag, '{"model_id": "premium-v1", "prompt": "Repaid", "target_minutes": 15}');
  perform tests.authenticate_as_service_role();
  perform public.dispute_purchase('stripe', 'pi_' || v_tag, 'evt_open_' || v_tag, 'dp_' || v_tag, 'needs_response', 499,
    'charge.dispute.created');
  if p_won_first then
    perform public.dispute_purchase('stripe', 'pi_' || v_tag, 'evt_won_' || v_tag, 'dp_' || v_tag, 'won', 499,
      'charge.dispute.closed');
  end if;
  perform public.admin_grant_credits('grant-' || v_tag, v_user, 50, v_now + interval '1 day', 'repaid debt test');
  perform tests.set_now(v_now + make_interval(days => p_days));
  if not p_won_first then
    perform public.dispute_purchase('stripe', 'pi_' || v_tag, 'evt_won_' || v_tag, 'dp_' || v_tag, 'won', 499,
      'charge.dispute.closed');
  end if;
  perform tests.clear_authentication();
  perform app.expire_due_grants(v_user);
  return v_user;
end;
$$;
grant execute on function pg_temp.history(text, boolean, integer) to public;

-- The user's money: balance and the grants' remaining by source.
create function pg_temp.money(p_user uuid)
returns jsonb
language sql
as $$
  select jsonb_build_object(
    'balance', (select available || '/' || held || '/' || debt from public.credit_balances where user_id = p_user),
    'grants', (select jsonb_object_agg(source, remaining) from (
                 select source, sum(remaining)::int as remaining from public.credit_grants
                  where user_id = p_user group by source) g))
$$;

select pg_temp.history('repaid-a@example.test', false, 0) as a \gset
select pg_temp.history('repaid-b@example.test', true, 0) as b \gset

select is((select jsonb_agg(jsonb_build_object('amount', r.amount, 'returned', r.returned, 'source', g.source) order by r.id)
             from public.debt_repayments r join public.credit_grants g on g.id = r.grant_id where r.user_id = :'a'),
          '[{"amount": 40, "returned": 40, "source": "promotion"}]'::jsonb,
          'the promotional grant''s repayment of 40 is recorded, and returned in full by the win');
select is(pg_temp.money(:'a'), '{"balance": "110/50/0", "grants": {"welcome": 0, "purchase": 100, "promotion": 10}}'::jsonb,
  'repaid, then won: the 40 go to X''s own grant (never expiring, more durable than the promotional one), X''s 60 too');
select is(pg_temp.money(:'b'), '{"balance": "110/50/0", "grants": {"welcome": 0, "purchase": 60, "promotion": 50}}'::jsonb,
  'won, then granted: the same balance, the promotional grant untouched');
select is((select count(*)::int from public.credit_grants where user_id = :'a' and source = 'adjustment'), 0,
  'X had room for them: no adjustment grant');

-- The job fails: its hold returns 10 to the welcome grant and 40 to X, which has room for them.
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-repaid', 10, 300) is not null as claimed \gset
select job_id from public.credit_holds where user_id = :'a' and status = 'active' \gset
select public.fail_job(:'job_id', 'render_crashed', 'boom', false) is not null as failed \gset
select tests.clear_authentication();
select is(pg_temp.money(:'a'), '{"balance": "160/0/0", "grants": {"welcome": 10, "purchase": 100, "promotion": 10, "adjustment": 40}}'::jsonb,
  'the failed job''s hold returns its 50: X is full, so its 40 become an adjustment grant like X (all 160 credits)');

-- The promotional grant expires before the win: the repaid credits come back as X's, so the user
-- keeps them; in the other order they expired unused. Never less than the other order.
select tests.set_now('2030-01-01 10:00:00+00');
select pg_temp.history('repaid-c@example.test', false, 2) as c \gset
select tests.set_now('2030-01-01 10:00:00+00');
select pg_temp.history('repaid-d@example.test', true, 2) as d \gset
select is(pg_temp.money(:'c'), '{"balance": "100/50/0", "grants": {"welcome": 0, "purchase": 100, "promotion": 0}}'::jsonb,
  'won after the promotional grant expired: the 40 it repaid come back as X''s and stay');
select is(pg_temp.money(:'d'), '{"balance": "60/50/0", "grants": {"welcome": 0, "purchase": 60, "promotion": 0}}'::jsonb,
  'won first: the promotional grant expired unused (60)');
select is((select -sum(delta_available)::int from public.credit_ledger l join public.credit_grants g on g.id = l.grant_id
            where l.user_id = :'c' and l.type = 'expire' and g.source = 'promotion'), 10,
  'only the promotional grant''s own 10 left expired (ledger expire)');

-- A subscription period (its grant expires at the period's end) spent, charged back into debt,
-- the debt repaid by a pack (never expiring), the chargeback won, the period over: the 85 the pack
-- repaid return to the pack and survive the period (they used to go to the period's grant and
-- expire with it: 15 credits left instead of 100). p_won_first: the win before the pack.
insert into public.plans (id, name, interval, credits, rollover_max, price_cents) values ('repaid-plan', 'Repaid', 'month', 100, 0, 999);
create function pg_temp.period_history(p_email text, p_won_first boolean)
returns uuid
language plpgsql
as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_tag text := split_part(p_email, '@', 1);
  v_now timestamptz := app.now();
begin
  perform tests.authenticate_as_service_role();
  perform public.fulfill_subscription_payment('stripe', 'in_' || v_tag, 'evt_' || v_tag, v_user, 'sub_' || v_tag,
    'repaid-plan', v_now, v_now + interval '30 days', 999, 'usd');
  perform tests.authenticate_as(v_user);
  perform public.generate(v_tag, '{"model_id": "premium-v1", "prompt": "Period", "target_minutes": 30}');
  perform tests.authenticate_as_service_role();
  perform public.dispute_purchase('stripe', 'in_' || v_tag, 'evt_open_' || v_tag, 'dp_' || v_tag, 'needs_response', 999,
    'charge.dispute.created');
  if p_won_first then
    perform public.dispute_purchase('stripe', 'in_' || v_tag, 'evt_won_' || v_tag, 'dp_' || v_tag, 'won', 999,
      'charge.dispute.closed');
  end if;
  perform public.fulfill_purchase('stripe', 'pi_pack_' || v_tag, 'evt_pack_' || v_tag, v_user, 'starter', 499, 'usd');
  if not p_won_first then
    perform public.dispute_purchase('stripe', 'in_' || v_tag, 'evt_won_' || v_tag, 'dp_' || v_tag, 'won', 999,
      'charge.dispute.closed');
  end if;
  perform tests.set_now(v_now + interval '31 days');
  perform tests.clear_authentication();
  perform app.expire_due_grants(v_user);
  perform tests.set_now(v_now);
  return v_user;
end;
$$;
grant execute on function pg_temp.period_history(text, boolean) to public;
select tests.set_now('2030-01-01 10:00:00+00');
select pg_temp.period_history('repaid-f@example.test', false) as f \gset
select pg_temp.period_history('repaid-g@example.test', true) as g \gset
select is(pg_temp.money(:'f'), '{"balance": "100/95/0", "grants": {"welcome": 0, "purchase": 100}}'::jsonb,
  'a period charged back, its debt repaid by a pack, then won: the pack keeps its 100 after the period ends');
select is(pg_temp.money(:'f'), pg_temp.money(:'g'), 'the same money as when the win came before the pack');

-- A repayment older than the records (made before this migration): the give-back falls back to
-- the payment's own grant, as before.
select tests.set_now('2030-01-01 10:00:00+00');
select tests.create_user('repaid-e@example.test') as e \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_repaid_e', 'evt_repaid_e', :'e', 'starter', 499, 'usd') is not null as paid \gset
select tests.authenticate_as(:'e');
select public.generate('repaid-e', '{"model_id": "premium-v1", "prompt": "Repaid", "target_minutes": 15}') is not null as held \gset
select tests.authenticate_as_service_role();
select public.dispute_purchase('stripe', 'pi_repaid_e', 'evt_open_e', 'dp_repaid_e', 'needs_response', 499,
  'charge.dispute.created') is not null as opened \gset
select public.admin_grant_credits('grant-repaid-e', :'e', 50, null, 'repaid debt test') is not null as granted \gset
select tests.clear_authentication();
delete from public.debt_repayments where user_id = :'e';
select tests.authenticate_as_service_role();
select public.dispute_purchase('stripe', 'pi_repaid_e', 'evt_won_e', 'dp_repaid_e', 'won', 499,
  'charge.dispute.closed') is not null as won \gset
select tests.clear_authentication();
select is(pg_temp.money(:'e'), '{"balance": "110/50/0", "grants": {"welcome": 0, "purchase": 100, "promotion": 10}}'::jsonb,
  'an unrecorded repayment: the 40 go to X''s own grant');

-- Only the credit functions write the records; reconcile holds for every user of this file.
select tests.authenticate_as_service_role();
select is(tests.attempt(format('insert into public.debt_repayments (user_id, grant_id, amount) select user_id, id, 1 from public.credit_grants where user_id = %L limit 1', :'a')),
  'denied', 'service_role cannot write repayment records');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
