-- Record where each output lives in R2 (storage key, name, size, content type, SHA-256), register uploads from the pipeline, and queue objects to delete from R2.

-- The pipeline uploads through the Worker (PUT /v1/pipeline/jobs/{id}/assets/{name}): the Worker
-- streams the body into the OUTPUTS bucket under the key `<job id>/<name>`, then calls
-- register_asset with the size and SHA-256 it measured. The success event (complete_job) lists the
-- assets by name. An asset has a storage key (in R2) or a url (an external file, the older shape),
-- or both. Objects to remove from R2 (a deleted project or account) are queued in
-- storage_deletions, so they are deleted even when the request that deleted the rows never
-- reaches the Worker (e.g. `delete from auth.users` in the dashboard).

alter table public.assets
  alter column url drop not null,
  add column name text,
  add column storage_key text,
  add column sha256 text,
  add constraint assets_name_format_check check (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'),
  add constraint assets_storage_key_length_check check (char_length(storage_key) between 1 and 1024),
  add constraint assets_sha256_format_check check (sha256 ~ '^[0-9a-f]{64}$'),
  add constraint assets_location_check check (url is not null or storage_key is not null),
  add constraint assets_storage_key_key unique (storage_key);
comment on column public.assets.name is 'File name within the job (the last segment of the upload path), unique per job.';
comment on column public.assets.storage_key is 'Key of the object in the OUTPUTS R2 bucket (<job id>/<name>); null for an external url.';
comment on column public.assets.sha256 is 'SHA-256 of the stored bytes, lower-case hex, as measured by the Worker while streaming.';
comment on column public.assets.mime_type is 'Content type served on download.';
comment on column public.assets.size_bytes is 'Size of the stored object in bytes.';
-- Serves register_asset (one asset per job and name) and the download lookup by name.
create unique index assets_job_id_name_key on public.assets (job_id, name) where name is not null;

create table public.storage_deletions (
  id bigint generated always as identity primary key,
  storage_key text not null,
  reason text not null,
  requested_at timestamptz not null default now(),
  constraint storage_deletions_storage_key_length_check check (char_length(storage_key) between 1 and 1024),
  constraint storage_deletions_reason_check check (reason in ('project_deleted', 'account_closed', 'upload_refused')),
  constraint storage_deletions_storage_key_key unique (storage_key)
);
comment on table public.storage_deletions is 'R2 objects (OUTPUTS bucket) to delete: queued when a project or account is deleted; the Worker deletes them and confirms with confirm_storage_deletions.';
comment on column public.storage_deletions.reason is 'project_deleted, account_closed or upload_refused.';
alter table public.storage_deletions enable row level security;
revoke all on table public.storage_deletions from public, anon, authenticated, service_role;
grant select on table public.storage_deletions to service_role;
create policy "Service role can read storage deletions"
  on public.storage_deletions for select to service_role using (true);

-- Deletes the asset rows matching p_where_job_ids and queues their objects; returns the keys.
create or replace function app.delete_assets(p_job_ids uuid[], p_reason text)
returns text[]
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_keys text[];
begin
  with gone as (
    delete from public.assets where job_id = any (p_job_ids) returning storage_key
  )
  select coalesce(array_agg(storage_key order by storage_key), '{}') into v_keys from gone where storage_key is not null;
  insert into public.storage_deletions (storage_key, reason)
  select k, p_reason from unnest(v_keys) k
  on conflict (storage_key) do nothing;
  return v_keys;
end;
$$;
comment on function app.delete_assets(uuid[], text) is 'Deletes the assets of the given jobs, queues their R2 objects in storage_deletions and returns the storage keys.';

create or replace function public.register_asset(
  p_job_id uuid, p_name text, p_kind text, p_content_type text, p_size_bytes bigint, p_sha256 text,
  p_worker_id text default null, p_attempt integer default null, p_metadata jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
  v_asset public.assets;
  v_key text;
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
  v_job := app.require_job_event(p_job_id);
  v_key := p_job_id::text || '/' || p_name;
  -- Only the worker holding the job in a working state may add files; otherwise the Worker deletes
  -- the object it just stored (applied = false).
  if not app.is_working_status(v_job.status) or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt)
     or exists (select 1 from public.projects p where p.id = v_job.project_id and p.deleted_at is not null) then
    return jsonb_build_object('asset', null, 'storage_key', v_key, 'applied', false);
  end if;
  insert into public.assets (job_id, project_id, user_id, kind, name, storage_key, mime_type, size_bytes, sha256, metadata)
  values (p_job_id, v_job.project_id, v_job.user_id, p_kind, p_name, v_key, p_content_type, p_size_bytes, p_sha256, p_metadata)
  on conflict (job_id, name) where name is not null do update
    set kind = excluded.kind, storage_key = excluded.storage_key, mime_type = excluded.mime_type,
        size_bytes = excluded.size_bytes, sha256 = excluded.sha256, metadata = excluded.metadata
  returning * into v_asset;
  return jsonb_build_object('asset', app.asset_json(v_asset), 'storage_key', v_key, 'applied', true);
end;
$$;
comment on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb) is 'Service role: the Worker stored an upload of the pipeline in R2 under <job id>/<name>; records kind, content type, size and SHA-256 (the same name again replaces the record). applied = false (and the Worker deletes the object) unless the worker holds the job in a working state for p_attempt and its project is not deleted. {"asset", "storage_key", "applied"}.';

create or replace function app.asset_json(a public.assets)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if a.id is null then
    return null;
  end if;
  return jsonb_build_object('id', a.id, 'job_id', a.job_id, 'kind', a.kind, 'name', a.name, 'url', a.url,
    'storage_key', a.storage_key, 'mime_type', a.mime_type, 'size_bytes', a.size_bytes, 'sha256', a.sha256,
    'duration_seconds', a.duration_seconds, 'metadata', a.metadata, 'created_at', a.created_at);
end;
$$;
comment on function app.asset_json(public.assets) is 'The JSON shape of an asset in every RPC answer.';

create or replace function public.list_storage_deletions(p_limit integer default 100)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  perform app.require_service_role();
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception using errcode = '22023', message = 'limit must be between 1 and 1000.', hint = 'invalid_request', detail = 'limit';
  end if;
  return jsonb_build_object('keys', coalesce((
    select jsonb_agg(storage_key order by id) from (
      select id, storage_key from public.storage_deletions order by id limit p_limit) d), '[]'::jsonb));
end;
$$;
comment on function public.list_storage_deletions(integer) is 'Service role: the oldest p_limit (1-1000, default 100) R2 keys waiting to be deleted from the OUTPUTS bucket: {"keys": [...]}.';

create or replace function public.confirm_storage_deletions(p_keys text[])
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_count integer;
begin
  perform app.require_service_role();
  if p_keys is null or cardinality(p_keys) > 1000 then
    raise exception using errcode = '22023', message = 'keys must be an array of at most 1000 keys.', hint = 'invalid_request', detail = 'keys';
  end if;
  delete from public.storage_deletions where storage_key = any (p_keys);
  get diagnostics v_count = row_count;
  return jsonb_build_object('confirmed', v_count);
end;
$$;
comment on function public.confirm_storage_deletions(text[]) is 'Service role: the Worker deleted these keys from R2 (deleting a missing object is fine); they leave the queue. {"confirmed": n}.';

create or replace function public.complete_job(
  p_job_id uuid, p_actual_cost integer, p_output_url text default null, p_manifest jsonb default null,
  p_assets jsonb default '[]'::jsonb, p_worker_id text default null, p_attempt integer default null)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
  v_asset jsonb;
begin
  perform app.require_service_role();
  v_job := app.require_job_event(p_job_id);
  -- Only a job in a working state can succeed (a queued job did no work; a finished one is final).
  if not app.is_working_status(v_job.status) or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
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
    -- An uploaded file is listed by name (register_asset recorded it); its kind, duration and
    -- metadata may be refined here.
    if jsonb_typeof(v_asset) = 'object' and v_asset ? 'name' and not (v_asset ? 'url') then
      if v_asset ? 'kind' and v_asset ->> 'kind' not in ('video', 'audio', 'image', 'subtitle', 'thumbnail', 'script', 'other') then
        raise exception using errcode = '22023', message = 'Each asset needs a known kind.', hint = 'invalid_request', detail = 'assets';
      end if;
      update public.assets
         set kind = coalesce(v_asset ->> 'kind', kind),
             duration_seconds = coalesce((v_asset ->> 'duration_seconds')::numeric, duration_seconds),
             metadata = case when jsonb_typeof(v_asset -> 'metadata') = 'object' then v_asset -> 'metadata' else metadata end
       where job_id = p_job_id and name = v_asset ->> 'name';
      if not found then
        raise exception using errcode = '22023', message = 'Asset ' || left(v_asset ->> 'name', 128) || ' was not uploaded.',
          hint = 'invalid_request', detail = 'assets';
      end if;
      continue;
    end if;
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

  -- A job whose cancel was requested ends CANCELED, charged what the pipeline reports as spent.
  if v_job.cancel_requested_at is not null then
    perform app.finish_canceled_job(p_job_id, p_actual_cost);
    update public.jobs set output_url = p_output_url, manifest = p_manifest where id = p_job_id;
    return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true);
  end if;
  if v_job.hold_id is not null then
    perform app.settle_hold(v_job.hold_id, p_actual_cost, 'released');
  end if;
  update public.jobs
     set status = 'READY', progress = 100, credits_final = p_actual_cost, output_url = p_output_url,
         manifest = p_manifest, worker_id = null, locked_until = null, next_retry_at = null,
         error_code = null, error_message = null, finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where id = p_job_id;
  update public.job_steps set status = 'succeeded', progress = 100, finished_at = pg_catalog.now(), updated_at = pg_catalog.now()
   where job_id = p_job_id and status = 'started';
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'applied', true);
end;
$$;
comment on function public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer) is 'Service role: the job is READY (CANCELED if its cancel was requested). Captures p_actual_cost (0 .. credits_reserved) from its hold and returns the rest to the grants, records the output and assets (p_assets: [{kind, url, mime_type?, size_bytes?, duration_seconds?, metadata?}] for external files, [{name, kind?, duration_seconds?, metadata?}] for files uploaded through register_asset). Idempotent: on a job not in a working state (queued or finished), for a worker that no longer owns it, or for another attempt than p_attempt, returns the job with applied = false. {"job", "applied"}.';


revoke all on function app.delete_assets(uuid[], text), app.asset_json(public.assets) from public, anon, authenticated, service_role;
revoke all on function
  public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb),
  public.list_storage_deletions(integer), public.confirm_storage_deletions(text[]),
  public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer)
  from public, anon, authenticated, service_role;
grant execute on function
  public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb),
  public.list_storage_deletions(integer), public.confirm_storage_deletions(text[]),
  public.complete_job(uuid, integer, text, jsonb, jsonb, text, integer)
  to service_role;
