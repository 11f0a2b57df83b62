-- Remove the placeholder catalog that ..._seed_catalog.sql put in every database: it lives in supabase/seed.sql now.

-- Databases that already applied the old seed migration have the placeholder models and packages
-- (made-up Stripe price ids such as price_starter) on sale. Only rows that still carry exactly the
-- placeholder values are touched, so a catalog a team already edited is left alone. A row that a
-- job or purchase refers to cannot be deleted; it is taken off sale instead (its history stays).

delete from public.credit_packages p
 where (p.id, p.stripe_price_id, p.app_store_product_id) in (
         ('starter', 'price_starter', 'com.example.credits.starter'),
         ('creator', 'price_creator', 'com.example.credits.creator'),
         ('studio', 'price_studio', 'com.example.credits.studio'),
         ('launch-2025', 'price_launch_2025', 'com.example.credits.launch2025'))
   and not exists (select 1 from public.purchases u where u.package_id = p.id);

update public.credit_packages p
   set active = false, updated_at = now()
 where (p.id, p.stripe_price_id, p.app_store_product_id) in (
         ('starter', 'price_starter', 'com.example.credits.starter'),
         ('creator', 'price_creator', 'com.example.credits.creator'),
         ('studio', 'price_studio', 'com.example.credits.studio'),
         ('launch-2025', 'price_launch_2025', 'com.example.credits.launch2025'));

delete from public.models m
 where (m.id, m.name, m.description) in (
         ('standard-v1', 'Standard', 'Balanced quality and speed for everyday videos.'),
         ('premium-v1', 'Premium', 'Longer research, richer scripts and visuals.'),
         ('draft-v1', 'Quick draft', 'A fast low-cost preview.'),
         ('legacy-v0', 'Legacy', 'Retired model kept for old jobs.'))
   and not exists (select 1 from public.jobs j where j.model_id = m.id);

update public.models m
   set available = false, updated_at = now()
 where (m.id, m.name, m.description) in (
         ('standard-v1', 'Standard', 'Balanced quality and speed for everyday videos.'),
         ('premium-v1', 'Premium', 'Longer research, richer scripts and visuals.'),
         ('draft-v1', 'Quick draft', 'A fast low-cost preview.'),
         ('legacy-v0', 'Legacy', 'Retired model kept for old jobs.'));
