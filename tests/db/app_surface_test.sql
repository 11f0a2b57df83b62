-- Issue 11, the database side of the app surface: the PRD job model (states, transitions, steps,
-- failed_step), cancellation (queued, running, finished; ledger rows exact; idempotent; the
-- pipeline's side), projects (list, get, update with its text rules, soft delete), list_jobs,
-- asset storage and the R2 deletion queue, realtime membership, RLS on what another user owns.
-- Account closing has its own file (account_closing_test.sql). Time moves with app.now.
begin;
\ir _setup.psql
select plan(130);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset
select app.add_grant(:'alice', 'adjustment', 'paid', 90, null, 'adjustment') is not null as topped_up;

create function pg_temp.ledger_of(p_job uuid) returns text[] language plpgsql as $$
begin
  return (select coalesce(array_agg(type || ':' || delta_available || ':' || delta_held order by id), '{}')
            from public.credit_ledger where job_id = p_job);
end;
$$;
grant execute on function pg_temp.ledger_of(uuid) to public;

-- standard-v1 costs 2 + 1 per minute: a 3-minute job holds 5. Alice has 100 (10 welcome + 90).
select tests.authenticate_as(:'alice');
select public.generate('s-1', '{"model_id": "standard-v1", "prompt": "Queued one", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as q1 \gset
select tests.set_now('2030-01-01 00:00:01+00');
select public.generate('s-2', '{"model_id": "standard-v1", "prompt": "Running one", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as r1 \gset
select tests.set_now('2030-01-01 00:00:02+00');
select public.generate('s-3', '{"model_id": "standard-v1", "prompt": "Running two", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as r2 \gset
select tests.set_now('2030-01-01 00:00:03+00');
select public.generate('s-4', '{"model_id": "standard-v1", "prompt": "Running three", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as r3 \gset
select tests.set_now('2030-01-01 00:00:04+00');
select public.generate('s-5', '{"model_id": "standard-v1", "prompt": "Abandoned", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as r4 \gset
select tests.set_now('2030-01-01 00:00:05+00');
select public.generate('s-6', '{"model_id": "standard-v1", "prompt": "Done", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as d1 \gset
select tests.clear_authentication();
-- q1 stays queued: claim the other five (oldest first, so move q1 out of the way by making it wait for a retry).
update public.jobs set next_retry_at = '2031-01-01' where id = :'q1';
select tests.authenticate_as_service_role();
select tests.set_now('2030-01-01 00:01:00+00');
select is(jsonb_array_length(public.claim_next_jobs('w', 5, 600) -> 'jobs'), 5, 'five jobs are claimed');
select tests.clear_authentication();
update public.jobs set next_retry_at = null where id = :'q1';

-- 1. The job model.
select is((select status from public.jobs where id = :'r1'), 'SCRIPTING', 'a claimed job is in the first working state, SCRIPTING');
select throws_ok(format($$ update public.jobs set status = 'READY', finished_at = now() where id = %L $$, :'q1'), '55000', null,
  'QUEUED -> READY is refused by the transition trigger');
select throws_ok(format($$ update public.jobs set status = 'PENDING' where id = %L $$, :'q1'), '55000', null,
  'QUEUED -> PENDING is refused');
select throws_ok(format($$ insert into public.jobs (user_id, project_id, model_id, status, target_minutes, credits_reserved, finished_at)
  select user_id, project_id, model_id, 'READY', 1, 1, now() from public.jobs where id = %L $$, :'q1'), '55000', null,
  'a job cannot be inserted READY');
select tests.authenticate_as_service_role();
select is(public.report_job_progress(:'r1', 'w', 'VOICING', 30) -> 'job' ->> 'status', 'VOICE_GEN',
  'an old state name from the pipeline is mapped (VOICING -> VOICE_GEN)');
select is(public.report_job_progress(:'r1', 'w', 'ALIGNMENT', 35) -> 'job' ->> 'status', 'ALIGNMENT', 'the PRD names are accepted');
select is(public.report_job_progress(:'r1', 'w', 'SCRIPTING', 40) -> 'job' ->> 'status', 'ALIGNMENT', 'a job never moves back on progress');
select tests.clear_authentication();
select throws_ok(format($$ update public.jobs set status = 'SCRIPTING' where id = %L $$, :'r1'), '55000', null,
  'a working job cannot move back within the same attempt');
select tests.authenticate_as_service_role();
select is(tests.error_of(format($$ select public.report_job_progress(%L, 'w', 'CANCELED') $$, :'r1')) ->> 'detail', 'status',
  'CANCELED is not a progress state');
select is(tests.error_of(format($$ select public.report_job_progress(%L, 'w', 'NOPE') $$, :'r1')) ->> 'detail', 'status',
  'an unknown state is invalid_request');

-- Steps: their own status, progress, error, log excerpt and artifacts.
select is(public.report_job_step(:'r1', 'w', 'VISUAL_PLAN', 'started', 10, null, 'planning 12 shots', '[{"name": "plan.json"}]') ->> 'applied', 'true',
  'a step event is applied');
select is((select status || '/' || progress || '/' || log_excerpt || '/' || (artifacts -> 0 ->> 'name') from public.job_steps where job_id = :'r1' and name = 'VISUAL_PLAN'),
  'started/10/planning 12 shots/plan.json', 'the step records status, progress, log excerpt and artifacts');
select public.report_job_step(:'r1', 'w', 'VISUAL_PLAN', 'failed', null, 'model refused', null, null) is not null as step_failed;
select is((select status || '/' || error || '/' || log_excerpt from public.job_steps where job_id = :'r1' and name = 'VISUAL_PLAN'),
  'failed/model refused/planning 12 shots', 'a later event keeps what it does not change');
select is(public.report_job_step(:'r1', 'other-worker', 'VISUAL_PLAN', 'succeeded') ->> 'applied', 'false', 'a worker that does not hold the job is ignored');
select is(tests.error_of(format(c.sql, :'r1')) ->> 'detail', c.field, 'a bad step event is invalid_request naming ' || c.field)
  from (values
    ($$ select public.report_job_step(%L, 'w', 'READY', 'started') $$, 'step'),
    ($$ select public.report_job_step(%L, 'w', 'IMAGE_GEN', 'running') $$, 'status'),
    ($$ select public.report_job_step(%L, 'w', 'IMAGE_GEN', 'started', 101) $$, 'progress'),
    ($$ select public.report_job_step(%L, 'w', 'IMAGE_GEN', 'started', 1, '') $$, 'error'),
    ($$ select public.report_job_step(%L, 'w', 'IMAGE_GEN', 'started', 1, null, repeat('x', 8001)) $$, 'log_excerpt'),
    ($$ select public.report_job_step(%L, 'w', 'IMAGE_GEN', 'started', 1, null, null, '{}') $$, 'artifacts')) c(sql, field);

-- failed_step on failure.
select public.fail_job(:'r3', 'render_crash', 'crashed', false, 'w') is not null as r3_failed;
select is((select status || '/' || failed_step from public.jobs where id = :'r3'), 'FAILED/SCRIPTING', 'a failed job records the step it failed in');
select tests.clear_authentication();
select throws_ok(format($$ update public.jobs set status = 'QUEUED' where id = %L $$, :'r3'), '55000', null,
  'a FAILED job never changes state again');

-- 2. cancel_job.
select tests.authenticate_as(:'alice');
select is(public.cancel_job(:'q1') ->> 'outcome', 'canceled', 'a queued job is canceled at once');
select is((select status || '/' || credits_final from public.jobs where id = :'q1'), 'CANCELED/0', 'it is CANCELED and charged nothing');
select is(pg_temp.ledger_of(:'q1'), array['hold:-5:5', 'release:5:-5'], 'ledger: the hold of 5, then its release of 5');
select is(public.cancel_job(:'q1') ->> 'outcome', 'unchanged', 'cancelling it again changes nothing');
select is(pg_temp.ledger_of(:'q1'), array['hold:-5:5', 'release:5:-5'], 'and writes no ledger row');

select is(public.cancel_job(:'r1') ->> 'outcome', 'cancel_requested', 'a running job is marked cancel-requested');
select ok((public.get_job(:'r1') ->> 'cancel_requested_at') is not null and public.get_job(:'r1') ->> 'status' = 'ALIGNMENT',
  'it keeps running until the pipeline learns of it');
select is(public.cancel_job(:'r1') ->> 'outcome', 'unchanged', 'requesting again is a no-op');
select tests.authenticate_as_service_role();
select is(public.report_job_progress(:'r1', 'w', 'IMAGE_GEN', 50) ->> 'cancel_requested', 'true', 'the heartbeat answer says cancel_requested');
select is(public.finish_canceled_job(:'r1', 2, 'w') -> 'job' ->> 'status', 'CANCELED', 'the pipeline ends the job CANCELED');
select is(pg_temp.ledger_of(:'r1'), array['hold:-5:5', 'capture:0:-2', 'release:3:-3'],
  'ledger: the 2 reported as spent are captured, the other 3 released');
select is(public.finish_canceled_job(:'r1', 5, 'w') ->> 'applied', 'false', 'a repeated cancel acknowledgement is ignored');
select is(public.finish_canceled_job(:'r2', 1, 'w') ->> 'applied', 'false', 'a job without a cancel request cannot be ended this way');
select is(tests.error_of(format($$ select public.report_job_progress(%L, 'w', 'RENDERING') $$, :'r1')), null, 'a late heartbeat raises nothing');
select is(public.report_job_progress(:'r1', 'w', 'RENDERING') ->> 'applied', 'false', 'and changes nothing');

-- complete_job on a cancel-requested job ends it CANCELED, charged the reported cost.
select tests.authenticate_as(:'alice');
select public.cancel_job(:'r2') is not null as r2_requested;
select tests.authenticate_as_service_role();
select is(public.complete_job(:'r2', 4, null, null, '[]', 'w') -> 'job' ->> 'status', 'CANCELED', 'a success event after a cancel request ends CANCELED');
select is(pg_temp.ledger_of(:'r2'), array['hold:-5:5', 'capture:0:-4', 'release:1:-1'], 'ledger: 4 captured, 1 released');

-- The lease of a cancel-requested job runs out with nothing reported: CANCELED, nothing captured.
select tests.authenticate_as(:'alice');
select public.cancel_job(:'r4') is not null as r4_requested;
select tests.clear_authentication();
update public.jobs set locked_until = '2030-01-01 00:00:59+00' where id = :'r4';
select tests.authenticate_as_service_role();
select is(public.claim_next_jobs('w2', 5, 60) -> 'jobs', '[]'::jsonb, 'the lapsed cancel-requested job is not claimed again');
select is((select status || '/' || credits_final from public.jobs where id = :'r4'), 'CANCELED/0', 'it ends CANCELED with nothing charged');
select is(pg_temp.ledger_of(:'r4'), array['hold:-5:5', 'release:5:-5'], 'ledger: everything released');

-- fail_job on a cancel-requested job: CANCELED, never retried, nothing charged.
select tests.authenticate_as(:'alice');
select public.generate('s-7', '{"model_id": "standard-v1", "prompt": "Fails", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as f1 \gset
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w3', 1, 60) is not null as f1_claimed;
select tests.authenticate_as(:'alice');
select public.cancel_job(:'f1') is not null as f1_requested;
select tests.authenticate_as_service_role();
select is(public.fail_job(:'f1', 'stopped', null, true, 'w3') -> 'job' ->> 'status', 'CANCELED', 'a retryable failure after a cancel request ends CANCELED');
select is(pg_temp.ledger_of(:'f1'), array['hold:-5:5', 'release:5:-5'], 'ledger: everything released');

-- A finished job is unchanged; someone else's job does not exist.
select public.complete_job(:'d1', 3, null, null, '[]', 'w') is not null as d1_done;
select tests.authenticate_as(:'alice');
select is(public.cancel_job(:'d1') ->> 'outcome', 'unchanged', 'cancelling a READY job changes nothing');
select is((select status from public.jobs where id = :'d1'), 'READY', 'it stays READY');
select tests.authenticate_as(:'bob');
select is(tests.error_of(format($$ select public.cancel_job(%L) $$, :'q1')) - 'message',
  '{"code": "PT404", "hint": "not_found", "detail": "job_id"}'::jsonb, 'another user''s job is PT404 not_found');
select is(tests.error_of($$ select public.cancel_job(gen_random_uuid()) $$) ->> 'code', 'PT404', 'an unknown job is PT404');
select tests.authenticate_as_anon();
select throws_ok(format($$ select public.cancel_job(%L) $$, :'q1'), '42501', null, 'anon cannot cancel');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after every kind of cancel');
select tests.authenticate_as(:'alice');
select is(public.get_balance(), '{"available": 91, "held": 0, "expiring_soon": 0, "debt": 0}'::jsonb,
  '100 - 2 - 4 - 3 charged; every hold settled');

-- 3. Projects: list, get, update.
select tests.set_now('2030-01-02 00:00:00+00');
select (public.list_projects(null, 2)) as page1 \gset
select is(jsonb_array_length(:'page1'::jsonb -> 'items'), 2, 'list_projects returns p_limit items');
select ok(:'page1'::jsonb ->> 'next_before' is not null, 'with a cursor for the next page');
select is((select count(*)::int from jsonb_array_elements(public.list_projects(null, 100) -> 'items')), 7, 'alice has 7 projects');
select is(jsonb_array_length(public.list_projects((:'page1'::jsonb ->> 'next_before')::uuid, 100) -> 'items'), 5,
  'the next page continues after the cursor');
select is((select array_agg(i ->> 'id' order by n) from jsonb_array_elements(public.list_projects(null, 100) -> 'items') with ordinality e(i, n)),
  (select array_agg(id::text order by created_at desc, id desc) from public.projects where user_id = :'alice'), 'newest first (created_at, then id)');
select ok(not (public.list_projects(null, 1) -> 'items' -> 0 ? 'user_id'), 'items carry no user id');
select is(tests.error_of($$ select public.list_projects(null, 0) $$) ->> 'detail', 'p_limit', 'p_limit 0 is invalid_request');
select is(tests.error_of($$ select public.list_projects(gen_random_uuid(), 10) $$) ->> 'detail', 'p_before', 'an unknown cursor is invalid_request');
select (select id from public.projects where prompt = 'Queued one') as p1 \gset
select is(jsonb_array_length(public.get_project(:'p1') -> 'jobs'), 1, 'get_project carries the project''s jobs');
select is(public.update_project(:'p1', '{"title": "Tide pools", "niche_preset": "science", "target_minutes": 4, "voice_profile_id": "narrator-2", "transcript_source": "manual", "transcript_text": "Line one.\nLine two."}')
  -> 'project' ->> 'title', 'Tide pools', 'update_project changes the fields');
select is((select niche_preset || '/' || target_minutes || '/' || voice_profile_id || '/' || transcript_source from public.projects where id = :'p1'),
  'science/4/narrator-2/manual', 'all of them');
select is(public.update_project(:'p1', '{"niche_preset": null, "transcript_source": "auto", "transcript_text": null}') -> 'project' ->> 'niche_preset', null,
  'optional fields can be cleared');
select is(tests.error_of(format('select public.update_project(%L, %L)', :'p1', c.changes)) ->> 'detail', c.field,
          'update_project ' || coalesce(c.changes, 'null') || ' is invalid_request naming ' || c.field)
  from (values
    ('{"user_id": "x"}', 'user_id'),
    ('{}', 'changes'),
    ('{"title": "  \u00a0 "}', 'title'),
    ('{"title": "two\nlines"}', 'title'),
    ('{"prompt": null}', 'prompt'),
    ('{"niche_preset": "cooking"}', 'niche_preset'),
    ('{"target_minutes": 0}', 'target_minutes'),
    ('{"target_minutes": "3"}', 'target_minutes'),
    ('{"voice_profile_id": 7}', 'voice_profile_id'),
    ('{"transcript_source": "whisper"}', 'transcript_source'),
    ('{"transcript_source": "manual"}', 'transcript_text'),
    ('{"transcript_text": "bell \u0007"}', 'transcript_text'),
    (null, 'changes')) c(changes, field);
select is(tests.error_of(format($$ select public.generate('s-bad', '{"model_id": "standard-v1", "prompt": "x", "niche_preset": "cooking"}') $$)) ->> 'detail',
  'niche_preset', 'generate refuses a niche preset that is not in the table');

select tests.authenticate_as(:'bob');
select is(tests.error_of(format($$ select public.get_project(%L) $$, :'p1')) - 'message',
  '{"code": "PT404", "hint": "not_found", "detail": "project_id"}'::jsonb, 'another user''s project is PT404 for get_project');
select is(tests.error_of(format($$ select public.update_project(%L, '{"title": "Mine now"}') $$, :'p1')) ->> 'code', 'PT404',
  'and for update_project');
select is(tests.error_of(format($$ select public.delete_project(%L) $$, :'p1')) ->> 'code', 'PT404', 'and for delete_project');
select is(public.list_projects() -> 'items', '[]'::jsonb, 'bob lists none of alice''s projects');
select is(public.list_jobs() -> 'items', '[]'::jsonb, 'nor her jobs');
select is(tests.attempt(format($$ select 1 from public.jobs where id = %L $$, :'q1')), 'none', 'RLS hides her job from bob');
select is(tests.attempt(format($$ select 1 from public.job_steps where job_id = %L $$, :'r1')), 'none', 'and its steps');
select tests.authenticate_as_anon();
select throws_ok($$ select public.list_projects() $$, '42501', null, 'anon cannot list projects');
select is(tests.attempt($$ select 1 from public.niche_presets where id = 'history' $$), 'rows', 'anyone can read the niche presets');

-- 4. list_jobs.
select tests.authenticate_as(:'alice');
select is(jsonb_array_length(public.list_jobs('CANCELED') -> 'items'), 5, 'list_jobs filters by status');
select is(jsonb_array_length(public.list_jobs(null, null, 3) -> 'items'), 3, 'and pages');
select is(jsonb_array_length(public.list_jobs(null, (public.list_jobs(null, null, 3) ->> 'next_before')::uuid, 100) -> 'items'), 4,
  'the next page holds the rest (7 jobs)');
select is(tests.error_of($$ select public.list_jobs('running') $$) ->> 'detail', 'p_status', 'an unknown status is invalid_request');

-- 5. Assets in R2: registered by the Worker's upload, listed by name in the success event.
select tests.authenticate_as(:'alice');
select public.generate('s-8', '{"model_id": "standard-v1", "prompt": "With files", "target_minutes": 3}') -> 'response' -> 'job' ->> 'id' as a1 \gset
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w4', 1, 600) is not null as a1_claimed;
select is(public.register_asset(:'a1', 'final.mp4', 'video', 'video/mp4', 1234, repeat('ab', 32), 'w4') ->> 'storage_key', :'a1' || '/final.mp4',
  'register_asset records the object under <job id>/<name>');
select is(tests.error_of(format($$ select public.register_asset(%L, '../x', 'video', 'video/mp4', 1, %L) $$, :'a1', repeat('ab', 32))) ->> 'detail', 'name',
  'a path in the name is invalid_request');
select is(tests.error_of(format($$ select public.register_asset(%L, 'x.mp4', 'video', 'video/mp4', 1, 'nothex') $$, :'a1')) ->> 'detail', 'sha256',
  'a bad SHA-256 is invalid_request');
select is(tests.error_of(format($$ select public.register_asset(%L, 'x.mp4', 'video', 'not a type', 1, %L) $$, :'a1', repeat('ab', 32))) ->> 'detail', 'content_type',
  'a bad content type is invalid_request');
select is(public.register_asset(:'a1', 'x.mp4', 'video', 'video/mp4', 1, repeat('ab', 32), 'other') ->> 'applied', 'false',
  'a worker that does not hold the job cannot add files');
select is(public.register_asset(:'a1', 'final.mp4', 'video', 'video/mp4', 99, repeat('cd', 32), 'w4', null, '{}', :'a1' || '/final.mp4/upload-0002') ->> 'storage_key',
  :'a1' || '/final.mp4/upload-0002', 'an upload under its own key replaces the record of the same name');
select is((select reason from public.storage_deletions where storage_key = :'a1' || '/final.mp4'), 'asset_replaced',
  'the replaced object is queued for deletion');
select is(public.register_asset(:'a1', 'x.mp4', 'video', 'video/mp4', 1, repeat('ab', 32), 'other', null, '{}', :'a1' || '/x.mp4/upload-0003') ->> 'applied', 'false',
  'a refused upload under its own key');
select is((select reason from public.storage_deletions where storage_key = :'a1' || '/x.mp4/upload-0003'), 'upload_refused',
  'is queued for deletion');
-- Back to the first shape (<job id>/<name>) for the checks below; the queue is emptied of these keys.
select public.register_asset(:'a1', 'final.mp4', 'video', 'video/mp4', 1234, repeat('ab', 32), 'w4') is not null as reuploaded;
select public.confirm_storage_deletions(array[:'a1' || '/final.mp4', :'a1' || '/final.mp4/upload-0002', :'a1' || '/x.mp4/upload-0003']) is not null as emptied;
select is(tests.error_of(format($$ select public.complete_job(%L, 5, null, null, '[{"name": "missing.mp4"}]', 'w4') $$, :'a1')) ->> 'detail', 'assets',
  'the success event cannot list a file that was not uploaded');
select is(public.complete_job(:'a1', 5, null, null, '[{"name": "final.mp4", "duration_seconds": 180}]', 'w4') -> 'job' -> 'assets' -> 0 ->> 'sha256',
  repeat('ab', 32), 'the success event lists the uploaded file; the job shows its SHA-256');
select (select id from public.assets where job_id = :'a1') as asset1 \gset
select is(public.register_asset(:'a1', 'late.mp4', 'video', 'video/mp4', 1, repeat('ab', 32), 'w4') ->> 'applied', 'false',
  'no file is added to a finished job');
select tests.authenticate_as(:'bob');
select is(tests.attempt(format($$ select 1 from public.assets where id = %L $$, :'asset1')), 'none', 'another user cannot see the asset');
select tests.authenticate_as(:'alice');
select is(tests.attempt(format($$ select 1 from public.assets where id = %L $$, :'asset1')), 'rows', 'the owner can (the download check)');

-- 6. delete_project: hidden everywhere, jobs canceled, objects queued, the ledger untouched otherwise.
select public.generate('s-9', format('{"model_id": "standard-v1", "project_id": "%s", "target_minutes": 3}', (select project_id from public.jobs where id = :'a1'))::jsonb)
  -> 'response' -> 'job' ->> 'id' as a2 \gset
select (select project_id from public.jobs where id = :'a1') as pa \gset
select (select count(*)::int from public.credit_ledger where user_id = :'alice') as ledger_before \gset
select public.delete_project(:'pa') as deleted \gset
select is(:'deleted'::jsonb -> 'storage_keys', jsonb_build_array(:'a1' || '/final.mp4'), 'delete_project returns the R2 keys to delete');
select is(:'deleted'::jsonb -> 'canceled_jobs', jsonb_build_array(:'a2'), 'its queued job is canceled');
select is(pg_temp.ledger_of(:'a2'), array['hold:-5:5', 'release:5:-5'], 'and its hold released');
select is((select count(*)::int from public.credit_ledger where user_id = :'alice'), :ledger_before + 1, 'the release is the only new ledger row');
select is(tests.attempt(format($$ select 1 from public.projects where id = %L $$, :'pa')), 'none', 'the project is hidden from its owner');
select is(tests.attempt(format($$ select 1 from public.jobs where id = %L $$, :'a1')), 'none', 'so are its jobs');
select is(tests.error_of(format($$ select public.get_job(%L) $$, :'a1')) ->> 'code', 'PT404', 'get_job does not find them');
select is(tests.error_of(format($$ select public.get_project(%L) $$, :'pa')) ->> 'code', 'PT404', 'nor get_project');
select is(tests.error_of(format($$ select public.cancel_job(%L) $$, :'a2')) ->> 'code', 'PT404', 'nor cancel_job');
select is((select count(*)::int from jsonb_array_elements(public.list_projects(null, 100) -> 'items')), 7, 'list_projects leaves it out');
select is(public.delete_project(:'pa') ->> 'replayed', 'true', 'deleting it again is a no-op');
select tests.authenticate_as_service_role();
select is(public.list_storage_deletions() -> 'keys', jsonb_build_array(:'a1' || '/final.mp4'), 'the key waits in the deletion queue');
select is(public.confirm_storage_deletions(array[:'a1' || '/final.mp4']) ->> 'confirmed', '1', 'the Worker confirms it');
select is(public.list_storage_deletions() -> 'keys', '[]'::jsonb, 'and the queue is empty');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the project deletion');

-- 6b. More of the job model: PENDING, and a stale hold of a cancel-requested job.
select tests.authenticate_as(:'alice');
select public.generate('s-10', '{"model_id": "standard-v1", "prompt": "Pending one", "target_minutes": 1}') -> 'response' -> 'job' ->> 'id' as pj \gset
select public.generate('s-11', '{"model_id": "standard-v1", "prompt": "Stale one", "target_minutes": 1}') -> 'response' -> 'job' ->> 'id' as sj \gset
select tests.clear_authentication();
select lives_ok(format($$ insert into public.jobs (user_id, project_id, model_id, status, target_minutes, credits_reserved)
  select user_id, project_id, model_id, 'PENDING', 1, 3 from public.jobs where id = %L $$, :'pj'), 'a job can be inserted PENDING');
select (select id from public.jobs where status = 'PENDING' limit 1) as pending \gset
select throws_ok(format($$ update public.jobs set status = 'SCRIPTING' where id = %L $$, :'pending'), '55000', null,
  'PENDING cannot skip the queue');
select lives_ok(format($$ update public.jobs set status = 'QUEUED' where id = %L $$, :'pending'), 'PENDING -> QUEUED is allowed');
delete from public.jobs where id = :'pending';
select tests.authenticate_as_service_role();
select is((select array_agg(j ->> 'id' order by j ->> 'id') from jsonb_array_elements(public.claim_next_jobs('w5', 5, 60) -> 'jobs') j),
  (select array_agg(id::text order by id::text) from public.jobs where id in (:'pj', :'sj')), 'both queued jobs are claimed');
select tests.authenticate_as(:'alice');
select public.cancel_job(:'sj') is not null as sj_requested;
select tests.authenticate_as_service_role();
select tests.set_now('2030-01-02 07:00:00+00');
select is(public.expire_stale_holds() ->> 'expired', '2', 'the holds of both lapsed jobs expire after 6 hours');
select is((select status || '/' || credits_final from public.jobs where id = :'sj'), 'CANCELED/0', 'the cancel-requested one ends CANCELED, nothing charged');
select is((select status || '/' || error_code || '/' || failed_step from public.jobs where id = :'pj'), 'FAILED/hold_expired/SCRIPTING',
  'the other one fails in the step it was in');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the stale holds');

-- 7. Realtime: the app sees jobs, steps, balances and purchases change.
select is((select array_agg(tablename::text order by tablename) from pg_publication_tables
            where pubname = 'supabase_realtime' and schemaname = 'public' and tablename in ('jobs', 'job_steps', 'credit_balances', 'purchases')),
  array['credit_balances', 'job_steps', 'jobs', 'purchases'], 'jobs, job_steps, credit_balances and purchases are in supabase_realtime');
select tests.authenticate_as(:'bob');
select is(tests.attempt(format($$ select 1 from public.credit_balances where user_id = %L $$, :'alice')), 'none',
  'the balance policy shows a subscriber only their own row');

select * from finish();
rollback;
