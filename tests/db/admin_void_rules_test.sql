-- An admin cannot void a grant a money rule owns (migrations/README.md, Admin actions): a purchase's
-- grant, an invite reward (taken back by its invitee's purchase) or a subscription rollover (counted
-- by the next rollover). Found by the executable model: a voided invite reward was taken back a
-- second time from the inviter's other credits when the invitee's purchase was disputed.
begin;
\ir _setup.psql
select plan(9);

select tests.set_now('2031-03-03T10:00:00Z');
select tests.create_user('void-admin@example.test') as admin \gset
update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = :'admin';
select tests.create_user('void-inviter@example.test') as a \gset
select tests.create_user('void-invitee@example.test') as b \gset
select tests.create_user('void-subscriber@example.test') as s \gset

create function pg_temp.as_admin(p_user_id uuid) returns void language plpgsql as $$
begin
  perform tests.authenticate_as(p_user_id);
  perform set_config('request.jwt.claims', (current_setting('request.jwt.claims')::jsonb
    || jsonb_build_object('app_metadata', jsonb_build_object('provider', 'email', 'role', 'admin')))::text, true);
end;
$$;
grant execute on function pg_temp.as_admin(uuid) to public;

-- B redeems A's code, then B's first purchase is paid: A gets the invite reward.
select invite_code as code_a from public.profiles where user_id = :'a' \gset
select tests.authenticate_as(:'b');
select public.redeem_invite(:'code_a', 'void-k1') is not null as redeemed;
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_void_b', 'evt_void_b', :'b', 'starter', 499, 'usd') is not null as paid;
select tests.clear_authentication();
select reward_grant_id as reward from public.invites where invitee_id = :'b' \gset
select ok(:'reward' is not null, 'the inviter has an invite reward grant');

-- A subscription with two periods: the second carries a rollover grant.
insert into public.plans (id, name, interval, credits, rollover_max, price_cents) values ('void-plan', 'Void', 'month', 10, 5, 100);
select tests.authenticate_as_service_role();
select public.fulfill_subscription_payment('stripe', 'pi_void_s1', 'evt_void_s1', :'s', 'sub_void', 'void-plan',
  '2031-03-01', '2031-04-01', 100, 'usd') is not null as period1;
select public.fulfill_subscription_payment('stripe', 'pi_void_s2', 'evt_void_s2', :'s', 'sub_void', 'void-plan',
  '2031-04-01', '2031-05-01', 100, 'usd') is not null as period2;
select tests.clear_authentication();
select grant_id as rollover from public.subscription_rollovers where user_id = :'s' and grant_id is not null limit 1 \gset
select ok(:'rollover' is not null, 'the subscriber has a rollover grant');

select pg_temp.as_admin(:'admin');
select is(tests.error_of(format('select public.admin_void_grant(%L, %L, %L)', 'void-1', :'reward', 'abuse')) ->> 'hint', 'invalid_request',
  'voiding an invite reward is refused');
select is(tests.error_of(format('select public.admin_void_grant(%L, %L, %L)', 'void-2', :'rollover', 'abuse')) ->> 'hint', 'invalid_request',
  'voiding a subscription rollover is refused');
select is(tests.error_of(format('select public.admin_void_grant(%L, %L, %L)', 'void-3',
  (select id from public.credit_grants where user_id = :'b' and source = 'purchase'), 'abuse')) ->> 'hint', 'invalid_request',
  'voiding a purchase grant is still refused');
select tests.clear_authentication();
select is((select remaining from public.credit_grants where id = :'reward'), (select reward_amount from public.invites where invitee_id = :'b'),
  'the reward grant is untouched');
select is((select count(*)::int from public.admin_audit_log where action = 'void_grant'), 0, 'no refused void is audited');

-- An admin's own promotion grant can still be voided.
select pg_temp.as_admin(:'admin');
select public.admin_grant_credits('void-g', :'a', 25, null, 'goodwill') is not null as granted;
select tests.clear_authentication();
select id as promo from public.credit_grants where user_id = :'a' and source = 'promotion' and id <> :'reward' \gset
select pg_temp.as_admin(:'admin');
select is(public.admin_void_grant('void-4', :'promo', 'mistake') ->> 'voided', '25', 'an admin promotion grant is voided');
select tests.clear_authentication();
select is((select remaining from public.credit_grants where id = :'reward'), (select reward_amount from public.invites where invitee_id = :'b'),
  'and the reward grant is still untouched');

select * from finish();
rollback;
