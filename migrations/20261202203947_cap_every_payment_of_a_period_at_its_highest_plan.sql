-- Every payment of a subscription period, the period's own too, is cut to the room its highest plan leaves: with Stripe's immediate plan-change invoices, upgrade, downgrade (nothing taken back, the proration kept as Stripe balance) and upgrade again granted the difference every time, paid by that balance.

-- The body of 20261202042031_create_subscriptions.sql, with the credits of a period's payment
-- min(its size, highest plan credits the period reached - what its other payments grant), its size
-- being p.credits - q.credits for a plan change and the plan's credits for a period. Capping the
-- period payment too keeps the total the same whatever order the invoices arrive in (a late Pro
-- period invoice after a downgrade and an upgrade back would otherwise add its 1000 to the 800).
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
begin
  perform app.require_service_role();
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_pay from public.subscription_payments where provider = p_provider and provider_payment_id = p_provider_payment_id;
  select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', true, 'rolled_over', 0);
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
