-- Held credits that come back to a grant a give-back has already refilled to its amount: they
-- become an adjustment grant of the same category and expiry (migrations/README.md, Money
-- mechanics) instead of failing the settlement on credit_grants_remaining_range_check. Found by the
-- executable money model (tests/model, seed 21).
begin;
\ir _setup.psql
select plan(5);

select tests.create_user('room@example.test') as u \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_room_x', 'evt_room_x', :'u', 'starter', 499, 'usd') is not null as paid \gset
-- 10 welcome (promotional, expiring) + 100 (purchase X). A 50-credit job holds the 10 promotional
-- credits and 40 of X.
select tests.authenticate_as(:'u');
select public.generate('room-1', '{"model_id": "premium-v1", "prompt": "Room", "target_minutes": 15}')
  -> 'response' -> 'job' ->> 'id' as job \gset
select tests.authenticate_as_service_role();
-- A chargeback on X takes its 100 back: the 60 left of X, and 40 of debt.
select public.dispute_purchase('stripe', 'pi_room_x', 'evt_room_open', 'dp_room', 'needs_response', 499,
  'charge.dispute.created') is not null as opened \gset
-- A second purchase repays the debt; then the chargeback is won: X is refilled to its 100. Since
-- 20261202190326 a repaid debt given back returns to the grant that repaid it (Y), which cannot
-- overfill X; a repayment made before that migration has no record and still goes to X, as here.
select public.fulfill_purchase('stripe', 'pi_room_y', 'evt_room_y', :'u', 'creator', 1999, 'usd') is not null as paid2 \gset
select tests.clear_authentication();
delete from public.debt_repayments where user_id = :'u';
select tests.authenticate_as_service_role();
select public.dispute_purchase('stripe', 'pi_room_x', 'evt_room_won', 'dp_room', 'won', 499,
  'charge.dispute.closed') is not null as won \gset
select is((select remaining from public.credit_grants g join public.purchases p on p.grant_id = g.id
            where p.provider_payment_id = 'pi_room_x'), 100, 'the won dispute refilled purchase X''s grant to its amount');
-- The job fails: its 40 held credits of X no longer fit X.
select public.claim_next_jobs('w-room', 10, 300) is not null as claimed \gset
select lives_ok(format('select public.fail_job(%L, %L, %L, false)', :'job', 'render_crashed', 'boom'),
  'releasing the hold does not fail on a grant that is full');
select is((select jsonb_build_object('kind', kind, 'remaining', remaining, 'expires_at', expires_at)
             from public.credit_grants where user_id = :'u' and source = 'adjustment'),
          '{"kind": "paid", "remaining": 40, "expires_at": null}'::jsonb,
          'the 40 credits that do not fit become a paid, never-expiring adjustment grant, like X');
select is((select available || '/' || held || '/' || debt from public.credit_balances where user_id = :'u'),
          '660/0/0', 'the user has all 660 credits (10 welcome + 100 + 550), none held, no debt');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
