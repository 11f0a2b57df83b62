-- Closing an account no longer locks the profile row FOR UPDATE before the account's jobs: that blocked the foreign-key checks of a concurrent complete_job, sweeper or payment holding one of those jobs or holds (a deadlock cycle). The exclusive account lock serialises closes.

create or replace function app.close_account(p_user_id uuid)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_profile public.profiles;
  v_job record;
  v_hold record;
  v_jobs integer := 0;
  v_holds integer := 0;
  v_keys text[];
begin
  -- Exclusive per account: waits for every user RPC of this account in flight (each holds the
  -- shared lock from app.require_user until it commits), and makes the ones that come later wait,
  -- then find the account closed. So no generate can slip a job or hold past the close.
  perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('account:' || p_user_id::text, 0));
  -- No row lock on the profile: the exclusive account lock above already serialises closes, and a
  -- FOR UPDATE here would block the foreign-key checks (FOR KEY SHARE on profiles) of a
  -- complete_job, sweeper or payment that already holds one of this account's jobs or holds, while
  -- this function waits for that job: a deadlock. The final update takes FOR NO KEY UPDATE, which
  -- those checks do not conflict with.
  select * into v_profile from public.profiles where user_id = p_user_id;
  if not found then
    return jsonb_build_object('closed', false, 'replayed', false, 'canceled_jobs', 0, 'released_holds', 0, 'storage_keys', '[]'::jsonb);
  end if;
  if v_profile.deleted_at is not null then
    return jsonb_build_object('closed', true, 'replayed', true, 'canceled_jobs', 0, 'released_holds', 0, 'storage_keys', '[]'::jsonb);
  end if;
  -- Lock order: each job, then its hold and the balance (inside finish_canceled_job / settle_hold).
  for v_job in
    select id from public.jobs where user_id = p_user_id and status not in ('READY', 'FAILED', 'CANCELED')
     order by id for update
  loop
    perform app.finish_canceled_job(v_job.id, 0);
    v_jobs := v_jobs + 1;
  end loop;
  for v_hold in
    select id from public.credit_holds where user_id = p_user_id and status = 'active' order by id
  loop
    perform app.settle_hold(v_hold.id, 0, 'released');
    v_holds := v_holds + 1;
  end loop;
  v_keys := app.delete_assets(array(select id from public.jobs where user_id = p_user_id), 'account_closed');
  update public.projects
     set title = 'Deleted project', prompt = 'Deleted', niche_preset = null, voice = null, voice_profile_id = null,
         transcript_source = 'auto', transcript_text = null, settings = '{}'::jsonb,
         deleted_at = coalesce(deleted_at, app.now()), updated_at = pg_catalog.now()
   where user_id = p_user_id;
  update public.jobs
     set status_message = null, error_message = null, output_url = null, manifest = null, updated_at = pg_catalog.now()
   where user_id = p_user_id;
  update public.job_steps
     set message = null, error = null, log_excerpt = null, artifacts = '[]'::jsonb, updated_at = pg_catalog.now()
   where user_id = p_user_id;
  delete from public.draft_prompts where claimed_by = p_user_id;
  delete from public.idempotency_keys where user_id = p_user_id;
  update public.profiles
     set display_name = null, avatar_url = null, notification_prefs = '{}'::jsonb, language = 'en',
         deleted_at = app.now(), updated_at = pg_catalog.now()
   where user_id = p_user_id;
  return jsonb_build_object('closed', true, 'replayed', false, 'canceled_jobs', v_jobs, 'released_holds', v_holds,
                            'storage_keys', pg_catalog.to_jsonb(v_keys));
end;
$$;

comment on function app.close_account(uuid) is 'Closes an account under its exclusive account lock (waits for the account''s RPCs in flight): unfinished jobs CANCELED (nothing charged), holds released, assets deleted (R2 keys queued and returned), projects anonymised and soft-deleted, job texts cleared, claimed drafts and idempotency records deleted, profile fields cleared and deleted_at set. Ledger, grants, balance, purchases and payment records are kept. Idempotent.';
