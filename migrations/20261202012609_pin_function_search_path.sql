-- Pin search_path = pg_catalog, pg_temp on every function in public and app: with search_path '' Postgres still searches pg_temp first for type names.

-- A caller's temporary domain named text, uuid or jsonb (whose CHECK calls the caller's own
-- function) shadowed the built-in type inside SECURITY DEFINER functions pinned to '' and ran that
-- function as the owner. With pg_temp listed last, pg_catalog's types, functions and operators
-- always win and qualified names are used for everything else. The rule for every function
-- created from here on: `set search_path = pg_catalog, pg_temp` (tests/db/security_test.sql checks
-- the catalog).
do $$
declare
  v_fn regprocedure;
begin
  for v_fn in
    select p.oid::regprocedure
      from pg_catalog.pg_proc p
      join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'app')
       and pg_catalog.pg_has_role(p.proowner, 'USAGE')
       and not exists (select 1 from pg_catalog.pg_depend d
                        where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
     order by 1
  loop
    execute pg_catalog.format('alter function %s set search_path = pg_catalog, pg_temp', v_fn);
  end loop;
end
$$;
