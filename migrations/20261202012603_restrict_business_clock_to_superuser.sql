-- Restrict the business clock override (the app.now setting) to superuser sessions, so no API or SQL role can move deadlines.

-- A custom setting is settable by any session (set_config needs no privilege), so app.now() now
-- honours it only when the session user is a superuser: the local test cluster's postgres. On a
-- Supabase project no client role is a superuser (PostgREST connects as authenticator, the
-- dashboard and migrations as postgres, which Supabase does not make a superuser), so there
-- app.now() is always now().
create or replace function app.now()
returns timestamptz
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_override text := nullif(pg_catalog.current_setting('app.now', true), '');
begin
  if v_override is not null
     and exists (select 1 from pg_catalog.pg_roles r where r.rolname = session_user and r.rolsuper) then
    return v_override::timestamptz;
  end if;
  return pg_catalog.now();
end;
$$;
comment on function app.now() is 'Business clock: now(), or the app.now setting when the session user is a superuser (the tests).';
revoke all on function app.now() from public, anon, authenticated, service_role;
