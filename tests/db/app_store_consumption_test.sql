-- App Store consumption requests (migrations/README.md, "App Store consumption requests"): one
-- record per notification, consent decides whether Apple is answered, the facts computed from the
-- ledger when the request is claimed, the attempt-checked outcomes (sent once, rejected, retried
-- with back-off, expired after 12 hours), and who may call what.
begin;
\ir _setup.psql
select plan(37);

select tests.create_user('consume@example.test') as u \gset
select tests.create_user('other-consume@example.test') as o \gset
select tests.authenticate_as_service_role();
select public.fulfill_purchase('app_store', '2000000000000001', 'transaction:2000000000000001', :'u', 'starter', 499, 'usd') is not null as paid \gset
select public.fulfill_purchase('app_store', '2000000000000002', 'transaction:2000000000000002', :'o', 'starter', 499, 'usd') is not null as paid2 \gset

-- Consent: off by default, set by the user only, readable by the user only.
select tests.authenticate_as(:'u');
select is(public.get_consumption_consent(), '{"consented": false, "updated_at": null}'::jsonb, 'no consent until the user gives it');
select tests.authenticate_as_service_role();
select is(public.record_app_store_consumption_request('11111111-1111-4111-8111-111111111111', '2000000000000001', 'Sandbox', now(), 'UNINTENDED_PURCHASE')
  -> 'request' ->> 'skip_reason', 'no_consent', 'without consent the request is recorded and not answered');
select tests.authenticate_as(:'u');
select is((public.set_consumption_consent(true) ->> 'consented')::boolean, true, 'the user consents');
select is((public.set_consumption_consent(true) ->> 'consented')::boolean, true, 'setting it again changes nothing');
select is((select count(*)::int from public.consumption_data_consents), 1, 'a user sees only their own consent');
select tests.authenticate_as(:'o');
select is((select count(*)::int from public.consumption_data_consents), 0, 'and not another user''s');
select is(tests.attempt(format('insert into public.consumption_data_consents (user_id, consented) values (%L, true)', :'o')), 'denied',
  'users write their consent only through set_consumption_consent');
select is(tests.error_of('select public.set_consumption_consent(null)') ->> 'detail', 'consented', 'null is refused');

-- Spend 40 of the 110 credits: the welcome grant (expires first) gives 10, the purchase 30.
select tests.authenticate_as(:'u');
select public.generate('consume-1', '{"model_id": "premium-v1", "prompt": "Tide pools", "target_minutes": 30}') -> 'response' -> 'job' ->> 'id' as job \gset
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-consume', 10, 300) is not null as claimed \gset
select (public.complete_job(:'job', 40) ->> 'applied')::boolean as done \gset

-- Recorded once per notification.
select public.record_app_store_consumption_request('22222222-2222-4222-8222-222222222222', '2000000000000001', 'Sandbox', now(), 'OTHER') as rec \gset
select is(:'rec'::jsonb -> 'request' ->> 'status', 'pending', 'with consent the request waits to be sent');
select ok((:'rec'::jsonb -> 'request' ->> 'deadline_at')::timestamptz between now() + interval '11 hours 59 minutes' and now() + interval '12 hours', 'within 12 hours');
select is((public.record_app_store_consumption_request('22222222-2222-4222-8222-222222222222', '2000000000000001', 'Sandbox', now()) ->> 'recorded')::boolean,
  false, 'a repeated notification records nothing');
select is((select count(*)::int from public.app_store_consumption_requests where notification_uuid = '22222222-2222-4222-8222-222222222222'), 1, 'one row');
select :'rec'::jsonb -> 'request' ->> 'id' as rid \gset

-- Claimed with the facts from the ledger, now.
select public.claim_app_store_consumption_requests(10, 60) as c1 \gset
select is(jsonb_array_length(:'c1'::jsonb -> 'items'), 1, 'one due request');
select is(:'c1'::jsonb -> 'items' -> 0 -> 'body',
  '{"customerConsented": true, "deliveryStatus": "DELIVERED", "sampleContentProvided": true, "consumptionPercentage": 30000}'::jsonb,
  '30 of the purchase''s 100 credits were spent: 30% in milliunits; the welcome credits were a free sample');
select is((:'c1'::jsonb -> 'items' -> 0 ->> 'attempt')::int, 1, 'first attempt');
select is(jsonb_array_length(public.claim_app_store_consumption_requests(10, 60) -> 'items'), 0, 'a leased request is not claimed again');

-- Apple down: retried with back-off; a report of another attempt is ignored; 202 is final.
select is(public.record_app_store_consumption_attempt(:'rid', 1, 500, 'HTTP 500') -> 'request' ->> 'status', 'pending', 'a 500 is retried');
select ok((select next_attempt_at between now() + interval '29 seconds' and now() + interval '31 seconds'
             from public.app_store_consumption_requests where id = :'rid'), 'after 30 s');
select is((public.record_app_store_consumption_attempt(:'rid', 7, 202) ->> 'applied')::boolean, false, 'a report of another attempt changes nothing');
select tests.clear_authentication();
update public.app_store_consumption_requests set next_attempt_at = now() where id = :'rid';
select tests.authenticate_as_service_role();
select public.claim_app_store_consumption_requests(10, 60, :'rid') as c2 \gset
select is((:'c2'::jsonb -> 'items' -> 0 ->> 'attempt')::int, 2, 'due again: the second attempt');
select is(public.record_app_store_consumption_attempt(:'rid', 2, 202) -> 'request' ->> 'status', 'sent', 'Apple accepted');
select tests.clear_authentication();
update public.app_store_consumption_requests set next_attempt_at = now() - interval '1 minute' where id = :'rid';
select tests.authenticate_as_service_role();
select is(jsonb_array_length(public.claim_app_store_consumption_requests(10, 60) -> 'items'), 0, 'a sent request is never claimed again');
select is((public.record_app_store_consumption_attempt(:'rid', 2, 202) ->> 'applied')::boolean, false, 'nor reported again');

-- Unknown transactions, withdrawn consent, Apple's refusal, the deadline.
select is(public.record_app_store_consumption_request('33333333-3333-4333-8333-333333333333', '2999999999999999', 'Sandbox', now())
  -> 'request' ->> 'skip_reason', 'unknown_transaction', 'a transaction that is not ours is recorded and not answered');
select public.record_app_store_consumption_request('44444444-4444-4444-8444-444444444444', '2000000000000001', 'Production', now()) -> 'request' ->> 'id' as r4 \gset
select tests.authenticate_as(:'u');
select is((public.set_consumption_consent(false) ->> 'consented')::boolean, false, 'the user withdraws consent');
select tests.authenticate_as_service_role();
select is((public.claim_app_store_consumption_requests(10, 60) ->> 'skipped')::int, 1, 'a withdrawn consent skips the request at send time');
select is((select skip_reason from public.app_store_consumption_requests where id = :'r4'), 'no_consent', 'as no_consent');
select tests.authenticate_as(:'u');
select public.set_consumption_consent(true) is not null as again \gset
select tests.authenticate_as_service_role();
select public.record_app_store_consumption_request('55555555-5555-4555-8555-555555555555', '2000000000000001', 'Sandbox', now()) -> 'request' ->> 'id' as r5 \gset
select public.claim_app_store_consumption_requests(10, 60, :'r5') is not null as c5 \gset
select is(public.record_app_store_consumption_attempt(:'r5', 1, 404, 'TransactionIdNotFoundError') -> 'request' ->> 'status', 'rejected', 'a 404 is final');
select public.record_app_store_consumption_request('66666666-6666-4666-8666-666666666666', '2000000000000001', 'Sandbox', now() - interval '13 hours') -> 'request' ->> 'id' as r6 \gset
select is((public.claim_app_store_consumption_requests(0, 60) ->> 'expired')::int, 1, 'past its deadline a request expires, without being sent');
select is((select status from public.app_store_consumption_requests where id = :'r6'), 'expired', 'as expired');
select is(tests.error_of('select public.record_app_store_consumption_request(gen_random_uuid(), ''20/01'', ''Sandbox'', now())') ->> 'detail', 'transaction_id',
  'a transaction id that could not be a URL path segment is refused');

-- Undelivered (a purchase never credited) answers 0%.
select tests.clear_authentication();
insert into public.purchases (id, user_id, provider, provider_payment_id, package_id, credits, amount_cents, currency, status)
values ('77777777-7777-4777-8777-777777777777', :'u', 'app_store', '2000000000000007', 'starter', 100, 499, 'usd', 'pending');
select is(app.app_store_consumption_body('77777777-7777-4777-8777-777777777777'),
  '{"customerConsented": true, "deliveryStatus": "UNDELIVERED_OTHER", "sampleContentProvided": true, "consumptionPercentage": 0}'::jsonb,
  'a purchase never credited is undelivered, 0%');

-- Who may call what.
select tests.authenticate_as(:'u');
select is(tests.attempt('select * from public.app_store_consumption_requests'), 'denied', 'users cannot read consumption requests');
select is(tests.error_of('select public.claim_app_store_consumption_requests()') ->> 'code', '42501', 'users cannot claim');
select is(tests.error_of('select public.record_app_store_consumption_request(gen_random_uuid(), ''1'', ''Sandbox'', now())') ->> 'code', '42501', 'users cannot record');
select tests.authenticate_as_anon();
select is(tests.error_of('select public.set_consumption_consent(true)') ->> 'code', '42501', 'anon cannot set a consent');
select is(tests.error_of('select public.record_app_store_consumption_attempt(gen_random_uuid(), 1, 202)') ->> 'code', '42501', 'anon cannot report');

select * from finish();
rollback;
