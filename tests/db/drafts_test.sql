-- Draft prompts: create_draft for visitors (size caps, token only hashed), claim_draft once
-- (same user again, another user 409, expired 410, unknown 404), generate from a claimed draft,
-- cleanup of old unclaimed drafts.
begin;
\ir _setup.psql
select plan(33);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset

-- 1. create_draft as anon.
select tests.authenticate_as_anon();
select public.create_draft('A short film about bees', 'science', '{"target_minutes": 2, "voice": "calm", "transcript_mode": "burned_in"}') as d1 \gset
select ok(:'d1'::jsonb ?& array['draft_id', 'claim_token', 'expires_at'], 'create_draft returns the draft id, the claim token and the expiry');
select ok((:'d1'::jsonb ->> 'claim_token') ~ '^[0-9a-f]{64}$', 'the claim token is 32 random bytes in hex');
select is((:'d1'::jsonb ->> 'expires_at')::timestamptz, '2030-01-08 00:00:00+00'::timestamptz, 'the draft can be claimed for 7 days');
select throws_ok($$ select * from public.draft_prompts $$, '42501', null, 'anon cannot read drafts');
select tests.clear_authentication();
select is((select claim_token_hash from public.draft_prompts where id = (:'d1'::jsonb ->> 'draft_id')::uuid),
          sha256(convert_to(:'d1'::jsonb ->> 'claim_token', 'UTF8')), 'only the SHA-256 of the token is stored');
select is((select count(*)::int from public.draft_prompts d where to_jsonb(d)::text like '%' || (:'d1'::jsonb ->> 'claim_token') || '%'), 0,
  'the token itself appears in no column');
select isnt((select public.create_draft('Same prompt') ->> 'claim_token'), (select public.create_draft('Same prompt') ->> 'claim_token'),
  'two drafts never share a token');

-- 2. Size caps and bad input.
select tests.authenticate_as_anon();
create temp table bad_drafts (args text, detail text, why text);
grant select on bad_drafts to public;
insert into bad_drafts values
  ($$ null $$, 'prompt', 'a missing prompt'),
  ($$ '   ' $$, 'prompt', 'a blank prompt'),
  ($$ repeat('x', 4001) $$, 'prompt', 'a prompt over 4000 characters'),
  ($$ E'a\x01b' $$, 'prompt', 'a prompt with a control character'),
  ($$ 'x', 'Not A Preset!' $$, 'template', 'a template that is not a preset name'),
  ($$ 'x', null, '[1]' $$, 'options', 'options that are not an object'),
  ($$ 'x', null, jsonb_build_object('blob', repeat('y', 5000)) $$, 'options', 'options over 4 KB');
select is(tests.error_of(format('select public.create_draft(%s)', b.args)) - 'message',
          jsonb_build_object('code', '22023', 'hint', 'invalid_request', 'detail', b.detail),
          format('create_draft refuses %s (22023, detail %s)', b.why, b.detail))
  from bad_drafts b order by b.why;
select lives_ok($$ select public.create_draft(repeat('x', 4000)) $$, 'a prompt of exactly 4000 characters is accepted');

-- 3. claim_draft.
select tests.authenticate_as(:'alice');
select public.claim_draft(:'d1'::jsonb ->> 'claim_token') as c1 \gset
select is(:'c1'::jsonb -> 'draft' ->> 'id', :'d1'::jsonb ->> 'draft_id', 'claim_draft returns the draft');
select results_eq(
  format($$ select title, niche_preset, target_minutes, voice, transcript_mode from public.projects where id = %L $$, :'c1'::jsonb -> 'project' ->> 'id'),
  $$ values ('A short film about bees'::text, 'science'::text, 2, 'calm'::text, 'burned_in'::text) $$,
  'claiming makes the draft a project of the user, shaped by its options');
select is(public.claim_draft(:'d1'::jsonb ->> 'claim_token'), :'c1'::jsonb, 'claiming again as the same user returns the same answer');
select is((select count(*)::int from public.projects where user_id = :'alice'), 1, 'claiming twice made one project');
select is((select count(*)::int from public.draft_prompts), 1, 'the claimant sees their claimed draft');

select tests.authenticate_as(:'bob');
select is(tests.error_of(format('select public.claim_draft(%L)', :'d1'::jsonb ->> 'claim_token')) - 'message',
  '{"code": "PT409", "hint": "draft_claimed", "detail": null}'::jsonb, 'another user gets PT409 draft_claimed');
select is((select count(*)::int from public.draft_prompts), 0, 'another user cannot see the claimed draft');
select is(tests.error_of(format('select public.claim_draft(%L)', repeat('0', 64))) ->> 'hint', 'draft_not_found',
  'an unknown token is PT404 draft_not_found');
select is(tests.error_of(format('select public.claim_draft(%L)', repeat('0', 64))) ->> 'code', 'PT404', 'draft_not_found is HTTP 404');
select is(tests.error_of($$ select public.claim_draft('not-a-token') $$) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "claim_token"}'::jsonb, 'a malformed token is invalid_request');
select tests.authenticate_as_anon();
select throws_ok(format('select public.claim_draft(%L)', :'d1'::jsonb ->> 'claim_token'), '42501', null, 'anon cannot claim a draft');

-- 4. Expiry (controllable clock): unclaimed drafts expire after 7 days; claimed ones stay claimed.
select public.create_draft('Expiring draft') as d2 \gset
select tests.set_now('2030-01-08 00:00:01+00');
select tests.authenticate_as(:'bob');
select is(tests.error_of(format('select public.claim_draft(%L)', :'d2'::jsonb ->> 'claim_token')) - 'message',
  '{"code": "PT410", "hint": "draft_expired", "detail": null}'::jsonb, 'an expired draft is PT410 draft_expired');
select tests.authenticate_as(:'alice');
select is(public.claim_draft(:'d1'::jsonb ->> 'claim_token'), :'c1'::jsonb, 'the claimant still gets their draft after the expiry');

-- 5. generate from the claimed draft.
select is(public.generate('from-draft', format('{"model_id": "standard-v1", "draft_id": "%s"}', :'d1'::jsonb ->> 'draft_id')::jsonb)
            -> 'response' -> 'job' ->> 'project_id',
  :'c1'::jsonb -> 'project' ->> 'id', 'generate with draft_id uses the draft''s project');
select tests.authenticate_as(:'bob');
select is(tests.error_of(format($$ select public.generate('bob-draft', '{"model_id": "standard-v1", "draft_id": "%s"}') $$, :'d1'::jsonb ->> 'draft_id')) ->> 'hint',
  'draft_not_found', 'another user cannot generate from the draft');

-- 6. cleanup_expired removes unclaimed drafts a week after expiry, never claimed ones.
select tests.set_now('2030-01-15 00:00:01+00');
select tests.authenticate_as_service_role();
select is((public.cleanup_expired() ->> 'drafts')::int, 4, 'cleanup_expired deletes the four unclaimed drafts');
select tests.clear_authentication();
select is((select count(*)::int from public.draft_prompts), 1, 'the claimed draft is kept');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty at the end');

select * from finish();
rollback;
