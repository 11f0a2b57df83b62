-- The role x table x command matrix: what anon, the owner, another user, an anonymous (Supabase
-- anonymous sign-in) user and service_role can select, insert, update and delete, table by table.
-- Outcomes: 'denied' = 42501 (no grant or a failing WITH CHECK), 'none' = the statement ran but saw
-- or changed no row (an RLS USING filter), 'rows' = it saw or changed the owner's rows.
-- Every statement targets the owner's rows and is rolled back by tests.attempt.
begin;
\ir _setup.psql
select plan(788);

-- Fixtures: the owner has a row in every table.
select tests.create_user('owner@example.com') as owner \gset
select tests.create_user('other@example.com') as other \gset
select tests.create_user(null, true) as anonymous \gset
insert into public.models (id, name, provider, cost_per_generation) values ('test-model', 'Test', 'test', 1), ('test-model-del', 'Test', 'test', 1);
insert into public.credit_packages (id, name, credits, price_cents) values ('test-pack', 'Test', 1, 100), ('test-pack-del', 'Test', 1, 100);
select public.fulfill_purchase('stripe', 'pi_owner', 'evt_owner', :'owner', 'starter', 499, 'usd') is not null as fulfilled;
select public.dispute_purchase('stripe', 'pi_owner', 'evt_owner_dispute', 'dp_owner', 'warning_needs_response', 100) is not null as disputed;
select tests.authenticate_as(:'owner');
select public.generate('matrix-1', '{"model_id": "standard-v1", "prompt": "A video", "target_minutes": 1}') -> 'response' -> 'job' ->> 'id' as job \gset
select public.create_draft('A draft') ->> 'claim_token' as token \gset
select public.claim_draft(:'token') is not null as claimed;
select tests.clear_authentication();
select public.claim_next_jobs('worker-1') is not null as claimed_job;
select public.complete_job(:'job', 2, null, null, '[{"kind": "video", "url": "https://cdn.example.com/v.mp4"}]') is not null as completed;

-- A queued R2 deletion, and a payment parked for a closed account (issue 11).
insert into public.storage_deletions (storage_key, reason) values ('matrix/owner.mp4', 'project_deleted');
insert into public.asset_upload_signatures (signature_ref, job_id, storage_key) values (repeat('ab', 32), :'job', 'matrix/owner.mp4');
select tests.create_user('closed@example.com') as closed \gset
select tests.authenticate_as(:'closed');
select public.delete_account() is not null as closed_account;
select tests.clear_authentication();
select public.fulfill_purchase('stripe', 'pi_closed', 'evt_closed', :'closed', 'starter', 499, 'usd') is not null as parked;
-- Issue 13: an admin refund of the owner's job (audit row + job refund) and a spend cap (account controls).
select public.admin_refund_job('matrix-refund', :'job'::uuid, 'matrix fixture', 1) is not null as refunded;
select public.admin_set_spend_cap('matrix-cap', :'owner', 100, 'matrix fixture') is not null as capped;

-- A subscription with two paid periods (a rollover between them) and a state event (issue 12).
insert into public.plans (id, name, interval, credits, rollover_max, price_cents) values ('test-plan', 'Test', 'month', 10, 5, 100), ('test-plan-del', 'Test', 'month', 10, 0, 100);
select public.fulfill_subscription_payment('stripe', 'pi_sub_owner1', 'evt_sub_owner1', :'owner', 'sub_owner', 'test-plan', now(), now() + interval '1 month', 100, 'usd') is not null as period1;
select public.fulfill_subscription_payment('stripe', 'pi_sub_owner2', 'evt_sub_owner2', :'owner', 'sub_owner', 'test-plan', now() + interval '1 month', now() + interval '2 months', 100, 'usd') is not null as period2;
select public.record_subscription_state('stripe', 'sub_owner', 'evt_sub_state', now(), :'owner', 'test-plan', 'active') is not null as state;

-- An invite of the owner's, rewarded and taken back (issue 13).
select tests.create_user('invitee@example.com') as invitee \gset
select invite_code as owner_code from public.profiles where user_id = :'owner' \gset
select tests.authenticate_as(:'invitee');
select public.redeem_invite(:'owner_code', 'matrix-invite') is not null as redeemed;
select tests.clear_authentication();
select public.fulfill_purchase('stripe', 'pi_invitee', 'evt_invitee', :'invitee', 'starter', 499, 'usd') is not null as invitee_paid;
select public.refund_purchase('stripe', 'pi_invitee', 'evt_invitee_refund') is not null as invitee_refunded;

-- The owner's consent to share consumption data and an App Store consumption request (issue 13).
insert into public.consumption_data_consents (user_id, consented) values (:'owner', true);
insert into public.app_store_consumption_requests (notification_uuid, transaction_id, environment, user_id, status, skip_reason, deadline_at)
values (gen_random_uuid(), '2000000000000099', 'Sandbox', :'owner', 'skipped', 'unknown_transaction', now() + interval '12 hours');
-- A repaid piece of debt of the owner's (written by the credit functions when debt is repaid).
insert into public.debt_repayments (user_id, grant_id, amount) select :'owner', id, 1 from public.credit_grants where user_id = :'owner' limit 1;

create temp table matrix (tbl text, cmd text, sql text, anon text, owner text, other text, anonymous text, service text);
grant select on matrix to public;
insert into matrix values
  ('profiles', 'select', 'select 1 from public.profiles where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('profiles', 'insert', 'insert into public.profiles (user_id) values (:owner)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('profiles', 'update', 'update public.profiles set display_name = display_name where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('profiles', 'delete', 'delete from public.profiles where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_balances', 'select', 'select 1 from public.credit_balances where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('credit_balances', 'insert', 'insert into public.credit_balances (user_id) values (gen_random_uuid())', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_balances', 'update', 'update public.credit_balances set available = available + 1000 where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_balances', 'delete', 'delete from public.credit_balances where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_grants', 'select', 'select 1 from public.credit_grants where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('credit_grants', 'insert', 'insert into public.credit_grants (user_id, source, kind, amount, remaining) values (:owner, ''promotion'', ''promotional'', 1000, 1000)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_grants', 'update', 'update public.credit_grants set remaining = amount where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_grants', 'delete', 'delete from public.credit_grants where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_holds', 'select', 'select 1 from public.credit_holds where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('credit_holds', 'insert', 'insert into public.credit_holds (user_id, amount, expires_at) values (:owner, 1, now())', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_holds', 'update', 'update public.credit_holds set status = status where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_holds', 'delete', 'delete from public.credit_holds where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_hold_allocations', 'select', 'select 1 from public.credit_hold_allocations where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('credit_hold_allocations', 'insert', 'insert into public.credit_hold_allocations (hold_id, grant_id, user_id, amount) values (gen_random_uuid(), gen_random_uuid(), :owner, 1)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_hold_allocations', 'update', 'update public.credit_hold_allocations set released = 0 where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_hold_allocations', 'delete', 'delete from public.credit_hold_allocations where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_ledger', 'select', 'select 1 from public.credit_ledger where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('credit_ledger', 'insert', 'insert into public.credit_ledger (user_id, type, delta_available, delta_held, delta_debt, balance_available_after, balance_held_after, balance_debt_after) values (:owner, ''grant'', 1000, 0, 0, 1000, 0, 0)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_ledger', 'update', 'update public.credit_ledger set delta_available = 1000 where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('credit_ledger', 'delete', 'delete from public.credit_ledger where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('models', 'select', 'select 1 from public.models where id = ''test-model''', 'rows', 'rows', 'rows', 'rows', 'rows'),
  ('models', 'insert', 'insert into public.models (id, name, provider, cost_per_generation) values (''test-model-new'', ''N'', ''p'', 1)', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('models', 'update', 'update public.models set cost_per_generation = 0, cost_per_minute = 1 where id = ''test-model''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('models', 'delete', 'delete from public.models where id = ''test-model-del''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('credit_packages', 'select', 'select 1 from public.credit_packages where id = ''test-pack''', 'rows', 'rows', 'rows', 'rows', 'rows'),
  ('credit_packages', 'insert', 'insert into public.credit_packages (id, name, credits, price_cents) values (''test-pack-new'', ''N'', 1, 1)', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('credit_packages', 'update', 'update public.credit_packages set credits = 1000000 where id = ''test-pack''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('credit_packages', 'delete', 'delete from public.credit_packages where id = ''test-pack-del''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('purchases', 'select', 'select 1 from public.purchases where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('purchases', 'insert', 'insert into public.purchases (user_id, provider, package_id, credits, amount_cents, currency) values (:owner, ''stripe'', ''starter'', 100, 0, ''usd'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('purchases', 'update', 'update public.purchases set status = ''succeeded'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('purchases', 'delete', 'delete from public.purchases where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_events', 'select', 'select 1 from public.payment_events where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('payment_events', 'insert', 'insert into public.payment_events (provider, event_id, kind, provider_payment_id) values (''stripe'', ''evt_x'', ''payment'', ''pi_x'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_events', 'update', 'update public.payment_events set outcome = null where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_events', 'delete', 'delete from public.payment_events where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_states', 'select', 'select 1 from public.payment_states where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('payment_states', 'insert', 'insert into public.payment_states (provider, provider_payment_id) values (''stripe'', ''pi_x'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_states', 'update', 'update public.payment_states set refunded_cents = 0 where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_states', 'delete', 'delete from public.payment_states where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_disputes', 'select', 'select 1 from public.payment_disputes where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('payment_disputes', 'insert', 'insert into public.payment_disputes (provider, dispute_id, provider_payment_id, status) values (''stripe'', ''dp_x'', ''pi_owner'', ''won'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_disputes', 'update', 'update public.payment_disputes set status = ''won'' where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_disputes', 'delete', 'delete from public.payment_disputes where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_take_backs', 'select', 'select 1 from public.payment_take_backs where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('payment_take_backs', 'insert', 'insert into public.payment_take_backs (purchase_id, user_id, amount) select id, user_id, 1 from public.purchases where provider_payment_id = ''pi_owner''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_take_backs', 'update', 'update public.payment_take_backs set given_back = amount where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('payment_take_backs', 'delete', 'delete from public.payment_take_backs where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('projects', 'select', 'select 1 from public.projects where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('projects', 'insert', 'insert into public.projects (user_id, title, prompt) values (:owner, ''Mine'', ''A prompt'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('projects', 'update', 'update public.projects set title = ''Renamed'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('projects', 'delete', 'delete from public.projects where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('jobs', 'select', 'select 1 from public.jobs where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('jobs', 'insert', 'insert into public.jobs (user_id, project_id, model_id, target_minutes, credits_reserved) values (:owner, gen_random_uuid(), ''standard-v1'', 1, 1)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('jobs', 'update', 'update public.jobs set credits_final = 0 where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('jobs', 'delete', 'delete from public.jobs where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('job_steps', 'select', 'select 1 from public.job_steps where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('job_steps', 'insert', 'insert into public.job_steps (job_id, user_id, name) values (gen_random_uuid(), :owner, ''SCRIPTING'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('job_steps', 'update', 'update public.job_steps set status = ''failed'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('job_steps', 'delete', 'delete from public.job_steps where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('assets', 'select', 'select 1 from public.assets where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('assets', 'insert', 'insert into public.assets (job_id, project_id, user_id, kind, url) values (gen_random_uuid(), gen_random_uuid(), :owner, ''video'', ''https://x'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('assets', 'update', 'update public.assets set url = ''https://evil.example.com'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('assets', 'delete', 'delete from public.assets where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('draft_prompts', 'select', 'select 1 from public.draft_prompts where claimed_by = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('draft_prompts', 'insert', 'insert into public.draft_prompts (prompt, claim_token_hash, expires_at) values (''p'', sha256(''x''), now())', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('draft_prompts', 'update', 'update public.draft_prompts set claimed_by = null, claimed_at = null where claimed_by = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('draft_prompts', 'delete', 'delete from public.draft_prompts where claimed_by = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('idempotency_keys', 'select', 'select 1 from public.idempotency_keys where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('idempotency_keys', 'insert', 'insert into public.idempotency_keys (user_id, operation, key, request_fingerprint, expires_at) values (:owner, ''generate'', ''k'', sha256(''x''), now())', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('idempotency_keys', 'update', 'update public.idempotency_keys set response = ''{}'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('idempotency_keys', 'delete', 'delete from public.idempotency_keys where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('niche_presets', 'select', 'select 1 from public.niche_presets where id = ''history''', 'rows', 'rows', 'rows', 'rows', 'rows'),
  ('niche_presets', 'insert', 'insert into public.niche_presets (id, name, description) values (''new'', ''N'', ''D'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('niche_presets', 'update', 'update public.niche_presets set active = false where id = ''history''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('niche_presets', 'delete', 'delete from public.niche_presets where id = ''history''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('storage_deletions', 'select', 'select 1 from public.storage_deletions where storage_key = ''matrix/owner.mp4''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('storage_deletions', 'insert', 'insert into public.storage_deletions (storage_key, reason) values (''x/y'', ''project_deleted'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('storage_deletions', 'update', 'update public.storage_deletions set reason = ''account_closed'' where storage_key = ''matrix/owner.mp4''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('storage_deletions', 'delete', 'delete from public.storage_deletions where storage_key = ''matrix/owner.mp4''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('asset_upload_signatures', 'select', 'select 1 from public.asset_upload_signatures where storage_key = ''matrix/owner.mp4''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('asset_upload_signatures', 'insert', 'insert into public.asset_upload_signatures (signature_ref, job_id, storage_key) select repeat(''cd'', 32), job_id, ''x/y'' from public.asset_upload_signatures', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('asset_upload_signatures', 'update', 'update public.asset_upload_signatures set storage_key = ''x/y'' where storage_key = ''matrix/owner.mp4''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('asset_upload_signatures', 'delete', 'delete from public.asset_upload_signatures where storage_key = ''matrix/owner.mp4''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('plans', 'select', 'select 1 from public.plans where id = ''test-plan''', 'rows', 'rows', 'rows', 'rows', 'rows'),
  ('plans', 'insert', 'insert into public.plans (id, name, interval, credits, price_cents) values (''test-plan-new'', ''N'', ''month'', 1, 1)', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('plans', 'update', 'update public.plans set credits = 1000000 where id = ''test-plan''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('plans', 'delete', 'delete from public.plans where id = ''test-plan-del''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('subscriptions', 'select', 'select 1 from public.subscriptions where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('subscriptions', 'insert', 'insert into public.subscriptions (user_id, provider, provider_subscription_id, plan_id) values (:owner, ''stripe'', ''sub_new'', ''test-plan'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscriptions', 'update', 'update public.subscriptions set status = ''active'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscriptions', 'delete', 'delete from public.subscriptions where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_payments', 'select', 'select 1 from public.subscription_payments where provider_payment_id = ''pi_sub_owner1''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('subscription_payments', 'insert', 'insert into public.subscription_payments (provider, provider_payment_id, subscription_id, kind, plan_id, period_start, period_end) select ''stripe'', ''pi_new'', id, ''period'', ''test-plan'', now(), now() + interval ''1 day'' from public.subscriptions where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_payments', 'update', 'update public.subscription_payments set period_end = period_end + interval ''1 year'' where provider_payment_id = ''pi_sub_owner1''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_payments', 'delete', 'delete from public.subscription_payments where provider_payment_id = ''pi_sub_owner1''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_rollovers', 'select', 'select 1 from public.subscription_rollovers where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('subscription_rollovers', 'insert', 'insert into public.subscription_rollovers (provider, from_payment_id, to_payment_id, user_id, credits, moved) values (''stripe'', ''pi_sub_owner2'', ''pi_sub_owner1'', :owner, 1, 0)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_rollovers', 'update', 'update public.subscription_rollovers set credits = credits + 1 where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_rollovers', 'delete', 'delete from public.subscription_rollovers where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_events', 'select', 'select 1 from public.subscription_events where event_id = ''evt_sub_state''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('subscription_events', 'insert', 'insert into public.subscription_events (provider, event_id, provider_subscription_id) values (''stripe'', ''evt_new'', ''sub_owner'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_events', 'update', 'update public.subscription_events set outcome = ''x'' where event_id = ''evt_sub_state''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('subscription_events', 'delete', 'delete from public.subscription_events where event_id = ''evt_sub_state''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('closed_account_payments', 'select', 'select 1 from public.closed_account_payments where provider_payment_id = ''pi_closed''', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('closed_account_payments', 'insert', 'insert into public.closed_account_payments (provider, provider_payment_id, event_id, user_id) values (''stripe'', ''pi_y'', ''evt_y'', :owner)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('closed_account_payments', 'update', 'update public.closed_account_payments set refund_status = ''refunded'' where provider_payment_id = ''pi_closed''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('closed_account_payments', 'delete', 'delete from public.closed_account_payments where provider_payment_id = ''pi_closed''', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('spend_limit_settings', 'select', 'select 1 from public.spend_limit_settings', 'rows', 'rows', 'rows', 'rows', 'rows'),
  ('spend_limit_settings', 'insert', 'insert into public.spend_limit_settings (id) values (true)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('spend_limit_settings', 'update', 'update public.spend_limit_settings set daily_spend_cap = 5', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('spend_limit_settings', 'delete', 'delete from public.spend_limit_settings', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('account_controls', 'select', 'select 1 from public.account_controls where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('account_controls', 'insert', 'insert into public.account_controls (user_id) values (:owner)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('account_controls', 'update', 'update public.account_controls set suspended_at = null where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('account_controls', 'delete', 'delete from public.account_controls where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('admin_audit_log', 'select', 'select 1 from public.admin_audit_log where target_user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('admin_audit_log', 'insert', 'insert into public.admin_audit_log (actor_role, action, reason) values (''database'', ''x'', ''y'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('admin_audit_log', 'update', 'update public.admin_audit_log set reason = ''x'' where target_user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('admin_audit_log', 'delete', 'delete from public.admin_audit_log where target_user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('job_refunds', 'select', 'select 1 from public.job_refunds where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('job_refunds', 'insert', 'insert into public.job_refunds (job_id, user_id, source_grant_id, amount, audit_id) select job_id, user_id, source_grant_id, 1, audit_id from public.job_refunds', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('job_refunds', 'update', 'update public.job_refunds set amount = 2 where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('job_refunds', 'delete', 'delete from public.job_refunds where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('invites', 'select', 'select 1 from public.invites where inviter_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('invites', 'insert', 'insert into public.invites (invitee_id, inviter_id, code, idempotency_key) values (gen_random_uuid(), :owner, ''AAAAAAAA'', ''k'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('invites', 'update', 'update public.invites set reward_kept = reward_amount where inviter_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('invites', 'delete', 'delete from public.invites where inviter_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('invite_take_backs', 'select', 'select 1 from public.invite_take_backs where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('invite_take_backs', 'insert', 'insert into public.invite_take_backs (invitee_id, user_id, amount) values (gen_random_uuid(), :owner, 1)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('invite_take_backs', 'update', 'update public.invite_take_backs set given_back = amount where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('invite_take_backs', 'delete', 'delete from public.invite_take_backs where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('debt_repayments', 'select', 'select 1 from public.debt_repayments where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('debt_repayments', 'insert', 'insert into public.debt_repayments (user_id, grant_id, amount) select user_id, id, 1 from public.credit_grants where user_id = :owner limit 1', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('debt_repayments', 'update', 'update public.debt_repayments set returned = amount where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('debt_repayments', 'delete', 'delete from public.debt_repayments where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('webhook_outbox', 'select', 'select 1 from public.webhook_outbox where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('webhook_outbox', 'insert', 'insert into public.webhook_outbox (event_type, user_id, payload) values (''balance.low'', :owner, ''{}'')', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('webhook_outbox', 'update', 'update public.webhook_outbox set status = ''delivered'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('webhook_outbox', 'delete', 'delete from public.webhook_outbox where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('webhook_settings', 'select', 'select 1 from public.webhook_settings', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('webhook_settings', 'insert', 'insert into public.webhook_settings (id) values (true)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('webhook_settings', 'update', 'update public.webhook_settings set low_balance_threshold = 5', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('webhook_settings', 'delete', 'delete from public.webhook_settings', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('consumption_data_consents', 'select', 'select 1 from public.consumption_data_consents where user_id = :owner', 'denied', 'rows', 'none', 'none', 'rows'),
  ('consumption_data_consents', 'insert', 'insert into public.consumption_data_consents (user_id, consented) values (gen_random_uuid(), true)', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('consumption_data_consents', 'update', 'update public.consumption_data_consents set consented = false where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('consumption_data_consents', 'delete', 'delete from public.consumption_data_consents where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('app_store_consumption_requests', 'select', 'select 1 from public.app_store_consumption_requests where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'rows'),
  ('app_store_consumption_requests', 'insert', 'insert into public.app_store_consumption_requests (notification_uuid, transaction_id, environment, status, deadline_at) values (gen_random_uuid(), ''1'', ''Sandbox'', ''sent'', now())', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('app_store_consumption_requests', 'update', 'update public.app_store_consumption_requests set status = ''sent'' where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied'),
  ('app_store_consumption_requests', 'delete', 'delete from public.app_store_consumption_requests where user_id = :owner', 'denied', 'denied', 'denied', 'denied', 'denied');

-- The matrix covers every table of the public schema and every command.
select set_eq(
  $$ select distinct tbl from matrix $$,
  $$ select tablename::text from pg_tables where schemaname = 'public' $$,
  'the matrix covers every table in public');
select is((select count(*)::int from matrix), (select count(distinct tbl)::int * 4 from matrix),
  'the matrix has select, insert, update and delete for every table');

create function pg_temp.run_matrix(p_owner uuid, p_other uuid, p_anonymous uuid)
returns setof text
language plpgsql
as $$
declare
  m record;
  v_who text;
  v_expected text;
  v_sql text;
begin
  for m in select * from matrix order by tbl, array_position(array['select', 'insert', 'update', 'delete'], cmd) loop
    v_sql := replace(m.sql, ':owner', quote_literal(p_owner));
    foreach v_who in array array['anon', 'owner', 'other', 'anonymous', 'service'] loop
      case v_who
        when 'anon' then perform tests.authenticate_as_anon(); v_expected := m.anon;
        when 'owner' then perform tests.authenticate_as(p_owner); v_expected := m.owner;
        when 'other' then perform tests.authenticate_as(p_other); v_expected := m.other;
        when 'anonymous' then perform tests.authenticate_as(p_anonymous); v_expected := m.anonymous;
        else perform tests.authenticate_as_service_role(); v_expected := m.service;
      end case;
      return next is(tests.attempt(v_sql), v_expected, format('%s: %s on %s -> %s', v_who, m.cmd, m.tbl, v_expected));
      perform tests.clear_authentication();
    end loop;
  end loop;
end;
$$;
grant execute on function pg_temp.run_matrix(uuid, uuid, uuid) to public;

select * from pg_temp.run_matrix(:'owner', :'other', :'anonymous');

-- Issue 9.10: projects are written only through RPCs: no direct insert or update, even of one's own.
select tests.authenticate_as(:'other');
select is(tests.attempt(format($$ insert into public.projects (user_id, title, prompt) values (%L, 't', 'p') $$, :'owner')), 'denied',
  'another user cannot create a project owned by the owner');
select is(tests.attempt(format($$ insert into public.projects (user_id, title, prompt) values (%L, 't', 'p') returning user_id $$, :'other')), 'denied',
  'a user cannot create a project directly, even for themselves');
select tests.authenticate_as(:'owner');
select is(tests.attempt(format($$ update public.projects set title = 'x' where user_id = %L $$, :'owner')), 'denied',
  'the owner cannot rename their project directly');
select throws_ok(format($$ update public.projects set user_id = %L $$, :'other'), '42501', null,
  'the owner cannot give a project to another user');
select throws_ok($$ update public.profiles set stripe_customer_id = 'cus_1' $$, '42501', null,
  'a user cannot set their Stripe customer id');
select tests.clear_authentication();

-- The owner's data stays consistent through all of it.
select is(tests.violations(), '[]'::jsonb, 'reconcile finds no violation after the matrix');

select * from finish();
rollback;
