-- Admins see webhook deliveries with their delivery state (GET /v1/admin/webhooks, issue 13): admin_list_webhook_deliveries, keyset-paged newest first, filtered by state, event type and user.
--
-- list_webhook_deliveries (service role, first page only, no filters but state) stays as it is for
-- the back office; this one is executable by authenticated and service_role and checks the caller
-- in its body (app.require_admin), like every admin RPC. It reads and writes nothing else: the
-- listing is not an action on a user, so it is not audited (like admin_list_audit).

-- The admin list, newest first: (created_at desc, id desc), the keyset order of the pages.
create index webhook_outbox_created_at_id_desc_idx on public.webhook_outbox (created_at desc, id desc);
-- The admin list of one user's events, newest first.
create index webhook_outbox_user_id_created_at_idx on public.webhook_outbox (user_id, created_at desc, id desc);

create or replace function public.admin_list_webhook_deliveries(
  p_before text default null, p_limit integer default 50, p_status text default null,
  p_event_type text default null, p_target_user_id uuid default null)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_limit integer := coalesce(p_limit, 50);
  v_cursor public.webhook_outbox;
  v_items jsonb;
  v_count integer;
begin
  perform app.require_admin();
  if v_limit not between 1 and 100 then
    raise exception using errcode = '22023', message = 'limit must be 1 to 100.', hint = 'invalid_request', detail = 'limit';
  end if;
  if p_status is not null and p_status not in ('pending', 'delivered', 'failed') then
    raise exception using errcode = '22023', message = 'status is pending, delivered or failed.', hint = 'invalid_request', detail = 'status';
  end if;
  if p_event_type is not null and p_event_type not in ('purchase.granted', 'purchase.reversed', 'job.succeeded', 'job.failed', 'balance.low') then
    raise exception using errcode = '22023',
      message = 'event_type is purchase.granted, purchase.reversed, job.succeeded, job.failed or balance.low.',
      hint = 'invalid_request', detail = 'event_type';
  end if;
  if p_before is not null then
    if p_before !~ '^msg_[0-9a-f]{32}$' then
      raise exception using errcode = '22023', message = 'before must be a next_before of an earlier page.', hint = 'invalid_request', detail = 'before';
    end if;
    select * into v_cursor from public.webhook_outbox where id = pg_catalog.substr(p_before, 5)::uuid;
    if not found then
      raise exception using errcode = '22023', message = 'before must be a next_before of an earlier page.', hint = 'invalid_request', detail = 'before';
    end if;
  end if;
  select coalesce(jsonb_agg(app.webhook_json(w) || jsonb_build_object('payload', w.payload) order by w.created_at desc, w.id desc), '[]'::jsonb),
         count(*)
    into v_items, v_count
    from (
      select * from public.webhook_outbox o
       where (p_before is null or (o.created_at, o.id) < (v_cursor.created_at, v_cursor.id))
         and (p_status is null or o.status = p_status)
         and (p_event_type is null or o.event_type = p_event_type)
         and (p_target_user_id is null or o.user_id = p_target_user_id)
       order by o.created_at desc, o.id desc
       limit v_limit + 1
    ) w;
  if v_count > v_limit then
    v_items := v_items - v_limit;
  end if;
  return jsonb_build_object(
    'items', v_items,
    'next_before', case when v_count > v_limit then v_items -> (v_limit - 1) ->> 'id' end,
    'counts', (select jsonb_build_object(
                 'pending', count(*) filter (where status = 'pending'),
                 'delivered', count(*) filter (where status = 'delivered'),
                 'failed', count(*) filter (where status = 'failed'))
                 from public.webhook_outbox o
                where (p_event_type is null or o.event_type = p_event_type)
                  and (p_target_user_id is null or o.user_id = p_target_user_id)));
end;
$$;
comment on function public.admin_list_webhook_deliveries(text, integer, text, text, uuid) is 'Admin: webhook events with their delivery state and payload, newest first, optionally by status, event type and user: {"items": [{id, event_type, user_id, status, attempts, next_attempt_at, last_attempt_at, last_status, last_error, delivered_at, created_at, payload}], "next_before", "counts": {pending, delivered, failed} (for the event type and user filters)}; p_before = a page''s next_before; p_limit 1..100.';

revoke all on function public.admin_list_webhook_deliveries(text, integer, text, text, uuid) from public, anon, authenticated, service_role;
grant execute on function public.admin_list_webhook_deliveries(text, integer, text, text, uuid) to authenticated, service_role;
