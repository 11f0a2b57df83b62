-- Give users who signed up before this bundle was installed a profile and a balance (no welcome grant).

insert into public.profiles (user_id)
select u.id from auth.users u
on conflict (user_id) do nothing;

insert into public.credit_balances (user_id)
select u.id from auth.users u
on conflict (user_id) do nothing;
