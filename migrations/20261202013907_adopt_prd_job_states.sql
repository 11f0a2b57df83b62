-- Adopt the PRD's job states (PENDING, QUEUED, SCRIPTING .. PACKAGING, READY, FAILED, CANCELED) with transitions enforced by a trigger, cancel requests, failed_step, and job steps with status, progress, error, log excerpt and artifacts.

-- The job model (migrations/README.md, "Job model"):
--   PENDING -> QUEUED | FAILED | CANCELED
--   QUEUED  -> a working state (claimed) | FAILED | CANCELED
--   working -> a later working state (progress) | any working state with attempts + 1 (claimed
--              again after its lease lapsed) | QUEUED (retry) | READY | FAILED | CANCELED
--   READY, FAILED, CANCELED are terminal: their status never changes again.
-- Working states in pipeline order: SCRIPTING, VOICE_GEN, ALIGNMENT, VISUAL_PLAN, IMAGE_GEN,
-- TIMELINE, RENDERING, PACKAGING. A job is inserted PENDING or QUEUED only.
-- The old state names stay accepted by the pipeline RPCs (the Worker passes the status through) and
-- are mapped once here for existing rows: PLANNING -> SCRIPTING, VOICING -> VOICE_GEN,
-- GENERATING_VISUALS -> IMAGE_GEN, GENERATING_MUSIC -> TIMELINE, ASSEMBLING -> TIMELINE,
-- UPLOADING -> PACKAGING (SCRIPTING and RENDERING keep their names). The map never moves a job
-- backwards: old pipeline order maps onto new pipeline order.

create or replace function app.job_status_alias(p_status text)
returns text
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return case p_status
    when 'PLANNING' then 'SCRIPTING'
    when 'VOICING' then 'VOICE_GEN'
    when 'GENERATING_VISUALS' then 'IMAGE_GEN'
    when 'GENERATING_MUSIC' then 'TIMELINE'
    when 'ASSEMBLING' then 'TIMELINE'
    when 'UPLOADING' then 'PACKAGING'
    else p_status
  end;
end;
$$;
comment on function app.job_status_alias(text) is 'Maps an old job state name (PLANNING, VOICING, GENERATING_VISUALS, GENERATING_MUSIC, ASSEMBLING, UPLOADING) to the PRD name; any other value unchanged.';

create or replace function app.job_status_rank(p_status text)
returns integer
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return pg_catalog.array_position(array[
    'PENDING', 'QUEUED', 'SCRIPTING', 'VOICE_GEN', 'ALIGNMENT', 'VISUAL_PLAN', 'IMAGE_GEN', 'TIMELINE',
    'RENDERING', 'PACKAGING', 'READY', 'FAILED', 'CANCELED'], p_status);
end;
$$;
comment on function app.job_status_rank(text) is 'Position of a job status in the pipeline (1 = PENDING, 3..10 the working states, 11.. terminal); null for an unknown name.';

create or replace function app.is_working_status(p_status text)
returns boolean
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return p_status in ('SCRIPTING', 'VOICE_GEN', 'ALIGNMENT', 'VISUAL_PLAN', 'IMAGE_GEN', 'TIMELINE', 'RENDERING', 'PACKAGING');
end;
$$;
comment on function app.is_working_status(text) is 'True for the eight working states SCRIPTING .. PACKAGING.';

-- 1. Jobs: new states, existing rows mapped.
drop index public.jobs_working_locked_until_idx;
alter table public.jobs
  drop constraint jobs_status_check,
  drop constraint jobs_terminal_finished_check;
update public.jobs set status = app.job_status_alias(status) where status <> app.job_status_alias(status);
alter table public.jobs
  add column cancel_requested_at timestamptz,
  add column failed_step text,
  add constraint jobs_status_check check (status in (
    'PENDING', 'QUEUED', 'SCRIPTING', 'VOICE_GEN', 'ALIGNMENT', 'VISUAL_PLAN', 'IMAGE_GEN', 'TIMELINE',
    'RENDERING', 'PACKAGING', 'READY', 'FAILED', 'CANCELED')),
  add constraint jobs_terminal_finished_check check ((status in ('READY', 'FAILED', 'CANCELED')) = (finished_at is not null)),
  add constraint jobs_failed_step_check check (failed_step in (
    'SCRIPTING', 'VOICE_GEN', 'ALIGNMENT', 'VISUAL_PLAN', 'IMAGE_GEN', 'TIMELINE', 'RENDERING', 'PACKAGING'));
comment on column public.jobs.status is 'PENDING, QUEUED, SCRIPTING, VOICE_GEN, ALIGNMENT, VISUAL_PLAN, IMAGE_GEN, TIMELINE, RENDERING, PACKAGING, READY, FAILED or CANCELED; transitions enforced by the jobs_check_transition trigger.';
comment on column public.jobs.cancel_requested_at is 'When the user asked to cancel a running job; the pipeline sees it in every answer and ends the job CANCELED.';
comment on column public.jobs.failed_step is 'The working state the job was in when it last failed (set on FAILED and on a retry).';
comment on column public.jobs.credits_final is 'Credits finally charged: set when the job is READY or CANCELED (what the pipeline reported as spent); 0 when FAILED.';
comment on table public.jobs is 'A generation job: its state (PENDING .. READY/FAILED/CANCELED), progress, credits reserved and finally charged, result, cancel request, and queue bookkeeping (attempts, retry time, worker, visibility timeout, dead letter). In the supabase_realtime publication so clients can watch progress.';
-- Serves claim_next_jobs: working jobs whose visibility timeout lapsed.
create index jobs_working_locked_until_idx on public.jobs (locked_until)
  where status not in ('PENDING', 'QUEUED', 'READY', 'FAILED', 'CANCELED');
-- Serves list_jobs with a status filter: a user's jobs of one status, newest first.
create index jobs_user_id_status_created_at_idx on public.jobs (user_id, status, created_at desc);

create or replace function app.check_job_transition()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_ok boolean;
begin
  if tg_op = 'INSERT' then
    if new.status not in ('PENDING', 'QUEUED') then
      raise exception using errcode = '55000', message = 'A job starts PENDING or QUEUED, not ' || new.status || '.',
        hint = 'invalid_transition', detail = 'status';
    end if;
    return new;
  end if;
  if new.status is not distinct from old.status then
    return new;
  end if;
  v_ok := case
    when old.status in ('READY', 'FAILED', 'CANCELED') then false
    when new.status = 'PENDING' then false
    when new.status = 'QUEUED' then old.status = 'PENDING' or app.is_working_status(old.status)
    when app.is_working_status(new.status) then
      old.status = 'QUEUED'
      or (app.is_working_status(old.status)
          and (app.job_status_rank(new.status) > app.job_status_rank(old.status) or new.attempts > old.attempts))
    when new.status = 'READY' then app.is_working_status(old.status)
    when new.status in ('FAILED', 'CANCELED') then true
    else false
  end;
  if not v_ok then
    raise exception using errcode = '55000', message = 'A job cannot go from ' || old.status || ' to ' || new.status || '.',
      hint = 'invalid_transition', detail = 'status';
  end if;
  -- The step a job failed in: on FAILED, and on a retry (back to QUEUED from a working state).
  if new.status in ('FAILED', 'QUEUED') and app.is_working_status(old.status) then
    new.failed_step := old.status;
  elsif new.status = 'READY' then
    new.failed_step := null;
  end if;
  return new;
end;
$$;
comment on function app.check_job_transition() is 'Trigger on jobs: refuses a status change the job model does not allow (55000 invalid_transition) and records failed_step.';

create trigger jobs_check_transition
  before insert or update of status on public.jobs
  for each row execute function app.check_job_transition();

-- 2. Job steps: one row per working state, its own status, progress, error, log excerpt, artifacts.
alter table public.job_steps
  drop constraint job_steps_name_check,
  drop constraint job_steps_status_check;
-- Two old names map to one new name (PLANNING and SCRIPTING; GENERATING_MUSIC and ASSEMBLING): the later row stays.
delete from public.job_steps s
 using public.job_steps t
 where t.job_id = s.job_id and t.id > s.id and app.job_status_alias(t.name) = app.job_status_alias(s.name);
update public.job_steps
   set name = app.job_status_alias(name),
       status = case status when 'running' then 'started' else status end
 where name <> app.job_status_alias(name) or status = 'running';
alter table public.job_steps
  alter column status set default 'pending',
  alter column started_at drop not null,
  alter column started_at drop default,
  add column progress integer not null default 0,
  add column error text,
  add column log_excerpt text,
  add column artifacts jsonb not null default '[]'::jsonb,
  add column updated_at timestamptz not null default now(),
  add constraint job_steps_name_check check (name in (
    'SCRIPTING', 'VOICE_GEN', 'ALIGNMENT', 'VISUAL_PLAN', 'IMAGE_GEN', 'TIMELINE', 'RENDERING', 'PACKAGING')),
  add constraint job_steps_status_check check (status in ('pending', 'started', 'succeeded', 'failed')),
  add constraint job_steps_progress_range_check check (progress between 0 and 100),
  add constraint job_steps_error_length_check check (char_length(error) between 1 and 2000),
  add constraint job_steps_log_excerpt_length_check check (char_length(log_excerpt) <= 8000),
  add constraint job_steps_artifacts_array_check check (jsonb_typeof(artifacts) = 'array' and pg_column_size(artifacts) <= 16384);
comment on table public.job_steps is 'The pipeline steps of a job, one row per working state (SCRIPTING .. PACKAGING): status pending, started, succeeded or failed, progress, error, log excerpt and artifacts, as the pipeline reports them.';
comment on column public.job_steps.status is 'pending, started, succeeded or failed.';
comment on column public.job_steps.progress is 'Progress of this step, 0-100.';
comment on column public.job_steps.error is 'What went wrong, when the step failed.';
comment on column public.job_steps.log_excerpt is 'A short excerpt of the step''s log (at most 8000 characters), for support.';
comment on column public.job_steps.artifacts is 'JSON array of what the step produced (names, kinds, references), at most 16 KB.';
-- Serves app.job_json: a job's steps in order.
create index job_steps_job_id_idx on public.job_steps (job_id, id);

-- 3. The JSON shape of a job, now with cancel_requested_at, failed_step and the richer steps.
create or replace function app.job_json(p_job_id uuid, p_details boolean default false)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
  v_json jsonb;
begin
  select * into v_job from public.jobs where id = p_job_id;
  if not found then
    return null;
  end if;
  v_json := jsonb_build_object(
    'id', v_job.id, 'project_id', v_job.project_id, 'model_id', v_job.model_id, 'status', v_job.status,
    'progress', v_job.progress, 'status_message', v_job.status_message, 'target_minutes', v_job.target_minutes,
    'credits_reserved', v_job.credits_reserved, 'credits_final', v_job.credits_final,
    'error_code', v_job.error_code, 'error_message', v_job.error_message, 'failed_step', v_job.failed_step,
    'output_url', v_job.output_url, 'cancel_requested_at', v_job.cancel_requested_at,
    'attempts', v_job.attempts, 'max_attempts', v_job.max_attempts, 'next_retry_at', v_job.next_retry_at,
    'created_at', v_job.created_at, 'updated_at', v_job.updated_at, 'started_at', v_job.started_at,
    'finished_at', v_job.finished_at);
  if p_details then
    v_json := v_json || jsonb_build_object(
      'manifest', v_job.manifest,
      'steps', coalesce((
        select jsonb_agg(jsonb_build_object('name', s.name, 'status', s.status, 'progress', s.progress,
                 'message', s.message, 'error', s.error, 'log_excerpt', s.log_excerpt, 'artifacts', s.artifacts,
                 'started_at', s.started_at, 'finished_at', s.finished_at) order by s.id)
          from public.job_steps s where s.job_id = p_job_id), '[]'::jsonb),
      'assets', coalesce((
        select jsonb_agg(app.asset_json(a) order by a.created_at, a.id)
          from public.assets a where a.job_id = p_job_id), '[]'::jsonb));
  end if;
  return v_json;
end;
$$;
comment on function app.job_json(uuid, boolean) is 'The JSON shape of a job in every RPC answer (with steps, assets and manifest when p_details).';

-- 4. Ending a job. Every end settles the hold the way the money mechanics say: FAILED releases
-- everything; READY and CANCELED capture what the pipeline reported as spent and release the rest.
create or replace function app.finish_failed_job(p_job_id uuid, p_error_code text, p_error_message text, p_dead_letter boolean)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_hold_id uuid;
begin
  update public.jobs
     set status = 'FAILED', error_code = p_error_code, error_message = p_error_message, credits_final = 0,
         worker_id = null, locked_until = null, next_retry_at = null, finished_at = pg_catalog.now(),
         dead_lettered_at = case when p_dead_letter then app.now() end, updated_at = pg_catalog.now()
   where id = p_job_id
  returning hold_id into v_hold_id;
  update public.job_steps set status = 'failed', finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where job_id = p_job_id and status = 'started';
  if v_hold_id is not null then
    perform app.settle_hold(v_hold_id, 0, 'released');
  end if;
end;
$$;
comment on function app.finish_failed_job(uuid, text, text, boolean) is 'Marks a (locked) job FAILED and releases its hold.';

-- Ends a locked, unfinished job CANCELED: captures p_spent (0 .. credits_reserved) from its hold
-- and returns the rest to the grants it came from, like a success of cost p_spent.
create or replace function app.finish_canceled_job(p_job_id uuid, p_spent integer)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
begin
  select * into v_job from public.jobs where id = p_job_id;
  if p_spent is null or p_spent not between 0 and v_job.credits_reserved then
    raise exception using errcode = '22023', message = 'spent must be between 0 and the credits reserved.',
      hint = 'invalid_request', detail = 'spent';
  end if;
  update public.jobs
     set status = 'CANCELED', credits_final = p_spent, cancel_requested_at = coalesce(cancel_requested_at, app.now()),
         worker_id = null, locked_until = null, next_retry_at = null, error_code = 'canceled',
         error_message = 'Canceled at the user''s request.', finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where id = p_job_id;
  update public.job_steps set status = 'failed', error = 'Canceled.', finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where job_id = p_job_id and status in ('pending', 'started');
  if v_job.hold_id is not null then
    perform app.settle_hold(v_job.hold_id, p_spent, 'released');
  end if;
end;
$$;
comment on function app.finish_canceled_job(uuid, integer) is 'Marks a locked job CANCELED, capturing p_spent from its hold and releasing the rest.';

-- Marks the step of a working state started (and the previously started step succeeded).
create or replace function app.start_job_step(p_job_id uuid, p_user_id uuid, p_name text, p_message text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  update public.job_steps set status = 'succeeded', progress = 100, finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where job_id = p_job_id and status = 'started' and name <> p_name;
  insert into public.job_steps (job_id, user_id, name, status, message, started_at)
  values (p_job_id, p_user_id, p_name, 'started', p_message, pg_catalog.now())
  on conflict (job_id, name) do update
    set status = 'started', started_at = pg_catalog.now(), finished_at = null, error = null,
        message = coalesce(excluded.message, public.job_steps.message), updated_at = pg_catalog.now();
end;
$$;
comment on function app.start_job_step(uuid, uuid, text, text) is 'The job entered a working state: its step is started, the step before it succeeded.';

-- 5. The pipeline RPCs, from money-sql's latest definitions, with the PRD states and cancellation.
create or replace function public.claim_next_jobs(
  p_worker_id text, p_limit integer default 1, p_visibility_timeout_seconds integer default 300)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_now timestamptz := app.now();
  v_job record;
  v_jobs jsonb := '[]'::jsonb;
begin
  perform app.require_service_role();
  if p_worker_id is null or char_length(p_worker_id) not between 1 and 200 then
    raise exception using errcode = '22023', message = 'worker_id must be 1 to 200 characters.', hint = 'invalid_request', detail = 'worker_id';
  end if;
  if p_limit is null or p_limit not between 1 and 100 then
    raise exception using errcode = '22023', message = 'limit must be between 1 and 100.', hint = 'invalid_request', detail = 'limit';
  end if;
  if p_visibility_timeout_seconds is null or p_visibility_timeout_seconds not between 10 and 86400 then
    raise exception using errcode = '22023', message = 'The visibility timeout must be between 10 and 86400 seconds.',
      hint = 'invalid_request', detail = 'visibility_timeout_seconds';
  end if;

  -- Abandoned jobs that used all their attempts are dead-lettered instead of claimed again, and
  -- abandoned jobs whose cancel was requested end CANCELED with nothing captured (the pipeline
  -- reported no spend before its lease ran out): at most 10 per call, and only those whose job,
  -- hold and balance are free right now (never waiting for a lock, so this pass cannot deadlock
  -- with anything; what it skips the next call takes).
  for v_job in
    select id, hold_id, user_id, cancel_requested_at from public.jobs
     where status not in ('PENDING', 'QUEUED', 'READY', 'FAILED', 'CANCELED') and locked_until <= v_now
       and (attempts >= max_attempts or cancel_requested_at is not null)
     order by locked_until
     limit 10
     for update skip locked
  loop
    continue when v_job.hold_id is not null and not app.try_lock_hold_and_balance(v_job.hold_id, v_job.user_id);
    if v_job.cancel_requested_at is not null then
      perform app.finish_canceled_job(v_job.id, 0);
    else
      perform app.finish_failed_job(v_job.id, 'attempts_exhausted', 'The job was abandoned by its worker too many times.', true);
    end if;
  end loop;

  for v_job in
    select id from public.jobs
     where (status = 'QUEUED' and (next_retry_at is null or next_retry_at <= v_now))
        or (status not in ('PENDING', 'QUEUED', 'READY', 'FAILED', 'CANCELED') and locked_until <= v_now
            and attempts < max_attempts and cancel_requested_at is null)
     order by created_at, id
     limit p_limit
     for update skip locked
  loop
    update public.jobs
       set status = 'SCRIPTING', attempts = attempts + 1, worker_id = p_worker_id,
           locked_until = v_now + pg_catalog.make_interval(secs => p_visibility_timeout_seconds),
           next_retry_at = null, started_at = coalesce(started_at, v_now), updated_at = pg_catalog.now()
     where id = v_job.id;
    update public.job_steps set status = 'failed', finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where job_id = v_job.id and status = 'started';
    insert into public.job_steps (job_id, user_id, name, status, started_at)
    select id, user_id, 'SCRIPTING', 'started', pg_catalog.now() from public.jobs where id = v_job.id
    on conflict (job_id, name) do update
      set status = 'started', progress = 0, started_at = pg_catalog.now(), finished_at = null, message = null, error = null,
          updated_at = pg_catalog.now();
    v_jobs := v_jobs || jsonb_build_array(
      app.job_json(v_job.id, true) || (
        select jsonb_build_object('user_id', j.user_id, 'worker_id', j.worker_id, 'locked_until', j.locked_until,
                                  'project', app.project_json(p))
          from public.jobs j join public.projects p on p.id = j.project_id where j.id = v_job.id));
  end loop;
  return jsonb_build_object('jobs', v_jobs);
end;
$$;
comment on function public.claim_next_jobs(text, integer, integer) is 'Service role: claims up to p_limit runnable jobs for a worker (FOR UPDATE SKIP LOCKED), moving them to SCRIPTING with a visibility timeout: {"jobs": [job + project + user_id + worker_id + locked_until]}. First dead-letters at most 10 abandoned jobs, and ends abandoned cancel-requested jobs CANCELED with nothing captured.';

create or replace function public.report_job_progress(
  p_job_id uuid, p_worker_id text, p_status text, p_progress integer default null, p_message text default null,
  p_visibility_timeout_seconds integer default 300, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
  v_requested text := app.job_status_alias(p_status);
  v_status text;
begin
  perform app.require_service_role();
  if p_status is null or not app.is_working_status(v_requested) then
    raise exception using errcode = '22023', message = 'status must be a working state (SCRIPTING .. PACKAGING).',
      hint = 'invalid_request', detail = 'status';
  end if;
  if p_progress is not null and p_progress not between 0 and 100 then
    raise exception using errcode = '22023', message = 'progress must be between 0 and 100.', hint = 'invalid_request', detail = 'progress';
  end if;
  if char_length(p_message) > 500 then
    raise exception using errcode = '22023', message = 'message must be at most 500 characters.', hint = 'invalid_request', detail = 'message';
  end if;
  if p_visibility_timeout_seconds is null or p_visibility_timeout_seconds not between 10 and 86400 then
    raise exception using errcode = '22023', message = 'The visibility timeout must be between 10 and 86400 seconds.',
      hint = 'invalid_request', detail = 'visibility_timeout_seconds';
  end if;
  v_job := app.require_job_event(p_job_id);
  if not app.is_working_status(v_job.status) or v_job.worker_id is distinct from p_worker_id
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id), 'applied', false,
                              'cancel_requested', v_job.cancel_requested_at is not null);
  end if;
  v_status := case when app.job_status_rank(v_requested) > app.job_status_rank(v_job.status) then v_requested else v_job.status end;
  update public.jobs
     set status = v_status,
         progress = greatest(progress, coalesce(p_progress, progress)),
         status_message = coalesce(p_message, status_message),
         locked_until = app.now() + pg_catalog.make_interval(secs => p_visibility_timeout_seconds),
         updated_at = pg_catalog.now()
   where id = p_job_id;
  if v_status <> v_job.status then
    perform app.start_job_step(p_job_id, v_job.user_id, v_status, p_message);
  elsif p_message is not null then
    update public.job_steps set message = p_message, updated_at = pg_catalog.now() where job_id = p_job_id and name = v_status;
  end if;
  return jsonb_build_object('job', app.job_json(p_job_id), 'applied', true,
                            'cancel_requested', v_job.cancel_requested_at is not null);
end;
$$;
comment on function public.report_job_progress(uuid, text, text, integer, text, integer, integer) is 'Service role: a worker''s heartbeat and progress (status SCRIPTING .. PACKAGING; the old names PLANNING, VOICING, GENERATING_VISUALS, GENERATING_MUSIC, ASSEMBLING, UPLOADING are mapped): extends the visibility timeout; never moves a job backwards; ignored (applied = false) on jobs not in a working state, for a worker that no longer owns the job, and for another attempt than p_attempt. {"job", "applied", "cancel_requested"}: when cancel_requested is true the worker stops and calls finish_canceled_job (or complete_job / fail_job, which then end the job CANCELED).';

-- A step event: the pipeline reports one step's status, progress, error, log excerpt and artifacts.
create or replace function public.report_job_step(
  p_job_id uuid, p_worker_id text, p_step text, p_status text, p_progress integer default null,
  p_error text default null, p_log_excerpt text default null, p_artifacts jsonb default null,
  p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
  v_step text := app.job_status_alias(p_step);
begin
  perform app.require_service_role();
  if p_step is null or not app.is_working_status(v_step) then
    raise exception using errcode = '22023', message = 'step must be a working state (SCRIPTING .. PACKAGING).',
      hint = 'invalid_request', detail = 'step';
  end if;
  if p_status is null or p_status not in ('pending', 'started', 'succeeded', 'failed') then
    raise exception using errcode = '22023', message = 'status must be pending, started, succeeded or failed.',
      hint = 'invalid_request', detail = 'status';
  end if;
  if p_progress is not null and p_progress not between 0 and 100 then
    raise exception using errcode = '22023', message = 'progress must be between 0 and 100.', hint = 'invalid_request', detail = 'progress';
  end if;
  if p_error is not null and char_length(p_error) not between 1 and 2000 then
    raise exception using errcode = '22023', message = 'error must be 1 to 2000 characters.', hint = 'invalid_request', detail = 'error';
  end if;
  if char_length(p_log_excerpt) > 8000 then
    raise exception using errcode = '22023', message = 'log_excerpt must be at most 8000 characters.', hint = 'invalid_request', detail = 'log_excerpt';
  end if;
  if p_artifacts is not null and (jsonb_typeof(p_artifacts) <> 'array' or pg_catalog.pg_column_size(p_artifacts) > 16384) then
    raise exception using errcode = '22023', message = 'artifacts must be a JSON array of at most 16 KB.', hint = 'invalid_request', detail = 'artifacts';
  end if;
  v_job := app.require_job_event(p_job_id);
  if not app.is_working_status(v_job.status) or v_job.worker_id is distinct from p_worker_id
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', false,
                              'cancel_requested', v_job.cancel_requested_at is not null);
  end if;
  insert into public.job_steps (job_id, user_id, name, status, progress, error, log_excerpt, artifacts, started_at, finished_at)
  values (p_job_id, v_job.user_id, v_step, p_status, coalesce(p_progress, case when p_status = 'succeeded' then 100 else 0 end),
          p_error, p_log_excerpt, coalesce(p_artifacts, '[]'::jsonb),
          case when p_status <> 'pending' then pg_catalog.now() end,
          case when p_status in ('succeeded', 'failed') then pg_catalog.now() end)
  on conflict (job_id, name) do update
    set status = excluded.status,
        progress = case when excluded.status = 'succeeded' then 100
                        else greatest(public.job_steps.progress, coalesce(p_progress, public.job_steps.progress)) end,
        error = coalesce(excluded.error, public.job_steps.error),
        log_excerpt = coalesce(excluded.log_excerpt, public.job_steps.log_excerpt),
        artifacts = coalesce(p_artifacts, public.job_steps.artifacts),
        started_at = coalesce(public.job_steps.started_at, excluded.started_at),
        finished_at = excluded.finished_at,
        updated_at = pg_catalog.now();
  -- A step event is a heartbeat too.
  update public.jobs set locked_until = greatest(locked_until, app.now() + interval '5 minutes'), updated_at = pg_catalog.now()
   where id = p_job_id;
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true,
                            'cancel_requested', v_job.cancel_requested_at is not null);
end;
$$;
comment on function public.report_job_step(uuid, text, text, text, integer, text, text, jsonb, integer) is 'Service role: one step''s event (step SCRIPTING .. PACKAGING, status pending / started / succeeded / failed, progress 0-100, error, log_excerpt <= 8000 chars, artifacts array <= 16 KB). Ignored (applied = false) unless the worker holds the job in a working state for p_attempt. {"job" with steps, "applied", "cancel_requested"}.';

create or replace function public.fail_job(
  p_job_id uuid, p_error_code text, p_error_message text default null, p_retryable boolean default true,
  p_worker_id text default null, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
begin
  perform app.require_service_role();
  if p_error_code is null or p_error_code !~ '^[a-z0-9_.-]{1,100}$' then
    raise exception using errcode = '22023', message = 'error_code must be a snake_case code of at most 100 characters.',
      hint = 'invalid_request', detail = 'error_code';
  end if;
  if char_length(p_error_message) > 2000 then
    raise exception using errcode = '22023', message = 'error_message must be at most 2000 characters.',
      hint = 'invalid_request', detail = 'error_message';
  end if;
  v_job := app.require_job_event(p_job_id);
  if v_job.status in ('READY', 'FAILED', 'CANCELED') or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', false);
  end if;
  if v_job.cancel_requested_at is not null then
    -- The user asked to cancel: never retried, nothing charged.
    perform app.finish_canceled_job(p_job_id, 0);
  elsif coalesce(p_retryable, true) and v_job.attempts < v_job.max_attempts and v_job.status <> 'PENDING' then
    update public.jobs
       set status = 'QUEUED', error_code = p_error_code, error_message = p_error_message,
           worker_id = null, locked_until = null,
           next_retry_at = app.now() + pg_catalog.make_interval(secs => least(30 * power(2, greatest(v_job.attempts, 1) - 1), 3600)),
           updated_at = pg_catalog.now()
     where id = p_job_id;
    update public.job_steps set status = 'failed', error = coalesce(p_error_message, p_error_code),
                                finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where job_id = p_job_id and status = 'started';
  else
    perform app.finish_failed_job(p_job_id, p_error_code, p_error_message, coalesce(p_retryable, true));
  end if;
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true);
end;
$$;
comment on function public.fail_job(uuid, text, text, boolean, text, integer) is 'Service role: a job attempt failed. Retryable and attempts left: back to QUEUED after an exponential backoff (30 s doubling, at most 1 h). Otherwise FAILED (dead-lettered when retries ran out) and its hold released. A job whose cancel was requested ends CANCELED with nothing charged. Idempotent on terminal jobs and for another attempt than p_attempt (applied = false). {"job", "applied"}.';

-- The pipeline acknowledges a cancel request and reports what it spent.
create or replace function public.finish_canceled_job(
  p_job_id uuid, p_spent integer default 0, p_worker_id text default null, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
begin
  perform app.require_service_role();
  v_job := app.require_job_event(p_job_id);
  if v_job.status in ('READY', 'FAILED', 'CANCELED') or v_job.cancel_requested_at is null
     or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', false);
  end if;
  if p_spent is null or p_spent not between 0 and v_job.credits_reserved then
    raise exception using errcode = '22023', message = 'spent must be between 0 and the credits reserved.',
      hint = 'invalid_request', detail = 'spent';
  end if;
  perform app.finish_canceled_job(p_job_id, p_spent);
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true);
end;
$$;
comment on function public.finish_canceled_job(uuid, integer, text, integer) is 'Service role: the worker stopped a job whose cancel was requested; it ends CANCELED, p_spent (0 .. credits_reserved) captured and the rest released. Ignored (applied = false) unless a cancel was requested and the job is unfinished, for another worker or attempt. {"job", "applied"}.';

create or replace function public.expire_stale_holds(p_limit integer default 100)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_now timestamptz := app.now();
  v_hold record;
  v_job public.jobs;
  v_count integer := 0;
  v_skipped integer := 0;
begin
  perform app.require_service_role();
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception using errcode = '22023', message = 'limit must be between 1 and 1000.', hint = 'invalid_request', detail = 'limit';
  end if;
  for v_hold in
    select h.id, h.job_id, h.user_id from public.credit_holds h
      left join public.jobs j on j.id = h.job_id
     where h.status = 'active' and h.expires_at <= v_now
       and not (j.locked_until is not null and j.locked_until > v_now and j.status not in ('READY', 'FAILED', 'CANCELED'))
     order by h.expires_at, h.id
     limit p_limit
  loop
    -- Lock order: job, then hold, then balance; each without waiting.
    if v_hold.job_id is not null then
      select * into v_job from public.jobs where id = v_hold.job_id for update skip locked;
      if not found then
        v_skipped := v_skipped + 1;
        continue;
      end if;
      -- A job a worker is still heartbeating keeps its hold.
      continue when v_job.locked_until > v_now and v_job.status not in ('READY', 'FAILED', 'CANCELED');
    end if;
    if not app.try_lock_hold_and_balance(v_hold.id, v_hold.user_id) then
      v_skipped := v_skipped + 1;
      continue;
    end if;
    continue when (select status from public.credit_holds where id = v_hold.id) <> 'active';
    if v_hold.job_id is not null and v_job.status not in ('READY', 'FAILED', 'CANCELED') then
      if v_job.cancel_requested_at is not null then
        update public.jobs
           set status = 'CANCELED', error_code = 'canceled', error_message = 'Canceled at the user''s request.',
               credits_final = 0, worker_id = null, locked_until = null, next_retry_at = null,
               finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
         where id = v_job.id;
      else
        update public.jobs
           set status = 'FAILED', error_code = 'hold_expired', error_message = 'The job did not finish in time.',
               credits_final = 0, worker_id = null, locked_until = null, next_retry_at = null,
               finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
         where id = v_job.id;
      end if;
      update public.job_steps set status = 'failed', finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
       where job_id = v_job.id and status = 'started';
    end if;
    if (app.settle_hold(v_hold.id, 0, 'expired')).status = 'expired' then
      v_count := v_count + 1;
    end if;
  end loop;
  return jsonb_build_object('expired', v_count, 'skipped', v_skipped, 'more', v_skipped > 0 or exists (
    select 1 from public.credit_holds h left join public.jobs j on j.id = h.job_id
     where h.status = 'active' and h.expires_at <= v_now
       and not (j.locked_until is not null and j.locked_until > v_now and j.status not in ('READY', 'FAILED', 'CANCELED'))));
end;
$$;
comment on function public.expire_stale_holds(integer) is 'Service role: releases at most p_limit (default 100) active holds past their expiry (6 hours after generate) unless a worker still holds the job''s lease, and fails their unfinished jobs with error_code hold_expired (a cancel-requested job ends CANCELED). Never waits for a lock: a hold whose job, hold or balance row is busy is skipped for the next call. {"expired": n, "skipped": n, "more": bool}; call again while more is true.';

revoke all on function
  app.job_status_alias(text), app.job_status_rank(text), app.is_working_status(text), app.check_job_transition(),
  app.job_json(uuid, boolean), app.finish_failed_job(uuid, text, text, boolean), app.finish_canceled_job(uuid, integer),
  app.start_job_step(uuid, uuid, text, text)
  from public, anon, authenticated, service_role;
revoke all on function
  public.claim_next_jobs(text, integer, integer),
  public.report_job_progress(uuid, text, text, integer, text, integer, integer),
  public.report_job_step(uuid, text, text, text, integer, text, text, jsonb, integer),
  public.fail_job(uuid, text, text, boolean, text, integer),
  public.finish_canceled_job(uuid, integer, text, integer),
  public.expire_stale_holds(integer)
  from public, anon, authenticated, service_role;
grant execute on function
  public.claim_next_jobs(text, integer, integer),
  public.report_job_progress(uuid, text, text, integer, text, integer, integer),
  public.report_job_step(uuid, text, text, text, integer, text, text, jsonb, integer),
  public.fail_job(uuid, text, text, boolean, text, integer),
  public.finish_canceled_job(uuid, integer, text, integer),
  public.expire_stale_holds(integer)
  to service_role;

-- 6. reconcile (money-sql's latest definition): a CANCELED job captured credits_final, like a READY one.
create or replace function public.reconcile()
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_violations jsonb;
begin
  perform app.require_service_role();
  with
  ledger as (
    select user_id, sum(delta_available)::bigint as available, sum(delta_held)::bigint as held, sum(delta_debt)::bigint as debt
      from public.credit_ledger group by user_id
  ),
  grants as (
    select user_id, sum(remaining)::bigint as remaining from public.credit_grants group by user_id
  ),
  holds as (
    select user_id, sum(amount)::bigint as held from public.credit_holds where status = 'active' group by user_id
  ),
  running as (
    select id, user_id, balance_available_after, balance_held_after, balance_debt_after,
           sum(delta_available) over w as available, sum(delta_held) over w as held, sum(delta_debt) over w as debt
      from public.credit_ledger
    window w as (partition by user_id order by id)
  ),
  allocations as (
    select h.id, h.status, h.amount, h.captured as hold_captured,
           coalesce(sum(a.amount), 0) as allocated, coalesce(sum(a.captured), 0) as captured, coalesce(sum(a.released), 0) as released
      from public.credit_holds h left join public.credit_hold_allocations a on a.hold_id = h.id
     group by h.id
  ),
  violations as (
    -- 1. The cached balance is the sum of the ledger.
    select jsonb_build_object('check', 'balance_matches_ledger', 'user_id', coalesce(b.user_id, l.user_id),
             'expected', jsonb_build_object('available', coalesce(l.available, 0), 'held', coalesce(l.held, 0), 'debt', coalesce(l.debt, 0)),
             'actual', jsonb_build_object('available', b.available, 'held', b.held, 'debt', b.debt)) as v
      from public.credit_balances b full join ledger l on l.user_id = b.user_id
     where coalesce(b.available, 0) <> coalesce(l.available, 0) or coalesce(b.held, 0) <> coalesce(l.held, 0)
        or coalesce(b.debt, 0) <> coalesce(l.debt, 0)
    union all
    -- 2. Each ledger row's balance after is the running sum of the deltas.
    select jsonb_build_object('check', 'ledger_running_balance', 'user_id', r.user_id, 'id', r.id,
             'expected', jsonb_build_object('available', r.available, 'held', r.held, 'debt', r.debt),
             'actual', jsonb_build_object('available', r.balance_available_after, 'held', r.balance_held_after, 'debt', r.balance_debt_after))
      from running r
     where r.available <> r.balance_available_after or r.held <> r.balance_held_after or r.debt <> r.balance_debt_after
    union all
    -- 3. Available credits are exactly what remains in the grants.
    select jsonb_build_object('check', 'available_matches_grants', 'user_id', b.user_id,
             'expected', coalesce(g.remaining, 0), 'actual', b.available)
      from public.credit_balances b left join grants g on g.user_id = b.user_id
     where b.available <> coalesce(g.remaining, 0)
    union all
    -- 4. Held credits are exactly the active holds.
    select jsonb_build_object('check', 'held_matches_holds', 'user_id', b.user_id,
             'expected', coalesce(h.held, 0), 'actual', b.held)
      from public.credit_balances b left join holds h on h.user_id = b.user_id
     where b.held <> coalesce(h.held, 0)
    union all
    -- 5. A hold drew exactly its amount from grants; an active hold has settled nothing; a settled
    --    hold captured what it says and returned the rest.
    select jsonb_build_object('check', 'hold_allocations', 'id', a.id,
             'expected', jsonb_build_object('allocated', a.amount, 'captured', case when a.status = 'active' then 0 else a.hold_captured end,
                                            'released', case when a.status = 'active' then 0 else a.amount - a.hold_captured end),
             'actual', jsonb_build_object('allocated', a.allocated, 'captured', a.captured, 'released', a.released))
      from allocations a
     where a.allocated <> a.amount
        or (a.status = 'active' and (a.captured <> 0 or a.released <> 0))
        or (a.status <> 'active' and (a.captured <> a.hold_captured or a.released <> a.amount - a.hold_captured))
    union all
    -- 6. Debt is only carried when nothing is available.
    select jsonb_build_object('check', 'debt_only_when_nothing_available', 'user_id', b.user_id,
             'expected', 0, 'actual', b.available)
      from public.credit_balances b
     where b.debt > 0 and b.available > 0
    union all
    -- 7. Jobs and holds agree: an unfinished job has an active hold; a READY or CANCELED job
    --    captured credits_final; a FAILED job holds nothing and was charged nothing.
    select jsonb_build_object('check', 'job_hold_state', 'id', j.id,
             'expected', jsonb_build_object('job_status', j.status, 'credits_final', j.credits_final),
             'actual', jsonb_build_object('hold_status', h.status, 'captured', h.captured))
      from public.jobs j left join public.credit_holds h on h.id = j.hold_id
     where (j.status in ('READY', 'FAILED', 'CANCELED') and h.status = 'active')
        or (j.status not in ('READY', 'FAILED', 'CANCELED') and j.hold_id is not null and h.status is distinct from 'active')
        or (j.status in ('READY', 'CANCELED') and j.hold_id is not null and coalesce(h.captured, 0) is distinct from j.credits_final)
        or (j.status = 'FAILED' and coalesce(h.captured, 0) <> 0)
        or (j.status <> 'PENDING' and j.hold_id is null)
    union all
    -- 8. A paid purchase has exactly one grant of its own, of all its credits; an unpaid one gives nothing.
    select jsonb_build_object('check', 'purchase_granted_once', 'id', p.id,
             'expected', p.credits, 'actual', jsonb_build_object('credits_granted', p.credits_granted, 'grant_amount', g.amount,
               'grants', (select count(*) from public.credit_grants g2 where g2.purchase_id = p.id)))
      from public.purchases p left join public.credit_grants g on g.id = p.grant_id
     where (p.grant_id is not null and g.amount is distinct from p.credits)
        or (p.grant_id is null and (p.status not in ('pending', 'failed') or p.credits_granted <> 0))
        or (select count(*) from public.credit_grants g2 where g2.purchase_id = p.id) > 1
    union all
    -- 9. A paid purchase keeps what the payment rule says for its payment's facts, with the status
    --    the rule says; its ledger rows net to that, and its open take-back pieces to the rest.
    select jsonb_build_object('check', 'purchase_follows_payment_rule', 'id', p.id,
             'expected', jsonb_build_object('credits_kept', r.o_kept, 'status', r.o_status, 'taken_back', p.credits - r.o_kept),
             'actual', jsonb_build_object('credits_granted', p.credits_granted, 'status', p.status,
               'ledger', (select coalesce(sum(l.delta_available - l.delta_debt), 0) from public.credit_ledger l where l.purchase_id = p.id),
               'taken_back', (select coalesce(sum(t.amount - t.given_back), 0) from public.payment_take_backs t where t.purchase_id = p.id)))
      from public.purchases p
      cross join lateral app.payment_rule(p.provider, p.provider_payment_id, p.credits) r
     where p.grant_id is not null
       and (p.credits_granted <> r.o_kept or p.status is distinct from r.o_status
         or (select coalesce(sum(l.delta_available - l.delta_debt), 0) from public.credit_ledger l where l.purchase_id = p.id) <> r.o_kept
         or (select coalesce(sum(t.amount - t.given_back), 0) from public.payment_take_backs t where t.purchase_id = p.id) <> p.credits - r.o_kept)
  )
  select coalesce(jsonb_agg(v), '[]'::jsonb) into v_violations from violations;
  return v_violations;
end;
$$;
comment on function public.reconcile() is 'Service role: every violated credit invariant (balance vs ledger sum, ledger running balances, available vs grants remaining, held vs active holds, hold allocations, debt only when nothing is available, jobs vs holds, purchases granted once, paid purchases vs the payment rule, their ledger rows and take-back pieces) as a JSON array; [] when all hold.';
revoke all on function public.reconcile() from public, anon, authenticated, service_role;
grant execute on function public.reconcile() to service_role;
