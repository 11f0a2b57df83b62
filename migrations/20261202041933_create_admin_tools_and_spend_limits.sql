-- Issue 13 (first half): admin identity, the append-only admin audit log, the admin RPCs (look up, grant, adjust, void, refund a job, suspend, spend cap, ledger export), account suspension and spend limits enforced inside generate.

-- 1. Tables.

-- What the operator configures once: the default daily spend cap and the per-request maximum
-- (null = no limit). One row; set it with SQL (dashboard / psql as the table owner).
create table public.spend_limit_settings (
  id boolean primary key default true,
  daily_spend_cap integer,
  max_request_credits integer,
  updated_at timestamptz not null default now(),
  constraint spend_limit_settings_singleton_check check (id),
  constraint spend_limit_settings_daily_spend_cap_check check (daily_spend_cap >= 0),
  constraint spend_limit_settings_max_request_credits_check check (max_request_credits >= 1)
);
comment on table public.spend_limit_settings is 'One row: the default daily spend cap per user and the per-request maximum, in credits (null = no limit). The operator sets it with SQL; generate enforces it.';
comment on column public.spend_limit_settings.daily_spend_cap is 'Credits a user may commit to generations per UTC day unless an admin set another cap for them (null = no cap).';
comment on column public.spend_limit_settings.max_request_credits is 'The most one generation may cost (null = no maximum).';
insert into public.spend_limit_settings (id) values (true);

-- Per-user controls set by admins: suspension and a daily cap that overrides the default.
create table public.account_controls (
  user_id uuid primary key references public.profiles (user_id),
  suspended_at timestamptz,
  suspension_reason text,
  daily_spend_cap integer,
  updated_at timestamptz not null default now(),
  constraint account_controls_daily_spend_cap_check check (daily_spend_cap >= 0),
  constraint account_controls_suspension_reason_length_check check (char_length(suspension_reason) <= 500)
);
comment on table public.account_controls is 'Admin controls per user: suspension (reads only: no generate, draft claim or Stripe checkout) and a daily spend cap overriding spend_limit_settings. Written only by the admin functions.';

-- Append-only log of every admin action: who, what, when, why, before/after, idempotency key.
create table public.admin_audit_log (
  id bigint generated always as identity primary key,
  created_at timestamptz not null default now(),
  actor_role text not null,
  actor_user_id uuid,
  action text not null,
  target_user_id uuid,
  target_id text,
  reason text not null,
  idempotency_key text,
  request_fingerprint bytea,
  request jsonb not null default '{}'::jsonb,
  before jsonb,
  after jsonb,
  response jsonb,
  constraint admin_audit_log_actor_role_check check (actor_role in ('admin', 'service_role', 'database')),
  constraint admin_audit_log_actor_user_check check ((actor_role = 'admin') = (actor_user_id is not null)),
  constraint admin_audit_log_reason_length_check check (char_length(reason) between 1 and 500),
  constraint admin_audit_log_idempotency_key_length_check check (char_length(idempotency_key) <= 255)
);
comment on table public.admin_audit_log is 'Append-only record of every admin action: actor, action, target, reason, request, state before and after, the answer (replayed for the same idempotency key). No UPDATE, DELETE or TRUNCATE, by grants and by trigger.';
create unique index admin_audit_log_action_idempotency_key_idx on public.admin_audit_log (action, idempotency_key)
  where idempotency_key is not null;
create index admin_audit_log_target_user_id_id_idx on public.admin_audit_log (target_user_id, id desc);

-- Credits refunded from a job's capture, per source grant (caps refunds at what was captured).
create table public.job_refunds (
  id bigint generated always as identity primary key,
  job_id uuid not null references public.jobs (id),
  user_id uuid not null references public.profiles (user_id),
  source_grant_id uuid not null references public.credit_grants (id),
  amount integer not null,
  audit_id bigint not null references public.admin_audit_log (id),
  created_at timestamptz not null default now(),
  constraint job_refunds_amount_positive_check check (amount > 0)
);
comment on table public.job_refunds is 'Captured credits of a job given back by an admin, per grant they were captured from. The sum per job never exceeds the job''s capture.';
create index job_refunds_job_id_idx on public.job_refunds (job_id);
create index job_refunds_user_id_idx on public.job_refunds (user_id);

create or replace function app.forbid_audit_change()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  raise exception using errcode = '42501', message = 'The admin audit log is append-only.', hint = 'audit_log_immutable';
end;
$$;
comment on function app.forbid_audit_change() is 'Trigger: refuses UPDATE, DELETE and TRUNCATE on the admin audit log and on job refunds.';
create trigger admin_audit_log_forbid_update_delete
  before update or delete on public.admin_audit_log
  for each row execute function app.forbid_audit_change();
create trigger admin_audit_log_forbid_truncate
  before truncate on public.admin_audit_log
  for each statement execute function app.forbid_audit_change();
create trigger job_refunds_forbid_update_delete
  before update or delete on public.job_refunds
  for each row execute function app.forbid_audit_change();
create trigger job_refunds_forbid_truncate
  before truncate on public.job_refunds
  for each statement execute function app.forbid_audit_change();

alter table public.spend_limit_settings enable row level security;
alter table public.account_controls enable row level security;
alter table public.admin_audit_log enable row level security;
alter table public.job_refunds enable row level security;
revoke all on table public.spend_limit_settings, public.account_controls, public.admin_audit_log, public.job_refunds
  from public, anon, authenticated, service_role;
grant select on table public.spend_limit_settings to anon, authenticated, service_role;
grant select on table public.account_controls, public.admin_audit_log, public.job_refunds to authenticated, service_role;

create policy "Anyone can read the spend limits" on public.spend_limit_settings
  for select to anon, authenticated, service_role using (true);
create policy "Users can read their own account controls" on public.account_controls
  for select to authenticated using (user_id = (select auth.uid()));
create policy "Service role can read account controls" on public.account_controls
  for select to service_role using (true);
create policy "Admins can read the audit log" on public.admin_audit_log
  for select to authenticated using (((select auth.jwt()) -> 'app_metadata' ->> 'role') = 'admin');
create policy "Service role can read the audit log" on public.admin_audit_log
  for select to service_role using (true);
create policy "Users can read their own job refunds" on public.job_refunds
  for select to authenticated using (user_id = (select auth.uid()));
create policy "Service role can read job refunds" on public.job_refunds
  for select to service_role using (true);

-- 2. Who is an admin: a user whose JWT carries app_metadata.role = 'admin' (set by the team with
-- the Auth admin API; users cannot change app_metadata), or the service key. A direct database
-- session without JWT claims (the operator in psql, the tests' superuser) counts as 'database'.
create or replace function app.require_admin()
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_claims jsonb := auth.jwt();
  v_role text := auth.role();
begin
  if v_role = 'service_role' then
    return jsonb_build_object('role', 'service_role', 'user_id', null);
  end if;
  if v_role = 'authenticated' and auth.uid() is not null
     and jsonb_typeof(v_claims -> 'app_metadata') = 'object' and (v_claims -> 'app_metadata' ->> 'role') = 'admin' then
    return jsonb_build_object('role', 'admin', 'user_id', auth.uid());
  end if;
  if v_role is null and v_claims is null then
    return jsonb_build_object('role', 'database', 'user_id', null);
  end if;
  raise exception using errcode = '42501', message = 'This operation is reserved for admins.', hint = 'forbidden';
end;
$$;
comment on function app.require_admin() is 'Returns {"role": admin|service_role|database, "user_id"}; raises 42501 (hint forbidden) for anon and for users whose JWT lacks app_metadata.role = admin.';

create or replace function app.check_reason(p_reason text)
returns text
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_reason is null or pg_catalog.btrim(p_reason, E' \t\r\n') = '' or char_length(p_reason) > 500 then
    raise exception using errcode = '22023', message = 'reason is required (1 to 500 characters).',
      hint = 'invalid_request', detail = 'reason';
  end if;
  return p_reason;
end;
$$;
comment on function app.check_reason(text) is 'Raises 22023 invalid_request (detail reason) unless the reason is 1..500 characters and not blank.';

-- Idempotency of admin actions: one call per (action, key) at a time (a second one waits); the
-- same key again answers the stored response, with another request it is PT422.
create or replace function app.admin_replay(p_action text, p_key text, p_request jsonb)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_row public.admin_audit_log;
begin
  perform app.check_idempotency_key(p_key);
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('admin:' || p_action || ':' || p_key, 0));
  select * into v_row from public.admin_audit_log where action = p_action and idempotency_key = p_key;
  if not found then
    return null;
  end if;
  if v_row.request_fingerprint <> pg_catalog.sha256(pg_catalog.convert_to(p_request::text, 'UTF8')) then
    raise exception using errcode = 'PT422', message = 'This idempotency key was already used with a different request.',
      hint = 'idempotency_key_reused', detail = 'idempotency_key';
  end if;
  return v_row.response || jsonb_build_object('replayed', true);
end;
$$;
comment on function app.admin_replay(text, text, jsonb) is 'Serialises an admin action per (action, key); returns the stored response (replayed) or null; PT422 idempotency_key_reused for another request.';

create or replace function app.admin_record(
  p_actor jsonb, p_action text, p_key text, p_reason text, p_target_user_id uuid, p_target_id text,
  p_request jsonb, p_before jsonb, p_after jsonb, p_response jsonb)
returns bigint
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id bigint;
begin
  insert into public.admin_audit_log (created_at, actor_role, actor_user_id, action, target_user_id, target_id, reason,
                                      idempotency_key, request_fingerprint, request, before, after, response)
  values (app.now(), p_actor ->> 'role', (p_actor ->> 'user_id')::uuid, p_action, p_target_user_id, p_target_id, p_reason,
          p_key, case when p_key is null then null else pg_catalog.sha256(pg_catalog.convert_to(p_request::text, 'UTF8')) end,
          p_request, p_before, p_after, p_response)
  returning id into v_id;
  return v_id;
end;
$$;
comment on function app.admin_record(jsonb, text, text, text, uuid, text, jsonb, jsonb, jsonb, jsonb) is 'Appends one row to the admin audit log.';

-- The user an admin acts on: an existing profile (open or closed), holding its account lock in
-- shared mode like every user RPC (closing an account waits for it).
create or replace function app.admin_target(p_user_id uuid)
returns public.profiles
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_profile public.profiles;
begin
  if p_user_id is null then
    raise exception using errcode = '22023', message = 'user_id is required.', hint = 'invalid_request', detail = 'user_id';
  end if;
  perform pg_catalog.pg_advisory_xact_lock_shared(pg_catalog.hashtextextended('account:' || p_user_id::text, 0));
  select * into v_profile from public.profiles where user_id = p_user_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such user.', hint = 'not_found', detail = 'user_id';
  end if;
  return v_profile;
end;
$$;
comment on function app.admin_target(uuid) is 'Locks (shared) and returns the profile an admin acts on; PT404 not_found (detail user_id).';

-- 3. Suspension and spend limits, as generate, claim_draft and begin_purchase see them.
create or replace function app.refuse_suspended(p_user_id uuid)
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select 1 from public.account_controls where user_id = p_user_id and suspended_at is not null) then
    raise exception using errcode = 'PT403', message = 'This account is suspended: it can read but not generate, claim drafts or buy credits.',
      hint = 'account_suspended';
  end if;
end;
$$;
comment on function app.refuse_suspended(uuid) is 'Raises PT403 account_suspended when an admin suspended the account.';

create or replace function app.refuse_suspended_draft_claim()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  if old.claimed_by is null and new.claimed_by is not null then
    perform app.refuse_suspended(new.claimed_by);
  end if;
  return new;
end;
$$;
comment on function app.refuse_suspended_draft_claim() is 'Trigger on draft_prompts: a suspended account cannot claim a draft (claim_draft fails with account_suspended, nothing written).';
create trigger draft_prompts_refuse_suspended_claim
  before update of claimed_by on public.draft_prompts
  for each row execute function app.refuse_suspended_draft_claim();

create or replace function app.refuse_suspended_purchase()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  -- begin_purchase (a checkout the user starts) carries the user's idempotency key; a payment the
  -- provider already took (App Store transaction, fulfil without begin) does not and is still credited.
  if new.idempotency_key is not null then
    perform app.refuse_suspended(new.user_id);
  end if;
  return new;
end;
$$;
comment on function app.refuse_suspended_purchase() is 'Trigger on purchases: a suspended account cannot start a checkout (begin_purchase fails with account_suspended); payments already taken are still credited.';
create trigger purchases_refuse_suspended_checkout
  before insert on public.purchases
  for each row execute function app.refuse_suspended_purchase();

-- The UTC day's spend: what the user's jobs created that day hold or captured.
create or replace function app.spent_today(p_user_id uuid, p_now timestamptz)
returns integer
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_day timestamptz := pg_catalog.date_trunc('day', p_now at time zone 'UTC') at time zone 'UTC';
  v_spent integer;
begin
  select coalesce(sum(case when status in ('READY', 'FAILED', 'CANCELED') then coalesce(credits_final, 0)
                           else credits_reserved end), 0)::integer
    into v_spent
    from public.jobs
   where user_id = p_user_id and created_at >= v_day and created_at < v_day + interval '1 day';
  return v_spent;
end;
$$;
comment on function app.spent_today(uuid, timestamptz) is 'Credits the user committed to generations this UTC day: held by running jobs, captured by finished ones.';

create or replace function app.effective_daily_cap(p_user_id uuid)
returns integer
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_cap integer;
begin
  select c.daily_spend_cap into v_cap from public.account_controls c where c.user_id = p_user_id;
  if v_cap is null then
    select s.daily_spend_cap into v_cap from public.spend_limit_settings s where s.id;
  end if;
  return v_cap;
end;
$$;
comment on function app.effective_daily_cap(uuid) is 'The user''s daily spend cap: the admin''s override, else the default (null = none).';

create or replace function app.check_spend_limits(p_user_id uuid, p_price integer, p_now timestamptz)
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_max integer;
  v_cap integer := app.effective_daily_cap(p_user_id);
  v_spent integer;
  v_resets timestamptz := (pg_catalog.date_trunc('day', p_now at time zone 'UTC') + interval '1 day') at time zone 'UTC';
begin
  select s.max_request_credits into v_max from public.spend_limit_settings s where s.id;
  if v_max is not null and p_price > v_max then
    raise exception using errcode = 'PT422', message = 'This generation costs more than one request may (' || v_max || ' credits).',
      hint = 'request_over_limit', detail = jsonb_build_object('max_request_credits', v_max, 'required', p_price)::text;
  end if;
  if v_cap is not null then
    v_spent := app.spent_today(p_user_id, p_now);
    if v_spent + p_price > v_cap then
      raise exception using errcode = 'PT429', message = 'The daily spend cap is reached; it resets at ' || pg_catalog.to_char(v_resets at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '.',
        hint = 'daily_spend_cap_reached',
        detail = jsonb_build_object('daily_spend_cap', v_cap, 'spent_today', v_spent, 'required', p_price,
                                    'resets_at', pg_catalog.to_char(v_resets at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))::text;
    end if;
  end if;
end;
$$;
comment on function app.check_spend_limits(uuid, integer, timestamptz) is 'Raises PT422 request_over_limit over the per-request maximum and PT429 daily_spend_cap_reached (detail: cap, spent_today, required, resets_at = next UTC midnight).';

-- 4. Helpers of the admin RPCs.
create or replace function app.grant_json(p public.credit_grants)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p.id is null then
    return null;
  end if;
  return jsonb_build_object('id', p.id, 'source', p.source, 'kind', p.kind, 'amount', p.amount, 'remaining', p.remaining,
    'expires_at', p.expires_at, 'expired_at', p.expired_at, 'purchase_id', p.purchase_id, 'description', p.description,
    'created_at', p.created_at);
end;
$$;
comment on function app.grant_json(public.credit_grants) is 'A grant as the admin API shows it.';

create or replace function app.controls_json(p_user_id uuid)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v public.account_controls;
begin
  select * into v from public.account_controls where user_id = p_user_id;
  return jsonb_build_object('suspended', v.suspended_at is not null, 'suspended_at', v.suspended_at,
    'suspension_reason', v.suspension_reason, 'daily_spend_cap', v.daily_spend_cap,
    'effective_daily_spend_cap', app.effective_daily_cap(p_user_id), 'spent_today', app.spent_today(p_user_id, app.now()));
end;
$$;
comment on function app.controls_json(uuid) is 'A user''s suspension and spend cap as the admin API shows them.';

-- A grant made by an admin (promotion, adjustment, job refund): like app.add_grant (new credits
-- repay debt first), with the job and idempotency key on its ledger row.
create or replace function app.admin_add_grant(
  p_user_id uuid, p_source text, p_kind text, p_amount integer, p_expires_at timestamptz, p_ledger_type text,
  p_job_id uuid, p_key text, p_description text)
returns uuid
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances := app.lock_balance(p_user_id);
  v_repay integer := least(v_balance.debt, p_amount);
  v_grant_id uuid;
begin
  insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, description, created_at)
  values (p_user_id, p_source, p_kind, p_amount, p_amount - v_repay, p_expires_at, p_description, pg_catalog.now())
  returning id into v_grant_id;
  perform app.post_ledger_entry(p_user_id, p_ledger_type, p_amount - v_repay, 0, -v_repay,
    p_grant_id => v_grant_id, p_job_id => p_job_id, p_idempotency_key => p_key,
    p_description => case when v_repay > 0 then p_description || ' (' || v_repay || ' repaid debt)' else p_description end);
  return v_grant_id;
end;
$$;
comment on function app.admin_add_grant(uuid, text, text, integer, timestamptz, text, uuid, text, text) is 'Adds an admin grant (repaying debt first), its ledger row naming the job and idempotency key.';

-- 5. The admin RPCs. Each checks the caller (app.require_admin) first, then its input; a refused
-- or invalid call writes nothing. Each writes one audit row.

create or replace function public.admin_lookup_user(
  p_target_user_id uuid, p_reason text, p_ledger_before bigint default null, p_ledger_limit integer default 50)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_profile public.profiles;
  v_limit integer := least(coalesce(p_ledger_limit, 50), 100);
  v_user jsonb;
  v_ledger jsonb;
  v_count integer;
  v_result jsonb;
begin
  if v_limit < 1 then
    raise exception using errcode = '22023', message = 'ledger_limit must be 1 to 100.', hint = 'invalid_request', detail = 'ledger_limit';
  end if;
  v_profile := app.admin_target(p_target_user_id);
  select jsonb_build_object('id', v_profile.user_id, 'email', u.email, 'is_anonymous', coalesce(u.is_anonymous, false),
           'created_at', v_profile.created_at, 'deleted_at', v_profile.deleted_at)
    into v_user
    from (select 1) one left join auth.users u on u.id = v_profile.user_id;
  select coalesce(jsonb_agg(to_jsonb(e) order by e.id desc), '[]'::jsonb), count(*)
    into v_ledger, v_count
    from (
      select l.id, l.type, l.delta_available, l.delta_held, l.delta_debt,
             l.balance_available_after, l.balance_held_after, l.balance_debt_after,
             l.grant_id, l.hold_id, l.job_id, l.purchase_id, l.idempotency_key, l.description, l.created_at
        from public.credit_ledger l
       where l.user_id = v_profile.user_id and (p_ledger_before is null or l.id < p_ledger_before)
       order by l.id desc
       limit v_limit + 1
    ) e;
  if v_count > v_limit then
    v_ledger := v_ledger - v_limit;
  end if;
  v_result := jsonb_build_object(
    'user', v_user || app.controls_json(v_profile.user_id),
    'balance', app.balance_json(v_profile.user_id),
    'grants', (select coalesce(jsonb_agg(app.grant_json(g) order by g.created_at desc, g.id), '[]'::jsonb)
                 from (select * from public.credit_grants where user_id = v_profile.user_id
                        order by created_at desc, id limit 200) g),
    'holds', (select coalesce(jsonb_agg(jsonb_build_object('id', h.id, 'job_id', h.job_id, 'amount', h.amount,
                                'captured', h.captured, 'status', h.status, 'expires_at', h.expires_at,
                                'created_at', h.created_at, 'settled_at', h.settled_at) order by h.created_at desc, h.id), '[]'::jsonb)
                from (select * from public.credit_holds where user_id = v_profile.user_id
                       order by (status = 'active') desc, created_at desc, id limit 100) h),
    'ledger', jsonb_build_object('items', v_ledger,
                                 'next_before', case when v_count > v_limit then (v_ledger -> (v_limit - 1) ->> 'id')::bigint end),
    'purchases', (select coalesce(jsonb_agg(app.purchase_json(p) order by p.created_at desc, p.id), '[]'::jsonb)
                    from (select * from public.purchases where user_id = v_profile.user_id
                           order by created_at desc, id limit 100) p),
    'jobs', (select coalesce(jsonb_agg(app.job_json(j.id) || jsonb_build_object('refunded',
                               (select coalesce(sum(r.amount), 0) from public.job_refunds r where r.job_id = j.id))
                             order by j.created_at desc, j.id), '[]'::jsonb)
               from (select id, created_at from public.jobs where user_id = v_profile.user_id
                      order by created_at desc, id limit 50) j));
  perform app.admin_record(v_actor, 'lookup_user', null, v_reason, v_profile.user_id, null,
    jsonb_build_object('user_id', v_profile.user_id, 'ledger_before', p_ledger_before, 'ledger_limit', v_limit), null, null, null);
  return v_result;
end;
$$;
comment on function public.admin_lookup_user(uuid, text, bigint, integer) is 'Admin: a user''s profile, suspension and spend cap, balance, grants (200 newest), holds, one ledger page (ledger_before, ledger_limit 1..100), purchases (100 newest), jobs (50 newest, with refunded credits). Audited (lookup_user). Errors: 42501 forbidden, 22023 invalid_request (reason, ledger_limit), PT404 not_found (user_id).';

create or replace function public.admin_grant_credits(
  p_idempotency_key text, p_target_user_id uuid, p_amount integer, p_expires_at timestamptz, p_reason text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_request jsonb := jsonb_build_object('user_id', p_target_user_id, 'amount', p_amount, 'expires_at', p_expires_at, 'reason', p_reason);
  v_replay jsonb := app.admin_replay('grant_credits', p_idempotency_key, v_request);
  v_profile public.profiles;
  v_before jsonb;
  v_grant_id uuid;
  v_grant public.credit_grants;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  if p_amount is null or p_amount not between 1 and 1000000 then
    raise exception using errcode = '22023', message = 'amount must be 1 to 1000000.', hint = 'invalid_request', detail = 'amount';
  end if;
  if p_expires_at is not null and p_expires_at <= app.now() then
    raise exception using errcode = '22023', message = 'expires_at must be in the future.', hint = 'invalid_request', detail = 'expires_at';
  end if;
  v_profile := app.admin_target(p_target_user_id);
  perform app.lock_balance(v_profile.user_id);
  perform app.expire_due_grants(v_profile.user_id);
  v_before := app.balance_json(v_profile.user_id);
  v_grant_id := app.admin_add_grant(v_profile.user_id, 'promotion', 'promotional', p_amount, p_expires_at, 'grant', null,
                                    p_idempotency_key, left('Promotional credits: ' || v_reason, 500));
  select * into v_grant from public.credit_grants where id = v_grant_id;
  v_response := jsonb_build_object('grant', app.grant_json(v_grant), 'balance', app.balance_json(v_profile.user_id));
  perform app.admin_record(v_actor, 'grant_credits', p_idempotency_key, v_reason, v_profile.user_id, v_grant.id::text,
    v_request, jsonb_build_object('balance', v_before), v_response, v_response);
  return v_response || jsonb_build_object('replayed', false);
end;
$$;
comment on function public.admin_grant_credits(text, uuid, integer, timestamptz, text) is 'Admin: grants promotional credits (amount 1..1000000, optional future expiry; repays debt first). Idempotent per key; audited (grant_credits). {"grant", "balance", "replayed"}. Errors: 42501 forbidden, 22023 invalid_request (reason, idempotency_key, amount, expires_at), PT404 not_found, PT403 account_closed, PT422 idempotency_key_reused.';

create or replace function public.admin_adjust_credits(
  p_idempotency_key text, p_target_user_id uuid, p_amount integer, p_reason text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_request jsonb := jsonb_build_object('user_id', p_target_user_id, 'amount', p_amount, 'reason', p_reason);
  v_replay jsonb := app.admin_replay('adjust_credits', p_idempotency_key, v_request);
  v_profile public.profiles;
  v_balance public.credit_balances;
  v_before jsonb;
  v_grant_id uuid;
  v_grant public.credit_grants;
  v_left integer;
  v_take integer;
  v_row record;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  if p_amount is null or p_amount = 0 or p_amount not between -1000000 and 1000000 then
    raise exception using errcode = '22023', message = 'amount must be a non-zero whole number from -1000000 to 1000000.',
      hint = 'invalid_request', detail = 'amount';
  end if;
  v_profile := app.admin_target(p_target_user_id);
  -- A refusal is decided before the balance lock too (and again under it), so it holds no lock.
  if p_amount < 0 and (app.balance_json(v_profile.user_id) ->> 'available')::integer < -p_amount then
    raise exception using errcode = 'PT402', message = 'The adjustment takes more than the user has available.',
      hint = 'insufficient_credits',
      detail = jsonb_build_object('required', -p_amount, 'available', (app.balance_json(v_profile.user_id) ->> 'available')::integer)::text;
  end if;
  perform app.lock_balance(v_profile.user_id);
  perform app.expire_due_grants(v_profile.user_id);
  v_before := app.balance_json(v_profile.user_id);
  if p_amount > 0 then
    -- A correction in the user's favour: paid, never-expiring credits (repaying debt first).
    v_grant_id := app.admin_add_grant(v_profile.user_id, 'adjustment', 'paid', p_amount, null, 'adjustment', null,
                                      p_idempotency_key, left('Adjustment: ' || v_reason, 500));
    select * into v_grant from public.credit_grants where id = v_grant_id;
  else
    -- Against the user: from available credits in draw-down order, never into debt (debt is what a
    -- payment's take-back could not find; an admin takes at most what is available).
    select * into v_balance from public.credit_balances where user_id = v_profile.user_id;
    if v_balance.available < -p_amount then
      raise exception using errcode = 'PT402', message = 'The adjustment takes more than the user has available.',
        hint = 'insufficient_credits', detail = jsonb_build_object('required', -p_amount, 'available', v_balance.available)::text;
    end if;
    v_left := -p_amount;
    for v_row in
      select id, remaining from public.credit_grants
       where user_id = v_profile.user_id and remaining > 0 and (expires_at is null or expires_at > app.now())
       order by expires_at asc nulls last, (kind = 'paid') asc, created_at asc, id asc
       for update
    loop
      exit when v_left = 0;
      v_take := least(v_left, v_row.remaining);
      update public.credit_grants set remaining = remaining - v_take where id = v_row.id;
      v_left := v_left - v_take;
    end loop;
    perform app.post_ledger_entry(v_profile.user_id, 'adjustment', p_amount, 0, 0,
      p_idempotency_key => p_idempotency_key, p_description => left('Adjustment: ' || v_reason, 500));
  end if;
  v_response := jsonb_build_object('amount', p_amount, 'grant', app.grant_json(v_grant), 'balance', app.balance_json(v_profile.user_id));
  perform app.admin_record(v_actor, 'adjust_credits', p_idempotency_key, v_reason, v_profile.user_id, v_grant.id::text,
    v_request, jsonb_build_object('balance', v_before), v_response, v_response);
  return v_response || jsonb_build_object('replayed', false);
end;
$$;
comment on function public.admin_adjust_credits(text, uuid, integer, text) is 'Admin: a signed adjustment. Positive: an adjustment grant (paid, never expires; repays debt first). Negative: taken from available credits in draw-down order, never more than available (PT402 insufficient_credits). Idempotent per key; audited (adjust_credits). {"amount", "grant", "balance", "replayed"}.';

create or replace function public.admin_void_grant(p_idempotency_key text, p_grant_id uuid, p_reason text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_request jsonb := jsonb_build_object('grant_id', p_grant_id, 'reason', p_reason);
  v_replay jsonb := app.admin_replay('void_grant', p_idempotency_key, v_request);
  v_grant public.credit_grants;
  v_before jsonb;
  v_voided integer;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  if p_grant_id is null then
    raise exception using errcode = '22023', message = 'grant_id is required.', hint = 'invalid_request', detail = 'grant_id';
  end if;
  select * into v_grant from public.credit_grants where id = p_grant_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such grant.', hint = 'not_found', detail = 'grant_id';
  end if;
  if v_grant.source = 'purchase' then
    raise exception using errcode = '22023', message = 'A purchase''s credits are taken back only by its refund or dispute.',
      hint = 'invalid_request', detail = 'grant_id';
  end if;
  perform app.admin_target(v_grant.user_id);
  perform app.lock_balance(v_grant.user_id);
  perform app.expire_due_grants(v_grant.user_id);
  select * into v_grant from public.credit_grants where id = p_grant_id for update;
  v_before := jsonb_build_object('grant', app.grant_json(v_grant), 'balance', app.balance_json(v_grant.user_id));
  v_voided := v_grant.remaining;
  -- The grant ends now: what remains is voided, and credits of it still held by a job expire as
  -- soon as they come back (settling a hold expires returned credits of an expired grant).
  update public.credit_grants
     set remaining = 0, expires_at = least(coalesce(expires_at, app.now()), app.now()),
         expired_at = coalesce(expired_at, app.now())
   where id = p_grant_id
  returning * into v_grant;
  if v_voided > 0 then
    perform app.post_ledger_entry(v_grant.user_id, 'adjustment', -v_voided, 0, 0, p_grant_id => v_grant.id,
      p_idempotency_key => p_idempotency_key, p_description => left('Grant voided: ' || v_reason, 500));
  end if;
  v_response := jsonb_build_object('grant', app.grant_json(v_grant), 'voided', v_voided, 'balance', app.balance_json(v_grant.user_id));
  perform app.admin_record(v_actor, 'void_grant', p_idempotency_key, v_reason, v_grant.user_id, v_grant.id::text,
    v_request, v_before, v_response, v_response);
  return v_response || jsonb_build_object('replayed', false);
end;
$$;
comment on function public.admin_void_grant(text, uuid, text) is 'Admin: voids what remains of one grant (not a purchase''s) and ends it now, so its credits held by a job expire when they come back. Idempotent per key; audited (void_grant). {"grant", "voided", "balance", "replayed"}. Errors: 22023 invalid_request (grant_id for a purchase grant), PT404 not_found (grant_id).';

create or replace function public.admin_refund_job(
  p_idempotency_key text, p_job_id uuid, p_reason text, p_amount integer default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_request jsonb := jsonb_build_object('job_id', p_job_id, 'amount', p_amount, 'reason', p_reason);
  v_replay jsonb := app.admin_replay('refund_job', p_idempotency_key, v_request);
  v_job public.jobs;
  v_captured integer;
  v_refunded integer;
  v_refundable integer;
  v_amount integer;
  v_left integer;
  v_take integer;
  v_portion record;
  v_pieces jsonb := '[]'::jsonb;
  v_grants jsonb := '[]'::jsonb;
  v_grant_id uuid;
  v_before jsonb;
  v_audit_id bigint;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  if p_job_id is null then
    raise exception using errcode = '22023', message = 'job_id is required.', hint = 'invalid_request', detail = 'job_id';
  end if;
  select * into v_job from public.jobs where id = p_job_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such job.', hint = 'not_found', detail = 'job_id';
  end if;
  -- Checked twice: first without any lock, so a refused refund never holds the job row (the
  -- pipeline's claim skips locked jobs); then again under the locks, which decide.
  for v_pass in 1..2 loop
    if v_pass = 2 then
      perform app.admin_target(v_job.user_id);
      -- Lock order: job, then the balance and grants.
      select * into v_job from public.jobs where id = p_job_id for update;
      perform app.lock_balance(v_job.user_id);
      perform app.expire_due_grants(v_job.user_id);
    end if;
    select coalesce(sum(a.captured), 0)::integer into v_captured
      from public.credit_hold_allocations a where a.hold_id = v_job.hold_id;
    select coalesce(sum(r.amount), 0)::integer into v_refunded from public.job_refunds r where r.job_id = v_job.id;
    -- Refundable: captured credits not yet refunded whose grant has not expired (expired ones would
    -- be worth nothing now).
    select coalesce(sum(greatest(p.captured - p.refunded, 0)), 0)::integer into v_refundable
      from (select a.grant_id, a.captured,
                   (select coalesce(sum(r.amount), 0) from public.job_refunds r where r.job_id = v_job.id and r.source_grant_id = a.grant_id) as refunded
              from public.credit_hold_allocations a join public.credit_grants g on g.id = a.grant_id
             where a.hold_id = v_job.hold_id and a.captured > 0 and (g.expires_at is null or g.expires_at > app.now())) p;
    if v_job.status not in ('READY', 'FAILED', 'CANCELED') or v_refundable = 0 then
      raise exception using errcode = 'PT409', message = 'This job has no captured credits left to refund.',
        hint = 'nothing_to_refund', detail = jsonb_build_object('captured', v_captured, 'refunded', v_refunded)::text;
    end if;
    if p_amount is not null and p_amount not between 1 and v_refundable then
      raise exception using errcode = '22023', message = 'amount must be 1 to ' || v_refundable || ' (captured and not yet refunded).',
        hint = 'invalid_request', detail = 'amount';
    end if;
  end loop;
  v_before := jsonb_build_object('balance', app.balance_json(v_job.user_id));
  v_amount := coalesce(p_amount, v_refundable);
  v_audit_id := nextval(pg_catalog.pg_get_serial_sequence('public.admin_audit_log', 'id'));
  v_left := v_amount;
  -- Most durable first (the repayment order): each piece comes back as a grant of its category
  -- and expiry, so promotional credits never become paid or longer-lived ones.
  for v_portion in
    select a.grant_id, g.kind, g.expires_at,
           a.captured - (select coalesce(sum(r.amount), 0) from public.job_refunds r where r.job_id = v_job.id and r.source_grant_id = a.grant_id)::integer as left_over
      from public.credit_hold_allocations a join public.credit_grants g on g.id = a.grant_id
     where a.hold_id = v_job.hold_id and a.captured > 0 and (g.expires_at is null or g.expires_at > app.now())
     order by g.expires_at desc nulls first, (g.kind = 'paid') desc, g.created_at desc, g.id desc
  loop
    exit when v_left = 0;
    continue when v_portion.left_over <= 0;
    v_take := least(v_left, v_portion.left_over);
    v_grant_id := app.admin_add_grant(v_job.user_id, 'adjustment', v_portion.kind, v_take, v_portion.expires_at, 'adjustment',
      v_job.id, p_idempotency_key, left('Refund of job ' || v_job.id::text || ': ' || v_reason, 500));
    v_pieces := v_pieces || jsonb_build_array(jsonb_build_object('source_grant_id', v_portion.grant_id, 'amount', v_take));
    select v_grants || jsonb_build_array(app.grant_json(g)) into v_grants from public.credit_grants g where g.id = v_grant_id;
    v_left := v_left - v_take;
  end loop;
  v_response := jsonb_build_object('job_id', v_job.id, 'refunded', v_amount, 'refunded_total', v_refunded + v_amount,
    'captured', v_captured, 'refundable_left', v_refundable - v_amount, 'grants', v_grants,
    'balance', app.balance_json(v_job.user_id));
  insert into public.admin_audit_log (id, created_at, actor_role, actor_user_id, action, target_user_id, target_id, reason,
                                      idempotency_key, request_fingerprint, request, before, after, response)
  overriding system value
  values (v_audit_id, app.now(), v_actor ->> 'role', (v_actor ->> 'user_id')::uuid, 'refund_job', v_job.user_id, v_job.id::text,
          v_reason, p_idempotency_key, pg_catalog.sha256(pg_catalog.convert_to(v_request::text, 'UTF8')), v_request, v_before,
          v_response, v_response);
  insert into public.job_refunds (job_id, user_id, source_grant_id, amount, audit_id, created_at)
  select v_job.id, v_job.user_id, (p ->> 'source_grant_id')::uuid, (p ->> 'amount')::integer, v_audit_id, app.now()
    from jsonb_array_elements(v_pieces) p;
  return v_response || jsonb_build_object('replayed', false);
end;
$$;
comment on function public.admin_refund_job(text, uuid, text, integer) is 'Admin: gives back a finished job''s captured credits, all (amount null) or part; refunds per job never exceed the capture. Each piece returns as an adjustment grant of the category and expiry of the grant it was captured from (credits of grants expired since are not refundable). Idempotent per key; audited (refund_job). {"job_id", "refunded", "refunded_total", "captured", "refundable_left", "grants", "balance", "replayed"}. Errors: PT404 not_found (job_id), PT409 nothing_to_refund, 22023 invalid_request (amount).';

create or replace function public.admin_set_suspension(
  p_idempotency_key text, p_target_user_id uuid, p_suspended boolean, p_reason text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_request jsonb := jsonb_build_object('user_id', p_target_user_id, 'suspended', p_suspended, 'reason', p_reason);
  v_replay jsonb := app.admin_replay('set_suspension', p_idempotency_key, v_request);
  v_profile public.profiles;
  v_before jsonb;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  if p_suspended is null then
    raise exception using errcode = '22023', message = 'suspended must be true or false.', hint = 'invalid_request', detail = 'suspended';
  end if;
  v_profile := app.admin_target(p_target_user_id);
  perform app.lock_balance(v_profile.user_id);
  v_before := app.controls_json(v_profile.user_id);
  insert into public.account_controls as c (user_id, suspended_at, suspension_reason, updated_at)
  values (v_profile.user_id, case when p_suspended then app.now() end, case when p_suspended then v_reason end, pg_catalog.now())
  on conflict (user_id) do update
     set suspended_at = case when p_suspended then coalesce(c.suspended_at, app.now()) end,
         suspension_reason = case when p_suspended then excluded.suspension_reason end,
         updated_at = pg_catalog.now();
  v_response := jsonb_build_object('user_id', v_profile.user_id) || app.controls_json(v_profile.user_id);
  perform app.admin_record(v_actor, case when p_suspended then 'suspend_user' else 'unsuspend_user' end, p_idempotency_key,
    v_reason, v_profile.user_id, null, v_request, v_before, v_response, v_response);
  return v_response || jsonb_build_object('replayed', false);
end;
$$;
comment on function public.admin_set_suspension(text, uuid, boolean, text) is 'Admin: suspends (true) or unsuspends (false) a user. A suspended user reads but cannot generate, claim drafts or start a checkout (PT403 account_suspended). Idempotent per key; audited (suspend_user / unsuspend_user). {"user_id", "suspended", "suspended_at", "suspension_reason", "daily_spend_cap", "effective_daily_spend_cap", "spent_today", "replayed"}.';

create or replace function public.admin_set_spend_cap(
  p_idempotency_key text, p_target_user_id uuid, p_daily_spend_cap integer, p_reason text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_request jsonb := jsonb_build_object('user_id', p_target_user_id, 'daily_spend_cap', p_daily_spend_cap, 'reason', p_reason);
  v_replay jsonb := app.admin_replay('set_spend_cap', p_idempotency_key, v_request);
  v_profile public.profiles;
  v_before jsonb;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  if p_daily_spend_cap is not null and p_daily_spend_cap not between 0 and 100000000 then
    raise exception using errcode = '22023', message = 'daily_spend_cap must be 0 to 100000000, or null for the default.',
      hint = 'invalid_request', detail = 'daily_spend_cap';
  end if;
  v_profile := app.admin_target(p_target_user_id);
  perform app.lock_balance(v_profile.user_id);
  v_before := app.controls_json(v_profile.user_id);
  insert into public.account_controls (user_id, daily_spend_cap, updated_at)
  values (v_profile.user_id, p_daily_spend_cap, pg_catalog.now())
  on conflict (user_id) do update set daily_spend_cap = excluded.daily_spend_cap, updated_at = pg_catalog.now();
  v_response := jsonb_build_object('user_id', v_profile.user_id) || app.controls_json(v_profile.user_id);
  perform app.admin_record(v_actor, 'set_spend_cap', p_idempotency_key, v_reason, v_profile.user_id, null,
    v_request, v_before, v_response, v_response);
  return v_response || jsonb_build_object('replayed', false);
end;
$$;
comment on function public.admin_set_spend_cap(text, uuid, integer, text) is 'Admin: sets a user''s daily spend cap (0..100000000 credits), or null to use the default of spend_limit_settings. Idempotent per key; audited (set_spend_cap).';

create or replace function public.admin_export_ledger(
  p_target_user_id uuid, p_reason text, p_after bigint default null, p_limit integer default 1000)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_actor jsonb := app.require_admin();
  v_reason text := app.check_reason(p_reason);
  v_profile public.profiles;
  v_limit integer := coalesce(p_limit, 1000);
  v_items jsonb;
  v_count integer;
begin
  if v_limit not between 1 and 1000 then
    raise exception using errcode = '22023', message = 'limit must be 1 to 1000.', hint = 'invalid_request', detail = 'limit';
  end if;
  v_profile := app.admin_target(p_target_user_id);
  select coalesce(jsonb_agg(to_jsonb(e) order by e.id), '[]'::jsonb), count(*)
    into v_items, v_count
    from (
      select l.id, l.created_at, l.type, l.delta_available, l.delta_held, l.delta_debt,
             l.balance_available_after, l.balance_held_after, l.balance_debt_after,
             l.grant_id, l.hold_id, l.job_id, l.purchase_id, l.idempotency_key, l.description
        from public.credit_ledger l
       where l.user_id = v_profile.user_id and (p_after is null or l.id > p_after)
       order by l.id
       limit v_limit + 1
    ) e;
  if v_count > v_limit then
    v_items := v_items - v_limit;
  end if;
  -- One audit row per export (its first page).
  if p_after is null then
    perform app.admin_record(v_actor, 'export_ledger', null, v_reason, v_profile.user_id, null,
      jsonb_build_object('user_id', v_profile.user_id), null, null, null);
  end if;
  return jsonb_build_object('items', v_items,
    'next_after', case when v_count > v_limit then (v_items -> (v_limit - 1) ->> 'id')::bigint end);
end;
$$;
comment on function public.admin_export_ledger(uuid, text, bigint, integer) is 'Admin: a user''s ledger oldest first, for the CSV export: {"items", "next_after": id|null}; p_limit 1..1000. The first page (p_after null) is audited (export_ledger).';

create or replace function public.admin_list_audit(
  p_before bigint default null, p_limit integer default 50, p_target_user_id uuid default null)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_limit integer := coalesce(p_limit, 50);
  v_items jsonb;
  v_count integer;
begin
  perform app.require_admin();
  if v_limit not between 1 and 100 then
    raise exception using errcode = '22023', message = 'limit must be 1 to 100.', hint = 'invalid_request', detail = 'limit';
  end if;
  select coalesce(jsonb_agg(to_jsonb(e) order by e.id desc), '[]'::jsonb), count(*)
    into v_items, v_count
    from (
      select a.id, a.created_at, a.actor_role, a.actor_user_id, a.action, a.target_user_id, a.target_id, a.reason,
             a.idempotency_key, a.request, a.before, a.after
        from public.admin_audit_log a
       where (p_before is null or a.id < p_before) and (p_target_user_id is null or a.target_user_id = p_target_user_id)
       order by a.id desc
       limit v_limit + 1
    ) e;
  if v_count > v_limit then
    v_items := v_items - v_limit;
  end if;
  return jsonb_build_object('items', v_items,
    'next_before', case when v_count > v_limit then (v_items -> (v_limit - 1) ->> 'id')::bigint end);
end;
$$;
comment on function public.admin_list_audit(bigint, integer, uuid) is 'Admin: the audit log, newest first, optionally for one user: {"items": [{id, created_at, actor_role, actor_user_id, action, target_user_id, target_id, reason, idempotency_key, request, before, after}], "next_before"}; p_limit 1..100.';

-- 6. Privileges: helpers for no API role; admin RPCs for authenticated (checked in the body: only
-- admins) and service_role, never anon.
revoke all on function
  app.forbid_audit_change(), app.require_admin(), app.check_reason(text), app.admin_replay(text, text, jsonb),
  app.admin_record(jsonb, text, text, text, uuid, text, jsonb, jsonb, jsonb, jsonb), app.admin_target(uuid),
  app.refuse_suspended(uuid), app.refuse_suspended_draft_claim(), app.refuse_suspended_purchase(),
  app.spent_today(uuid, timestamptz), app.effective_daily_cap(uuid), app.check_spend_limits(uuid, integer, timestamptz),
  app.grant_json(public.credit_grants), app.controls_json(uuid),
  app.admin_add_grant(uuid, text, text, integer, timestamptz, text, uuid, text, text)
  from public, anon, authenticated, service_role;
revoke all on function
  public.admin_lookup_user(uuid, text, bigint, integer), public.admin_grant_credits(text, uuid, integer, timestamptz, text),
  public.admin_adjust_credits(text, uuid, integer, text), public.admin_void_grant(text, uuid, text),
  public.admin_refund_job(text, uuid, text, integer), public.admin_set_suspension(text, uuid, boolean, text),
  public.admin_set_spend_cap(text, uuid, integer, text), public.admin_export_ledger(uuid, text, bigint, integer),
  public.admin_list_audit(bigint, integer, uuid)
  from public, anon, authenticated, service_role;
grant execute on function
  public.admin_lookup_user(uuid, text, bigint, integer), public.admin_grant_credits(text, uuid, integer, timestamptz, text),
  public.admin_adjust_credits(text, uuid, integer, text), public.admin_void_grant(text, uuid, text),
  public.admin_refund_job(text, uuid, text, integer), public.admin_set_suspension(text, uuid, boolean, text),
  public.admin_set_spend_cap(text, uuid, integer, text), public.admin_export_ledger(uuid, text, bigint, integer),
  public.admin_list_audit(bigint, integer, uuid)
  to authenticated, service_role;

-- 7. generate: refuses a suspended account; enforces the per-request maximum and the daily cap
-- under the balance lock, in the transaction that makes the hold.
create or replace function public.generate(p_idempotency_key text, p_request jsonb)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_now timestamptz;
  v_fingerprint bytea;
  v_record public.idempotency_keys;
  v_field text;
  v_model public.models;
  v_prompt text;
  v_draft_id uuid;
  v_project_id uuid;
  v_project public.projects;
  v_niche text;
  v_title text;
  v_voice text;
  v_mode text;
  v_settings jsonb;
  v_minutes integer;
  v_price integer;
  v_balance public.credit_balances;
  v_job_id uuid := gen_random_uuid();
  v_hold_id uuid;
  v_response jsonb;
begin
  -- Issue 13: a suspended account reads but does not generate.
  perform app.refuse_suspended(v_user_id);
  perform app.check_idempotency_key(p_idempotency_key);
  if p_request is null or jsonb_typeof(p_request) <> 'object' or octet_length(p_request::text) > 16384 then
    raise exception using errcode = '22023', message = 'The request must be a JSON object of at most 16 KB.',
      hint = 'invalid_request', detail = 'request';
  end if;

  -- 1. Idempotency: one call per (user, key) at a time; replay or refuse what was seen before.
  if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended(v_user_id::text || ':generate:' || p_idempotency_key, 0)) then
    raise exception using errcode = 'PT409', message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end if;
  v_now := app.now();
  v_fingerprint := pg_catalog.sha256(pg_catalog.convert_to(p_request::text, 'UTF8'));
  select * into v_record from public.idempotency_keys
   where user_id = v_user_id and operation = 'generate' and key = p_idempotency_key;
  if found and v_record.expires_at <= v_now then
    delete from public.idempotency_keys where id = v_record.id;
  elsif found then
    if v_record.request_fingerprint <> v_fingerprint then
      raise exception using errcode = 'PT422', message = 'This idempotency key was already used with a different request.',
        hint = 'idempotency_key_reused', detail = 'idempotency_key';
    end if;
    if v_record.state = 'done' then
      return jsonb_build_object('replayed', true, 'response', v_record.response);
    end if;
    raise exception using errcode = 'PT409', message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end if;
  begin
    insert into public.idempotency_keys (user_id, operation, key, request_fingerprint, expires_at)
    values (v_user_id, 'generate', p_idempotency_key, v_fingerprint, v_now + interval '24 hours');
  exception when unique_violation then
    raise exception using errcode = 'PT409', message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end;

  -- 2. Validate the request before touching any credit.
  select k into v_field from jsonb_object_keys(p_request) k
   where k not in ('model_id', 'prompt', 'draft_id', 'project_id', 'niche_preset', 'target_minutes',
                   'title', 'voice', 'transcript_mode', 'settings')
   order by k limit 1;
  if v_field is not null then
    raise exception using errcode = '22023', message = 'Unknown field ' || left(v_field, 100) || '.',
      hint = 'invalid_request', detail = left(v_field, 100);
  end if;
  if jsonb_typeof(p_request -> 'model_id') is distinct from 'string' then
    raise exception using errcode = '22023', message = 'model_id is required.', hint = 'invalid_request', detail = 'model_id';
  end if;
  select * into v_model from public.models where id = p_request ->> 'model_id' and available;
  if not found then
    raise exception using errcode = '22023', message = 'No such model, or it is not available.', hint = 'invalid_request', detail = 'model_id';
  end if;
  v_prompt := app.request_text(p_request, 'prompt', 4000);
  v_draft_id := app.request_uuid(p_request, 'draft_id');
  v_project_id := app.request_uuid(p_request, 'project_id');
  if (v_prompt is not null)::integer + (v_draft_id is not null)::integer + (v_project_id is not null)::integer <> 1 then
    raise exception using errcode = '22023', message = 'Give exactly one of prompt, draft_id or project_id.',
      hint = 'invalid_request', detail = 'prompt';
  end if;
  v_niche := app.request_text(p_request, 'niche_preset', 100);
  v_title := app.request_text(p_request, 'title', 200);
  v_voice := app.request_text(p_request, 'voice', 100);
  v_mode := app.request_text(p_request, 'transcript_mode', 20);
  if v_mode is not null and v_mode not in ('none', 'captions', 'burned_in') then
    raise exception using errcode = '22023', message = 'transcript_mode must be none, captions or burned_in.',
      hint = 'invalid_request', detail = 'transcript_mode';
  end if;
  v_settings := p_request -> 'settings';
  if v_settings is not null and jsonb_typeof(v_settings) <> 'object' then
    raise exception using errcode = '22023', message = 'settings must be a JSON object.', hint = 'invalid_request', detail = 'settings';
  end if;
  -- The stored size (projects_settings_object_check), which can be several times the text size.
  if v_settings is not null and pg_catalog.pg_column_size(v_settings) > 16384 then
    raise exception using errcode = '22023', message = 'settings must be at most 16 KB.', hint = 'invalid_request', detail = 'settings';
  end if;
  if p_request ? 'target_minutes' then
    if jsonb_typeof(p_request -> 'target_minutes') <> 'number' or (p_request ->> 'target_minutes') !~ '^[0-9]{1,4}$' then
      raise exception using errcode = '22023', message = 'target_minutes must be a whole number.',
        hint = 'invalid_request', detail = 'target_minutes';
    end if;
    v_minutes := (p_request ->> 'target_minutes')::integer;
  end if;

  if v_draft_id is not null then
    select p.* into v_project from public.draft_prompts d join public.projects p on p.id = d.project_id
     where d.id = v_draft_id and d.claimed_by = v_user_id and p.deleted_at is null;
    if not found then
      raise exception using errcode = 'PT404', message = 'No claimed draft with this id.', hint = 'draft_not_found', detail = 'draft_id';
    end if;
  elsif v_project_id is not null then
    select * into v_project from public.projects where id = v_project_id and user_id = v_user_id and deleted_at is null;
    if not found then
      raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
    end if;
  end if;
  v_minutes := coalesce(v_minutes, v_project.target_minutes, v_model.min_minutes);
  if v_minutes not between v_model.min_minutes and v_model.max_minutes then
    raise exception using errcode = '22023',
      message = 'target_minutes must be between ' || v_model.min_minutes || ' and ' || v_model.max_minutes || ' for this model.',
      hint = 'invalid_request', detail = 'target_minutes';
  end if;

  -- 3. Price from the catalog, then lock only the caller's balance row and check it.
  v_price := v_model.cost_per_generation + v_model.cost_per_minute * v_minutes;
  v_balance := app.lock_balance(v_user_id);
  if app.expire_due_grants(v_user_id) > 0 then
    select * into v_balance from public.credit_balances where user_id = v_user_id;
  end if;
  if v_balance.debt > 0 then
    raise exception using errcode = 'PT402', message = 'Your account owes credits; buy credits to continue.',
      hint = 'credits_in_debt', detail = jsonb_build_object('debt', v_balance.debt)::text;
  end if;
  if v_balance.available < v_price then
    raise exception using errcode = 'PT402', message = 'Not enough credits for this generation.',
      hint = 'insufficient_credits',
      detail = jsonb_build_object('required', v_price, 'available', v_balance.available)::text;
  end if;
  -- Issue 13: the per-request maximum and the daily cap, under the balance lock (serialised with
  -- every other generate of this user, so two concurrent requests cannot both pass the cap).
  perform app.check_spend_limits(v_user_id, v_price, v_now);

  -- 4. Project, job, hold, and the stored response, all in this transaction.
  if v_project.id is null then
    insert into public.projects (user_id, title, prompt, niche_preset, target_minutes, voice, transcript_mode, settings)
    values (v_user_id,
            coalesce(v_title, left(pg_catalog.regexp_replace(pg_catalog.btrim(v_prompt), '\s+', ' ', 'g'), 80)),
            v_prompt, v_niche, v_minutes, v_voice, coalesce(v_mode, 'captions'), coalesce(v_settings, '{}'::jsonb))
    returning * into v_project;
  end if;
  -- created_at is on the business clock: it orders the queue (claim_next_jobs takes the oldest first).
  insert into public.jobs (id, user_id, project_id, model_id, status, target_minutes, credits_reserved, idempotency_key, created_at)
  values (v_job_id, v_user_id, v_project.id, v_model.id, 'QUEUED', v_minutes, v_price, p_idempotency_key, v_now);
  v_hold_id := app.create_hold(v_user_id, v_price, v_now + interval '6 hours', v_job_id, p_idempotency_key);
  update public.jobs set hold_id = v_hold_id where id = v_job_id;

  v_response := jsonb_build_object('job', app.job_json(v_job_id), 'balance', app.balance_json(v_user_id));
  update public.idempotency_keys
     set state = 'done', response_status = 201, response = v_response
   where user_id = v_user_id and operation = 'generate' and key = p_idempotency_key;
  return jsonb_build_object('replayed', false, 'response', v_response);
end;
$$;

comment on function public.generate(text, jsonb) is 'Starts a generation for the caller: {"replayed", "response": {"job", "balance"}}. p_request: {"model_id", one of "prompt" | "draft_id" | "project_id", "target_minutes"?, "niche_preset"?, "title"?, "voice"?, "transcript_mode"?, "settings"?}. Errors: 22023 invalid_request (detail = field), PT402 insufficient_credits / credits_in_debt, PT403 account_suspended, PT404 draft_not_found / not_found, PT409 idempotency_in_flight, PT422 idempotency_key_reused / request_over_limit, PT429 daily_spend_cap_reached (detail resets_at).';
revoke all on function public.generate(text, jsonb) from public, anon, authenticated, service_role;
grant execute on function public.generate(text, jsonb) to authenticated;
