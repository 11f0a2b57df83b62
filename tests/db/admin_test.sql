-- Issue 13: admin identity (app_metadata.role = admin or service_role, refused to users and anon
-- even when called directly), the append-only audit log, every admin action (idempotent, audited,
-- bad input writing nothing), suspension, and spend limits inside generate; reconcile after each.
begin;
\ir _setup.psql
select plan(130);

select tests.set_now('2030-01-01 10:00:00+00');
select tests.create_user('admin@example.com') as admin \gset
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset
-- The team made :admin an admin (auth.users.raw_app_meta_data, which the token's claim copies);
-- app.require_admin checks both.
update auth.users set raw_app_meta_data = '{"provider": "email", "role": "admin"}' where id = :'admin';

-- An admin: a user whose JWT carries app_metadata.role = admin (Supabase sets app_metadata in the
-- token; users cannot change it). A user with another app_metadata role is an ordinary user.
create function pg_temp.authenticate_with_app_role(p_user_id uuid, p_app_role text)
returns void
language plpgsql
as $$
begin
  perform tests.authenticate_as(p_user_id);
  perform set_config('request.jwt.claims', (current_setting('request.jwt.claims')::jsonb
    || jsonb_build_object('app_metadata', jsonb_build_object('provider', 'email', 'role', p_app_role)))::text, true);
end;
$$;
grant execute on function pg_temp.authenticate_with_app_role(uuid, text) to public;
-- Reads a value as the session user (the admin's own RLS view shows only the admin's rows).
create function pg_temp.q(p_sql text)
returns text
language plpgsql
security definer
as $$
declare
  v text;
begin
  execute p_sql into v;
  return v;
end;
$$;
grant execute on function pg_temp.q(text) to public;

-- 1. Who may call: every admin RPC refused to anon (no EXECUTE), to an ordinary user and to a user
-- whose app_metadata role is not admin (forbidden in the body); nothing is written.
create temp table calls (name text, sql text);
grant select on calls to public;
insert into calls values
  ('admin_lookup_user', format($$ select public.admin_lookup_user(%L, 'r') $$, :'alice')),
  ('admin_grant_credits', format($$ select public.admin_grant_credits('k1', %L, 5, null, 'r') $$, :'alice')),
  ('admin_adjust_credits', format($$ select public.admin_adjust_credits('k1', %L, 5, 'r') $$, :'alice')),
  ('admin_void_grant', format($$ select public.admin_void_grant('k1', (select id from public.credit_grants where user_id = %L), 'r') $$, :'alice')),
  ('admin_refund_job', $$ select public.admin_refund_job('k1', gen_random_uuid(), 'r') $$),
  ('admin_set_suspension', format($$ select public.admin_set_suspension('k1', %L, true, 'r') $$, :'alice')),
  ('admin_set_spend_cap', format($$ select public.admin_set_spend_cap('k1', %L, 5, 'r') $$, :'alice')),
  ('admin_export_ledger', format($$ select public.admin_export_ledger(%L, 'r') $$, :'alice')),
  ('admin_list_audit', $$ select public.admin_list_audit() $$);

create function pg_temp.refusals(p_who text)
returns setof text
language plpgsql
as $$
declare
  c record;
  v_error jsonb;
begin
  for c in select * from calls order by name loop
    case p_who
      when 'anon' then perform tests.authenticate_as_anon();
      when 'user' then perform tests.authenticate_as((select id from auth.users where email = 'bob@example.com'));
      else perform pg_temp.authenticate_with_app_role((select id from auth.users where email = 'bob@example.com'), 'support');
    end case;
    v_error := tests.error_of(c.sql);
    return next is(v_error ->> 'code', '42501', format('%s: %s is refused (42501)', p_who, c.name));
    if p_who <> 'anon' then
      return next is(v_error ->> 'hint', 'forbidden', format('%s: %s answers forbidden', p_who, c.name));
    end if;
    perform tests.clear_authentication();
  end loop;
end;
$$;
grant execute on function pg_temp.refusals(text) to public;
select * from pg_temp.refusals('anon');
select * from pg_temp.refusals('user');
select * from pg_temp.refusals('user with app_metadata.role support');
select tests.clear_authentication();
select is((select count(*)::int from public.admin_audit_log), 0, 'refused calls wrote no audit row');
select is((public.admin_lookup_user(:'alice', 'check') -> 'balance' ->> 'available')::int, 10, 'nothing moved for alice');

-- 2. An admin (app_metadata.role = admin) and the service key may; the audit log names them.
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select public.admin_grant_credits('grant-1', :'alice', 25, '2030-02-01 00:00:00+00', 'Tester credits') as g1 \gset
select is(:'g1'::jsonb -> 'grant' ->> 'source', 'promotion', 'an admin grants promotional credits');
select is(:'g1'::jsonb -> 'grant' ->> 'kind', 'promotional', 'the grant is promotional');
select is((:'g1'::jsonb -> 'grant' ->> 'expires_at')::timestamptz, '2030-02-01 00:00:00+00'::timestamptz, 'with the given expiry');
select is((:'g1'::jsonb -> 'balance' ->> 'available')::int, 35, 'alice has 10 welcome + 25 promotional credits');
select is(:'g1'::jsonb ->> 'replayed', 'false', 'a first call is not a replay');
-- The audit table is read by the session user here (admins read it through admin_list_audit).
select tests.clear_authentication();
select results_eq($$ select actor_role, actor_user_id, action, target_user_id, reason, idempotency_key from public.admin_audit_log order by id desc limit 1 $$,
  format($$ values ('admin'::text, %L::uuid, 'grant_credits'::text, %L::uuid, 'Tester credits'::text, 'grant-1'::text) $$, :'admin', :'alice'),
  'the audit row says who, what, on whom, why and the key');
select is((select (before -> 'balance' ->> 'available')::int || '->' || (after -> 'balance' ->> 'available')::int
             from public.admin_audit_log order by id desc limit 1), '10->35', 'the audit row has the balance before and after');
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(public.admin_grant_credits('grant-1', :'alice', 25, '2030-02-01 00:00:00+00', 'Tester credits'),
  :'g1'::jsonb || '{"replayed": true}', 'the same key again answers the stored response');
select is(pg_temp.q(format($q$ select count(*) from public.credit_grants where user_id = %L and source = 'promotion' $q$, :'alice')), '1', 'a replay grants nothing more');
select is(tests.error_of(format($$ select public.admin_grant_credits('grant-1', %L, 26, null, 'Tester credits') $$, :'alice')) ->> 'hint',
  'idempotency_key_reused', 'the same key with another request is refused');
select is(public.admin_list_audit() -> 'items' -> 0 ->> 'action', 'grant_credits', 'an admin reads the audit log, newest first');
select is(tests.attempt('select 1 from public.admin_audit_log'), 'denied',
  'the audit table itself is not readable by users, admins included (admin_list_audit checks the current role)');
select tests.authenticate_as_service_role();
select is(public.admin_set_spend_cap('cap-svc', :'bob', 7, 'Service key test') ->> 'daily_spend_cap', '7', 'the service key may act');
select is((select actor_role from public.admin_audit_log where idempotency_key = 'cap-svc'), 'service_role', 'the audit row names the service role');
select tests.clear_authentication();

-- 3. Bad input writes nothing.
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(tests.error_of(format($$ select public.admin_grant_credits('bad-1', %L, 0, null, 'r') $$, :'alice')) ->> 'detail', 'amount', 'amount 0 is invalid');
select is(tests.error_of(format($$ select public.admin_grant_credits('bad-2', %L, 5, '2029-01-01', 'r') $$, :'alice')) ->> 'detail', 'expires_at', 'a past expiry is invalid');
select is(tests.error_of(format($$ select public.admin_grant_credits('bad-3', %L, 5, null, '  ') $$, :'alice')) ->> 'detail', 'reason', 'a blank reason is invalid');
select is(tests.error_of(format($$ select public.admin_grant_credits('', %L, 5, null, 'r') $$, :'alice')) ->> 'detail', 'idempotency_key', 'an empty key is invalid');
select is(tests.error_of($$ select public.admin_grant_credits('bad-4', gen_random_uuid(), 5, null, 'r') $$) ->> 'hint', 'not_found', 'an unknown user is not_found');
select is(tests.error_of(format($$ select public.admin_adjust_credits('bad-5', %L, 0, 'r') $$, :'alice')) ->> 'detail', 'amount', 'a zero adjustment is invalid');
select is(tests.error_of(format($$ select public.admin_set_spend_cap('bad-6', %L, -1, 'r') $$, :'alice')) ->> 'detail', 'daily_spend_cap', 'a negative cap is invalid');
select is(tests.error_of(format($$ select public.admin_export_ledger(%L, 'r', null, 0) $$, :'alice')) ->> 'detail', 'limit', 'an export page of 0 is invalid');
select is(pg_temp.q('select count(*) from public.admin_audit_log'), '3', 'bad input wrote no audit row (a look-up, a grant, a cap so far)');

-- 4. Adjustments: positive (a paid, never-expiring adjustment grant), negative (draw-down order,
-- never beyond available: refused, no debt).
select public.admin_adjust_credits('adj-1', :'alice', 5, 'Lost purchase') as a1 \gset
select is(:'a1'::jsonb -> 'grant' ->> 'kind', 'paid', 'a positive adjustment is paid');
select is(:'a1'::jsonb -> 'grant' ->> 'expires_at', null, 'and never expires');
select is((:'a1'::jsonb -> 'balance' ->> 'available')::int, 40, 'available 35 + 5');
select public.admin_adjust_credits('adj-2', :'alice', -12, 'Abuse') as a2 \gset
select is((:'a2'::jsonb -> 'balance' ->> 'available')::int, 28, 'a negative adjustment takes 12');
select is(pg_temp.q(format($q$ select remaining from public.credit_grants where user_id = %L and source = 'welcome' $q$, :'alice')), '0',
  'the soonest-expiring grant (welcome, 31 Jan) goes first');
select is(pg_temp.q(format($q$ select remaining from public.credit_grants where user_id = %L and source = 'promotion' $q$, :'alice')), '23', 'then the promotion (1 Feb)');
select is(pg_temp.q(format($q$ select type || ' ' || delta_available from public.credit_ledger where user_id = %L order by id desc limit 1 $q$, :'alice')), 'adjustment -12',
  'one adjustment ledger row');
select is(tests.error_of(format($$ select public.admin_adjust_credits('adj-3', %L, -29, 'Too much') $$, :'alice')) ->> 'hint',
  'insufficient_credits', 'a negative adjustment beyond available is refused (no debt)');
select is((public.admin_lookup_user(:'alice', 'check') -> 'balance'), '{"available": 28, "held": 0, "expiring_soon": 0, "debt": 0}'::jsonb,
  'the refused adjustment moved nothing');
select is(tests.violations(), '[]'::jsonb, 'reconcile holds after grants and adjustments');

-- 5. A job, its capture, refunds (part, rest, never more than captured).
select tests.authenticate_as(:'alice');
select public.generate('gen-a', '{"model_id": "standard-v1", "prompt": "A video", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as job \gset
select tests.clear_authentication();
select public.claim_next_jobs('w1') is not null as claimed;
select public.complete_job(:'job', 4, null, null, '[]', 'w1') is not null as completed;
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(tests.error_of(format($$ select public.admin_refund_job('ref-0', %L, 'r', 5) $$, :'job')) ->> 'detail', 'amount',
  'a refund over the capture (4) is invalid');
select public.admin_refund_job('ref-1', :'job', 'Video failed', 3) as r1 \gset
select is((:'r1'::jsonb ->> 'refunded')::int || '/' || (:'r1'::jsonb ->> 'refundable_left')::int, '3/1', 'a partial refund of 3 of 4');
select is((:'r1'::jsonb -> 'balance' ->> 'available')::int, 27, 'available 28 - 5 held + 1 released + 3 refunded');
select is(pg_temp.q(format($q$ select count(*) from public.credit_ledger where job_id = %L and type = 'adjustment' $q$, :'job')), '1', 'the refund is an adjustment row naming the job');
select is(public.admin_refund_job('ref-1', :'job', 'Video failed', 3), :'r1'::jsonb || '{"replayed": true}', 'a replay refunds nothing more');
select public.admin_refund_job('ref-2', :'job', 'The rest') as r2 \gset
select is((:'r2'::jsonb ->> 'refunded')::int || '/' || (:'r2'::jsonb ->> 'refunded_total')::int, '1/4', 'the rest (amount omitted) is 1, 4 in all');
select is(tests.error_of(format($$ select public.admin_refund_job('ref-3', %L, 'again') $$, :'job')) ->> 'hint', 'nothing_to_refund',
  'a fully refunded job has nothing left');
select is(pg_temp.q(format($q$ select sum(amount) from public.job_refunds where job_id = %L $q$, :'job')), '4', 'refunds add up to the capture');
select is(tests.violations(), '[]'::jsonb, 'reconcile holds after refunds');

-- 6. Void: what remains of a grant, once; a purchase grant cannot be voided; credits of a voided
-- grant held by a job expire when the job gives them back.
select public.admin_grant_credits('grant-2', :'bob', 20, null, 'For voiding') -> 'grant' ->> 'id' as bob_grant \gset
select tests.authenticate_as(:'bob');
select public.generate('gen-b', '{"model_id": "standard-v1", "prompt": "B", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as bob_job \gset
select tests.clear_authentication();
select id as bob_welcome from public.credit_grants where user_id = :'bob' and source = 'welcome' \gset
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select public.admin_void_grant('void-1', :'bob_welcome', 'Welcome abuse') as v1 \gset
select is((:'v1'::jsonb ->> 'voided')::int, 5, 'the welcome grant had 5 left after the 5 held');
select is((:'v1'::jsonb -> 'balance' ->> 'available')::int, 20, 'only the promotion is left available');
select tests.clear_authentication();
select public.fulfill_purchase('stripe', 'pi_bob', 'evt_bob', :'bob', 'starter', 499, 'usd') is not null as bought;
select id as bob_purchase_grant from public.credit_grants where user_id = :'bob' and source = 'purchase' \gset
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(tests.error_of(format($$ select public.admin_void_grant('void-3', %L, 'r') $$, :'bob_purchase_grant')) ->> 'detail',
  'grant_id', 'a purchase grant cannot be voided');
select tests.clear_authentication();
select public.claim_next_jobs('w1') is not null as claimed;
select public.fail_job(:'bob_job', 'boom', null, false, 'w1') is not null as failed;
select is((select remaining from public.credit_grants where user_id = :'bob' and source = 'welcome'), 0,
  'the held credits returned to the voided grant expired at once');
select is(tests.violations(), '[]'::jsonb, 'reconcile holds after a void');

-- 7. Suspension: reads yes; generate, claiming a draft and starting a checkout no; unsuspend.
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(public.admin_set_suspension('susp-1', :'alice', true, 'Chargeback abuse') ->> 'suspended', 'true', 'alice is suspended');
select is(pg_temp.q('select action from public.admin_audit_log order by id desc limit 1'), 'suspend_user', 'audited as suspend_user');
select tests.authenticate_as_anon();
select public.create_draft('A draft for alice') ->> 'claim_token' as token \gset
select tests.authenticate_as(:'alice');
select is((public.get_balance() ->> 'available')::int, 28, 'a suspended user can read the balance');
select is(tests.error_of($$ select public.generate('gen-s', '{"model_id": "standard-v1", "prompt": "x"}') $$) - 'message',
  '{"code": "PT403", "hint": "account_suspended", "detail": null}'::jsonb, 'a suspended user cannot generate');
select is(tests.error_of(format($$ select public.claim_draft(%L) $$, :'token')) ->> 'hint', 'account_suspended', 'nor claim a draft');
select is(tests.error_of($$ select public.begin_purchase('starter', 'buy-s') $$) ->> 'hint', 'account_suspended', 'nor start a checkout');
select is(pg_temp.q(format($q$ select count(*) from public.idempotency_keys where user_id = %L and key in ('gen-s', 'buy-s') $q$, :'alice')), '0', 'the refusals stored nothing');
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(public.admin_set_suspension('susp-2', :'alice', false, 'Resolved') ->> 'suspended', 'false', 'alice is unsuspended');
select tests.authenticate_as(:'alice');
select is(public.claim_draft(:'token') -> 'draft' ->> 'claimed_at' is not null, true, 'an unsuspended user claims the draft');

-- 8. Spend limits: the default daily cap (settings row), an admin's override, the per-request
-- maximum; a refused generate changes nothing; the cap resets at the next UTC midnight.
select tests.clear_authentication();
update public.spend_limit_settings set daily_spend_cap = 8, max_request_credits = 6;
select tests.authenticate_as(:'alice');
select is(tests.error_of($$ select public.generate('cap-1', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 5}') $$) ->> 'hint',
  'request_over_limit', 'a request costing 7 > the maximum 6 is refused');
-- Today alice's job captured 4 (the refunds do not give back cap room): 4 + 3 = 7 <= 8.
select is(public.generate('cap-2', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 1}') ->> 'replayed', 'false', 'within the cap');
select tests.error_of($$ select public.generate('cap-3', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 1}') $$) as capped \gset
select is(:'capped'::jsonb - 'message' - 'detail', '{"code": "PT429", "hint": "daily_spend_cap_reached"}'::jsonb, '7 + 3 > 8 is refused');
select is(:'capped'::jsonb ->> 'detail', '{"required": 3, "resets_at": "2030-01-02T00:00:00Z", "spent_today": 7, "daily_spend_cap": 8}',
  'the error says the cap, the spend, the price and when the cap resets');
select is(pg_temp.q(format($q$ select count(*) from public.jobs where user_id = %L $q$, :'alice')), '2', 'the refused generate made no job');
select is((public.get_balance() ->> 'held')::int, 3, 'and held nothing');
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(public.admin_set_spend_cap('cap-alice', :'alice', 20, 'Power user') ->> 'effective_daily_spend_cap', '20', 'an admin raises alice''s cap');
select tests.authenticate_as(:'alice');
select is(public.generate('cap-3', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 1}') ->> 'replayed', 'false', 'the override lets it pass');
select tests.authenticate_as(:'bob');
select is(public.generate('cap-b1', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 1}') ->> 'replayed', 'false',
  'bob''s own override (7) lets 3 pass');
select is(tests.error_of($$ select public.generate('cap-b2', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 3}') $$) ->> 'hint',
  'daily_spend_cap_reached', 'but not 3 + 5');
select tests.set_now('2030-01-02 00:00:01+00');
select is(public.generate('cap-b2', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 3}') ->> 'replayed', 'false',
  'after midnight UTC the cap is fresh');
select tests.set_now('2030-01-01 10:00:00+00');
select is(tests.violations(), '[]'::jsonb, 'reconcile holds after the capped generations');

-- 9. Look-up, export, audit of reads.
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select public.admin_lookup_user(:'alice', 'Ticket 42', null, 2) as look \gset
select is(jsonb_array_length(:'look'::jsonb -> 'ledger' -> 'items'), 2, 'the ledger page has the asked size');
select is((:'look'::jsonb -> 'ledger' ->> 'next_before') is not null, true, 'with a next page');
select ok(jsonb_array_length(:'look'::jsonb -> 'grants') >= 3 and jsonb_array_length(:'look'::jsonb -> 'jobs') = 3
  and jsonb_array_length(:'look'::jsonb -> 'holds') = 3, 'grants, holds and jobs are listed');
select is((:'look'::jsonb -> 'user' ->> 'daily_spend_cap')::int, 20, 'the user block shows the cap override');
select is(pg_temp.q($q$ select action || ' ' || reason from public.admin_audit_log order by id desc limit 1 $q$), 'lookup_user Ticket 42', 'a look-up is audited');
select public.admin_export_ledger(:'alice', 'GDPR request', null, 3) as page1 \gset
select is((:'page1'::jsonb -> 'items' -> 0 ->> 'id')::bigint < (:'page1'::jsonb -> 'items' -> 1 ->> 'id')::bigint, true, 'the export is oldest first');
select is(pg_temp.q($q$ select count(*) from public.admin_audit_log where action = 'export_ledger' $q$), '1', 'the export is audited once');
select is(jsonb_array_length(public.admin_export_ledger(:'alice', 'GDPR request', (:'page1'::jsonb ->> 'next_after')::bigint, 1000) -> 'items')
  + 3, pg_temp.q(format($q$ select count(*) from public.credit_ledger where user_id = %L $q$, :'alice'))::int, 'the pages cover the whole ledger');
select is(pg_temp.q($q$ select count(*) from public.admin_audit_log where action = 'export_ledger' $q$), '1', 'a next page is not audited again');

-- 10. The audit log is append-only, for everyone (the table owner too).
select tests.clear_authentication();
select throws_ok($$ update public.admin_audit_log set reason = 'changed' $$, '42501', null, 'no update, even by the owner');
select throws_ok($$ delete from public.admin_audit_log $$, '42501', null, 'no delete, even by the owner');
select throws_ok($$ truncate public.admin_audit_log cascade $$, '42501', null, 'no truncate, even by the owner');
select throws_ok($$ delete from public.job_refunds $$, '42501', null, 'job refunds cannot be deleted');
select tests.authenticate_as_service_role();
select is(tests.attempt($$ update public.admin_audit_log set reason = 'x' $$), 'denied', 'service_role has no UPDATE');
select pg_temp.authenticate_with_app_role(:'admin', 'admin');
select is(tests.attempt($$ delete from public.admin_audit_log $$), 'denied', 'an admin has no DELETE');

select * from finish();
rollback;
