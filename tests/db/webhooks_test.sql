-- The webhook outbox (migrations/README.md, "Webhooks"): events written in the transaction of the
-- change, balance.low once per downward crossing, claims in bounded SKIP LOCKED batches, back-off,
-- dead letters, attempt-checked reports, and who may call what.
begin;
\ir _setup.psql
select plan(27);

select tests.create_user('hooks@example.test') as u \gset
select tests.authenticate_as_service_role();
-- Nothing else is due in this transaction's view: earlier suites rolled back.
select is((select count(*)::int from public.webhook_outbox where user_id = :'u'), 0, 'a sign-up writes no event (10 welcome credits, threshold 20: no crossing upward)');

-- purchase.granted with the purchase, then balance.low when spending crosses 20 downward, once.
select public.fulfill_purchase('stripe', 'pi_hook', 'evt_hook', :'u', 'starter', 499, 'usd') is not null as paid \gset
select is((select payload -> 'data' -> 'purchase' ->> 'provider_payment_id' from public.webhook_outbox where user_id = :'u' and event_type = 'purchase.granted'),
  'pi_hook', 'purchase.granted carries the purchase');
select is((select payload ->> 'type' from public.webhook_outbox where user_id = :'u' and event_type = 'purchase.granted'), 'purchase.granted',
  'the payload is {type, timestamp, data}');
select tests.authenticate_as(:'u');
select public.generate('hook-1', '{"model_id": "premium-v1", "prompt": "Hooks", "target_minutes": 30}') -> 'response' -> 'job' ->> 'id' as job1 \gset
select tests.clear_authentication();
select is((select count(*)::int from public.webhook_outbox where user_id = :'u' and event_type = 'balance.low'), 1, '110 - 95 = 15 < 20: balance.low');
select is((select (payload -> 'data' ->> 'available')::int from public.webhook_outbox where user_id = :'u' and event_type = 'balance.low'), 15, 'with the balance');
select tests.authenticate_as(:'u');
select public.generate('hook-2', '{"model_id": "draft-v1", "prompt": "Hooks", "target_minutes": 1}') is not null as job2 \gset
select tests.clear_authentication();
select is((select count(*)::int from public.webhook_outbox where user_id = :'u' and event_type = 'balance.low'), 1, 'still below: no second event');

-- job.failed and job.succeeded.
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-hook', 10, 300) is not null as claimed \gset
select (public.fail_job(:'job1', 'render_crashed', 'boom', false) ->> 'applied')::boolean as failed1 \gset
select is((select payload -> 'data' -> 'job' ->> 'error_code' from public.webhook_outbox where event_type = 'job.failed' and user_id = :'u'), 'render_crashed', 'job.failed');
select is((select count(*)::int from public.webhook_outbox where user_id = :'u' and event_type = 'balance.low'), 1, 'the release went up: no event');
select (public.complete_job(j.id, 1) ->> 'applied')::boolean as done from public.jobs j where j.user_id = :'u' and j.id <> :'job1' \gset
select is((select payload -> 'data' -> 'job' ->> 'credits_final' from public.webhook_outbox where event_type = 'job.succeeded' and user_id = :'u'), '1', 'job.succeeded');
-- Back above 20, then below again: a second crossing.
select tests.authenticate_as(:'u');
select public.generate('hook-3', '{"model_id": "premium-v1", "prompt": "Hooks", "target_minutes": 30}') is not null as job3 \gset
select tests.clear_authentication();
select is((select count(*)::int from public.webhook_outbox where user_id = :'u' and event_type = 'balance.low'), 2, 'a new crossing, a new event');

-- purchase.reversed on a refund.
select tests.authenticate_as_service_role();
select public.refund_purchase_amount('stripe', 'pi_hook', 'evt_hook_r', 499, 499, 'charge.refunded') is not null as refunded \gset
select is((select (payload -> 'data' ->> 'credits_taken_back')::int from public.webhook_outbox where event_type = 'purchase.reversed' and user_id = :'u'),
  100, 'purchase.reversed with what was taken back');

-- The threshold is configurable; 0 turns balance.low off.
update public.webhook_settings set low_balance_threshold = 0;  -- as the service role, as the back office would
select tests.create_user('quiet@example.test') as q \gset
select tests.authenticate_as(:'q');
select public.generate('quiet-1', '{"model_id": "premium-v1", "prompt": "Quiet", "target_minutes": 1}') is not null as quiet \gset
select tests.clear_authentication();
select is((select count(*)::int from public.webhook_outbox where user_id = :'q'), 0, 'threshold 0: no balance.low');

-- Claims: bounded, oldest first, leased; SKIP LOCKED leaves a locked row to others.
update public.webhook_outbox set next_attempt_at = now() - interval '1 second' where status = 'pending';
select tests.authenticate_as_service_role();
select is(tests.error_of('select public.claim_webhook_deliveries(0)') ->> 'detail', 'p_limit', 'a batch is 1 to 50');
select is(tests.error_of('select public.claim_webhook_deliveries(51)') ->> 'detail', 'p_limit', 'not more');
select jsonb_array_length(public.claim_webhook_deliveries(2) -> 'items') as first_batch \gset
select is(:first_batch, 2, 'a batch of 2');
select is((select count(*)::int from public.webhook_outbox where status = 'pending' and attempts = 1 and next_attempt_at > now() + interval '50 seconds'), 2,
  'claimed rows are leased for 60 s and count an attempt');
select public.claim_webhook_deliveries(50) -> 'items' as rest \gset
select ok(jsonb_array_length(:'rest'::jsonb) >= 4, 'the rest in the next batch, not the leased ones again');
select is((select count(*)::int from public.webhook_outbox where attempts > 1), 0, 'no row was claimed twice');

-- Reports: a failure backs off 30 s x 2^(attempts-1); a late report of another attempt changes nothing; success is final.
select 'msg_' || replace(id::text, '-', '') as mid from public.webhook_outbox where user_id = :'u' and event_type = 'purchase.granted' \gset
select is(public.record_webhook_delivery(:'mid', 1, false, 500, 'HTTP 500') -> 'webhook' ->> 'status', 'pending', 'a failed attempt stays pending');
select ok((select next_attempt_at between now() + interval '29 seconds' and now() + interval '31 seconds' from public.webhook_outbox
            where 'msg_' || replace(id::text, '-', '') = :'mid'), 'retried after 30 s');
select tests.clear_authentication();
update public.webhook_outbox set attempts = 4 where 'msg_' || replace(id::text, '-', '') = :'mid';
select tests.authenticate_as_service_role();
select public.record_webhook_delivery(:'mid', 4, false, null, 'timeout') is not null as fourth \gset
select ok((select next_attempt_at between now() + interval '239 seconds' and now() + interval '241 seconds' from public.webhook_outbox
            where 'msg_' || replace(id::text, '-', '') = :'mid'), 'the 4th failure waits 240 s');
select is((public.record_webhook_delivery(:'mid', 3, true, 200) ->> 'applied')::boolean, false, 'a report of an earlier attempt is ignored');
select is(public.record_webhook_delivery(:'mid', 4, true, 204) -> 'webhook' ->> 'status', 'delivered', 'a success is final');
select tests.clear_authentication();
update public.webhook_outbox set attempts = 12, status = 'pending' where user_id = :'u' and event_type = 'job.failed';
select tests.authenticate_as_service_role();
select is(public.record_webhook_delivery((select 'msg_' || replace(id::text, '-', '') from public.webhook_outbox where user_id = :'u' and event_type = 'job.failed'),
  12, false, 503, 'HTTP 503') -> 'webhook' ->> 'status', 'failed', 'after 12 attempts the event is dead');
select is((public.list_webhook_deliveries('failed', 10) -> 'items' -> 0 ->> 'event_type'), 'job.failed', 'the back office sees it');

-- Refused to users and anon, through PostgREST too (e2e).
select tests.authenticate_as(:'u');
select is(tests.error_of('select public.list_webhook_deliveries()') ->> 'code', '42501', 'users cannot list deliveries');
select tests.authenticate_as_anon();
select is(tests.error_of('select public.claim_webhook_deliveries()') ->> 'code', '42501', 'anon cannot claim');

select * from finish();
rollback;
