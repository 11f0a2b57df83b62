-- Create public.health(), the cheap liveness probe the Worker's GET /health calls through PostgREST.

-- It proves that PostgREST reaches the database and can run a function, and says nothing else.
-- plpgsql (not inlinable SQL) so its grants hold under PostgREST's prepared statements.
create or replace function public.health()
returns jsonb
language plpgsql
stable
security invoker
set search_path = ''
as $$
begin
  return jsonb_build_object('database', true);
end;
$$;

comment on function public.health() is 'Liveness probe: returns {"database": true} when PostgREST reaches the database.';

revoke execute on function public.health() from public;
grant execute on function public.health() to anon, authenticated, service_role;
