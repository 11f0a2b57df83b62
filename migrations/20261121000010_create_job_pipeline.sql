-- Create the back-office job pipeline: claim_next_jobs, report_job_progress, complete_job, fail_job and expire_stale_holds.

-- All of these are service_role only and take job ids as parameters (the back office acts for no
-- user). Every pipeline event is idempotent and safe out of order:
--   * a terminal job (READY or FAILED) never changes again: complete_job, fail_job and progress
--     reports on it return the current job with applied = false;
--   * progress never moves a job back to an earlier state, and progress never decreases;
--   * a worker whose visibility timeout lapsed and whose job was claimed by another worker is
--     ignored (applied = false) when it reports progress, completes or fails.
-- Every event may name the attempt it belongs to (p_attempt, the job's attempts as
-- claim_next_jobs returned it): an event of another attempt changes nothing (applied = false),
-- even from a worker that reuses its worker_id. Null skips the check; the Worker requires it.
-- Retry: fail_job with retryable = true puts the job back in QUEUED after 30 s * 2^(attempts-1)
-- (capped at one hour) until max_attempts; then the job is dead-lettered (FAILED, dead_lettered_at)
-- and its hold released. A job whose worker vanished is claimable again once locked_until passes,
-- and is dead-lettered when it has used all its attempts.

create or replace function app.job_status_rank(p_status text)
returns integer
language plpgsql
immutable
set search_path = ''
as $$
begin
  return array_position(array[
    'PENDING', 'QUEUED', 'PLANNING', 'SCRIPTING', 'VOICING', 'GENERATING_VISUALS', 'GENERATING_MUSIC',
    'ASSEMBLING', 'RENDERING', 'UPLOADING', 'READY', 'FAILED'], p_status);
end;
$$;
comment on function app.job_status_rank(text) is 'Position of a job status in the pipeline (1 = PENDING).';

-- Fails a locked job for good: FAILED, hold released, running steps failed.
create or replace function app.finish_failed_job(p_job_id uuid, p_error_code text, p_error_message text, p_dead_letter boolean)
returns void
language plpgsql
security definer
set search_path = ''
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
  update public.job_steps set status = 'failed', finished_at = pg_catalog.now()
   where job_id = p_job_id and status = 'running';
  if v_hold_id is not null then
    perform app.settle_hold(v_hold_id, 0, 'released');
  end if;
end;
$$;
comment on function app.finish_failed_job(uuid, text, text, boolean) is 'Marks a (locked) job FAILED and releases its hold.';

create or replace function app.require_job_event(p_job_id uuid)
returns public.jobs
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
begin
  select * into v_job from public.jobs where id = p_job_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such job.', hint = 'not_found', detail = 'job_id';
  end if;
  return v_job;
end;
$$;
comment on function app.require_job_event(uuid) is 'Locks a job for a pipeline event; PT404 not_found when it does not exist.';

create or replace function public.claim_next_jobs(
  p_worker_id text, p_limit integer default 1, p_visibility_timeout_seconds integer default 300)
returns jsonb
language plpgsql
security definer
set search_path = ''
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

  -- Abandoned jobs that used all their attempts are dead-lettered instead of claimed again.
  for v_job in
    select id from public.jobs
     where status not in ('PENDING', 'QUEUED', 'READY', 'FAILED') and locked_until <= v_now and attempts >= max_attempts
     order by locked_until
     for update skip locked
  loop
    perform app.finish_failed_job(v_job.id, 'attempts_exhausted', 'The job was abandoned by its worker too many times.', true);
  end loop;

  for v_job in
    select id from public.jobs
     where (status = 'QUEUED' and (next_retry_at is null or next_retry_at <= v_now))
        or (status not in ('PENDING', 'QUEUED', 'READY', 'FAILED') and locked_until <= v_now and attempts < max_attempts)
     order by created_at, id
     limit p_limit
     for update skip locked
  loop
    update public.jobs
       set status = 'PLANNING', attempts = attempts + 1, worker_id = p_worker_id,
           locked_until = v_now + pg_catalog.make_interval(secs => p_visibility_timeout_seconds),
           next_retry_at = null, started_at = coalesce(started_at, v_now), updated_at = pg_catalog.now()
     where id = v_job.id;
    update public.job_steps set status = 'failed', finished_at = pg_catalog.now()
     where job_id = v_job.id and status = 'running';
    insert into public.job_steps (job_id, user_id, name)
    select id, user_id, 'PLANNING' from public.jobs where id = v_job.id
    on conflict (job_id, name) do update set status = 'running', started_at = pg_catalog.now(), finished_at = null, message = null;
    v_jobs := v_jobs || jsonb_build_array(
      app.job_json(v_job.id, true) || (
        select jsonb_build_object('user_id', j.user_id, 'worker_id', j.worker_id, 'locked_until', j.locked_until,
                                  'project', app.project_json(p))
          from public.jobs j join public.projects p on p.id = j.project_id where j.id = v_job.id));
  end loop;
  return jsonb_build_object('jobs', v_jobs);
end;
$$;
comment on function public.claim_next_jobs(text, integer, integer) is 'Service role: claims up to p_limit runnable jobs for a worker (FOR UPDATE SKIP LOCKED), moving them to PLANNING with a visibility timeout: {"jobs": [job + project + user_id + worker_id + locked_until]}.';

create or replace function public.report_job_progress(
  p_job_id uuid, p_worker_id text, p_status text, p_progress integer default null, p_message text default null,
  p_visibility_timeout_seconds integer default 300, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_status text;
begin
  perform app.require_service_role();
  if p_status is null or app.job_status_rank(p_status) is null
     or p_status in ('PENDING', 'QUEUED', 'READY', 'FAILED') then
    raise exception using errcode = '22023', message = 'status must be a working state (PLANNING .. UPLOADING).',
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
  if v_job.status in ('READY', 'FAILED', 'PENDING', 'QUEUED') or v_job.worker_id is distinct from p_worker_id
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id), 'applied', false);
  end if;
  v_status := case when app.job_status_rank(p_status) > app.job_status_rank(v_job.status) then p_status else v_job.status end;
  update public.jobs
     set status = v_status,
         progress = greatest(progress, coalesce(p_progress, progress)),
         status_message = coalesce(p_message, status_message),
         locked_until = app.now() + pg_catalog.make_interval(secs => p_visibility_timeout_seconds),
         updated_at = pg_catalog.now()
   where id = p_job_id;
  if v_status <> v_job.status then
    update public.job_steps set status = 'succeeded', finished_at = pg_catalog.now()
     where job_id = p_job_id and status = 'running';
    insert into public.job_steps (job_id, user_id, name, message)
    values (p_job_id, v_job.user_id, v_status, p_message)
    on conflict (job_id, name) do update set status = 'running', started_at = pg_catalog.now(), finished_at = null,
                                             message = excluded.message;
  elsif p_message is not null then
    update public.job_steps set message = p_message where job_id = p_job_id and name = v_status;
  end if;
  return jsonb_build_object('job', app.job_json(p_job_id), 'applied', true);
end;
$$;
comment on function public.report_job_progress(uuid, text, text, integer, text, integer, integer) is 'Service role: a worker''s heartbeat and progress (status PLANNING .. UPLOADING, progress 0-100): extends the visibility timeout; never moves a job backwards; ignored (applied = false) on terminal jobs, for a worker that no longer owns the job, and for another attempt than p_attempt. {"job", "applied"}.';

create or replace function public.complete_job(
  p_job_id uuid, p_actual_cost integer, p_output_url text default null, p_manifest jsonb default null,
  p_assets jsonb default '[]'::jsonb, p_worker_id text default null, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_asset jsonb;
begin
  perform app.require_service_role();
  v_job := app.require_job_event(p_job_id);
  if v_job.status in ('READY', 'FAILED') or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', false);
  end if;
  if p_actual_cost is null or p_actual_cost not between 0 and v_job.credits_reserved then
    raise exception using errcode = '22023', message = 'actual_cost must be between 0 and the credits reserved.',
      hint = 'invalid_request', detail = 'actual_cost';
  end if;
  if p_output_url is not null and (char_length(p_output_url) > 2048 or p_output_url !~ '^https?://') then
    raise exception using errcode = '22023', message = 'output_url must be an http(s) URL of at most 2048 characters.',
      hint = 'invalid_request', detail = 'output_url';
  end if;
  if p_manifest is not null and (jsonb_typeof(p_manifest) <> 'object' or pg_column_size(p_manifest) > 65536) then
    raise exception using errcode = '22023', message = 'manifest must be a JSON object of at most 64 KB.',
      hint = 'invalid_request', detail = 'manifest';
  end if;
  if p_assets is null or jsonb_typeof(p_assets) <> 'array' or jsonb_array_length(p_assets) > 100 then
    raise exception using errcode = '22023', message = 'assets must be an array of at most 100 assets.',
      hint = 'invalid_request', detail = 'assets';
  end if;
  for v_asset in select value from jsonb_array_elements(p_assets) loop
    if jsonb_typeof(v_asset) <> 'object'
       or v_asset ->> 'kind' is null or v_asset ->> 'kind' not in ('video', 'audio', 'image', 'subtitle', 'thumbnail', 'script', 'other')
       or v_asset ->> 'url' is null or char_length(v_asset ->> 'url') > 2048 then
      raise exception using errcode = '22023', message = 'Each asset needs a known kind and a url.',
        hint = 'invalid_request', detail = 'assets';
    end if;
    insert into public.assets (job_id, project_id, user_id, kind, url, mime_type, size_bytes, duration_seconds, metadata)
    values (p_job_id, v_job.project_id, v_job.user_id, v_asset ->> 'kind', v_asset ->> 'url', v_asset ->> 'mime_type',
            (v_asset ->> 'size_bytes')::bigint, (v_asset ->> 'duration_seconds')::numeric,
            coalesce(v_asset -> 'metadata', '{}'::jsonb));
  end loop;

  if v_job.hold_id is not null then
    perform app.settle_hold(v_job.hold_id, p_actual_cost, 'released');
  end if;
  update public.jobs
     set status = 'READY', progress = 100, credits_final = p_actual_cost, output_url = p_output_url,
         manifest = p_manifest, worker_id = null, locked_until = null, next_retry_at = null,
         error_code = null, error_message = null, finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where id = p_job_id;
  update public.job_steps set status = 'succeeded', finished_at = pg_catalog.now()
   where job_id = p_job_id and status = 'running';
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true);
end;
$$;
comment on function public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer) is 'Service role: the job is READY. Captures p_actual_cost (0 .. credits_reserved) from its hold and returns the rest to the grants, records the output and assets. Idempotent: on a terminal job, for a worker that no longer owns it, or for another attempt than p_attempt, returns the job with applied = false. {"job", "applied"}.';

create or replace function public.fail_job(
  p_job_id uuid, p_error_code text, p_error_message text default null, p_retryable boolean default true,
  p_worker_id text default null, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = ''
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
  if v_job.status in ('READY', 'FAILED') or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt) then
    return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', false);
  end if;
  if coalesce(p_retryable, true) and v_job.attempts < v_job.max_attempts then
    update public.jobs
       set status = 'QUEUED', error_code = p_error_code, error_message = p_error_message,
           worker_id = null, locked_until = null,
           next_retry_at = app.now() + pg_catalog.make_interval(secs => least(30 * power(2, greatest(v_job.attempts, 1) - 1), 3600)),
           updated_at = pg_catalog.now()
     where id = p_job_id;
    update public.job_steps set status = 'failed', finished_at = pg_catalog.now()
     where job_id = p_job_id and status = 'running';
  else
    perform app.finish_failed_job(p_job_id, p_error_code, p_error_message, coalesce(p_retryable, true));
  end if;
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true);
end;
$$;
comment on function public.fail_job(uuid, text, text, boolean, text, integer) is 'Service role: a job attempt failed. Retryable and attempts left: back to QUEUED after an exponential backoff (30 s doubling, at most 1 h). Otherwise FAILED (dead-lettered when retries ran out) and its hold released. Idempotent on terminal jobs and for another attempt than p_attempt (applied = false). {"job", "applied"}.';

create or replace function public.expire_stale_holds()
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_now timestamptz := app.now();
  v_hold record;
  v_job public.jobs;
  v_count integer := 0;
begin
  perform app.require_service_role();
  for v_hold in
    select h.id, h.job_id from public.credit_holds h
     where h.status = 'active' and h.expires_at <= v_now
     order by h.expires_at
  loop
    -- Lock order: job, then hold (settle_hold), then balance.
    if v_hold.job_id is not null then
      select * into v_job from public.jobs where id = v_hold.job_id for update;
      -- A job a worker is still heartbeating keeps its hold.
      continue when v_job.locked_until > v_now and v_job.status not in ('READY', 'FAILED');
      if v_job.status not in ('READY', 'FAILED') then
        update public.jobs
           set status = 'FAILED', error_code = 'hold_expired', error_message = 'The job did not finish in time.',
               credits_final = 0, worker_id = null, locked_until = null, next_retry_at = null,
               finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
         where id = v_job.id;
        update public.job_steps set status = 'failed', finished_at = pg_catalog.now()
         where job_id = v_job.id and status = 'running';
      end if;
    end if;
    if (app.settle_hold(v_hold.id, 0, 'expired')).status = 'expired' then
      v_count := v_count + 1;
    end if;
  end loop;
  return jsonb_build_object('expired', v_count);
end;
$$;
comment on function public.expire_stale_holds() is 'Service role: releases active holds past their expiry (6 hours after generate) unless a worker still holds the job''s lease, and fails their unfinished jobs with error_code hold_expired. {"expired": n}.';

revoke all on function
  app.job_status_rank(text), app.finish_failed_job(uuid, text, text, boolean), app.require_job_event(uuid)
  from public, anon, authenticated, service_role;
revoke all on function
  public.claim_next_jobs(text, integer, integer),
  public.report_job_progress(uuid, text, text, integer, text, integer, integer),
  public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer),
  public.fail_job(uuid, text, text, boolean, text, integer),
  public.expire_stale_holds()
  from public, anon, authenticated, service_role;
grant execute on function
  public.claim_next_jobs(text, integer, integer),
  public.report_job_progress(uuid, text, text, integer, text, integer, integer),
  public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer),
  public.fail_job(uuid, text, text, boolean, text, integer),
  public.expire_stale_holds()
  to service_role;
