-- generate and get_job: success, idempotent replay, key reuse, in-flight, every validation error,
-- insufficient credits storing nothing, per-user key scope, key expiry; reconcile after each.
begin;
\ir _setup.psql
select plan(55);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('alice@example.com') as alice \gset
select tests.create_user('bob@example.com') as bob \gset

-- 1. Success: project, QUEUED job, hold, balance, stored response.
select tests.authenticate_as(:'alice');
select public.generate('gen-1', '{"model_id": "standard-v1", "prompt": "How volcanoes work", "target_minutes": 2, "niche_preset": "science"}') as g1 \gset
select is(:'g1'::jsonb ->> 'replayed', 'false', 'the first call is not a replay');
select is(:'g1'::jsonb -> 'response' -> 'job' ->> 'status', 'QUEUED', 'the job starts QUEUED');
select is((:'g1'::jsonb -> 'response' -> 'job' ->> 'credits_reserved')::int, 4, 'standard-v1 for 2 minutes costs 2 + 1 x 2 = 4');
select is(:'g1'::jsonb -> 'response' -> 'balance', '{"available": 6, "held": 4, "expiring_soon": 0, "debt": 0}'::jsonb,
  'the response carries the new balance');
select is((select status || '/' || amount from public.credit_holds where job_id = (:'g1'::jsonb -> 'response' -> 'job' ->> 'id')::uuid),
  'active/4', 'the job has an active hold of its price');
select results_eq(
  format($$ select title, niche_preset, target_minutes from public.projects where id = %L $$, :'g1'::jsonb -> 'response' -> 'job' ->> 'project_id'),
  $$ values ('How volcanoes work'::text, 'science'::text, 2) $$,
  'a project was created from the prompt');
select is((select state from public.idempotency_keys where key = 'gen-1'), 'done', 'the idempotency record is done');

-- 2. Replay: same key, same request (keys in another order) -> same response, nothing new.
select is(public.generate('gen-1', '{"target_minutes": 2, "niche_preset": "science", "prompt": "How volcanoes work", "model_id": "standard-v1"}'),
  jsonb_set(:'g1'::jsonb, '{replayed}', 'true'), 'the same key and request replays the stored response');
select is((select count(*)::int from public.jobs), 1, 'a replay creates no job');
select is((public.get_balance() ->> 'held')::int, 4, 'a replay holds nothing more');

-- 3. Same key, different request -> 422; nothing changes.
select is(tests.error_of($$ select public.generate('gen-1', '{"model_id": "standard-v1", "prompt": "Something else", "target_minutes": 2}') $$) - 'message',
  '{"code": "PT422", "hint": "idempotency_key_reused", "detail": "idempotency_key"}'::jsonb,
  'the same key with another request is PT422 idempotency_key_reused');
select is((select count(*)::int from public.jobs), 1, 'the refused reuse created nothing');

-- 4. In flight: a record still in progress answers 409.
select tests.clear_authentication();
insert into public.idempotency_keys (user_id, operation, key, request_fingerprint, expires_at)
values (:'alice', 'generate', 'gen-busy', sha256(convert_to('{"model_id": "draft-v1", "prompt": "x"}'::jsonb::text, 'UTF8')), '2030-01-02');
select tests.authenticate_as(:'alice');
select is(tests.error_of($$ select public.generate('gen-busy', '{"model_id": "draft-v1", "prompt": "x"}') $$) ->> 'hint',
  'idempotency_in_flight', 'a key whose first call has not finished is PT409 idempotency_in_flight');
select is(tests.error_of($$ select public.generate('gen-busy', '{"model_id": "draft-v1", "prompt": "x"}') $$) ->> 'code',
  'PT409', 'idempotency_in_flight is HTTP 409');

-- 5. Validation: each error names the field and stores nothing.
create temp table bad_requests (key text, request text, code text, hint text, detail text, why text);
grant select on bad_requests to public;
insert into bad_requests values
  ('', '{"model_id": "draft-v1", "prompt": "x"}', '22023', 'invalid_request', 'idempotency_key', 'an empty idempotency key'),
  (repeat('k', 256), '{"model_id": "draft-v1", "prompt": "x"}', '22023', 'invalid_request', 'idempotency_key', 'a 256-character idempotency key'),
  (E'bad\nkey', '{"model_id": "draft-v1", "prompt": "x"}', '22023', 'invalid_request', 'idempotency_key', 'a key with a control character'),
  ('v-1', '[1, 2]', '22023', 'invalid_request', 'request', 'a request that is not an object'),
  ('v-2', '{"prompt": "x"}', '22023', 'invalid_request', 'model_id', 'a missing model_id'),
  ('v-3', '{"model_id": "nope", "prompt": "x"}', '22023', 'invalid_request', 'model_id', 'an unknown model'),
  ('v-4', '{"model_id": "legacy-v0", "prompt": "x"}', '22023', 'invalid_request', 'model_id', 'a model that is not available'),
  ('v-5', '{"model_id": "draft-v1"}', '22023', 'invalid_request', 'prompt', 'no prompt, draft or project'),
  ('v-6', '{"model_id": "draft-v1", "prompt": "x", "project_id": "00000000-0000-0000-0000-000000000000"}', '22023', 'invalid_request', 'prompt', 'both a prompt and a project'),
  ('v-7', '{"model_id": "draft-v1", "prompt": "   "}', '22023', 'invalid_request', 'prompt', 'a blank prompt'),
  ('v-8', format('{"model_id": "draft-v1", "prompt": "%s"}', repeat('x', 4001)), '22023', 'invalid_request', 'prompt', 'a prompt over 4000 characters'),
  ('v-9', '{"model_id": "draft-v1", "prompt": "a\u0007b"}', '22023', 'invalid_request', 'prompt', 'a prompt with a control character'),
  ('v-10', '{"model_id": "draft-v1", "prompt": 42}', '22023', 'invalid_request', 'prompt', 'a prompt that is not a string'),
  ('v-11', '{"model_id": "draft-v1", "prompt": "x", "target_minutes": 4}', '22023', 'invalid_request', 'target_minutes', 'more minutes than the model allows'),
  ('v-12', '{"model_id": "draft-v1", "prompt": "x", "target_minutes": 1.5}', '22023', 'invalid_request', 'target_minutes', 'fractional minutes'),
  ('v-13', '{"model_id": "draft-v1", "prompt": "x", "target_minutes": "2"}', '22023', 'invalid_request', 'target_minutes', 'minutes as a string'),
  ('v-14', '{"model_id": "draft-v1", "prompt": "x", "target_minutes": -1}', '22023', 'invalid_request', 'target_minutes', 'negative minutes'),
  ('v-15', '{"model_id": "draft-v1", "prompt": "x", "credits": 0}', '22023', 'invalid_request', 'credits', 'an unknown field'),
  ('v-16', '{"model_id": "draft-v1", "project_id": "not-a-uuid"}', '22023', 'invalid_request', 'project_id', 'a malformed project id'),
  ('v-17', '{"model_id": "draft-v1", "prompt": "x", "transcript_mode": "loud"}', '22023', 'invalid_request', 'transcript_mode', 'an unknown transcript mode'),
  ('v-18', '{"model_id": "draft-v1", "prompt": "x", "settings": [1]}', '22023', 'invalid_request', 'settings', 'settings that are not an object'),
  ('v-19', '{"model_id": "draft-v1", "draft_id": "00000000-0000-0000-0000-000000000000"}', 'PT404', 'draft_not_found', 'draft_id', 'an unknown draft'),
  ('v-20', '{"model_id": "draft-v1", "project_id": "00000000-0000-0000-0000-000000000000"}', 'PT404', 'not_found', 'project_id', 'an unknown project'),
  ('v-21', '{"model_id": "premium-v1", "prompt": "x", "target_minutes": 30}', 'PT402', 'insufficient_credits', '{"required": 95, "available": 6}', 'more than the balance');

select is(tests.error_of(format('select public.generate(%L, %L::jsonb)', b.key, b.request)) - 'message',
          jsonb_build_object('code', b.code, 'hint', b.hint, 'detail', b.detail),
          format('generate refuses %s (%s %s %s)', b.why, b.code, b.hint, b.detail))
  from bad_requests b order by b.key;
select is((select count(*)::int from public.jobs), 1, 'no refused request created a job');
select is((select count(*)::int from public.idempotency_keys where key like 'v-%'), 0, 'no refused request stored an idempotency record');

-- 6. A refused request is not stored: fixing it and retrying with the same key works.
select is(public.generate('v-21', '{"model_id": "standard-v1", "prompt": "x", "target_minutes": 4}') -> 'response' -> 'job' ->> 'credits_reserved',
  '6', 'the same key works once the request is fixed (standard-v1, 4 minutes = 6, all that is left)');
select throws_ok($$ select public.generate('v-next', '{"model_id": "draft-v1", "prompt": "x"}') $$, 'PT402',
  'Not enough credits for this generation.', 'with 0 left even the cheapest model is refused');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the validation run');

-- 7. Keys are scoped to the user: Bob's gen-1 is his own call, not Alice's replay.
select tests.authenticate_as(:'bob');
select public.generate('gen-1', '{"model_id": "standard-v1", "prompt": "How volcanoes work", "target_minutes": 2, "niche_preset": "science"}') as gb \gset
select is(:'gb'::jsonb ->> 'replayed', 'false', 'the same key for another user is a new call');
select isnt((:'gb'::jsonb -> 'response' -> 'job' ->> 'id'), (:'g1'::jsonb -> 'response' -> 'job' ->> 'id'), 'Bob gets his own job');
select is(tests.error_of(format('select public.get_job(%L)', :'g1'::jsonb -> 'response' -> 'job' ->> 'id')) - 'message',
  '{"code": "PT404", "hint": "not_found", "detail": "job_id"}'::jsonb, 'Bob cannot read Alice''s job: PT404 not_found');
select is(tests.error_of(format($$ select public.generate('x-1', '{"model_id": "draft-v1", "project_id": %s}') $$,
                                to_jsonb(:'g1'::jsonb -> 'response' -> 'job' ->> 'project_id'))) ->> 'hint',
  'not_found', 'Bob cannot generate into Alice''s project');

-- 8. get_job: own job with steps and assets arrays.
select tests.authenticate_as(:'alice');
select ok(public.get_job((:'g1'::jsonb -> 'response' -> 'job' ->> 'id')::uuid) ?& array['steps', 'assets', 'status', 'progress'],
  'get_job returns the job with steps and assets');
select is(jsonb_typeof(public.get_job((:'g1'::jsonb -> 'response' -> 'job' ->> 'id')::uuid) -> 'steps'), 'array', 'steps is an array');
select is(tests.error_of('select public.get_job(gen_random_uuid())') ->> 'hint', 'not_found', 'an unknown job is PT404 not_found');

-- 9. Generating into an existing project reuses it.
select tests.clear_authentication();
select app.add_grant(:'alice', 'adjustment', 'paid', 10, null, 'adjustment') is not null as topped_up;
select tests.authenticate_as(:'alice');
select public.generate('gen-project', format('{"model_id": "draft-v1", "project_id": "%s"}', :'g1'::jsonb -> 'response' -> 'job' ->> 'project_id')::jsonb) -> 'response' -> 'job' as gp \gset
select is(:'gp'::jsonb ->> 'project_id', :'g1'::jsonb -> 'response' -> 'job' ->> 'project_id', 'a project_id generation uses that project');
select is((:'gp'::jsonb ->> 'target_minutes')::int, 2, 'target_minutes defaults to the project''s');

-- 10. After 24 hours the key is forgotten: the same key starts a new generation.
select tests.set_now('2030-01-02 00:00:01+00');
select tests.authenticate_as(:'alice');
select public.generate('gen-1', '{"model_id": "standard-v1", "prompt": "How volcanoes work", "target_minutes": 2, "niche_preset": "science"}') as g1b \gset
select is(:'g1b'::jsonb ->> 'replayed', 'false', 'an expired key is a new call');
select tests.authenticate_as_service_role();
select is(public.cleanup_expired() ->> 'idempotency_keys', '4', 'cleanup_expired removes the four idempotency records older than 24 hours');
select tests.clear_authentication();
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty at the end');

select * from finish();
rollback;
