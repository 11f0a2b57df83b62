-- An admin is refused as soon as the role is removed from auth.users: app.require_admin checks the current raw_app_meta_data as well as the token's claim, and the audit log is read through admin_list_audit only.

-- The token's app_metadata is a copy made when the token was issued (up to its expiry, an hour by
-- default on Supabase); auth.users.raw_app_meta_data is what the team set now. Both must say admin:
-- the claim alone kept a demoted admin's rights until the token expired. The service key and a
-- direct database session (no claims) are unchanged.
create or replace function app.require_admin()
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_claims jsonb := auth.jwt();
  v_role text := auth.role();
  v_uid uuid := auth.uid();
begin
  if v_role = 'service_role' then
    return jsonb_build_object('role', 'service_role', 'user_id', null);
  end if;
  if v_role = 'authenticated' and v_uid is not null
     and jsonb_typeof(v_claims -> 'app_metadata') = 'object' and (v_claims -> 'app_metadata' ->> 'role') = 'admin'
     and exists (select 1 from auth.users u
                  where u.id = v_uid and jsonb_typeof(u.raw_app_meta_data) = 'object'
                    and (u.raw_app_meta_data ->> 'role') = 'admin') then
    return jsonb_build_object('role', 'admin', 'user_id', v_uid);
  end if;
  if v_role is null and v_claims is null then
    return jsonb_build_object('role', 'database', 'user_id', null);
  end if;
  raise exception using errcode = '42501', message = 'This operation is reserved for admins.', hint = 'forbidden';
end;
$$;
comment on function app.require_admin() is 'Returns {"role": admin|service_role|database, "user_id"}; raises 42501 (hint forbidden) for anon, and for users unless both their JWT''s app_metadata.role and their current auth.users.raw_app_meta_data role are admin (removing the role takes effect at once, not when the token expires).';
revoke all on function app.require_admin() from public, anon, authenticated, service_role;

-- The audit log's read policy for admins trusted the token's claim alone, and a policy cannot call
-- into the unexposed app schema; admins read the log through admin_list_audit (which checks
-- app.require_admin), so users lose direct SELECT on the table. The service role keeps it.
drop policy "Admins can read the audit log" on public.admin_audit_log;
revoke select on table public.admin_audit_log from authenticated;
