-- An invite give-back says nothing about the invitee (issue 13, review): when the reward comes back
-- (the invitee's disputed first purchase is won) and does not fit into the inviter's grant it was
-- taken from, the excess becomes an adjustment grant of the inviter's. Its description named the
-- invitee's purchase id, which the inviter reads through RLS; GET /v1/invites shows invitees
-- without ids. The inviter's grants and ledger, read as the inviter, carry no id of the invitee's.
begin;
\ir _setup.psql
select plan(7);

select tests.set_now('2031-03-03T10:00:00Z');
select tests.create_user('privacy-inviter@example.test') as a \gset
select tests.create_user('privacy-invitee@example.test') as b \gset
select invite_code as code_a from public.profiles where user_id = :'a' \gset

-- B redeems A's code; B's first purchase is paid: A gets the 50-credit reward (10 welcome + 50).
select tests.authenticate_as(:'b');
select public.redeem_invite(:'code_a', 'privacy-k1') is not null as redeemed \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_privacy_b', 'evt_privacy_b', :'b', 'starter', 499, 'usd') is not null as paid \gset
select id as purchase_b from public.purchases where provider_payment_id = 'pi_privacy_b' \gset
select tests.clear_authentication();
select is((select available from public.credit_balances where user_id = :'a'), 60, 'A has 10 welcome credits and the 50 reward');

-- A's job holds 59 of them (premium-v1, 18 minutes).
select tests.authenticate_as(:'a');
select public.generate('privacy-job', '{"model_id": "premium-v1", "prompt": "Privacy", "target_minutes": 18}')
  -> 'response' -> 'job' ->> 'id' as job \gset
-- B's purchase is disputed: the reward is taken back, 1 credit available and 49 of debt.
select tests.authenticate_as_service_role();
select public.dispute_purchase('stripe', 'pi_privacy_b', 'evt_privacy_open', 'dp_privacy', 'needs_response', 499,
  'charge.dispute.created') is not null as opened \gset
select tests.clear_authentication();
select is((select debt from public.credit_balances where user_id = :'a'), 49, 'the take-back left A 49 credits of debt');
-- A buys credits (the debt is repaid), then the job fails: its 59 credits return to their grants,
-- the reward grant full again.
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_privacy_a', 'evt_privacy_a', :'a', 'starter', 499, 'usd') is not null as paid_a \gset
-- Since 20261202190326 repaid debt given back returns to the more durable grant (A's purchase),
-- which leaves the reward grant room; a repayment made before that migration has no record and
-- still goes to the reward grant, which is the overflow path under test here.
select tests.clear_authentication();
delete from public.debt_repayments where user_id = :'a';
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-privacy', 10, 300) is not null as claimed \gset
select public.fail_job(:'job', 'render_crashed', 'boom', false) is not null as failed \gset
-- The dispute is won: the reward comes back, but the reward grant has no room left.
select public.dispute_purchase('stripe', 'pi_privacy_b', 'evt_privacy_won', 'dp_privacy', 'won', 499,
  'charge.dispute.closed') is not null as won \gset
select tests.clear_authentication();
select ok((select count(*) from public.credit_grants where user_id = :'a' and source = 'adjustment') > 0,
  'the give-back made an adjustment grant for what did not fit (the path under test ran)');

-- What A reads through RLS.
select tests.authenticate_as(:'a');
select is((select count(*)::int from public.credit_grants
            where description like '%' || :'purchase_b' || '%' or description like '%pi_privacy_b%'), 0,
  'none of A''s grants names B''s purchase (id or payment id)');
select is((select count(*)::int from public.credit_ledger
            where description like '%' || :'purchase_b' || '%' or description like '%pi_privacy_b%'), 0,
  'none of A''s ledger rows names it either');
select is((select string_agg(distinct description, ' | ') from public.credit_grants where source = 'adjustment'),
  'Invite reward given back (beyond the room of the grant it was taken from)',
  'the excess grant says what it is and nothing about the invitee');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
