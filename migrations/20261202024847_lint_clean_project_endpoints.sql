-- Lint clean (supabase db lint --fail-on warning): delete_project's job-id arrays start as typed empty arrays, update_project loses an unused variable; behaviour unchanged.

create or replace function public.update_project(p_project_id uuid, p_changes jsonb)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_project public.projects;
  v_field text;
begin
  if p_changes is null or jsonb_typeof(p_changes) <> 'object' or octet_length(p_changes::text) > 262144 then
    raise exception using errcode = '22023', message = 'The changes must be a JSON object of at most 256 KB.',
      hint = 'invalid_request', detail = 'changes';
  end if;
  select k into v_field from jsonb_object_keys(p_changes) k
   where k not in ('title', 'prompt', 'niche_preset', 'target_minutes', 'voice_profile_id', 'transcript_source', 'transcript_text')
   order by k limit 1;
  if v_field is not null then
    raise exception using errcode = '22023', message = 'Unknown field ' || left(v_field, 100) || '.',
      hint = 'invalid_request', detail = left(v_field, 100);
  end if;
  if p_changes = '{}'::jsonb then
    raise exception using errcode = '22023', message = 'Give at least one field to change.', hint = 'invalid_request', detail = 'changes';
  end if;
  select * into v_project from public.projects
   where id = p_project_id and user_id = v_user_id and deleted_at is null
     for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
  end if;

  -- Same text rules as generate: required fields not blank, single lines but prompt and transcript_text.
  if p_changes ? 'title' then
    v_project.title := app.request_text(p_changes, 'title', 200);
    if v_project.title is null then
      raise exception using errcode = '22023', message = 'title is required.', hint = 'invalid_request', detail = 'title';
    end if;
  end if;
  if p_changes ? 'prompt' then
    v_project.prompt := app.request_text(p_changes, 'prompt', 4000);
    if v_project.prompt is null then
      raise exception using errcode = '22023', message = 'prompt is required.', hint = 'invalid_request', detail = 'prompt';
    end if;
  end if;
  if p_changes ? 'niche_preset' then
    v_project.niche_preset := app.request_text(p_changes, 'niche_preset', 64);
    if v_project.niche_preset is not null
       and not exists (select 1 from public.niche_presets where id = v_project.niche_preset and active) then
      raise exception using errcode = '22023', message = 'niche_preset must be one of the niche presets.',
        hint = 'invalid_request', detail = 'niche_preset';
    end if;
  end if;
  if p_changes ? 'target_minutes' then
    if jsonb_typeof(p_changes -> 'target_minutes') <> 'number' or (p_changes ->> 'target_minutes') !~ '^[0-9]{1,3}$'
       or (p_changes ->> 'target_minutes')::integer not between 1 and 600 then
      raise exception using errcode = '22023', message = 'target_minutes must be a whole number from 1 to 600.',
        hint = 'invalid_request', detail = 'target_minutes';
    end if;
    v_project.target_minutes := (p_changes ->> 'target_minutes')::integer;
  end if;
  if p_changes ? 'voice_profile_id' then
    v_project.voice_profile_id := app.request_text(p_changes, 'voice_profile_id', 100);
  end if;
  if p_changes ? 'transcript_source' then
    if jsonb_typeof(p_changes -> 'transcript_source') is distinct from 'string'
       or p_changes ->> 'transcript_source' not in ('auto', 'manual') then
      raise exception using errcode = '22023', message = 'transcript_source must be auto or manual.',
        hint = 'invalid_request', detail = 'transcript_source';
    end if;
    v_project.transcript_source := p_changes ->> 'transcript_source';
  end if;
  if p_changes ? 'transcript_text' then
    if jsonb_typeof(p_changes -> 'transcript_text') = 'null' then
      v_project.transcript_text := null;
    elsif jsonb_typeof(p_changes -> 'transcript_text') <> 'string' then
      raise exception using errcode = '22023', message = 'transcript_text must be a string.', hint = 'invalid_request', detail = 'transcript_text';
    else
      v_project.transcript_text := app.check_text(p_changes ->> 'transcript_text', 'transcript_text', 50000);
    end if;
  end if;
  if v_project.transcript_source = 'manual' and v_project.transcript_text is null then
    raise exception using errcode = '22023', message = 'A manual transcript needs transcript_text.',
      hint = 'invalid_request', detail = 'transcript_text';
  end if;

  update public.projects
     set title = v_project.title, prompt = v_project.prompt, niche_preset = v_project.niche_preset,
         target_minutes = v_project.target_minutes, voice_profile_id = v_project.voice_profile_id,
         transcript_source = v_project.transcript_source, transcript_text = v_project.transcript_text,
         updated_at = pg_catalog.now()
   where id = p_project_id
  returning * into v_project;
  return jsonb_build_object('project', app.project_json(v_project));
end;
$$;

create or replace function public.delete_project(p_project_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_project public.projects;
  v_job record;
  v_canceled uuid[] := '{}'::uuid[];
  v_requested uuid[] := '{}'::uuid[];
  v_outcome text;
  v_keys text[];
begin
  select * into v_project from public.projects where id = p_project_id and user_id = v_user_id for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
  end if;
  if v_project.deleted_at is not null then
    return jsonb_build_object('project_id', p_project_id, 'deleted', true, 'replayed', true,
      'canceled_jobs', '[]'::jsonb, 'cancel_requested_jobs', '[]'::jsonb, 'storage_keys', '[]'::jsonb);
  end if;
  update public.projects set deleted_at = app.now(), updated_at = pg_catalog.now() where id = p_project_id;
  -- Lock order: each job, then its hold and the balance. Nothing of the ledger is touched but
  -- what a cancel does (a queued job's hold released).
  for v_job in
    select id from public.jobs where project_id = p_project_id and status not in ('READY', 'FAILED', 'CANCELED')
     order by id for update
  loop
    v_outcome := app.cancel_locked_job(v_job.id);
    if v_outcome = 'canceled' then
      v_canceled := v_canceled || v_job.id;
    elsif v_outcome = 'cancel_requested' then
      v_requested := v_requested || v_job.id;
    end if;
  end loop;
  v_keys := app.delete_assets(array(select id from public.jobs where project_id = p_project_id), 'project_deleted');
  return jsonb_build_object('project_id', p_project_id, 'deleted', true, 'replayed', false,
    'canceled_jobs', pg_catalog.to_jsonb(v_canceled), 'cancel_requested_jobs', pg_catalog.to_jsonb(v_requested),
    'storage_keys', pg_catalog.to_jsonb(v_keys));
end;
$$;
