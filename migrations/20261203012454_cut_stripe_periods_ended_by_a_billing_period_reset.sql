-- A Stripe change that resets the billing period (to another interval, from a free price) credits the unused time of the period it ends and starts a new one: the new period is now granted (the Worker ignored its invoice: a year paid, nothing granted), and the payments of the period it ends count as refunded by their unused fraction, as an App Store upgrade's replaced period does.

-- Stripe ("Update a subscription"): switching prices does not change the billing date "unless the
-- billing interval is changed (for example, from monthly to yearly), the subscription moves from
-- free to paid, or paid to free, a trial starts or ends. In these cases, we apply a credit for the
-- unused time on the previous price, immediately charge the customer using the new price, and reset
-- the billing date." That invoice (billing_reason subscription_update) has the credit as a negative
-- proration line and the new price's whole period as a line that is not a proration. The Worker
-- now records that line as a period payment of the new plan (row one of the rule table) and, when
-- the invoice has the credit, passes p_replaces_unused: the credit is money for the unused part of
-- the period it ends, which its payments' credits stood for. Rule (migrations/README.md,
-- "replaced" row): each Stripe payment of the subscription (its period or a plan change within it)
-- whose [start, end) contains the start of a period paid with p_replaces_unused, more than a day
-- before its end, gets the fact cut_cents = ceil(P x (end - new start) / (end - start)) (the
-- largest counts), which adds to its refunded amount, capped at P (migration 20261203020519's
-- app.payment_rule): Stripe's credit for the unused time is reckoned on the price, whatever was
-- refunded before, so a real refund and the credit are two sums given back. Applied when the
-- second of the two payments is granted, in either order. Without the credit (proration_behavior none) nothing is cut: the user
-- paid for the unused time and got nothing back for it.

alter table public.subscription_payments add column replaces_unused boolean not null default false;
alter table public.payment_states add column cut_cents integer not null default 0,
  add constraint payment_states_cut_cents_check check (cut_cents >= 0);
comment on column public.payment_states.cut_cents is 'Stripe: what a billing period reset credited back of this payment (its unused fraction of time, the largest seen); adds to the refunded amount, at most the amount paid.';
comment on column public.subscription_payments.replaces_unused is 'A Stripe period that ends the one it starts inside with a credit for that period''s unused time (a billing period reset): the payments of the period it ends count as refunded by their unused fraction (app.cut_replaced_app_store_periods).';

-- The body of 20261202223059_cut_app_store_periods_replaced_by_an_upgrade.sql, with the Stripe
-- pairs: a payment of either kind replaced by a later period paid with replaces_unused.
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
  if p_provider not in ('app_store', 'stripe') then
    return 0;
  end if;
  select * into v_pay from public.subscription_payments
   where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_pay.kind is null then
    return 0;
  end if;
  for v_pair in
    -- Earlier payments this period starts inside: App Store periods; with replaces_unused, Stripe
    -- payments of either kind.
    select sp.provider_payment_id as replaced_id, sp.period_start, sp.period_end, v_pay.period_start as new_start
      from public.subscription_payments sp
     where sp.subscription_id = v_pay.subscription_id and sp.provider_payment_id <> v_pay.provider_payment_id
       and v_pay.kind = 'period'
       and case when p_provider = 'app_store' then sp.kind = 'period' else v_pay.replaces_unused end
       and sp.period_start < v_pay.period_start and v_pay.period_start < sp.period_end - interval '1 day'
    union all
    -- Later periods that start inside this payment (and replace it).
    select v_pay.provider_payment_id, v_pay.period_start, v_pay.period_end, sp.period_start
      from public.subscription_payments sp
     where sp.subscription_id = v_pay.subscription_id and sp.provider_payment_id <> v_pay.provider_payment_id
       and sp.kind = 'period'
       and case when p_provider = 'app_store' then v_pay.kind = 'period' else sp.replaces_unused end
       and v_pay.period_start < sp.period_start and sp.period_start < v_pay.period_end - interval '1 day'
     order by 1
  loop
    select amount_paid_cents into v_paid from public.payment_states
     where provider = p_provider and provider_payment_id = v_pair.replaced_id;
    continue when v_paid is null or v_paid = 0;
    v_refund := ceil(v_paid::numeric * extract(epoch from v_pair.period_end - v_pair.new_start)
                     / extract(epoch from v_pair.period_end - v_pair.period_start))::integer;
    -- App Store: Apple's prorated refund of the replaced period, merged like a partial refund (the
    -- largest counts). Stripe: a credit apart from any real refund (cut_cents, added to it).
    update public.payment_states
       set refunded_cents = case when p_provider = 'app_store' then greatest(refunded_cents, v_refund) else refunded_cents end,
           refund_of_cents = case when p_provider = 'app_store' then greatest(coalesce(refund_of_cents, v_paid), v_paid)
                                  else refund_of_cents end,
           cut_cents = case when p_provider = 'stripe' then greatest(cut_cents, v_refund) else cut_cents end,
           updated_at = pg_catalog.now()
     where provider = p_provider and provider_payment_id = v_pair.replaced_id;
    perform app.apply_payment_rule(p_provider, v_pair.replaced_id);
    v_cut := v_cut + 1;
  end loop;
  return v_cut;
end;
$$;
comment on function app.cut_replaced_app_store_periods(text, text) is 'A subscription payment and the payments it replaces or that replace it: App Store periods (one starting inside another, more than a day before its end: an upgrade, refunded prorated and silently), and Stripe payments of a period that a later period paid with replaces_unused starts inside (a billing period reset that credited the unused time). The replaced one counts as refunded by its unused fraction of time. Returns how many pairs were applied. (Named for its first use.)';
revoke all on function app.cut_replaced_app_store_periods(text, text) from public, anon, authenticated, service_role;

-- The body of 20261202223059's public.fulfill_subscription_payment, with p_replaces_unused (kept on
-- the payment's row when it is first recorded, like its plan and period; its replaced payments'
-- locks taken first on its first grant, as an App Store upgrade's). A new argument changes the signature, so the old function is dropped.
drop function public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text);
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
  p_event_type text default null,
  p_replaces_unused boolean default false
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
  v_replaces boolean := coalesce(p_replaces_unused, false);
begin
  perform app.require_service_role();
  if v_replaces and p_from_plan_id is not null then
    raise exception using errcode = '22023', message = 'A plan change within a period replaces no period.',
      hint = 'invalid_request', detail = 'replaces_unused';
  end if;
  v_event_id := app.record_payment_event(p_provider, p_event_id, 'payment', p_event_type, p_provider_payment_id);
  select * into v_pay from public.subscription_payments where provider = p_provider and provider_payment_id = p_provider_payment_id;
  select * into v_purchase from public.purchases where provider = p_provider and provider_payment_id = p_provider_payment_id;
  if v_event_id is null then
    return jsonb_build_object('purchase', app.purchase_json(v_purchase), 'granted', false, 'replayed', true, 'rolled_over', 0);
  end if;
  -- The periods this one replaces (an App Store upgrade's; with p_replaces_unused, the Stripe
  -- payments of the period a billing period reset credited) are written by
  -- app.cut_replaced_app_store_periods after the balance lock: on this payment's first grant,
  -- their payment locks are taken now,
  -- before the subscription and the balance, in payment id order (README "Concurrency": payment,
  -- then balance), so a refund of one of them running meanwhile is waited for instead of
  -- deadlocking with it. (Left: two upgrades of one period granted at the same moment, or a
  -- replaced period committed while this waits for the subscription lock, can still deadlock;
  -- Postgres ends one and the Worker retries it.)
  if ((p_provider = 'app_store' and p_from_plan_id is null) or (p_provider = 'stripe' and v_replaces))
     and v_purchase.grant_id is null then
    for v_replaced in
      select sp.provider_payment_id
        from public.subscription_payments sp
        join public.subscriptions s on s.id = sp.subscription_id
       where s.provider = p_provider and s.provider_subscription_id = p_provider_subscription_id
         and (sp.kind = 'period' or p_provider = 'stripe') and sp.provider_payment_id <> p_provider_payment_id
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
                                              period_start, period_end, replaces_unused)
    values (p_provider, p_provider_payment_id, v_sub.id, case when p_from_plan_id is null then 'period' else 'upgrade' end,
            v_plan.id, v_from.id, p_period_start, p_period_end, v_replaces)
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
    -- A period that replaces an earlier one (an App Store upgrade; a Stripe billing period reset
    -- that credited the unused time), whichever of the two came second.
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

comment on function public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text, boolean) is 'Service role: a paid subscription period (or, with p_from_plan_id, a mid-period upgrade; with p_replaces_unused, a Stripe period whose invoice credited the unused time of the period it starts inside). Grants its credits once per provider payment id, expiring at the period end, applies the payment rule (refunds/disputes of it go through the pack RPCs by the same payment id), cuts the periods it replaces, then rolls over between adjacent periods. {"purchase", "granted", "replayed", "rolled_over"}; a closed account: parked for a refund.';
revoke all on function public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text, boolean)
  from public, anon, authenticated, service_role;
grant execute on function public.fulfill_subscription_payment(text, text, text, uuid, text, text, timestamptz, timestamptz, integer, text, text, text, boolean)
  to service_role;
