-- An invite give-back no longer names the invitee's purchase: credits that do not fit back into the inviter's grant become an adjustment grant described without the invitee's purchase id (the inviter reads its grants; GET /v1/invites shows invitees without ids).

-- Like app.return_to_grant (credits back into the grant they were taken from, the excess as an
-- adjustment grant of the same category and expiry), with the excess grant's description given.
create or replace function app.return_to_grant_described(p_grant_id uuid, p_amount integer, p_description text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_grant public.credit_grants;
  v_fit integer;
begin
  select * into v_grant from public.credit_grants where id = p_grant_id for update;
  v_fit := least(p_amount, v_grant.amount - v_grant.remaining);
  if v_fit > 0 then
    update public.credit_grants set remaining = remaining + v_fit where id = p_grant_id;
  end if;
  if p_amount - v_fit > 0 then
    insert into public.credit_grants (user_id, source, kind, amount, remaining, expires_at, description, created_at)
    values (v_grant.user_id, 'adjustment', v_grant.kind, p_amount - v_fit, p_amount - v_fit, v_grant.expires_at,
            p_description, pg_catalog.now());
  end if;
end;
$$;
comment on function app.return_to_grant_described(uuid, integer, text) is 'Gives credits back to the grant they were taken from (same category and expiry); what does not fit becomes an adjustment grant with the given description.';
revoke all on function app.return_to_grant_described(uuid, integer, text) from public, anon, authenticated, service_role;

-- The latest body (20261202041924_create_invites.sql), with the pieces given back through
-- app.return_to_grant_described: the inviter's grants say "invite reward given back", never which
-- purchase of the invitee stands again. p_purchase_id is still checked to be the invite's.
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
  v_note constant text := 'Invite reward given back (beyond the room of the grant it was taken from)';
begin
  if p_purchase_id is distinct from p_invite.purchase_id then
    raise exception using errcode = 'P0001', message = 'invite_give_back: the purchase is not the invite''s first purchase.';
  end if;
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
      perform app.return_to_grant_described(v_piece.grant_id, v_undo, v_note);
      v_available := v_available + v_undo;
    else
      v_cancel := least(v_undo, v_balance.debt - v_debt_cancelled);
      v_debt_cancelled := v_debt_cancelled + v_cancel;
      if v_undo - v_cancel > 0 then
        perform app.return_to_grant_described(p_invite.reward_grant_id, v_undo - v_cancel, v_note);
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
comment on function app.invite_give_back(public.invites, integer, uuid) is 'Gives an invite reward back by undoing its take-back pieces newest first (like a payment''s give-back); an excess grant is described without the invitee''s purchase. p_purchase_id must be the invite''s purchase.';
revoke all on function app.invite_give_back(public.invites, integer, uuid) from public, anon, authenticated, service_role;
