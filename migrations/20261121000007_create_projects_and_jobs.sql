-- Create projects, generation jobs (state machine and queue fields), job steps and assets, and publish jobs to realtime.

-- Job states, in pipeline order. PENDING: created, not yet queued (reserved for flows that queue
-- later; generate queues at once). QUEUED: waiting for a worker (initially, or for a retry after
-- next_retry_at). The eight working states are reported by the worker. READY and FAILED are terminal:
-- nothing changes a terminal job any more (late or repeated pipeline events are ignored).
--   PENDING, QUEUED, PLANNING, SCRIPTING, VOICING, GENERATING_VISUALS, GENERATING_MUSIC,
--   ASSEMBLING, RENDERING, UPLOADING, READY, FAILED

create table public.projects (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id),
  title text not null,
  prompt text not null,
  niche_preset text,
  target_minutes integer not null default 1,
  voice text,
  transcript_mode text not null default 'captions',
  settings jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  constraint projects_title_length_check check (char_length(title) between 1 and 200),
  constraint projects_prompt_length_check check (char_length(prompt) between 1 and 4000),
  constraint projects_niche_preset_length_check check (char_length(niche_preset) between 1 and 100),
  constraint projects_target_minutes_range_check check (target_minutes between 1 and 600),
  constraint projects_voice_length_check check (char_length(voice) between 1 and 100),
  constraint projects_transcript_mode_check check (transcript_mode in ('none', 'captions', 'burned_in')),
  constraint projects_settings_object_check check (jsonb_typeof(settings) = 'object' and pg_column_size(settings) <= 16384)
);
comment on table public.projects is 'A video project seeded from a prompt: title, prompt, niche preset, target length, voice, transcript mode and settings.';
comment on column public.projects.niche_preset is 'Named style preset (e.g. a template chosen on the landing page).';
comment on column public.projects.transcript_mode is 'none, captions (separate track) or burned_in.';
comment on column public.projects.deleted_at is 'Soft delete: hidden from lists, kept for its jobs and ledger references.';
-- Serves RLS (own rows) and listing a user's projects newest first.
create index projects_user_id_created_at_idx on public.projects (user_id, created_at desc);

create table public.jobs (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references auth.users (id),
  project_id uuid not null references public.projects (id),
  model_id text not null references public.models (id),
  status text not null default 'PENDING',
  progress integer not null default 0,
  status_message text,
  target_minutes integer not null,
  credits_reserved integer not null,
  credits_final integer,
  hold_id uuid references public.credit_holds (id),
  error_code text,
  error_message text,
  output_url text,
  manifest jsonb,
  idempotency_key text,
  attempts integer not null default 0,
  max_attempts integer not null default 3,
  next_retry_at timestamptz,
  worker_id text,
  locked_until timestamptz,
  dead_lettered_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  started_at timestamptz,
  finished_at timestamptz,
  constraint jobs_status_check check (status in (
    'PENDING', 'QUEUED', 'PLANNING', 'SCRIPTING', 'VOICING', 'GENERATING_VISUALS', 'GENERATING_MUSIC',
    'ASSEMBLING', 'RENDERING', 'UPLOADING', 'READY', 'FAILED')),
  constraint jobs_progress_range_check check (progress between 0 and 100),
  constraint jobs_status_message_length_check check (char_length(status_message) <= 500),
  constraint jobs_target_minutes_range_check check (target_minutes between 1 and 600),
  constraint jobs_credits_reserved_positive_check check (credits_reserved > 0),
  constraint jobs_credits_final_range_check check (credits_final between 0 and credits_reserved),
  constraint jobs_error_code_length_check check (char_length(error_code) between 1 and 100),
  constraint jobs_error_message_length_check check (char_length(error_message) <= 2000),
  constraint jobs_output_url_length_check check (char_length(output_url) between 1 and 2048),
  constraint jobs_manifest_object_check check (jsonb_typeof(manifest) = 'object' and pg_column_size(manifest) <= 65536),
  constraint jobs_idempotency_key_length_check check (char_length(idempotency_key) between 1 and 255),
  constraint jobs_attempts_range_check check (attempts >= 0 and max_attempts between 1 and 20),
  constraint jobs_worker_id_length_check check (char_length(worker_id) between 1 and 200),
  constraint jobs_terminal_finished_check check ((status in ('READY', 'FAILED')) = (finished_at is not null))
);
comment on table public.jobs is 'A generation job: its state (PENDING .. READY/FAILED), progress, credits reserved and finally charged, result, and queue bookkeeping (attempts, retry time, worker, visibility timeout, dead letter). In the supabase_realtime publication so clients can watch progress.';
comment on column public.jobs.status is 'PENDING, QUEUED, PLANNING, SCRIPTING, VOICING, GENERATING_VISUALS, GENERATING_MUSIC, ASSEMBLING, RENDERING, UPLOADING, READY or FAILED.';
comment on column public.jobs.credits_reserved is 'Credits held for this job when it was created (the catalog price).';
comment on column public.jobs.credits_final is 'Credits finally charged (set when the job is READY; 0 when FAILED).';
comment on column public.jobs.locked_until is 'Visibility timeout: while in the future, the worker in worker_id owns the job; after it, another worker may claim it.';
comment on column public.jobs.dead_lettered_at is 'Set when the job failed for good after max_attempts.';
-- Serves RLS (own rows) and listing a user's jobs newest first.
create index jobs_user_id_created_at_idx on public.jobs (user_id, created_at desc);
-- Serves the project's job list and the foreign key.
create index jobs_project_id_idx on public.jobs (project_id);
-- Serves claim_next_jobs: runnable queued jobs in arrival order.
create index jobs_queued_idx on public.jobs (created_at) where status = 'QUEUED';
-- Serves claim_next_jobs: working jobs whose visibility timeout lapsed.
create index jobs_working_locked_until_idx on public.jobs (locked_until) where status not in ('PENDING', 'QUEUED', 'READY', 'FAILED');
-- Serves the hold -> job lookup.
create index jobs_hold_id_idx on public.jobs (hold_id) where hold_id is not null;

alter table public.credit_holds
  add constraint credit_holds_job_id_fkey foreign key (job_id) references public.jobs (id);
alter table public.credit_ledger
  add constraint credit_ledger_job_id_fkey foreign key (job_id) references public.jobs (id);
-- Serve the foreign keys above.
create index credit_holds_job_id_idx on public.credit_holds (job_id) where job_id is not null;
create index credit_ledger_job_id_idx on public.credit_ledger (job_id) where job_id is not null;

create table public.job_steps (
  id bigint generated always as identity primary key,
  job_id uuid not null references public.jobs (id),
  user_id uuid not null references auth.users (id),
  name text not null,
  status text not null default 'running',
  message text,
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  constraint job_steps_name_check check (name in (
    'PLANNING', 'SCRIPTING', 'VOICING', 'GENERATING_VISUALS', 'GENERATING_MUSIC', 'ASSEMBLING', 'RENDERING', 'UPLOADING')),
  constraint job_steps_status_check check (status in ('running', 'succeeded', 'failed')),
  constraint job_steps_message_length_check check (char_length(message) <= 500),
  constraint job_steps_job_id_name_key unique (job_id, name)
);
comment on table public.job_steps is 'The pipeline steps a job went through, one row per working state, with start and end times.';
-- Serves RLS (own rows).
create index job_steps_user_id_idx on public.job_steps (user_id);

create table public.assets (
  id uuid primary key default gen_random_uuid(),
  job_id uuid not null references public.jobs (id),
  project_id uuid not null references public.projects (id),
  user_id uuid not null references auth.users (id),
  kind text not null,
  url text not null,
  mime_type text,
  size_bytes bigint,
  duration_seconds numeric(10, 3),
  metadata jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  constraint assets_kind_check check (kind in ('video', 'audio', 'image', 'subtitle', 'thumbnail', 'script', 'other')),
  constraint assets_url_length_check check (char_length(url) between 1 and 2048),
  constraint assets_mime_type_length_check check (char_length(mime_type) between 1 and 255),
  constraint assets_size_bytes_nonnegative_check check (size_bytes >= 0),
  constraint assets_duration_seconds_nonnegative_check check (duration_seconds >= 0),
  constraint assets_metadata_object_check check (jsonb_typeof(metadata) = 'object' and pg_column_size(metadata) <= 16384)
);
comment on table public.assets is 'Files a job produced (video, audio, images, subtitles, thumbnail, script).';
-- Serves get_job (assets of a job) and the foreign key.
create index assets_job_id_idx on public.assets (job_id);
-- Serves RLS (own rows).
create index assets_user_id_idx on public.assets (user_id);
-- Serves the foreign key to projects.
create index assets_project_id_idx on public.assets (project_id);

alter table public.projects enable row level security;
alter table public.jobs enable row level security;
alter table public.job_steps enable row level security;
alter table public.assets enable row level security;

revoke all on table public.projects, public.jobs, public.job_steps, public.assets from public, anon, authenticated, service_role;
-- Users own their projects' descriptive columns; jobs, steps and assets are the pipeline's to write.
grant select on table public.projects, public.jobs, public.job_steps, public.assets to authenticated, service_role;
grant insert (title, prompt, niche_preset, target_minutes, voice, transcript_mode, settings) on table public.projects to authenticated;
grant update (title, prompt, niche_preset, target_minutes, voice, transcript_mode, settings, updated_at, deleted_at) on table public.projects to authenticated;
-- user_id is filled from the JWT, so a direct insert cannot name another owner.
alter table public.projects alter column user_id set default auth.uid();

create policy "Users can read their own projects"
  on public.projects for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Users can create their own projects"
  on public.projects for insert to authenticated
  with check ((select auth.uid()) = user_id);
create policy "Users can update their own projects"
  on public.projects for update to authenticated
  using ((select auth.uid()) = user_id)
  with check ((select auth.uid()) = user_id);
create policy "Service role can read projects"
  on public.projects for select to service_role using (true);

create policy "Users can read their own jobs"
  on public.jobs for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read jobs"
  on public.jobs for select to service_role using (true);

create policy "Users can read their own job steps"
  on public.job_steps for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read job steps"
  on public.job_steps for select to service_role using (true);

create policy "Users can read their own assets"
  on public.assets for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "Service role can read assets"
  on public.assets for select to service_role using (true);

-- Realtime: clients subscribe to their jobs (Supabase Realtime applies the select policy above).
do $$
begin
  if exists (select 1 from pg_catalog.pg_publication where pubname = 'supabase_realtime')
     and not exists (select 1 from pg_catalog.pg_publication_tables
                      where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'jobs') then
    alter publication supabase_realtime add table public.jobs;
  end if;
end
$$;

create or replace function app.project_json(p public.projects)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  if p.id is null then
    return null;
  end if;
  return jsonb_build_object(
    'id', p.id, 'title', p.title, 'prompt', p.prompt, 'niche_preset', p.niche_preset,
    'target_minutes', p.target_minutes, 'voice', p.voice, 'transcript_mode', p.transcript_mode,
    'settings', p.settings, 'created_at', p.created_at, 'updated_at', p.updated_at);
end;
$$;
comment on function app.project_json(public.projects) is 'The JSON shape of a project in every RPC answer.';

-- The JSON shape of a job; with p_details, also its steps and assets.
create or replace function app.job_json(p_job_id uuid, p_details boolean default false)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_job public.jobs;
  v_json jsonb;
begin
  select * into v_job from public.jobs where id = p_job_id;
  if not found then
    return null;
  end if;
  v_json := jsonb_build_object(
    'id', v_job.id, 'project_id', v_job.project_id, 'model_id', v_job.model_id, 'status', v_job.status,
    'progress', v_job.progress, 'status_message', v_job.status_message, 'target_minutes', v_job.target_minutes,
    'credits_reserved', v_job.credits_reserved, 'credits_final', v_job.credits_final,
    'error_code', v_job.error_code, 'error_message', v_job.error_message, 'output_url', v_job.output_url,
    'attempts', v_job.attempts, 'max_attempts', v_job.max_attempts, 'next_retry_at', v_job.next_retry_at,
    'created_at', v_job.created_at, 'updated_at', v_job.updated_at, 'started_at', v_job.started_at,
    'finished_at', v_job.finished_at);
  if p_details then
    v_json := v_json || jsonb_build_object(
      'manifest', v_job.manifest,
      'steps', coalesce((
        select jsonb_agg(jsonb_build_object('name', s.name, 'status', s.status, 'message', s.message,
                 'started_at', s.started_at, 'finished_at', s.finished_at) order by s.id)
          from public.job_steps s where s.job_id = p_job_id), '[]'::jsonb),
      'assets', coalesce((
        select jsonb_agg(jsonb_build_object('id', a.id, 'kind', a.kind, 'url', a.url, 'mime_type', a.mime_type,
                 'size_bytes', a.size_bytes, 'duration_seconds', a.duration_seconds, 'metadata', a.metadata,
                 'created_at', a.created_at) order by a.created_at, a.id)
          from public.assets a where a.job_id = p_job_id), '[]'::jsonb));
  end if;
  return v_json;
end;
$$;
comment on function app.job_json(uuid, boolean) is 'The JSON shape of a job in every RPC answer (with steps, assets and manifest when p_details).';

revoke all on function app.project_json(public.projects), app.job_json(uuid, boolean)
  from public, anon, authenticated, service_role;
