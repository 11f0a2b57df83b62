-- Issue 11, "delete my account": delete_account and `delete from auth.users` (the Supabase
-- dashboard) end in the same closed state: no personal data left, jobs canceled, holds released,
-- R2 keys queued, ledger, purchases and payment events kept, reconcile() empty; a closed account
-- can neither spend nor be granted credits, and a payment that arrives for it is parked for refund.
begin;
\ir _setup.psql
select plan(42);

select tests.set_now('2030-01-01 00:00:00+00');

-- A user with everything: a paid purchase, a profile, a claimed draft, a queued job, a running job
-- with a step log and an uploaded file.
create function pg_temp.make_rich_user(p_email text, p_payment text) returns uuid language plpgsql as $$
declare
  v_user uuid := tests.create_user(p_email);
  v_token text;
  v_running uuid;
begin
  perform tests.authenticate_as_service_role();
  perform public.fulfill_purchase('stripe', p_payment, 'evt_' || p_payment, v_user, 'starter', 499, 'usd');
  perform tests.authenticate_as(v_user);
  update public.profiles set display_name = 'Real Name', avatar_url = 'https://example.com/me.png' where user_id = v_user;
  perform tests.authenticate_as_anon();
  v_token := public.create_draft('My secret draft idea') ->> 'claim_token';
  perform tests.authenticate_as(v_user);
  perform public.claim_draft(v_token);
  perform public.generate('run-' || p_email, '{"model_id": "standard-v1", "prompt": "My running video about my life", "target_minutes": 3}');
  perform tests.authenticate_as_service_role();
  v_running := public.claim_next_jobs('w-' || p_email, 1, 600) -> 'jobs' -> 0 ->> 'id';
  perform public.report_job_step(v_running, 'w-' || p_email, 'SCRIPTING', 'started', 50, null, 'script: my life story', '[{"name": "script.txt"}]');
  perform public.register_asset(v_running, 'draft.mp4', 'video', 'video/mp4', 10, repeat('cd', 32), 'w-' || p_email);
  perform tests.authenticate_as(v_user);
  perform public.generate('queued-' || p_email, '{"model_id": "standard-v1", "prompt": "My queued video", "target_minutes": 2}');
  perform tests.clear_authentication();
  return v_user;
end;
$$;
grant execute on function pg_temp.make_rich_user(text, text) to public;

-- What must be gone or kept, for one closed account, as one row of facts.
create function pg_temp.closed_state(p_user uuid) returns jsonb language plpgsql as $$
begin
  return jsonb_build_object(
    'auth_user', exists (select 1 from auth.users where id = p_user),
    'profile_closed', (select deleted_at is not null and display_name is null and avatar_url is null from public.profiles where user_id = p_user),
    'personal_project_text', exists (select 1 from public.projects where user_id = p_user
                                      and (title <> 'Deleted project' or prompt <> 'Deleted' or transcript_text is not null or settings <> '{}' or deleted_at is null)),
    'drafts', (select count(*) from public.draft_prompts where claimed_by = p_user),
    'idempotency_records', (select count(*) from public.idempotency_keys where user_id = p_user),
    'assets', (select count(*) from public.assets where user_id = p_user),
    'step_texts', exists (select 1 from public.job_steps where user_id = p_user and (log_excerpt is not null or error is not null or message is not null or artifacts <> '[]')),
    'job_texts', exists (select 1 from public.jobs where user_id = p_user and (status_message is not null or error_message is not null or manifest is not null or output_url is not null)),
    'unfinished_jobs', (select count(*) from public.jobs where user_id = p_user and status not in ('READY', 'FAILED', 'CANCELED')),
    'active_holds', (select count(*) from public.credit_holds where user_id = p_user and status = 'active'),
    'held', (select held from public.credit_balances where user_id = p_user),
    'purchases', (select count(*) from public.purchases where user_id = p_user),
    'queued_deletions', (select count(*) from public.storage_deletions where storage_key like '%/draft.mp4'
                          and storage_key::text in (select j.id::text || '/draft.mp4' from public.jobs j where j.user_id = p_user)));
end;
$$;
grant execute on function pg_temp.closed_state(uuid) to public;

select '{"auth_user": false, "profile_closed": true, "personal_project_text": false, "drafts": 0, "idempotency_records": 0, "assets": 0, "step_texts": false, "job_texts": false, "unfinished_jobs": 0, "active_holds": 0, "held": 0, "purchases": 1, "queued_deletions": 1}' as closed \gset

-- 1. Through the API: delete_account.
select pg_temp.make_rich_user('carol@example.com', 'pi_carol') as carol \gset
select (select count(*)::int from public.credit_ledger where user_id = :'carol') as carol_ledger \gset
select (select available from public.credit_balances where user_id = :'carol') as carol_available \gset
select is((select count(*)::int from public.jobs where user_id = :'carol' and status not in ('READY', 'FAILED', 'CANCELED')), 2,
  'carol has a queued and a running job');
select tests.authenticate_as(:'carol');
select public.delete_account() as closed_carol \gset
select is(:'closed_carol'::jsonb ->> 'closed', 'true', 'delete_account closes the account');
select is((:'closed_carol'::jsonb ->> 'canceled_jobs')::int, 2, 'both unfinished jobs are canceled');
select is(jsonb_array_length(:'closed_carol'::jsonb -> 'storage_keys'), 1, 'the R2 key of the uploaded file is returned for deletion');
select tests.clear_authentication();
select is(pg_temp.closed_state(:'carol'), :'closed'::jsonb, 'no personal data left; jobs ended; holds released; the purchase kept; the object queued');
select is((select count(*)::int from public.credit_ledger where user_id = :'carol'), :carol_ledger + 2, 'the ledger is kept: only the two releases were added');
select is((select available from public.credit_balances where user_id = :'carol'), :carol_available + 5 + 4, 'both holds came back to the balance (kept, not forfeited)');
select is((select count(*)::int from public.payment_events where provider_payment_id = 'pi_carol'), 1, 'the payment event is kept');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after closing through the API');

-- A closed account can neither act nor spend.
select tests.authenticate_as(:'carol');
select is(tests.error_of($$ select public.generate('again', '{"model_id": "standard-v1", "prompt": "x"}') $$) - 'message',
  '{"code": "PT403", "hint": "account_closed", "detail": null}'::jsonb, 'a closed account cannot generate');
select is(tests.error_of($$ select public.begin_purchase('starter', 'buy-again') $$) ->> 'hint', 'account_closed', 'nor start a purchase');
select is(tests.error_of($$ select public.get_balance() $$) ->> 'hint', 'account_closed', 'nor use any user RPC');
select is(public.list_projects() -> 'items', '[]'::jsonb, 'its projects are gone from every list');
select is(tests.attempt($$ update public.profiles set display_name = 'Back again' $$), 'none', 'nor write personal data back into its profile');
select is(public.delete_account() ->> 'replayed', 'true', 'deleting again answers replayed');
select tests.clear_authentication();

-- ... nor be granted credits; a payment that arrives is parked for refund; old payments still settle.
select is(tests.error_of(format($$ select app.add_grant(%L, 'promotion', 'promotional', 50, null, 'grant') $$, :'carol')) ->> 'hint',
  'account_closed', 'no grant can be made to a closed account');
select tests.authenticate_as_service_role();
select public.fulfill_purchase('stripe', 'pi_carol_late', 'evt_carol_late', :'carol', 'starter', 499, 'usd') as late \gset
select is(:'late'::jsonb - 'purchase', '{"granted": false, "replayed": false, "account_closed": true, "refund_due": true}'::jsonb,
  'a payment for a closed account grants nothing and is flagged for refund');
select is((select refund_status || '/' || amount_cents from public.closed_account_payments where provider_payment_id = 'pi_carol_late'), 'refund_due/499',
  'it is recorded with its amount');
select is((select outcome from public.payment_events where event_id = 'evt_carol_late'), 'account_closed_refund_due', 'its event is recorded');
select is(public.fulfill_purchase('stripe', 'pi_carol_late', 'evt_carol_late', :'carol', 'starter', 499, 'usd') ->> 'replayed', 'true',
  'the same event again is a replay');
select is((select count(*)::int from public.purchases where user_id = :'carol'), 1, 'no purchase was created');
select is(public.fulfill_purchase('stripe', 'pi_carol', 'evt_carol_dup', :'carol', 'starter', 499, 'usd') ->> 'granted', 'false',
  'a repeated payment event of a payment granted before closing is not parked (already granted)');
select is(public.refund_purchase('stripe', 'pi_carol', 'evt_carol_refund') -> 'purchase' ->> 'status', 'refunded',
  'a refund of a payment made before closing still takes its credits back');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the late payment and the refund');
select tests.clear_authentication();
select is((select count(*)::int from public.credit_grants where user_id = :'carol' and source <> 'adjustment'), 2,
  'carol still has exactly her welcome and purchase grants');

-- The pipeline's late events about a closed account's job change nothing.
select (select id from public.jobs where user_id = :'carol' and attempts = 1) as carol_running \gset
select tests.authenticate_as_service_role();
select is(public.complete_job(:'carol_running', 3, null, null, '[]', 'w-carol@example.com') ->> 'applied', 'false',
  'a success event for a job canceled by closing is ignored');
select is(public.register_asset(:'carol_running', 'late.mp4', 'video', 'video/mp4', 1, repeat('cd', 32)) ->> 'applied', 'false',
  'a late upload is refused (the Worker deletes the object)');
select tests.clear_authentication();

-- 2. Through auth.users (the dashboard): the same end state.
select pg_temp.make_rich_user('dave@example.com', 'pi_dave') as dave \gset
select (select count(*)::int from public.credit_ledger where user_id = :'dave') as dave_ledger \gset
select lives_ok(format($$ delete from auth.users where id = %L $$, :'dave'), 'deleting the auth.users row is not blocked by any foreign key');
select is(pg_temp.closed_state(:'dave'), :'closed'::jsonb, 'the same closed state as through the API');
select is((select count(*)::int from public.credit_ledger where user_id = :'dave'), :dave_ledger + 2, 'the ledger is kept');
select ok((select deleted_at is not null from public.profiles where user_id = :'dave'), 'the profile stays as the closed account''s tombstone');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the dashboard deletion');
select tests.authenticate_as(:'dave');
select is(tests.error_of($$ select public.generate('again', '{"model_id": "standard-v1", "prompt": "x"}') $$) ->> 'hint', 'account_closed',
  'a still-valid token of the deleted user cannot spend');
select is(public.delete_account() ->> 'replayed', 'true', 'delete_account after the dashboard deletion is a no-op');
select tests.clear_authentication();
select tests.authenticate_as_service_role();
select is(public.fulfill_purchase('app_store', 'tx_dave', 'evt_tx_dave', :'dave', 'starter', 499, 'usd') ->> 'account_closed', 'true',
  'an App Store transaction for the deleted user is parked too');
select tests.clear_authentication();

-- 3. An ordinary user is untouched by both, and a user without data closes cleanly.
select tests.create_user('erin@example.com') as erin \gset
select tests.create_user('frank@example.com') as frank \gset
select lives_ok(format($$ delete from auth.users where id = %L $$, :'frank'), 'a user with only the welcome grant can be deleted');
select is((select count(*)::int from public.credit_ledger where user_id = :'frank'), 1, 'their welcome grant row stays in the ledger');
select tests.authenticate_as(:'erin');
select is(public.get_balance() ->> 'available', '10', 'another user still works normally');
select tests.authenticate_as_anon();
select throws_ok($$ select public.delete_account() $$, '42501', null, 'anon cannot call delete_account');
select tests.authenticate_as(:'erin');
select is(tests.attempt(format($$ select 1 from public.profiles where user_id = %L $$, :'carol')), 'none', 'a closed profile is not visible to others');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty at the end');
select is((select count(*)::int from auth.users where id in (:'carol', :'dave', :'frank')), 0, 'all three sign-ins are gone');

select * from finish();
rollback;
