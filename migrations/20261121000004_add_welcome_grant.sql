-- Grant new users 10 promotional credits expiring after 30 days, once per user.

-- Anonymous users (Supabase anonymous sign-in) get a profile and a balance but no welcome credits
-- until they link a permanent identity (is_anonymous turns false): otherwise a script could mint
-- free credits by signing in anonymously in a loop. The partial unique index makes the welcome grant
-- exactly-once per user whichever trigger fires.

-- Serves the exactly-once welcome grant check.
create unique index credit_grants_welcome_once_idx on public.credit_grants (user_id) where source = 'welcome';

create or replace function app.grant_welcome_credits(p_user_id uuid)
returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform app.lock_balance(p_user_id);
  if exists (select 1 from public.credit_grants where user_id = p_user_id and source = 'welcome') then
    return;
  end if;
  perform app.add_grant(p_user_id, 'welcome', 'promotional', 10, app.now() + interval '30 days', 'grant',
    p_description => 'Welcome credits');
end;
$$;
comment on function app.grant_welcome_credits(uuid) is 'Grants the 10 welcome credits (promotional, 30 days) unless already granted.';

create or replace function app.handle_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.profiles (user_id) values (new.id) on conflict (user_id) do nothing;
  insert into public.credit_balances (user_id) values (new.id) on conflict (user_id) do nothing;
  if not coalesce(new.is_anonymous, false) then
    perform app.grant_welcome_credits(new.id);
  end if;
  return new;
end;
$$;
comment on function app.handle_new_user() is 'Trigger on auth.users insert: creates the profile and the balance, and grants the welcome credits to non-anonymous users.';

create or replace function app.handle_user_made_permanent()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform app.grant_welcome_credits(new.id);
  return new;
end;
$$;
comment on function app.handle_user_made_permanent() is 'Trigger on auth.users update: grants the welcome credits when an anonymous user links a permanent identity.';

create trigger on_auth_user_made_permanent
  after update of is_anonymous on auth.users
  for each row
  when (old.is_anonymous and not new.is_anonymous)
  execute function app.handle_user_made_permanent();

revoke all on function app.grant_welcome_credits(uuid), app.handle_new_user(), app.handle_user_made_permanent()
  from public, anon, authenticated, service_role;
