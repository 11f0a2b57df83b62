-- The storage deletion queue refuses a key an asset row references (a refused retry of register_asset could queue a recorded upload's object), and register_asset takes each signed upload once (a replay within the signature window could roll a file back to an older upload).

-- 1. A key an asset references is live: queueing it would delete a recorded file's object. Every
-- path that queues a key (refused or replaced uploads, project and account deletion) deletes or
-- repoints the asset row first, so a live key reaching the queue is a bug; the trigger drops it.
-- Serves the trigger's look-up and register_asset's "already recorded" check.
create index assets_storage_key_idx on public.assets (storage_key) where storage_key is not null;

create or replace function app.skip_live_storage_keys()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if exists (select 1 from public.assets a where a.storage_key = new.storage_key) then
    return null;
  end if;
  return new;
end;
$$;
comment on function app.skip_live_storage_keys() is 'Trigger: a storage key that an asset row references is not queued for deletion (the row is skipped).';
revoke all on function app.skip_live_storage_keys() from public, anon, authenticated, service_role;
create trigger storage_deletions_skip_live_keys
  before insert on public.storage_deletions
  for each row execute function app.skip_live_storage_keys();

-- 2. Signed uploads used once. The Worker passes a reference of the signed message (hex SHA-256 of
-- "{t}.{signed description}"); the signature window is 5 minutes either way, so a reference is kept
-- for an hour and then forgotten.
create table public.asset_upload_signatures (
  signature_ref text primary key,
  job_id uuid not null references public.jobs (id),
  storage_key text not null,
  created_at timestamptz not null default now(),
  constraint asset_upload_signatures_signature_ref_check check (signature_ref ~ '^[0-9a-f]{64}$'),
  constraint asset_upload_signatures_storage_key_length_check check (char_length(storage_key) between 1 and 1024)
);
comment on table public.asset_upload_signatures is 'Signed pipeline uploads already recorded (a reference of the signed message and the key it was stored under), so a replay of the same signed request is refused; kept one hour (the signature window is 5 minutes).';
-- Serves the pruning of references older than an hour.
create index asset_upload_signatures_created_at_idx on public.asset_upload_signatures (created_at);
-- Serves the foreign key to jobs.
create index asset_upload_signatures_job_id_idx on public.asset_upload_signatures (job_id);
alter table public.asset_upload_signatures enable row level security;
revoke all on table public.asset_upload_signatures from public, anon, authenticated, service_role;
grant select on table public.asset_upload_signatures to service_role;
create policy "Service role can read upload signatures"
  on public.asset_upload_signatures for select to service_role using (true);

-- 3. register_asset: the latest body (20261202041918_store_uploads_under_their_own_keys.sql) with
-- p_signature_ref. A reference seen before is a replay: when the upload it recorded is still the
-- asset's file, the answer is that record (applied, replayed; the new object is queued and the
-- Worker deletes it), otherwise it is refused (applied = false, replayed) so an older upload
-- cannot replace a newer one. A key already recorded for the asset is answered as recorded rather
-- than refused, so a late retry of a registration never queues its own live object.
drop function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text);

create function public.register_asset(
  p_job_id uuid, p_name text, p_kind text, p_content_type text, p_size_bytes bigint, p_sha256 text,
  p_worker_id text default null, p_attempt integer default null, p_metadata jsonb default '{}'::jsonb,
  p_storage_key text default null, p_signature_ref text default null)
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
  v_seen public.asset_upload_signatures;
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
  if p_signature_ref is not null and p_signature_ref !~ '^[0-9a-f]{64}$' then
    raise exception using errcode = '22023', message = 'signature_ref must be 64 lower-case hex digits.', hint = 'invalid_request', detail = 'signature_ref';
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

  -- The key is already the asset's file (a late retry of a registration that committed): answer
  -- the record; nothing is queued.
  select * into v_asset from public.assets a where a.job_id = p_job_id and a.name = p_name and a.storage_key = v_key;
  if found and p_storage_key is not null then
    return jsonb_build_object('asset', app.asset_json(v_asset), 'storage_key', v_key, 'applied', true, 'replayed', true);
  end if;

  -- The same signed upload again (under the job's lock, so two at once are told apart).
  if p_signature_ref is not null then
    delete from public.asset_upload_signatures where created_at < pg_catalog.now() - interval '1 hour';
    select * into v_seen from public.asset_upload_signatures where signature_ref = p_signature_ref;
    if found then
      if p_storage_key is not null then
        insert into public.storage_deletions (storage_key, reason) values (v_key, 'upload_refused')
        on conflict (storage_key) do nothing;
      end if;
      select * into v_asset from public.assets a where a.job_id = p_job_id and a.name = p_name and a.storage_key = v_seen.storage_key;
      if found then
        return jsonb_build_object('asset', app.asset_json(v_asset), 'storage_key', v_seen.storage_key, 'applied', true, 'replayed', true);
      end if;
      return jsonb_build_object('asset', null, 'storage_key', v_key, 'applied', false, 'replayed', true);
    end if;
  end if;

  -- Only the worker holding the job in a working state may add files; otherwise the object just
  -- stored is queued for deletion and the Worker deletes it (applied = false).
  if not app.is_working_status(v_job.status) or (p_worker_id is not null and v_job.worker_id is distinct from p_worker_id)
     or (p_attempt is not null and v_job.attempts is distinct from p_attempt)
     or exists (select 1 from public.projects p where p.id = v_job.project_id and p.deleted_at is not null) then
    if p_storage_key is not null then
      insert into public.storage_deletions (storage_key, reason) values (v_key, 'upload_refused')
      on conflict (storage_key) do nothing;
    end if;
    return jsonb_build_object('asset', null, 'storage_key', v_key, 'applied', false, 'replayed', false);
  end if;
  select a.storage_key into v_old_key from public.assets a where a.job_id = p_job_id and a.name = p_name;
  insert into public.assets (job_id, project_id, user_id, kind, name, storage_key, mime_type, size_bytes, sha256, metadata)
  values (p_job_id, v_job.project_id, v_job.user_id, p_kind, p_name, v_key, p_content_type, p_size_bytes, p_sha256, p_metadata)
  on conflict (job_id, name) where name is not null do update
    set kind = excluded.kind, storage_key = excluded.storage_key, mime_type = excluded.mime_type,
        size_bytes = excluded.size_bytes, sha256 = excluded.sha256, metadata = excluded.metadata
  returning * into v_asset;
  if p_signature_ref is not null then
    insert into public.asset_upload_signatures (signature_ref, job_id, storage_key) values (p_signature_ref, p_job_id, v_key);
  end if;
  -- The same name uploaded again: the object it replaces is deleted.
  if v_old_key is not null and v_old_key <> v_key then
    insert into public.storage_deletions (storage_key, reason) values (v_old_key, 'asset_replaced')
    on conflict (storage_key) do nothing;
  end if;
  return jsonb_build_object('asset', app.asset_json(v_asset), 'storage_key', v_key, 'applied', true, 'replayed', false);
end;
$$;
comment on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text, text) is 'Service role: the Worker stored an upload of the pipeline in R2 under p_storage_key (<job id>/<name>/<upload id>; <job id>/<name> when null); records kind, content type, size and SHA-256 (the same name again replaces the record and queues the replaced object in storage_deletions). applied = false unless the worker holds the job in a working state for p_attempt and its project is not deleted; the refused object is then queued in storage_deletions and the Worker deletes it. A key already recorded for the asset answers the record (replayed). p_signature_ref (hex SHA-256 of the signed upload) is taken once: a replay answers the record it made while that is still the asset''s file, else applied = false; either way with replayed = true and the new object queued for deletion. {"asset", "storage_key", "applied", "replayed"}.';

revoke all on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text, text)
  from public, anon, authenticated, service_role;
grant execute on function public.register_asset(uuid, text, text, text, bigint, text, text, integer, jsonb, text, text) to service_role;
