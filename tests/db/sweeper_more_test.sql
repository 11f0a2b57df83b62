-- The sweepers' "more" answer: true exactly while something due is left after a call's batch,
-- false once nothing is (a hold whose job a worker still leases is not due). A caller loops on it,
-- so a wrong false leaves rows unswept and a wrong true never ends the loop.
begin;
\ir _setup.psql
select plan(9);

select tests.set_now('2030-01-01 00:00:00+00');
select tests.create_user('a@example.com') as a \gset
select tests.create_user('b@example.com') as b \gset
select tests.create_user('c@example.com') as c \gset

-- 1. expire_credits: three users' welcome grants are due; one user per call.
select tests.set_now('2030-02-01 00:00:00+00');
select tests.authenticate_as_service_role();
select is(public.expire_credits(1) - 'skipped', '{"users": 1, "credits": 10, "more": true}'::jsonb, 'first of three due users: more');
select is(public.expire_credits(1) - 'skipped', '{"users": 1, "credits": 10, "more": true}'::jsonb, 'second of three: more');
select is(public.expire_credits(1) - 'skipped', '{"users": 1, "credits": 10, "more": false}'::jsonb, 'the last one: no more');
select is(public.expire_credits(1), '{"users": 0, "credits": 0, "skipped": 0, "more": false}'::jsonb, 'nothing left');
select tests.clear_authentication();

-- 2. expire_stale_holds: three stale holds, one of them on a job a worker still leases (not due).
select app.add_grant(:'a', 'adjustment', 'paid', 90, null, 'adjustment') is not null as topped_up;
select tests.authenticate_as(:'a');
select public.generate('more-1', '{"model_id": "standard-v1", "prompt": "One", "target_minutes": 3}') is not null as g1;
select public.generate('more-2', '{"model_id": "standard-v1", "prompt": "Two", "target_minutes": 3}') is not null as g2;
select public.generate('more-3', '{"model_id": "standard-v1", "prompt": "Three", "target_minutes": 3}') is not null as g3;
select tests.authenticate_as_service_role();
select tests.set_now('2030-02-01 06:20:01+00');
select jsonb_array_length(public.claim_next_jobs('worker-m', 1, 3600) -> 'jobs') as leased;
select is(public.expire_stale_holds(1), '{"expired": 1, "skipped": 0, "more": true}'::jsonb, 'first of two due holds: more');
select is(public.expire_stale_holds(1), '{"expired": 1, "skipped": 0, "more": false}'::jsonb,
  'the second: no more (the leased job''s hold is not due)');
select is(public.expire_stale_holds(1), '{"expired": 0, "skipped": 0, "more": false}'::jsonb, 'nothing left');
select is((select count(*)::int from public.credit_holds where user_id = :'a' and status = 'active'), 1, 'the leased job keeps its hold');
select is(tests.violations(), '[]'::jsonb, 'reconcile is empty after the sweeps');

select * from finish();
rollback;
