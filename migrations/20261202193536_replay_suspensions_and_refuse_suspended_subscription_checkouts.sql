-- A repeated admin suspension with the same Idempotency-Key is replayed (it was looked up under set_suspension but recorded as suspend_user / unsuspend_user, so a retry hit the unique key: 409), the same key for the other direction is 422; and a suspended user can no longer start a Stripe subscription checkout (403 account_suspended, as for a pack).

-- The body of 20261202041933_create_admin_tools_and_spend_limits.sql, with the replay found under
-- the names the action is recorded with.
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
  v_row public.admin_audit_log;
  v_profile public.profiles;
  v_before jsonb;
  v_response jsonb;
begin
  if v_replay is not null then
    return v_replay;
  end if;
  -- The action is recorded as suspend_user or unsuspend_user: a key is looked up under both (the
  -- advisory lock app.admin_replay took on set_suspension serialises the calls with this key).
  select * into v_row from public.admin_audit_log
   where action in ('suspend_user', 'unsuspend_user') and idempotency_key = p_idempotency_key;
  if found then
    if v_row.request_fingerprint <> pg_catalog.sha256(pg_catalog.convert_to(v_request::text, 'UTF8')) then
      raise exception using errcode = 'PT422', message = 'This idempotency key was already used with a different request.',
        hint = 'idempotency_key_reused', detail = 'idempotency_key';
    end if;
    return v_row.response || jsonb_build_object('replayed', true);
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

-- The body of 20261202042031_create_subscriptions.sql, with app.refuse_suspended (README: a
-- suspended user cannot start a checkout).
create or replace function public.begin_subscription_checkout(p_plan_id text)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_plan public.plans;
begin
  if coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false) then
    raise exception using errcode = 'PT403', message = 'Anonymous users cannot subscribe; link an identity first.',
      hint = 'anonymous_user';
  end if;
  perform app.refuse_suspended(v_user_id);
  if p_plan_id is null or p_plan_id !~ '^[a-z0-9][a-z0-9._-]{0,63}$' then
    raise exception using errcode = '22023', message = 'plan_id must be a plan id.', hint = 'invalid_request', detail = 'plan_id';
  end if;
  select * into v_plan from public.plans where id = p_plan_id and active;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'plan_id';
  end if;
  if v_plan.stripe_price_id is null then
    raise exception using errcode = 'PT409', message = 'This plan is not sold through Stripe.', hint = 'not_sold_on_stripe',
      detail = 'plan_id';
  end if;
  if exists (select 1 from public.subscriptions where user_id = v_user_id and status <> 'ended') then
    raise exception using errcode = 'PT409', message = 'You already have a subscription; change or cancel it instead.',
      hint = 'already_subscribed', detail = 'plan_id';
  end if;
  return jsonb_build_object('plan', jsonb_build_object('id', v_plan.id, 'name', v_plan.name, 'interval', v_plan.interval,
    'credits', v_plan.credits, 'rollover_max', v_plan.rollover_max, 'price_cents', v_plan.price_cents,
    'currency', v_plan.currency, 'stripe_price_id', v_plan.stripe_price_id));
end;
$$;
