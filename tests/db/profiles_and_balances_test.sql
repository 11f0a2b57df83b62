-- Sign-up creates a profile and a balance; users see and edit only their own; get_balance.
begin;
\ir _setup.psql
select plan(22);

select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset

-- Sign-up side effects.
select is((select count(*)::int from public.profiles where user_id = :'alice'), 1,
  'a new auth user gets a profile');
select is((select count(*)::int from public.credit_balances where user_id = :'alice'), 1,
  'a new auth user gets a balance row');

-- RLS is on.
select ok((select relrowsecurity from pg_class where oid = 'public.profiles'::regclass),
  'profiles has row level security enabled');
select ok((select relrowsecurity from pg_class where oid = 'public.credit_balances'::regclass),
  'credit_balances has row level security enabled');

-- get_balance.
select tests.authenticate_as(:'alice');
select ok(public.get_balance() ?& array['available', 'held', 'expiring_soon'],
  'get_balance returns available, held and expiring_soon');
select is((public.get_balance() ->> 'held')::int, 0, 'a new user holds nothing');
select is(jsonb_typeof(public.get_balance() -> 'available'), 'number', 'available is a number');
select is((public.get_balance() ->> 'available')::int, 10, 'a new user starts with the 10 welcome credits');
select tests.authenticate_as(:'bob');
select is((public.get_balance() ->> 'available')::int, 10, 'each user sees their own balance');
select tests.authenticate_as(:'alice');

select tests.clear_authentication();
select throws_ok($$ select public.get_balance() $$, '42501', 'Sign in to use this operation.',
  'get_balance without claims raises unauthenticated');

select tests.authenticate_as_anon();
select throws_ok($$ select public.get_balance() $$, '42501', null,
  'anon cannot call get_balance');

-- Profiles: own row only, limited columns.
select tests.authenticate_as(:'alice');
select is((select count(*)::int from public.profiles), 1, 'a user sees exactly one profile');
select is((select user_id from public.profiles), :'alice'::uuid, 'the profile a user sees is their own');
select lives_ok($$ update public.profiles set display_name = 'Alice' $$,
  'a user can set their display name');
select is((select display_name from public.profiles), 'Alice', 'the display name was saved');
select throws_ok($$ update public.profiles set stripe_customer_id = 'cus_x' $$, '42501', null,
  'a user cannot set their Stripe customer id');
select throws_ok($$ update public.profiles set deleted_at = now() $$, '42501', null,
  'a user cannot soft-delete their profile directly');
select is_empty(format($$ update public.profiles set display_name = 'Mallory' where user_id = %L returning 1 $$, :'bob'),
  'a user cannot update another user''s profile');
select throws_ok($$ insert into public.profiles (user_id) values (gen_random_uuid()) $$, '42501', null,
  'a user cannot insert a profile');
select throws_ok($$ delete from public.profiles $$, '42501', null,
  'a user cannot delete a profile');

-- Balances: read-only for users.
select throws_ok($$ update public.credit_balances set available = 1000000 $$, '42501', null,
  'a user cannot write their balance');
select is((select count(*)::int from public.credit_balances), 1, 'a user sees only their own balance');

select * from finish();
rollback;
