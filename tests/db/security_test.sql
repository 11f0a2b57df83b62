-- Grants, functions and RLS as a whole: RLS on every table, EXECUTE per role for every function,
-- SECURITY DEFINER hygiene (search_path pinned, pg_temp shadowing harmless), no PUBLIC execute,
-- and the in-body checks that back the grants up.
begin;
\ir _setup.psql
select plan(244);

-- 1. Every table in public has RLS enabled and at least one policy; policies name their roles.
select is(
  (select coalesce(array_agg(c.relname::text order by c.relname), '{}') from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') and not c.relrowsecurity),
  '{}'::text[], 'every table in public has row level security enabled');
select is(
  (select coalesce(array_agg(c.relname::text order by c.relname), '{}') from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')
      and not exists (select 1 from pg_policies p where p.schemaname = 'public' and p.tablename = c.relname)),
  '{}'::text[], 'every table in public has at least one policy');
select is(
  (select coalesce(array_agg(policyname::text), '{}') from pg_policies where schemaname = 'public' and 'public' = any (roles)),
  '{}'::text[], 'every policy names its roles (none applies to PUBLIC)');
select is(
  (select coalesce(array_agg(policyname::text), '{}') from pg_policies where schemaname = 'public' and cmd = 'ALL'),
  '{}'::text[], 'policies are per command (none is FOR ALL)');
select is(
  (select coalesce(array_agg(c.relname::text), '{}') from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'S')
      and (has_table_privilege('anon', c.oid, 'insert') or has_table_privilege('anon', c.oid, 'update')
        or has_table_privilege('anon', c.oid, 'delete') or has_table_privilege('anon', c.oid, 'truncate'))),
  '{}'::text[], 'anon cannot write to any table or sequence in public');
select is(
  (select coalesce(array_agg(c.relname::text order by c.relname), '{}') from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
      and c.relname in ('credit_balances', 'credit_grants', 'credit_holds', 'credit_hold_allocations', 'credit_ledger',
                        'purchases', 'payment_events', 'idempotency_keys', 'jobs', 'job_steps', 'assets', 'draft_prompts')
      and (has_any_column_privilege('authenticated', c.oid, 'insert') or has_any_column_privilege('authenticated', c.oid, 'update')
        or has_table_privilege('authenticated', c.oid, 'delete') or has_table_privilege('authenticated', c.oid, 'truncate'))),
  '{}'::text[], 'users cannot write money, purchase, idempotency, job or draft tables directly');
select is(
  (select coalesce(array_agg(c.relname::text order by c.relname), '{}') from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'r'
      and c.relname in ('credit_balances', 'credit_grants', 'credit_holds', 'credit_hold_allocations', 'credit_ledger',
                        'purchases', 'payment_events', 'idempotency_keys')
      and (has_any_column_privilege('service_role', c.oid, 'insert') or has_any_column_privilege('service_role', c.oid, 'update')
        or has_table_privilege('service_role', c.oid, 'delete') or has_table_privilege('service_role', c.oid, 'truncate'))),
  '{}'::text[], 'even service_role writes money and purchase tables only through the functions');
select ok(not has_schema_privilege('anon', 'app', 'usage') and not has_schema_privilege('authenticated', 'app', 'usage')
          and not has_schema_privilege('service_role', 'app', 'usage'),
  'the internal schema app is not usable by any API role');

-- 2. Default privileges: what the migrations create next is not granted to the API roles.
select is(
  (select count(*)::int from pg_default_acl d, aclexplode(d.defaclacl) a
    where d.defaclrole = 'postgres'::regrole and a.grantee in ('anon'::regrole, 'authenticated'::regrole, 'service_role'::regrole)),
  0, 'the migration role''s default privileges grant nothing to anon, authenticated or service_role');
select ok(
  exists (select 1 from pg_default_acl d where d.defaclrole = 'postgres'::regrole and d.defaclnamespace = 0 and d.defaclobjtype = 'f'
           and not exists (select 1 from aclexplode(d.defaclacl) a where a.grantee = 0)),
  'new functions are not executable by PUBLIC by default');

-- 3. EXECUTE per role, for every function in public and app.
create temp table expected_execute (fn text, anon boolean, authenticated boolean, service_role boolean);
insert into expected_execute values
  ('public.get_balance()', false, true, false),
  ('public.list_ledger(bigint,integer)', false, true, false),
  ('public.list_models()', true, true, true),
  ('public.list_packages()', true, true, true),
  ('public.list_purchases()', false, true, false),
  ('public.begin_purchase(text,text)', false, true, false),
  ('public.create_draft(text,text,jsonb)', true, true, false),
  ('public.claim_draft(text)', false, true, false),
  ('public.generate(text,jsonb)', false, true, false),
  ('public.get_job(uuid)', false, true, false),
  ('public.health()', true, true, true),
  ('public.attach_checkout_session(uuid,text)', false, false, true),
  ('public.fulfill_purchase(text,text,text,uuid,text,integer,text,uuid,text)', false, false, true),
  ('public.refund_purchase(text,text,text,text)', false, false, true),
  ('public.fail_purchase(text,text,text,uuid,text)', false, false, true),
  ('public.app_store_package(text)', false, false, true),
  ('public.refund_purchase_amount(text,text,text,integer,integer,text)', false, false, true),
  ('public.refund_purchase_share(text,text,text,integer,integer,text)', false, false, true),
  ('public.reinstate_purchase(text,text,text,text)', false, false, true),
  ('public.clawback_purchase(text,text,text,text)', false, false, true),
  ('public.dispute_purchase(text,text,text,text,text,integer,text)', false, false, true),
  ('public.reverse_refund_purchase(text,text,text,text)', false, false, true),
  ('public.claim_next_jobs(text,integer,integer)', false, false, true),
  ('public.report_job_progress(uuid,text,text,integer,text,integer,integer)', false, false, true),
  ('public.complete_job(uuid,integer,text,jsonb,jsonb,text,integer)', false, false, true),
  ('public.fail_job(uuid,text,text,boolean,text,integer)', false, false, true),
  ('public.expire_stale_holds(integer)', false, false, true),
  ('public.expire_credits(integer)', false, false, true),
  ('public.reconcile()', false, false, true),
  ('public.cleanup_expired()', false, false, true),
  ('app.now()', false, false, false),
  ('app.refuse_business_clock_write()', false, false, false),
  ('app.require_user()', false, false, false),
  ('app.require_service_role()', false, false, false),
  ('app.handle_new_user()', false, false, false),
  ('app.handle_user_made_permanent()', false, false, false),
  ('app.grant_welcome_credits(uuid)', false, false, false),
  ('app.forbid_ledger_change()', false, false, false),
  ('app.lock_balance(uuid)', false, false, false),
  ('app.post_ledger_entry(uuid,text,integer,integer,integer,uuid,uuid,uuid,uuid,text,text)', false, false, false),
  ('app.expire_due_grants(uuid)', false, false, false),
  ('app.repay_debt_from_available(uuid)', false, false, false),
  ('app.add_grant(uuid,text,text,integer,timestamp with time zone,text,uuid,text)', false, false, false),
  ('app.create_hold(uuid,integer,timestamp with time zone,uuid,text)', false, false, false),
  ('app.settle_hold(uuid,integer,text)', false, false, false),
  ('app.take_back(uuid,integer,text,uuid,uuid)', false, false, false),
  ('app.check_idempotency_key(text)', false, false, false),
  ('app.purchase_json(purchases)', false, false, false),
  ('app.package_json(credit_packages)', false, false, false),
  ('app.record_payment_event(text,text,text,text,text)', false, false, false),
  ('app.reverse_purchase(text,text,text,text,text)', false, false, false),
  ('app.dispute_rank(text)', false, false, false),
  ('app.payment_state(text,text)', false, false, false),
  ('app.payment_rule(text,text,integer)', false, false, false),
  ('app.payment_take_back(purchases,integer,text)', false, false, false),
  ('app.return_to_grant(uuid,integer,uuid)', false, false, false),
  ('app.return_to_grant_described(uuid,integer,text)', false, false, false),
  ('app.return_repaid_debt(uuid,integer,uuid,text)', false, false, false),
  ('app.cut_replaced_app_store_periods(text,text)', false, false, false),
  ('app.payment_give_back(purchases,integer)', false, false, false),
  ('app.apply_payment_rule(text,text,text)', false, false, false),
  ('app.finish_payment_event(bigint,text,text,jsonb)', false, false, false),
  ('app.record_dispute(text,text,text,text,integer)', false, false, false),
  ('app.try_lock_balance(uuid)', false, false, false),
  ('app.try_lock_hold_and_balance(uuid,uuid)', false, false, false),
  ('app.project_json(projects)', false, false, false),
  ('app.job_json(uuid,boolean)', false, false, false),
  ('app.check_text(text,text,integer,boolean)', false, false, false),
  ('app.draft_json(draft_prompts)', false, false, false),
  ('app.balance_json(uuid)', false, false, false),
  ('app.request_uuid(jsonb,text)', false, false, false),
  ('app.request_text(jsonb,text,integer)', false, false, false),
  ('app.job_status_rank(text)', false, false, false),
  ('app.finish_failed_job(uuid,text,text,boolean)', false, false, false),
  ('app.require_job_event(uuid)', false, false, false),
  ('public.list_projects(uuid,integer)', false, true, false),
  ('public.get_project(uuid)', false, true, false),
  ('public.list_jobs(text,uuid,integer)', false, true, false),
  ('public.update_project(uuid,jsonb)', false, true, false),
  ('public.delete_project(uuid)', false, true, false),
  ('public.cancel_job(uuid)', false, true, false),
  ('public.delete_account()', false, true, false),
  ('public.report_job_step(uuid,text,text,text,integer,text,text,jsonb,integer)', false, false, true),
  ('public.finish_canceled_job(uuid,integer,text,integer)', false, false, true),
  ('public.register_asset(uuid,text,text,text,bigint,text,text,integer,jsonb,text,text)', false, false, true),
  ('app.skip_live_storage_keys()', false, false, false),
  ('app.refuse_job_in_deleted_project()', false, false, false),
  ('public.list_storage_deletions(integer)', false, false, true),
  ('public.confirm_storage_deletions(text[])', false, false, true),
  ('app.job_status_alias(text)', false, false, false),
  ('app.is_working_status(text)', false, false, false),
  ('app.check_job_transition()', false, false, false),
  ('app.finish_canceled_job(uuid,integer)', false, false, false),
  ('app.start_job_step(uuid,uuid,text,text)', false, false, false),
  ('app.delete_assets(uuid[],text)', false, false, false),
  ('app.asset_json(assets)', false, false, false),
  ('app.check_project_niche_preset()', false, false, false),
  ('app.cancel_locked_job(uuid)', false, false, false),
  ('app.refuse_grant_to_closed_account()', false, false, false),
  ('app.close_account(uuid)', false, false, false),
  ('app.handle_user_deleted()', false, false, false),
  ('app.fulfill_purchase_for_open_account(text,text,text,uuid,text,integer,text,uuid,text)', false, false, false),
  -- Issue 13: admin RPCs (authenticated may call them; the body admits only admins) and their helpers.
  ('public.admin_lookup_user(uuid,text,bigint,integer)', false, true, true),
  ('public.admin_grant_credits(text,uuid,integer,timestamp with time zone,text)', false, true, true),
  ('public.admin_adjust_credits(text,uuid,integer,text)', false, true, true),
  ('public.admin_void_grant(text,uuid,text)', false, true, true),
  ('public.admin_refund_job(text,uuid,text,integer)', false, true, true),
  ('public.admin_set_suspension(text,uuid,boolean,text)', false, true, true),
  ('public.admin_set_spend_cap(text,uuid,integer,text)', false, true, true),
  ('public.admin_export_ledger(uuid,text,bigint,integer)', false, true, true),
  ('public.admin_list_audit(bigint,integer,uuid)', false, true, true),
  ('app.forbid_audit_change()', false, false, false),
  ('app.require_admin()', false, false, false),
  ('app.check_reason(text)', false, false, false),
  ('app.admin_replay(text,text,jsonb)', false, false, false),
  ('app.admin_record(jsonb,text,text,text,uuid,text,jsonb,jsonb,jsonb,jsonb)', false, false, false),
  ('app.admin_target(uuid)', false, false, false),
  ('app.refuse_suspended(uuid)', false, false, false),
  ('app.refuse_suspended_draft_claim()', false, false, false),
  ('app.refuse_suspended_purchase()', false, false, false),
  ('app.spent_today(uuid,timestamp with time zone)', false, false, false),
  ('app.effective_daily_cap(uuid)', false, false, false),
  ('app.check_spend_limits(uuid,integer,timestamp with time zone)', false, false, false),
  ('app.grant_json(credit_grants)', false, false, false),
  ('app.controls_json(uuid)', false, false, false),
  ('app.admin_add_grant(uuid,text,text,integer,timestamp with time zone,text,uuid,text,text)', false, false, false),
  ('public.fulfill_subscription_payment(text,text,text,uuid,text,text,timestamp with time zone,timestamp with time zone,integer,text,text,text,boolean)', false, false, true),
  ('public.record_subscription_state(text,text,text,timestamp with time zone,uuid,text,text,timestamp with time zone,timestamp with time zone,boolean,text,text)', false, false, true),
  ('public.get_subscription()', false, true, false),
  ('public.begin_subscription_checkout(text)', false, true, false),
  ('app.subscription_row(text,text,uuid,text)', false, false, false),
  ('app.period_unspent(text,text)', false, false, false),
  ('app.plan_id(text,text)', false, false, false),
  ('app.add_period_grant(uuid,text,integer,timestamp with time zone,text,uuid,text)', false, false, false),
  ('app.roll_over(text,text,text)', false, false, false),
  ('app.subscription_json(subscriptions)', false, false, false),
  -- Invites (20261202041924_create_invites.sql).
  ('public.redeem_invite(text,text)', false, true, false),
  ('public.get_invites()', false, true, false),
  ('app.new_invite_code()', false, false, false),
  ('app.invite_json(invites)', false, false, false),
  ('app.invite_reward_for(integer)', false, false, false),
  ('app.invite_take_back(invites,integer,text)', false, false, false),
  ('app.invite_give_back(invites,integer,uuid)', false, false, false),
  ('app.apply_invite_reward()', false, false, false),
  -- Webhook outbox (20261202045026_create_webhook_outbox.sql).
  ('public.claim_webhook_deliveries(integer,integer)', false, false, true),
  ('public.record_webhook_delivery(text,integer,boolean,integer,text)', false, false, true),
  ('public.list_webhook_deliveries(text,integer)', false, false, true),
  ('app.enqueue_webhook(text,uuid,jsonb)', false, false, false),
  ('app.webhook_on_purchase()', false, false, false),
  ('app.webhook_on_job()', false, false, false),
  ('app.webhook_on_balance()', false, false, false),
  ('app.webhook_json(webhook_outbox)', false, false, false),
  -- Admin list of webhook deliveries (20261202072053_create_admin_webhook_list.sql).
  ('public.admin_list_webhook_deliveries(text,integer,text,text,uuid)', false, true, true),
  -- App Store consumption requests (20261202072216_create_app_store_consumption_requests.sql).
  ('public.get_consumption_consent()', false, true, false),
  ('public.set_consumption_consent(boolean)', false, true, false),
  ('public.record_app_store_consumption_request(uuid,text,text,timestamp with time zone,text)', false, false, true),
  ('public.claim_app_store_consumption_requests(integer,integer,uuid)', false, false, true),
  ('public.record_app_store_consumption_attempt(uuid,integer,integer,text)', false, false, true),
  ('public.list_app_store_consumption_requests(text,integer)', false, false, true),
  ('app.consent_json(uuid)', false, false, false),
  ('app.app_store_consumption_body(uuid)', false, false, false),
  ('app.consumption_request_json(app_store_consumption_requests)', false, false, false);

create temp view actual_functions as
  select n.nspname || '.' || regexp_replace(p.oid::regprocedure::text, '^(public|app)\.', '') as fn, p.oid
    from pg_proc p join pg_namespace n on n.oid = p.pronamespace
   where n.nspname in ('public', 'app');

select set_eq($$ select fn from actual_functions $$, $$ select fn from expected_execute $$,
  'the EXECUTE table lists exactly the functions in public and app');

select is(has_function_privilege(r.role, f.oid, 'execute'), r.expected,
          format('%s %s execute %s', r.role, case when r.expected then 'can' else 'cannot' end, e.fn))
  from expected_execute e
  join actual_functions f on f.fn = e.fn
  cross join lateral (values ('anon', e.anon), ('authenticated', e.authenticated), ('service_role', e.service_role)) r(role, expected)
 where e.fn like 'public.%'
 order by e.fn, r.role;

select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join expected_execute e using (fn)
    where e.fn like 'app.%' and (has_function_privilege('anon', f.oid, 'execute') or has_function_privilege('authenticated', f.oid, 'execute')
                                 or has_function_privilege('service_role', f.oid, 'execute'))),
  '{}'::text[], 'no API role can execute any internal function in app');
select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join pg_proc p on p.oid = f.oid
    where p.proacl is null or exists (select 1 from aclexplode(p.proacl) a where a.grantee = 0)),
  '{}'::text[], 'no function in public or app is executable by PUBLIC (explicit ACL everywhere)');

-- 4. Function hygiene.
select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join pg_proc p on p.oid = f.oid
    where p.prolang <> (select oid from pg_language where lanname = 'plpgsql')),
  '{}'::text[], 'every function in public and app is plpgsql (no inlinable language sql)');
-- Issue 9.8: '' still searches pg_temp first for type names; pg_temp must come last, on every function.
select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join pg_proc p on p.oid = f.oid
    where (select coalesce(array_agg(c), '{}') from unnest(p.proconfig) c where c like 'search_path=%')
          is distinct from array['search_path=pg_catalog, pg_temp']),
  '{}'::text[], 'issue 9.8: every function in public and app has exactly search_path = pg_catalog, pg_temp');
select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join pg_proc p on p.oid = f.oid
    where f.fn like 'public.%' and p.prorettype <> 'jsonb'::regtype),
  '{}'::text[], 'every RPC in public returns one jsonb value');
select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join pg_proc p on p.oid = f.oid
    where f.fn in ('public.generate(text,jsonb)', 'public.claim_draft(text)', 'public.create_draft(text,text,jsonb)',
                   'public.begin_purchase(text,text)', 'public.fulfill_purchase(text,text,text,uuid,text,integer,text,uuid,text)',
                   'public.refund_purchase(text,text,text,text)', 'public.clawback_purchase(text,text,text,text)',
                   'public.fail_purchase(text,text,text,uuid,text)', 'public.refund_purchase_amount(text,text,text,integer,integer,text)',
                   'public.reinstate_purchase(text,text,text,text)', 'public.dispute_purchase(text,text,text,text,text,integer,text)',
                   'public.reverse_refund_purchase(text,text,text,text)', 'public.refund_purchase_share(text,text,text,integer,integer,text)',
                   'public.complete_job(uuid,integer,text,jsonb,jsonb,text,integer)', 'public.fail_job(uuid,text,text,boolean,text,integer)',
                   'public.claim_next_jobs(text,integer,integer)', 'public.expire_credits(integer)', 'public.expire_stale_holds(integer)',
                   'public.cancel_job(uuid)', 'public.delete_project(uuid)', 'public.delete_account()',
                   'public.finish_canceled_job(uuid,integer,text,integer)', 'public.update_project(uuid,jsonb)',
                   'public.redeem_invite(text,text)', 'public.claim_webhook_deliveries(integer,integer)',
                   'public.record_webhook_delivery(text,integer,boolean,integer,text)')
      and p.provolatile <> 'v'),
  '{}'::text[], 'money-moving RPCs are VOLATILE (PostgREST refuses them over GET)');
select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f join pg_proc p on p.oid = f.oid
    where f.fn like 'public.%' and p.pronargs > 0
      and exists (select 1 from unnest(p.proargnames) a where a in ('p_user_id'))
      and has_function_privilege('authenticated', f.oid, 'execute')),
  '{}'::text[], 'no function a user can execute takes the acting user id as a parameter');

select is(
  (select coalesce(array_agg(f.fn order by f.fn), '{}') from actual_functions f
    where f.fn like 'public.%' and obj_description(f.oid, 'pg_proc') is null),
  '{}'::text[], 'every RPC in public has a comment (PostgREST''s OpenAPI description)');
select is(
  (select coalesce(array_agg(c.relname::text order by c.relname), '{}') from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind = 'r' and obj_description(c.oid, 'pg_class') is null),
  '{}'::text[], 'every table in public has a comment');
select ok(exists (select 1 from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'jobs'),
  'jobs are in the supabase_realtime publication, so clients can watch progress');

-- 5. Behaviour: anon and users are refused service functions, whatever they pass.
select tests.create_user('alice@example.com') as alice \gset
select tests.authenticate_as_anon();
select throws_ok($$ select public.reconcile() $$, '42501', null, 'anon cannot run reconcile');
select throws_ok(format($$ select public.fulfill_purchase('stripe', 'pi_x', 'evt_x', %L, 'starter', 499, 'usd') $$, :'alice'),
  '42501', null, 'anon cannot fulfil a purchase');
select throws_ok($$ select public.generate('k', '{}') $$, '42501', null, 'anon cannot generate');
select tests.authenticate_as(:'alice');
select throws_ok(format($$ select public.fulfill_purchase('stripe', 'pi_x', 'evt_x', %L, 'starter', 499, 'usd') $$, :'alice'),
  '42501', null, 'a user cannot fulfil a purchase for themselves');
select throws_ok($$ select public.expire_credits() $$, '42501', null, 'a user cannot run expire_credits');
select throws_ok($$ select public.complete_job(gen_random_uuid(), 0) $$, '42501', null, 'a user cannot complete a job');

-- Second line of defence: even when a grant slips, a user's JWT never runs back-office code.
select tests.clear_authentication();
select set_config('request.jwt.claims', json_build_object('sub', :'alice', 'role', 'authenticated')::text, true);
select throws_ok($$ select public.reconcile() $$, '42501', 'This operation is reserved for the back office.',
  'service functions check the JWT role in their body too');
select throws_ok(format($$ select public.fulfill_purchase('stripe', 'pi_x', 'evt_x', %L, 'starter', 499, 'usd') $$, :'alice'),
  '42501', 'This operation is reserved for the back office.', 'fulfill_purchase refuses an authenticated JWT in its body');
select tests.clear_authentication();

-- With no claims at all, every user RPC raises unauthenticated and writes nothing.
select tests.clear_authentication();
select set_config('role', 'authenticated', true);
select throws_ok($$ select public.get_balance() $$, '42501', 'Sign in to use this operation.', 'get_balance without claims');
select throws_ok($$ select public.list_ledger() $$, '42501', 'Sign in to use this operation.', 'list_ledger without claims');
select throws_ok($$ select public.list_purchases() $$, '42501', 'Sign in to use this operation.', 'list_purchases without claims');
select throws_ok($$ select public.generate('k-1', '{"model_id": "standard-v1", "prompt": "x"}') $$, '42501',
  'Sign in to use this operation.', 'generate without claims');
select throws_ok($$ select public.get_job(gen_random_uuid()) $$, '42501', 'Sign in to use this operation.', 'get_job without claims');
select throws_ok($$ select public.claim_draft(repeat('a', 64)) $$, '42501', 'Sign in to use this operation.', 'claim_draft without claims');
select throws_ok($$ select public.begin_purchase('starter', 'k-1') $$, '42501', 'Sign in to use this operation.', 'begin_purchase without claims');
select tests.clear_authentication();
select is((select count(*)::int from public.jobs) + (select count(*)::int from public.purchases) + (select count(*)::int from public.idempotency_keys),
  0, 'calls without claims wrote nothing');

-- 6. pg_temp shadowing: same-named temp tables and a hostile search_path change nothing.
select tests.authenticate_as(:'alice');
select public.get_balance() as before_shadow \gset
create temp table credit_balances (user_id uuid, available integer, held integer, debt integer);
insert into pg_temp.credit_balances values (:'alice', 999999, 0, 0);
create temp table credit_grants (user_id uuid, remaining integer, expires_at timestamptz);
create temp table jobs (id uuid);
create function pg_temp.now() returns timestamptz language sql as $$ select '2000-01-01'::timestamptz $$;
set local search_path = pg_temp, public, extensions;
select is(public.get_balance(), :'before_shadow'::jsonb, 'a temp table named credit_balances does not change get_balance');
select lives_ok($$ select public.generate('shadow-1', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 1}') $$,
  'generate works with shadowing temp tables on the search path');
select is((select count(*)::int from pg_temp.jobs), 0, 'generate wrote nothing into the temp jobs table');
select is((select count(*)::int from public.jobs where user_id = :'alice'), 1, 'generate wrote its job into public.jobs');
select is((public.get_balance() ->> 'held')::int, 3, 'the hold went to the real balance');
set local search_path = public, extensions;
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile finds no violation after the shadowing attempt');

select * from finish();
rollback;
