-- Upload keys stay live while recorded, and a signed upload counts once (issue 13, review):
-- a late retry of a registration that committed, refused because the job has finished since,
-- queued its own recorded key for deletion (the Worker and the drain then deleted a READY job's
-- file); the deletion queue now refuses any key an asset row references. A signed upload replayed
-- within its window is answered as the record it made while that is still the asset's file, and
-- refused once a newer upload replaced it (a replay cannot roll a file back).
begin;
\ir _setup.psql
select plan(21);

select tests.create_user('keys@example.test') as u \gset
select tests.authenticate_as(:'u');
select public.generate('keys-1', '{"model_id": "standard-v1", "prompt": "Keys", "target_minutes": 1}') -> 'response' -> 'job' ->> 'id' as j1 \gset
select public.generate('keys-2', '{"model_id": "standard-v1", "prompt": "Keys", "target_minutes": 1}') -> 'response' -> 'job' ->> 'id' as j2 \gset
select tests.authenticate_as_service_role();
select public.claim_next_jobs('w-keys', 10, 600) is not null as claimed \gset
select attempts as a1 from public.jobs where id = :'j1' \gset

-- 1. A registration commits, the job finishes, the same registration arrives again.
select is(public.register_asset(:'j1', 'final.mp4', 'video', 'video/mp4', 10, repeat('ab', 32), 'w-keys', :a1, '{}',
  :'j1' || '/final.mp4/upload-k1', repeat('01', 32)) ->> 'applied', 'true', 'the upload is recorded');
select is(public.complete_job(:'j1', 2, null, null, '[{"name": "final.mp4"}]', 'w-keys') -> 'job' ->> 'status', 'READY',
  'the job finishes with the file');
select public.register_asset(:'j1', 'final.mp4', 'video', 'video/mp4', 10, repeat('ab', 32), 'w-keys', :a1, '{}',
  :'j1' || '/final.mp4/upload-k1', repeat('01', 32)) as late \gset
select is(:'late'::jsonb ->> 'applied', 'true', 'a late retry of that registration answers the record (the Worker keeps the object)');
select is(:'late'::jsonb ->> 'replayed', 'true', 'as a replay');
select is((select count(*)::int from public.storage_deletions where storage_key = :'j1' || '/final.mp4/upload-k1'), 0,
  'the recorded key is not queued for deletion');
select is(public.register_asset(:'j1', 'final.mp4', 'video', 'video/mp4', 10, repeat('ab', 32), 'w-keys', :a1, '{}',
  :'j1' || '/final.mp4/upload-k1') ->> 'applied', 'true', 'the same without a signature reference');
select is((select count(*)::int from public.storage_deletions where storage_key = :'j1' || '/final.mp4/upload-k1'), 0,
  'still not queued');
select is(public.register_asset(:'j1', 'other.mp4', 'video', 'video/mp4', 10, repeat('ab', 32), 'w-keys', :a1, '{}',
  :'j1' || '/other.mp4/upload-k9') ->> 'applied', 'false', 'a new upload to the finished job is still refused');
select is((select reason from public.storage_deletions where storage_key = :'j1' || '/other.mp4/upload-k9'), 'upload_refused',
  'and its own object is queued');

-- 2. The queue itself refuses a live key, whoever queues it.
select tests.clear_authentication();
insert into public.storage_deletions (storage_key, reason) values (:'j1' || '/final.mp4/upload-k1', 'project_deleted')
  on conflict (storage_key) do nothing;
select is((select count(*)::int from public.storage_deletions where storage_key = :'j1' || '/final.mp4/upload-k1'), 0,
  'a key an asset references is not queued');
insert into public.storage_deletions (storage_key, reason) values (:'j1' || '/final.mp4/gone-key', 'project_deleted');
select is((select count(*)::int from public.storage_deletions where storage_key = :'j1' || '/final.mp4/gone-key'), 1,
  'a key no asset references is');
-- Deleting the project deletes the rows first, so their keys are queued as before.
select tests.authenticate_as(:'u');
select public.delete_project((select project_id from public.jobs where id = :'j1')) is not null as deleted \gset
select tests.clear_authentication();
select is((select reason from public.storage_deletions where storage_key = :'j1' || '/final.mp4/upload-k1'), 'project_deleted',
  'once its row is deleted with the project, the key is queued');

-- 3. Replays of signed uploads (job 2, still running).
select tests.authenticate_as_service_role();
select attempts as a2 from public.jobs where id = :'j2' \gset
select is(public.register_asset(:'j2', 'cut.mp4', 'video', 'video/mp4', 10, repeat('ab', 32), 'w-keys', :a2, '{}',
  :'j2' || '/cut.mp4/upload-r1', repeat('a1', 32)) ->> 'applied', 'true', 'upload 1 of cut.mp4');
select is(public.register_asset(:'j2', 'cut.mp4', 'video', 'video/mp4', 20, repeat('cd', 32), 'w-keys', :a2, '{}',
  :'j2' || '/cut.mp4/upload-r2', repeat('a2', 32)) ->> 'applied', 'true', 'upload 2 replaces it');
select public.register_asset(:'j2', 'cut.mp4', 'video', 'video/mp4', 10, repeat('ab', 32), 'w-keys', :a2, '{}',
  :'j2' || '/cut.mp4/upload-r3', repeat('a1', 32)) as replay1 \gset
select is(:'replay1'::jsonb - 'asset', jsonb_build_object('applied', false, 'replayed', true, 'storage_key', :'j2' || '/cut.mp4/upload-r3'),
  'upload 1 replayed (a new object, the same signature) is refused');
select is((select sha256 || ' ' || storage_key from public.assets where job_id = :'j2' and name = 'cut.mp4'),
  repeat('cd', 32) || ' ' || :'j2' || '/cut.mp4/upload-r2', 'the file is still upload 2''s');
select is((select reason from public.storage_deletions where storage_key = :'j2' || '/cut.mp4/upload-r3'), 'upload_refused',
  'the replay''s object is queued for deletion');
select public.register_asset(:'j2', 'cut.mp4', 'video', 'video/mp4', 20, repeat('cd', 32), 'w-keys', :a2, '{}',
  :'j2' || '/cut.mp4/upload-r4', repeat('a2', 32)) as replay2 \gset
select is(:'replay2'::jsonb - 'asset', jsonb_build_object('applied', true, 'replayed', true, 'storage_key', :'j2' || '/cut.mp4/upload-r2'),
  'upload 2 replayed answers its record, under the key it was stored with');
select is((select reason from public.storage_deletions where storage_key = :'j2' || '/cut.mp4/upload-r4'), 'upload_refused',
  'and the replay''s own object is queued for deletion');
select is((select count(*)::int from public.storage_deletions where storage_key = :'j2' || '/cut.mp4/upload-r2'), 0,
  'the recorded object is not');

-- 4. References are kept an hour.
select tests.clear_authentication();
update public.asset_upload_signatures set created_at = now() - interval '61 minutes' where signature_ref = repeat('a1', 32);
select tests.authenticate_as_service_role();
select public.register_asset(:'j2', 'more.mp4', 'video', 'video/mp4', 1, repeat('ab', 32), 'w-keys', :a2, '{}',
  :'j2' || '/more.mp4/upload-r5', repeat('a5', 32)) is not null as more \gset
select tests.clear_authentication();
select is((select array_agg(signature_ref order by signature_ref) from public.asset_upload_signatures where job_id = :'j2'),
  array[repeat('a2', 32), repeat('a5', 32)], 'a reference older than an hour is forgotten');

select * from finish();
rollback;
