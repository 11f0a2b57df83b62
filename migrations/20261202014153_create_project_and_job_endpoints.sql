-- Give projects niche presets from a table, a voice profile and an auto/manual transcript; hide soft-deleted projects everywhere; add the user RPCs list_projects, get_project, update_project, delete_project, list_jobs and cancel_job; publish steps, balances and purchases to realtime.

-- Reads (list_projects, get_project, list_jobs) are SECURITY INVOKER: they run with the caller's
-- token through PostgREST, so RLS alone decides what they return; they exist (instead of plain
-- table reads) for keyset pagination like list_ledger and one JSON shape. Writes are SECURITY
-- DEFINER RPCs acting for auth.uid() only. A soft-deleted project is invisible to its owner: the
-- select policies hide it, its jobs, their steps and assets (realtime applies the same policies).
--
-- The PRD's "transcript_mode auto/manual" is stored as transcript_source: transcript_mode already
-- names the caption style (none, captions, burned_in) in generate's request and the v1 API, and a
-- column cannot mean both. transcript_source = 'manual' requires transcript_text.
--
-- Niche presets are the product's fixed list (the pipeline has a prompt recipe per preset), so they
-- are seeded here and exist on every database, not in supabase/seed.sql; the back office can add
-- or retire presets (active) with SQL. projects.niche_preset references them.

-- 1. Niche presets.
create table public.niche_presets (
  id text primary key,
  name text not null,
  description text not null,
  sort_order integer not null default 0,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  constraint niche_presets_id_format_check check (id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  constraint niche_presets_name_length_check check (char_length(name) between 1 and 100),
  constraint niche_presets_description_length_check check (char_length(description) between 1 and 500)
);
comment on table public.niche_presets is 'The product''s niche presets (style and prompt recipe of a video): the values projects.niche_preset and generate''s niche_preset accept.';
comment on column public.niche_presets.id is 'Stable preset id used in requests (a-z, 0-9, _ and -).';
comment on column public.niche_presets.active is 'Offered to users; a retired preset stays for the projects that use it but is refused for new choices.';
comment on column public.niche_presets.sort_order is 'Position in the app''s picker (ascending).';
-- Serves the picker: active presets in order.
create index niche_presets_active_sort_order_idx on public.niche_presets (sort_order, id) where active;

insert into public.niche_presets (id, name, description, sort_order) values
  ('history', 'History', 'Stories of people, places and events from the past.', 10),
  ('science', 'Science', 'Explainers of how things work, from atoms to galaxies.', 20),
  ('true-crime', 'True crime', 'Real cases told as a documentary.', 30),
  ('finance', 'Personal finance', 'Money, saving and investing made simple.', 40),
  ('motivation', 'Motivation', 'Short uplifting talks and life lessons.', 50),
  ('tech', 'Technology', 'Gadgets, software and the people behind them.', 60),
  ('travel', 'Travel', 'Places to go and what to see there.', 70),
  ('kids-stories', 'Kids stories', 'Gentle bedtime stories for children.', 80)
on conflict (id) do nothing;

alter table public.niche_presets enable row level security;
revoke all on table public.niche_presets from public, anon, authenticated, service_role;
grant select on table public.niche_presets to anon, authenticated, service_role;
create policy "Visitors can read active niche presets"
  on public.niche_presets for select to anon using (active);
create policy "Users can read active niche presets"
  on public.niche_presets for select to authenticated using (active);
create policy "Service role can read niche presets"
  on public.niche_presets for select to service_role using (true);

-- 2. Projects: voice profile, transcript source and text, presets by reference.
update public.projects set niche_preset = null
 where niche_preset is not null and niche_preset not in (select id from public.niche_presets);
alter table public.projects
  add column voice_profile_id text,
  add column transcript_source text not null default 'auto',
  add column transcript_text text,
  add constraint projects_voice_profile_id_length_check check (char_length(voice_profile_id) between 1 and 100),
  add constraint projects_transcript_source_check check (transcript_source in ('auto', 'manual')),
  add constraint projects_transcript_text_length_check check (char_length(transcript_text) between 1 and 50000),
  add constraint projects_transcript_text_manual_check check (transcript_source = 'auto' or transcript_text is not null),
  add constraint projects_niche_preset_fkey foreign key (niche_preset) references public.niche_presets (id);
comment on column public.projects.niche_preset is 'The niche preset (niche_presets.id), or null.';
comment on column public.projects.voice_profile_id is 'The narration voice profile chosen for the project (the voice provider''s id), or null for the default.';
comment on column public.projects.transcript_source is 'auto (the pipeline writes the script) or manual (transcript_text is narrated as given): the PRD''s transcript mode.';
comment on column public.projects.transcript_text is 'The manual transcript (up to 50000 characters, line breaks allowed); required when transcript_source is manual.';
-- Serves the foreign key to niche_presets.
create index projects_niche_preset_idx on public.projects (niche_preset) where niche_preset is not null;

-- A preset chosen now must be active: invalid_request (detail niche_preset) instead of a foreign key error.
create or replace function app.check_project_niche_preset()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  if new.niche_preset is not null
     and (tg_op = 'INSERT' or new.niche_preset is distinct from old.niche_preset)
     and not exists (select 1 from public.niche_presets where id = new.niche_preset and active) then
    raise exception using errcode = '22023', message = 'niche_preset must be one of the niche presets.',
      hint = 'invalid_request', detail = 'niche_preset';
  end if;
  return new;
end;
$$;
comment on function app.check_project_niche_preset() is 'Trigger on projects: a newly chosen niche preset must be an active one (22023 invalid_request, detail niche_preset).';
create trigger projects_check_niche_preset
  before insert or update of niche_preset on public.projects
  for each row execute function app.check_project_niche_preset();

create or replace function app.project_json(p public.projects)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p.id is null then
    return null;
  end if;
  return jsonb_build_object(
    'id', p.id, 'title', p.title, 'prompt', p.prompt, 'niche_preset', p.niche_preset,
    'target_minutes', p.target_minutes, 'voice', p.voice, 'voice_profile_id', p.voice_profile_id,
    'transcript_mode', p.transcript_mode, 'transcript_source', p.transcript_source, 'transcript_text', p.transcript_text,
    'settings', p.settings, 'created_at', p.created_at, 'updated_at', p.updated_at);
end;
$$;
comment on function app.project_json(public.projects) is 'The JSON shape of a project in every RPC answer.';

-- 3. Soft-deleted projects are hidden everywhere: the owner's select policies leave out the
-- project, its jobs, their steps and their assets (a policy's subquery is itself filtered by RLS).
drop policy "Users can read their own projects" on public.projects;
create policy "Users can read their own projects that are not deleted"
  on public.projects for select to authenticated
  using ((select auth.uid()) = user_id and deleted_at is null);
drop policy "Users can read their own jobs" on public.jobs;
create policy "Users can read their own jobs of projects they can see"
  on public.jobs for select to authenticated
  using ((select auth.uid()) = user_id and exists (select 1 from public.projects p where p.id = project_id));
drop policy "Users can read their own job steps" on public.job_steps;
create policy "Users can read their own steps of jobs they can see"
  on public.job_steps for select to authenticated
  using ((select auth.uid()) = user_id and exists (select 1 from public.jobs j where j.id = job_id));
drop policy "Users can read their own assets" on public.assets;
create policy "Users can read their own assets of jobs they can see"
  on public.assets for select to authenticated
  using ((select auth.uid()) = user_id and exists (select 1 from public.jobs j where j.id = job_id));

-- 4. Reads (SECURITY INVOKER: RLS decides).
create or replace function public.list_projects(p_before uuid default null, p_limit integer default 20)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  v_limit integer := least(coalesce(p_limit, 20), 100);
  v_cursor timestamptz;
  v_items jsonb;
  v_count integer;
begin
  if auth.uid() is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  if v_limit < 1 then
    raise exception using errcode = '22023', message = 'p_limit must be at least 1.', hint = 'invalid_request', detail = 'p_limit';
  end if;
  if p_before is not null then
    select created_at into v_cursor from public.projects where id = p_before;
    if not found then
      raise exception using errcode = '22023', message = 'p_before must be the id of one of your projects.', hint = 'invalid_request', detail = 'p_before';
    end if;
  end if;
  select coalesce(jsonb_agg(e.item order by e.created_at desc, e.id desc), '[]'::jsonb), count(*)
    into v_items, v_count
    from (
      select p.id, p.created_at, pg_catalog.to_jsonb(p) - array['user_id', 'deleted_at', 'transcript_text'] as item
        from public.projects p
       where p.user_id = auth.uid() and p.deleted_at is null
         and (p_before is null or (p.created_at, p.id) < (v_cursor, p_before))
       order by p.created_at desc, p.id desc
       limit v_limit + 1
    ) e;
  if v_count > v_limit then
    v_items := v_items - v_limit;
    return jsonb_build_object('items', v_items, 'next_before', (v_items -> (v_limit - 1) ->> 'id')::uuid);
  end if;
  return jsonb_build_object('items', v_items, 'next_before', null);
end;
$$;
comment on function public.list_projects(uuid, integer) is 'The caller''s projects, newest first, soft-deleted ones left out: {"items": [project without transcript_text], "next_before": id|null}. Pass next_before as p_before for the next page; p_limit 1..100 (default 20, capped at 100). Runs as the caller: RLS decides. Errors: 42501 unauthenticated, 22023 invalid_request (p_limit, p_before).';

create or replace function public.get_project(p_project_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  v_project jsonb;
begin
  if auth.uid() is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  select pg_catalog.to_jsonb(p) - array['user_id', 'deleted_at'] into v_project
    from public.projects p where p.id = p_project_id and p.user_id = auth.uid() and p.deleted_at is null;
  if v_project is null then
    raise exception using errcode = 'PT404', message = 'No such project.', hint = 'not_found', detail = 'project_id';
  end if;
  return jsonb_build_object('project', v_project, 'jobs', coalesce((
    select jsonb_agg(j.item order by j.created_at desc, j.id desc) from (
      select j.id, j.created_at, pg_catalog.to_jsonb(j) - array['user_id', 'hold_id', 'manifest', 'idempotency_key', 'worker_id',
               'locked_until', 'dead_lettered_at'] as item
        from public.jobs j where j.project_id = p_project_id
       order by j.created_at desc, j.id desc limit 100) j), '[]'::jsonb));
end;
$$;
comment on function public.get_project(uuid) is 'One of the caller''s projects with its 100 newest jobs: {"project", "jobs": [job]}. Runs as the caller: RLS decides; PT404 not_found (detail project_id) for another user''s, a deleted or an unknown project.';

create or replace function public.list_jobs(p_status text default null, p_before uuid default null, p_limit integer default 20)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
  v_limit integer := least(coalesce(p_limit, 20), 100);
  v_cursor timestamptz;
  v_items jsonb;
  v_count integer;
begin
  if auth.uid() is null then
    raise exception using errcode = '42501', message = 'Sign in to use this operation.', hint = 'unauthenticated';
  end if;
  if v_limit < 1 then
    raise exception using errcode = '22023', message = 'p_limit must be at least 1.', hint = 'invalid_request', detail = 'p_limit';
  end if;
  if p_status is not null and p_status not in ('PENDING', 'QUEUED', 'SCRIPTING', 'VOICE_GEN', 'ALIGNMENT', 'VISUAL_PLAN',
       'IMAGE_GEN', 'TIMELINE', 'RENDERING', 'PACKAGING', 'READY', 'FAILED', 'CANCELED') then
    raise exception using errcode = '22023', message = 'p_status must be a job state.', hint = 'invalid_request', detail = 'p_status';
  end if;
  if p_before is not null then
    select created_at into v_cursor from public.jobs where id = p_before;
    if not found then
      raise exception using errcode = '22023', message = 'p_before must be the id of one of your jobs.', hint = 'invalid_request', detail = 'p_before';
    end if;
  end if;
  select coalesce(jsonb_agg(e.item order by e.created_at desc, e.id desc), '[]'::jsonb), count(*)
    into v_items, v_count
    from (
      select j.id, j.created_at, pg_catalog.to_jsonb(j) - array['user_id', 'hold_id', 'manifest', 'idempotency_key', 'worker_id',
               'locked_until', 'dead_lettered_at'] as item
        from public.jobs j
       where j.user_id = auth.uid() and (p_status is null or j.status = p_status)
         and (p_before is null or (j.created_at, j.id) < (v_cursor, p_before))
       order by j.created_at desc, j.id desc
       limit v_limit + 1
    ) e;
  if v_count > v_limit then
    v_items := v_items - v_limit;
    return jsonb_build_object('items', v_items, 'next_before', (v_items -> (v_limit - 1) ->> 'id')::uuid);
  end if;
  return jsonb_build_object('items', v_items, 'next_before', null);
end;
$$;
comment on function public.list_jobs(text, uuid, integer) is 'The caller''s jobs (of projects not deleted), newest first, optionally of one status: {"items": [job], "next_before": id|null}. Pass next_before as p_before for the next page; p_limit 1..100 (default 20). Runs as the caller: RLS decides. Errors: 42501 unauthenticated, 22023 invalid_request (p_status, p_limit, p_before).';

-- get_job: also 404 for a job of a deleted project (hidden everywhere).
create or replace function public.get_job(p_job_id uuid)
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
begin
  if not exists (select 1 from public.jobs j join public.projects p on p.id = j.project_id
                  where j.id = p_job_id and j.user_id = v_user_id and p.deleted_at is null) then
    raise exception using errcode = 'PT404', message = 'No such job.', hint = 'not_found', detail = 'job_id';
  end if;
  return app.job_json(p_job_id, true);
end;
$$;
comment on function public.get_job(uuid) is 'One of the caller''s jobs with its "steps", "assets" and "manifest"; PT404 not_found for any other id and for jobs of deleted projects.';

-- 5. Writes.
-- Cancels a job the caller has locked: PENDING or QUEUED -> CANCELED now, hold released;
-- a working job -> cancel requested (the pipeline ends it). Returns what happened.
create or replace function app.cancel_locked_job(p_job_id uuid)
returns text
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_job public.jobs;
begin
  select * into v_job from public.jobs where id = p_job_id;
  if v_job.status in ('PENDING', 'QUEUED') then
    perform app.finish_canceled_job(p_job_id, 0);
    return 'canceled';
  elsif app.is_working_status(v_job.status) and v_job.cancel_requested_at is null then
    update public.jobs set cancel_requested_at = app.now(), updated_at = pg_catalog.now() where id = p_job_id;
    return 'cancel_requested';
  end if;
  return 'unchanged';
end;
$$;
comment on function app.cancel_locked_job(uuid) is 'Cancels a locked job: queued -> CANCELED with its hold released; working -> cancel_requested_at set; otherwise nothing. Returns canceled, cancel_requested or unchanged.';

create or replace function public.cancel_job(p_job_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_outcome text;
begin
  -- Lock order: job, then hold and balance (inside finish_canceled_job).
  perform 1 from public.jobs j join public.projects p on p.id = j.project_id
   where j.id = p_job_id and j.user_id = v_user_id and p.deleted_at is null
     for update of j;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such job.', hint = 'not_found', detail = 'job_id';
  end if;
  v_outcome := app.cancel_locked_job(p_job_id);
  return jsonb_build_object('job', app.job_json(p_job_id, true), 'outcome', v_outcome,
                            'balance', app.balance_json(v_user_id));
end;
$$;
comment on function public.cancel_job(uuid) is 'Cancels one of the caller''s jobs, idempotently: PENDING/QUEUED -> CANCELED at once with its hold released (outcome canceled); a running job gets cancel_requested_at and the pipeline ends it CANCELED, charged what it reports as spent (outcome cancel_requested); a finished or already requested job is unchanged (outcome unchanged). {"job", "outcome", "balance"}. PT404 not_found for any other id.';

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
  v_minutes integer;
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
comment on function public.update_project(uuid, jsonb) is 'Changes the caller''s project: p_changes is an object of any of title, prompt (required, not blank), niche_preset (an active preset id or null), target_minutes (1-600), voice_profile_id (or null), transcript_source (auto | manual), transcript_text (up to 50000 characters, line breaks allowed, or null; required for manual). Same text rules as generate. {"project"}. Errors: 22023 invalid_request (detail = field; unknown fields too), PT404 not_found (project_id).';

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
  v_canceled uuid[] := '{}';
  v_requested uuid[] := '{}';
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
comment on function public.delete_project(uuid) is 'Soft-deletes the caller''s project: hidden everywhere (lists, get_project, get_job, realtime), its queued jobs CANCELED with their holds released, its running jobs cancel-requested, its assets deleted and their R2 keys queued in storage_deletions and returned for the Worker to delete now. Nothing else of the ledger is touched. Idempotent (replayed = true). {"project_id", "deleted", "replayed", "canceled_jobs", "cancel_requested_jobs", "storage_keys"}. PT404 not_found for another user''s or an unknown project.';

-- claim_draft (from its migration): a draft's template is the project's niche preset only when it is an active preset.
create or replace function public.claim_draft(p_claim_token text)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_draft public.draft_prompts;
  v_project public.projects;
  v_minutes integer := 1;
  v_mode text := 'captions';
begin
  if p_claim_token is null or p_claim_token !~ '^[0-9a-f]{64}$' then
    raise exception using errcode = '22023', message = 'The claim token must be 64 hexadecimal characters.',
      hint = 'invalid_request', detail = 'claim_token';
  end if;
  select * into v_draft from public.draft_prompts
   where claim_token_hash = pg_catalog.sha256(pg_catalog.convert_to(p_claim_token, 'UTF8'))
   for update;
  if not found then
    raise exception using errcode = 'PT404', message = 'No draft matches this claim token.', hint = 'draft_not_found';
  end if;
  if v_draft.claimed_by = v_user_id then
    select * into v_project from public.projects where id = v_draft.project_id;
    return jsonb_build_object('draft', app.draft_json(v_draft), 'project', app.project_json(v_project));
  end if;
  if v_draft.claimed_by is not null then
    raise exception using errcode = 'PT409', message = 'This draft was already claimed by another account.', hint = 'draft_claimed';
  end if;
  if v_draft.expires_at <= app.now() then
    raise exception using errcode = 'PT410', message = 'This draft has expired.', hint = 'draft_expired';
  end if;

  -- Options only shape the project when valid; anything else stays in settings untouched.
  if v_draft.options ->> 'target_minutes' ~ '^[0-9]{1,3}$' and (v_draft.options ->> 'target_minutes')::integer between 1 and 600 then
    v_minutes := (v_draft.options ->> 'target_minutes')::integer;
  end if;
  if v_draft.options ->> 'transcript_mode' in ('none', 'captions', 'burned_in') then
    v_mode := v_draft.options ->> 'transcript_mode';
  end if;
  insert into public.projects (user_id, title, prompt, niche_preset, target_minutes, voice, transcript_mode, settings)
  values (v_user_id,
          left(pg_catalog.regexp_replace(pg_catalog.btrim(v_draft.prompt), '\s+', ' ', 'g'), 80),
          v_draft.prompt,
          -- The landing page's template becomes the niche preset when it is one (else null; the
          -- draft keeps its template).
          case when exists (select 1 from public.niche_presets where id = v_draft.template and active) then v_draft.template end,
          v_minutes,
          case when char_length(v_draft.options ->> 'voice') between 1 and 100 then v_draft.options ->> 'voice' end,
          v_mode, v_draft.options)
  returning * into v_project;
  update public.draft_prompts
     set claimed_by = v_user_id, claimed_at = app.now(), project_id = v_project.id
   where id = v_draft.id
  returning * into v_draft;
  return jsonb_build_object('draft', app.draft_json(v_draft), 'project', app.project_json(v_project));
end;
$$;
comment on function public.claim_draft(text) is 'Claims a draft with its token and makes it a project of the caller: {"draft", "project"}. Claiming again as the same user returns the same answer; another user gets PT409 draft_claimed; after 7 days PT410 draft_expired; an unknown token PT404 draft_not_found; a malformed token 22023 invalid_request.';


-- 6. Realtime: jobs (already), job_steps, credit_balances and purchases, so an app sees progress and
-- its new credits without polling. Supabase Realtime applies each table's select policy (own rows).
do $$
declare
  v_table text;
begin
  if exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime') then
    foreach v_table in array array['jobs', 'job_steps', 'credit_balances', 'purchases'] loop
      if not exists (select 1 from pg_catalog.pg_publication_tables
                      where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = v_table) then
        execute pg_catalog.format('alter publication supabase_realtime add table public.%I', v_table);
      end if;
    end loop;
  end if;
end
$$;

revoke all on function app.check_project_niche_preset(), app.project_json(public.projects), app.cancel_locked_job(uuid)
  from public, anon, authenticated, service_role;
revoke all on function
  public.list_projects(uuid, integer), public.get_project(uuid), public.list_jobs(text, uuid, integer), public.get_job(uuid),
  public.cancel_job(uuid), public.update_project(uuid, jsonb), public.delete_project(uuid)
  from public, anon, authenticated, service_role;
grant execute on function
  public.list_projects(uuid, integer), public.get_project(uuid), public.list_jobs(text, uuid, integer), public.get_job(uuid),
  public.cancel_job(uuid), public.update_project(uuid, jsonb), public.delete_project(uuid)
  to authenticated;
