-- Store each pipeline upload under a key of its own, so a refused or replaced upload never touches the object of a recorded asset; refused and replaced objects are queued for deletion.

-- The Worker streams an upload into R2 before register_asset decides whether it counts. Under the
-- fixed key <job id>/<name>, a late upload (a finished job, a stale attempt) would first overwrite
-- the object of the recorded asset and then be deleted with it. The Worker now stores every upload
-- under <job id>/<name>/<upload id> and passes that key: a refused upload's object is queued in
-- storage_deletions (reason upload_refused, also deleted by the Worker at once), and an object that
-- a newer upload of the same name replaces is queued too (reason asset_replaced).
alter table public.storage_deletions
  drop constraint storage_deletions_reason_check,
  add constraint storage_deletions_reason_check
    check (reason in ('project_deleted', 'account_closed', 'upload_refused', 'asset_replaced'));
comment on column public.storage_deletions.reason is 'project_deleted, account_closed, upload_refused or asset_replaced.';

drop function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb);

create function public.register_asset(
  p_job_id uuid, p_name text, p_kind text, p_content_type text, p_size_bytes bigint, p_sha256 text,
  p_worker_id text default null, p_attempt integer default null, p_metadata jsonb default '{}'::jsonb,
  p_storage_key text default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
  v_asset public.assets;
  v_key text;
  v_old_key text;
begin
  perform app.require_service_role();
  if p_name is null or p_name !~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$' then
    raise exception using errcode = '22023', message = 'name must be 1-128 characters of A-Z, a-z, 0-9, ., _ and -, not starting with . _ or -.',
      hint = 'invalid_request', detail = 'name';
  end if;
  if p_kind is null or p_kind not in ('video', 'audio', 'image', 'subtitle', 'thumbnail', 'script', 'other') then
    raise exception using errcode = '22023', message = 'kind must be video, audio, image, subtitle, thumbnail, script or other.',
      hint = 'invalid_request', detail = 'kind';
  end if;
  if p_content_type is null or p_content_type !~ '^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+(; ?[a-z0-9_-]+=[A-Za-z0-9_.-]+)*$'
     or char_length(p_content_type) > 255 then
    raise exception using errcode = '22023', message = 'content_type must be a media type such as video/mp4.',
      hint = 'invalid_request', detail = 'content_type';
  end if;
  if p_size_bytes is null or p_size_bytes < 0 then
    raise exception using errcode = '22023', message = 'size_bytes must be zero or more.', hint = 'invalid_request', detail = 'size_bytes';
  end if;
  if p_sha256 is null or p_sha256 !~ '^[0-9a-f]{64}$' then
    raise exception using errcode = '22023', message = 'sha256 must be 64 lower-case hex digits.', hint = 'invalid_request', detail = 'sha256';
  end if;
  if p_metadata is null or jsonb_typeof(p_metadata) <> 'object' or pg_catalog.pg_column_size(p_metadata) > 16384 then
    raise exception using errcode = '22023', message = 'metadata must be a JSON object of at most 16 KB.', hint = 'invalid_request', detail = 'metadata';
  end if;
  -- The key of this upload: <job id>/<name>/<upload id> (an upload id of 8-64 characters of
  -- A-Z a-z 0-9 _ -), or <job id>/<name> when none is given (the first shape).
  if p_storage_key is not null
     and (pg_catalog.left(p_storage_key, char_length(p_job_id::text || '/' || p_name || '/')) <> p_job_id::text || '/' || p_name || '/'
          or pg_catalog.substr(p_storage_key, char_length(p_job_id::text || '/' || p_name || '/') + 1) !~ '^[A-Za-z0-9_-]{8,64}$') then
    raise exception using errcode = '22023', message = 'storage_key must be <job id>/<name>/<upload id>.',
      hint = 'invalid_request', detail = 'storage_key';
  end if;
  v_job := app.require_job_event(p_job_id);
  v_key := coalesce(p_storage_key, p_job_id::text || '/' || p_name);
  -- Only the worker holding the job in a working state may add files; otherwise the object just
  -- stored is queued for deletion and the Worker deletes it (applied = false).
  if not app.is_working_status(v_job.status) or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt)
     or exists (select 1 from public.projects p where p.id = v_job.project_id and p.deleted_at is not null) then
    if p_storage_key is not null then
      insert into public.storage_deletions (storage_key, reason) values (v_key, 'upload_refused')
      on conflict (storage_key) do nothing;
    end if;
    return jsonb_build_object('asset', null, 'storage_key', v_key, 'applied', false);
  end if;
  select a.storage_key into v_old_key from public.assets a where a.job_id = p_job_id and a.name = p_name;
  insert into public.assets (job_id, project_id, user_id, kind, name, storage_key, mime_type, size_bytes, sha256, metadata)
  values (p_job_id, v_job.project_id, v_job.user_id, p_kind, p_name, v_key, p_content_type, p_size_bytes, p_sha256, p_metadata)
  on conflict (job_id, name) where name is not null do update
    set kind = excluded.kind, storage_key = excluded.storage_key, mime_type = excluded.mime_type,
        size_bytes = excluded.size_bytes, sha256 = excluded.sha256, metadata = excluded.metadata
  returning * into v_asset;
  -- The same name uploaded again: the object it replaces is deleted.
  if v_old_key is not null and v_old_key <> v_key then
    insert into public.storage_deletions (storage_key, reason) values (v_old_key, 'asset_replaced')
    on conflict (storage_key) do nothing;
  end if;
  return jsonb_build_object('asset', app.asset_json(v_asset), 'storage_key', v_key, 'applied', true);
end;
$$;
comment on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text) is 'Service role: the Worker stored an upload of the pipeline in R2 under p_storage_key (<job id>/<name>/<upload id>; <job id>/<name> when null); records kind, content type, size and SHA-256 (the same name again replaces the record and queues the replaced object in storage_deletions). applied = false unless the worker holds the job in a working state for p_attempt and its project is not deleted; the refused object is then queued in storage_deletions and the Worker deletes it. {"asset", "storage_key", "applied"}.';

revoke all on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text)
  from public, anon, authenticated, service_role;
grant execute on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text) to service_role;
