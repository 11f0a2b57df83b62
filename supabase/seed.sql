-- Placeholder catalog for local development and tests: models and credit packages with made-up
-- Stripe price ids and App Store product ids. Loaded by `npm run dev` and `npm test` after the
-- migrations (`supabase db push --include-seed`), never by a production `supabase db push`.
-- A team replaces it with its own catalog (rows in public.models and public.credit_packages).
-- Re-runnable: existing placeholder rows are put back on sale (a development database may have had
-- them taken off sale by ..._remove_placeholder_catalog.sql); nothing else is changed.

insert into public.models (id, name, provider, description, cost_per_generation, cost_per_minute, min_minutes, max_minutes, available, featured, sort_order)
values
  ('standard-v1', 'Standard', 'openai', 'Balanced quality and speed for everyday videos.', 2, 1, 1, 10, true, true, 10),
  ('premium-v1', 'Premium', 'anthropic', 'Longer research, richer scripts and visuals.', 5, 3, 1, 30, true, false, 20),
  ('draft-v1', 'Quick draft', 'openai', 'A fast low-cost preview.', 1, 0, 1, 3, true, false, 30),
  ('legacy-v0', 'Legacy', 'openai', 'Retired model kept for old jobs.', 1, 1, 1, 10, false, false, 90)
on conflict (id) do update set available = excluded.available, updated_at = now();

insert into public.credit_packages (id, name, credits, bonus_credits, price_cents, currency, stripe_price_id, app_store_product_id, active, sort_order)
values
  ('starter', 'Starter', 100, 0, 499, 'usd', 'price_starter', 'com.example.credits.starter', true, 10),
  ('creator', 'Creator', 500, 50, 1999, 'usd', 'price_creator', 'com.example.credits.creator', true, 20),
  ('studio', 'Studio', 2000, 400, 6999, 'usd', 'price_studio', 'com.example.credits.studio', true, 30),
  ('launch-2025', 'Launch offer', 100, 100, 499, 'usd', 'price_launch_2025', 'com.example.credits.launch2025', false, 90)
on conflict (id) do update set active = excluded.active, updated_at = now();

-- Placeholder subscription plans (credits per period expiring at the period end; rollover_max unspent
-- credits carried into the next period).
insert into public.plans (id, name, interval, credits, rollover_max, price_cents, currency, stripe_price_id, app_store_product_id, active, sort_order)
values
  ('basic-monthly', 'Basic', 'month', 200, 0, 999, 'usd', 'price_plan_basic_monthly', 'com.example.plan.basic.monthly', true, 10),
  ('pro-monthly', 'Pro', 'month', 1000, 500, 2999, 'usd', 'price_plan_pro_monthly', 'com.example.plan.pro.monthly', true, 20),
  ('pro-yearly', 'Pro (yearly)', 'year', 12000, 6000, 29999, 'usd', 'price_plan_pro_yearly', 'com.example.plan.pro.yearly', true, 30)
on conflict (id) do update set active = excluded.active, updated_at = now();
