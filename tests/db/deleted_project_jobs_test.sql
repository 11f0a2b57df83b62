-- A job is never created in a deleted project (migration refuse_jobs_in_deleted_projects): the
-- check runs at the job's insert and re-reads the project under the lock delete_project conflicts
-- with, so a generate that read its project before a delete committed cannot leave a held job in
-- it. Here: the insert-time check itself, whoever inserts, and that nothing is held or written.
begin;
\ir _setup.psql
select plan(7);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('a@example.com') as a \gset
select app.add_grant(:'a', 'adjustment', 'paid', 90, null, 'adjustment') is not null as topped_up;
select tests.authenticate_as(:'a');
select public.generate('dp-1', '{"model_id": "standard-v1", "prompt": "First", "target_minutes": 1}') -> 'response' -> 'job' as j1 \gset
select (:'j1'::jsonb ->> 'project_id') as p \gset
select is((public.delete_project(:'p') -> 'canceled_jobs')::text, format('["%s"]', :'j1'::jsonb ->> 'id'),
  'deleting the project cancels its queued job');
select (public.get_balance() ->> 'available')::int as available \gset
select tests.clear_authentication();

-- What a generate past its project read would do once the delete has committed: the insert is refused.
select throws_ok(format($$ insert into public.jobs (user_id, project_id, model_id, status, target_minutes, credits_reserved)
  values (%L, %L, 'standard-v1', 'QUEUED', 1, 1) $$, :'a', :'p'), 'PT404', 'No such project.',
  'a job cannot be inserted in a deleted project, even by the table''s owner');
select throws_ok(format($$ insert into public.jobs (user_id, project_id, model_id, status, target_minutes, credits_reserved)
  values (%L, gen_random_uuid(), 'standard-v1', 'QUEUED', 1, 1) $$, :'a'), 'PT404', 'No such project.',
  'nor in a project that does not exist');

select tests.authenticate_as(:'a');
select throws_ok(format($$ select public.generate('dp-2', '{"model_id": "standard-v1", "target_minutes": 1, "project_id": "%s"}') $$, :'p'),
  'PT404', null, 'generate in the deleted project is refused');
select is((public.get_balance() ->> 'available')::int, :'available'::int, 'nothing was held');
select tests.clear_authentication();
select is((select count(*)::int from public.jobs where project_id = :'p' and status not in ('READY', 'FAILED', 'CANCELED')), 0,
  'no live job in the deleted project');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty');

select * from finish();
rollback;
