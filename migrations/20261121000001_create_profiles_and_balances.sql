-- Lock privileges down, then create profiles and per-user cached balances, made on sign-up, with get_balance.

-- 1. Privileges first. Supabase grants ALL on every new table, function and sequence in public to
-- anon, authenticated and service_role, and Postgres grants EXECUTE on every new function to PUBLIC.
-- From here on nothing is granted implicitly: each object below grants exactly what it needs.
alter default privileges revoke execute on functions from public;
alter default privileges in schema public revoke all on tables from anon, authenticated, service_role;
alter default privileges in schema public revoke all on functions from anon, authenticated, service_role;
alter default privileges in schema public revoke all on sequences from anon, authenticated, service_role;

-- Internal helpers live in `app`, a schema PostgREST does not expose and the API roles cannot use.
create schema if not exists app;
revoke all on schema app from public, anon, authenticated, service_role;
comment on schema app is 'Internal helpers of the credits bundle. Not exposed through PostgREST; only SECURITY DEFINER functions in public call into it.';

-- The clock. Every business deadline (grant expiry, hold expiry, draft expiry, idempotency expiry)
-- is computed and compared with app.now(), never with now() directly, so tests can move time:
--   select set_config('app.now', '2027-01-01 00:00:00+00', true);  -- transaction-local
-- With the setting absent or empty, app.now() is the transaction's now(). PostgREST offers clients
-- no way to set an arbitrary setting, so the override is reachable only from a direct SQL session.
create or replace function app.now()
returns timestamptz
language plpgsql
stable
set search_path = ''
as $$
begin
  return coalesce(nullif(pg_catalog.current_setting('app.now', true), '')::timestamptz, pg_catalog.now());
end;
$$;
comment on function app.now() is 'Business clock: the app.now setting when set (tests), else now().';

-- The acting user. Every user-facing RPC starts here: no claims, no action.
create or replace function app.require_user()
returns uuid
language plpgsql
stable
set search_path = ''
as $$
declare
  v_user_id uuid := auth.uid();
begin
  if v_user_id is null then
    raise exception using
      errcode = '42501',
      message = 'Sign in to use this operation.',
      hint = 'unauthenticated';
  end if;
  return v_user_id;
end;
$$;
comment on function app.require_user() is 'Returns auth.uid(); raises 42501 (hint unauthenticated) when the request carries no user.';

-- Service-role functions are protected by EXECUTE grants; this check is the second line: a request
-- whose JWT says anon or authenticated never runs back-office code, whatever the grants say.
create or replace function app.require_service_role()
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
  if auth.role() in ('anon', 'authenticated') then
    raise exception using
      errcode = '42501',
      message = 'This operation is reserved for the back office.',
      hint = 'forbidden';
  end if;
end;
$$;
comment on function app.require_service_role() is 'Raises 42501 (hint forbidden) when the JWT role is anon or authenticated.';

-- 2. Profiles: one per auth user, created by the sign-up trigger below.
create table public.profiles (
  user_id uuid primary key references auth.users (id),
  display_name text,
  avatar_url text,
  notification_prefs jsonb not null default '{}'::jsonb,
  language text not null default 'en',
  stripe_customer_id text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint profiles_display_name_length_check check (char_length(display_name) between 1 and 100),
  constraint profiles_avatar_url_length_check check (char_length(avatar_url) between 1 and 2048),
  constraint profiles_avatar_url_scheme_check check (avatar_url ~ '^https://'),
  constraint profiles_notification_prefs_object_check check (
    jsonb_typeof(notification_prefs) = 'object' and pg_column_size(notification_prefs) <= 4096
  ),
  constraint profiles_language_format_check check (
    char_length(language) <= 35 and language ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$'
  ),
  constraint profiles_stripe_customer_id_length_check check (char_length(stripe_customer_id) between 1 and 255),
  constraint profiles_stripe_customer_id_key unique (stripe_customer_id)
);
comment on table public.profiles is 'One profile per user: display settings and the Stripe customer. Created automatically at sign-up; soft-deleted through deleted_at.';
comment on column public.profiles.user_id is 'The auth.users id this profile belongs to.';
comment on column public.profiles.display_name is 'Name shown in the app (1-100 characters).';
comment on column public.profiles.avatar_url is 'https URL of the avatar image.';
comment on column public.profiles.notification_prefs is 'Notification preferences as a JSON object (at most 4 KB).';
comment on column public.profiles.language is 'BCP 47 language tag, e.g. en or pt-BR.';
comment on column public.profiles.stripe_customer_id is 'Stripe customer id; set by the back office, never by the user.';
comment on column public.profiles.deleted_at is 'Soft delete: set by the back office when the account is closed.';

-- 3. The cached balance. The ledger (next migration) is the source of truth; this row is its running
-- total per user and the one row every money operation locks (FOR UPDATE) before it checks anything,
-- which serialises a user's spending without touching other users.
--   available: credits that can be spent now (sum of grants' remaining);
--   held:      credits reserved by active holds for running jobs;
--   debt:      credits owed after a refund or chargeback took back more than was available. While
--              debt > 0 nothing can be spent; new credits repay debt before they become available.
create table public.credit_balances (
  user_id uuid primary key references auth.users (id),
  available integer not null default 0,
  held integer not null default 0,
  debt integer not null default 0,
  updated_at timestamptz not null default now(),
  constraint credit_balances_available_nonnegative_check check (available >= 0),
  constraint credit_balances_held_nonnegative_check check (held >= 0),
  constraint credit_balances_debt_nonnegative_check check (debt >= 0)
);
comment on table public.credit_balances is 'Cached per-user balance (available, held, debt): the running total of the credit ledger. Written only by the credit functions.';
comment on column public.credit_balances.available is 'Credits that can be spent now.';
comment on column public.credit_balances.held is 'Credits reserved for jobs in progress.';
comment on column public.credit_balances.debt is 'Credits owed after a refund or chargeback; blocks spending until repaid by new credits.';

-- 4. Sign-up: every new auth user gets a profile and a zero balance. Later migrations replace this
-- function to add the welcome grant.
create or replace function app.handle_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.profiles (user_id) values (new.id) on conflict (user_id) do nothing;
  insert into public.credit_balances (user_id) values (new.id) on conflict (user_id) do nothing;
  return new;
end;
$$;
comment on function app.handle_new_user() is 'Trigger on auth.users insert: creates the profile and the balance.';

create trigger on_auth_user_created
  after insert on auth.users
  for each row execute function app.handle_new_user();

-- 5. Row level security. Users read their own profile and balance and edit a few profile columns;
-- nobody writes a balance directly (the credit functions do, as the table owner).
alter table public.profiles enable row level security;
alter table public.credit_balances enable row level security;

revoke all on table public.profiles, public.credit_balances from public, anon, authenticated, service_role;
grant select on table public.profiles to authenticated, service_role;
grant update (display_name, avatar_url, notification_prefs, language, updated_at) on table public.profiles to authenticated;
grant update on table public.profiles to service_role;
grant select on table public.credit_balances to authenticated, service_role;

create policy "Users can read their own profile"
  on public.profiles for select
  to authenticated
  using ((select auth.uid()) = user_id);

create policy "Users can update their own profile"
  on public.profiles for update
  to authenticated
  using ((select auth.uid()) = user_id)
  with check ((select auth.uid()) = user_id);

create policy "Service role can read profiles"
  on public.profiles for select
  to service_role
  using (true);

create policy "Service role can update profiles"
  on public.profiles for update
  to service_role
  using (true)
  with check (true);

create policy "Users can read their own balance"
  on public.credit_balances for select
  to authenticated
  using ((select auth.uid()) = user_id);

create policy "Service role can read balances"
  on public.credit_balances for select
  to service_role
  using (true);

-- 6. get_balance: the caller's balance. expiring_soon is refined once grants exist (next migration).
create or replace function public.get_balance()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_user_id uuid := app.require_user();
  v_balance public.credit_balances;
begin
  select * into v_balance from public.credit_balances where user_id = v_user_id;
  return jsonb_build_object(
    'available', coalesce(v_balance.available, 0),
    'held', coalesce(v_balance.held, 0),
    'expiring_soon', 0
  );
end;
$$;
comment on function public.get_balance() is 'The caller''s credits: {"available": int, "held": int, "expiring_soon": int}. Raises 42501 (unauthenticated) without a user.';

revoke all on function app.now(), app.require_user(), app.require_service_role(), app.handle_new_user()
  from public, anon, authenticated, service_role;
revoke all on function public.get_balance() from public, anon, authenticated, service_role;
grant execute on function public.get_balance() to authenticated;
