-- Apple consumption requests (issue 13): each verified CONSUMPTION_REQUEST recorded once, the customer's consent to share consumption data, and the delivery of the consumption facts (computed from the ledger at send time) to the App Store Server API with retries until Apple accepts or 12 hours pass.
--
-- Rules (migrations/README.md, "App Store consumption requests"):
-- * record_app_store_consumption_request records one row per notificationUUID (a repeated
--   notification changes nothing) for the App Store purchase of the transaction: `pending` when the
--   purchase's user consented (`consumption_data_consents`), else `skipped` with why
--   (`unknown_transaction`: no purchase of ours; `no_consent`; `account_closed`). Apple: "If the
--   customer didn't consent, don't respond to the CONSUMPTION_REQUEST notification."
-- * The deadline is 12 hours after the notification was signed (or recorded, if earlier).
-- * claim_app_store_consumption_requests leases due pending rows (SKIP LOCKED), checks the
--   consent again (a withdrawn consent skips the row), and answers each with the request body
--   computed now from the ledger (app.app_store_consumption_body); rows past their deadline
--   become `expired`. record_app_store_consumption_attempt records Apple's answer for the current
--   attempt only: 202 is `sent` (final, never sent again), 400/403/404 `rejected` (final: the same
--   facts would be refused again), anything else (401, 429, 5xx, no answer) is retried after
--   30 s x 2^(attempts-1), at most 30 minutes, until the deadline.

create table public.consumption_data_consents (
  user_id uuid primary key references public.profiles (user_id),
  consented boolean not null,
  updated_at timestamptz not null default now()
);
comment on table public.consumption_data_consents is 'Whether the user consented to the app sending the App Store their consumption data when they ask Apple for a refund (customerConsented). No row = not consented. Written only by set_consumption_consent.';

create table public.app_store_consumption_requests (
  id uuid primary key default gen_random_uuid(),
  notification_uuid uuid not null,
  transaction_id text not null,
  environment text not null,
  consumption_request_reason text,
  purchase_id uuid references public.purchases (id),
  user_id uuid references public.profiles (user_id),
  status text not null,
  skip_reason text,
  deadline_at timestamptz not null,
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_attempt_at timestamptz,
  last_status integer,
  last_error text,
  body jsonb,
  sent_at timestamptz,
  received_at timestamptz not null default now(),
  constraint app_store_consumption_requests_notification_uuid_key unique (notification_uuid),
  constraint app_store_consumption_requests_transaction_id_format_check check (transaction_id ~ '^[A-Za-z0-9._-]{1,64}$'),
  constraint app_store_consumption_requests_environment_check check (environment in ('Production', 'Sandbox')),
  constraint app_store_consumption_requests_reason_length_check check (char_length(consumption_request_reason) <= 64),
  constraint app_store_consumption_requests_status_check check (status in ('pending', 'sent', 'rejected', 'expired', 'skipped')),
  constraint app_store_consumption_requests_skip_reason_check check (
    (status = 'skipped') = (skip_reason is not null) and skip_reason in ('unknown_transaction', 'no_consent', 'account_closed')),
  constraint app_store_consumption_requests_attempts_check check (attempts >= 0),
  constraint app_store_consumption_requests_last_error_length_check check (char_length(last_error) <= 500),
  constraint app_store_consumption_requests_body_object_check check (jsonb_typeof(body) = 'object')
);
comment on table public.app_store_consumption_requests is 'One row per App Store CONSUMPTION_REQUEST notification: whether and what the Worker answered Apple (Send Consumption Information). Written only by the functions.';
comment on column public.app_store_consumption_requests.body is 'The ConsumptionRequest body of the latest attempt (computed from the ledger when it was claimed); of the accepted one once sent.';
-- The claim: due pending rows.
create index app_store_consumption_requests_due_idx on public.app_store_consumption_requests (next_attempt_at) where status = 'pending';
-- The claim's expiry pass.
create index app_store_consumption_requests_deadline_idx on public.app_store_consumption_requests (deadline_at) where status = 'pending';
-- The foreign keys.
create index app_store_consumption_requests_purchase_id_idx on public.app_store_consumption_requests (purchase_id) where purchase_id is not null;
create index app_store_consumption_requests_user_id_idx on public.app_store_consumption_requests (user_id) where user_id is not null;

alter table public.consumption_data_consents enable row level security;
alter table public.app_store_consumption_requests enable row level security;
revoke all on table public.consumption_data_consents, public.app_store_consumption_requests from public, anon, authenticated, service_role;
grant select on table public.consumption_data_consents to authenticated, service_role;
grant select on table public.app_store_consumption_requests to service_role;
create policy "Users can read their own consumption consent" on public.consumption_data_consents
  for select to authenticated using (user_id = (select auth.uid()));
create policy "Service role can read consumption consents" on public.consumption_data_consents
  for select to service_role using (true);
create policy "Service role can read consumption requests" on public.app_store_consumption_requests
  for select to service_role using (true);

-- Users: read and set their consent.

create or replace function app.consent_json(p_user_id uuid)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_row public.consumption_data_consents;
begin
  select * into v_row from public.consumption_data_consents where user_id = p_user_id;
  return jsonb_build_object('consented', coalesce(v_row.consented, false), 'updated_at', v_row.updated_at);
end;
$$;
comment on function app.consent_json(uuid) is 'A user''s consumption-data consent: {"consented", "updated_at"} (false and null when never set).';

create or replace function public.get_consumption_consent()
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := auth.uid();
begin
  if v_user_id is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  return app.consent_json(v_user_id);
end;
$$;
comment on function public.get_consumption_consent() is 'The caller''s consent to share consumption data with the App Store for refund requests: {"consented", "updated_at"}.';

create or replace function public.set_consumption_consent(p_consented boolean)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
begin
  if p_consented is null then
    raise exception using errcode = '22023', message = 'consented must be true or false.', hint = 'invalid_request', detail = 'consented';
  end if;
  insert into public.consumption_data_consents as c (user_id, consented, updated_at)
  values (v_user_id, p_consented, pg_catalog.now())
  on conflict (user_id) do update
    set consented = excluded.consented,
        updated_at = case when c.consented = excluded.consented then c.updated_at else excluded.updated_at end;
  return app.consent_json(v_user_id);
end;
$$;
comment on function public.set_consumption_consent(boolean) is 'Sets the caller''s consent to share consumption data with the App Store (idempotent; updated_at moves only when the answer changes): {"consented", "updated_at"}.';

-- The facts.

create or replace function app.app_store_consumption_body(p_purchase_id uuid)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_purchase public.purchases;
  v_amount integer;
  v_consumed bigint;
  v_sample boolean;
  v_body jsonb;
begin
  select * into v_purchase from public.purchases where id = p_purchase_id;
  if not found then
    return null;
  end if;
  -- A free trial before the purchase: the welcome credits, granted before it was bought.
  v_sample := exists (select 1 from public.credit_grants g
                       where g.user_id = v_purchase.user_id and g.source = 'welcome' and g.created_at <= v_purchase.created_at);
  v_body := jsonb_build_object('customerConsented', true, 'sampleContentProvided', v_sample);
  if v_purchase.grant_id is null then
    -- Paid but never credited.
    v_body := v_body || jsonb_build_object('deliveryStatus', 'UNDELIVERED_OTHER');
    if v_purchase.plan_id is null then
      v_body := v_body || jsonb_build_object('consumptionPercentage', 0);
    end if;
    return v_body;
  end if;
  v_body := v_body || jsonb_build_object('deliveryStatus', 'DELIVERED');
  -- Apple computes an auto-renewable subscription's consumption itself and refuses a percentage.
  if v_purchase.plan_id is not null then
    return v_body;
  end if;
  -- Consumed: what jobs captured from this purchase's grant (held credits of running jobs are not
  -- consumed yet; expired or taken-back credits were not consumed by the customer).
  select g.amount into v_amount from public.credit_grants g where g.id = v_purchase.grant_id;
  select coalesce(sum(a.captured), 0) into v_consumed from public.credit_hold_allocations a where a.grant_id = v_purchase.grant_id;
  return v_body || jsonb_build_object('consumptionPercentage',
    least(100000, (v_consumed * 100000 / greatest(v_amount, 1))::integer));
end;
$$;
comment on function app.app_store_consumption_body(uuid) is 'The Send Consumption Information (v2) body for a purchase, from the ledger now: customerConsented true, deliveryStatus (DELIVERED once granted, else UNDELIVERED_OTHER), sampleContentProvided (a welcome grant before the purchase), consumptionPercentage = captured credits of its grant x 100000 / its credits, rounded down (consumables only; 0 when undelivered).';

create or replace function app.consumption_request_json(r public.app_store_consumption_requests)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return jsonb_build_object(
    'id', r.id, 'notification_uuid', r.notification_uuid, 'transaction_id', r.transaction_id, 'environment', r.environment,
    'consumption_request_reason', r.consumption_request_reason, 'purchase_id', r.purchase_id, 'user_id', r.user_id,
    'status', r.status, 'skip_reason', r.skip_reason, 'deadline_at', r.deadline_at, 'attempts', r.attempts,
    'next_attempt_at', case when r.status = 'pending' then r.next_attempt_at end, 'last_attempt_at', r.last_attempt_at,
    'last_status', r.last_status, 'last_error', r.last_error, 'body', r.body, 'sent_at', r.sent_at, 'received_at', r.received_at);
end;
$$;
comment on function app.consumption_request_json(public.app_store_consumption_requests) is 'A consumption request as the back office sees it.';

-- Back office (service role): record, claim, report.

create or replace function public.record_app_store_consumption_request(
  p_notification_uuid uuid, p_transaction_id text, p_environment text, p_signed_at timestamptz,
  p_consumption_request_reason text default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_row public.app_store_consumption_requests;
  v_purchase public.purchases;
  v_status text := 'pending';
  v_skip text;
begin
  perform app.require_service_role();
  if p_notification_uuid is null then
    raise exception using errcode = '22023', message = 'notification_uuid is required.', hint = 'invalid_request', detail = 'notification_uuid';
  end if;
  if p_transaction_id is null or p_transaction_id !~ '^[A-Za-z0-9._-]{1,64}$' then
    raise exception using errcode = '22023', message = 'Not an App Store transaction id.', hint = 'invalid_request', detail = 'transaction_id';
  end if;
  if p_environment is null or p_environment not in ('Production', 'Sandbox') then
    raise exception using errcode = '22023', message = 'environment is Production or Sandbox.', hint = 'invalid_request', detail = 'environment';
  end if;
  if p_signed_at is null then
    raise exception using errcode = '22023', message = 'signed_at is required.', hint = 'invalid_request', detail = 'signed_at';
  end if;
  -- One notification at a time (a repeated delivery waits for the first, then finds it).
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('consumption:' || p_notification_uuid::text, 0));
  select * into v_row from public.app_store_consumption_requests where notification_uuid = p_notification_uuid;
  if found then
    return jsonb_build_object('request', app.consumption_request_json(v_row), 'recorded', false);
  end if;
  select * into v_purchase from public.purchases where provider = 'app_store' and provider_payment_id = p_transaction_id;
  if not found then
    v_status := 'skipped';
    v_skip := 'unknown_transaction';
  elsif exists (select 1 from public.profiles where user_id = v_purchase.user_id and deleted_at is not null) then
    v_status := 'skipped';
    v_skip := 'account_closed';
  elsif not coalesce((select c.consented from public.consumption_data_consents c where c.user_id = v_purchase.user_id), false) then
    v_status := 'skipped';
    v_skip := 'no_consent';
  end if;
  insert into public.app_store_consumption_requests (notification_uuid, transaction_id, environment, consumption_request_reason,
                                                     purchase_id, user_id, status, skip_reason, deadline_at)
  values (p_notification_uuid, p_transaction_id, p_environment, pg_catalog.left(p_consumption_request_reason, 64),
          v_purchase.id, v_purchase.user_id, v_status, v_skip,
          least(p_signed_at, pg_catalog.now()) + interval '12 hours')
  returning * into v_row;
  return jsonb_build_object('request', app.consumption_request_json(v_row), 'recorded', true);
end;
$$;
comment on function public.record_app_store_consumption_request(uuid, text, text, timestamptz, text) is 'Service role: records a verified CONSUMPTION_REQUEST once per notificationUUID: pending (the purchase''s user consented) or skipped (unknown_transaction, no_consent, account_closed); deadline 12 h after p_signed_at: {"request", "recorded"} (recorded false for a repeated notification).';

create or replace function public.claim_app_store_consumption_requests(
  p_limit integer default 10, p_lease_seconds integer default 60, p_request_id uuid default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_expired integer;
  v_skipped integer;
  v_items jsonb;
begin
  perform app.require_service_role();
  if p_limit is null or p_limit < 0 or p_limit > 50 then
    raise exception using errcode = '22023', message = 'p_limit must be 0 to 50.', hint = 'invalid_request', detail = 'p_limit';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 5 or p_lease_seconds > 900 then
    raise exception using errcode = '22023', message = 'p_lease_seconds must be 5 to 900.', hint = 'invalid_request', detail = 'p_lease_seconds';
  end if;
  -- Past the deadline: Apple no longer takes the answer.
  with late as (
    select id from public.app_store_consumption_requests
     where status = 'pending' and deadline_at <= pg_catalog.now()
     order by deadline_at
     limit 100
     for update skip locked
  )
  update public.app_store_consumption_requests r set status = 'expired'
    from late where r.id = late.id;
  get diagnostics v_expired = row_count;
  -- A consent withdrawn since the notification (or an account closed since): not sent.
  with due as (
    select r.id, r.user_id from public.app_store_consumption_requests r
     where r.status = 'pending' and r.next_attempt_at <= pg_catalog.now() and r.deadline_at > pg_catalog.now()
       and (p_request_id is null or r.id = p_request_id)
     order by r.next_attempt_at
     limit p_limit
     for update skip locked
  ), withdrawn as (
    update public.app_store_consumption_requests r
       set status = 'skipped',
           skip_reason = case when exists (select 1 from public.profiles p where p.user_id = due.user_id and p.deleted_at is not null)
                              then 'account_closed' else 'no_consent' end
      from due
     where r.id = due.id
       and (not coalesce((select c.consented from public.consumption_data_consents c where c.user_id = due.user_id), false)
            or exists (select 1 from public.profiles p where p.user_id = due.user_id and p.deleted_at is not null))
    returning r.id
  ), claimed as (
    update public.app_store_consumption_requests r
       set attempts = r.attempts + 1, last_attempt_at = pg_catalog.now(),
           next_attempt_at = pg_catalog.now() + pg_catalog.make_interval(secs => p_lease_seconds),
           body = app.app_store_consumption_body(r.purchase_id)
      from due
     where r.id = due.id and due.id not in (select id from withdrawn)
    returning r.*
  )
  select (select count(*) from withdrawn),
         coalesce((select jsonb_agg(jsonb_build_object('id', c.id, 'attempt', c.attempts, 'transaction_id', c.transaction_id,
                                                       'environment', c.environment, 'body', c.body) order by c.next_attempt_at)
                     from claimed c), '[]'::jsonb)
    into v_skipped, v_items;
  return jsonb_build_object('items', v_items, 'expired', v_expired, 'skipped', v_skipped,
                            'more', p_limit > 0 and jsonb_array_length(v_items) + v_skipped = p_limit);
end;
$$;
comment on function public.claim_app_store_consumption_requests(integer, integer, uuid) is 'Service role: expires pending consumption requests past their deadline, then leases up to p_limit due ones (0: only expire; p_request_id: only that one) for p_lease_seconds with their body computed now from the ledger; a withdrawn consent or a closed account skips the row: {"items": [{id, attempt, transaction_id, environment, body}], "expired", "skipped", "more"}.';

create or replace function public.record_app_store_consumption_attempt(
  p_id uuid, p_attempt integer, p_status integer default null, p_error text default null)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_row public.app_store_consumption_requests;
begin
  perform app.require_service_role();
  select * into v_row from public.app_store_consumption_requests where id = p_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such consumption request.', hint = 'not_found', detail = 'id';
  end if;
  if v_row.status <> 'pending' or v_row.attempts <> p_attempt then
    return jsonb_build_object('request', app.consumption_request_json(v_row), 'applied', false);
  end if;
  update public.app_store_consumption_requests
     set status = case when p_status = 202 then 'sent'
                       when p_status in (400, 403, 404) then 'rejected'
                       when pg_catalog.now() >= deadline_at then 'expired'
                       else 'pending' end,
         sent_at = case when p_status = 202 then pg_catalog.now() end,
         next_attempt_at = case when p_status = 202 or p_status in (400, 403, 404) then next_attempt_at
                                else pg_catalog.now() + least(interval '30 minutes', interval '30 seconds' * (2 ^ (attempts - 1))) end,
         last_status = p_status,
         last_error = case when p_status = 202 then null else pg_catalog.left(p_error, 500) end
   where id = p_id
   returning * into v_row;
  return jsonb_build_object('request', app.consumption_request_json(v_row), 'applied', true);
end;
$$;
comment on function public.record_app_store_consumption_attempt(uuid, integer, integer, text) is 'Service role: Apple''s answer to one attempt: 202 sent (final), 400/403/404 rejected (final), anything else (or no answer: p_status null) retried after 30 s x 2^(attempts-1), at most 30 min, until the deadline; a report for another attempt or a finished request changes nothing (applied false).';

create or replace function public.list_app_store_consumption_requests(p_status text default null, p_limit integer default 50)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_service_role();
  if p_status is not null and p_status not in ('pending', 'sent', 'rejected', 'expired', 'skipped') then
    raise exception using errcode = '22023', message = 'status is pending, sent, rejected, expired or skipped.', hint = 'invalid_request', detail = 'status';
  end if;
  if p_limit is null or p_limit < 1 or p_limit > 200 then
    raise exception using errcode = '22023', message = 'limit must be 1 to 200.', hint = 'invalid_request', detail = 'limit';
  end if;
  return jsonb_build_object('items', coalesce((
    select jsonb_agg(app.consumption_request_json(r) order by r.received_at desc, r.id)
      from (select * from public.app_store_consumption_requests where p_status is null or status = p_status
             order by received_at desc, id limit p_limit) r), '[]'::jsonb));
end;
$$;
comment on function public.list_app_store_consumption_requests(text, integer) is 'Service role (the back office): the newest consumption requests with what was answered to Apple.';

revoke all on function
  app.consent_json(uuid), app.app_store_consumption_body(uuid), app.consumption_request_json(public.app_store_consumption_requests),
  public.get_consumption_consent(), public.set_consumption_consent(boolean),
  public.record_app_store_consumption_request(uuid, text, text, timestamptz, text),
  public.claim_app_store_consumption_requests(integer, integer, uuid),
  public.record_app_store_consumption_attempt(uuid, integer, integer, text),
  public.list_app_store_consumption_requests(text, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.get_consumption_consent(), public.set_consumption_consent(boolean) to authenticated;
grant execute on function
  public.record_app_store_consumption_request(uuid, text, text, timestamptz, text),
  public.claim_app_store_consumption_requests(integer, integer, uuid),
  public.record_app_store_consumption_attempt(uuid, integer, integer, text),
  public.list_app_store_consumption_requests(text, integer)
  to service_role;
