-- Invites (migrations/README.md, "Invites"): codes, redemption rules, the reward on the invitee's
-- first paid purchase, tiers, the monthly cap, take-back and give-back with the purchase's status.
begin;
\ir _setup.psql
select plan(45);

select tests.set_now('2031-03-03T10:00:00Z');
select tests.create_user('inviter@example.test') as a \gset
select tests.create_user('invitee@example.test') as b \gset
select tests.create_user('third@example.test') as c \gset
select invite_code as code_a from public.profiles where user_id = :'a' \gset
select invite_code as code_b from public.profiles where user_id = :'b' \gset
select invite_code as code_c from public.profiles where user_id = :'c' \gset

-- Codes.
select ok((select bool_and(invite_code ~ '^[A-HJ-NP-Z2-9]{8}$') from public.profiles), 'every profile has an 8-character invite code');
select is((select count(distinct invite_code) from public.profiles), (select count(*) from public.profiles), 'invite codes are unique');
select is((select signed_up_at from public.profiles where user_id = :'a'), '2031-03-03T10:00:00Z'::timestamptz,
  'the sign-up instant is on the business clock');
select tests.authenticate_as(:'a');
select is(tests.attempt(format('update public.profiles set invite_code = %L where user_id = %L', 'AAAAAAAA', :'a')), 'denied',
  'a user cannot change its invite code');
select is(tests.attempt('select * from public.invites'), 'denied', 'users cannot read the invites table directly');
select tests.authenticate_as_anon();
select is((tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_a', 'k1')) ->> 'code'), '42501',
  'anon cannot redeem');
select is((tests.error_of('select public.get_invites()') ->> 'code'), '42501', 'anon cannot read invites');

-- Refusals write nothing.
select tests.authenticate_as(:'b');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', 'abc', 'k1')) ->> 'hint', 'invalid_request', 'a malformed code is invalid_request');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', 'ABCDEFGI', 'k1')) ->> 'detail', 'code', 'with the field code');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_a', '')) ->> 'detail', 'idempotency_key', 'an empty idempotency key is refused');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', 'ZZZZZZZZ', 'k1')) ->> 'hint', 'not_found', 'an unknown code is not_found');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_b', 'k1')) ->> 'hint', 'self_invite', 'one''s own code is refused');
select tests.clear_authentication();
select is((select count(*)::int from public.invites), 0, 'the refusals wrote nothing');

-- B redeems A's code (lower case accepted); again answers the same; another code is refused.
select tests.authenticate_as(:'b');
select is(public.redeem_invite(lower(:'code_a'), 'k1') -> 'invite' ->> 'status', 'waiting_for_purchase', 'B redeems A''s code');
select is((public.redeem_invite(:'code_a', 'k2') ->> 'replayed')::boolean, true, 'the same code again is a replay');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_c', 'k1')) ->> 'hint', 'idempotency_key_reused',
  'the same key with another code is idempotency_key_reused');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_c', 'k3')) ->> 'hint', 'invite_already_redeemed',
  'a second code is refused');
-- A cannot redeem B's code: B joined through A (a loop); C redeems B's code; then A cannot redeem C's.
select tests.authenticate_as(:'a');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_b', 'k1')) ->> 'hint', 'invite_loop', 'a two-user loop is refused');
select tests.authenticate_as(:'c');
select is(public.redeem_invite(:'code_b', 'k1') -> 'invite' ->> 'code', :'code_b', 'C redeems B''s code');
select tests.authenticate_as(:'a');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_c', 'k1')) ->> 'hint', 'invite_loop', 'a longer loop is refused');

-- The window: 7 days after sign-up.
select tests.create_user('late@example.test') as d \gset
select tests.set_now('2031-03-10T10:00:01Z');
select tests.authenticate_as(:'d');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_a', 'k1')) ->> 'hint', 'invite_window_closed',
  'after 7 days the window is closed');
select tests.set_now('2031-03-10T09:59:59Z');
select is(public.redeem_invite(:'code_a', 'k1') -> 'invite' ->> 'status', 'waiting_for_purchase', 'just inside the window it is open');

-- After a paid purchase: refused.
select tests.create_user('buyer@example.test') as e \gset
select tests.authenticate_as_service_role();
select (public.fulfill_purchase('stripe', 'pi_inv_e', 'evt_inv_e', :'e', 'starter', 499, 'usd') ->> 'granted')::boolean as e_paid \gset
select tests.authenticate_as(:'e');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_a', 'k1')) ->> 'hint', 'invite_after_purchase',
  'a user who already bought cannot redeem');

-- No reward at sign-up or redemption: only when B's first purchase is paid.
select is((select count(*)::int from public.credit_grants where user_id = :'a' and source = 'promotion'), 0, 'no reward before a purchase');
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_inv_b1', 'evt_inv_b1', :'b', 'starter', 499, 'usd') is not null as b_paid \gset
select is((select jsonb_build_object('amount', amount, 'remaining', remaining, 'kind', kind, 'expires_at', expires_at)
             from public.credit_grants where user_id = :'a' and source = 'promotion'),
  jsonb_build_object('amount', 50, 'remaining', 50, 'kind', 'promotional', 'expires_at', '2031-06-08T09:59:59+00:00'::timestamptz),
  'the first paid purchase gives A 50 promotional credits expiring in 90 days');
select is((select available from public.credit_balances where user_id = :'a'), 60, 'A has 10 welcome + 50 reward');
select public.fulfill_purchase('stripe', 'pi_inv_b2', 'evt_inv_b2', :'b', 'starter', 499, 'usd') is not null as b_paid2 \gset
select is((select count(*)::int from public.credit_grants where user_id = :'a' and source = 'promotion'), 1, 'a second purchase earns nothing');

-- A partial refund keeps the reward; a full refund takes it back; A spent 55 meanwhile: 5 of debt.
select public.refund_purchase_amount('stripe', 'pi_inv_b1', 'evt_inv_b1_r1', 100, 499, 'charge.refunded') is not null as r1 \gset
select is((select reward_kept from public.invites where invitee_id = :'b'), 50, 'a partial refund keeps the reward');
select tests.authenticate_as(:'a');
select public.generate('inv-spend', '{"model_id": "premium-v1", "prompt": "Spend", "target_minutes": 10}') is not null as spent \gset
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-inv', 10, 300) is not null as claimed \gset
select (public.complete_job(j.id, 35) ->> 'applied')::boolean as done from public.jobs j where j.user_id = :'a' \gset
select public.refund_purchase_amount('stripe', 'pi_inv_b1', 'evt_inv_b1_r2', 499, 499, 'charge.refunded') is not null as r2 \gset
select is((select available || '/' || debt from public.credit_balances where user_id = :'a'), '0/25',
  'the full refund takes the 50 back: the 25 A had left (60 - 35 spent) and 25 of debt');
select is((select reward_kept from public.invites where invitee_id = :'b'), 0, 'nothing of the reward is kept');
select is((select count(*)::int from public.credit_ledger where user_id = :'a' and type = 'refund'), 1, 'one refund row on A''s ledger');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the take-back');

-- A dispute won on a purchase gives the reward back: C's inviter B.
select public.fulfill_purchase('stripe', 'pi_inv_c1', 'evt_inv_c1', :'c', 'starter', 499, 'usd') is not null as c_paid \gset
select public.dispute_purchase('stripe', 'pi_inv_c1', 'evt_inv_c1_d1', 'dp_inv_c1', 'needs_response', 499, 'charge.dispute.created') is not null as d1 \gset
select is((select reward_kept from public.invites where invitee_id = :'c'), 0, 'an open dispute takes B''s reward back');
select is((select type from public.credit_ledger where user_id = :'b' order by id desc limit 1), 'clawback', 'as a clawback');
select public.dispute_purchase('stripe', 'pi_inv_c1', 'evt_inv_c1_d2', 'dp_inv_c1', 'won', 499, 'charge.dispute.closed') is not null as d2 \gset
select is((select reward_kept from public.invites where invitee_id = :'c'), 50, 'the won dispute gives it back');
select is((select remaining from public.credit_grants where user_id = :'b' and source = 'promotion'), 50, 'to the reward grant');

-- Tiers and the monthly cap: 5 x 50 (bronze), then 60 (silver) until 500 a month; a new month resets the cap.
select tests.set_now('2031-04-01T00:00:00Z');
create temporary table many (n int, u uuid) on commit drop;
grant all on many to public;
insert into many select n, tests.create_user('many' || n || '@example.test') from generate_series(1, 17) n;
select tests.create_user('popular@example.test') as p \gset
select invite_code as code_p from public.profiles where user_id = :'p' \gset
select set_config('tests.code_p', :'code_p', true) is not null as set_code \gset
do $$
declare r record;
begin
  for r in select n, u from many order by n loop
    perform tests.authenticate_as(r.u);
    perform public.redeem_invite(current_setting('tests.code_p'), 'k' || r.n);
  end loop;
  perform tests.clear_authentication();
end $$;
select tests.authenticate_as_service_role();
select count(*) from (select public.fulfill_purchase('stripe', 'pi_many_' || n, 'evt_many_' || n, u, 'starter', 499, 'usd')
  from many where n <= 11 order by n) x;
select is((select array_agg(reward_amount order by m.n) from public.invites i join many m on m.u = i.invitee_id where m.n <= 11),
  array[50, 50, 50, 50, 50, 60, 60, 60, 60, 10, 0], 'bronze 50 x5, silver 60, cut to the 500 monthly cap');
select is((select array_agg(reward_note order by m.n) from public.invites i join many m on m.u = i.invitee_id where m.n >= 10 and m.n <= 11),
  array['monthly_cap', 'monthly_cap'], 'capped rewards say so');
select tests.set_now('2031-05-01T00:00:00Z');
select count(*) from (select public.fulfill_purchase('stripe', 'pi_many_' || n, 'evt_many_' || n, u, 'starter', 499, 'usd')
  from many where n > 11 order by n) x;
select is((select array_agg(reward_amount || ':' || reward_tier order by m.n) from public.invites i join many m on m.u = i.invitee_id where m.n > 11),
  array['60:silver', '60:silver', '60:silver', '60:silver', '75:gold', '75:gold'], 'a new month: silver up to 15 successful invitees, then gold');
select tests.authenticate_as(:'p');
select is(public.get_invites() - 'invitees' - 'redeem_until' - 'redeemed',
  jsonb_build_object('code', :'code_p', 'tier', 'gold', 'successful_invites', 17, 'next_reward', 75, 'monthly_cap', 500,
                     'rewarded_this_month', 390), 'get_invites: code, tier, counts, cap');
select is(jsonb_array_length(public.get_invites() -> 'invitees'), 17, 'every invitee is listed');
select ok(not (public.get_invites()::text like '%' || (select u from many where n = 1)::text || '%'), 'without user ids');

-- A closed inviter earns nothing.
select tests.clear_authentication();
select tests.create_user('gone@example.test') as g \gset
select tests.create_user('friend@example.test') as f \gset
select invite_code as code_g from public.profiles where user_id = :'g' \gset
select tests.authenticate_as(:'f');
select public.redeem_invite(:'code_g', 'k1') is not null as redeemed \gset
select tests.authenticate_as(:'g');
select public.delete_account() is not null as closed \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_inv_f', 'evt_inv_f', :'f', 'starter', 499, 'usd') is not null as f_paid \gset
select is((select reward_amount || ':' || reward_note from public.invites where invitee_id = :'f'), '0:inviter_closed', 'a closed inviter is not rewarded');
select tests.authenticate_as(:'d');
select is(tests.error_of(format('select public.redeem_invite(%L, %L)', :'code_g', 'k9')) ->> 'hint', 'invite_already_redeemed', 'D already redeemed');

select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');
select * from finish();
rollback;
