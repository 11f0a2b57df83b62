-- An invite reward needs money paid: a purchase of 0 (a subscription's free trial or a 100%-off invoice, which fulfill_subscription_payment grants) no longer earns the inviter a reward that no refund or dispute could ever take back (found in review: farmable with throwaway accounts up to the monthly cap).
-- Redefines app.apply_invite_reward from 20261202041924_create_invites.sql with one added check;
-- the trigger and grants are unchanged (CREATE OR REPLACE keeps them).

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
  -- Only money paid earns a reward: a purchase of 0 (a free trial's or a 100%-off invoice) neither
  -- fixes the reward nor uses up the invitee's first purchase; a later paid one still can.
  if v_invite.purchase_id is null and new.amount_cents <= 0 then
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

comment on function app.apply_invite_reward() is 'Trigger on purchases: fixes an invitee''s reward to its inviter when its first purchase with money paid (amount_cents > 0) is granted, and keeps the reward while that purchase is succeeded (take-back and give-back like a payment''s).';
