-- A cancel-requested job whose lease ran out is ended CANCELED with nothing captured by the first pipeline event that reaches it, so a late report can no longer charge the user for a job they canceled when claim_next_jobs skipped it (busy hold or balance) before that report arrived.
-- Every pipeline event RPC (complete_job, fail_job, finish_canceled_job, report_job_progress,
-- report_job_step, register_asset) locks its job through app.require_job_event. The rule
-- ("Cancellation" in migrations/README.md): the pipeline reports what it spent before its lease
-- runs out; once the lease of a cancel-requested job has lapsed, it reported nothing in time and
-- S = 0. claim_next_jobs already applies that rule, but only to jobs whose hold and balance it can
-- lock without waiting; this applies it at the next event too, so the outcome no longer depends on
-- which of the two comes first. The event then sees a CANCELED job and answers applied = false.

create or replace function app.require_job_event(p_job_id uuid)
returns public.jobs
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
begin
  select * into v_job from public.jobs where id = p_job_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such job.', hint = 'not_found', detail = 'job_id';
  end if;
  if v_job.cancel_requested_at is not null and app.is_working_status(v_job.status)
     and v_job.locked_until is not null and v_job.locked_until <= app.now() then
    perform app.finish_canceled_job(p_job_id, 0);
    select * into v_job from public.jobs where id = p_job_id;
  end if;
  return v_job;
end;
$$;
comment on function app.require_job_event(uuid) is 'Locks a job for a pipeline event; PT404 not_found when it does not exist. A cancel-requested job whose lease lapsed is first ended CANCELED with nothing captured (its worker reported nothing in time).';
revoke all on function app.require_job_event(uuid) from public, anon, authenticated, service_role;
