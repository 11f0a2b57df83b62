-- Bound the sweepers (expire_stale_holds, expire_credits, the dead-letter pass of claim_next_jobs, cleanup_expired) to small batches that never wait for a lock, so they cannot deadlock and no user request waits on a whole sweep.

-- Before, each sweeper locked many users' jobs, holds and balance rows in one transaction, each in
-- its own order (hold expiry, user id, lease expiry): two sweepers, or a sweeper and a job
-- settling, could deadlock, and a user's generate waited for the whole sweep. Now a sweeper takes
-- every lock with SKIP LOCKED (a row somebody holds is left for the next call), so it never waits
-- and cannot be part of a deadlock; it handles a bounded batch (100 holds, 100 users, 10 dead
-- letters), so a user request waits at most for one small batch, and answers "more": true when
-- work is left, for the caller to call again. Lock order stays job, hold, balance, grants.

-- Locks a hold and its user's balance if both are free right now; false (nothing locked that
-- the caller must keep) when either is taken. Re-locking rows the caller already holds succeeds.
create or replace function app.try_lock_hold_and_balance(p_hold_id uuid, p_user_id uuid)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform 1 from public.credit_holds where id = p_hold_id for update skip locked;
  if not found then
    return false;
  end if;
  return app.try_lock_balance(p_user_id);
end;
$$;
comment on function app.try_lock_hold_and_balance(uuid, uuid) is 'Locks a hold and its user''s balance without waiting; false if either is locked by someone else.';

-- Locks a user's balance row if it is free right now (creating it if missing); false otherwise.
create or replace function app.try_lock_balance(p_user_id uuid)
returns boolean
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform 1 from public.credit_balances where user_id = p_user_id for update skip locked;
  if found then
    return true;
  end if;
  if exists (select 1 from public.credit_balances where user_id = p_user_id) then
    return false;
  end if;
  perform app.lock_balance(p_user_id);
  return true;
end;
$$;
comment on function app.try_lock_balance(uuid) is 'Locks a user''s balance row without waiting; false if another transaction holds it.';

drop function public.expire_stale_holds();
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
       and not (j.locked_until is not null and j.locked_until > v_now and j.status not in ('READY', 'FAILED'))
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
      continue when v_job.locked_until > v_now and v_job.status not in ('READY', 'FAILED');
    end if;
    if not app.try_lock_hold_and_balance(v_hold.id, v_hold.user_id) then
      v_skipped := v_skipped + 1;
      continue;
    end if;
    continue when (select status from public.credit_holds where id = v_hold.id) <> 'active';
    if v_hold.job_id is not null and v_job.status not in ('READY', 'FAILED') then
      update public.jobs
         set status = 'FAILED', error_code = 'hold_expired', error_message = 'The job did not finish in time.',
             credits_final = 0, worker_id = null, locked_until = null, next_retry_at = null,
             finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
       where id = v_job.id;
      update public.job_steps set status = 'failed', finished_at = pg_catalog.now()
       where job_id = v_job.id and status = 'running';
    end if;
    if (app.settle_hold(v_hold.id, 0, 'expired')).status = 'expired' then
      v_count := v_count + 1;
    end if;
  end loop;
  return jsonb_build_object('expired', v_count, 'skipped', v_skipped, 'more', v_skipped > 0 or exists (
    select 1 from public.credit_holds h left join public.jobs j on j.id = h.job_id
     where h.status = 'active' and h.expires_at <= v_now
       and not (j.locked_until is not null and j.locked_until > v_now and j.status not in ('READY', 'FAILED'))));
end;
$$;
comment on function public.expire_stale_holds(integer) is 'Service role: releases at most p_limit (default 100) active holds past their expiry (6 hours after generate) unless a worker still holds the job''s lease, and fails their unfinished jobs with error_code hold_expired. Never waits for a lock: a hold whose job, hold or balance row is busy is skipped for the next call. {"expired": n, "skipped": n, "more": bool}; call again while more is true.';

create or replace function public.expire_credits(p_max_users integer default 1000)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user record;
  v_users integer := 0;
  v_credits integer := 0;
  v_skipped integer := 0;
  v_expired integer;
begin
  perform app.require_service_role();
  if p_max_users is null or p_max_users not between 1 and 100000 then
    raise exception using errcode = '22023', message = 'max_users must be between 1 and 100000.', hint = 'invalid_request', detail = 'max_users';
  end if;
  -- At most 100 users per call whatever p_max_users says: their balance rows stay locked until
  -- the call commits, and a user's request must not wait for a long sweep.
  for v_user in
    select distinct user_id from public.credit_grants
     where remaining > 0 and expires_at <= app.now()
     order by user_id
     limit least(p_max_users, 100)
  loop
    if not app.try_lock_balance(v_user.user_id) then
      v_skipped := v_skipped + 1;
      continue;
    end if;
    v_expired := app.expire_due_grants(v_user.user_id);
    if v_expired > 0 then
      v_users := v_users + 1;
      v_credits := v_credits + v_expired;
    end if;
  end loop;
  return jsonb_build_object('users', v_users, 'credits', v_credits, 'skipped', v_skipped,
    'more', v_skipped > 0 or exists (select 1 from public.credit_grants where remaining > 0 and expires_at <= app.now()));
end;
$$;
comment on function public.expire_credits(integer) is 'Service role: expires the remaining credits of grants past their expiry (one ledger row per grant), for at most p_max_users and at most 100 users per call. Never waits for a lock: a user whose balance is busy is skipped for the next call. {"users": n, "credits": n, "skipped": n, "more": bool}; call again while more is true.';

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

  -- Abandoned jobs that used all their attempts are dead-lettered instead of claimed again: at
  -- most 10 per call, and only those whose job, hold and balance are free right now (never
  -- waiting for a lock, so this pass cannot deadlock with anything; what it skips the next call
  -- takes).
  for v_job in
    select id, hold_id, user_id from public.jobs
     where status not in ('PENDING', 'QUEUED', 'READY', 'FAILED') and locked_until <= v_now and attempts >= max_attempts
     order by locked_until
     limit 10
     for update skip locked
  loop
    continue when v_job.hold_id is not null and not app.try_lock_hold_and_balance(v_job.hold_id, v_job.user_id);
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

revoke all on function app.try_lock_hold_and_balance(uuid, uuid), app.try_lock_balance(uuid)
  from public, anon, authenticated, service_role;
revoke all on function public.expire_stale_holds(integer), public.expire_credits(integer), public.claim_next_jobs(text, integer, integer)
  from public, anon, authenticated, service_role;
grant execute on function public.expire_stale_holds(integer), public.expire_credits(integer), public.claim_next_jobs(text, integer, integer)
  to service_role;

-- cleanup_expired: the same rules (rows somebody holds are skipped, 1000 of each per call).
create or replace function public.cleanup_expired()
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_keys integer;
  v_drafts integer;
begin
  perform app.require_service_role();
  delete from public.idempotency_keys
   where id in (select id from public.idempotency_keys where expires_at <= app.now()
                 order by expires_at limit 1000 for update skip locked);
  get diagnostics v_keys = row_count;
  -- Unclaimed drafts are kept a week past expiry so a late claim still answers 410, not 404.
  delete from public.draft_prompts
   where id in (select id from public.draft_prompts where claimed_by is null and expires_at <= app.now() - interval '7 days'
                 order by expires_at limit 1000 for update skip locked);
  get diagnostics v_drafts = row_count;
  return jsonb_build_object('idempotency_keys', v_keys, 'drafts', v_drafts,
    'more', exists (select 1 from public.idempotency_keys where expires_at <= app.now())
         or exists (select 1 from public.draft_prompts where claimed_by is null and expires_at <= app.now() - interval '7 days'));
end;
$$;
comment on function public.cleanup_expired() is 'Service role: deletes expired idempotency records (24 h) and unclaimed drafts a week past their expiry, at most 1000 of each per call and never waiting for a lock. Payment ids and event ids are never deleted: they keep blocking a second grant. {"idempotency_keys": n, "drafts": n, "more": bool}; call again while more is true.';
revoke all on function public.cleanup_expired() from public, anon, authenticated, service_role;
grant execute on function public.cleanup_expired() to service_role;
