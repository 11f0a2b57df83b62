-- An App Store upgrade starts a new billing period at once and refunds the unused part of the period it replaces without a REFUND notification: the replaced period's credits were all kept. Now that period counts as refunded by its unused fraction.

-- Apple (App Store Server Notifications, notificationType DID_CHANGE_RENEWAL_PREF, subtype UPGRADE):
-- "The upgrade goes into effect immediately, starting a new billing period, and the user receives
-- a prorated refund for the unused portion of the previous period"; the new transaction shares the
-- subscription's originalTransactionId, and no separate REFUND is sent for the proration. The
-- Worker records the new transaction as a period of the new plan (its own dates, full price), so
-- the user had both periods' credits while Apple gave back part of the first one's price.
--
-- Rule (migrations/README.md, "The subscription rules", "replaced" row): an App Store period
-- payment that starts after an earlier period payment of the same subscription starts and more
-- than a day before it ends replaces it. The replaced payment gets a refund fact
-- R = ceil(P x (its end - the new start) / (its end - its start)), merged like any partial refund
-- (the largest counts, at most P), so it keeps C - ceil(C x R / P) under the payment rule table.
-- Within the last day of a period a new period is taken for a renewal (the tolerance the rollover
-- pairing uses), so nothing is cut. Applied when the second of the two payments is granted, in
-- either order; a period paid 0 (an introductory offer) refunds nothing.
create or replace function app.cut_replaced_app_store_periods(p_provider text, p_provider_payment_id text)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_pay public.subscription_payments;
  v_pair record;
  v_paid integer;
  v_refund integer;
  v_cut integer := 0;
begin
  if p_provider <> 'app_store' then
    return 0;
  end if;
  select * into v_pay from public.subscription_payments
   where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_pay.kind is distinct from 'period' then
    return 0;
  end if;
  for v_pair in
    -- Earlier periods this one starts inside, and later periods that start inside this one.
    select sp.provider_payment_id as replaced_id, sp.period_start, sp.period_end, v_pay.period_start as new_start
      from public.subscription_payments sp
     where sp.subscription_id = v_pay.subscription_id and sp.kind = 'period'
       and sp.provider_payment_id <> v_pay.provider_payment_id
       and sp.period_start < v_pay.period_start and v_pay.period_start < sp.period_end - interval '1 day'
    union all
    select v_pay.provider_payment_id, v_pay.period_start, v_pay.period_end, sp.period_start
      from public.subscription_payments sp
     where sp.subscription_id = v_pay.subscription_id and sp.kind = 'period'
       and sp.provider_payment_id <> v_pay.provider_payment_id
       and v_pay.period_start < sp.period_start and sp.period_start < v_pay.period_end - interval '1 day'
     order by 1
  loop
    select amount_paid_cents into v_paid from public.payment_states
     where provider = p_provider and provider_payment_id = v_pair.replaced_id;
    continue when v_paid is null or v_paid = 0;
    v_refund := ceil(v_paid::numeric * extract(epoch from v_pair.period_end - v_pair.new_start)
                     / extract(epoch from v_pair.period_end - v_pair.period_start))::integer;
    update public.payment_states
       set refunded_cents = greatest(refunded_cents, v_refund),
           refund_of_cents = greatest(coalesce(refund_of_cents, v_paid), v_paid),
           updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = v_pair.replaced_id;
    perform app.apply_payment_rule(p_provider, v_pair.replaced_id);
    v_cut := v_cut + 1;
  end loop;
  return v_cut;
end;
$$;
comment on function app.cut_replaced_app_store_periods(text, text) is 'An App Store period payment and the periods it replaces or that replace it (one starting inside another, more than a day before its end): the replaced one counts as refunded by its unused fraction of time (Apple refunds it prorated, silently, on an upgrade). Returns how many pairs were applied.';
revoke all on function app.cut_replaced_app_store_periods(text, text) from public, anon, authenticated, service_role;

-- The body of 20261202203947_cap_every_payment_of_a_period_at_its_highest_plan.sql, with the
-- replaced periods' payment locks taken first and the call to app.cut_replaced_app_store_periods
-- before the payment rule is applied.
create or replace function public.fulfill_subscription_payment(
  p_provider text,
  p_provider_payment_id text,
  p_event_id text,
  p_user_id uuid,
  p_provider_subscription_id text,
  p_plan_id text,
  p_period_start timestamptz,
  p_period_end timestamptz,
  p_amount_cents integer,
  p_currency text,
  p_from_plan_id text default null,
  p_event_type text default null
)
returns jsonb
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_event_id bigint;
  v_sub public.subscriptions;
  v_plan public.plans;
  v_from public.plans;
  v_top integer;
  v_others integer;
  v_pay public.subscription_payments;
  v_purchase public.purchases;
  v_credits integer;
  v_grant_id uuid;
  v_result jsonb;
  v_adjacent record;
  v_rolled integer := 0;
  v_rows integer;
  v_replaced text;
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_pay from public.subscription_payments where provider = p_provider and provider_payment_id = p_provider_payment_id;
  select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', true, 'rolled_over', 0);
  end if;
  -- The App Store periods this one replaces are written by app.cut_replaced_app_store_periods
  -- after the balance lock: on this payment's first grant, their payment locks are taken now,
  -- before the subscription and the balance, in payment id order (README "Concurrency": payment,
  -- then balance), so a refund of one of them running meanwhile is waited for instead of
  -- deadlocking with it. (Left: two upgrades of one period granted at the same moment, or a
  -- replaced period committed while this waits for the subscription lock, can still deadlock;
  -- Postgres ends one and the Worker retries it.)
  if p_provider = 'app_store' and p_from_plan_id is null and v_purchase.grant_id is null then
    for v_replaced in
      select sp.provider_payment_id
        from public.subscription_payments sp
        join public.subscriptions s on s.id = sp.subscription_id
       where s.provider = p_provider and s.provider_subscription_id = p_provider_subscription_id
         and sp.kind = 'period' and sp.provider_payment_id <> p_provider_payment_id
         and sp.period_start < p_period_start and p_period_start < sp.period_end - interval '1 day'
       order by sp.provider_payment_id
    loop
      perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended(p_provider || ':payment:' || v_replaced, 0));
    end loop;
  end if;
  select * into v_plan from public.plans where id = app.plan_id(p_provider, p_plan_id);
  if not found then
    raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'plan_id';
  end if;
  if p_from_plan_id is not null then
    select * into v_from from public.plans where id = app.plan_id(p_provider, p_from_plan_id);
    if not found then
      raise exception using errcode = 'PT404', message = 'No such plan.', hint = 'not_found', detail = 'from_plan_id';
    end if;
  end if;
  if p_period_start is null or p_period_end is null or p_period_end <= p_period_start then
    raise exception using errcode = '22023', message = 'The period must end after it starts.', hint = 'invalid_request', detail = 'period_end';
  end if;
  if p_amount_cents is null or p_amount_cents < 0 then
    raise exception using errcode = '22023', message = 'The amount must be zero or more.', hint = 'invalid_request', detail = 'amount_cents';
  end if;
  if p_currency is null or p_currency !~ '^[a-z]{3}$' then
    raise exception using errcode = '22023', message = 'The currency must be a lower-case ISO 4217 code.', hint = 'invalid_request', detail = 'currency';
  end if;
  if v_purchase.id is not null and v_purchase.plan_id is null then
    raise exception using errcode = 'PT409', message = 'This payment paid a credit package.', hint = 'purchase_conflict', detail = 'provider_payment_id';
  end if;
  v_sub := app.subscription_row(p_provider, p_provider_subscription_id, p_user_id, v_plan.id);
  if v_pay.provider is not null and v_pay.subscription_id <> v_sub.id then
    raise exception using errcode = '22023', message = 'The payment belongs to another subscription.',
      hint = 'invalid_request', detail = 'provider_subscription_id';
  end if;
  if exists (select 1 from public.profiles where user_id = v_sub.user_id and deleted_at is not null) then
    -- Parked for a refund at the provider, like a pack's payment for a closed account.
    update public.payment_events
       set outcome = case when v_purchase.grant_id is not null then 'already_granted' else 'account_closed_refund_due' end,
           purchase_id = v_purchase.id, processed_at = pg_catalog.now()
     where id = v_event_id;
    if v_purchase.grant_id is not null then
      return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', false, 'rolled_over', 0);
    end if;
    insert into public.closed_account_payments (provider, provider_payment_id, event_id, event_type, user_id, package_id,
                                                amount_cents, currency)
    values (p_provider, p_provider_payment_id, p_event_id, left(p_event_type, 255), v_sub.user_id, 'plan:' || v_plan.id,
            p_amount_cents, left(p_currency, 10))
    on conflict (provider, provider_payment_id) do nothing;
    get diagnostics v_rows = row_count;
    return jsonb_build_object('purchase', null, 'granted', false, 'replayed', v_rows = 0, 'rolled_over', 0,
                              'account_closed', true, 'refund_due', true);
  end if;

  -- Every payment of a period (its period, its plan changes) grants at most what the highest plan
  -- the period reached (any recorded payment's plan or from-plan, this one's included) leaves after
  -- what the period's other payments already grant: an upgrade p - q, a period its plan, each cut to
  -- that room. So the period's total is its highest plan, whatever order the invoices arrive in.
  select max(greatest(pl.credits, coalesce(fp.credits, 0))), coalesce(sum(pu.credits), 0)
    into v_top, v_others
    from public.subscription_payments sp
    join public.plans pl on pl.id = sp.plan_id
    left join public.plans fp on fp.id = sp.from_plan_id
    left join public.purchases pu on pu.id = sp.purchase_id
   where sp.subscription_id = v_sub.id and sp.period_end = p_period_end
     and (sp.provider, sp.provider_payment_id) <> (p_provider, p_provider_payment_id);
  v_top := greatest(v_plan.credits, coalesce(v_from.credits, 0), coalesce(v_top, 0));
  v_credits := least(case when p_from_plan_id is null then v_plan.credits else v_plan.credits - v_from.credits end,
                     v_top - v_others);
  if v_pay.provider is null then
    insert into public.subscription_payments (provider, provider_payment_id, subscription_id, kind, plan_id, from_plan_id,
                                              period_start, period_end)
    values (p_provider, p_provider_payment_id, v_sub.id, case when p_from_plan_id is null then 'period' else 'upgrade' end,
            v_plan.id, v_from.id, p_period_start, p_period_end)
    returning * into v_pay;
  end if;
  if v_purchase.id is null and v_credits > 0 then
    insert into public.purchases (user_id, provider, provider_payment_id, plan_id, credits, amount_cents, currency)
    values (v_sub.user_id, p_provider, p_provider_payment_id, v_plan.id, v_credits, p_amount_cents, p_currency)
    returning * into v_purchase;
    update public.subscription_payments set purchase_id = v_purchase.id
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
  end if;
  if v_purchase.id is not null and v_purchase.grant_id is null then
    perform app.payment_state(p_provider, p_provider_payment_id);
    update public.payment_states
       set amount_paid_cents = p_amount_cents, purchase_id = v_purchase.id, updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = p_provider_payment_id;
    v_grant_id := app.add_period_grant(v_purchase.user_id, 'purchase', v_purchase.credits, v_pay.period_end, 'purchase',
      p_purchase_id => v_purchase.id,
      p_description => case v_pay.kind when 'period' then v_plan.name || ' period' else 'Upgrade to ' || v_plan.name end);
    update public.purchases
       set status = 'succeeded', credits_granted = v_purchase.credits, grant_id = v_grant_id,
           fulfilled_at = pg_catalog.now(), updated_at = pg_catalog.now()
     where id = v_purchase.id returning * into v_purchase;
    -- An App Store period that replaces an earlier one (an upgrade), whichever of the two came second.
    perform app.cut_replaced_app_store_periods(p_provider, p_provider_payment_id);
    v_result := app.apply_payment_rule(p_provider, p_provider_payment_id);
    v_purchase := app.finish_payment_event(v_event_id, p_provider, p_provider_payment_id, v_result);
    update public.payment_events
       set outcome = case when v_purchase.credits_granted = v_purchase.credits then 'granted' else 'granted_then_taken_back' end
     where id = v_event_id;
    -- Rollovers with the periods before and after this one (whichever of each pair came second).
    if v_pay.kind = 'period' then
      for v_adjacent in
        select sp.provider_payment_id as from_id, v_pay.provider_payment_id as to_id
          from public.subscription_payments sp
         where sp.subscription_id = v_sub.id and sp.kind = 'period' and sp.provider_payment_id <> v_pay.provider_payment_id
           and sp.period_start < v_pay.period_start
           and sp.period_end between v_pay.period_start - interval '1 day' and v_pay.period_start + interval '1 day'
           and exists (select 1 from public.purchases p where p.id = sp.purchase_id and p.grant_id is not null)
        union all
        select v_pay.provider_payment_id, sp.provider_payment_id
          from public.subscription_payments sp
         where sp.subscription_id = v_sub.id and sp.kind = 'period' and sp.provider_payment_id <> v_pay.provider_payment_id
           and sp.period_start > v_pay.period_start
           and sp.period_start between v_pay.period_end - interval '1 day' and v_pay.period_end + interval '1 day'
           and exists (select 1 from public.purchases p where p.id = sp.purchase_id and p.grant_id is not null)
      loop
        v_rolled := v_rolled + app.roll_over(p_provider, v_adjacent.from_id, v_adjacent.to_id);
      end loop;
    end if;
    -- The current period moves forward; a paid period makes a past_due subscription active.
    update public.subscriptions
       set current_period_start = case when v_pay.kind = 'upgrade' then coalesce(current_period_start, v_pay.period_start)
                                       else v_pay.period_start end,
           current_period_end = v_pay.period_end,
           status = case when status = 'past_due' then 'active' else status end,
           plan_id = case when v_pay.kind = 'upgrade' or state_event_at is null then v_pay.plan_id else plan_id end,
           updated_at = pg_catalog.now()
     where id = v_sub.id and status <> 'ended'
       and (current_period_end is null or current_period_end < v_pay.period_end
            or (v_pay.kind = 'upgrade' and current_period_end = v_pay.period_end));
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', v_purchase.credits_granted > 0,
                              'replayed', false, 'rolled_over', v_rolled);
  end if;
  update public.payment_events
     set outcome = case when v_purchase.id is null then 'no_credits' else 'already_granted' end,
         purchase_id = v_purchase.id, processed_at = pg_catalog.now()
   where id = v_event_id;
  return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', false, 'rolled_over', 0);
end;
$$;
