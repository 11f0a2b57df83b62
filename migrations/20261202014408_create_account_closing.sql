-- Close accounts: delete_account and `delete from auth.users` both end in one closed state (personal data deleted or anonymised, jobs canceled, holds released, ledger and payments kept), and a closed account can neither spend nor be granted credits.

-- Design (migrations/README.md, "Closing an account"):
--   * The account is the profile row. Every user reference of the bundle (balances, grants, holds,
--     ledger, purchases, payment take-backs, projects, jobs, steps, assets, idempotency records,
--     claimed drafts) now points at public.profiles (user_id) instead of auth.users, and profiles no
--     longer references auth.users. So deleting the auth.users row (Supabase dashboard, Auth admin
--     API, delete_account) is never blocked by a foreign key, and every financial row keeps a valid
--     user id: the profile stays as the closed account's tombstone (deleted_at set, personal fields
--     cleared).
--   * A BEFORE DELETE trigger on auth.users closes the account in the same transaction
--     (app.close_account), so the dashboard path ends in the same state as delete_account.
--   * Closing: every unfinished job CANCELED with nothing charged and its hold released (any other
--     active hold released too); assets deleted and their R2 keys queued in storage_deletions;
--     projects anonymised and soft-deleted; step texts, job messages, manifests and output urls
--     cleared; claimed drafts and idempotency records deleted; profile fields cleared. The ledger,
--     grants, balance, purchases, payment events and states stay as they are (the balance is not
--     forfeited: a later refund or dispute of a past payment still takes back what the rule says,
--     and reconcile() still holds).
--   * A closed account can neither spend nor be granted: every user RPC refuses it (app.require_user:
--     PT403 account_closed), credit_grants refuses any new welcome, purchase or promotion grant for
--     it, and a payment that arrives for it (fulfill_purchase) is recorded (payment_events, and in
--     closed_account_payments with refund_status refund_due) but grants nothing and creates no
--     purchase: the back office refunds it at the provider. Give-backs of past payments (a dispute
--     won) still return what a take-back took, as ledger adjustments.

-- 1. Every user reference points at the account (profiles), not at auth.users.
do $$
declare
  r record;
begin
  for r in
    select c.conname, c.conrelid::regclass as tbl, a.attname as col
      from pg_catalog.pg_constraint c
      join pg_catalog.pg_attribute a on a.attrelid = c.conrelid and a.attnum = c.conkey[1]
     where c.contype = 'f' and c.confrelid = 'auth.users'::regclass
       and c.connamespace = 'public'::regnamespace
     order by c.conrelid::regclass::text, c.conname
  loop
    execute pg_catalog.format('alter table %s drop constraint %I', r.tbl, r.conname);
    if r.tbl <> 'public.profiles'::regclass then
      execute pg_catalog.format('alter table %s add constraint %I foreign key (%I) references public.profiles (user_id)',
                                r.tbl, r.conname, r.col);
    end if;
  end loop;
end
$$;
comment on column public.profiles.user_id is 'The account id: the auth.users id while the user exists; kept after the auth user is deleted, as the closed account all financial rows refer to.';
comment on column public.profiles.deleted_at is 'When the account was closed (delete_account, or its auth.users row deleted); personal fields are cleared then.';
comment on table public.profiles is 'One profile per account: display settings and the Stripe customer. Created at sign-up; when the account is closed it stays as a tombstone (deleted_at set, personal fields cleared) that the ledger, purchases and jobs refer to.';
-- Serves app.require_user's closed-account check and reconcile-style scans of closed accounts.
create index profiles_deleted_at_idx on public.profiles (user_id) where deleted_at is not null;

-- A closed account's still-valid token cannot write personal data back into its profile.
drop policy "Users can update their own profile" on public.profiles;
create policy "Users can update their own open profile"
  on public.profiles for update to authenticated
  using ((select auth.uid()) = user_id and deleted_at is null)
  with check ((select auth.uid()) = user_id and deleted_at is null);

-- 2. Payments that arrive for a closed account.
create table public.closed_account_payments (
  id bigint generated always as identity primary key,
  provider text not null,
  provider_payment_id text not null,
  event_id text not null,
  event_type text,
  user_id uuid not null references public.profiles (user_id),
  package_id text,
  purchase_id uuid references public.purchases (id),
  amount_cents integer,
  currency text,
  refund_status text not null default 'refund_due',
  received_at timestamptz not null default now(),
  constraint closed_account_payments_provider_check check (provider in ('stripe', 'app_store')),
  constraint closed_account_payments_provider_payment_id_length_check check (char_length(provider_payment_id) between 1 and 255),
  constraint closed_account_payments_event_id_length_check check (char_length(event_id) between 1 and 255),
  constraint closed_account_payments_event_type_length_check check (char_length(event_type) <= 255),
  constraint closed_account_payments_package_id_length_check check (char_length(package_id) <= 100),
  constraint closed_account_payments_currency_length_check check (char_length(currency) <= 10),
  constraint closed_account_payments_refund_status_check check (refund_status in ('refund_due', 'refunded')),
  constraint closed_account_payments_provider_payment_id_key unique (provider, provider_payment_id)
);
comment on table public.closed_account_payments is 'Payments that arrived for a closed account: recorded, never granted, to be refunded at the provider by the back office (refund_status).';
comment on column public.closed_account_payments.refund_status is 'refund_due until the back office refunded the payment at the provider, then refunded.';
-- Serves the foreign key to profiles.
create index closed_account_payments_user_id_idx on public.closed_account_payments (user_id);
-- Serves the foreign key to purchases.
create index closed_account_payments_purchase_id_idx on public.closed_account_payments (purchase_id) where purchase_id is not null;
alter table public.closed_account_payments enable row level security;
revoke all on table public.closed_account_payments from public, anon, authenticated, service_role;
grant select on table public.closed_account_payments to service_role;
create policy "Service role can read closed account payments"
  on public.closed_account_payments for select to service_role using (true);

-- 3. A closed account cannot act, nor receive new credits.
create or replace function app.require_user()
returns uuid
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := auth.uid();
begin
  if v_user_id is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  if exists (select 1 from public.profiles where user_id = v_user_id and deleted_at is not null) then
    raise exception using errcode = 'PT403', message = 'This account is closed.', hint = 'account_closed';
  end if;
  return v_user_id;
end;
$$;
comment on function app.require_user() is 'Returns auth.uid(); raises 42501 (hint unauthenticated) when the request carries no user and PT403 (hint account_closed) when the account is closed.';

create or replace function app.refuse_grant_to_closed_account()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.source <> 'adjustment'
     and exists (select 1 from public.profiles where user_id = new.user_id and deleted_at is not null) then
    raise exception using errcode = 'PT403', message = 'This account is closed: it cannot be granted credits.',
      hint = 'account_closed', detail = 'user_id';
  end if;
  return new;
end;
$$;
comment on function app.refuse_grant_to_closed_account() is 'Trigger on credit_grants: no welcome, purchase or promotion grant for a closed account (adjustments, the give-backs of past take-backs, still apply).';
create trigger credit_grants_refuse_closed_account
  before insert on public.credit_grants
  for each row execute function app.refuse_grant_to_closed_account();

-- fulfill_purchase: money-sql's function becomes app.fulfill_purchase_for_open_account, unchanged;
-- the public RPC parks a payment for a closed account instead of granting it.
alter function public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text)
  rename to fulfill_purchase_for_open_account;
alter function public.fulfill_purchase_for_open_account(text, text, text, uuid, text, integer, text, uuid, text)
  set schema app;
comment on function app.fulfill_purchase_for_open_account(text, text, text, uuid, text, integer, text, uuid, text) is 'The payment rule''s fulfill_purchase for an open account (public.fulfill_purchase calls it).';

create or replace function public.fulfill_purchase(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_user_id uuid,
  p_package_id text,
  p_amount_cents integer,
  p_currency text,
  p_purchase_id uuid default null,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_rows integer;
  v_purchase public.purchases;
begin
  perform app.require_service_role();
  if p_user_id is not null and exists (select 1 from public.profiles where user_id = p_user_id and deleted_at is not null) then
    -- A payment granted before the account closed: this event is a repeat; record it, change nothing.
    select * into v_purchase from public.purchases
     where provider = p_provider and provider_payment_id = p_provider_payment_id and grant_id is not null;
    if found then
      v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
      if v_event_id is not null then
        update public.payment_events set outcome = 'already_granted', purchase_id = v_purchase.id, processed_at = pg_catalog.now()
         where id = v_event_id;
      end if;
      return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', v_event_id is null);
    end if;
    v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
    if v_event_id is not null then
      update public.payment_events set outcome = 'account_closed_refund_due', processed_at = pg_catalog.now() where id = v_event_id;
    end if;
    insert into public.closed_account_payments (provider, provider_payment_id, event_id, event_type, user_id, package_id,
                                                purchase_id, amount_cents, currency)
    values (p_provider, p_provider_payment_id, p_event_id, left(p_event_type, 255), p_user_id, left(p_package_id, 100),
            (select id from public.purchases where id = p_purchase_id and user_id = p_user_id), p_amount_cents, left(p_currency, 10))
    on conflict (provider, provider_payment_id) do nothing;
    get diagnostics v_rows = row_count;
    return jsonb_build_object('purchase', null, 'granted', false, 'replayed', v_event_id is null or v_rows = 0,
                              'account_closed', true, 'refund_due', true);
  end if;
  return app.fulfill_purchase_for_open_account(p_provider, p_provider_payment_id, p_event_id, p_user_id, p_package_id,
    p_amount_cents, p_currency, p_purchase_id, p_event_type);
end;
$$;
comment on function public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text) is 'Service role: a payment arrived. Makes the purchase''s one grant (once per provider payment id; pass p_purchase_id to complete a begin_purchase purchase, without it the purchase is created), then applies what refunds and disputes recorded before it say (payment rule). {"purchase", "granted" (this event paid it and credits are kept), "replayed" (this event id was seen before)}. For a closed account nothing is granted: the payment is recorded in closed_account_payments for a refund and the answer is {"purchase": null, "granted": false, "replayed", "account_closed": true, "refund_due": true}.';

-- 4. Closing.
create or replace function app.close_account(p_user_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_profile public.profiles;
  v_job record;
  v_hold record;
  v_jobs integer := 0;
  v_holds integer := 0;
  v_keys text[];
begin
  select * into v_profile from public.profiles where user_id = p_user_id for update;
  if not found then
    return jsonb_build_object('closed', false, 'replayed', false, 'canceled_jobs', 0, 'released_holds', 0, 'storage_keys', '[]'::jsonb);
  end if;
  if v_profile.deleted_at is not null then
    return jsonb_build_object('closed', true, 'replayed', true, 'canceled_jobs', 0, 'released_holds', 0, 'storage_keys', '[]'::jsonb);
  end if;
  -- Lock order: each job, then its hold and the balance (inside finish_canceled_job / settle_hold).
  for v_job in
    select id from public.jobs where user_id = p_user_id and status not in ('READY', 'FAILED', 'CANCELED')
     order by id for update
  loop
    perform app.finish_canceled_job(v_job.id, 0);
    v_jobs := v_jobs + 1;
  end loop;
  for v_hold in
    select id from public.credit_holds where user_id = p_user_id and status = 'active' order by id
  loop
    perform app.settle_hold(v_hold.id, 0, 'released');
    v_holds := v_holds + 1;
  end loop;
  v_keys := app.delete_assets(array(select id from public.jobs where user_id = p_user_id), 'account_closed');
  update public.projects
     set title = 'Deleted project', prompt = 'Deleted', niche_preset = null, voice = null, voice_profile_id = null,
         transcript_source = 'auto', transcript_text = null, settings = '{}'::jsonb,
         deleted_at = coalesce(deleted_at, app.now()), updated_at = pg_catalog.now()
   where user_id = p_user_id;
  update public.jobs
     set status_message = null, error_message = null, output_url = null, manifest = null, updated_at = pg_catalog.now()
   where user_id = p_user_id;
  update public.job_steps
     set message = null, error = null, log_excerpt = null, artifacts = '[]'::jsonb, updated_at = pg_catalog.now()
   where user_id = p_user_id;
  delete from public.draft_prompts where claimed_by = p_user_id;
  delete from public.idempotency_keys where user_id = p_user_id;
  update public.profiles
     set display_name = null, avatar_url = null, notification_prefs = '{}'::jsonb, language = 'en',
         deleted_at = app.now(), updated_at = pg_catalog.now()
   where user_id = p_user_id;
  return jsonb_build_object('closed', true, 'replayed', false, 'canceled_jobs', v_jobs, 'released_holds', v_holds,
                            'storage_keys', pg_catalog.to_jsonb(v_keys));
end;
$$;
comment on function app.close_account(uuid) is 'Closes an account: unfinished jobs CANCELED (nothing charged), holds released, assets deleted (R2 keys queued and returned), projects anonymised and soft-deleted, job texts cleared, claimed drafts and idempotency records deleted, profile fields cleared and deleted_at set. Ledger, grants, balance, purchases and payment records are kept. Idempotent.';

create or replace function public.delete_account()
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := auth.uid();
  v_result jsonb;
begin
  if v_user_id is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  v_result := app.close_account(v_user_id);
  -- The sign-in goes too (Supabase Auth cascades to identities, sessions and refresh tokens); the
  -- trigger below finds the account already closed.
  delete from auth.users where id = v_user_id;
  return v_result;
end;
$$;
comment on function public.delete_account() is 'Closes the caller''s account and deletes its sign-in (the auth.users row): {"closed": true, "replayed", "canceled_jobs", "released_holds", "storage_keys": [R2 keys for the Worker to delete now; also queued in storage_deletions]}. Personal data is deleted or anonymised; the ledger, purchases and payment events are kept; a closed account can neither spend nor be granted credits. Calling it again answers replayed = true. 42501 unauthenticated without a user.';

create or replace function app.handle_user_deleted()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.close_account(old.id);
  return old;
end;
$$;
comment on function app.handle_user_deleted() is 'Trigger before delete on auth.users: closes the account (app.close_account), so deleting a user in the dashboard ends like delete_account.';
create trigger on_auth_user_deleted
  before delete on auth.users
  for each row execute function app.handle_user_deleted();

revoke all on function
  app.require_user(), app.refuse_grant_to_closed_account(), app.close_account(uuid), app.handle_user_deleted(),
  app.fulfill_purchase_for_open_account(text, text, text, uuid, text, integer, text, uuid, text)
  from public, anon, authenticated, service_role;
revoke all on function public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text), public.delete_account()
  from public, anon, authenticated, service_role;
grant execute on function public.fulfill_purchase(text, text, text, uuid, text, integer, text, uuid, text) to service_role;
grant execute on function public.delete_account() to authenticated;
