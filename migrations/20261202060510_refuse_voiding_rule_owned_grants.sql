-- Admins cannot void an invite reward or a subscription rollover grant: both belong to a money rule that takes them back itself (found by the executable model once admin voids, invites and subscriptions ran in one history: a voided invite reward was then taken back again from the inviter's other credits).
-- Redefines public.admin_void_grant from 20261202041933_create_admin_tools_and_spend_limits.sql,
-- adding one refusal; everything else is unchanged. Grants on the function are kept by CREATE OR
-- REPLACE.

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
  -- An invite reward is kept or taken back by its invitee's purchase (the take-back starts from the
  -- reward grant), and a subscription rollover is counted by the next rollover: voiding either would
  -- take the same credits twice.
  if exists (select 1 from public.invites where reward_grant_id = p_grant_id)
     or exists (select 1 from public.subscription_rollovers where grant_id = p_grant_id) then
    raise exception using errcode = '22023',
      message = 'An invite reward or a subscription rollover follows its own rule and cannot be voided.',
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

comment on function public.admin_void_grant(text, uuid, text) is 'Admin: voids what remains of one grant (not a purchase''s, an invite reward or a subscription rollover) and ends it now, so its credits held by a job expire when they come back. Idempotent per key; audited (void_grant). {"grant", "voided", "balance", "replayed"}. Errors: 22023 invalid_request (grant_id for a purchase grant, an invite reward or a rollover), PT404 not_found (grant_id).';
