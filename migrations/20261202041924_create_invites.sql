-- Invites (issue 13): an invite code per profile, one redemption per new user within 7 days of sign-up, and the inviter's promotional reward when the invitee's first purchase is paid, taken back and given back with that purchase's status.
--
-- Rules (migrations/README.md, "Invites"):
-- * Every profile has an 8-character invite code (A-Z and 2-9 without I, O, 0, 1), made by the
--   column default, so the sign-up trigger needs no change; existing profiles are backfilled.
-- * redeem_invite: once per user, within 7 days of sign-up (profiles.signed_up_at, the business
--   clock), never one's own code, never a code whose owner was invited (directly or through
--   others) by the redeemer (no loops), never after the redeemer's first paid purchase.
-- * The reward belongs to the invitee's FIRST paid purchase. Its amount is fixed when that purchase
--   is paid: 50 credits, x1.2 (60) when the inviter then has 6-15 successful invitees counting this
--   one, x1.5 (75) from 16 (successful = an invitee whose first paid purchase is `succeeded` now), cut to what is left of the
--   inviter's 500 credits a calendar month (UTC) of rewards; nothing for a closed inviter. It is a
--   promotional grant expiring 90 days after it is made.
-- * The inviter keeps the reward while that purchase's status is `succeeded` (a partial refund keeps
--   it); a full refund, a standing dispute or a revocation takes it back like a payment's take-back
--   (the reward grant first, then the inviter's other grants in draw-down order, the rest debt);
--   a dispute won or a refund reversed gives it back like a payment's give-back.
-- * Lock order: the invitee's balance (held by the purchase function already), the invite row, the
--   inviter's balance. Invites form a forest (no loops), so two balances are never locked in both
--   orders.

-- 1. Invite codes and the sign-up instant on the business clock.

create or replace function app.new_invite_code()
returns text
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_alphabet constant text := 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  v_bytes bytea;
  v_code text;
begin
  loop
    v_bytes := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
    v_code := '';
    for i in 0..7 loop
      v_code := v_code || pg_catalog.substr(v_alphabet, (pg_catalog.get_byte(v_bytes, i) % 32) + 1, 1);
    end loop;
    exit when not exists (select 1 from public.profiles where invite_code = v_code);
  end loop;
  return v_code;
end;
$$;
comment on function app.new_invite_code() is 'A fresh 8-character invite code (32-letter alphabet without look-alikes), unused by any profile.';
revoke all on function app.new_invite_code() from public, anon, authenticated, service_role;

alter table public.profiles add column invite_code text;
alter table public.profiles add column signed_up_at timestamptz;
update public.profiles set invite_code = app.new_invite_code(), signed_up_at = created_at;
alter table public.profiles
  alter column invite_code set default app.new_invite_code(),
  alter column invite_code set not null,
  alter column signed_up_at set default app.now(),
  alter column signed_up_at set not null,
  add constraint profiles_invite_code_key unique (invite_code),
  add constraint profiles_invite_code_format_check check (invite_code ~ '^[A-HJ-NP-Z2-9]{8}$');
comment on column public.profiles.invite_code is 'The user''s invite code, shared with friends (redeem_invite); made at sign-up, never changed by the user.';
comment on column public.profiles.signed_up_at is 'Sign-up instant on the business clock (app.now()); an invite can be redeemed for 7 days from it.';

-- 2. Invites and the pieces their take-backs took.

create table public.invites (
  invitee_id uuid primary key references public.profiles (user_id),
  inviter_id uuid not null references public.profiles (user_id),
  code text not null,
  idempotency_key text not null,
  redeemed_at timestamptz not null default now(),
  purchase_id uuid references public.purchases (id),
  reward_tier text,
  reward_amount integer,
  reward_kept integer not null default 0,
  purchase_succeeded boolean not null default false,
  reward_grant_id uuid references public.credit_grants (id),
  reward_note text,
  rewarded_at timestamptz,
  constraint invites_not_self_check check (invitee_id <> inviter_id),
  constraint invites_code_format_check check (code ~ '^[A-HJ-NP-Z2-9]{8}$'),
  constraint invites_idempotency_key_length_check check (char_length(idempotency_key) between 1 and 255),
  constraint invites_reward_tier_check check (reward_tier in ('bronze', 'silver', 'gold')),
  constraint invites_reward_amount_check check (reward_amount >= 0),
  constraint invites_reward_kept_range_check check (reward_kept between 0 and coalesce(reward_amount, 0)),
  constraint invites_reward_note_check check (reward_note in ('monthly_cap', 'inviter_closed')),
  constraint invites_purchase_id_key unique (purchase_id),
  constraint invites_rewarded_check check ((purchase_id is null) = (rewarded_at is null) and (purchase_id is null) = (reward_amount is null))
);
comment on table public.invites is 'One row per redeemed invite (the invitee''s one redemption) and its reward to the inviter, fixed when the invitee''s first purchase is paid. Written only by redeem_invite and the purchases trigger.';
comment on column public.invites.purchase_id is 'The invitee''s first paid purchase: the one the reward follows.';
comment on column public.invites.reward_amount is 'The reward fixed when that purchase was paid (tier and monthly cap applied); 0 when capped out or the inviter was closed.';
comment on column public.invites.purchase_succeeded is 'Whether the first paid purchase is succeeded now: a successful invite (the tier counts these).';
comment on column public.invites.reward_kept is 'What the inviter keeps now: reward_amount while the purchase is succeeded, else 0.';
-- The inviter's page of invitees (get_invites), and the tier and monthly-cap counts.
create index invites_inviter_id_redeemed_at_idx on public.invites (inviter_id, redeemed_at desc);
-- The foreign key to the reward grant.
create index invites_reward_grant_id_idx on public.invites (reward_grant_id) where reward_grant_id is not null;

create table public.invite_take_backs (
  id bigint generated always as identity primary key,
  invitee_id uuid not null references public.invites (invitee_id),
  user_id uuid not null references public.profiles (user_id),
  grant_id uuid references public.credit_grants (id),
  amount integer not null,
  given_back integer not null default 0,
  created_at timestamptz not null default now(),
  constraint invite_take_backs_amount_positive_check check (amount > 0),
  constraint invite_take_backs_given_back_range_check check (given_back between 0 and amount)
);
comment on table public.invite_take_backs is 'What each take-back of an invite reward took from the inviter: one row per grant, or with grant_id null the debt it left. A give-back undoes them newest first.';
-- A give-back walks one invite's pieces newest first.
create index invite_take_backs_invitee_id_id_idx on public.invite_take_backs (invitee_id, id desc);
-- Foreign keys (account closing, grant lookups).
create index invite_take_backs_user_id_idx on public.invite_take_backs (user_id);
create index invite_take_backs_grant_id_idx on public.invite_take_backs (grant_id) where grant_id is not null;

alter table public.invites enable row level security;
alter table public.invite_take_backs enable row level security;
revoke all on table public.invites, public.invite_take_backs from public, anon, authenticated, service_role;
grant select on table public.invites, public.invite_take_backs to service_role;
create policy "Service role can read invites" on public.invites for select to service_role using (true);
create policy "Service role can read invite take-backs" on public.invite_take_backs for select to service_role using (true);

-- 3. Redemption.

create or replace function app.invite_json(p public.invites)
returns jsonb
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
  return jsonb_build_object(
    'code', p.code, 'redeemed_at', p.redeemed_at,
    'status', case when p.purchase_id is null then 'waiting_for_purchase'
                   when not p.purchase_succeeded then 'reversed'
                   when p.reward_amount = 0 then 'not_rewarded'
                   else 'rewarded' end,
    'reward', p.reward_kept, 'reward_tier', p.reward_tier, 'reward_note', p.reward_note, 'rewarded_at', p.rewarded_at);
end;
$$;
comment on function app.invite_json(public.invites) is 'An invite as the API shows it; no user ids (an inviter never learns who its invitees are beyond their status).';
revoke all on function app.invite_json(public.invites) from public, anon, authenticated, service_role;

create or replace function public.redeem_invite(p_code text, p_idempotency_key text)
returns jsonb
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_code text;
  v_me public.profiles;
  v_inviter public.profiles;
  v_invite public.invites;
begin
  perform app.check_idempotency_key(p_idempotency_key);
  v_code := pg_catalog.upper(p_code);
  if v_code is null or v_code !~ '^[A-HJ-NP-Z2-9]{8}$' then
    raise exception using errcode = '22023', message = 'An invite code is 8 letters and digits.',
      hint = 'invalid_request', detail = 'code';
  end if;
  -- One redemption at a time anywhere: the loop check below reads other users' invites, and two
  -- users redeeming each other's codes at once must not both pass it. Redemptions are rare and short.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('invites:redeem', 0));
  -- The balance lock orders this redemption with the user's purchases (their fulfilment holds it).
  perform app.lock_balance(v_user_id);

  select * into v_invite from public.invites where invitee_id = v_user_id;
  if found then
    if v_invite.idempotency_key = p_idempotency_key and v_invite.code <> v_code then
      raise exception using errcode = 'PT422', message = 'This idempotency key was already used with a different request.',
        hint = 'idempotency_key_reused', detail = 'idempotency_key';
    end if;
    if v_invite.code = v_code then
      return jsonb_build_object('invite', app.invite_json(v_invite), 'replayed', true);
    end if;
    raise exception using errcode = 'PT409', message = 'You have already redeemed an invite.',
      hint = 'invite_already_redeemed', detail = 'code';
  end if;

  select * into v_inviter from public.profiles where invite_code = v_code and deleted_at is null;
  if not found then
    raise exception using errcode = 'PT404', message = 'No such invite code.', hint = 'not_found', detail = 'code';
  end if;
  if v_inviter.user_id = v_user_id then
    raise exception using errcode = 'PT409', message = 'You cannot redeem your own invite code.',
      hint = 'self_invite', detail = 'code';
  end if;
  select * into v_me from public.profiles where user_id = v_user_id;
  if app.now() >= v_me.signed_up_at + interval '7 days' then
    raise exception using errcode = 'PT410', message = 'Invite codes can be redeemed only in the first 7 days after sign-up.',
      hint = 'invite_window_closed', detail = 'code';
  end if;
  if exists (
    with recursive chain(user_id) as (
      select v_inviter.user_id
      union
      select i.inviter_id from public.invites i join chain c on i.invitee_id = c.user_id
    )
    select 1 from chain where user_id = v_user_id
  ) then
    raise exception using errcode = 'PT409', message = 'This code''s owner joined through your invite: invites cannot go in a circle.',
      hint = 'invite_loop', detail = 'code';
  end if;
  if exists (select 1 from public.purchases where user_id = v_user_id and grant_id is not null) then
    raise exception using errcode = 'PT409', message = 'Invite codes are for new customers: you have already bought credits.',
      hint = 'invite_after_purchase', detail = 'code';
  end if;

  insert into public.invites (invitee_id, inviter_id, code, idempotency_key, redeemed_at)
  values (v_user_id, v_inviter.user_id, v_code, p_idempotency_key, app.now())
  returning * into v_invite;
  return jsonb_build_object('invite', app.invite_json(v_invite), 'replayed', false);
end;
$$;
comment on function public.redeem_invite(text, text) is 'The caller redeems an invite code (once, within 7 days of sign-up): {"invite", "replayed"}. The same code again answers replayed: true; another code PT409 invite_already_redeemed; own code PT409 self_invite; a code whose owner the caller invited (directly or not) PT409 invite_loop; after a paid purchase PT409 invite_after_purchase; after the window PT410 invite_window_closed; unknown or closed owner PT404 not_found.';

create or replace function public.get_invites()
returns jsonb
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user_id uuid := app.require_user();
  v_me public.profiles;
  v_successful integer;
  v_month integer;
  v_redeemed public.invites;
begin
  select * into v_me from public.profiles where user_id = v_user_id;
  select count(*) filter (where purchase_succeeded),
         coalesce(sum(reward_amount) filter (where rewarded_at >= (pg_catalog.date_trunc('month', app.now() at time zone 'UTC') at time zone 'UTC')), 0)
    into v_successful, v_month
    from public.invites where inviter_id = v_user_id;
  select * into v_redeemed from public.invites where invitee_id = v_user_id;
  return jsonb_build_object(
    'code', v_me.invite_code,
    'tier', case when v_successful >= 16 then 'gold' when v_successful >= 6 then 'silver' else 'bronze' end,
    'successful_invites', v_successful,
    'next_reward', app.invite_reward_for(v_successful + 1),
    'monthly_cap', 500,
    'rewarded_this_month', v_month,
    'redeem_until', case when v_redeemed.invitee_id is null then v_me.signed_up_at + interval '7 days' end,
    'redeemed', case when v_redeemed.invitee_id is not null then app.invite_json(v_redeemed) end,
    'invitees', coalesce((
      select jsonb_agg(app.invite_json(i) - 'code' order by i.redeemed_at desc, i.invitee_id)
        from (select * from public.invites where inviter_id = v_user_id order by redeemed_at desc, invitee_id limit 100) i
    ), '[]'::jsonb));
end;
$$;
comment on function public.get_invites() is 'The caller''s invite code, tier (by successful invitees: bronze 0-5, silver 6-15, gold 16+), the next reward, the monthly cap and what was rewarded this month, the invite the caller redeemed, and its 100 newest invitees with their status (no ids).';

-- 4. The reward.

create or replace function app.invite_reward_for(p_rank integer)
returns integer
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
  return case when p_rank >= 16 then 75 when p_rank >= 6 then 60 else 50 end;
end;
$$;
comment on function app.invite_reward_for(integer) is 'The reward for an inviter''s n-th successful invitee: 50 (bronze, 1-5), 60 (silver, 6-15, +20%), 75 (gold, 16+, +50%).';

create or replace function app.invite_take_back(p_invite public.invites, p_amount integer, p_type text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grant record;
  v_left integer := p_amount;
  v_take integer;
begin
  perform app.expire_due_grants(p_invite.inviter_id);
  for v_grant in
    select id, remaining from public.credit_grants
     where user_id = p_invite.inviter_id and remaining > 0 and (expires_at is null or expires_at > app.now())
     order by (id = p_invite.reward_grant_id) desc, expires_at asc nulls last, (kind = 'paid') asc, created_at asc, id asc
     for update
  loop
    exit when v_left = 0;
    v_take := least(v_left, v_grant.remaining);
    update public.credit_grants set remaining = remaining - v_take where id = v_grant.id;
    insert into public.invite_take_backs (invitee_id, user_id, grant_id, amount)
    values (p_invite.invitee_id, p_invite.inviter_id, v_grant.id, v_take);
    v_left := v_left - v_take;
  end loop;
  if v_left > 0 then
    insert into public.invite_take_backs (invitee_id, user_id, grant_id, amount)
    values (p_invite.invitee_id, p_invite.inviter_id, null, v_left);
  end if;
  perform app.post_ledger_entry(p_invite.inviter_id, p_type, -(p_amount - v_left), 0, v_left,
    p_grant_id => p_invite.reward_grant_id,
    p_description => 'Invite reward taken back: the invitee''s first purchase was refunded or disputed');
end;
$$;
comment on function app.invite_take_back(public.invites, integer, text) is 'Takes an invite reward back from the inviter (the reward grant, then draw-down order, then debt), recording each piece.';

create or replace function app.invite_give_back(p_invite public.invites, p_amount integer, p_purchase_id uuid)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_balance public.credit_balances;
  v_piece record;
  v_left integer := p_amount;
  v_undo integer;
  v_cancel integer;
  v_available integer := 0;
  v_debt_cancelled integer := 0;
begin
  select * into v_balance from public.credit_balances where user_id = p_invite.inviter_id;
  for v_piece in
    select id, grant_id, amount - given_back as open from public.invite_take_backs
     where invitee_id = p_invite.invitee_id and given_back < amount
     order by id desc
     for update
  loop
    exit when v_left = 0;
    v_undo := least(v_left, v_piece.open);
    update public.invite_take_backs set given_back = given_back + v_undo where id = v_piece.id;
    if v_piece.grant_id is not null then
      perform app.return_to_grant(v_piece.grant_id, v_undo, p_purchase_id);
      v_available := v_available + v_undo;
    else
      v_cancel := least(v_undo, v_balance.debt - v_debt_cancelled);
      v_debt_cancelled := v_debt_cancelled + v_cancel;
      if v_undo - v_cancel > 0 then
        perform app.return_to_grant(p_invite.reward_grant_id, v_undo - v_cancel, p_purchase_id);
        v_available := v_available + (v_undo - v_cancel);
      end if;
    end if;
    v_left := v_left - v_undo;
  end loop;
  if v_available > 0 or v_debt_cancelled > 0 then
    perform app.post_ledger_entry(p_invite.inviter_id, 'adjustment', v_available, 0, -v_debt_cancelled,
      p_grant_id => p_invite.reward_grant_id,
      p_description => 'Invite reward given back (the invitee''s first purchase stands again)');
  end if;
  perform app.expire_due_grants(p_invite.inviter_id);
  perform app.repay_debt_from_available(p_invite.inviter_id);
end;
$$;
comment on function app.invite_give_back(public.invites, integer, uuid) is 'Gives an invite reward back by undoing its take-back pieces newest first (like a payment''s give-back).';

-- Trigger on purchases: the invitee's first paid purchase fixes the reward; every later change of
-- that purchase's status moves the inviter to what the reward keeps.
create or replace function app.apply_invite_reward()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_invite public.invites;
  v_rank integer;
  v_full integer;
  v_amount integer;
  v_used integer;
  v_note text;
  v_grant_id uuid;
  v_want integer;
begin
  perform app.lock_balance(new.user_id);
  select * into v_invite from public.invites where invitee_id = new.user_id for update;
  if not found or (v_invite.purchase_id is not null and v_invite.purchase_id <> new.id) then
    return null;
  end if;
  perform app.lock_balance(v_invite.inviter_id);
  if v_invite.purchase_id is null then
    select count(*) filter (where purchase_succeeded) + 1,
           coalesce(sum(reward_amount) filter (where rewarded_at >= (pg_catalog.date_trunc('month', app.now() at time zone 'UTC') at time zone 'UTC')), 0)
      into v_rank, v_used
      from public.invites where inviter_id = v_invite.inviter_id;
    v_full := app.invite_reward_for(v_rank);
    v_amount := least(v_full, greatest(0, 500 - v_used));
    if v_amount < v_full then
      v_note := 'monthly_cap';
    end if;
    if exists (select 1 from public.profiles where user_id = v_invite.inviter_id and deleted_at is not null) then
      v_amount := 0;
      v_note := 'inviter_closed';
    end if;
    if v_amount > 0 then
      v_grant_id := app.add_grant(v_invite.inviter_id, 'promotion', 'promotional', v_amount, app.now() + interval '90 days',
        'grant', p_description => 'Invite reward (' || case when v_rank >= 16 then 'gold' when v_rank >= 6 then 'silver' else 'bronze' end || ' tier)');
    end if;
    update public.invites
       set purchase_id = new.id, reward_amount = v_amount, reward_kept = v_amount, reward_grant_id = v_grant_id,
           reward_tier = case when v_rank >= 16 then 'gold' when v_rank >= 6 then 'silver' else 'bronze' end,
           reward_note = v_note, rewarded_at = app.now()
     where invitee_id = v_invite.invitee_id
     returning * into v_invite;
  end if;
  v_want := case when new.status = 'succeeded' then v_invite.reward_amount else 0 end;
  if v_want < v_invite.reward_kept then
    perform app.invite_take_back(v_invite, v_invite.reward_kept - v_want, case when new.status = 'disputed' then 'clawback' else 'refund' end);
  elsif v_want > v_invite.reward_kept then
    perform app.invite_give_back(v_invite, v_want - v_invite.reward_kept, new.id);
  end if;
  update public.invites set reward_kept = v_want, purchase_succeeded = (new.status = 'succeeded')
   where invitee_id = v_invite.invitee_id and (reward_kept, purchase_succeeded) is distinct from (v_want, new.status = 'succeeded');
  return null;
end;
$$;
comment on function app.apply_invite_reward() is 'Trigger on purchases: fixes an invitee''s reward to its inviter when its first purchase is paid, and keeps the reward while that purchase is succeeded (take-back and give-back like a payment''s).';

create trigger purchases_apply_invite_reward
  after update of status, grant_id on public.purchases
  for each row when (new.grant_id is not null)
  execute function app.apply_invite_reward();

revoke all on function
  app.invite_reward_for(integer), app.invite_take_back(public.invites, integer, text),
  app.invite_give_back(public.invites, integer, uuid), app.apply_invite_reward(),
  public.redeem_invite(text, text), public.get_invites()
  from public, anon, authenticated, service_role;
grant execute on function public.redeem_invite(text, text), public.get_invites() to authenticated;
