-- Admin suspension replays (review, 2026-12-02): admin_set_suspension looked its key up under
-- `set_suspension` but recorded the action as `suspend_user` / `unsuspend_user`, so a retry with the
-- same Idempotency-Key hit the audit log's unique (action, key) index (409) instead of being
-- replayed, and the same key for the other direction was applied instead of refused (422). And a
-- suspended user could start a Stripe subscription checkout (begin_subscription_checkout did not
-- check), where the README says a suspended user cannot start a checkout.
begin;
\ir _setup.psql
select plan(8);

select tests.create_user('suspend-replay@example.test') as u \gset

select tests.authenticate_as_service_role();
select public.admin_set_suspension('susp-k1', :'u', true, 'Chargeback abuse') as first \gset
select is((:'first')::jsonb ->> 'replayed', 'false', 'suspended');
select is(public.admin_set_suspension('susp-k1', :'u', true, 'Chargeback abuse') - 'replayed', (:'first')::jsonb - 'replayed',
          'a retry answers what the first call answered');
select is(public.admin_set_suspension('susp-k1', :'u', true, 'Chargeback abuse') ->> 'replayed', 'true',
  'a retry with the same key is replayed (it raised a unique violation)');
select is(tests.error_of(format($$ select public.admin_set_suspension('susp-k1', %L, false, 'Chargeback abuse') $$, :'u')) - 'message',
  '{"code": "PT422", "hint": "idempotency_key_reused", "detail": "idempotency_key"}'::jsonb,
  'the same key to unsuspend is refused (it was applied)');
select tests.clear_authentication();
select is((select count(*)::int from public.admin_audit_log where idempotency_key = 'susp-k1'), 1, 'one audit row for the key');
select is((select suspended_at is not null from public.account_controls where user_id = :'u'), true, 'still suspended');

select tests.authenticate_as(:'u');
select is(tests.error_of($$ select public.begin_subscription_checkout('pro-monthly') $$) - 'message',
  '{"code": "PT403", "hint": "account_suspended", "detail": null}'::jsonb,
  'a suspended user cannot start a subscription checkout');
select tests.clear_authentication();
select tests.authenticate_as_service_role();
select public.admin_set_suspension('susp-k2', :'u', false, 'Resolved') is not null as unsuspended \gset
select tests.authenticate_as(:'u');
select is(public.begin_subscription_checkout('pro-monthly') #>> '{plan,id}', 'pro-monthly', 'unsuspended, it can');
select tests.clear_authentication();

select * from finish();
rollback;
