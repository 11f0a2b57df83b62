-- Signed webhooks to the app's backend (issue 13): an outbox written by triggers in the same transaction as the change (purchase.granted, purchase.reversed, job.succeeded, job.failed, balance.low), claimed in bounded batches with SKIP LOCKED by the Worker's cron, retried with exponential back-off, its delivery state readable by the back office.
--
-- Rules (migrations/README.md, "Webhooks"):
-- * One row per event; its id is the Standard Webhooks `webhook-id` (`msg_<uuid without dashes>`),
--   the same on every retry, so the receiver deduplicates by it.
-- * purchase.granted: a purchase got its grant (paid). purchase.reversed: a paid purchase's
--   credits_granted went down (a refund, dispute or revocation took credits back). job.succeeded /
--   job.failed: a job reached READY / FAILED. balance.low: a user's available credits went from at
--   least the threshold to below it (once per crossing: a new event only after the balance was back
--   at or above it). The threshold is `webhook_settings.low_balance_threshold` (default 20; 0 turns
--   the event off).
-- * Delivery: claim_webhook_deliveries leases due rows (status pending, next_attempt_at passed) for
--   p_lease_seconds, oldest first, FOR UPDATE SKIP LOCKED, at most p_limit (<= 50); the Worker
--   posts each and reports with record_webhook_delivery (attempt-checked, so a late report of an
--   earlier attempt is ignored). A failure waits 30 s x 2^(attempts-1), at most 6 h; after 12
--   attempts the row is `failed` (dead) and kept. A lease that lapses (the Worker died) makes the row
--   due again.

create table public.webhook_settings (
  id boolean primary key default true,
  low_balance_threshold integer not null default 20,
  updated_at timestamptz not null default now(),
  constraint webhook_settings_single_row_check check (id),
  constraint webhook_settings_low_balance_threshold_check check (low_balance_threshold between 0 and 1000000)
);
comment on table public.webhook_settings is 'The one row of webhook settings: the balance.low threshold (0 = off). The back office updates it.';
insert into public.webhook_settings (id) values (true);

create table public.webhook_outbox (
  id uuid primary key default gen_random_uuid(),
  event_type text not null,
  user_id uuid references public.profiles (user_id),
  payload jsonb not null,
  status text not null default 'pending',
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_attempt_at timestamptz,
  last_status integer,
  last_error text,
  delivered_at timestamptz,
  created_at timestamptz not null default now(),
  constraint webhook_outbox_event_type_check check (event_type in ('purchase.granted', 'purchase.reversed', 'job.succeeded', 'job.failed', 'balance.low')),
  constraint webhook_outbox_status_check check (status in ('pending', 'delivered', 'failed')),
  constraint webhook_outbox_attempts_check check (attempts >= 0),
  constraint webhook_outbox_last_error_length_check check (char_length(last_error) <= 500),
  constraint webhook_outbox_payload_object_check check (jsonb_typeof(payload) = 'object')
);
comment on table public.webhook_outbox is 'Events for the app''s backend, written by triggers in the transaction of the change and delivered by the Worker (Standard Webhooks). Written only by the functions.';
-- The delivery claim: due pending rows, oldest first.
create index webhook_outbox_due_idx on public.webhook_outbox (next_attempt_at, created_at) where status = 'pending';
-- The back office's list, newest first, optionally by status.
create index webhook_outbox_created_at_idx on public.webhook_outbox (created_at desc, id);
-- The foreign key (account closing keeps the rows).
create index webhook_outbox_user_id_idx on public.webhook_outbox (user_id);

alter table public.webhook_settings enable row level security;
alter table public.webhook_outbox enable row level security;
revoke all on table public.webhook_settings, public.webhook_outbox from public, anon, authenticated, service_role;
grant select, update (low_balance_threshold, updated_at) on table public.webhook_settings to service_role;
grant select on table public.webhook_outbox to service_role;
create policy "Service role can read webhook settings" on public.webhook_settings for select to service_role using (true);
create policy "Service role can change webhook settings" on public.webhook_settings for update to service_role using (true) with check (true);
create policy "Service role can read the webhook outbox" on public.webhook_outbox for select to service_role using (true);

create or replace function app.enqueue_webhook(p_type text, p_user_id uuid, p_data jsonb)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_id uuid := pg_catalog.gen_random_uuid();
begin
  insert into public.webhook_outbox (id, event_type, user_id, payload, next_attempt_at, created_at)
  values (v_id, p_type, p_user_id,
          jsonb_build_object('type', p_type, 'timestamp', app.now(), 'data', p_data),
          pg_catalog.now(), pg_catalog.now());
end;
$$;
comment on function app.enqueue_webhook(text, uuid, jsonb) is 'Writes one event to the webhook outbox (Standard Webhooks payload {type, timestamp, data}).';

create or replace function app.webhook_on_purchase()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if old.grant_id is null and new.grant_id is not null then
    perform app.enqueue_webhook('purchase.granted', new.user_id, jsonb_build_object('purchase', app.purchase_json(new)));
  elsif old.grant_id is not null and new.credits_granted < old.credits_granted then
    perform app.enqueue_webhook('purchase.reversed', new.user_id, jsonb_build_object(
      'purchase', app.purchase_json(new), 'credits_taken_back', old.credits_granted - new.credits_granted));
  end if;
  return null;
end;
$$;
comment on function app.webhook_on_purchase() is 'Trigger on purchases: purchase.granted when it gets its grant, purchase.reversed when its credits granted go down.';
create trigger purchases_webhook
  after update of grant_id, credits_granted on public.purchases
  for each row execute function app.webhook_on_purchase();

create or replace function app.webhook_on_job()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.status is distinct from old.status and new.status in ('READY', 'FAILED') then
    perform app.enqueue_webhook(case new.status when 'READY' then 'job.succeeded' else 'job.failed' end, new.user_id,
      jsonb_build_object('job', jsonb_build_object(
        'id', new.id, 'user_id', new.user_id, 'project_id', new.project_id, 'model_id', new.model_id, 'status', new.status,
        'credits_reserved', new.credits_reserved, 'credits_final', new.credits_final, 'error_code', new.error_code,
        'failed_step', new.failed_step, 'finished_at', new.finished_at)));
  end if;
  return null;
end;
$$;
comment on function app.webhook_on_job() is 'Trigger on jobs: job.succeeded on READY, job.failed on FAILED.';
create trigger jobs_webhook
  after update of status on public.jobs
  for each row execute function app.webhook_on_job();

create or replace function app.webhook_on_balance()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_threshold integer;
begin
  select low_balance_threshold into v_threshold from public.webhook_settings where id;
  if coalesce(v_threshold, 0) > 0 and old.available >= v_threshold and new.available < v_threshold then
    perform app.enqueue_webhook('balance.low', new.user_id, jsonb_build_object(
      'user_id', new.user_id, 'available', new.available, 'held', new.held, 'debt', new.debt, 'threshold', v_threshold));
  end if;
  return null;
end;
$$;
comment on function app.webhook_on_balance() is 'Trigger on credit_balances: balance.low when available crosses the threshold downward.';
create trigger credit_balances_webhook
  after update of available on public.credit_balances
  for each row when (new.available < old.available)
  execute function app.webhook_on_balance();

-- Delivery RPCs (service role).

create or replace function app.webhook_json(w public.webhook_outbox)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return jsonb_build_object(
    'id', 'msg_' || pg_catalog.replace(w.id::text, '-', ''), 'event_type', w.event_type, 'user_id', w.user_id,
    'status', w.status, 'attempts', w.attempts, 'next_attempt_at', case when w.status = 'pending' then w.next_attempt_at end,
    'last_attempt_at', w.last_attempt_at, 'last_status', w.last_status, 'last_error', w.last_error,
    'delivered_at', w.delivered_at, 'created_at', w.created_at);
end;
$$;
comment on function app.webhook_json(public.webhook_outbox) is 'A webhook event''s delivery state as the back office sees it.';

create or replace function public.claim_webhook_deliveries(p_limit integer default 20, p_lease_seconds integer default 60)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_items jsonb;
begin
  perform app.require_service_role();
  if p_limit is null or p_limit < 1 or p_limit > 50 then
    raise exception using errcode = '22023', message = 'p_limit must be 1 to 50.', hint = 'invalid_request', detail = 'p_limit';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 5 or p_lease_seconds > 900 then
    raise exception using errcode = '22023', message = 'p_lease_seconds must be 5 to 900.', hint = 'invalid_request', detail = 'p_lease_seconds';
  end if;
  with due as (
    select id from public.webhook_outbox
     where status = 'pending' and next_attempt_at <= pg_catalog.now()
     order by next_attempt_at, created_at
     limit p_limit
     for update skip locked
  ), claimed as (
    update public.webhook_outbox w
       set attempts = w.attempts + 1, last_attempt_at = pg_catalog.now(),
           next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds)
      from due where w.id = due.id
    returning w.*
  )
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', 'msg_' || pg_catalog.replace(c.id::text, '-', ''), 'attempt', c.attempts, 'event_type', c.event_type,
           'payload', c.payload) order by c.created_at), '[]'::jsonb)
    into v_items from claimed c;
  return jsonb_build_object('items', v_items, 'more', jsonb_array_length(v_items) = p_limit);
end;
$$;
comment on function public.claim_webhook_deliveries(integer, integer) is 'Service role: leases up to p_limit due webhook events (oldest first, SKIP LOCKED) for p_lease_seconds: {"items": [{id, attempt, event_type, payload}], "more"}.';

create or replace function public.record_webhook_delivery(p_id text, p_attempt integer, p_delivered boolean,
                                                          p_status integer default null, p_error text default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_row public.webhook_outbox;
  v_uuid uuid;
begin
  perform app.require_service_role();
  if p_id is null or p_id !~ '^msg_[0-9a-f]{32}$' then
    raise exception using errcode = '22023', message = 'Not a webhook id.', hint = 'invalid_request', detail = 'p_id';
  end if;
  v_uuid := pg_catalog.substr(p_id, 5)::uuid;
  select * into v_row from public.webhook_outbox where id = v_uuid for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such webhook event.', hint = 'not_found', detail = 'p_id';
  end if;
  if v_row.status <> 'pending' or v_row.attempts <> p_attempt then
    return jsonb_build_object('webhook', app.webhook_json(v_row), 'applied', false);
  end if;
  update public.webhook_outbox
     set status = case when p_delivered then 'delivered' when attempts >= 12 then 'failed' else 'pending' end,
         delivered_at = case when p_delivered then pg_catalog.now() end,
         next_attempt_at = case when p_delivered then next_attempt_at
                                else pg_catalog.now() + least(interval '6 hours', interval '30 seconds' * (2 ^ (attempts - 1))) end,
         last_status = p_status, last_error = case when p_delivered then null else left(p_error, 500) end
   where id = v_uuid
   returning * into v_row;
  return jsonb_build_object('webhook', app.webhook_json(v_row), 'applied', true);
end;
$$;
comment on function public.record_webhook_delivery(text, integer, boolean, integer, text) is 'Service role: the outcome of one delivery attempt; a failure is retried after 30 s x 2^(attempts-1) (at most 6 h), failed for good after 12 attempts; a report for another attempt or a finished event changes nothing (applied: false).';

create or replace function public.list_webhook_deliveries(p_status text default null, p_limit integer default 50)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_service_role();
  if p_status is not null and p_status not in ('pending', 'delivered', 'failed') then
    raise exception using errcode = '22023', message = 'status is pending, delivered or failed.', hint = 'invalid_request', detail = 'status';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 200 then
    raise exception using errcode = '22023', message = 'limit must be 1 to 200.', hint = 'invalid_request', detail = 'limit';
  end if;
  return jsonb_build_object(
    'items', coalesce((select jsonb_agg(app.webhook_json(w) order by w.created_at desc, w.id)
                         from (select * from public.webhook_outbox where p_status is null or status = p_status
                                order by created_at desc, id limit p_limit) w), '[]'::jsonb),
    'counts', (select jsonb_build_object(
                 'pending', count(*) filter (where status = 'pending'),
                 'delivered', count(*) filter (where status = 'delivered'),
                 'failed', count(*) filter (where status = 'failed')) from public.webhook_outbox));
end;
$$;
comment on function public.list_webhook_deliveries(text, integer) is 'Service role (the back office): the newest webhook events with their delivery state, and counts per state.';

revoke all on function
  app.enqueue_webhook(text, uuid, jsonb), app.webhook_on_purchase(), app.webhook_on_job(), app.webhook_on_balance(),
  app.webhook_json(public.webhook_outbox),
  public.claim_webhook_deliveries(integer, integer), public.record_webhook_delivery(text, integer, boolean, integer, text),
  public.list_webhook_deliveries(text, integer)
  from public, anon, authenticated, service_role;
grant execute on function
  public.claim_webhook_deliveries(integer, integer), public.record_webhook_delivery(text, integer, boolean, integer, text),
  public.list_webhook_deliveries(text, integer)
  to service_role;
