-- An invite reward needs money paid (migrations/README.md, Invites): a subscription period of 0 (a
-- free trial, a 100%-off invoice) earns the inviter nothing and leaves the invitee's first paid
-- purchase to come; the next period, paid, earns the reward.
begin;
\ir _setup.psql
select plan(5);

select tests.set_now('2031-03-03T10:00:00Z');
select tests.create_user('free-inviter@example.test') as a \gset
select tests.create_user('free-invitee@example.test') as b \gset
select invite_code as code_a from public.profiles where user_id = :'a' \gset
select tests.authenticate_as(:'b');
select public.redeem_invite(:'code_a', 'free-k1') is not null as redeemed;
select tests.clear_authentication();

insert into public.plans (id, name, interval, credits, rollover_max, price_cents) values ('free-plan', 'Free trial', 'month', 10, 0, 100);
select tests.authenticate_as_service_role();
select is((public.fulfill_subscription_payment('stripe', 'in_free_trial', 'evt_free_1', :'b', 'sub_free', 'free-plan',
  '2031-03-03', '2031-04-03', 0, 'usd') ->> 'granted')::boolean, true, 'the trial period of 0 is granted to the invitee');
select tests.clear_authentication();
select is((select count(*)::int from public.credit_grants where user_id = :'a' and source = 'promotion'), 0,
  'the inviter gets no reward for a purchase of 0');
select is((select purchase_id from public.invites where invitee_id = :'b'), null, 'and the invite still waits for a paid purchase');

select tests.authenticate_as_service_role();
select public.fulfill_subscription_payment('stripe', 'pi_free_paid', 'evt_free_2', :'b', 'sub_free', 'free-plan',
  '2031-04-03', '2031-05-03', 100, 'usd') is not null as paid;
select tests.clear_authentication();
select is((select count(*)::int from public.credit_grants where user_id = :'a' and source = 'promotion'), 1,
  'the first period with money paid earns the reward');
select is((select reward_amount from public.invites where invitee_id = :'b'), 50, 'of 50 credits (bronze)');

select * from finish();
rollback;
