-- Create draft prompts that visitors save before signing up, with create_draft (anon) and the one-time claim_draft.

-- The claim token is 32 random bytes (64 hex characters) returned once by create_draft; only its
-- SHA-256 is stored, so a database leak does not leak claimable tokens. A draft can be claimed for
-- 7 days; claiming turns it into a project of the claiming user.

create table public.draft_prompts (
  id uuid primary key default gen_random_uuid(),
  prompt text not null,
  template text,
  options jsonb not null default '{}'::jsonb,
  claim_token_hash bytea not null,
  expires_at timestamptz not null,
  claimed_by uuid references auth.users (id),
  claimed_at timestamptz,
  project_id uuid references public.projects (id),
  created_at timestamptz not null default now(),
  constraint draft_prompts_prompt_length_check check (char_length(prompt) between 1 and 4000),
  constraint draft_prompts_template_length_check check (char_length(template) between 1 and 64),
  constraint draft_prompts_options_object_check check (jsonb_typeof(options) = 'object' and octet_length(options::text) <= 4096),
  constraint draft_prompts_claim_token_hash_length_check check (octet_length(claim_token_hash) = 32),
  constraint draft_prompts_claim_token_hash_key unique (claim_token_hash),
  constraint draft_prompts_claimed_check check ((claimed_by is null) = (claimed_at is null))
);
comment on table public.draft_prompts is 'Prompts saved by visitors before sign-up, claimable once with a token (stored only as its SHA-256) for 7 days.';
comment on column public.draft_prompts.claim_token_hash is 'SHA-256 of the claim token; the token itself is never stored.';
comment on column public.draft_prompts.claimed_by is 'The user who claimed the draft.';
comment on column public.draft_prompts.project_id is 'The project created when the draft was claimed.';
-- Serves RLS (a user's claimed drafts).
create index draft_prompts_claimed_by_idx on public.draft_prompts (claimed_by) where claimed_by is not null;
-- Serves cleanup_expired: unclaimed drafts by expiry.
create index draft_prompts_unclaimed_expires_at_idx on public.draft_prompts (expires_at) where claimed_by is null;
-- Serves the foreign key to projects.
create index draft_prompts_project_id_idx on public.draft_prompts (project_id) where project_id is not null;

alter table public.draft_prompts enable row level security;
revoke all on table public.draft_prompts from public, anon, authenticated, service_role;
grant select (id, prompt, template, options, expires_at, claimed_by, claimed_at, project_id, created_at)
  on table public.draft_prompts to authenticated;
grant select on table public.draft_prompts to service_role;

create policy "Users can read the drafts they claimed"
  on public.draft_prompts for select to authenticated
  using ((select auth.uid()) = claimed_by);
create policy "Service role can read drafts"
  on public.draft_prompts for select to service_role using (true);

-- Rejects control characters other than tab, newline and carriage return in user text.
create or replace function app.check_text(p_value text, p_field text, p_max integer, p_required boolean default true)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
  if p_value is null or pg_catalog.btrim(p_value) = '' then
    if p_required then
      raise exception using errcode = '22023', message = p_field || ' is required.', hint = 'invalid_request', detail = p_field;
    end if;
    return null;
  end if;
  if char_length(p_value) > p_max then
    raise exception using errcode = '22023', message = p_field || ' must be at most ' || p_max || ' characters.',
      hint = 'invalid_request', detail = p_field;
  end if;
  if p_value ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' then
    raise exception using errcode = '22023', message = p_field || ' must not contain control characters.',
      hint = 'invalid_request', detail = p_field;
  end if;
  return p_value;
end;
$$;
comment on function app.check_text(text, text, integer, boolean) is 'Validates user text (required, length, no control characters); raises 22023 invalid_request with the field name as detail.';

create or replace function app.draft_json(d public.draft_prompts)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
  return jsonb_build_object(
    'id', d.id, 'prompt', d.prompt, 'template', d.template, 'options', d.options,
    'expires_at', d.expires_at, 'claimed_at', d.claimed_at, 'project_id', d.project_id, 'created_at', d.created_at);
end;
$$;
comment on function app.draft_json(public.draft_prompts) is 'The JSON shape of a draft in every RPC answer (never the token hash).';

create or replace function public.create_draft(p_prompt text, p_template text default null, p_options jsonb default '{}'::jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_token text := pg_catalog.encode(extensions.gen_random_bytes(32), 'hex');
  v_draft public.draft_prompts;
begin
  perform app.check_text(p_prompt, 'prompt', 4000);
  if p_template is not null and p_template !~ '^[a-z0-9][a-z0-9_-]{0,63}$' then
    raise exception using errcode = '22023', message = 'template must be a preset name (a-z, 0-9, _ and -, at most 64).',
      hint = 'invalid_request', detail = 'template';
  end if;
  if p_options is null or jsonb_typeof(p_options) <> 'object' or octet_length(p_options::text) > 4096 then
    raise exception using errcode = '22023', message = 'options must be a JSON object of at most 4096 bytes.',
      hint = 'invalid_request', detail = 'options';
  end if;
  insert into public.draft_prompts (prompt, template, options, claim_token_hash, expires_at)
  values (p_prompt, p_template, p_options, pg_catalog.sha256(pg_catalog.convert_to(v_token, 'UTF8')),
          app.now() + interval '7 days')
  returning * into v_draft;
  return jsonb_build_object('draft_id', v_draft.id, 'claim_token', v_token, 'expires_at', v_draft.expires_at);
end;
$$;
comment on function public.create_draft(text, text, jsonb) is 'Visitors: saves a prompt (at most 4000 characters; template a preset name; options a JSON object of at most 4 KB) and returns {"draft_id", "claim_token", "expires_at"}. The token is shown only here; claim it with claim_draft within 7 days.';

create or replace function public.claim_draft(p_claim_token text)
returns jsonb
language plpgsql
security definer
set search_path = ''
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
          v_draft.prompt, v_draft.template, v_minutes,
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

revoke all on function app.check_text(text, text, integer, boolean), app.draft_json(public.draft_prompts)
  from public, anon, authenticated, service_role;
revoke all on function public.create_draft(text, text, jsonb), public.claim_draft(text)
  from public, anon, authenticated, service_role;
grant execute on function public.create_draft(text, text, jsonb) to anon, authenticated;
grant execute on function public.claim_draft(text) to authenticated;
