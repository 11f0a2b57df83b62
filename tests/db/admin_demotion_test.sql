-- A demoted admin loses the admin RPCs at once (issue 13, review): app.require_admin reads the
-- current auth.users.raw_app_meta_data as well as the token's app_metadata claim, which is a copy
-- made when the token was issued and stays in it until it expires. The service key and a direct
-- database session are unchanged. The audit log is read through admin_list_audit only.
begin;
\ir _setup.psql
select plan(12);

select tests.set_now('2030-01-01 10:00:00+00');
select tests.create_user('demoted-admin@example.com') as admin \gset
select tests.create_user('demoted-target@example.com') as alice \gset
update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = :'admin';

-- The same token throughout: its claims say admin, whatever auth.users says later.
create function pg_temp.as_admin_token(p_user_id uuid) returns void language plpgsql as $$
begin
  perform tests.authenticate_as(p_user_id);
  perform set_config('request.jwt.claims', (current_setting('request.jwt.claims')::jsonb
    || jsonb_build_object('app_metadata', jsonb_build_object('provider', 'email', 'role', 'admin')))::text, true);
end;
$$;
grant execute on function pg_temp.as_admin_token(uuid) to public;

select pg_temp.as_admin_token(:'admin');
select is((public.admin_lookup_user(:'alice', 'before demotion') -> 'balance' ->> 'available')::int, 10,
  'an admin (claim and auth.users agree) looks a user up');
select is(public.admin_grant_credits('demote-1', :'alice', 5, null, 'before demotion') -> 'grant' ->> 'amount', '5',
  'and grants credits');
select is(public.admin_list_audit() -> 'items' -> 0 ->> 'action', 'grant_credits', 'and reads the audit log');

-- The team removes the role (the Auth admin API writes raw_app_meta_data); the token is unchanged.
select tests.clear_authentication();
update auth.users set raw_app_meta_data = '{"provider": "email"}' where id = :'admin';
select count(*)::int as audit_rows from public.admin_audit_log \gset

select pg_temp.as_admin_token(:'admin');
select is(tests.error_of(format($$ select public.admin_lookup_user(%L, 'after demotion') $$, :'alice')) ->> 'hint', 'forbidden',
  'the same unexpired token is refused a look-up once the role is gone from auth.users');
select is(tests.error_of(format($$ select public.admin_grant_credits('demote-2', %L, 500, null, 'after demotion') $$, :'alice')) ->> 'code',
  '42501', 'and a grant (42501)');
select is(tests.error_of(format($$ select public.admin_grant_credits('demote-1', %L, 5, null, 'before demotion') $$, :'alice')) ->> 'hint',
  'forbidden', 'even the replay of a grant it made while it was an admin');
select is(tests.error_of('select public.admin_list_audit()') ->> 'hint', 'forbidden', 'and the audit log');
select is(tests.attempt('select 1 from public.admin_audit_log'), 'denied', 'the audit table is not readable directly either');
select tests.clear_authentication();
select is((select count(*)::int from public.admin_audit_log), :audit_rows, 'the refused calls wrote no audit row');
select is((select available from public.credit_balances where user_id = :'alice'), 15, 'and granted nothing');

-- A role set in auth.users but not (yet) in the token is not enough either: both must say admin.
update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = :'alice';
select tests.authenticate_as(:'alice');
select is(tests.error_of(format($$ select public.admin_lookup_user(%L, 'r') $$, :'admin')) ->> 'hint', 'forbidden',
  'a token without the claim is refused although auth.users says admin');

-- The service key is not a user: it stays allowed.
select tests.authenticate_as_service_role();
select is(public.admin_lookup_user(:'alice', 'service') -> 'user' ->> 'id', :'alice', 'the service role still acts');

select * from finish();
rollback;
