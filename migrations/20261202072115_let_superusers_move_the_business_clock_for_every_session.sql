-- Let a superuser move the business clock for every session (PostgREST's included): app.now() reads the one row of app.business_clock when set; only superuser sessions can write it.

-- The app.now setting (superuser sessions only, 20261202012603) moves the clock for one session,
-- so requests through PostgREST (authenticator, never a superuser) always saw the real time. The
-- end-to-end tests need time moved for the Worker too (periods ending, the expiry sweep), so the
-- clock can now also be set for the whole database in a one-row table that only a superuser
-- session can write: the local test cluster's postgres. On a Supabase project no client role is a
-- superuser (postgres is not; only supabase_admin is), so no API role can move the clock there;
-- the table's owner (postgres, the dashboard's role) could by disabling the trigger first, as it
-- could rewrite any balance: the owner is trusted, the API roles are not.
--
-- Precedence in app.now(): the app.now setting of a superuser session (the pgTAP and model tests,
-- per transaction), then the table's row, then now().
create table app.business_clock (
  id boolean primary key default true,
  now timestamptz not null,
  set_by text not null default session_user,
  set_at timestamptz not null default pg_catalog.now(),
  constraint business_clock_one_row_check check (id)
);
comment on table app.business_clock is 'At most one row: the business time app.now() answers for every session while the row exists (tests only). Written only by superuser sessions (trigger).';
alter table app.business_clock enable row level security;
revoke all on table app.business_clock from public, anon, authenticated, service_role;

create or replace function app.refuse_business_clock_write()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if not exists (select 1 from pg_catalog.pg_roles r where r.rolname = session_user and r.rolsuper) then
    raise exception using errcode = '42501', message = 'Only a superuser session can move the business clock.',
      hint = 'forbidden';
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end;
$$;
comment on function app.refuse_business_clock_write() is 'Trigger: refuses any write to app.business_clock unless the session user is a superuser.';
revoke all on function app.refuse_business_clock_write() from public, anon, authenticated, service_role;

create trigger business_clock_superuser_only
  before insert or update or delete on app.business_clock
  for each row execute function app.refuse_business_clock_write();
create trigger business_clock_superuser_only_truncate
  before truncate on app.business_clock
  for each statement execute function app.refuse_business_clock_write();

-- app.now(): STABLE, no row locks (a plain read of one row: the relation's AccessShareLock only,
-- which conflicts with nothing but DDL on the table). Its SPI plan is cached per session.
create or replace function app.now()
returns timestamptz
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_override text := nullif(pg_catalog.current_setting('app.now', true), '');
  v_clock timestamptz;
begin
  if v_override is not null
     and exists (select 1 from pg_catalog.pg_roles r where r.rolname = session_user and r.rolsuper) then
    return v_override::timestamptz;
  end if;
  select c.now into v_clock from app.business_clock c where c.id;
  return coalesce(v_clock, pg_catalog.now());
end;
$$;
comment on function app.now() is 'Business clock: the app.now setting of a superuser session (tests), else the row of app.business_clock (set by a superuser, tests), else now().';
revoke all on function app.now() from public, anon, authenticated, service_role;
