-- Bind pipeline events to the attempt that was leased: report_job_progress, complete_job and fail_job take p_attempt.

-- claim_next_jobs increments jobs.attempts and returns it with each job. An event that names an
-- attempt other than the job's current one (a late success or failure of an earlier attempt,
-- even from a worker that reuses its worker_id) changes nothing and answers applied = false.
-- p_attempt is optional here (null skips the check) so back-office callers keep working; the
-- Worker's pipeline endpoint requires it.

drop function public.report_job_progress(uuid, text, text, integer, text, integer);
drop function public.complete_job(uuid, integer, text, jsonb, jsonb, text);
drop function public.fail_job(uuid, text, text, boolean, text);

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

revoke all on function
  public.report_job_progress(uuid, text, text, integer, text, integer, integer),
  public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer),
  public.fail_job(uuid, text, text, boolean, text, integer)
  from public, anon, authenticated, service_role;
grant execute on function
  public.report_job_progress(uuid, text, text, integer, text, integer, integer),
  public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer),
  public.fail_job(uuid, text, text, boolean, text, integer)
  to service_role;
