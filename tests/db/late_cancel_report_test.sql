-- A cancel-requested job whose lease lapsed: a report that arrives afterwards is too late
-- ("Cancellation" in migrations/README.md). Whichever event reaches the job first -- complete_job,
-- finish_canceled_job, fail_job, a heartbeat, a step -- ends it CANCELED with nothing captured and
-- answers applied = false, even when no claim pass ran in between (claim_next_jobs skips a job whose
-- hold or balance is busy). Before the lapse the report still counts. Time moves with app.now.
begin;
\ir _setup.psql
select plan(26);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('late@example.com') as u \gset
select app.add_grant(:'u', 'adjustment', 'paid', 90, null, 'adjustment') is not null as topped_up;

create function pg_temp.ledger_of(p_job uuid) returns text[] language plpgsql as $$
begin
  return (select coalesce(array_agg(type || ':' || delta_available || ':' || delta_held order by id), '{}')
            from public.credit_ledger where job_id = p_job);
end;
$$;
grant execute on function pg_temp.ledger_of(uuid) to public;

-- Six jobs of 5 credits each (standard-v1, 3 minutes), claimed with a 60 s lease, then canceled.
select tests.authenticate_as(:'u');
select public.generate('l-1', '{"model_id": "standard-v1", "prompt": "One", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j1 \gset
select public.generate('l-2', '{"model_id": "standard-v1", "prompt": "Two", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j2 \gset
select public.generate('l-3', '{"model_id": "standard-v1", "prompt": "Three", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j3 \gset
select public.generate('l-4', '{"model_id": "standard-v1", "prompt": "Four", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j4 \gset
select public.generate('l-5', '{"model_id": "standard-v1", "prompt": "Five", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j5 \gset
select public.generate('l-6', '{"model_id": "standard-v1", "prompt": "Six", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j6 \gset
select tests.authenticate_as_service_role();
select is(jsonb_array_length(public.claim_next_jobs('w', 6, 60) -> 'jobs'), 6, 'six jobs are claimed with a 60 s lease');
select tests.authenticate_as(:'u');
select is(public.cancel_job(id) ->> 'outcome', 'cancel_requested', 'a cancel is requested') from unnest(array[:'j1', :'j2', :'j3', :'j4', :'j5', :'j6']::uuid[]) id;

-- Before the lapse the report counts: 3 of 5 captured.
select tests.set_now('2030-01-01 00:00:59+00');
select tests.authenticate_as_service_role();
select is(public.complete_job(:'j6', 3, null, null, '[]', 'w') ->> 'applied', 'true', 'a report before the lease ran out counts');
select is(pg_temp.ledger_of(:'j6'), array['hold:-5:5', 'capture:0:-3', 'release:2:-2'], 'it captures what it reports');

-- 61 s later the leases have lapsed; no claim pass runs.
select tests.set_now('2030-01-01 00:01:01+00');
select is(public.complete_job(:'j1', 5, null, null, '[]', 'w') ->> 'applied', 'false', 'complete_job after the lapse is too late');
select is((select status || '/' || credits_final from public.jobs where id = :'j1'), 'CANCELED/0', 'the job is CANCELED, nothing charged');
select is(pg_temp.ledger_of(:'j1'), array['hold:-5:5', 'release:5:-5'], 'ledger: everything released');
select is(public.finish_canceled_job(:'j2', 4, 'w') ->> 'applied', 'false', 'finish_canceled_job after the lapse is too late');
select is(pg_temp.ledger_of(:'j2'), array['hold:-5:5', 'release:5:-5'], 'ledger: everything released, nothing captured');
select is(public.fail_job(:'j3', 'stopped', null, false, 'w') ->> 'applied', 'false', 'fail_job after the lapse answers applied = false');
select is((select status || '/' || credits_final from public.jobs where id = :'j3'), 'CANCELED/0', 'and the job is CANCELED');
select is(public.report_job_progress(:'j4', 'w', 'RENDERING', 90) ->> 'applied', 'false', 'a heartbeat after the lapse is refused');
select is((select status || '/' || credits_final from public.jobs where id = :'j4'), 'CANCELED/0', 'and ends the job CANCELED');
select is(pg_temp.ledger_of(:'j4'), array['hold:-5:5', 'release:5:-5'], 'ledger: everything released');
select is(public.complete_job(:'j4', 5, null, null, '[]', 'w') ->> 'applied', 'false', 'a success after that changes nothing');
select is(pg_temp.ledger_of(:'j4'), array['hold:-5:5', 'release:5:-5'], 'and writes no ledger row');

select is((select count(*)::int from public.jobs where user_id = :'u' and status not in ('READY', 'CANCELED')), 1,
  'only j5, which nothing reported on, is left unfinished');

-- A job without a cancel request keeps today's rule: a late success from its worker still counts
-- while no one else has claimed it. (This claim pass also ends j5, lapsed and cancel-requested.)
select tests.set_now('2030-01-01 00:02:00+00');
select tests.authenticate_as(:'u');
select public.generate('l-7', '{"model_id": "standard-v1", "prompt": "Seven", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as j7 \gset
select tests.authenticate_as_service_role();
select is(jsonb_array_length(public.claim_next_jobs('w7', 5, 60) -> 'jobs'), 1, 'the claim pass claims only the seventh job');
select is((select status || '/' || credits_final from public.jobs where id = :'j5'), 'CANCELED/0', 'and ends j5 CANCELED with nothing charged');
select tests.set_now('2030-01-01 00:03:01+00');
select is(public.complete_job(:'j7', 5, null, null, '[]', 'w7') ->> 'applied', 'true', 'without a cancel request a late success still counts');
select is((select status from public.jobs where id = :'j7'), 'READY', 'and the job is READY');

select * from finish();
rollback;
