-- The back-office job pipeline: claim_next_jobs (visibility timeout), report_job_progress,
-- complete_job, fail_job (retry with backoff, dead letter), expire_stale_holds; every event
-- idempotent and out-of-order safe; reconcile after every scenario. Time moves with app.now.
begin;
\ir _setup.psql
select plan(48);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('alice@example.com') as alice \gset
select app.add_grant(:'alice', 'adjustment', 'paid', 90, null, 'adjustment') is not null as topped_up;
select tests.authenticate_as(:'alice');
-- standard-v1: 2 + 1 per minute. Jobs of 3 minutes cost 5.
select public.generate('job-1', '{"model_id": "standard-v1", "prompt": "One", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j1 \gset
select tests.set_now('2030-01-01 00:00:00.1+00');
select public.generate('job-2', '{"model_id": "standard-v1", "prompt": "Two", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j2 \gset
select tests.set_now('2030-01-01 00:00:00.2+00');
select public.generate('job-3', '{"model_id": "standard-v1", "prompt": "Three", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j3 \gset
select tests.authenticate_as_service_role();
select tests.set_now('2030-01-01 00:00:00+00');

-- 1. Claim: oldest first, up to the limit, with a visibility timeout.
select public.claim_next_jobs('worker-a', 1, 60) as c1 \gset
select is(jsonb_array_length(:'c1'::jsonb -> 'jobs'), 1, 'claim_next_jobs claims up to p_limit jobs');
select is(:'c1'::jsonb -> 'jobs' -> 0 ->> 'id', :'j1', 'the oldest queued job comes first');
select results_eq(format($$ select status, attempts, worker_id, locked_until from public.jobs where id = %L $$, :'j1'),
  $$ values ('PLANNING'::text, 1, 'worker-a'::text, '2030-01-01 00:01:00+00'::timestamptz) $$,
  'a claimed job is PLANNING, attempt 1, owned by the worker until the visibility timeout');
select ok(:'c1'::jsonb -> 'jobs' -> 0 ? 'project', 'the claim carries the project for the worker');
select is(public.claim_next_jobs('worker-b', 1, 60) -> 'jobs' -> 0 ->> 'id', :'j2', 'another worker gets the next job, not the claimed one');
select is(jsonb_array_length(public.claim_next_jobs('worker-c', 10, 60) -> 'jobs'), 1, 'the third job goes to a third worker');
select is(public.claim_next_jobs('worker-d', 10, 60) -> 'jobs', '[]'::jsonb, 'nothing is left to claim');
select is(tests.error_of($$ select public.claim_next_jobs('', 1) $$) ->> 'detail', 'worker_id', 'an empty worker id is invalid_request');
select is(tests.error_of($$ select public.claim_next_jobs('w', 0) $$) ->> 'detail', 'limit', 'a limit of 0 is invalid_request');

-- 2. Progress: forward only, progress never decreases, heartbeat extends the lease.
select is(public.report_job_progress(:'j1', 'worker-a', 'RENDERING', 60, 'Rendering scenes') -> 'job' ->> 'status', 'RENDERING', 'progress moves the job forward');
select is(public.report_job_progress(:'j1', 'worker-a', 'SCRIPTING', 20) -> 'job' ->> 'status', 'RENDERING', 'a late report of an earlier state does not move it back');
select is((select progress from public.jobs where id = :'j1'), 60, 'progress never decreases');
select is((select locked_until from public.jobs where id = :'j1'), '2030-01-01 00:05:00+00'::timestamptz, 'a report extends the lease (default 300 s)');
select is(public.report_job_progress(:'j1', 'worker-z', 'UPLOADING', 90) ->> 'applied', 'false', 'a worker that does not own the job is ignored');
select is(tests.error_of(format($$ select public.report_job_progress(%L, 'worker-a', 'READY', 100) $$, :'j1')) ->> 'detail', 'status',
  'READY is not a progress state (use complete_job)');
select is(tests.error_of(format($$ select public.report_job_progress(%L, 'worker-a', 'RENDERING', 101) $$, :'j1')) ->> 'detail', 'progress',
  'progress above 100 is invalid_request');
select is(tests.error_of($$ select public.report_job_progress(gen_random_uuid(), 'worker-a', 'RENDERING', 1) $$) ->> 'code', 'PT404',
  'an unknown job is PT404');
select is((select array_agg(name || ':' || status order by id) from public.job_steps where job_id = :'j1'),
  array['PLANNING:succeeded', 'RENDERING:running'], 'each state the job entered is a step; the previous one succeeded');

-- 3. Complete: capture the actual cost, release the rest, record assets; idempotent.
select is(tests.error_of(format($$ select public.complete_job(%L, 6) $$, :'j1')) ->> 'detail', 'actual_cost',
  'an actual cost above the credits reserved is invalid_request');
select public.complete_job(:'j1', 3, 'https://cdn.example.com/one.mp4', '{"scenes": 4}',
  '[{"kind": "video", "url": "https://cdn.example.com/one.mp4", "mime_type": "video/mp4", "size_bytes": 1000, "duration_seconds": 180}]',
  'worker-a') as done1 \gset
select is(:'done1'::jsonb -> 'job' ->> 'status', 'READY', 'complete_job makes the job READY');
select is((:'done1'::jsonb -> 'job' ->> 'credits_final')::int, 3, 'the job is charged its actual cost');
select is(jsonb_array_length(:'done1'::jsonb -> 'job' -> 'assets'), 1, 'the assets are recorded');
select is((select captured || '/' || status from public.credit_holds where job_id = :'j1'), '3/captured', 'the hold captured 3 of 5');
select is(public.complete_job(:'j1', 5) ->> 'applied', 'false', 'completing a READY job again is a no-op');
select is(public.fail_job(:'j1', 'late_failure') ->> 'applied', 'false', 'failing a READY job is ignored');
select is(public.report_job_progress(:'j1', 'worker-a', 'UPLOADING', 99) ->> 'applied', 'false', 'progress after READY is ignored');
select is((select count(*)::int from public.credit_ledger where job_id = :'j1' and type = 'capture'), 1, 'one capture, however often the event comes');
select tests.authenticate_as(:'alice');
select is(jsonb_array_length(public.get_job(:'j1') -> 'assets'), 1, 'the user sees the job''s assets through get_job');
select is(public.get_balance(), '{"available": 87, "held": 10, "expiring_soon": 0, "debt": 0}'::jsonb,
  '100 - 3 charged - 10 still held for the two running jobs = 87');
select tests.authenticate_as_service_role();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after completion');

-- 4. Fail and retry with backoff, then dead letter after max attempts.
select is(public.fail_job(:'j2', 'provider_timeout', 'upstream timed out', true, 'worker-b') -> 'job' ->> 'status', 'QUEUED',
  'a retryable failure puts the job back in the queue');
select is((select next_retry_at from public.jobs where id = :'j2'), '2030-01-01 00:00:30+00'::timestamptz, 'the first retry waits 30 s');
select is(public.claim_next_jobs('worker-b', 10, 60) -> 'jobs', '[]'::jsonb, 'the job is not claimable before its retry time');
select tests.set_now('2030-01-01 00:00:31+00');
select is(public.claim_next_jobs('worker-b', 10, 60) -> 'jobs' -> 0 ->> 'id', :'j2', 'after the backoff the job is claimed again');
select public.fail_job(:'j2', 'provider_timeout', null, true) is not null as failed_twice;
select is((select next_retry_at from public.jobs where id = :'j2'), '2030-01-01 00:01:31+00'::timestamptz, 'the second retry waits 60 s');
select tests.set_now('2030-01-01 00:02:00+00');
select public.claim_next_jobs('worker-b', 10, 60) is not null as third_attempt;
select is(public.fail_job(:'j2', 'provider_timeout', null, true) -> 'job' ->> 'status', 'FAILED', 'the third failure is final');
select ok((select dead_lettered_at is not null and credits_final = 0 from public.jobs where id = :'j2'), 'the job is dead-lettered and charged nothing');
select is((select status from public.credit_holds where job_id = :'j2'), 'released', 'its hold was released');

-- 5. A vanished worker: after the visibility timeout another worker takes over; the old one is ignored.
select is(public.claim_next_jobs('worker-e', 10, 60) -> 'jobs', '[]'::jsonb, 'job 3 is still leased to worker-c');
select tests.set_now('2030-01-01 00:03:00+00');
select is(public.claim_next_jobs('worker-e', 10, 60) -> 'jobs' -> 0 ->> 'id', :'j3', 'after the lease lapses another worker claims the job');
select is(public.complete_job(:'j3', 5, null, null, '[]', 'worker-c') ->> 'applied', 'false', 'the old worker''s completion is ignored');
select tests.set_now('2030-01-01 00:10:00+00');
select public.claim_next_jobs('worker-f', 10, 60) is not null as third_claim;
select tests.set_now('2030-01-01 00:20:00+00');
select is(public.claim_next_jobs('worker-g', 10, 60) -> 'jobs', '[]'::jsonb, 'a job abandoned max_attempts times is not claimed again');
select is((select status || '/' || error_code from public.jobs where id = :'j3'), 'FAILED/attempts_exhausted', 'it is dead-lettered instead');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after retries and dead letters');

-- 6. expire_stale_holds: a job nobody works on loses its hold after 6 hours; a leased one keeps it.
select tests.authenticate_as(:'alice');
select public.generate('job-4', '{"model_id": "standard-v1", "prompt": "Four", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j4 \gset
select public.generate('job-5', '{"model_id": "standard-v1", "prompt": "Five", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j5 \gset
select tests.authenticate_as_service_role();
select tests.set_now('2030-01-01 06:20:01+00');
select public.claim_next_jobs('worker-h', 1, 3600) -> 'jobs' -> 0 ->> 'id' as leased \gset
select is(public.expire_stale_holds(), '{"expired": 1, "skipped": 0, "more": false}'::jsonb, 'one stale hold expires; the leased job keeps its hold');
select is((select status || '/' || error_code from public.jobs where id = (case when :'leased' = :'j4' then :'j5' else :'j4' end)::uuid),
  'FAILED/hold_expired', 'the unclaimed job fails with hold_expired');
select is(public.expire_stale_holds(), '{"expired": 0, "skipped": 0, "more": false}'::jsonb, 'running it again expires nothing');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after expiring holds');

select * from finish();
rollback;
