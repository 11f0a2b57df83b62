-- Issue 9, findings 8-10: what API roles can do around the RPCs. Temporary types, domains and
-- operators cannot hijack a SECURITY DEFINER function (9.8); only the tests' superuser moves the
-- business clock (9.9); users cannot write projects directly, text rules refuse blank and
-- control-character text, and an oversized settings object is invalid_request (9.10).
begin;
\ir _setup.psql
select plan(21);

select tests.create_user('hana@example.com') as hana \gset
select tests.create_user('ivan@example.com') as ivan \gset

-- 9.8 A temporary domain named text, uuid or jsonb whose CHECK calls the caller's function.
-- The check raises when it runs as anyone but the caller: inside a SECURITY DEFINER function
-- whose search_path let pg_temp come first for type names.
create temp table shadow_results (call text, error jsonb);
-- tests.error_of with its types pinned: the capture itself must not pick up the hostile domains.
create function tests.shadow_error_of(p_sql pg_catalog.text)
returns pg_catalog.jsonb
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
  v_code pg_catalog.text;
  v_message pg_catalog.text;
begin
  execute p_sql;
  return null;
exception when others then
  get stacked diagnostics v_code = returned_sqlstate, v_message = message_text;
  return pg_catalog.jsonb_build_object('code', v_code, 'message', v_message);
end;
$$;
grant execute on function tests.shadow_error_of(pg_catalog.text) to public;
grant all on shadow_results to public;
-- The hostile objects, made by the API role itself (every role may create temporary objects).
create function pg_temp.shadow_setup() returns void
language plpgsql as $outer$
begin
  execute $$
    create function pg_temp.shadow_check(p pg_catalog.text) returns boolean
    language plpgsql as $f$
    begin
      if current_user::pg_catalog.text not in ('anon', 'authenticated') then
        raise exception 'shadow check ran as %', current_user;
      end if;
      return true;
    end
    $f$;
    create function pg_temp.shadow_eq(a pg_catalog.int4, b pg_catalog.int4) returns boolean
    language plpgsql as $f$ begin return pg_temp.shadow_check(a::pg_catalog.text); end $f$;
    create domain pg_temp.text as pg_catalog.text check (pg_temp.shadow_check(value));
    create domain pg_temp.uuid as pg_catalog.uuid check (pg_temp.shadow_check(value::pg_catalog.text));
    create domain pg_temp.jsonb as pg_catalog.jsonb check (pg_temp.shadow_check(value::pg_catalog.text));
    create domain pg_temp.int4 as pg_catalog.int4 check (pg_temp.shadow_check(value::pg_catalog.text));
    create operator pg_temp.= (leftarg = pg_catalog.int4, rightarg = pg_catalog.int4, function = pg_temp.shadow_eq)
  $$;
end
$outer$;
create function pg_temp.shadow_teardown() returns void
language plpgsql as $outer$
begin
  execute $$
    drop operator pg_temp.= (pg_catalog.int4, pg_catalog.int4);
    drop domain pg_temp.text, pg_temp.uuid, pg_temp.jsonb, pg_temp.int4;
    drop function pg_temp.shadow_eq(pg_catalog.int4, pg_catalog.int4), pg_temp.shadow_check(pg_catalog.text)
  $$;
end
$outer$;
grant execute on all functions in schema pg_temp to public;
select tests.authenticate_as_anon();
select pg_temp.shadow_setup();
insert into shadow_results
  select 'anon create_draft', tests.shadow_error_of($$ select public.create_draft('A prompt', null, '{"k": 1}') $$);
select pg_temp.shadow_teardown();
select tests.authenticate_as(:'hana');
select pg_temp.shadow_setup();
insert into shadow_results
  select 'authenticated generate', tests.shadow_error_of($$ select public.generate('shadow-k1', '{"model_id": "standard-v1", "prompt": "A video", "target_minutes": 1}') $$)
  union all
  select 'authenticated get_balance', tests.shadow_error_of($$ select public.get_balance() $$)
  union all
  select 'authenticated list_ledger', tests.shadow_error_of($$ select public.list_ledger() $$);
select pg_temp.shadow_teardown();
select tests.clear_authentication();
select is(error, null, format('issue 9.8: a temporary domain shadowing text/uuid/jsonb/int4 (and a temp operator) does not run in %s', call))
  from shadow_results order by call;
select is((select count(*)::int from public.jobs where user_id = :'hana'), 1, 'issue 9.8: and generate did its work in public');

-- 9.9 The business clock: a session that is not a superuser cannot move app.now.
select tests.authenticate_as(:'hana');
select (public.get_balance() ->> 'available') as hana_now \gset
select tests.clear_authentication();
set local session authorization authenticator;
set local role authenticated;
select set_config('request.jwt.claims', json_build_object('sub', :'hana', 'role', 'authenticated')::text, true);
select set_config('app.now', '2099-01-01T00:00:00Z', true);
create temp table clock_results as select public.get_balance() ->> 'available' as available;
reset role;
reset session authorization;
select set_config('app.now', '', true);
select set_config('request.jwt.claims', '', true);
select is((select available from clock_results), :'hana_now',
  'issue 9.9: app.now set by a non-superuser session (authenticator, as PostgREST connects) does not expire the welcome credits');
select tests.set_now('2099-01-01T00:00:00Z');
select tests.authenticate_as(:'hana');
select is(public.get_balance() ->> 'available', '0', 'issue 9.9: the tests'' superuser still moves the clock');
select tests.clear_authentication();
select set_config('app.now', '', true);

-- 9.10 Projects are written only through RPCs; text rules; the settings size.
select tests.authenticate_as(:'hana');
select public.generate('proj-1', '{"model_id": "standard-v1", "prompt": "A video", "target_minutes": 1}') -> 'response' -> 'job' ->> 'project_id' as project \gset
select throws_ok($$ insert into public.projects (title, prompt) values (E'\n', E'\x01') $$, '42501', null,
  'issue 9.10: a user cannot insert a project directly');
select throws_ok(format($$ update public.projects set title = E'\t' where id = %L $$, :'project'), '42501', null,
  'issue 9.10: a user cannot update a project directly');
select throws_ok(format($$ update public.projects set deleted_at = null where id = %L $$, :'project'), '42501', null,
  'issue 9.10: a user cannot clear deleted_at');
select throws_ok(format($$ delete from public.projects where id = %L $$, :'project'), '42501', null,
  'issue 9.10: a user cannot delete a project');
select is(tests.error_of($$ select public.generate('proj-2', jsonb_build_object('model_id', 'standard-v1', 'prompt', 'A video', 'title', E'\n')) $$) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "title"}'::jsonb, 'issue 9.10: a whitespace-only title (a newline) is invalid_request');
select is(tests.error_of($$ select public.generate('proj-3', jsonb_build_object('model_id', 'standard-v1', 'prompt', E' \t\r\n ')) $$) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "prompt"}'::jsonb, 'issue 9.10: a whitespace-only prompt is invalid_request');
select is(tests.error_of($$ select public.generate('proj-4', jsonb_build_object('model_id', 'standard-v1', 'prompt', 'A video', 'title', E'Two\nlines')) $$) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "title"}'::jsonb, 'issue 9.10: a title with a line break is invalid_request');
select is(tests.error_of($$ select public.generate('proj-5', jsonb_build_object('model_id', 'standard-v1', 'prompt', E'Line one\nLine two', 'voice', E'alloy\t')) $$) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "voice"}'::jsonb, 'issue 9.10: a voice with a tab is invalid_request');
select is(tests.error_of($$ select public.generate('proj-6', jsonb_build_object('model_id', 'standard-v1', 'prompt', E'Line one\nLine two')) $$), null,
  'issue 9.10: a multi-line prompt is still fine');
select ok(octet_length(jsonb_build_object('model_id', 'standard-v1', 'prompt', 'A video',
            'settings', jsonb_build_object('a', (select jsonb_agg(0) from generate_series(1, 5000))))::text) < 16384
          and pg_column_size(jsonb_build_object('a', (select jsonb_agg(0) from generate_series(1, 5000)))) > 16384,
  'issue 9.10: the settings object below is under 16 KB as text and over 16 KB as jsonb');
select is(tests.error_of($$ select public.generate('proj-7', jsonb_build_object('model_id', 'standard-v1', 'prompt', 'A video',
            'settings', jsonb_build_object('a', (select jsonb_agg(0) from generate_series(1, 5000))))) $$) - 'message',
  '{"code": "22023", "hint": "invalid_request", "detail": "settings"}'::jsonb,
  'issue 9.10: settings too large as stored jsonb is invalid_request (detail settings), not a raw 23514 with a row dump');
select tests.clear_authentication();
select is(tests.error_of($$ select app.check_text(E'\n', 'title', 200) $$) ->> 'code', '22023',
  'issue 9.10: check_text refuses a newline-only value as blank');
select is(tests.error_of($$ select app.check_text(E'\u00a0\u2003', 'title', 200) $$) ->> 'code', '22023',
  'issue 9.10: check_text refuses Unicode spaces only as blank');
select is(tests.violations(), '[]'::jsonb, 'issue 9.10: reconcile is empty');

select * from finish();
rollback;
