-- A job is never created in a deleted project: generate read its project without a lock, so a delete_project committing between that read and the job's insert left a QUEUED, held job in a deleted project (hidden from the user, not cancellable, still claimable by the pipeline).

-- 1. generate reads its project (given, or the claimed draft's) FOR KEY SHARE, before the balance
-- lock. Redefines public.generate from 20261202062258_check_suspension_under_the_balance_lock.sql;
-- only the two project reads change; its comment and grants are kept by CREATE OR REPLACE.
create or replace function public.generate(p_idempotency_key text, p_request jsonb)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_now timestamptz;
  v_fingerprint bytea;
  v_record public.idempotency_keys;
  v_field text;
  v_model public.models;
  v_prompt text;
  v_draft_id uuid;
  v_project_id uuid;
  v_project public.projects;
  v_niche text;
  v_title text;
  v_voice text;
  v_mode text;
  v_settings jsonb;
  v_minutes integer;
  v_price integer;
  v_balance public.credit_balances;
  v_job_id uuid := gen_random_uuid();
  v_hold_id uuid;
  v_response jsonb;
begin
  -- Issue 13: a suspended account reads but does not generate.
  perform app.refuse_suspended(v_user_id);
  perform app.check_idempotency_key(p_idempotency_key);
  if p_request is null or jsonb_typeof(p_request) <> 'object' or octet_length(p_request::text) > 16384 then
    raise exception using errcode = '22023', message = 'The request must be a JSON object of at most 16 KB.',
      hint = 'invalid_request', detail = 'request';
  end if;

  -- 1. Idempotency: one call per (user, key) at a time; replay or refuse what was seen before.
  if not pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtextextended(v_user_id::text || ':generate:' || p_idempotency_key, 0)) then
    raise exception using errcode = 'PT409', message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end if;
  v_now := app.now();
  v_fingerprint := pg_catalog.sha256(pg_catalog.convert_to(p_request::text, 'UTF8'));
  select * into v_record from public.idempotency_keys
   where user_id = v_user_id and operation = 'generate' and key = p_idempotency_key;
  if found and v_record.expires_at <= v_now then
    delete from public.idempotency_keys where id = v_record.id;
  elsif found then
    if v_record.request_fingerprint <> v_fingerprint then
      raise exception using errcode = 'PT422', message = 'This idempotency key was already used with a different request.',
        hint = 'idempotency_key_reused', detail = 'idempotency_key';
    end if;
    if v_record.state = 'done' then
      return jsonb_build_object('replayed', true, 'response', v_record.response);
    end if;
    raise exception using errcode = 'PT409', message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end if;
  begin
    insert into public.idempotency_keys (user_id, operation, key, request_fingerprint, expires_at)
    values (v_user_id, 'generate', p_idempotency_key, v_fingerprint, v_now + interval '24 hours');
  exception when unique_violation then
    raise exception using errcode = 'PT409', message = 'A request with this idempotency key is still being processed.',
      hint = 'idempotency_in_flight';
  end;

  -- 2. Validate the request before touching any credit.
  select k into v_field from jsonb_object_keys(p_request) k
   where k not in ('model_id', 'prompt', 'draft_id', 'project_id', 'niche_preset', 'target_minutes',
                   'title', 'voice', 'transcript_mode', 'settings')
   order by k limit 1;
  if v_field is not null then
    raise exception using errcode = '22023', message = 'Unknown field ' || left(v_field, 100) || '.',
      hint = 'invalid_request', detail = left(v_field, 100);
  end if;
  if jsonb_typeof(p_request -> 'model_id') is distinct from 'string' then
    raise exception using errcode = '22023', message = 'model_id is required.', hint = 'invalid_request', detail = 'model_id';
  end if;
  select * into v_model from public.models where id = p_request ->> 'model_id' and available;
  if not found then
    raise exception using errcode = '22023', message = 'No such model, or it is not available.', hint = 'invalid_request', detail = 'model_id';
  end if;
  v_prompt := app.request_text(p_request, 'prompt', 4000);
  v_draft_id := app.request_uuid(p_request, 'draft_id');
  v_project_id := app.request_uuid(p_request, 'project_id');
  if (v_prompt is not null)::integer + (v_draft_id is not null)::integer + (v_project_id is not null)::integer <> 1 then
    raise exception using errcode = '22023', message = 'Give exactly one of prompt, draft_id or project_id.',
      hint = 'invalid_request', detail = 'prompt';
  end if;
  v_niche := app.request_text(p_request, 'niche_preset', 100);
  v_title := app.request_text(p_request, 'title', 200);
  v_voice := app.request_text(p_request, 'voice', 100);
  v_mode := app.request_text(p_request, 'transcript_mode', 20);
  if v_mode is not null and v_mode not in ('none', 'captions', 'burned_in') then
    raise exception using errcode = '22023', message = 'transcript_mode must be none, captions or burned_in.',
      hint = 'invalid_request', detail = 'transcript_mode';
  end if;
  v_settings := p_request -> 'settings';
  if v_settings is not null and jsonb_typeof(v_settings) <> 'object' then
    raise exception using errcode = '22023', message = 'settings must be a JSON object.', hint = 'invalid_request', detail = 'settings';
  end if;
  -- The stored size (projects_settings_object_check), which can be several times the text size.
  if v_settings is not null and pg_catalog.pg_column_size(v_settings) > 16384 then
    raise exception using errcode = '22023', message = 'settings must be at most 16 KB.', hint = 'invalid_request', detail = 'settings';
  end if;
  if p_request ? 'target_minutes' then
    if jsonb_typeof(p_request -> 'target_minutes') <> 'number' or (p_request ->> 'target_minutes') !~ '^[0-9]{1,4}$' then
      raise exception using errcode = '22023', message = 'target_minutes must be a whole number.',
        hint = 'invalid_request', detail = 'target_minutes';
    end if;
    v_minutes := (p_request ->> 'target_minutes')::integer;
  end if;

  if v_draft_id is not null then
    select p.* into v_project from public.draft_prompts d join public.projects p on p.id = d.project_id
     where d.id = v_draft_id and d.claimed_by = v_user_id and p.deleted_at is null
       for key share of p;
    if not found then
      raise exception using errcode = 'PT404', message = 'No claimed draft with this id.', hint = 'draft_not_found', detail = 'draft_id';
    end if;
  elsif v_project_id is not null then
    -- FOR KEY SHARE (the lock the job's foreign key takes at the insert, taken here, before the
    -- balance): a delete_project holding the project is waited for, and its deleted_at is then
    -- seen; one that comes later waits for this job and cancels it. Project before balance, as in
    -- delete_project.
    select * into v_project from public.projects where id = v_project_id and user_id = v_user_id and deleted_at is null
       for key share;
    if not found then
      raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
    end if;
  end if;
  v_minutes := coalesce(v_minutes, v_project.target_minutes, v_model.min_minutes);
  if v_minutes not between v_model.min_minutes and v_model.max_minutes then
    raise exception using errcode = '22023',
      message = 'target_minutes must be between ' || v_model.min_minutes || ' and ' || v_model.max_minutes || ' for this model.',
      hint = 'invalid_request', detail = 'target_minutes';
  end if;

  -- 3. Price from the catalog, then lock only the caller's balance row and check it.
  v_price := v_model.cost_per_generation + v_model.cost_per_minute * v_minutes;
  v_balance := app.lock_balance(v_user_id);
  -- Suspension again under the balance lock, which admin_set_suspension takes too: a suspension
  -- that committed while this request was past the first check is seen here, and one that comes
  -- later waits for this transaction.
  perform app.refuse_suspended(v_user_id);
  if app.expire_due_grants(v_user_id) > 0 then
    select * into v_balance from public.credit_balances where user_id = v_user_id;
  end if;
  if v_balance.debt > 0 then
    raise exception using errcode = 'PT402', message = 'Your account owes credits; buy credits to continue.',
      hint = 'credits_in_debt', detail = jsonb_build_object('debt', v_balance.debt)::text;
  end if;
  if v_balance.available < v_price then
    raise exception using errcode = 'PT402', message = 'Not enough credits for this generation.',
      hint = 'insufficient_credits',
      detail = jsonb_build_object('required', v_price, 'available', v_balance.available)::text;
  end if;
  -- Issue 13: the per-request maximum and the daily cap, under the balance lock (serialised with
  -- every other generate of this user, so two concurrent requests cannot both pass the cap).
  perform app.check_spend_limits(v_user_id, v_price, v_now);

  -- 4. Project, job, hold, and the stored response, all in this transaction.
  if v_project.id is null then
    insert into public.projects (user_id, title, prompt, niche_preset, target_minutes, voice, transcript_mode, settings)
    values (v_user_id,
            coalesce(v_title, left(pg_catalog.regexp_replace(pg_catalog.btrim(v_prompt), '\s+', ' ', 'g'), 80)),
            v_prompt, v_niche, v_minutes, v_voice, coalesce(v_mode, 'captions'), coalesce(v_settings, '{}'::jsonb))
    returning * into v_project;
  end if;
  -- created_at is on the business clock: it orders the queue (claim_next_jobs takes the oldest first).
  insert into public.jobs (id, user_id, project_id, model_id, status, target_minutes, credits_reserved, idempotency_key, created_at)
  values (v_job_id, v_user_id, v_project.id, v_model.id, 'QUEUED', v_minutes, v_price, p_idempotency_key, v_now);
  v_hold_id := app.create_hold(v_user_id, v_price, v_now + interval '6 hours', v_job_id, p_idempotency_key);
  update public.jobs set hold_id = v_hold_id where id = v_job_id;

  v_response := jsonb_build_object('job', app.job_json(v_job_id), 'balance', app.balance_json(v_user_id));
  update public.idempotency_keys
     set state = 'done', response_status = 201, response = v_response
   where user_id = v_user_id and operation = 'generate' and key = p_idempotency_key;
  return jsonb_build_object('replayed', false, 'response', v_response);
end;
$$;

-- 2. A backstop for any path that inserts a job (a project generate creates itself is locked by
-- its own transaction): the project is re-read at the insert FOR KEY SHARE, the lock the foreign
-- key takes anyway. A delete_project holding the project is waited for and its deleted_at seen, so
-- the job is refused (the whole transaction rolls back: no hold, no job, no stored answer).
create or replace function app.refuse_job_in_deleted_project()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
  perform 1 from public.projects p where p.id = new.project_id and p.deleted_at is null for key share;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
  end if;
  return new;
end;
$$;
comment on function app.refuse_job_in_deleted_project() is 'Trigger: a job is not created in a project that is deleted (or being deleted: the project row is read FOR KEY SHARE, after any delete_project holding it commits).';
revoke all on function app.refuse_job_in_deleted_project() from public, anon, authenticated, service_role;
create trigger jobs_refuse_deleted_project
  before insert on public.jobs
  for each row execute function app.refuse_job_in_deleted_project();
