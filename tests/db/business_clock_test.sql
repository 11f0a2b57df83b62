-- The business clock for every session (migrations/..._let_superusers_move_the_business_clock_for_every_session.sql):
-- a superuser sets the one row of app.business_clock and app.now() answers it in every session,
-- PostgREST's authenticator included; no other session can write it, not even one with table
-- privileges (as the postgres role of a Supabase project, which owns the table but is no
-- superuser); the app.now setting of a superuser session still comes first; without the row,
-- app.now() is now().
begin;
\ir _setup.psql
select plan(11);

select tests.create_user('clock@example.com') as u \gset

select is(app.now(), now(), 'without the row (and no setting) app.now() is now()');

create temp table seen (step text, available text);
create temp table refused (who text, code text);
create temp table owner_refused (op text, e jsonb);
grant all on seen, refused, owner_refused to public;

-- A session as PostgREST opens them (authenticator, then the JWT's role) sees real time.
set local session authorization authenticator;
set local role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', :'u', 'role', 'authenticated')::text, true);
insert into seen select 'before', public.get_balance() ->> 'available';
reset role;
reset session authorization;

insert into app.business_clock (now) values ('2099-01-01T00:00:00Z');
select is(app.now(), '2099-01-01T00:00:00Z'::timestamptz, 'the superuser moved the clock: app.now() answers the row');

set local session authorization authenticator;
set local role authenticated;
insert into seen select 'moved', public.get_balance() ->> 'available';
-- The authenticator cannot write the clock (no privilege), nor can the API roles.
insert into refused
  select 'authenticated', tests.error_of($$update app.business_clock set now = now()$$) ->> 'code' as code;
reset role;
insert into refused select 'authenticator', tests.error_of($$delete from app.business_clock$$) ->> 'code';
reset session authorization;
select set_config('request.jwt.claims', '', true);

select is((select available from seen where step = 'before'), '10', 'PostgREST''s session before: the welcome credits');
select is((select available from seen where step = 'moved'), '0',
  'PostgREST''s session (authenticator, not a superuser) sees the moved clock: the welcome credits have expired');
select is((select code from refused where who = 'authenticated'), '42501', 'authenticated cannot write the clock');
select is((select code from refused where who = 'authenticator'), '42501', 'the authenticator cannot write the clock');

-- A role with every privilege on the table but no superuser (Supabase's postgres): the trigger refuses.
create role clock_writer_test nologin;
grant usage on schema app to clock_writer_test;
grant select, insert, update, delete, truncate on app.business_clock to clock_writer_test;
alter table app.business_clock owner to clock_writer_test;
set local session authorization clock_writer_test;
insert into owner_refused
  select 'update', tests.error_of($$update app.business_clock set now = '2000-01-01'$$) as e
  union all select 'delete', tests.error_of($$delete from app.business_clock$$)
  union all select 'truncate', tests.error_of($$truncate app.business_clock$$);
reset session authorization;
select is((select array_agg(e ->> 'code' order by op) from owner_refused), array['42501', '42501', '42501'],
  'the table''s owner, not a superuser, can neither update, delete nor truncate the clock');
select is((select e ->> 'message' from owner_refused where op = 'update'), 'Only a superuser session can move the business clock.',
  'refused by the trigger');
select is(app.now(), '2099-01-01T00:00:00Z'::timestamptz, 'and the clock did not move');

-- Precedence: the app.now setting of a superuser session comes first.
select tests.set_now('2050-06-01T00:00:00Z');
select is(app.now(), '2050-06-01T00:00:00Z'::timestamptz, 'a superuser session''s app.now setting comes before the row');
select set_config('app.now', '', true);

delete from app.business_clock;
select is(app.now(), now(), 'the row deleted: real time again');

select * from finish();
rollback;
